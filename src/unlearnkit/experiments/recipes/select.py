"""``unlearnkit run --select``: each method's strength chosen on the validation split, as a protocol.

For every method that declares a ``select_grid`` (methods/base.py; at most 4 points), the axes that
act on the request (class-wise or not) run through the tune recipe over the run's seeds — sealed
test set, validation audit, Avg. Disparity (val) to the oracle — and the point with the lowest mean
is the method's *selected* setting. Its records live in ``<out_dir>/tune`` and are reused by later
runs of the same workload. The run then adds a ``<method> (selected)`` row at that setting beside
the default row, and records what the choice cost: the seconds of the whole grid per seed, which the
report sets against the method's own time. A method whose every point failed on some seed gets no
selected row (logged).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ...backends import Backend
from ...methods.base import MAX_SELECT_POINTS, select_grid
from ...report.table import grid_text
from ...report.tune import Grid, best_point
from ..config import RunConfig
from ..experiment import Experiment, load_experiment

log = logging.getLogger("unlearnkit")

SELECTED = " (selected)"  # the row label's suffix


@dataclass(frozen=True)
class Selection:
    """The point chosen for one method and what choosing it cost."""

    method: str
    point: dict[str, Any]
    grid: dict[str, list[Any]]
    disparity_val: float  # mean Avg. Disparity (val) of the point over the seeds
    seconds: dict[int, float]  # seed → seconds of the whole grid on that seed

    def record(self, seed: int) -> dict[str, Any]:
        """What a selected row carries in its record."""
        return {"point": self.point, "grid": self.grid, "disparity_val": self.disparity_val,
                "seconds": self.seconds.get(seed)}


def grid_for(method: str, config: RunConfig) -> Grid | None:
    """The grid ``method`` tries on ``config``'s kind of request (class-wise or not), if any."""
    axes = select_grid(method, class_wise=config.forget.class_wise)
    if not axes:
        return None
    grid = Grid(method, axes)
    n = len(grid.points())
    if n > MAX_SELECT_POINTS:  # a method's declaration, checked where it is used
        raise ValueError(f"{method}.select_grid has {n} points; at most {MAX_SELECT_POINTS}")
    return grid


def dry_run_lines(config: RunConfig, methods: list[str]) -> list[str]:
    """What ``select`` would run, one line per method with a grid (for ``--dry-run``; runs nothing)."""
    lines = []
    for grid in filter(None, (grid_for(m, config) for m in methods)):
        lines.append(f"--select: {grid.method} tries {len(grid.points())} points ({grid_text(grid.axes)}) on the validation split "
                     f"of each of {len(config.seeds)} seed(s), then adds a row '{grid.method}{SELECTED}'")
    return lines


def select(config: RunConfig, methods: list[str], *, backend: Backend | None = None,
           experiment: Experiment | None = None) -> list[Selection]:
    """Run each method's grid on the validation split (or reuse its records) and choose its point.
    Every grid is checked before the first one runs."""
    from .tune import run_tune  # late: tune imports run (its output folder), run imports this module

    grids = [grid for grid in (grid_for(m, config) for m in methods) if grid is not None]
    experiment = experiment or load_experiment(config)
    out = []
    for grid in grids:
        method = grid.method
        records = run_tune(config, grid, backend=backend, experiment=experiment)
        best = best_point(records)
        if best is None:
            log.warning("%s: every point of its selection grid failed on some seed; no selected row", method)
            continue
        point, values = best
        seconds: dict[int, float] = {}
        for r in records:
            if r["status"] == "ok":
                seconds[r["seed"]] = seconds.get(r["seed"], 0.0) + r["seconds"]
        log.info("%s: selected %s (Avg. Disparity (val) %.2f)", method, point, sum(values) / len(values))
        out.append(Selection(method, point, {k: list(v) for k, v in grid.axes}, sum(values) / len(values), seconds))
    return out
