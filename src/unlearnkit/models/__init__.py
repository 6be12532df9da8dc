"""Model registry: ``create_model(name, ...)``, ``list_models()``."""
from . import cnn, resnet  # noqa: F401  (registration)
from .base import Classifier, create_model, list_models, register_model, reinitialise

__all__ = ["Classifier", "create_model", "list_models", "register_model", "reinitialise"]
