"""The healing recipe: after the worst (or a named) strategy's request, heal every unlearned model.

For every seed: the original and the request as in the damage recipe (same identity, so the cached
models and requests are shared), the Gold Standard, then for every method the unlearned model
(cached) and every healing variant of ``heal.variants`` — remaining data, remaining + twins, +
spares, + random replacements; half the original epochs or one; raw or feature similarity. Twin
indexes are built once per seed and similarity from the original model, and timed. One record per
(seed, method, variant); a rerun skips what is recorded.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from ..adversary.base import adversary_params, create_adversary
from ..data.pool import Samples
from ..data.splits import stratified_subset
from ..errors import ConfigError, TrainingError
from ..healing.heal import Heal
from ..healing.reserve import SpareReserve, TwinIndex
from ..healing.similarity import fit_similarity
from ..methods.base import create_method, method_params
from ..version import code_version
from .adversarial import (EPOCHS, ORIGINAL, AdversarialConfig, AdversarialSeed, HealVariant, budget_label,
                          forget_hash, load_adversarial_experiment, measure, plain, prepare_adversarial_seed,
                          write_report)
from .config import digest
from .recipe import REFERENCE, check_finite_model, generator
from .records import RecordStore

log = logging.getLogger("unlearnkit")
UNLEARNED = "unlearned"


def worst_strategy(config: AdversarialConfig, experiment_digest: str) -> str:
    """The strategy with the largest mean damage (TA before − after unlearning; SISA's from its own
    ensemble, every other row's from the original), over every
    method including the Gold Standard, and over seeds) at ``heal.budget`` in the damage records."""
    where = Path(config.heal.damage_dir or config.out_dir or "runs/damage")
    damage: dict[str, list[float]] = defaultdict(list)
    for r in RecordStore(where):
        if (r.get("experiment") == experiment_digest and r.get("status") == "ok" and r.get("row") != ORIGINAL
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


def build_reserve(seed_setup: AdversarialSeed, variant: HealVariant, config: AdversarialConfig) -> tuple[SpareReserve, float]:
    """The reserve a variant draws from, and the seconds it took to build (fitting + indexing)."""
    h = config.heal
    start = time.perf_counter()
    pool = seed_setup.pool
    if variant.data == "spares" and h.spares is not None:
        if not 0 < h.spares <= len(pool):
            raise ConfigError(f"heal.spares must lie in [1, {len(pool)}], got {h.spares}")
        pool = Samples(pool.pool, stratified_subset(pool.pool.y, pool.ids, count=h.spares,
                                                    generator=generator(seed_setup.seed, "spares")))
    similarity = "euclidean" if variant.data == "random" else variant.similarity  # random ignores similarity
    embedder = fit_similarity(similarity, model=seed_setup.original, fit_on=pool)
    kind = TwinIndex if variant.data == "twins" else SpareReserve
    reserve = kind(seed_setup.base.train, pool, embedder, same_class=h.same_class, candidates=h.candidates)
    return reserve, time.perf_counter() - start


def run_heal(config: AdversarialConfig, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """Heal every method's model after the chosen strategy's request at ``heal.budget``; record TA."""
    out_dir = Path(config.out_dir or "runs/heal")
    store = RecordStore(out_dir)
    experiment = load_adversarial_experiment(config)
    h = config.heal
    strategy = worst_strategy(config, experiment.digest) if h.strategy == "worst" else h.strategy
    adversary = adversary_params(create_adversary(strategy, **config.adversary.get(strategy, {})))
    methods = [REFERENCE] + config.method_names()
    params = {m: method_params(create_method(m, **config.params.get(m, {}))) for m in methods}
    heal_of = lambda v: Heal(data={"remaining": "remaining", "random": "random"}.get(v.data, "replacements"),  # noqa: E731
                             epochs=EPOCHS[v.epochs], lr_share=h.lr_share)
    settings = lambda v: {"lr_share": h.lr_share} if v.data == "remaining" else {  # noqa: E731
        "lr_share": h.lr_share, "candidates": h.candidates, "same_class": h.same_class,
        **({"spares": h.spares} if v.data == "spares" else {})}

    def key(seed: int, method: str, variant: HealVariant | None) -> str:
        return digest({"experiment": experiment.digest, "seed": seed, "strategy": strategy, "adversary": adversary,
                       "budget": h.budget, "method": method, "params": params[method],
                       "variant": None if variant is None else {**plain_variant(variant), **settings(variant)}})

    plan = [(m, None) for m in methods] + [(m, v) for v in h.variants for m in methods if not v.methods or m in v.methods]
    recorded = store.keys()
    for seed in config.seeds:
        pending = [(m, v) for m, v in plan if key(seed, m, v) not in recorded]
        log.info("seed %d: heal after %s %s: %d of %d rows to run", seed, strategy, budget_label(h.budget),
                 len(pending), len(plan))
        if dry_run or not pending:
            continue
        seed_setup = prepare_adversarial_seed(experiment, config, seed)
        ids = seed_setup.request(strategy, h.budget)
        setup = seed_setup.setup(ids)
        gold, gold_seconds, _ = setup.oracle()
        gold_metrics = measure(gold, setup.split)
        ta_gold = gold_metrics["TA"]
        reserves: dict[tuple[str, str], tuple[SpareReserve, float]] = {}
        context = {"experiment": experiment.digest, "config": plain(config), "seed": seed, "strategy": strategy,
                   "adversary": adversary, "budget": h.budget, "n_train": len(seed_setup.base.train), "n_forget": len(ids),
                   "forget_ids_sha256": forget_hash(ids),
                   "code_version": code_version(), "ta_gold": ta_gold, "va_gold": gold_metrics["VA"],
                   "gold_seconds": gold_seconds}
        unlearned: dict[str, Any] = {}
        for method, variant in pending:
            rec = {"key": key(seed, method, variant), **context, "method": method, "params": params[method],
                   "variant": None if variant is None else variant.name,
                   "variant_settings": None if variant is None else {**plain_variant(variant), **settings(variant)},
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            try:
                if method not in unlearned:
                    unlearned[method] = gold if method == REFERENCE else setup.run_method(
                        create_method(method, **config.params.get(method, {})), cache=True)[0]
                    check_finite_model(unlearned[method], method)
                model = unlearned[method]
                extra: dict[str, Any] = {}
                if variant is not None:
                    reserve, build_seconds = None, None
                    if variant.data != "remaining":
                        rkey = (variant.data, "euclidean" if variant.data == "random" else variant.similarity)
                        if rkey not in reserves:
                            reserves[rkey] = build_reserve(seed_setup, variant, config)
                            log.info("seed %d: %s reserve (%s) built in %.1f s", seed, *rkey, reserves[rkey][1])
                        reserve, build_seconds = reserves[rkey][0].copy(), reserves[rkey][1]
                    log.info("seed %d: heal %s with %s", seed, method, variant.name)
                    start = time.perf_counter()
                    model = heal_of(variant).heal(model, setup.split, reserve,
                                                  generator=generator(seed, "heal", method, variant.name))
                    seconds = time.perf_counter() - start
                    check_finite_model(model, f"{method} healed ({variant.name})")
                    extra = {"seconds": seconds, "time_vs_retrain": seconds / gold_seconds if gold_seconds else None,
                             "index_seconds": build_seconds,
                             "n_replacements": 0 if reserve is None else len(reserve.train_ids) - len(setup.split.retain)}
                m = measure(model, setup.split)
                rec.update(status="ok", metrics=m, vs_gold=m["TA"] - ta_gold, **extra)
            except TrainingError as e:
                log.error("seed %d: %s / %s failed: %s", seed, method, rec["variant"], e)
                rec.update(status="failed", error=str(e), metrics={})
            store.append(rec)
        write_report(out_dir, [r for r in store if r.get("experiment") == experiment.digest], kind="heal")
    return [r for r in store if r.get("experiment") == experiment.digest]


def plain_variant(variant: HealVariant) -> dict[str, Any]:
    return {"name": variant.name, "data": variant.data, "similarity": variant.similarity, "epochs": variant.epochs}
