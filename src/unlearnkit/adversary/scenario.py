"""``adversarial:<strategy>`` forget scenarios: the adversary picks the request on the original model.

The other scenarios need only the training IDs; these need the trained model too, so the recipe
calls :func:`request_ids` after training the original. Whatever the adversary returns goes
through the same :func:`~unlearnkit.data.scenarios.validate_forget_ids` as every other request.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from ..data.scenarios import ForgetRequest, list_scenarios, select_forget_ids, validate_forget_ids
from ..errors import ConfigError
from .base import create_adversary, list_adversaries

ADVERSARIAL_PREFIX = "adversarial:"


def is_adversarial(scenario: str) -> bool:
    return scenario.startswith(ADVERSARIAL_PREFIX)


def check_scenario(request: ForgetRequest, params: dict[str, Any] | None = None) -> None:
    """Refuse an unknown scenario or strategy (or bad adversary parameters) before any model is trained."""
    if is_adversarial(request.scenario):
        _adversary(request, params)
    elif request.scenario not in list_scenarios():
        valid = list_scenarios() + [ADVERSARIAL_PREFIX + s for s in list_adversaries()]
        raise ConfigError(f"unknown scenario {request.scenario!r}; valid: {', '.join(valid)}")


def _adversary(request: ForgetRequest, params: dict[str, Any] | None):
    strategy = request.scenario[len(ADVERSARIAL_PREFIX):]
    kwargs = dict(params or {})
    if strategy == "class" and request.forget_class is not None:
        kwargs.setdefault("target_class", request.forget_class)
    return create_adversary(strategy, **kwargs)


def adversarial_ids(train: Samples, request: ForgetRequest, *, model: nn.Module, reference: Samples | None,
                    generator: torch.Generator, params: dict[str, Any] | None = None) -> Tensor:
    """Run the request's adversary on ``model`` over ``train`` (budget: ``request.count`` or
    ``request.fraction``) and validate the IDs it names. ``forget_class`` sets the ``class``
    strategy's target."""
    adversary = _adversary(request, params)
    budget = request.count if request.count is not None else request.fraction
    ids = adversary.select(model, train, budget, generator=generator, reference=reference)
    return validate_forget_ids(ids, train, len(train.pool))


def request_ids(train: Samples, request: ForgetRequest, *, model: nn.Module, reference: Samples | None,
                generator: torch.Generator) -> Tensor:
    """The validated forget IDs of any scenario (adversarial ones read ``model`` and ``reference``)."""
    if is_adversarial(request.scenario):
        return adversarial_ids(train, request, model=model, reference=reference, generator=generator)
    return select_forget_ids(train, request, generator=generator)
