"""Audit metrics: UA/RA/TA, MIA figures, disparity to retrain, confidence intervals."""
from .audit import (HEADLINE, VALIDATION_HEADLINE, audit, audit_with_outputs, avg_disparity, metric_attack_scores,
                    per_sample_values, validation_audit)
from .stats import mean_ci

__all__ = ["HEADLINE", "VALIDATION_HEADLINE", "audit", "audit_with_outputs", "avg_disparity", "mean_ci",
           "metric_attack_scores", "per_sample_values", "validation_audit"]
