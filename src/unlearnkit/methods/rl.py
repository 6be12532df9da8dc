"""RL: random labels on the forget set, trained together with the retain set (Golatkar et al. 2020;
the "RL" baseline of Jia et al. 2023 and Fan et al. 2024)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.splits import ForgetSplit
from ..training.loop import train
from ..utils.modules import fresh_copy
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import SelectGrid, register_method, share_budget


def random_other_labels(labels: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """A uniformly random label different from each true label."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels + shift) % num_classes


@register_method("rl")
@dataclass(frozen=True, kw_only=True)
class RandomLabels:
    """Relabel every sample of D_f with a random wrong class, then fine-tune on D_r ∪ relabelled D_f.

    ``epoch_share`` of the original epochs (default 0.2) over D_r ∪ D_f, at ``lr_share`` × the
    original lr (default 0.1), constant; the same budget as FT so the two are comparable.
    """

    weaker: ClassVar[str] = "a smaller lr_share or epoch_share"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("lr_share", (0.03, 0.1)), ("epoch_share", (0.1, 0.2)))  # what `run --select` tries (base.py)

    epoch_share: float = 0.2
    lr_share: float = 0.1

    def __post_init__(self) -> None:
        check(positive(self.epoch_share), f"rl.epoch_share must be > 0, got {self.epoch_share}")
        check(positive(self.lr_share), f"rl.lr_share must be > 0, got {self.lr_share}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        if split.num_classes < 2:
            raise ValueError("random-label unlearning needs at least two classes")
        new = fresh_copy(model)
        wrong = split.forget.relabel(random_other_labels(split.forget.labels, split.num_classes, generator))
        config = share_budget(self, split)
        with seeded(generator):
            train(new, split.retain.union(wrong), config, generator=generator, desc="rl")
        return new
