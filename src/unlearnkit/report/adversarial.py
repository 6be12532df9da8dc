"""Damage and healing records → Markdown tables (mean ± 95% CI over seeds) and a TA-vs-budget plot."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from ..metrics.stats import mean_ci
from .figures import pyplot, save_figure
from .table import display_name, distinguish_variants, fmt, versions_note

GOLD = "Gold Standard (retrain)"


def _label(row: str) -> str:
    return {"original": "Original", "retrain": GOLD}.get(row, display_name(row))


def _budget(b: float) -> str:
    return f"{b * 100:g}%" if b < 1 else f"{int(b)}"


def _order(values: Iterable[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n > 1)}"


def _seed_counts(ok: list[dict[str, Any]], field: str, values: list[Any]) -> dict[Any, int]:
    """How many seeds the records of each value of ``field`` cover."""
    return {v: len({r["seed"] for r in ok if r[field] == v}) for v in values}


def _seed_labels(ok: list[dict[str, Any]], field: str, values: list[Any]) -> dict[Any, str]:
    """Column label per value of ``field``: the value itself, or, when the columns average different
    numbers of seeds, the value with its seed count ("class (3 seeds)")."""
    n = _seed_counts(ok, field, values)
    if len(set(n.values())) <= 1:
        return {v: str(v) for v in values}
    return {v: f"{v} ({_seeds(n[v])})" for v in values}


def _start_ta(r: dict[str, Any]) -> float:
    """TA before unlearning: SISA's own ensemble's (``ta_start``), else the original's."""
    return r.get("ta_start", r["ta_original"])


def _describe(r: dict[str, Any]) -> str:
    c = r["config"]
    model = c["model"]["name"] + "".join(f" {k}={v}" for k, v in c["model"]["options"].items())
    return (f"{c['data']['name']} · {model} · {r.get('n_train', '?')} training samples, reserve pool {c['reserve']} · "
            f"{c['train']['epochs']:g} epochs")


def _fmt_of(values: list[float], n: int) -> str:
    """``fmt``, saying how many seeds a cell averages when that is fewer than its column's ``n``."""
    return fmt(values) + (f" ({_seeds(len(values))})" if 0 < len(values) < n else "")


def _beyond_random(cell: dict[tuple, list[dict]], rows: list[str], strategies: list[str], b: float,
                   label: dict[str, str], n: dict[str, int]) -> list[str]:
    """Per row × strategy: TA after a random request − TA after the strategy's, paired by seed (the
    seeds that ran both): how much more the chosen request hurts than a random one of its size."""
    others = [s for s in strategies if s != "random"]
    if "random" not in strategies or not others:
        return []
    out = [f"\n#### Budget {_budget(b)}: hurt beyond random (TA after a random request − TA after the strategy's, "
           "paired by seed)\n\n| | " + " | ".join(label[s] for s in others) + " |\n|---|" + "---|" * len(others)]
    for row in rows:
        if row == "original":
            continue
        random_ta = {r["seed"]: r["metrics"]["TA"] for r in cell[(row, "random", b)]}
        out.append(f"| {_label(row)} | " + " | ".join(
            _fmt_of([random_ta[r["seed"]] - r["metrics"]["TA"] for r in cell[(row, s, b)] if r["seed"] in random_ta], n[s])
            for s in others) + " |")
    return out


def _uas(records: list[dict[str, Any]]) -> list[float]:
    """The UA of each record that has one (records from before UA was recorded have none)."""
    return [r["metrics"]["UA"] for r in records if "UA" in r["metrics"]]


def _forgotten(cell: dict[tuple, list[dict]], rows: list[str], strategies: list[str], b: float, head: str,
               n: dict[Any, int]) -> list[str]:
    """UA per row × strategy: a method that keeps the requested samples keeps the TA they give, so a
    negative excess damage can mean "did not unlearn"; UA beside the Gold Standard's tells which."""
    ua = {(row, s): _uas(cell[(row, s, b)]) for row in rows for s in strategies}
    if not any(ua.values()):
        return []  # records from before UA was recorded
    return [f"\n#### Budget {_budget(b)}: the requested samples forgotten (UA = 100 − their accuracy, %; "
            f"the Gold Standard's is the target)\n\n{head}"] + [
        f"| {_label(row)} | " + " | ".join(_fmt_of(ua[(row, s)], n[s]) if ua[(row, s)] else "—" for s in strategies)
        + " |" for row in rows]


