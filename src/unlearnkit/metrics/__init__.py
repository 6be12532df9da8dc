"""Audit metrics: UA/RA/TA, MIA figures, disparity to retrain, confidence intervals."""
from .audit import HEADLINE, audit, audit_with_outputs, avg_disparity, metric_attack_scores, per_sample_values
from .stats import mean_ci

__all__ = ["HEADLINE", "audit", "audit_with_outputs", "avg_disparity", "per_sample_values", "mean_ci", "metric_attack_scores"]
