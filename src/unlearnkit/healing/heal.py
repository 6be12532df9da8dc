"""Healing: fine-tune an unlearned model on the remaining data, optionally with replacements.

After "How to Protect Models against Adversarial Unlearning?" (arXiv 2507.10886; summary in
``papers/healing-adversarial-unlearning-summary.txt``): each deleted sample is replaced by a
similar real sample from a reserve, and the model is fine-tuned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ..data.pool import Samples
from ..data.splits import ForgetSplit
from ..errors import ConfigError
from ..training.loop import scaled, train
from ..utils.modules import fresh_copy
from ..utils.seeding import seeded
from ..utils.validation import check, check_field_types, positive
from .reserve import SpareReserve

HEAL_DATA = ("remaining", "replacements", "random")


@runtime_checkable
class Healer(Protocol):
    def heal(self, model: nn.Module, split: ForgetSplit, reserve: SpareReserve | None, *,
             generator: torch.Generator) -> nn.Module: ...


@dataclass(frozen=True, kw_only=True)
class Heal:
    """Fine-tune a copy of ``model`` on D_r (``data="remaining"``), on D_r plus the nearest spares
    the reserve hands out for D_f (``"replacements"``), or on D_r plus as many random spares
    (``"random"``, the control).

    Budget: ``epochs`` epochs when given (the paper's short setting is 1), else ``epoch_share`` of
    the original epochs (the paper's long setting is half). The learning rate starts at
    ``lr_share`` × the original rate and follows the original schedule (cosine on W1) over the
    healing run; momentum, weight decay and batch size are the original ones. The paper does not
    give its fine-tuning rate; ``lr_share`` defaults to 1.0 (a cosine restart at the original rate),
    chosen on the validation split of a reduced W1 for half-epoch healing (docs/results.md, "Where
    the defaults come from").

    ``heal`` does not modify ``model``; it records the hand-out in ``reserve`` (the reserve's
    ledger moves D_f to deleted and the spares to training).
    """

    data: str = "replacements"
    epochs: float | None = None
    epoch_share: float = 0.5
    lr_share: float = 1.0

    def __post_init__(self) -> None:
        check_field_types(self)
        check(self.data in HEAL_DATA, f"heal.data must be one of {HEAL_DATA}, got {self.data!r}")
        check(self.epochs is None or positive(self.epochs), f"heal.epochs must be > 0, got {self.epochs}")
        check(positive(self.epoch_share), f"heal.epoch_share must be > 0, got {self.epoch_share}")
        check(positive(self.lr_share), f"heal.lr_share must be > 0, got {self.lr_share}")

    def heal(self, model: nn.Module, split: ForgetSplit, reserve: SpareReserve | None = None, *,
             generator: torch.Generator) -> nn.Module:
        """Return the healed copy of ``model``.

        Raises:
            ConfigError: replacements asked for without a reserve.
            ForgetRequestError: D_f is not a valid deletion for the reserve's ledger (nothing changes).
            TrainingError: the loss diverged.
        """
        samples = split.retain
        if self.data != "remaining":
            if reserve is None:
                raise ConfigError(f"heal.data={self.data!r} needs a spare reserve or twin index")
            policy = "nearest" if self.data == "replacements" else "random"
            handed = reserve.request(split.forget.ids, policy=policy, generator=generator).handed_out
            samples = samples.union(Samples(samples.pool, handed))
        b = split.budget
        epochs = self.epochs if self.epochs is not None else b.epochs * self.epoch_share
        config = scaled(b, epochs=epochs, lr=b.lr * self.lr_share, warmup_epochs=0.0)
        new = fresh_copy(model)
        with seeded(generator):
            train(new, samples, config, generator=generator, desc="heal")
        return new
