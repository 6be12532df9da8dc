"""``unlearnkit heal``: after the worst (or a named) strategy's request, heal every unlearned model.

For every seed: the original and the request as in the damage recipe (same identity, so cached
models and requests are shared), the Gold Standard, then for every method its unlearned model
(cached) unhealed and under every variant of ``heal.variants`` — remaining data, + twins, + spares,
+ random replacements; half the original epochs or one; raw or feature similarity. Reserves are
built once per seed, from the original model, and timed. One record per (seed, method, variant).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...adversary.base import adversary_params, create_adversary
from ...backends import Backend
from ...data.pool import Samples
from ...errors import ConfigError
from ...healing.heal import Heal
from ...healing.reserve import SpareReserve, TwinIndex
from ...healing.similarity import fit_similarity
from ...methods.base import create_method, method_params
from ...utils.sampling import stratified_subset
from ...utils.seeding import derived_generator as generator
from ...version import code_version
from ..config import HEAL_EPOCHS, AdversarialConfig, HealVariant, digest, to_dict
from ..records import RecordStore
from ..runner import Job, Recipe, run_jobs
from ..experiment import Experiment, check_finite_model, load_experiment, memo
from ..setup import REFERENCE, forget_hash
from .damage import budget_label, measure, method_names, request_setup, seed_original, write_report

log = logging.getLogger("unlearnkit")


def worst_strategy(config: AdversarialConfig, experiment_digest: str) -> str:
    """The strategy with the largest mean damage (over every row but the original, and over seeds)
    at ``heal.budget`` in the damage records."""
    where = Path(config.heal.damage_dir or config.out_dir or "runs/damage")
    damage: dict[str, list[float]] = defaultdict(list)
    for r in RecordStore(where, complete=True):
        if (r.get("experiment") == experiment_digest and r.get("status") == "ok" and r.get("row") != "original"
                and "damage" in r and abs(r["budget"] - config.heal.budget) < 1e-12):
            damage[r["strategy"]].append(r["damage"])
    if not damage:
        raise ConfigError(f"heal.strategy=worst: no damage records of this experiment at budget "
                          f"{budget_label(config.heal.budget)} in {where}; run `unlearnkit damage` first "
                          f"(same data, model, train and reserve) or name heal.strategy")
    means = {s: sum(v) / len(v) for s, v in damage.items()}
    worst = max(means, key=means.get)
    log.info("worst strategy at %s: %s (mean damage %s)", budget_label(config.heal.budget), worst,
             ", ".join(f"{s} {m:.2f}" for s, m in sorted(means.items(), key=lambda kv: -kv[1])))
    return worst


@dataclass(frozen=True, eq=False)
class Context:
    experiment: Experiment
    strategy: str

    @property
    def config(self) -> AdversarialConfig:
        return self.experiment.config


def plain_variant(variant: HealVariant) -> dict[str, Any]:
    return {"name": variant.name, "data": variant.data, "similarity": variant.similarity, "epochs": variant.epochs}


def settings(config: AdversarialConfig, variant: HealVariant) -> dict[str, Any]:
    """What a variant's result depends on besides its name and data (part of its record key)."""
    h = config.heal
    if variant.data == "remaining":
        return {**plain_variant(variant), "lr_share": h.lr_share}
    return {**plain_variant(variant), "lr_share": h.lr_share, "candidates": h.candidates, "same_class": h.same_class,
            **({"spares": h.spares} if variant.data == "spares" else {})}


def gold(ctx: Context, seed: int) -> dict[str, Any]:
    """The seed's Gold Standard, measured once per process."""
    def build() -> dict[str, Any]:
        model, seconds, _ = setup(ctx, seed).oracle()
        return {"model": model, "seconds": seconds, "metrics": measure(model, setup(ctx, seed).split)}
    return memo(ctx.experiment, ("gold", ctx.strategy, seed), build)


def setup(ctx: Context, seed: int):
    return request_setup(ctx.experiment, seed, ctx.strategy, ctx.config.heal.budget)


def unlearned(ctx: Context, seed: int, method: str):
    """The method's unlearned model (the Gold Standard for ``retrain``), cached by content."""
    if method == REFERENCE:
        return gold(ctx, seed)["model"]
    def build():
        model = setup(ctx, seed).run_method(create_method(method, **ctx.config.params.get(method, {})), cache=True).model
        check_finite_model(model, method)
        return model
    return memo(ctx.experiment, ("unlearned", ctx.strategy, seed, method), build)


def reserve(ctx: Context, seed: int, variant: HealVariant) -> tuple[SpareReserve, float]:
    """The reserve a variant draws from (built once per seed and kind) and the seconds it took."""
    similarity = "euclidean" if variant.data == "random" else variant.similarity  # random ignores similarity

    def build() -> tuple[SpareReserve, float]:
        h, orig = ctx.config.heal, seed_original(ctx.experiment, seed)
        start = time.perf_counter()
        pool = orig.pool
        if variant.data == "spares" and h.spares is not None:
            if not 0 < h.spares <= len(pool):
                raise ConfigError(f"heal.spares must lie in [1, {len(pool)}], got {h.spares}")
            pool = Samples(pool.pool, stratified_subset(pool.pool.y, pool.ids, count=h.spares,
                                                        generator=generator(seed, "spares")))
        embedder = fit_similarity(similarity, model=orig.original, fit_on=pool)
        kind = TwinIndex if variant.data == "twins" else SpareReserve
        built = kind(orig.base.train, pool, embedder, same_class=h.same_class, candidates=h.candidates)
        seconds = time.perf_counter() - start
        log.info("seed %d: %s reserve (%s) built in %.1f s", seed, variant.data, similarity, seconds)
        return built, seconds
    return memo(ctx.experiment, ("reserve", ctx.strategy, seed, variant.data, similarity), build)


