"""``unlearnkit tune``: search a method's hyperparameters on the validation split, never the test set.

For every seed: the run recipe's split and original, with the test set *sealed* (any attempt to read
it raises); the retrain oracle (cached, shared with ``run``) and its validation audit; then for every
grid point: unlearn, audit on the validation split (UA, MIA-Efficacy with D_v as the non-members, RA,
VA) and measure the Avg. Disparity to the oracle over those four. One record per (seed, point) in
``<out_dir>/tune/records.jsonl``; points already recorded are skipped. The best point has the
lowest mean disparity over the seeds (report/tune.py).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ...backends import Backend
from ...data.pool import Samples
from ...errors import ConfigError, UnlearnKitError
from ...methods.base import METHODS, create_method, knob_acts, method_params
from ...metrics.audit import VALIDATION_HEADLINE, avg_disparity, validation_audit
from ...report.tune import Grid
from ...version import code_version
from ..config import RunConfig, digest, scalar, to_dict
from ..records import RecordStore
from ..runner import Job, Recipe, run_jobs
from ..experiment import Experiment, check_finite_model, load_experiment, memo
from ..setup import SeedSetup, prepare_seed
from .run import default_out_dir

log = logging.getLogger("unlearnkit")


def parse_grid(method: str, items: Sequence[str]) -> tuple[Grid, list[str]]:
    """Split ``name=v1,v2,...`` items into a grid over ``method``'s hyperparameters and config overrides.

    A key naming a hyperparameter of ``method`` is a grid axis (values split at commas, each read as
    YAML); a dotted key (``train.epochs=5``) or a top-level config key is an ordinary override.
    Raises RegistryError (unknown method) or ConfigError (anything else).
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
            values = tuple(scalar(v.strip()) for v in raw.split(","))
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


@dataclass(frozen=True, eq=False)
class Context:
    experiment: Experiment
    grid: Grid


def seed_reference(ctx: Context, seed: int) -> tuple[SeedSetup, dict[str, float], float]:
    """The sealed setup, the oracle's validation audit and its seconds, once per process."""
    def build():
        setup = sealed(prepare_seed(ctx.experiment, seed))
        oracle, seconds, _ = setup.oracle()
        return setup, validation_audit(oracle, setup.split), seconds
    return memo(ctx.experiment, ("tune", seed), build)


def describe(ctx: Context, job: Job) -> dict[str, Any]:
    setup, reference, seconds = seed_reference(ctx, job.group)
    point, method = job.spec
    return {"experiment": ctx.experiment.digest, "config": to_dict(ctx.experiment.config), "seed": job.group,
            "code_version": code_version(), "method": ctx.grid.method, "reference": reference,
            "reference_seconds": seconds, "forget_ids_sha256": setup.forget_hash, "point": point,
            "params": method_params(method, ctx.experiment.config.forget.class_wise)}


def execute(ctx: Context, job: Job, record: dict[str, Any]):
    setup, reference, _ = seed_reference(ctx, job.group)
    point, method = job.spec
    log.info("seed %d: %s %s", job.group, ctx.grid.method, point)
    run = setup.run_method(method)
    check_finite_model(run.model, ctx.grid.method)
    metrics = validation_audit(run.model, setup.split)  # refuses non-finite outputs
    record["retained_drop"] = setup.check_collapse(method, run, ctx.experiment.config.guard)
    record.update(status="ok", metrics=metrics, seconds=run.seconds,
                  disparity=avg_disparity(metrics, reference, keys=VALIDATION_HEADLINE))
    return record, None


def prepare(ctx: Context, seed: int) -> None:
    seed_reference(ctx, seed)


RECIPE = Recipe("tune", prepare=prepare, describe=describe,
                execute=execute, failed=(("metrics", {}), ("seconds", float("nan")), ("disparity", None)))


def run_tune(config: RunConfig, grid: Grid, *, backend: Backend | None = None,
             experiment: Experiment | None = None) -> list[dict[str, Any]]:
    """Run ``grid`` over ``config.seeds``; return the grid's records (old and new). Every point is
    validated before any model is touched; a point whose training diverges is a failed record.
    ``experiment``: ``config``'s, when the caller has it loaded (``run --select`` tunes every method
    on one, so the data is read and each seed prepared once)."""
    for name, _ in grid.axes:
        if not knob_acts(grid.method, name, config.forget.class_wise):
            other = name.removeprefix("class_") if name.startswith("class_") else f"class_{name}"
            kind = "class-wise requests" if config.forget.class_wise else "random or explicit requests"
            raise ConfigError(f"{grid.method}.{name} does not act on {kind}: every point would give the same "
                              f"model; tune {other} instead")
    base_params = config.params.get(grid.method, {})
    points = grid.points()
    methods = [create_method(grid.method, **{**base_params, **p}) for p in points]
    store = RecordStore(tune_dir(config), complete=True)
    experiment = experiment or load_experiment(config)
    key = lambda seed, m: digest({"tune": experiment.digest, "seed": seed, "method": m.name,  # noqa: E731
                                  "params": method_params(m, config.forget.class_wise)})
    jobs = [Job(key(seed, m), seed, (p, m)) for seed in config.seeds for p, m in zip(points, methods)]
    recorded = store.keys()
    for seed in config.seeds:
        log.info("seed %d: %d of %d points to run", seed,
                 sum(j.key not in recorded for j in jobs if j.group == seed), len(points))
    run_jobs(RECIPE, Context(experiment, grid), jobs, store=store, written=set(recorded), backend=backend)
    # records of the same hyperparameters from an earlier grid count too: label them with this grid's point
    wanted = {job.key: job.spec[0] for job in jobs}
    return [{**r, "point": wanted[r["key"]]} for r in store if r["key"] in wanted]
