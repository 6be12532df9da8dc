"""Dense and sparse runs of one workload side by side (the layout of the DAU paper's sparse tables).

Records are grouped by workload (data, model, training budget, forget request); within a group
every sparsity level found is a *setting*. A group with two or more settings gets two tables:
Avg. Disparity and time per method and setting (DAU: "dense / 95% sparse, run time"), and the full
UA / MIA-Efficacy / RA / TA per method and setting. Mean ± 95% CI over seeds as in table.py.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable

from ..budget import train_identity
from ..metrics.audit import HEADLINE
from .table import _ordered_rows, describe, display_name, distinguish_variants, fmt

Setting = tuple[float, float | None]


def workload_key(record: dict[str, Any]) -> str:
    """What must match for two runs to share a table: data, model, training budget (and precision),
    forget request, and the kind of device (only when it is not the CPU)."""
    c = record["config"]
    data = {k: v for k, v in c["data"].items() if k != "data_dir"}
    device = str(c.get("device", "cpu")).split(":")[0]
    return json.dumps([data, c["model"], train_identity(c["train"]), c["forget"]] + ([device] if device != "cpu" else []),
                      sort_keys=True, default=str)


def setting_of(record: dict[str, Any]) -> Setting:
    c = record["config"]
    sparsity = float(c.get("sparsity") or 0.0)
    return sparsity, (c.get("sparsity_rewind") if sparsity else None)


def setting_label(setting: Setting, with_rewind: bool) -> str:
    sparsity, rewind = setting
    if not sparsity:
        return "dense"
    return f"{100 * sparsity:g}% sparse" + (f" (rewind {rewind:g})" if with_rewind else "")


def _cells(records: list[dict[str, Any]]) -> dict[str, str]:
    ok = [r for r in records if r.get("status") == "ok"]
    timed = [r for r in ok if r["method"] is not None]
    out = {k: fmt([r["metrics"][k] for r in ok]) for k in HEADLINE}
    out["disparity"] = fmt([r["avg_disparity"] for r in ok if r["avg_disparity"] is not None])
    out["seconds"] = fmt([r["seconds"] for r in timed], 1)
    out["seeds"] = str(len(ok)) + (f" ({len(records) - len(ok)} failed)" if len(ok) < len(records) else "")
    return out


def comparison_table(records: list[dict[str, Any]]) -> str:
    """The two tables for one workload's records (two or more settings), as Markdown."""
    by_setting: dict[Setting, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_setting[setting_of(r)].append(r)
    settings = sorted(by_setting)
    sparsities = [s for s, _ in settings]
    labels = [setting_label(s, sparsities.count(s[0]) > 1) for s in settings]
    cell: dict[tuple[str, Setting], dict[str, str]] = {}
    for s in settings:
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in by_setting[s]:
            rows[r["row"]].append(r)
        for label, rs in rows.items():
            cell[label, s] = _cells(rs)
    empty = {k: "—" for k in (*HEADLINE, "disparity", "seconds", "seeds")}
    order = _ordered_rows(records)

    head = [f"Avg. Disparity, {lab}" for lab in labels] + [f"Time (s), {lab}" for lab in labels]
    lines = ["| Method | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for label in order:
        cs = [cell.get((label, s), empty) for s in settings]
        lines.append(f"| {display_name(label)} | " + " | ".join([c["disparity"] for c in cs] + [c["seconds"] for c in cs])
                     + " |")
    full = [f"| Method | Setting | {' | '.join(HEADLINE)} | Avg. Disparity | Time (s) | seeds |",
            "|---|---|" + "---|" * (len(HEADLINE) + 3)]
    for label in order:
        for s, lab in zip(settings, labels):
            c = cell.get((label, s))
            if c is not None:
                full.append(f"| {display_name(label)} | {lab} | " + " | ".join(c[k] for k in HEADLINE)
                            + f" | {c['disparity']} | {c['seconds']} | {c['seeds']} |")
    seeds = {lab: sorted({r["seed"] for r in by_setting[s]}) for s, lab in zip(settings, labels)}
    note = ("Mean ± 95% CI (Student t) over seeds " + "; ".join(f"{lab} {v}" for lab, v in seeds.items())
            + ". Each setting is measured against its own retrain oracle (for a sparse setting: trained from "
            "scratch on D_r under the sparse model's mask); compare a method's disparity with the noise-floor row "
            "(Retrain, 2nd seed) of the same setting.\n")
    return "\n".join(lines) + "\n\n" + "\n".join(full) + "\n\n" + note


def sparsity_report(records: Iterable[dict[str, Any]]) -> str:
    """One dense-vs-sparse section per workload that has runs at two or more sparsity levels ("" if none)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[workload_key(r)].append(r)
    parts = []
    for rs in groups.values():
        if len({setting_of(r) for r in rs}) < 2:
            continue
        rs = distinguish_variants(rs)  # one row per hyperparameter setting, named alike in every column
        dense_like = {**rs[0], "config": {**rs[0]["config"], "sparsity": 0}}
        parts.append(f"### Dense vs sparse — {describe(dense_like)}\n\n{comparison_table(rs)}")
    return "\n".join(parts)
