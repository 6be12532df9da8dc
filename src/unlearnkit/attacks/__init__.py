"""Membership-inference attacks: the SVC MIA-Efficacy attack and Song & Mittal's metric attacks."""
from . import metric_attacks, svc_mia  # noqa: F401  (registration)
from .base import MembershipAttack, create_attack, list_attacks, outputs, register_attack
from .metric_attacks import ThresholdAttack
from .svc_mia import SVCConfidenceAttack, mia_efficacy

__all__ = ["MembershipAttack", "SVCConfidenceAttack", "ThresholdAttack", "create_attack", "list_attacks",
           "mia_efficacy", "outputs", "register_attack"]
