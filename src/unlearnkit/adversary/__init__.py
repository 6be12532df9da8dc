"""Malicious deletion requests: strategies that pick the training IDs whose removal hurts most.

One strategy per file, all behind the DeletionAdversary protocol and the adversary registry;
``adversarial:<strategy>`` forget scenarios run them on the original model (scenario.py).
"""
from . import boundary, concentrated, coverage, gradnorm, influence, random, typical  # noqa: F401  (registration)
from .base import (DeletionAdversary, adversary_params, create_adversary, list_adversaries, register_adversary,
                   resolve_budget)
from .scenario import ADVERSARIAL_PREFIX, adversarial_ids, check_scenario, is_adversarial, request_ids

__all__ = ["ADVERSARIAL_PREFIX", "DeletionAdversary", "adversarial_ids", "adversary_params", "check_scenario",
           "create_adversary", "is_adversarial", "list_adversaries", "register_adversary", "request_ids",
           "resolve_budget"]
