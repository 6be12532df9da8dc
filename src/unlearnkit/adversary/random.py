"""``random``: uniformly random deletion requests — the baseline every strategy is measured against."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from .base import register_adversary, resolve_budget, to_ids, top_k_capped


@register_adversary("random", knowledge="data")
@dataclass(frozen=True, kw_only=True)
class RandomAdversary:
    """``budget`` candidates drawn uniformly at random (not stratified), as an honest stream of
    deletion requests would be. Knowledge: data only (the candidate IDs). The model is not used."""

    keep_per_class: int = 1

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor:
        k = resolve_budget(budget, len(candidates))
        scores = torch.rand(len(candidates), generator=generator)
        return to_ids(candidates, top_k_capped(scores, candidates.labels, k, keep_per_class=self.keep_per_class))
