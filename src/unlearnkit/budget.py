"""The training budget: used for the original model, the retrain oracle, and scaled by methods.

A top-level module of its own (importing only errors) so that data/ (ForgetSplit carries the
budget) does not import training/; ``unlearnkit.training.TrainConfig`` re-exports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("fp32", "tf32", "bf16")
# Fields that change how fast training runs, not what it computes, at these values: an identity
# (record and cache keys) leaves them out at their defaults, so records made before they existed
# keep their keys. ``pool_on_device`` never changes results and is always left out.
SPEED_DEFAULTS = {"precision": "fp32", "channels_last": False, "compile": False}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """SGD with momentum and weight decay under a learning-rate schedule.

    ``epochs`` may be fractional (a method training 0.5 epochs takes half an epoch of steps).
    ``schedule``: ``cosine`` (to zero over the run), ``step`` (×0.1 at 50% and 75% of the run, as
    Jia et al.'s 182-epoch recipe drops at 91 and 136) or ``constant``; ``warmup_epochs`` ramps the
    learning rate linearly from 0 first. ``augment``: random crop + flip (CIFAR-like images only).

    How it runs (utils/devices.py): ``precision`` ``fp32`` (default), ``tf32`` (CUDA) or ``bf16``
    (autocast; CUDA or CPU); ``channels_last``: conv nets in NHWC memory layout (CUDA only: on a CPU
    it is left off, utils/devices.use_channels_last);
    ``compile``: the forward pass through ``torch.compile``; ``pool_on_device``: on a GPU, move the
    uint8 pool there once when it fits and index and augment batches there (false: keep it on the
    host and copy each batch). At the defaults training is bit-identical to before they existed.
    """

    epochs: float = 10
    lr: float = 0.05
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    augment: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    pool_on_device: bool = True

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
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")


def train_identity(train: dict) -> dict:
    """A TrainConfig's dict (``to_dict``) as it enters an identity: the speed fields left out at
    their defaults (so fp32 keys are those of records made before they existed), ``pool_on_device``
    always (it moves data, never changes a number)."""
    out = {k: v for k, v in train.items() if k != "pool_on_device"}
    for k, default in SPEED_DEFAULTS.items():
        if out.get(k, default) == default:
            out.pop(k, None)
    return out
