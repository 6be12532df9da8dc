"""Experiments: configuration, the run recipe, records and the model cache."""
from .cache import ModelCache
from .config import DataConfig, ModelConfig, RunConfig, config_from_dict, load_config, to_dict
from .recipe import Experiment, SeedSetup, load_experiment, prepare_seed, run_experiment
from .records import RecordStore

__all__ = ["DataConfig", "Experiment", "ModelCache", "ModelConfig", "RecordStore", "RunConfig", "SeedSetup",
           "config_from_dict", "load_config", "load_experiment", "prepare_seed", "run_experiment", "to_dict"]
