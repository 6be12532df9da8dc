"""The training budget: used for the original model, the retrain oracle, and scaled by methods.

A top-level module of its own (importing only errors) so that data/ (ForgetSplit carries the
budget) does not import training/; ``unlearnkit.training.TrainConfig`` re-exports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """SGD with momentum and weight decay under a learning-rate schedule.

    ``epochs`` may be fractional (a method training 0.5 epochs takes half an epoch of steps).
    ``schedule``: ``cosine`` (to zero over the run), ``step`` (×0.1 at 50% and 75% of the run, as
    Jia et al.'s 182-epoch recipe drops at 91 and 136) or ``constant``; ``warmup_epochs`` ramps the
    learning rate linearly from 0 first. ``augment``: random crop + flip (CIFAR-like images only).
    """

    epochs: float = 10
    lr: float = 0.05
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    augment: bool = False

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ConfigError(f"train.epochs must be > 0, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"train.batch_size must be a positive integer, got {self.batch_size}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum must lie in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"train.warmup_epochs must lie in [0, epochs), got {self.warmup_epochs}")
