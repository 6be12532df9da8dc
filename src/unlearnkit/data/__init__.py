"""Datasets as in-memory tensors with stable sample IDs; splits and forget scenarios."""
from ..utils.sampling import stratified_subset
from . import cifar, idx, imagefolder, npz, synthetic  # noqa: F401  (registration)
from .dataset import Dataset, list_datasets, load_dataset, register_dataset
from .pool import Augment, Pool, Samples
from .scenarios import (ForgetRequest, list_scenarios, read_ids_file, register_scenario, select_forget_ids,
                        validate_forget_ids)
from .splits import BaseSplit, ForgetSplit, base_split, forget_split

__all__ = ["Augment", "BaseSplit", "Dataset", "ForgetRequest", "ForgetSplit", "Pool", "Samples", "base_split",
           "forget_split", "list_datasets", "list_scenarios", "load_dataset", "read_ids_file", "register_dataset",
           "register_scenario", "select_forget_ids", "stratified_subset", "validate_forget_ids"]
