"""Audit metrics: UA/RA/TA, MIA figures, disparity to retrain, confidence intervals."""
from .audit import HEADLINE, audit, avg_disparity, metric_attack_scores
from .stats import mean_ci

__all__ = ["HEADLINE", "audit", "avg_disparity", "mean_ci", "metric_attack_scores"]
