"""IU: influence unlearning (Koh & Liang 2017) with a WoodFisher inverse Hessian (Jia et al. 2023)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data.splits import ForgetSplit
from ..models.masks import apply_masks
from ..training.per_sample import mean_flat_grad, stack_flat_grads, woodfisher_solve
from ..utils.modules import fresh_copy
from ..utils.validation import check, positive
from .backoff import RetainBackoff
from .base import SelectGrid, for_split, register_method


@register_method("iu")
@dataclass(frozen=True, kw_only=True)
class InfluenceUnlearning(RetainBackoff):
    """One Newton step that removes D_f's influence: ``θ ← θ + alpha · (n_f / n_r) · F⁻¹ ∇L(D_f)``.

    If θ minimises the loss on D_r ∪ D_f, one Newton step on D_r's loss gives this step with
    ``alpha = 1`` (Koh & Liang's influence function, the Hessian replaced by the empirical Fisher
    F); ``∇L(D_f)`` is the mean cross-entropy gradient over all of D_f, as in Jia et al.'s code. F
    is WoodFisher's damped ``damping·I + (1/N) Σ g_i g_iᵀ`` over ``num_samples`` random samples of
    D_r, inverted exactly (:func:`~unlearnkit.training.per_sample.woodfisher_solve`); Jia et al.'s
    recursion over mini-batch gradients is not the inverse of any Fisher, so we do not copy it.
    Chosen on W1's validation split: ``damping``, ``alpha`` and ``class_alpha`` (class-wise
    requests need a shorter step: a class's gradient points where D_r's Fisher barely constrains).
    ``class_damping`` is a class-wise knob of its own: no one value serves every workload (3 forgets
    the class of a 1,800-sample model that 0.3 cannot without costing D_r; 0.3 is better on W1 and
    W2), so ``--select`` tries both; docs/results.md, "IU's class-wise damping".
    Retain guard (:class:`~unlearnkit.methods.backoff.RetainBackoff`, in neither paper): a step
    that costs more than ``retain_guard`` points of D_r accuracy is halved until it does not.
    docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller alpha/class_alpha or retain_guard"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("alpha", (4.5, 9.0)), ("class_alpha", (3.0, 6.0)), ("class_damping", (0.3, 3.0)))  # what `run --select` tries (base.py)

    class_only: ClassVar[tuple[str, ...]] = ("class_damping",)  # left out of other requests' keys (base.method_params)
    added_later: ClassVar[dict[str, float]] = {"class_damping": 0.3}  # damping served both before (base.method_params)

    alpha: float = 9.0  # step length, × the Newton step (random requests)
    class_alpha: float = 3.0  # the same when the split is class-wise
    damping: float = 0.3  # added to the Fisher's diagonal (random requests)
    class_damping: float = 0.3  # the same when the split is class-wise (in the selection grid)
    num_samples: int = 512  # D_r samples in the Fisher (their gradients are held as an N × P matrix)

    def __post_init__(self) -> None:
        check(positive(self.alpha), f"iu.alpha must be > 0, got {self.alpha}")
        check(positive(self.class_alpha), f"iu.class_alpha must be > 0, got {self.class_alpha}")
        check(positive(self.damping), f"iu.damping must be > 0, got {self.damping}")
        check(positive(self.class_damping), f"iu.class_damping must be > 0, got {self.class_damping}")
        check(self.num_samples >= 1, f"iu.num_samples must be >= 1, got {self.num_samples}")
        self.check_backoff("iu")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        forget_grad = mean_flat_grad(new, split.forget)
        grads = stack_flat_grads(new, split.retain.capped(self.num_samples, generator=generator))
        step = woodfisher_solve(grads, forget_grad, damping=for_split(self, "damping", split))
        del grads
        alpha = for_split(self, "alpha", split)
        step *= alpha * len(split.forget) / len(split.retain)
        params = [p for p in new.parameters() if p.requires_grad]  # the order of trainable_names, as in ``step``
        start = [p.detach().clone() for p in params]
        self.back_off(new, split, lambda scale: self._move(new, params, start, step, scale),
                      generator=generator, what="iu: the step")
        return new

    @staticmethod
    def _move(model: nn.Module, params: list[torch.Tensor], start: list[torch.Tensor], step: torch.Tensor,
              scale: float) -> None:
        """Set the trainable weights to ``start + scale · step`` (then re-zero pruned weights)."""
        with torch.no_grad():
            offset = 0
            for p, p0 in zip(params, start):
                p.copy_(p0).add_(step[offset : offset + p.numel()].view_as(p), alpha=scale)
                offset += p.numel()
        apply_masks(model)
