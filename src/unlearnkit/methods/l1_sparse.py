"""l1-sparse: fine-tuning with a decaying l1 penalty (Jia et al. 2023, "Model Sparsity Can Simplify
Machine Unlearning", the "l1-sparse MU" of §4)."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.splits import ForgetSplit
from ..training.loop import train
from ..utils.modules import fresh_copy
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import SelectGrid, for_split, register_method, share_budget


def l1_weight(gamma: float, step: int, total: int) -> float:
    """The penalty weight at ``step`` (0-based) of ``total``: ``gamma`` at the first step, decaying
    linearly towards 0 at the end of the run."""
    return gamma * (1.0 - step / total)


def l1_norm(model: nn.Module) -> Tensor:
    """‖θ‖₁ over every parameter of ``model`` (weights, biases, norm layers)."""
    return sum(p.abs().sum() for p in model.parameters())


@register_method("l1-sparse")
@dataclass(frozen=True, kw_only=True)
class L1Sparse:
    """Fine-tune on D_r minimising ``CE + γ_t · ‖θ‖₁``, with γ_t decaying linearly over the run.

    Jia et al. add the l1 penalty to fine-tuning so that unlearning is pushed towards a sparse model,
    which they show forgets better. As in their code (``FT_l1``) the penalty covers every parameter
    (weights, biases, normalisation layers); their weight falls once per epoch, γ·(1 − e/E), ours at
    every step, γ·(1 − t/T), so fractional budgets decay smoothly too. The budget is
    ``epoch_share`` of the original epochs at ``lr_share`` × the original lr (``class_epoch_share``
    and ``class_lr_share`` class-wise: a longer, gentler run, the one point that forgets a class
    without collapsing on W2's ResNet as well as on W1), constant as in their code. With
    ``trace_as_absent`` (ours) the class-wise budget and ``class_gamma`` also run on an ID request that
    leaves a class only a trace in D_r (ForgetSplit.trace_classes; the ``class`` damage strategy). ``gamma`` (random requests) and ``class_gamma``
    (class-wise splits) were chosen on W1's validation split; γ = 0 is plain FT. Pruned weights stay
    at zero (train() holds the masks).
    docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller gamma/class_gamma or lr_share/class_lr_share"  # the collapse guard's hint
    select_grid: ClassVar[SelectGrid] = (("lr_share", (0.1, 0.3)), ("class_lr_share", (0.1, 0.3)),
                                         ("epoch_share", (0.15, 0.5)), ("class_epoch_share", (0.15, 0.5)))
    # what `run --select` tries (base.py): 4 points for either kind of request

    class_only: ClassVar[tuple[str, ...]] = ("class_lr_share", "class_epoch_share")  # left out of other requests' keys
    added_later: ClassVar[dict[str, object]] = {"class_epoch_share": None, "trace_as_absent": False}  # records before them keep their keys

    gamma: float = 1e-3  # l1 weight at the first step (random requests)
    class_gamma: float = 2e-3  # the same when the split is class-wise
    epoch_share: float = 0.15  # epochs over D_r, × the original epochs
    lr_share: float = 0.1  # constant lr, × the original lr
    class_lr_share: float = 0.1  # the same when the split is class-wise
    class_epoch_share: float | None = 0.5  # epoch_share when the split is class-wise (None: epoch_share)
    trace_as_absent: bool = True  # an ID request leaving a class only a trace in D_r runs as class-wise

    def __post_init__(self) -> None:
        check(self.gamma >= 0 and math.isfinite(self.gamma), f"l1-sparse.gamma must be >= 0, got {self.gamma}")
        check(self.class_gamma >= 0 and math.isfinite(self.class_gamma),
              f"l1-sparse.class_gamma must be >= 0, got {self.class_gamma}")
        check(positive(self.epoch_share), f"l1-sparse.epoch_share must be > 0, got {self.epoch_share}")
        check(positive(self.lr_share), f"l1-sparse.lr_share must be > 0, got {self.lr_share}")
        check(positive(self.class_lr_share), f"l1-sparse.class_lr_share must be > 0, got {self.class_lr_share}")
        check(self.class_epoch_share is None or positive(self.class_epoch_share),
              f"l1-sparse.class_epoch_share must be > 0 or null, got {self.class_epoch_share}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        config = share_budget(self, split)
        total = max(1, math.ceil(config.epochs * math.ceil(len(split.retain) / config.batch_size)))  # as train()
        steps = itertools.count()
        gamma = for_split(self, "gamma", split)

        def loss_fn(m: nn.Module, x: Tensor, y: Tensor) -> Tensor:
            gamma_t = l1_weight(gamma, next(steps), total)
            loss = F.cross_entropy(m(x), y)
            return loss + gamma_t * l1_norm(m) if gamma_t > 0 else loss

        with seeded(generator):
            train(new, split.retain, config, generator=generator, loss_fn=loss_fn, desc="l1-sparse")
        return new
