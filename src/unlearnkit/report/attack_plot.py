"""Bar plot of the membership-inference attacks against every row of a run (needs matplotlib)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..metrics.stats import mean_ci
from .figures import pyplot, save_figure
from .table import ATTACKS, _ordered_rows, display_name, distinguish_variants


def plot_attacks(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Balanced accuracy of each attack (Song & Mittal's four, and SAMIA when audited) per row, mean
    over seeds with 95% CI whiskers; a dashed line per attack at the Retrain row's value (the
    target). Returns the PNG's path, or None without matplotlib or attack metrics."""
    plt = pyplot()
    if plt is None:
        return None
    ok = [r for r in distinguish_variants(list(records))
          if r.get("status") == "ok" and any(k.startswith("attack.") for k in r.get("metrics", {}))]
    if not ok:
        return None
    names = ATTACKS + (("samia",) if any("attack.samia.bacc" in r["metrics"] for r in ok) else ())
    rows = _ordered_rows(ok)
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        by_row[r["row"]].append(r)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 3.6))
    for i, a in enumerate(names):
        stats = [mean_ci([r["metrics"][f"attack.{a}.bacc"] for r in by_row[row] if f"attack.{a}.bacc" in r["metrics"]])
                 for row in rows]
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(rows))]
        bars = ax.bar(xs, [m for m, _ in stats], width, yerr=[0 if ci != ci else ci for _, ci in stats],
                      label=a, capsize=2)
        if "retrain" in by_row:
            ax.axhline(stats[rows.index("retrain")][0], color=bars.patches[0].get_facecolor(), ls="--", lw=0.8)
    ax.set_xticks(range(len(rows)), [display_name(r) for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("attack balanced accuracy (%)")
    ax.set_title("Membership attacks on D_f vs D_test (dashed: Retrain, the target)", fontsize=10)
    ax.legend(fontsize=7, ncol=len(names))
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
