"""Re-export: the training budget lives in :mod:`unlearnkit.budget` (data/ needs it, and must not import training/)."""
from ..budget import SCHEDULES, TrainConfig

__all__ = ["SCHEDULES", "TrainConfig"]
