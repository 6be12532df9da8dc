"""The MembershipAttack protocol and registry; attacks work on a model's softmax outputs.

Every attack exposes two levels: ``fit(model, members, nonmembers)`` / ``score(model, data)``
(the protocol, higher score = "member"), and ``fit_outputs`` / ``score_outputs`` on precomputed
``(probs, labels)`` so an audit runs each forward pass once and shares it among attacks.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from ..registry import Registry
from ..training.evaluate import predict_logits
from ..utils.sampling import random_positions


def shadow_positions(n_test: int, n_retain: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """The draws of the audits' attack protocol: a random half of D_test to fit on (shadow
    non-members), the other half to evaluate on, and as many random D_r samples to fit on (shadow
    members). Returns ``(shadow_out, target_out, shadow_in)`` positions, in that order of drawing."""
    perm = torch.randperm(n_test, generator=generator)
    half = n_test // 2
    return perm[:half], perm[half:], random_positions(n_retain, half, generator)


@runtime_checkable
class MembershipAttack(Protocol):
    def fit(self, model: nn.Module, members: Samples, nonmembers: Samples) -> "MembershipAttack": ...

    def score(self, model: nn.Module, data: Samples) -> Tensor: ...


ATTACKS: Registry[type] = Registry("attack")
register_attack = ATTACKS.register


def create_attack(name: str, **params) -> MembershipAttack:
    return ATTACKS.get(name)(**params)


def list_attacks(pattern: str = "*") -> list[str]:
    return ATTACKS.names(pattern)


def outputs(model: nn.Module, data: Samples) -> tuple[Tensor, Tensor]:
    """``(softmax probabilities, labels)`` of ``data`` under ``model`` in eval mode."""
    return torch.softmax(predict_logits(model, data), dim=1), data.labels


class OutputAttack:
    """Mixin turning ``fit_outputs``/``score_outputs`` into the model-level protocol."""

    def fit(self, model: nn.Module, members: Samples, nonmembers: Samples) -> "OutputAttack":
        return self.fit_outputs(outputs(model, members), outputs(model, nonmembers))

    def score(self, model: nn.Module, data: Samples) -> Tensor:
        return self.score_outputs(outputs(model, data))