def damage_report(records: list[dict[str, Any]], *, plot: Path | None = None) -> str:
    """Per budget: TA and UA per row × strategy, excess damage per method × strategy, the worst strategy;
    then TA against budget per row (the curves as tables) and the plot, if one was drawn."""
    ok = distinguish_variants([r for r in records if r.get("status") == "ok"])
    started = _order(r["row"] for r in ok if "ta_start" in r)  # rows (SISA) that start from their own original
    ok = [r for r in ok if r["row"] not in started or "ta_start" in r]  # not records from before ta_start existed
    if not ok:
        return "no damage records\n"
    seeds = sorted({r["seed"] for r in ok})
    strategies = _order(r["strategy"] for r in ok)
    budgets = sorted({r["budget"] for r in ok})
    rows = _order(r["row"] for r in sorted(ok, key=lambda r: {"original": 0, "retrain": 1}.get(r["row"], 2)))
    cell: dict[tuple, list[dict]] = defaultdict(list)
    for r in ok:
        cell[(r["row"], r["strategy"], r["budget"])].append(r)
    knowledge = {r["strategy"]: r.get("knowledge", "?") for r in ok}
    out = [f"### Adversarial deletion requests — {_describe(ok[0])}\n",
           "Strategies and what they need to know: " + ", ".join(f"`{s}` ({knowledge[s]})" for s in strategies) + ".\n"]
    label = _seed_labels(ok, "strategy", strategies)
    head = "| | " + " | ".join(label[s] for s in strategies) + " |\n|---|" + "---|" * len(strategies)
    for b in budgets:
        n = _seed_counts([r for r in ok if r["budget"] == b], "strategy", strategies)
        here = [row for row in rows if any(cell[(row, s, b)] for s in strategies)]  # rows run at this budget
        here_started = [row for row in started if row in here]
        out.append(f"#### Budget {_budget(b)}: test accuracy (TA, %)\n\n{head}")
        for row in here:
            out.append(f"| {_label(row)} | " + " | ".join(
                _fmt_of([r["metrics"]["TA"] for r in cell[(row, s, b)]], n[s]) for s in strategies) + " |")
        for row in here_started:
            out.append(f"| {_label(row)} before deletion | " + " | ".join(
                _fmt_of([r["ta_start"] for r in cell[(row, s, b)]], n[s]) for s in strategies) + " |")
        out.extend(_forgotten(cell, here, strategies, b, head, n))
        out.append(f"\n#### Budget {_budget(b)}: damage and excess damage (TA points lost)\n\n{head}")
        out.append("| damage of the request itself: Original − Gold Standard | " + " | ".join(
            _fmt_of([r["damage"] for r in cell[("retrain", s, b)]], n[s]) for s in strategies) + " |")
        for row in here:
            if row in ("original", "retrain"):
                continue
            out.append(f"| {_label(row)}: excess damage (Gold Standard − method) | " + " | ".join(
                _fmt_of([r["excess_damage"] for r in cell[(row, s, b)]], n[s]) for s in strategies) + " |")
        for row in here_started:
            out.append(f"| {_label(row)}: damage (its own original before deletion − after) | " + " | ".join(
                _fmt_of([r["damage"] for r in cell[(row, s, b)]], n[s]) for s in strategies) + " |")
        out.extend(_beyond_random(cell, here, strategies, b, label, n))
        mean_damage = {s: mean_ci([r["damage"] for row in rows if row != "original" for r in cell[(row, s, b)]])[0]
                       for s in strategies}
        ranked = sorted((s for s in strategies if mean_damage[s] == mean_damage[s]), key=lambda s: -mean_damage[s])
        if ranked:
            out.append(f"\nWorst strategy at {_budget(b)}: **{ranked[0]}** (mean damage over every row but the original: "
                       + ", ".join(f"{s} {mean_damage[s]:.2f}" for s in ranked) + ").\n")
    out.append("#### TA against budget (the curves, one table per row)\n")
    for row in rows:
        if row == "original":
            continue
        out.append(f"{_label(row)}\n\n| strategy | 0 | " + " | ".join(_budget(b) for b in budgets) + " |\n|---|" + "---|" * (len(budgets) + 1))
        for s in strategies:
            zero = fmt(list({r["seed"]: _start_ta(r) for b in budgets for r in cell[(row, s, b)]}.values()))
            out.append(f"| {s} | {zero} | " + " | ".join(fmt([r["metrics"]["TA"] for r in cell[(row, s, b)]]) for b in budgets) + " |")
        out.append("")
    out.append(f"Mean ± 95% CI (Student t) over seeds {seeds}. Damage = TA of the original − TA after; excess damage = "
               "TA of the Gold Standard (retrained without the requested data) − TA after unlearning: what the method "
               "loses beyond what the request itself costs; a negative one beside a UA far below the Gold Standard's is a "
               "method that kept the requested samples. Budgets are fractions of the training set."
               + (" " + ", ".join(_label(r) for r in started) + " unlearns from an ensemble of its own, trained on the same "
                  "data (its TA before deletion is in the TA table): its damage is measured from that ensemble, and its "
                  "excess damage includes what the ensemble costs against one model." if started else ""))
    if note := versions_note(ok, "row", _label):
        out.append(note)
    if plot is not None:
        out.append(f"\n![TA against budget]({plot.name})\n")
    elif pyplot() is None:
        out.append("\nPlot: matplotlib is not installed, so the curves are the tables above "
                   "(`pip install matplotlib` or `pip install -e .[plot]` draws damage.png).\n")
    return "\n".join(out)


