"""The per-example audit's table (U-LiRA, KLoM beside the population MIA-Efficacy) and its plot of
per-example score distributions per method (needs matplotlib; skipped cleanly without it)."""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .figures import pyplot, save_figure
from .table import _ordered_rows, display_name, distinguish_variants, fmt

log = logging.getLogger("unlearnkit")
FLOOR_ROW = "retrain"


def _label(row: str) -> str:
    base, sep, size = row.partition(" (N=")
    name = "Retrain: oracle vs oracle (floor)" if base == FLOOR_ROW else display_name(base)
    return name + sep + size


def _with_figures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with per-example figures; a row audited with several family sizes (a folder rerun
    with another N) gets one line per size, never an average across them."""
    ok = [r for r in distinguish_variants(list(records)) if r.get("status") == "ok" and r.get("per_example")]
    sizes: dict[str, set[int]] = defaultdict(set)
    for r in ok:
        sizes[r["row"]].add(int(r["per_example"].get("n_models", 0)))
    return [r if len(sizes[r["row"]]) == 1 else {**r, "row": f"{r['row']} (N={int(r['per_example']['n_models'])})"}
            for r in ok]


def per_example_table(records: list[dict[str, Any]]) -> str:
    """Markdown: one line per row with per-example figures, mean ± 95% CI over seeds ("" if none)."""
    ok = _with_figures(records)
    if not ok:
        return ""
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        by_row[r["row"]].append(r)
    get = lambda rs, k: [r["per_example"][k] for r in rs if k in r["per_example"]]  # noqa: E731
    lines = ["| Method | U-LiRA AUC | TPR @ 1% FPR (achieved) | TPR @ 0.1% FPR (achieved) | flagged | "
             "KLoM D_f mean / p90 / p99 | KLoM D_r mean | KLoM D_test mean | MIA-Efficacy | N | seeds |",
             "|---|" + "---|" * 10]
    for row in _ordered_rows(ok):
        rs = by_row[row]
        cells = [fmt(get(rs, "ulira.auc"), 1),
                 f"{fmt(get(rs, 'ulira.tpr_at_1'), 1)} ({fmt(get(rs, 'ulira.fpr_at_1'), 2)})",
                 f"{fmt(get(rs, 'ulira.tpr_at_01'), 1)} ({fmt(get(rs, 'ulira.fpr_at_01'), 2)})",
                 fmt(get(rs, "ulira.flagged"), 1),
                 " / ".join(fmt(get(rs, f"klom.forget.{s}"), 3) for s in ("mean", "p90", "p99")),
                 fmt(get(rs, "klom.retain.mean"), 3), fmt(get(rs, "klom.test.mean"), 3),
                 fmt([r["metrics"]["MIA-Efficacy"] for r in rs if "MIA-Efficacy" in r.get("metrics", {})], 2),
                 f"{int(rs[0]['per_example'].get('n_models', 0))}", f"{len(rs)}"]
        lines.append(f"| {_label(row)} | " + " | ".join(cells) + " |")
    return "Per-example audit (U-LiRA, KLoM)\n\n" + "\n".join(lines) + (
        "\n\nU-LiRA (Hayes et al. 2024): per D_f example, Gaussians of the logit-scaled confidence under the "
        "method's N unlearned models vs N retrain oracles, leave-one-pair-out; AUC 50 = indistinguishable from "
        "retraining; TPR at a fixed FPR with the FPR actually achieved in brackets; *flagged*: % of D_f examples the "
        "test flags at 1% FPR (about 1 under the null). KLoM (Georgiev et al. 2025): per-example KL divergence (nats) "
        "of margin histograms, unlearned vs oracle; compare it with the floor row, two disjoint halves of the "
        "oracles (KLoM is biased upwards for few models). MIA-Efficacy is the population SVC attack of the main "
        "table. U-LiRA's floor needs N >= 4.\n")


def _samples(samples_dir: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    path = samples_dir / f"{record['key']}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in ("pe_klom_forget", "pe_ulira_score") if k in f.files}
    except (OSError, ValueError) as e:  # a missing or damaged companion leaves the row out of the plot
        log.warning("per-example plot: cannot read %s (%s)", path, e)
        return {}


def plot_per_example(records: list[dict[str, Any]], samples_dir: Path, path: Path) -> Path | None:
    """Box plots of per-example KLoM on D_f and of per-example U-LiRA scores, per row, all seeds
    pooled. Returns the PNG's path, or None without matplotlib or per-example arrays."""
    plt = pyplot()
    ok = _with_figures(records)
    if plt is None or not ok:
        return None
    values: dict[str, dict[str, list[np.ndarray]]] = {"pe_klom_forget": defaultdict(list), "pe_ulira_score": defaultdict(list)}
    for r in ok:
        for k, v in _samples(samples_dir, r).items():
            values[k][r["row"]].append(v)
    rows = [row for row in _ordered_rows(ok) if any(row in v for v in values.values())]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.1 * len(rows) + 3), 3.8))
    titles = {"pe_klom_forget": "KLoM per D_f example (nats)", "pe_ulira_score": "U-LiRA score per D_f example"}
    for ax, (k, by_row) in zip(axes, values.items()):
        shown = [row for row in rows if by_row.get(row)]
        if shown:
            ax.boxplot([np.concatenate(by_row[row]) for row in shown], showfliers=False)
            ax.set_xticks(range(1, len(shown) + 1), [_label(row) for row in shown], rotation=30, ha="right", fontsize=7)
        ax.set_title(titles[k], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
