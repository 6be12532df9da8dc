"""Re-export: the training budget lives in :mod:`unlearnkit.budget` (data/ needs it, and must not import training/)."""
from ..budget import PRECISIONS, SCHEDULES, TrainConfig, train_identity

__all__ = ["PRECISIONS", "SCHEDULES", "TrainConfig", "train_identity"]
