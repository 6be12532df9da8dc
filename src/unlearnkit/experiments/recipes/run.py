"""``unlearnkit run``: data → original → forget request → each method → audit → record → table.

For every seed the rows are the original, the retrain oracle (the reference every row is compared
with), the noise floor (a second retrain) and each method; one record per (seed, row). Every
seed's request is validated before anything trains; rows already recorded under the current audit
protocol are skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...attacks.samia import samia_audit
from ...backends import Backend
from ...methods.base import create_method, list_methods, method_from_params, method_params
from ...metrics.audit import AUDIT_VERSION, audit_version, audit_with_outputs, avg_disparity, per_sample_values
from ...sparsity.masks import sparsity_of
from ...utils.files import write_atomic
from ...version import code_version
from ..config import RunConfig, digest, to_dict
from ..records import RecordStore
from ..runner import Job, Recipe, run_jobs
from ..experiment import Experiment, check_finite_model, load_experiment, memo
from ..setup import ORIGINAL, REFERENCE, SeedSetup, forget_ids_before_training, prepare_seed
from . import per_example
from .select import SELECTED, Selection, dry_run_lines, select

log = logging.getLogger("unlearnkit")


@dataclass(frozen=True)
class Row:
    """One line of the table for one seed: the original, the oracle, the noise floor, a method at
    its configured setting, or a method at the setting ``--select`` chose (``selection``)."""

    label: str
    method: str | None
    trial: int
    params: dict[str, Any]
    selection: Selection | None = field(default=None, compare=False)
    shared: bool = field(default=False, compare=False)  # the same unlearning as another row: cache it, run it once


def method_names(config: RunConfig) -> list[str]:
    return [m for m in config.methods or list_methods() if m != REFERENCE]


def rows_for(config: RunConfig, selections: list[Selection] = ()) -> list[Row]:
    params = lambda m, point={}: method_params(create_method(m, **{**config.params.get(m, {}), **point}),  # noqa: E731
                                               config.forget.class_wise)
    rows = [Row(ORIGINAL, None, 0, {}), Row(REFERENCE, REFERENCE, 0, params(REFERENCE))]
    if config.noise_floor:
        rows.append(Row("retrain (2nd seed)", REFERENCE, 1, params(REFERENCE)))
    chosen = {s.method: s for s in selections}
    for m in method_names(config):
        default = params(m)
        if m not in chosen:
            rows.append(Row(m, m, 0, default))
            continue
        selected = params(m, chosen[m].point)
        same = selected == default  # the grid holds the default: one unlearning serves both rows
        rows += [Row(m, m, 0, default, shared=same), Row(m + SELECTED, m, 0, selected, chosen[m], shared=same)]
    return rows


def default_out_dir(config: RunConfig) -> Path:
    scenario = config.forget.scenario + (f"{config.forget.forget_class}" if config.forget.scenario == "class" else "")
    sparse = f"-sparse{config.sparsity:g}" if config.sparsity else ""
    return Path("runs") / f"{config.data.name}-{config.model.name}-{scenario}{sparse}"


@dataclass(frozen=True, eq=False)
class Context:
    """What every job of a run shares (sent once to each worker)."""

    experiment: Experiment
    out_dir: str


def seed_setup(experiment: Experiment, seed: int) -> SeedSetup:
    """:func:`prepare_seed`, done once per seed for each experiment object in a process."""
    return memo(experiment, ("run", seed), lambda: prepare_seed(experiment, seed))


def prepare(ctx: Context, seed: int) -> None:
    setup = seed_setup(ctx.experiment, seed)
    per_example.prepare(ctx.experiment.config, setup)


def describe(ctx: Context, job: Job) -> dict[str, Any]:
    experiment, row = ctx.experiment, job.spec
    setup = seed_setup(experiment, job.group)
    split = setup.split
    return {"experiment": experiment.digest, "config": to_dict(experiment.config), "seed": job.group,
            "code_version": code_version(), "audit": AUDIT_VERSION, "out_dir": ctx.out_dir,
            "n_retain": len(split.retain), "n_forget": len(split.forget), "n_test": len(split.test),
            "forget_ids_sha256": setup.forget_hash, "sparsity": sparsity_of(setup.original), "row": row.label,
            "method": row.method, "trial": row.trial, "params": row.params,
            **({"selection": row.selection.record(job.group)} if row.selection else {})}


def execute(ctx: Context, job: Job, record: dict[str, Any]):
    """Unlearn (or load from the cache) and audit one row; the record still lacks its comparison."""
    config, setup, row = ctx.experiment.config, seed_setup(ctx.experiment, job.group), job.spec
    log.info("seed %d: %s", job.group, row.label)
    cost = run = None
    if row.method is None:
        model, seconds, cached = setup.original, 0.0, True
    elif row.method == REFERENCE:
        model, seconds, cached = setup.oracle(row.trial, config.params.get(REFERENCE, {}))
    else:
        method = method_from_params(row.method, row.params)
        run = setup.run_method(method, row.trial, cache=row.shared)
        model, seconds, cached, cost = run.model, run.seconds, run.cached, run.cost
    check_finite_model(model, row.label)
    metrics, outs = audit_with_outputs(model, setup.split, attacks=config.attacks)  # refuses non-finite outputs
    if run is not None:  # a method's row: no collapse past the guard
        record["retained_drop"] = setup.check_collapse(method, run, config.guard, outs["val"])
    if config.samia:
        metrics.update(samia_audit(model, setup.split, seed=job.group))
    record.update(status="ok", metrics=metrics, seconds=seconds, from_cache=cached, **({"cost": cost} if cost else {}))
    samples = per_sample_values(outs, setup.split)
    per_example.audit(config, setup, row, model, seconds, record, samples)
    return record, samples


def compare(record: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """``record`` with its distance to the oracle's ``reference`` record (None: it is the oracle)."""
    ok = record["status"] == "ok" and record["metrics"]
    if reference is None:
        disparity, ref_seconds = 0.0, record["seconds"]
    else:
        disparity = avg_disparity(record["metrics"], reference["metrics"]) if ok else None
        ref_seconds = reference["seconds"]
    return {**record, "avg_disparity": disparity,
            "time_vs_retrain": record["seconds"] / ref_seconds if ref_seconds else None}


