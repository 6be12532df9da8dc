"""``influence``: the samples whose removal should raise the validation loss most (first order)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from ..errors import ConfigError
from ..training.per_sample import iter_flat_grads, mean_flat_grad
from ..utils.validation import check
from .base import register_adversary, resolve_budget, to_ids, top_k_capped


@register_adversary("influence", knowledge="weights")
@dataclass(frozen=True, kw_only=True)
class InfluenceAdversary:
    """Rank candidates by the dot product of their loss gradient g_i with the gradient g_v of the mean
    loss on ``reference`` (held-out data; the recipes pass the validation set D_v) and request the
    largest. Knowledge: weights (white-box gradients) and held-out data.

    Removing sample i from n changes the weights by about +H⁻¹g_i/n (Koh & Liang 2017), hence the
    held-out loss by about g_vᵀH⁻¹g_i/n: the samples most aligned with g_v are those whose removal
    raises it most. We take H = I (the first-order, TracIn-like score) and the plain dot product, not
    the cosine, since a large gradient moves the weights further.
    """

    batch_size: int = 128
    keep_per_class: int = 1

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, f"influence.batch_size must be >= 1, got {self.batch_size}")

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor:
        if reference is None or len(reference) == 0:
            raise ConfigError("the influence adversary needs reference data (held-out samples, e.g. the validation set)")
        k = resolve_budget(budget, len(candidates))
        g_val = mean_flat_grad(model, reference)
        scores = torch.cat([(g @ g_val).cpu() for g in iter_flat_grads(model, candidates, batch_size=self.batch_size)])
        return to_ids(candidates, top_k_capped(scores, candidates.labels, k, keep_per_class=self.keep_per_class))