def plot_damage(records: list[dict[str, Any]], path: Path) -> Path | None:
    """TA against budget, one panel per row (Gold Standard and methods), one line per strategy (mean
    over seeds; at budget 0 the original's TA, or SISA's own ensemble's). Returns the PNG's path, or
    None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    ok = distinguish_variants([r for r in records if r.get("status") == "ok" and r["row"] != "original"])
    if not ok:
        return None
    rows = _order(r["row"] for r in sorted(ok, key=lambda r: r["row"] != "retrain"))
    strategies = _order(r["strategy"] for r in ok)
    budgets = sorted({r["budget"] for r in ok})
    cols = min(4, len(rows))
    nrows = -(-len(rows) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.0 * nrows), squeeze=False, sharex=True)
    xs = [0.0] + [100 * b if b < 1 else b for b in budgets]
    for ax, row in zip(axes.flat, rows):
        ta0 = mean_ci([_start_ta(r) for r in ok if r["row"] == row])[0]
        for s in strategies:
            ys = [ta0] + [mean_ci([r["metrics"]["TA"] for r in ok if r["row"] == row and r["strategy"] == s
                                   and r["budget"] == b])[0] for b in budgets]
            run = [(x, y) for x, y in zip(xs, ys) if y == y]  # the budgets this strategy ran at
            ax.plot([x for x, _ in run], [y for _, y in run], marker="o", label=s)
        ax.set_title(_label(row), fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("budget (% of training set)" if budgets[-1] < 1 else "budget (samples)")
    for ax in axes[:, 0]:
        ax.set_ylabel("TA (%)")
    axes.flat[0].legend(fontsize=7)
    return save_figure(fig, path)


def heal_report(records: list[dict[str, Any]]) -> str:
    """Healed TA (and UA) per method × variant next to the Gold Standard and the unlearned model; the
    difference to the Gold Standard; healing time over retraining time; twin-index build time."""
    ok = distinguish_variants([r for r in records if r.get("status") == "ok"], "method")
    if not ok:
        return "no healing records\n"
    seeds = sorted({r["seed"] for r in ok})
    methods = _order(r["method"] for r in sorted(ok, key=lambda r: r["method"] != "retrain"))
    variants = _order(r["variant"] for r in ok if r["variant"] is not None)
    settings = {r["variant"]: r["variant_settings"] for r in ok if r["variant"] is not None}
    cell: dict[tuple, list[dict]] = defaultdict(list)
    for r in ok:
        cell[(r["method"], r["variant"])].append(r)
    first = ok[0]
    out = [f"### Healing after `{first['strategy']}` requests of {_budget(first['budget'])} ({first['n_forget']} samples) — "
           f"{_describe(first)}\n"]
    out.append("Variants: " + "; ".join(f"`{v}` = {_describe_variant(settings[v])}" for v in variants) + ".\n")
    label = _seed_labels(ok, "variant", [None, *variants])
    head = "| Method | Gold Standard | after unlearning | " + " | ".join(label[v] for v in variants) + " |\n|---|" + "---|" * (len(variants) + 2)
    out.append(f"#### Test accuracy (TA, %)\n\n{head}")
    for m in methods:
        gold = fmt([r["ta_gold"] for r in cell[(m, None)]])
        out.append(f"| {_label(m)} | {gold} | {fmt([r['metrics']['TA'] for r in cell[(m, None)]])} | "
                   + " | ".join(fmt([r["metrics"]["TA"] for r in cell[(m, v)]]) for v in variants) + " |")
    if _uas(ok):
        def ua(rs: list[dict[str, Any]]) -> str:
            values = _uas(rs)
            return fmt(values) if values else "—"
        out.append("\n#### The requested samples forgotten (UA = 100 − their accuracy, %; against the Gold Standard healed "
                   "the same way)\n\n| Method | after unlearning | "
                   + " | ".join(label[v] for v in variants) + " |\n|---|" + "---|" * (len(variants) + 1))
        for m in methods:
            out.append(f"| {_label(m)} | {ua(cell[(m, None)])} | " + " | ".join(ua(cell[(m, v)]) for v in variants) + " |")
    out.append("\n#### Healed TA − Gold Standard TA (points; the target is ≥ −0.5)\n\n| Method | after unlearning | "
               + " | ".join(label[v] for v in variants) + " |\n|---|" + "---|" * (len(variants) + 1))
    for m in methods:
        out.append(f"| {_label(m)} | {fmt([r['metrics']['TA'] - r['ta_gold'] for r in cell[(m, None)]])} | "
                   + " | ".join(fmt([r["vs_gold"] for r in cell[(m, v)]]) for v in variants) + " |")
    out.append("\n#### Cost\n\n| variant | healing time / retrain time | reserve or twin-index build (s) |\n|---|---|---|")
    for v in variants:
        rs = [r for m in methods for r in cell[(m, v)]]
        out.append(f"| {v} | {fmt([r['time_vs_retrain'] for r in rs if r.get('time_vs_retrain') is not None], 3)} | "
                   f"{fmt(list({r['seed']: r['index_seconds'] for r in rs if r.get('index_seconds') is not None}.values()), 1)} |")
    out.append(f"\nMean ± 95% CI (Student t) over seeds {seeds} (the time ratio over methods and seeds). The Gold Standard "
               "is retraining from scratch without the requested data; 'after unlearning' is the method's model before "
               "healing. An index is built once per seed and similarity, and shared by the variants that use it.\n")
    if note := versions_note(ok, "method", _label):
        out.append(note)
    return "\n".join(out)


def _describe_variant(s: dict[str, Any]) -> str:
    data = {"remaining": "D_r", "twins": f"D_r + twins ({s['similarity']})", "spares": f"D_r + spares ({s['similarity']})",
            "random": "D_r + random spares"}[s["data"]]
    return f"{data}, {'½ the original epochs' if s['epochs'] == 'half' else '1 epoch'}"
