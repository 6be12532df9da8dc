"""``boundary``: the samples closest to the model's decision boundary (smallest margin)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from .base import losses_and_margins, register_adversary, resolve_budget, to_ids, top_k_capped


@register_adversary("boundary", knowledge="predictions")
@dataclass(frozen=True, kw_only=True)
class BoundaryAdversary:
    """The candidates with the smallest absolute logit margin |z_y − max_{j≠y} z_j|, over all classes
    at once (they concentrate where classes are confused, e.g. shirts and T-shirts). Knowledge:
    predictions (the logits on the candidates).

    The absolute value takes the samples on either side of the boundary — the ones that, like
    support vectors, hold it in place — rather than the badly misclassified ones (large negative
    margins, often label noise), whose removal barely moves the boundary.
    """

    keep_per_class: int = 1

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor:
        k = resolve_budget(budget, len(candidates))
        _, margin = losses_and_margins(model, candidates)
        return to_ids(candidates, top_k_capped(-margin.abs(), candidates.labels, k,
                                               keep_per_class=self.keep_per_class))
