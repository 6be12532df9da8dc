"""unlearnkit: remove chosen training data from a trained PyTorch classifier, audit it, keep it accurate.

>>> import unlearnkit as uk
>>> uk.list_methods()  # doctest: +ELLIPSIS
['ft', 'ga', ...]
"""
from .attacks import create_attack, list_attacks
from .data import ForgetRequest, ForgetSplit, list_datasets, load_dataset
from .errors import (CheckpointError, ConfigError, DataError, ForgetRequestError, RegistryError, TrainingError,
                     UnlearnKitError)
from .methods import Unlearner, create_method, list_methods, register_method
from .metrics import audit, avg_disparity
from .models import create_model, list_models, register_model
from .training import TrainConfig, train

__version__ = "0.1.0"
__all__ = ["CheckpointError", "ConfigError", "DataError", "ForgetRequest", "ForgetRequestError", "ForgetSplit",
           "RegistryError", "TrainConfig", "TrainingError", "UnlearnKitError", "Unlearner", "audit", "avg_disparity",
           "create_attack", "create_method", "create_model", "list_attacks", "list_datasets", "list_methods",
           "list_models", "load_dataset", "register_method", "register_model", "train"]
