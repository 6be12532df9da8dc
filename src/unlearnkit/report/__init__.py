"""Records → Markdown tables."""
from .compare import sparsity_report
from .table import attacks_table, current_audit, experiment_report, metrics_table

__all__ = ["attacks_table", "current_audit", "experiment_report", "metrics_table", "sparsity_report"]
