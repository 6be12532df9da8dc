"""IU: influence unlearning (Koh & Liang 2017) with a WoodFisher inverse Hessian (Jia et al. 2023)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data.splits import ForgetSplit
from ..models.masks import apply_masks
from ..training.evaluate import sample_accuracy
from ..training.per_sample import mean_flat_grad, stack_flat_grads, woodfisher_solve
from ..utils.modules import fresh_copy
from ..utils.validation import check, positive
from .backoff import RetainBackoff
from .base import SelectGrid, acts_class_wise, for_split, register_method
from .ga import stopping_accuracy

log = logging.getLogger(__name__)


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
    Class-wise retry (in neither paper): a class-wise step that leaves D_f above GA's stopping
    accuracy (10% for a class D_r lacks) is redone at ``class_retry_alpha`` and
    ``class_retry_damping`` (the 2k set's selected point), and the step that leaves D_f's accuracy
    lower is kept: a small model's default step, halved by the guard, keeps a quarter of the class,
    while on W2's validation side the retry point forgets less than the default. A step that forgets
    is not retried (the model is bit for bit as before); the retry costs one more solve. With
    ``trace_as_absent`` (ours) the class-wise knobs and the retry also act on an ID request that
    leaves a class only a trace in D_r (ForgetSplit.trace_classes; the ``class`` damage strategy).
    Retain guard (:class:`~unlearnkit.methods.backoff.RetainBackoff`, in neither paper): a step
    that costs more than ``retain_guard`` points of D_r accuracy is halved until it does not.
    docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller alpha/class_alpha or retain_guard"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("alpha", (4.5, 9.0)), ("class_alpha", (3.0, 6.0)), ("class_damping", (0.3, 3.0)))  # what `run --select` tries (base.py)

    class_only: ClassVar[tuple[str, ...]] = ("class_damping", "class_retry_alpha", "class_retry_damping")  # left out of other requests' keys (base.method_params)
    # knobs at the values that reproduce records made before them (base.method_params): damping served
    # both kinds of request; no retry (its damping is keyed only when it differs from the default)
    added_later: ClassVar[dict[str, float]] = {"class_damping": 0.3, "class_retry_alpha": 0.0, "class_retry_damping": 3.0,
                                               "trace_as_absent": False}

    alpha: float = 9.0  # step length, × the Newton step (random requests)
    class_alpha: float = 3.0  # the same when the split is class-wise
    damping: float = 0.3  # added to the Fisher's diagonal (random requests)
    class_damping: float = 0.3  # the same when the split is class-wise (in the selection grid)
    class_retry_alpha: float = 6.0  # class-wise: the retry's step length, when the first step leaves D_f known (0 = no retry)
    class_retry_damping: float = 3.0  # class-wise: the retry's damping
    num_samples: int = 512  # D_r samples in the Fisher (their gradients are held as an N × P matrix)
    trace_as_absent: bool = True  # an ID request leaving a class only a trace in D_r runs as class-wise

    def __post_init__(self) -> None:
        check(positive(self.alpha), f"iu.alpha must be > 0, got {self.alpha}")
        check(positive(self.class_alpha), f"iu.class_alpha must be > 0, got {self.class_alpha}")
        check(positive(self.damping), f"iu.damping must be > 0, got {self.damping}")
        check(positive(self.class_damping), f"iu.class_damping must be > 0, got {self.class_damping}")
        check(self.class_retry_alpha == 0 or positive(self.class_retry_alpha),
              f"iu.class_retry_alpha must be >= 0 (0 turns the retry off), got {self.class_retry_alpha}")
        check(positive(self.class_retry_damping), f"iu.class_retry_damping must be > 0, got {self.class_retry_damping}")
        check(self.num_samples >= 1, f"iu.num_samples must be >= 1, got {self.num_samples}")
        self.check_backoff("iu")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        forget_grad = mean_flat_grad(new, split.forget)
        grads = stack_flat_grads(new, split.retain.capped(self.num_samples, generator=generator))
        step = self._solve(split, grads, forget_grad, for_split(self, "alpha", split), for_split(self, "damping", split))
        retry = (acts_class_wise(self, split) and self.class_retry_alpha > 0
                 and (self.class_alpha, self.class_damping) != (self.class_retry_alpha, self.class_retry_damping))
        if not retry:
            del grads  # an N × P matrix: not held through the back-off
        params = [p for p in new.parameters() if p.requires_grad]  # the order of trainable_names, as in ``step``
        start = [p.detach().clone() for p in params]
        self.back_off(new, split, lambda scale: self._move(new, params, start, step, scale),
                      generator=generator, what="iu: the step")
        if not retry:
            return new
        probe = split.forget.capped(self.guard_samples, generator=torch.Generator().manual_seed(generator.initial_seed() + 2))
        target = stopping_accuracy(new, split, trace_as_absent=self.trace_as_absent)
        first = sample_accuracy(new, probe) / 100
        if first <= target:
            return new
        kept = {k: v.detach().clone() for k, v in new.state_dict().items()}
        step = self._solve(split, grads, forget_grad, self.class_retry_alpha, self.class_retry_damping)
        del grads
        self.back_off(new, split, lambda scale: self._move(new, params, start, step, scale),
                      generator=generator, what="iu: the class-wise retry")
        second = sample_accuracy(new, probe) / 100
        log.info("iu: the step left %.1f%% of D_f known (stopping accuracy %.1f%%); the retry at alpha %g, damping %g "
                 "leaves %.1f%%: %s kept", 100 * first, 100 * target, self.class_retry_alpha, self.class_retry_damping,
                 100 * second, "the retry" if second < first else "the first step")
        if not second < first:
            new.load_state_dict(kept)
        return new

    @staticmethod
    def _solve(split: ForgetSplit, grads: torch.Tensor, forget_grad: torch.Tensor, alpha: float,
               damping: float) -> torch.Tensor:
        """The damped Newton step ``alpha · (n_f / n_r) · F⁻¹ ∇L(D_f)``, flat."""
        step = woodfisher_solve(grads, forget_grad, damping=damping)
        return step.mul_(alpha * len(split.forget) / len(split.retain))

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
