"""Model registry: ``create_model(name, ...)``, ``list_models()``."""
from . import backbones, cnn, resnet  # noqa: F401  (registration; backbones only with torchvision)
from .base import UNAVAILABLE, Classifier, create_model, list_models, register_model, reinitialise

__all__ = ["UNAVAILABLE", "Classifier", "create_model", "list_models", "register_model", "reinitialise"]
