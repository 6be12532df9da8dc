"""``typical``: the most prototypical samples of every class (lowest loss under the model)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from .base import class_quotas, losses_and_margins, register_adversary, resolve_budget, to_ids, top_per_class


@register_adversary("typical", knowledge="predictions")
@dataclass(frozen=True, kw_only=True)
class TypicalAdversary:
    """Per class, the candidates with the lowest cross-entropy under the model, in proportion to the
    class sizes (the same share of every class, like a random request, so the attack is not visible
    in the class balance). Knowledge: predictions (the softmax output on the candidates).

    Removing the samples the model finds easiest takes away the core of every class; what remains
    is the hard, atypical part, from which a model retrained or fine-tuned generalises worse.
    """

    keep_per_class: int = 1

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor:
        k = resolve_budget(budget, len(candidates))
        loss, _ = losses_and_margins(model, candidates)
        quotas = class_quotas(candidates.labels, k, keep_per_class=self.keep_per_class)
        return to_ids(candidates, top_per_class(-loss, candidates.labels, quotas))
