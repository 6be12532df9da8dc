"""GA: gradient ascent on the forget set (Graves et al. 2021; Thudi et al. 2022)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.splits import ForgetSplit
from ..training.loop import scaled, train
from ..utils.modules import fresh_copy
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import register_method


def negative_cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return -F.cross_entropy(model(x), y)


@register_method("ga")
@dataclass(frozen=True, kw_only=True)
class GradientAscent:
    """Maximise the cross-entropy on D_f by SGD on its negative.

    Jia et al. run 5 epochs over D_f at lr 1e-4 after an lr-0.1 original (class-wise; random
    forgetting was grid-searched). Here ``epochs`` counts passes over D_f and the rate is
    ``lr_share`` × the original lr, constant. GA has no term that keeps D_r accurate and its loss
    is unbounded, so it walks a knife edge between doing nothing and diverging. The defaults were
    chosen on W1's validation split against the retrain oracle: the closest class-wise setting
    tried that did not diverge; on random requests no setting lay between "no change" and
    collapse. docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller lr_share or fewer epochs"  # how to weaken it (the collapse guard's hint)

    epochs: float = 2.0  # passes over D_f
    lr_share: float = 1e-3  # lr, × the original lr

    def __post_init__(self) -> None:
        check(positive(self.epochs), f"ga.epochs must be > 0, got {self.epochs}")
        check(positive(self.lr_share), f"ga.lr_share must be > 0, got {self.lr_share}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        config = scaled(split.budget, epochs=self.epochs, lr=split.budget.lr * self.lr_share,
                        schedule="constant", warmup_epochs=0.0)
        with seeded(generator):
            train(new, split.forget, config, generator=generator, loss_fn=negative_cross_entropy, desc="ga")
        return new
