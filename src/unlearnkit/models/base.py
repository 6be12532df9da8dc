"""The model registry and the shape every model shares: features, then a linear head."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import Registry

MODELS: Registry[Callable[..., "Classifier"]] = Registry("model")
register_model = MODELS.register
# Models that an optional package would register, with how to get it (filled by backbones.py).
UNAVAILABLE: dict[str, str] = {}


class Classifier(nn.Module):
    """A classifier split into an ``encoder`` (``forward_features``) and a linear ``head``.

    DAU's Barlow-Twins term and healing's feature similarity use the features; ``feature_dim`` is
    their width. Subclasses set ``self.encoder``, ``self.head`` and ``self.feature_dim``.
    """

    encoder: nn.Module
    head: nn.Module
    feature_dim: int

    def forward_features(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward_head(self, z: Tensor) -> Tensor:
        return self.head(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def create_model(name: str, *, num_classes: int, input_shape: tuple[int, ...], seed: int | None = None,
                 **kwargs) -> Classifier:
    """Build a registered model, e.g. ``create_model("cnn", num_classes=10, input_shape=(1, 28, 28))``.

    ``input_shape`` is ``(C, H, W)`` for images or ``(D,)`` for features. With ``seed`` the
    initial weights are drawn from that seed without touching the global random state.

    Raises:
        RegistryError: unknown name (lists the valid ones). ConfigError: bad keyword values, or a
            model whose optional package is missing (says how to install it).
    """
    if name in UNAVAILABLE and name not in MODELS:
        raise ConfigError(f"model {name!r} {UNAVAILABLE[name]}")
    builder = MODELS.get(name)
    if seed is None:
        return builder(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def reinitialise(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Draw fresh initial weights for every layer of ``model`` in place (retraining from scratch)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return model