def prepare(ctx: Context, seed: int) -> None:
    gold(ctx, seed)


def describe(ctx: Context, job: Job) -> dict[str, Any]:
    seed, (method, variant) = job.group, job.spec
    config, split, g = ctx.config, setup(ctx, seed).split, gold(ctx, seed)
    return {"experiment": ctx.experiment.digest, "config": to_dict(config), "seed": seed, "strategy": ctx.strategy,
            "adversary": adversary_params(create_adversary(ctx.strategy, **config.adversary.get(ctx.strategy, {}))),
            "budget": config.heal.budget, "n_train": len(seed_original(ctx.experiment, seed).base.train),
            "n_forget": len(split.forget), "forget_ids_sha256": forget_hash(split.forget.ids),
            "code_version": code_version(), "ta_gold": g["metrics"]["TA"], "va_gold": g["metrics"]["VA"],
            "gold_seconds": g["seconds"], "method": method,
            "params": method_params(create_method(method, **config.params.get(method, {})), class_wise=False),
            "variant": None if variant is None else variant.name,
            "variant_settings": None if variant is None else settings(config, variant)}


def execute(ctx: Context, job: Job, record: dict[str, Any]):
    seed, (method, variant) = job.group, job.spec
    split, model, extra = setup(ctx, seed).split, unlearned(ctx, seed, method), {}
    if variant is not None:
        spares, build_seconds = (None, None) if variant.data == "remaining" else reserve(ctx, seed, variant)
        spares = None if spares is None else spares.copy()
        log.info("seed %d: heal %s with %s", seed, method, variant.name)
        heal = Heal(data={"remaining": "remaining", "random": "random"}.get(variant.data, "replacements"),
                    epochs=HEAL_EPOCHS[variant.epochs], lr_share=ctx.config.heal.lr_share)
        start = time.perf_counter()
        model = heal.heal(model, split, spares, generator=generator(seed, "heal", method, variant.name))
        seconds = time.perf_counter() - start
        check_finite_model(model, f"{method} healed ({variant.name})")
        gold_seconds = record["gold_seconds"]
        extra = {"seconds": seconds, "time_vs_retrain": seconds / gold_seconds if gold_seconds else None,
                 "index_seconds": build_seconds,
                 "n_replacements": 0 if spares is None else len(spares.train_ids) - len(split.retain)}
    m = measure(model, split)
    record.update(status="ok", metrics=m, vs_gold=m["TA"] - record["ta_gold"], **extra)
    return record, None


RECIPE = Recipe("heal", prepare=prepare, describe=describe, execute=execute, failed=(("metrics", {}),))


def run_heal(config: AdversarialConfig, *, dry_run: bool = False, backend: Backend | None = None
             ) -> list[dict[str, Any]]:
    """Heal every method's model after the chosen strategy's request at ``heal.budget``; record TA."""
    out_dir = Path(config.out_dir or "runs/heal")
    store = RecordStore(out_dir, complete=True)
    experiment = load_experiment(config)
    h = config.heal
    strategy = worst_strategy(config, experiment.digest) if h.strategy == "worst" else h.strategy
    adversary = adversary_params(create_adversary(strategy, **config.adversary.get(strategy, {})))
    methods = [REFERENCE] + method_names(config)
    params = {m: method_params(create_method(m, **config.params.get(m, {})), class_wise=False) for m in methods}  # adversarial requests

    def key(seed: int, method: str, variant: HealVariant | None) -> str:
        return digest({"experiment": experiment.digest, "seed": seed, "strategy": strategy, "adversary": adversary,
                       "budget": h.budget, "method": method, "params": params[method],
                       "variant": None if variant is None else settings(config, variant)})

    plan = [(m, None) for m in methods] + [(m, v) for v in h.variants for m in methods if not v.methods or m in v.methods]
    jobs = [Job(key(seed, m, v), seed, (m, v)) for seed in config.seeds for m, v in plan]
    recorded = store.keys()
    for seed in config.seeds:
        pending = sum(job.key not in recorded for job in jobs if job.group == seed)
        log.info("seed %d: heal after %s %s: %d of %d rows to run", seed, strategy, budget_label(h.budget),
                 pending, len(plan))
    mine = lambda: [r for r in store if r.get("experiment") == experiment.digest]  # noqa: E731
    if not dry_run and run_jobs(RECIPE, Context(experiment, strategy), jobs, store=store, written=set(recorded),
                                backend=backend):
        write_report(out_dir, mine(), kind="heal")
    return mine()
