"""Training: ``train()``, its budget ``TrainConfig``, evaluation and checkpoints."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .evaluate import accuracy, predict_features, predict_logits
from .loop import TrainStats, cross_entropy_loss, scaled, train

__all__ = ["TrainConfig", "TrainStats", "accuracy", "cross_entropy_loss", "load_checkpoint",
           "predict_features", "predict_logits", "save_checkpoint", "scaled", "train"]
