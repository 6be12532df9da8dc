"""FF: Fisher forgetting (Golatkar et al. 2020, "Eternal Sunshine of the Spotless Net")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.splits import ForgetSplit
from ..models.masks import apply_masks
from ..training.per_sample import fisher_diagonal
from ..utils.modules import fresh_copy
from ..utils.validation import check, positive
from .backoff import RetainBackoff
from .base import SelectGrid, register_method

HEAD_AND_BIAS_BOOST = 10.0  # their ×10 on the head's and on 1-D parameters' variance
CLASS_ROW_VARIANCE = 1e-4  # their variance of a forgotten class's head row (before the ×10)


def head_names(model: nn.Module) -> set[str]:
    """Parameter names of the classifier head: ``model.head`` (every unlearnkit model has one),
    otherwise the last ``nn.Linear``."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        head = model.get_submodule(linears[-1]) if linears else None
    ids = {id(p) for p in head.parameters()} if head is not None else set()
    return {name for name, p in model.named_parameters() if id(p) in ids}


def fisher_noise_std(model: nn.Module, fisher: dict[str, Tensor], alpha: float, *, cap: float = 1e3,
                     head_cap: float = 1e2) -> dict[str, Tensor]:
    """Per-weight noise standard deviation ``sqrt(alpha · clamp(1 / F))`` with Golatkar et al.'s
    shaping: 1/F capped at ``cap`` (``head_cap`` in the head), averaged over each weight tensor's
    input axis (one variance per output unit and kernel position), ×10 for the head and 1-D
    parameters."""
    head = head_names(model)
    out = {}
    for name, f in fisher.items():
        var = alpha * (1.0 / (f + 1e-8)).clamp(max=head_cap if name in head else cap)
        if var.dim() > 1:
            var = var.mean(dim=1, keepdim=True).expand_as(var)
        if name in head or var.dim() == 1:
            var = var * HEAD_AND_BIAS_BOOST
        out[name] = var.sqrt()
    return out


@register_method("ff")
@dataclass(frozen=True, kw_only=True)
class FisherForgetting(RetainBackoff):
    """Add Gaussian noise to the weights, with variance ``alpha`` × the inverse diagonal Fisher of D_r.

    Golatkar et al. scrub D_f by noise that leaves the directions D_r needs (high Fisher) nearly
    untouched and drowns the others. As in their code (and Jia et al.'s ``fisher_new``): the
    *expected* Fisher, ``mean_i Σ_c p(c|x_i)(∇ CE(x_i, c))²`` (per sample, not per mini-batch as
    Jia et al. approximate it), and the variance shaping of :func:`fisher_noise_std`, whose caps on
    1/F are their clamps. Class-wise (``class_rows``, on by default) also as in both codes: the
    forgotten class's head row and bias are redrawn around 0 with a small variance — Fisher noise
    alone cannot reach a whole class without reaching D_r (docs/results.md, "A small workload").
    With ``trace_as_absent`` (ours) so is the row of each class an ID request leaves only a trace of
    in D_r (:meth:`~unlearnkit.data.splits.ForgetSplit.trace_classes`; the ``class`` damage strategy).
    Chosen here: the Fisher on ``num_samples`` random samples of D_r (all of D_r costs far more for
    the same noise shape) and ``alpha`` on W1's validation split. Pruned weights get no noise.
    Retain guard (:class:`~unlearnkit.methods.backoff.RetainBackoff`, in neither paper): noise that
    costs more than ``retain_guard`` points of D_r accuracy has its variance halved until it does not
    (the same draw, scaled; a forgotten class's head row is not scaled) — at W2's memorising ResNet the
    W1 alpha took retained accuracy from 90 to 72–76 (docs/results.md, "W2 class-wise at the 2026-12-06 defaults").
    docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller alpha or retain_guard"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("alpha", (1e-7, 3e-7, 1e-6, 3e-6)),)  # what `run --select` tries (base.py)

    alpha: float = 3e-7  # noise variance per unit of inverse Fisher
    num_samples: int = 500  # D_r samples the Fisher is estimated on
    variance_cap: float = 1e3  # clamp on 1/F outside the head
    head_variance_cap: float = 1e2  # clamp on 1/F in the classifier head
    class_rows: bool = True  # class-wise: the forgotten class's head row and bias redrawn around 0
    trace_as_absent: bool = True  # class_rows acts on each class D_r keeps only a trace of, too
    added_later: ClassVar[dict[str, bool]] = {"trace_as_absent": False}  # records before it keep their keys

    def __post_init__(self) -> None:
        check(positive(self.alpha), f"ff.alpha must be > 0, got {self.alpha}")
        check(self.num_samples >= 1, f"ff.num_samples must be >= 1, got {self.num_samples}")
        check(positive(self.variance_cap), f"ff.variance_cap must be > 0, got {self.variance_cap}")
        check(positive(self.head_variance_cap), f"ff.head_variance_cap must be > 0, got {self.head_variance_cap}")
        self.check_backoff("ff")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        fisher = fisher_diagonal(new, split.retain.capped(self.num_samples, generator=generator))
        std = fisher_noise_std(new, fisher, self.alpha, cap=self.variance_cap, head_cap=self.head_variance_cap)
        params = dict(new.named_parameters())
        start = {name: p.detach().clone() for name, p in params.items()}
        gone = self.classes_to_redraw(split)
        heads = head_names(new) if gone else set()
        class_rows = {name for name in heads if params[name].shape[0] == split.num_classes}
        noise = {}
        for name, p in params.items():  # one draw, in the order the unguarded code drew it
            if name in std:
                if name in class_rows:
                    std[name] = std[name].clone()
                    std[name][gone] = (CLASS_ROW_VARIANCE * HEAD_AND_BIAS_BOOST) ** 0.5
                noise[name] = std[name] * torch.randn(p.shape, generator=generator).to(p.device)

        def apply(scale: float) -> None:  # variance × scale, so the noise × sqrt(scale)
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(start[name])
                    if name in noise:
                        p.add_(noise[name], alpha=scale**0.5)
                    if name in class_rows:  # a forgotten class's row: redrawn around 0, never scaled
                        p[gone] = noise[name][gone] if name in noise else 0.0
            apply_masks(new)

        self.back_off(new, split, apply, generator=generator, what="ff: the noise")
        return new

    def classes_to_redraw(self, split: ForgetSplit) -> list[int]:
        """The classes whose head rows ``class_rows`` redraws on ``split`` (none when it is off)."""
        return split.forgotten_classes(self.trace_as_absent) if self.class_rows else []
