"""``unlearnkit damage``: test accuracy after adversarial deletion requests, for every method.

Data budget (the healing paper's protocol): D_v carved from the training file, a reserve pool held
out of the original's training (the spares and twins healing draws from), the original trained on
the rest. For every seed × strategy × budget the adversary picks its request on the original
(cached), the Gold Standard retrains without it (the reference), and every method unlearns it.
Damage = the original's TA − TA after (SISA: from its own ensemble); excess damage = the Gold
Standard's TA − TA after. One record per (seed, strategy, budget, row); a rerun skips what is recorded.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from ...adversary.base import adversary_params, create_adversary
from ...backends import Backend
from ...methods.base import create_method, list_methods, method_params, returns_ensemble
from ...training.evaluate import sample_accuracy
from ...utils.files import write_atomic
from ...version import code_version
from ..config import AdversarialConfig, digest, to_dict
from ..records import RecordStore
from ..runner import Job, Recipe, run_jobs
from ..experiment import Experiment, check_finite_model, load_experiment, memo
from ..setup import ORIGINAL, REFERENCE, SeedOriginal, SeedSetup, forget_hash, prepare_adversarial_seed

log = logging.getLogger("unlearnkit")


def budget_label(budget: float) -> str:
    return f"{budget * 100:g}%" if budget < 1 else f"{int(budget)}"


def measure(model: nn.Module, split) -> dict[str, float]:
    """TA, VA and UA (100 − accuracy on the requested samples)."""
    return {"TA": sample_accuracy(model, split.test), "VA": sample_accuracy(model, split.val),
            "UA": 100.0 - sample_accuracy(model, split.forget)}


def method_names(config: AdversarialConfig) -> list[str]:
    return [m for m in (config.methods or tuple(list_methods())) if m != REFERENCE]


def seed_original(experiment: Experiment, seed: int) -> SeedOriginal:
    return memo(experiment, ("adversarial", seed), lambda: prepare_adversarial_seed(experiment, seed))


def request_setup(experiment: Experiment, seed: int, strategy: str, budget: float) -> SeedSetup:
    """The seed's setup for one adversarial request (the request cached by content, the split memoised)."""
    def build() -> SeedSetup:
        orig = seed_original(experiment, seed)
        return orig.setup(orig.request(strategy, budget))
    return memo(experiment, ("request", seed, strategy, budget), build)


def prepare(experiment: Experiment, group: tuple[int, str, float]) -> None:
    request_setup(experiment, *group).oracle()  # the Gold Standard into the cache before the rows


def describe(experiment: Experiment, job: Job) -> dict[str, Any]:
    (seed, strategy, budget), row = job.group, job.spec
    config, setup = experiment.config, request_setup(experiment, *job.group)
    adversary = create_adversary(strategy, **config.adversary.get(strategy, {}))
    params = method_params(create_method(row, **config.params.get(row, {})), class_wise=False) if row != ORIGINAL else {}
    return {"experiment": experiment.digest, "config": to_dict(config), "seed": seed, "strategy": strategy,
            "adversary": adversary_params(adversary), "knowledge": adversary.knowledge, "budget": budget,
            "n_train": len(seed_original(experiment, seed).base.train), "n_forget": len(setup.split.forget),
            "forget_ids_sha256": forget_hash(setup.split.forget.ids), "code_version": code_version(),
            "ta_original": sample_accuracy(setup.original, setup.split.test), "row": row,
            "method": None if row == ORIGINAL else row, "params": params}


def execute(experiment: Experiment, job: Job, record: dict[str, Any]):
    setup, row = request_setup(experiment, *job.group), job.spec
    if row == ORIGINAL:
        model, seconds, cached = setup.original, 0.0, True
    elif row == REFERENCE:
        model, seconds, cached = setup.oracle()
    else:
        log.info("seed %d, %s %s: %s", job.group[0], job.group[1], budget_label(job.group[2]), row)
        method = create_method(row, **experiment.config.params.get(row, {}))
        model, seconds, cached, _, start = setup.run_method(method)
        if returns_ensemble(method):  # SISA: damage from its own ensemble, not the single original
            record["ta_start"] = sample_accuracy(start(), setup.split.test)
    check_finite_model(model, row)
    m = measure(model, setup.split)
    record.update(status="ok", metrics=m, damage=record.get("ta_start", record["ta_original"]) - m["TA"],
                  seconds=seconds, from_cache=cached)
    return record, None


def compare(record: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """Excess damage and time against the Gold Standard's record (None: this is it)."""
    gold = reference or record
    out = {**record, "ta_gold": gold["metrics"]["TA"]}
    if record["status"] == "ok":
        out.update(excess_damage=out["ta_gold"] - record["metrics"]["TA"],
                   time_vs_retrain=record["seconds"] / gold["seconds"] if gold["seconds"] else None)
    return out


RECIPE = Recipe("damage", prepare=prepare, describe=describe, execute=execute, compare=compare)


def run_damage(config: AdversarialConfig, *, dry_run: bool = False, backend: Backend | None = None
               ) -> list[dict[str, Any]]:
    """Every seed × strategy × budget × row not yet recorded; returns the experiment's records."""
    out_dir = Path(config.out_dir or "runs/damage")
    store = RecordStore(out_dir, complete=True)
    experiment = load_experiment(config)
    rows = [ORIGINAL, REFERENCE] + method_names(config)
    methods = {m: create_method(m, **config.params.get(m, {})) for m in rows[1:]}
    params = {m: method_params(method, class_wise=False) for m, method in methods.items()}  # adversarial requests
    own_start = {m for m, method in methods.items() if returns_ensemble(method)}
    adv = {s: adversary_params(create_adversary(s, **config.adversary.get(s, {}))) for s in config.strategies}

    def key(seed: int, strategy: str, budget: float, row: str) -> str:
        return digest({"experiment": experiment.digest, "seed": seed, "strategy": strategy, "adversary": adv[strategy],
                       "budget": budget, "row": row, "params": params.get(row, {}),
                       **({"damage_from": "start_model"} if row in own_start else {})})

    groups = [(seed, s, b) for seed in config.seeds for s in config.strategies for b in config.budgets]
    jobs = [Job(key(*g, row), g, row, reference=row == REFERENCE) for g in groups for row in rows]
    recorded = {r["key"]: r for r in store}
    for g in groups:
        pending = sum(key(*g, row) not in recorded for row in rows)
        log.info("seed %d, %s %s: %d of %d rows to run", g[0], g[1], budget_label(g[2]), pending, len(rows))
    mine = lambda: [r for r in store if r.get("experiment") == experiment.digest]  # noqa: E731
    if dry_run:
        return mine()
    references = {g: r for g in groups if (r := recorded.get(key(*g, REFERENCE)))}
    run_jobs(RECIPE, experiment, jobs, store=store, written=set(recorded), references=references, backend=backend)
    write_report(out_dir, mine(), kind="damage")
    return mine()


def write_report(out_dir: Path, records: list[dict[str, Any]], *, kind: str) -> str:
    """Write ``table.md`` (and ``damage.png`` when matplotlib is installed); return the Markdown."""
    from ...report.adversarial import damage_report, heal_report, plot_damage

    if kind == "damage":
        text = damage_report(records, plot=plot_damage(records, out_dir / "damage.png"))
    else:
        text = heal_report(records)
    write_atomic(out_dir / "table.md", text)
    return text
