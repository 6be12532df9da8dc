"""The healing paper's backbones from torchvision: ``resnet50`` and ``efficientnet_b0``.

Registered only when torchvision is importable (``pip install 'unlearnkit[vision]'``, or the
torchvision that matches your PyTorch build); otherwise ``create_model`` names the missing package
(:data:`NEEDS`) and ``unlearnkit ls`` says how to get them.

Adapted to small inputs: with ``stem="small"`` (the default below 64 pixels, e.g. 28×28
Fashion-MNIST or 32×32 CIFAR) the first convolution is 3×3 with stride 1 and ResNet-50's max-pool
is dropped (the CIFAR stem of ResNet-18 here); ``stem="imagenet"`` keeps torchvision's. The first
convolution takes the data's channels (1 for Fashion-MNIST). Nothing is ever downloaded:
``weights=PATH`` loads a torchvision state dict from a local file (e.g. ImageNet weights saved once
with ``torch.save(model.state_dict(), PATH)``); tensors whose shapes the adaptation changed (the
stem, the classifier) keep their fresh initialisation and are named in the log.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from .base import UNAVAILABLE, Classifier, register_model

log = logging.getLogger("unlearnkit")
NEEDS = {"resnet50": "torchvision", "efficientnet_b0": "torchvision"}
HOW = "pip install 'unlearnkit[vision]' (or the torchvision build matching your torch)"
STEMS = ("auto", "small", "imagenet")

try:
    import torchvision
except ImportError:  # optional: the models below are then not registered
    torchvision = None


def _small(stem: str, input_shape: tuple[int, ...], name: str) -> bool:
    if len(input_shape) != 3:
        raise ConfigError(f"{name} needs image inputs (C, H, W), got {input_shape}")
    if stem not in STEMS:
        raise ConfigError(f"{name} stem must be one of {STEMS}, got {stem!r}")
    return stem == "small" or (stem == "auto" and min(input_shape[1:]) < 64)


def _load_weights(net: nn.Module, path: str, name: str) -> None:
    """Copy the tensors of a local torchvision state dict whose names and shapes fit ``net``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{name} weights file not found: {p} (weights are never downloaded; name a local file)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types on a file that is not a state dict
        raise ConfigError(f"{name} weights {p} are unreadable ({type(e).__name__}: {e})") from e
    own = net.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise ConfigError(f"{name} weights {p}: no tensor matches the model (not a torchvision {name} state dict?)")
    skipped = sorted(set(own) - set(fits))
    net.load_state_dict(fits, strict=False)
    log.info("%s: loaded %d tensors from %s; kept fresh: %s", name, len(fits), p, ", ".join(skipped[:6]) or "none")


class ResNet50(Classifier):
    """torchvision's ResNet-50 (bottleneck blocks, 2048 features) on any channels and size."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, ...], stem: str = "auto",
                 weights: str | None = None) -> None:
        super().__init__()
        net = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        c = input_shape[0] if len(input_shape) == 3 else 3
        if _small(stem, input_shape, "resnet50"):
            net.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif c != 3:
            net.conv1 = nn.Conv2d(c, 64, 7, 2, 3, bias=False)
        if weights is not None:
            _load_weights(net, weights, "resnet50")
        self.encoder = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                                     net.layer4, net.avgpool, nn.Flatten())
        self.head = net.fc
        self.feature_dim = net.fc.in_features


class EfficientNetB0(Classifier):
    """torchvision's EfficientNet-B0 (1280 features; the head keeps its dropout) on any channels and size."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, ...], stem: str = "auto",
                 weights: str | None = None) -> None:
        super().__init__()
        net = torchvision.models.efficientnet_b0(weights=None, num_classes=num_classes)
        c = input_shape[0] if len(input_shape) == 3 else 3
        first = net.features[0][0]
        stride = 1 if _small(stem, input_shape, "efficientnet_b0") else 2
        if stride != first.stride[0] or c != first.in_channels:
            net.features[0][0] = nn.Conv2d(c, first.out_channels, 3, stride, 1, bias=False)
        if weights is not None:
            _load_weights(net, weights, "efficientnet_b0")
        self.encoder = nn.Sequential(net.features, net.avgpool, nn.Flatten())
        self.head = net.classifier
        self.feature_dim = net.classifier[-1].in_features


if torchvision is not None:
    @register_model("resnet50")
    def resnet50(*, num_classes: int, input_shape: tuple[int, ...], stem: str = "auto",
                 weights: str | None = None) -> ResNet50:
        return ResNet50(num_classes=num_classes, input_shape=input_shape, stem=stem, weights=weights)

    @register_model("efficientnet_b0")
    def efficientnet_b0(*, num_classes: int, input_shape: tuple[int, ...], stem: str = "auto",
                        weights: str | None = None) -> EfficientNetB0:
        return EfficientNetB0(num_classes=num_classes, input_shape=input_shape, stem=stem, weights=weights)
else:
    UNAVAILABLE.update({name: f"needs {package}: {HOW}" for name, package in NEEDS.items()})
