"""``unlearnkit tune``: search a method's hyperparameters on the validation split, never the test set.

For every seed: the recipe's split and original model (``prepare_seed``), with the test set
*sealed* (any attempt to read it raises); the retrain oracle (cached by content, shared with
``unlearnkit run``) and its validation audit; then, for every point of the grid, unlearn from the
original, audit on the validation split (``validation_audit``: UA, MIA-Efficacy with D_v as the
non-members, RA, VA) and measure the Avg. Disparity to the oracle over those four. One JSON line per
(seed, point) goes to ``<out_dir>/tune/records.jsonl``; points already recorded are skipped.
The best point has the lowest mean disparity over the seeds.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from ..data.pool import Samples
from ..errors import ConfigError, TrainingError, UnlearnKitError
from ..methods.base import METHODS, create_method, method_params
from ..metrics.audit import VALIDATION_HEADLINE, avg_disparity, validation_audit
from ..report.table import describe, fmt, short
from ..version import code_version
from .config import RunConfig, _scalar, digest, to_dict
from .records import RecordStore
from .recipe import SeedSetup, check_finite_model, default_out_dir, load_experiment, prepare_seed

log = logging.getLogger("unlearnkit")


@dataclasses.dataclass(frozen=True)
class Grid:
    """The values to try for some hyperparameters of one method (their Cartesian product)."""

    method: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    def points(self) -> list[dict[str, Any]]:
        names = [name for name, _ in self.axes]
        return [dict(zip(names, values)) for values in itertools.product(*(v for _, v in self.axes))]


def parse_grid(method: str, items: Sequence[str]) -> tuple[Grid, list[str]]:
    """Split ``name=v1,v2,...`` items into a grid over ``method``'s hyperparameters and config overrides.

    A key that names a hyperparameter of ``method`` is a grid axis (values split at commas, each read
    as YAML: ``1e-8``, ``3``, ``true``); a dotted key (``train.epochs=5``) or a top-level config key
    is an ordinary override. Raises RegistryError (unknown method) or ConfigError (anything else).
    """
    fields = [f.name for f in dataclasses.fields(METHODS.get(method))]
    top_level = {f.name for f in dataclasses.fields(RunConfig)}
    axes: dict[str, tuple[Any, ...]] = {}
    overrides: list[str] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{item!r} must look like name=value1,value2,...")
        if key in fields:
            if key in axes:
                raise ConfigError(f"{method}.{key} is given twice")
            values = tuple(_scalar(v.strip()) for v in raw.split(","))
            if not raw.strip() or any(v == "" or v is None for v in values):
                raise ConfigError(f"{method}.{key}: empty value in {raw!r} (e.g. {key}=0.1,0.2)")
            if len(set(map(repr, values))) < len(values):
                raise ConfigError(f"{method}.{key} lists a value twice: {raw}")
            axes[key] = values
        elif "." in key or key in top_level:
            overrides.append(item)
        else:
            raise ConfigError(f"method {method!r} has no hyperparameter {key!r}; valid: {fields} "
                              "(config overrides are dotted, e.g. train.epochs=5)")
    if not axes:
        raise ConfigError(f"name at least one hyperparameter of {method!r} and the values to try, e.g. "
                          f"{fields[0] if fields else 'name'}=v1,v2; valid: {fields}")
    return Grid(method, tuple(axes.items())), overrides


class SealedSamples(Samples):
    """The test set during tuning: its size is known, its samples cannot be read."""

    def _refuse(self, *args: Any, **kwargs: Any):
        raise UnlearnKitError("tuning never reads the test set, but something tried to; tune on D_v "
                              "(validation_audit) and keep D_test for the final table")

    inputs = batches = relabel = take = union = _refuse
    labels = property(_refuse)


def sealed(setup: SeedSetup) -> SeedSetup:
    """``setup`` with its split's test set replaced by a :class:`SealedSamples` (no pool behind it)."""
    test = SealedSamples(None, setup.split.test.ids)  # type: ignore[arg-type]
    return dataclasses.replace(setup, split=dataclasses.replace(setup.split, test=test))


