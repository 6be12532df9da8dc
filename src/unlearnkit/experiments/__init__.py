"""Experiments: configuration, the run recipe, records and the model cache."""
from .cache import ModelCache
from .config import DataConfig, ModelConfig, RunConfig, config_from_dict, load_config, to_dict
from .recipe import run_experiment
from .records import RecordStore

__all__ = ["DataConfig", "ModelCache", "ModelConfig", "RecordStore", "RunConfig", "config_from_dict", "load_config",
           "run_experiment", "to_dict"]
