"""Experiments: configuration, per-seed setup, the one runner, records, the model cache and the recipes."""
from .cache import ModelCache
from .config import (AdversarialConfig, DataConfig, ModelConfig, RunConfig, config_from_dict, load, load_config,
                     to_dict)
from .records import RecordStore
from .recipes import run_damage, run_experiment, run_heal, run_tune
from .experiment import Experiment, load_experiment
from .setup import SeedSetup, prepare_seed

__all__ = ["AdversarialConfig", "DataConfig", "Experiment", "ModelCache", "ModelConfig", "RecordStore", "RunConfig",
           "SeedSetup", "config_from_dict", "load", "load_config", "load_experiment", "prepare_seed", "run_damage",
           "run_experiment", "run_heal", "run_tune", "to_dict"]