RECIPE = Recipe("run", prepare=prepare, describe=describe, execute=execute,
                compare=compare, failed=(("metrics", {}), ("seconds", float("nan")), ("from_cache", False)))


def run_experiment(config: RunConfig, *, dry_run: bool = False, backend: Backend | None = None,
                   retry_failed: bool = False) -> list[dict[str, Any]]:
    """Run ``config``; return its records (old and new, for its seeds, rows and hyperparameters, of
    the current audit protocol: a row recorded under an older one is rerun and superseded).

    A row recorded as failed is kept as it is on a rerun, unless ``retry_failed``: then it runs
    again and its new record supersedes the failed one (the last record of a key wins). A dry run
    checks every seed's request, recorded or not, and writes nothing."""
    out_dir = Path(config.out_dir) if config.out_dir else default_out_dir(config)
    store = RecordStore(out_dir, complete=True)
    experiment = load_experiment(config)
    rows = rows_for(config, select(config, method_names(config), backend=backend, experiment=experiment)
                    if config.select and not dry_run else [])
    if config.select and dry_run:  # the grids are not run, so the selected rows are not listed below
        for line in dry_run_lines(config, method_names(config)):
            log.info("%s", line)
    n_test = config.data.test_subset or len(experiment.dataset.test)
    recorded = {r["key"]: r for r in store if audit_version(r, n_test) == AUDIT_VERSION}
    key = lambda seed, row: digest({"experiment": experiment.digest, "seed": seed, "row": row.label,  # noqa: E731
                                    "trial": row.trial, "params": row.params, **per_example.key_part(config),
                                    # a selected row records its grid: another grid, same point → a new record
                                    **({"grid": row.selection.grid} if row.selection else {})})
    jobs = [Job(key(seed, row), seed, row, reference=row.label == REFERENCE) for seed in config.seeds for row in rows]
    if retry_failed:
        retried = [f"seed {job.group}: {job.spec.label}" for job in jobs
                   if job.key in recorded and recorded[job.key].get("status") != "ok"]
        recorded = {k: r for k, r in recorded.items() if r.get("status") == "ok"}
        log.info("retrying %d failed row(s)%s", len(retried), f" ({', '.join(retried)})" if retried else "")
    for seed in config.seeds:
        pending = [job.spec.label for job in jobs if job.group == seed and job.key not in recorded]
        log.info("seed %d: %d of %d rows to run%s", seed, len(pending), len(rows),
                 f" ({', '.join(pending)})" if pending else "")
        if pending or dry_run:  # a bad request is refused before any seed trains anything
            forget_ids_before_training(experiment, seed)
    wanted = {job.key for job in jobs}

    def mine() -> list[dict[str, Any]]:  # the last record of each key (a retried row supersedes its failure)
        return list({r["key"]: r for r in store if r["key"] in wanted and audit_version(r, n_test) == AUDIT_VERSION}
                    .values())

    if dry_run:
        return mine()
    references = {seed: r for seed in config.seeds if (r := recorded.get(key(seed, rows[1])))}
    ran = run_jobs(RECIPE, Context(experiment, str(out_dir)), jobs, store=store, written=set(recorded), references=references,
                   backend=backend)
    records = mine()
    if ran:
        write_table(out_dir, records)
    return records


def write_table(out_dir: Path, records: list[dict[str, Any]]) -> None:
    from ...report.attack_plot import plot_attacks  # late imports: report depends on records only
    from ...report.table import experiment_report

    png = plot_attacks(records, out_dir / "attacks.png")
    text = experiment_report(records) + per_example.report(records, out_dir)
    write_atomic(out_dir / "table.md", text + (f"\n![Membership attacks per method]({png.name})\n" if png else ""))
