"""Records → Markdown tables, one renderer per record kind."""
from __future__ import annotations

from typing import Any, Iterable

from .compare import sparsity_report
from .kinds import record_kind
from .per_example import per_example_table
from .table import attacks_table, current_audit, experiment_report, metrics_table


def render(records: Iterable[dict[str, Any]]) -> str:
    """Every table of ``records`` (any mix of kinds): damage and healing tables per experiment, tuning
    tables per experiment and method, then the run table (current audit protocol) and, given dense
    and sparse runs of one workload, their comparison."""
    from .adversarial import damage_report, heal_report
    from .tune import tune_report

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    runs = []
    for r in records:
        kind = record_kind(r)
        if kind == "run":
            runs.append(r)
        else:
            groups.setdefault((kind, r.get("experiment", ""), r.get("method", "") if kind == "tune" else ""), []).append(r)
    render_kind = {"damage": damage_report, "heal": heal_report, "tune": tune_report}
    parts = ["\n".join(render_kind[kind](rs) for (kind, _, _), rs in groups.items())] if groups else []
    if runs:
        kept = current_audit(runs)
        parts += [experiment_report(kept)] + [t for t in [sparsity_report(kept), per_example_table(kept)] if t]
    return "\n".join(parts)


__all__ = ["attacks_table", "current_audit", "experiment_report", "metrics_table", "render", "sparsity_report"]
