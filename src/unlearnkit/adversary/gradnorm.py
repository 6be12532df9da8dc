"""``gradnorm``: the samples with the largest per-sample gradient norm (Marchant et al. 2022)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from ..training.per_sample import per_sample_grad_norms
from ..utils.validation import check
from .base import register_adversary, resolve_budget, to_ids, top_k_capped


@register_adversary("gradnorm", knowledge="weights")
@dataclass(frozen=True, kw_only=True)
class GradNormAdversary:
    """The candidates whose loss gradient with respect to all weights has the largest L2 norm, over
    all classes at once. Knowledge: weights (white-box gradients).

    Marchant et al. (2022) rank by the gradient norm (or the influence norm ‖H⁻¹∇ℓ‖) because
    those are the samples whose removal costs approximate unlearning the largest update. The
    Hessian is left out here (H = I): on the models of this package a per-sample inverse-Hessian
    product is far costlier than the ranking is worth. Gradients are computed in batches of
    ``batch_size`` with ``torch.func`` (training/per_sample.py).
    """

    batch_size: int = 128
    keep_per_class: int = 1

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, f"gradnorm.batch_size must be >= 1, got {self.batch_size}")

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor:
        k = resolve_budget(budget, len(candidates))
        norms = per_sample_grad_norms(model, candidates, batch_size=self.batch_size)
        return to_ids(candidates, top_k_capped(norms, candidates.labels, k, keep_per_class=self.keep_per_class))
