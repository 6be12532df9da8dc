"""The tuning table: each grid point's validation audit against the oracle's, and the best point."""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from ..metrics.audit import VALIDATION_HEADLINE
from .table import describe, fmt, short


@dataclasses.dataclass(frozen=True)
class Grid:
    """The values to try for some hyperparameters of one method (their Cartesian product)."""

    method: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    def points(self) -> list[dict[str, Any]]:
        names = [name for name, _ in self.axes]
        return [dict(zip(names, values)) for values in itertools.product(*(v for _, v in self.axes))]


def grid_of(records: list[dict[str, Any]]) -> Grid:
    """The grid that ``records`` (of one method) sample, axes and values in order of first appearance."""
    axes: dict[str, list[Any]] = {}
    for r in records:
        for name, value in r["point"].items():
            if value not in axes.setdefault(name, []):
                axes[name].append(value)
    return Grid(records[0]["method"], tuple((n, tuple(v)) for n, v in axes.items()))


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def point_records(records: list[dict[str, Any]], point: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of ``point``, compared by value (``9 == 9.0``), the last one per seed: the same
    hyperparameters recorded under two keys (a command line's ``alpha=9`` and a grid's ``9.0``) count
    each seed once, never as extra seeds."""
    per_seed: dict[int, dict[str, Any]] = {}
    for r in records:
        if r["point"] == point:
            per_seed[r["seed"]] = r
    return list(per_seed.values())


def best_point(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[float]] | None:
    """The point with the lowest mean validation disparity among points that ran on every seed."""
    seeds = {r["seed"] for r in records}
    points: list[dict[str, Any]] = []
    for r in records:
        if r["point"] not in points:
            points.append(r["point"])
    scored = [(sum(d) / len(d), point, d) for point in points
              if len(d := [r["disparity"] for r in point_records(records, point) if r["status"] == "ok"]) == len(seeds)]
    if not scored:
        return None
    _, point, values = min(scored, key=lambda t: t[0])
    return point, values


def tune_report(records: list[dict[str, Any]], grid: Grid | None = None) -> str:
    """The table (point → UA, MIA-Efficacy(val), RA, VA, disparity, seconds) and the best point;
    ``grid`` defaults to the one the records sample."""
    if not records:
        return "no records"
    grid = grid or grid_of(records)
    names = [name for name, _ in grid.axes]
    seeds = sorted({r["seed"] for r in records})
    head = [*names, *VALIDATION_HEADLINE, "Avg. Disparity (val)", "Time (s)", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    oracle = list({r["seed"]: r for r in records}.values())
    lines.append("| " + " | ".join(["Retrain (oracle)"] + [""] * (len(names) - 1)
                                   + [fmt([r["reference"][k] for r in oracle]) for k in VALIDATION_HEADLINE]
                                   + ["0.00", fmt([r["reference_seconds"] for r in oracle], 1), str(len(oracle))]) + " |")
    for point in grid.points():
        rs = point_records(records, point)
        ok = [r for r in rs if r["status"] == "ok"]
        failed = [r for r in rs if r["status"] != "ok"]
        cells = [_show(point[n]) for n in names] + [fmt([r["metrics"][k] for r in ok]) for k in VALIDATION_HEADLINE]
        cells += [fmt([r["disparity"] for r in ok]), fmt([r["seconds"] for r in ok], 1),
                  f"{len(ok)}" + (f" ({len(failed)} failed: {short(failed[0].get('error', ''), 60)})" if failed else "")]
        lines.append("| " + " | ".join(cells) + " |")
    best = best_point(records)
    verdict = ("best: " + ", ".join(f"{k}={_show(v)}" for k, v in best[0].items())
               + f" (Avg. Disparity (val) {fmt(best[1])})") if best else "best: none (every point failed on some seed)"
    return (f"### Tuning {grid.method} on the validation split — {describe(records[0])}\n\n" + "\n".join(lines)
            + f"\n\nMean ± 95% CI (Student t) over seeds {seeds}. Audited on D_r, D_f and D_v only (the test set "
            "is sealed): MIA-Efficacy(val) is the SVC attack with D_v as the non-members; Avg. Disparity (val) = "
            "mean |x − x_retrain| over UA, MIA-Efficacy(val), RA, VA.\n\n" + verdict + "\n")
