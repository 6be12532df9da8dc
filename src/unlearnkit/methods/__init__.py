"""Unlearning methods: one file each, all behind the Unlearner protocol and the method registry."""
from . import dau, dau_nobt, ff, ft, ga, iu, l1_sparse, neggrad_plus, retrain, rl, salun, scrub, sisa  # noqa: F401  (registration)
from .base import Unlearner, create_method, list_methods, method_params, register_method

__all__ = ["Unlearner", "create_method", "list_methods", "method_params", "register_method"]
