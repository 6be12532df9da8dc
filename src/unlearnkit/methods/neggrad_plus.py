"""NegGrad+: descent on D_r combined with ascent on D_f (Kurmanji et al. 2023, "SCRUB" paper)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.splits import ForgetSplit
from ..training.loop import train
from ..utils.modules import fresh_copy, model_device
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import SelectGrid, cycle_batches, register_method, share_budget
from .ga import ascent_stop_accuracy, batch_looks_unseen


@register_method("neggrad+")
@dataclass(frozen=True, kw_only=True)
class NegGradPlus:
    """Minimise ``retain_weight · CE(D_r batch) − (1 − retain_weight) · CE(D_f batch)``.

    Every D_r batch is paired with the next D_f batch (D_f cycled, reshuffled every pass), as in
    Kurmanji et al.'s NegGrad+. The run takes ``epoch_share`` of the original epochs over D_r at
    ``lr_share`` × the original lr (``class_lr_share`` class-wise, as FT's), constant — the budget of
    FT plus the forget batches (``class_epoch_share`` class-wise).
    Class-wise, a D_f batch the model already gets no better than GA's stopping accuracy right (in
    eval mode) takes no ascent (``class_ascent_stop``, as SCRUB's; in neither paper): the ascent term
    is unbounded, and past that point it only pushes the model off D_r. With the stop, the class-wise
    run can be long enough to forget most of W2's memorised class (0.5 epochs) without collapsing
    W1's CNN, which fell to 11% without it (docs/results.md, "NegGrad+ class-wise: a bounded ascent").
    With ``trace_as_absent`` (ours) the class-wise budget and stop also act on an ID request that
    leaves a class only a trace in D_r (ForgetSplit.trace_classes; the ``class`` damage strategy).
    ``retain_weight`` is the value of Kurmanji et al.'s code; on W1's validation split smaller
    weights let the unbounded ascent term win class-wise. docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a retain_weight closer to 1, a smaller lr_share/class_lr_share or class_ascent_stop on"  # the collapse guard's hint
    select_grid: ClassVar[SelectGrid] = (("lr_share", (0.1, 0.3)), ("class_lr_share", (0.1, 0.3)),
                                         ("epoch_share", (0.2, 0.5)),
                                         ("class_epoch_share", (0.2, 0.5)))  # what `run --select` tries (base.py)

    class_only: ClassVar[tuple[str, ...]] = ("class_lr_share", "class_epoch_share", "class_ascent_stop")  # left out of other requests' keys (base.method_params)
    added_later: ClassVar[dict[str, Any]] = {"class_epoch_share": None, "class_ascent_stop": False,
                                             "trace_as_absent": False}  # records before them keep their keys

    retain_weight: float = 0.999  # weight of CE(D_r); the ascent term gets 1 − this
    epoch_share: float = 0.2  # epochs over D_r, × the original epochs
    lr_share: float = 0.1  # constant lr, × the original lr
    class_lr_share: float = 0.3  # the same when the split is class-wise
    class_epoch_share: float | None = 0.5  # epoch_share when the split is class-wise (None: epoch_share)
    class_ascent_stop: bool = True  # class-wise: no ascent on a D_f batch already at GA's stopping accuracy
    trace_as_absent: bool = True  # an ID request leaving a class only a trace in D_r runs as class-wise

    def __post_init__(self) -> None:
        check(0 < self.retain_weight < 1, f"neggrad+.retain_weight must lie in (0, 1), got {self.retain_weight}")
        check(positive(self.epoch_share), f"neggrad+.epoch_share must be > 0, got {self.epoch_share}")
        check(positive(self.lr_share), f"neggrad+.lr_share must be > 0, got {self.lr_share}")
        check(positive(self.class_lr_share), f"neggrad+.class_lr_share must be > 0, got {self.class_lr_share}")
        check(self.class_epoch_share is None or positive(self.class_epoch_share),
              f"neggrad+.class_epoch_share must be > 0 or null, got {self.class_epoch_share}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        b = split.budget
        forget_batches = cycle_batches(split.forget, b.batch_size, generator, model_device(new))
        w = self.retain_weight
        stop = ascent_stop_accuracy(model, split, self.class_ascent_stop, trace_as_absent=self.trace_as_absent)

        def loss_fn(m: nn.Module, x: Tensor, y: Tensor) -> Tensor:
            xf, yf = next(forget_batches)
            retain_loss = w * F.cross_entropy(m(x), y)  # D_r's forward first, as before (BatchNorm's running stats)
            if stop is not None and batch_looks_unseen(m, xf, yf, stop):
                return retain_loss  # this batch looks unseen already: more ascent only costs D_r
            return retain_loss - (1 - w) * F.cross_entropy(m(xf), yf)

        config = share_budget(self, split)
        with seeded(generator):
            train(new, split.retain, config, generator=generator, loss_fn=loss_fn, desc="neggrad+")
        return new
