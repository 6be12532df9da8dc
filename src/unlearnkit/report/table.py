"""Records → tables in the layout of the papers (mean ± 95% CI over seeds), as Markdown."""
from __future__ import annotations

import json
import logging
import textwrap
from collections import defaultdict
from typing import Any, Callable, Iterable

from ..metrics.audit import HEADLINE, audit_version
from ..metrics.stats import mean_ci

log = logging.getLogger("unlearnkit")

DISPLAY = {"original": "Original (no unlearning)", "retrain": "Retrain",
           "retrain (2nd seed)": "Retrain, 2nd seed (noise floor)", "neggrad+": "NegGrad+",
           "dau-nobt": "DAU (no BT)", "salun": "SalUn", "scrub": "SCRUB"}
ATTACKS = ("correctness", "confidence", "entropy", "m_entropy")


SELECTED = " (selected)"  # recipes/select.py's row suffix (report/ does not import experiments/)


def display_name(label: str) -> str:
    if label.endswith(SELECTED):
        return display_name(label[:-len(SELECTED)]) + SELECTED
    return DISPLAY.get(label, label.upper() if len(label) <= 4 else label)


def grid_text(axes: Iterable[tuple[str, Iterable[Any]]]) -> str:
    """A selection grid as ``k ∈ {a, b}; …`` (floats in %g), for the table's notes and ``--dry-run``."""
    return "; ".join(f"{k} ∈ {{{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vs)}}}"
                     for k, vs in axes)


def selection_notes(records: list[dict[str, Any]]) -> str:
    """One line per selected row: the point chosen, the grid, and what choosing cost against the
    method's own time (the grid's seconds / the selected row's seconds, mean over seeds)."""
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("selection") and r.get("status") == "ok":
            by_row[r["row"]].append(r)
    lines = []
    for label in _ordered_rows([r for rs in by_row.values() for r in rs]):
        rs = by_row[label]
        sel = rs[0]["selection"]
        point = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sel["point"].items())
        grid = grid_text(sel["grid"].items())
        ratios = [r["selection"]["seconds"] / r["seconds"] for r in rs
                  if r["selection"].get("seconds") is not None and r["seconds"] > 0]
        lines.append(f"- {display_name(label)}: {point}, chosen from {grid} on the validation split "
                     f"(Avg. Disparity (val) {sel['disparity_val']:.2f}); choosing cost {fmt(ratios, 1)}× "
                     "the method's own time")
    return ("\nSelected rows (`--select`; the test set is never read to choose):\n\n" + "\n".join(lines) + "\n") if lines else ""


def fmt(values: list[float], digits: int = 2) -> str:
    if not values:
        return "—"
    m, ci = mean_ci(values)
    if m != m:
        return "—"
    return f"{m:.{digits}f}" if ci != ci else f"{m:.{digits}f} ± {ci:.{digits}f}"


def _ordered_rows(records: list[dict[str, Any]], field: str = "row") -> list[str]:
    first = {"original": 0, "retrain": 1, "retrain (2nd seed)": 2}
    seen: dict[str, int] = {}
    for r in records:
        seen.setdefault(r[field], len(seen))
    return sorted(seen, key=lambda label: (first.get(label, 3), seen[label]))


def describe(record: dict[str, Any]) -> str:
    c = record["config"]
    f = c["forget"]
    scenario = {"random": f"random {f['count'] if f['count'] else str(round(100 * f['fraction'], 2)) + '%'}",
                "class": f"class {f['forget_class']}", "ids": f"ids from {f['ids_file']}"}.get(f["scenario"], f["scenario"])
    model = c["model"]["name"] + "".join(f" {k}={v}" for k, v in c["model"]["options"].items())
    subsets = [f"{c['data'][k]} {what} samples" for k, what in (("train_subset", "training"), ("test_subset", "test"))
               if c["data"].get(k)]
    data = c["data"]["name"] + (f" ({', '.join(subsets)})" if subsets else "")
    extra = f" · sparsity {c['sparsity']}" if c.get("sparsity") else ""
    extra += "".join(f" · {v}" for v, plain in ((str(c.get("device", "cpu")), "cpu"),
                                                 (c["train"].get("precision", "fp32"), "fp32")) if v != plain)
    return f"{data} · {model} · {scenario}{extra} · {c['train']['epochs']:g} epochs"


