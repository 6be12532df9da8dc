"""IU: influence unlearning (Koh & Liang 2017) with a WoodFisher inverse Hessian (Jia et al. 2023)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data.splits import ForgetSplit
from ..models.masks import apply_masks
from ..training.evaluate import accuracy, predict_logits
from ..training.per_sample import mean_flat_grad, stack_flat_grads, woodfisher_solve
from ..utils.modules import fresh_copy
from ..utils.validation import check, positive
from .base import SelectGrid, for_split, register_method

log = logging.getLogger(__name__)


@register_method("iu")
@dataclass(frozen=True, kw_only=True)
class InfluenceUnlearning:
    """One Newton step that removes D_f's influence: ``θ ← θ + alpha · (n_f / n_r) · F⁻¹ ∇L(D_f)``.

    If θ minimises the loss on D_r ∪ D_f, one Newton step on D_r's loss gives this step with
    ``alpha = 1`` (Koh & Liang's influence function, the Hessian replaced by the empirical Fisher
    F); ``∇L(D_f)`` is the mean cross-entropy gradient over all of D_f, as in Jia et al.'s code. F
    is WoodFisher's damped ``damping·I + (1/N) Σ g_i g_iᵀ`` over ``num_samples`` random samples of
    D_r, inverted exactly (:func:`~unlearnkit.training.per_sample.woodfisher_solve`); Jia et al.'s
    recursion over mini-batch gradients is not the inverse of any Fisher, so we do not copy it.
    Chosen on W1's validation split: ``damping``, ``alpha`` and ``class_alpha`` (class-wise
    requests need a shorter step: a class's gradient points where D_r's Fisher barely constrains).
    Retain guard (in neither paper): while the step costs more than ``retain_guard`` points of
    accuracy on ``guard_samples`` D_r samples it is halved, at most ``guard_halvings`` times; a step
    that passes at full length is the unguarded model. docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller alpha/class_alpha or retain_guard"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("alpha", (4.5, 9.0)), ("class_alpha", (1.5, 3.0)))  # what `run --select` tries (base.py)

    alpha: float = 9.0  # step length, × the Newton step (random requests)
    class_alpha: float = 3.0  # the same when the split is class-wise
    damping: float = 0.3  # added to the Fisher's diagonal
    num_samples: int = 512  # D_r samples in the Fisher (their gradients are held as an N × P matrix)
    retain_guard: float = 5.0  # largest D_r accuracy drop allowed, in points; 0 turns the guard off
    guard_samples: int = 1000  # D_r samples the drop is measured on
    guard_halvings: int = 8  # most halvings; if none passes, the shortest step is kept, with a warning

    def __post_init__(self) -> None:
        check(positive(self.alpha), f"iu.alpha must be > 0, got {self.alpha}")
        check(positive(self.class_alpha), f"iu.class_alpha must be > 0, got {self.class_alpha}")
        check(positive(self.damping), f"iu.damping must be > 0, got {self.damping}")
        check(self.num_samples >= 1, f"iu.num_samples must be >= 1, got {self.num_samples}")
        check(self.retain_guard == 0 or positive(self.retain_guard),
              f"iu.retain_guard must be >= 0 (0 turns the guard off), got {self.retain_guard}")
        check(self.guard_samples >= 1, f"iu.guard_samples must be >= 1, got {self.guard_samples}")
        check(self.guard_halvings >= 0, f"iu.guard_halvings must be >= 0, got {self.guard_halvings}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        forget_grad = mean_flat_grad(new, split.forget)
        grads = stack_flat_grads(new, split.retain.capped(self.num_samples, generator=generator))
        step = woodfisher_solve(grads, forget_grad, damping=self.damping)
        del grads
        alpha = for_split(self, "alpha", split)
        step *= alpha * len(split.forget) / len(split.retain)
        params = [p for p in new.parameters() if p.requires_grad]  # the order of trainable_names, as in ``step``
        start = [p.detach().clone() for p in params]
        if not self.retain_guard:
            self._move(new, params, start, step, 1.0)
            return new
        probe = split.retain.capped(self.guard_samples, generator=generator)
        before = accuracy(predict_logits(new, probe), probe.labels)
        for scale in (0.5**k for k in range(self.guard_halvings + 1)):
            self._move(new, params, start, step, scale)
            drop = before - accuracy(predict_logits(new, probe), probe.labels)
            if drop <= self.retain_guard:
                break
        else:
            log.warning("iu: the step still costs %.1f points of D_r accuracy at %g of its length "
                        "(retain_guard %.1f); kept the shortest step", drop, scale, self.retain_guard)
        if scale < 1:
            log.info("iu: retain guard shortened the step to %g of its length (D_r probe accuracy %.2f → %.2f)",
                     scale, before, before - drop)
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
