"""FT: fine-tuning on the retain set (Warnecke et al. 2021; Golatkar et al. 2020)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data.splits import ForgetSplit
from ..training.loop import train
from ..utils.modules import fresh_copy
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import SelectGrid, register_method, share_budget


@register_method("ft")
@dataclass(frozen=True, kw_only=True)
class FineTune:
    """Fine-tune on D_r only, relying on catastrophic forgetting of D_f.

    Jia et al. fine-tune 10 epochs at lr 0.01 after a 182-epoch lr-0.1 original, with a constant
    rate. Scaled here: ``epoch_share`` of the original epochs (default 0.2, i.e. 2 of 10 on W1 —
    the fraction the reference codebase used on Fashion-MNIST) at ``lr_share`` × the original lr
    (default 0.3; Jia et al.'s ratio 0.1 scored worse on the validation split of W1 and of W1 at
    2,000 samples, and level on W2), constant schedule. Class-wise the rate is ``class_lr_share`` (default 1,
    the original's): at 0.1 a model that fits its training set keeps most of the class (W1: UA 66;
    Jia et al.'s own FT row: 22.5), since D_r alone gives the class's logit almost no gradient.
    A memorising model (W2) needs the original's rate on random requests too: ``--select`` tries it.
    With ``trace_as_absent`` (ours) the class-wise rate also runs on an ID request that leaves a class
    only a trace in D_r (ForgetSplit.trace_classes; the ``class`` damage strategy).
    docs/results.md, "Class-wise learning rates" and "FT's random-request rate".
    """

    weaker: ClassVar[str] = "a smaller lr_share (class_lr_share class-wise) or epoch_share"  # the collapse guard's hint
    select_grid: ClassVar[SelectGrid] = (("lr_share", (0.3, 1.0)), ("class_lr_share", (0.3, 1.0)),
                                         ("epoch_share", (0.2, 0.5)))  # what `run --select` tries (base.py)

    class_only: ClassVar[tuple[str, ...]] = ("class_lr_share",)  # left out of other requests' keys (base.method_params)
    added_later: ClassVar[dict[str, bool]] = {"trace_as_absent": False}  # records before it keep their keys

    epoch_share: float = 0.2
    lr_share: float = 0.3
    class_lr_share: float = 1.0  # lr_share when the split is class-wise
    trace_as_absent: bool = True  # an ID request leaving a class only a trace in D_r runs as class-wise

    def __post_init__(self) -> None:
        check(positive(self.epoch_share), f"ft.epoch_share must be > 0, got {self.epoch_share}")
        check(positive(self.lr_share), f"ft.lr_share must be > 0, got {self.lr_share}")
        check(positive(self.class_lr_share), f"ft.class_lr_share must be > 0, got {self.class_lr_share}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        config = share_budget(self, split)
        with seeded(generator):
            train(new, split.retain, config, generator=generator, desc="ft")
        return new