def tune_dir(config: RunConfig) -> Path:
    return (Path(config.out_dir) if config.out_dir else default_out_dir(config)) / "tune"


def run_tune(config: RunConfig, grid: Grid) -> list[dict[str, Any]]:
    """Run ``grid`` over ``config.seeds``; return the records of the grid (old and new).

    Every point is validated (``create_method``) before any model is touched. A point whose training
    diverges is recorded as failed and the others go on.
    """
    base_params = config.params.get(grid.method, {})
    points = grid.points()
    methods = [create_method(grid.method, **{**base_params, **p}) for p in points]
    store = RecordStore(tune_dir(config))
    experiment = load_experiment(config)
    key = lambda seed, m: digest({"tune": experiment.digest, "seed": seed, "method": m.name,  # noqa: E731
                                  "params": method_params(m)})
    recorded = store.keys()
    for seed in config.seeds:
        pending = [(p, m) for p, m in zip(points, methods) if key(seed, m) not in recorded]
        log.info("seed %d: %d of %d points to run", seed, len(pending), len(points))
        if not pending:
            continue
        setup = sealed(prepare_seed(experiment, seed))
        oracle, oracle_seconds, _ = setup.oracle()
        reference = validation_audit(oracle, setup.split)
        context = {"experiment": experiment.digest, "config": to_dict(config), "seed": seed,
                   "code_version": code_version(), "method": grid.method, "reference": reference,
                   "reference_seconds": oracle_seconds, "forget_ids_sha256": setup.forget_hash}
        for point, method in pending:
            log.info("seed %d: %s %s", seed, grid.method, point)
            rec = {"key": key(seed, method), **context, "point": point, "params": method_params(method),
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            try:
                model, seconds, _ = setup.run_method(method)
                check_finite_model(model, grid.method)
                metrics = validation_audit(model, setup.split)
                rec.update(status="ok", metrics=metrics, seconds=seconds,
                           disparity=avg_disparity(metrics, reference, keys=VALIDATION_HEADLINE))
            except TrainingError as e:
                log.error("seed %d: %s %s failed: %s", seed, grid.method, point, e)
                rec.update(status="failed", error=str(e), metrics={}, seconds=float("nan"), disparity=None)
            store.append(rec)
    # records of the same hyperparameters from an earlier grid count too: label them with this grid's point
    wanted = {key(seed, m): p for seed in config.seeds for p, m in zip(points, methods)}
    return [{**r, "point": wanted[r["key"]]} for r in store if r["key"] in wanted]


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def best_point(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[float]] | None:
    """The point with the lowest mean validation disparity among points that ran on every seed."""
    seeds = {r["seed"] for r in records}
    by_point: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_point[digest(r["point"])].append(r)
    scored = [(sum(d) / len(d), rs[0]["point"], d) for rs in by_point.values()
              if len(d := [r["disparity"] for r in rs if r["status"] == "ok"]) == len(seeds)]
    if not scored:
        return None
    _, point, values = min(scored, key=lambda t: t[0])
    return point, values


def tune_report(records: list[dict[str, Any]], grid: Grid) -> str:
    """The table (point → UA, MIA-Efficacy(val), RA, VA, disparity, seconds) and the best point."""
    if not records:
        return "no records"
    names = [name for name, _ in grid.axes]
    seeds = sorted({r["seed"] for r in records})
    head = [*names, *VALIDATION_HEADLINE, "Avg. Disparity (val)", "Time (s)", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    oracle = list({r["seed"]: r for r in records}.values())
    lines.append("| " + " | ".join(["Retrain (oracle)"] + [""] * (len(names) - 1)
                                   + [fmt([r["reference"][k] for r in oracle]) for k in VALIDATION_HEADLINE]
                                   + ["0.00", fmt([r["reference_seconds"] for r in oracle], 1), str(len(oracle))]) + " |")
    for point in grid.points():
        rs = [r for r in records if r["point"] == point]
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