def short(message: str, width: int = 120) -> str:
    """``message`` on one line, cut at a word boundary with an ellipsis if longer than ``width``."""
    out = textwrap.shorten(message, width, placeholder=" …")
    return out if out.strip(" …") else message[:width - 2] + " …"  # one word longer than width


def metrics_table(records: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in records})
    lines = [f"| Method | {' | '.join(HEADLINE)} | Avg. Disparity | Time (s) | Time / retrain | seeds |",
             "|---|" + "---|" * (len(HEADLINE) + 4)]
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_row[r["row"]].append(r)
    for label in _ordered_rows(records):
        rs = by_row[label]
        ok = [r for r in rs if r.get("status") == "ok"]
        failed = [r for r in rs if r.get("status") != "ok"]
        cells = [fmt([r["metrics"][k] for r in ok]) for k in HEADLINE]
        cells.append(fmt([r["avg_disparity"] for r in ok if r["avg_disparity"] is not None]))
        timed = [r for r in ok if r["method"] is not None]
        cells.append(fmt([r["seconds"] for r in timed], 1))
        cells.append(fmt([r["time_vs_retrain"] for r in timed if r["time_vs_retrain"] is not None], 3))
        cells.append(f"{len(ok)}" + (f" ({len(failed)} failed: {short(failed[0].get('error', ''))})" if failed else ""))
        lines.append(f"| {display_name(label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nMean ± 95% CI (Student t) over seeds {seeds}. UA = 100 − acc(D_f); " \
        "MIA-Efficacy = share of D_f the SVC confidence attack calls non-member; RA/TA = retain/test accuracy; " \
        "Avg. Disparity = mean |x − x_retrain| over the four, per seed. The noise-floor row is a second retrain " \
        "(another training seed) measured against the first: disparities below it are within training noise.\n" \
        + versions_note(records) + selection_notes(records)


def versions_note(records: list[dict[str, Any]], field: str = "row",
                  name: Callable[[str], str] = display_name) -> str:
    """A line naming which rows ran at which commit, when one table's rows ran at more than one
    (a folder added to after the code changed); nothing when they all ran at one. ``field`` holds a
    record's row (``method`` in healing records), ``name`` prints it."""
    commits: dict[str, set[str]] = defaultdict(set)
    for r in records:
        commits[r[field]].add(_commit(r.get("code_version")))
    rows: dict[str, list[str]] = defaultdict(list)
    for label in _ordered_rows(records, field):
        rows[", ".join(sorted(commits[label]))].append(name(label))
    if len(rows) < 2:
        return ""
    parts = [f"`{v}`: {', '.join(labels)}" for v, labels in rows.items()]
    return "\nRows ran at different code versions — " + "; ".join(parts) + ".\n"


def _commit(version: str | None) -> str:
    """``0.1.0+g47a72df14f14.dirty`` → ``47a72df.dirty``; an unknown version as ``unknown``."""
    if not version:
        return "unknown"
    local = version.partition("+g")[2]
    if not local:
        return version
    sha, _, dirty = local.partition(".")
    return sha[:7] + (f".{dirty}" if dirty else "")


def attacks_table(records: list[dict[str, Any]]) -> str:
    ok = [r for r in records if r.get("status") == "ok" and any(k.startswith("attack.") for k in r["metrics"])]
    if not ok:
        return ""
    names = ATTACKS + (("samia",) if any("attack.samia.bacc" in r["metrics"] for r in ok) else ())
    lines = ["| Method | " + " | ".join(f"{a} bacc / AUC" for a in names) + " |", "|---|" + "---|" * len(names)]
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        by_row[r["row"]].append(r)
    values = lambda rs, key: [r["metrics"][key] for r in rs if key in r["metrics"]]  # noqa: E731
    for label in _ordered_rows(ok):
        rs = by_row[label]
        cells = [f"{fmt(values(rs, f'attack.{a}.bacc'), 1)} / {fmt(values(rs, f'attack.{a}.auc'), 1)}" for a in names]
        lines.append(f"| {display_name(label)} | " + " | ".join(cells) + " |")
    samia = " samia is the transformer attack DAU trains against (Yuan & Zhang 2022), fitted the same way." \
        if "samia" in names else ""
    return "\n".join(lines) + "\n\nSong & Mittal metric attacks with per-class thresholds fitted on (D_r, half of D_test), " \
        "evaluated on D_f (members) vs the other half of D_test: balanced accuracy and AUC in %. The target is " \
        f"the Retrain row, not 50.{samia}\n"


def distinguish_variants(records: list[dict[str, Any]], field: str = "row") -> list[dict[str, Any]]:
    """Give each hyperparameter setting of a row its own label in ``field`` (the row name; the
    method name in healing records), e.g. ``ga (lr_share=0.0001)``.

    A folder may hold records of one method under several settings (a rerun after a default
    changed); averaging them together would mix two different methods in one row.
    """
    own = [_setting(r) for r in records]  # once per record
    variants: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r, setting in zip(records, own):
        variants[r[field]][json.dumps(setting, sort_keys=True)] = setting
    differing = {}  # row -> the keys its settings differ in, for rows with more than one setting
    for row, by_json in variants.items():
        settings = list(by_json.values())
        if len(settings) > 1:
            differing[row] = _differing_keys(settings)
    return [{**r, field: f"{r[field]} ({', '.join(f'{k}={setting.get(k)}' for k in differing[r[field]])})"}
            if r[field] in differing else r for r, setting in zip(records, own)]


def _differing_keys(settings: list[dict[str, Any]]) -> list[str]:
    """The keys that tell ``settings`` (distinct) apart, for a label: those whose values differ among
    the settings that have them. A key only some have (a ``class_only`` knob an older ID-request
    record left out, base.method_params) is named only where it differs among those, so a label
    reads ``k=None`` only when it must; every differing key when that does not tell them apart."""
    keys = {k for p in settings for k in p}

    def differ(k: str, among: list[dict[str, Any]]) -> bool:
        return len({json.dumps(p.get(k), sort_keys=True) for p in among}) > 1
    named = sorted(k for k in keys if differ(k, [p for p in settings if k in p]))
    if len({json.dumps([p.get(k) for k in named], sort_keys=True) for p in settings}) == len(settings):
        return named
    return sorted(k for k in keys if differ(k, settings))


def _setting(record: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters that make a row what it is: a selected row's chosen point is left out,
    since choosing it per workload is the row's protocol (its notes print the point)."""
    from ..methods.base import params_as_run  # a field a record leaves out is labelled at the value it ran at

    chosen = (record.get("selection") or {}).get("point", {})
    return {k: v for k, v in params_as_run(record.get("method"), record.get("params", {})).items() if k not in chosen}


def current_audit(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Within each experiment, drop the records of an older audit protocol when it has newer ones
    (a folder partly rerun after the audit changed), so that no table mixes two ways of measuring.
    Records of an older version that measures the same thing on this data are kept
    (:func:`~unlearnkit.metrics.audit.audit_version`)."""
    records = list(records)
    n_test = {r["experiment"]: r["n_test"] for r in records if "n_test" in r}  # |D_test| per experiment
    versions = [audit_version(r, n_test.get(r["experiment"])) for r in records]
    newest: dict[str, int] = {}
    for r, v in zip(records, versions):
        newest[r["experiment"]] = max(newest.get(r["experiment"], 0), v)
    kept = [r for r, v in zip(records, versions) if v == newest[r["experiment"]]]
    if len(kept) < len(records):
        log.warning("%d record(s) of an older audit protocol not shown: their experiment has newer ones "
                    "(rerun `unlearnkit run` to measure them again)", len(records) - len(kept))
    return kept


def experiment_report(records: Iterable[dict[str, Any]]) -> str:
    """One section per experiment found in ``records``."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in distinguish_variants(list(records)):
        groups[r["experiment"]].append(r)
    parts = []
    for rs in groups.values():
        parts.append(f"### {describe(rs[0])}\n\n{metrics_table(rs)}")
        attacks = attacks_table(rs)
        if attacks:
            parts.append(f"Membership-inference robustness\n\n{attacks}")
    return "\n".join(parts)
