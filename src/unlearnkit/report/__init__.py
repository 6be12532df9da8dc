"""Records → Markdown tables."""
from .table import attacks_table, experiment_report, metrics_table

__all__ = ["attacks_table", "experiment_report", "metrics_table"]
