"""Membership-inference attacks: the SVC MIA-Efficacy attack, Song & Mittal's metric attacks, SAMIA."""
from . import metric_attacks, samia, svc_mia  # noqa: F401  (registration)
from .base import MembershipAttack, create_attack, list_attacks, outputs, register_attack
from .metric_attacks import ThresholdAttack
from .samia import SamiaAttack, samia_audit
from .svc_mia import SVCConfidenceAttack, mia_efficacy

__all__ = ["MembershipAttack", "SVCConfidenceAttack", "SamiaAttack", "ThresholdAttack", "create_attack", "list_attacks",
           "mia_efficacy", "outputs", "register_attack", "samia_audit"]
