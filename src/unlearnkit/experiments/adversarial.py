"""Adversarial-unlearning experiments: the configuration and per-seed setup shared by ``damage`` and
``heal``, and the damage recipe.

Data budget (the healing paper's protocol, on W1): a validation set D_v carved from the training
file (``data.val_fraction``; 5k of Fashion-MNIST's 60k), a reserve pool of ``reserve`` samples held
out of the original training (10k: the spares and twins that healing draws from), and the rest
(45k) to train the original model. Every seed: train (or load) the original, then for each strategy
× budget let the adversary pick the request on the original (cached), train (or load) the Gold
Standard — retraining without the requested data — and run every unlearning method; one record per
(seed, strategy, budget, row). Rows already recorded are skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..adversary.base import adversary_params, create_adversary, list_adversaries
from ..data.pool import Samples
from ..data.scenarios import validate_forget_ids
from ..data.splits import BaseSplit, base_split, forget_split, stratified_subset
from ..errors import ConfigError, TrainingError
from ..healing.similarity import SIMILARITIES
from ..methods.base import create_method, list_methods, method_params
from ..training.config import TrainConfig
from ..training.evaluate import accuracy, predict_logits
from ..training.loop import train
from ..version import code_version
from .cache import ModelCache
from .config import DataConfig, ModelConfig, RunConfig, _build, _coerce, _hints, _scalar, digest, set_key, to_dict
from .recipe import REFERENCE, Experiment, SeedSetup, check_finite_model, dataset_fingerprint, generator
from .records import RecordStore, write_atomic

log = logging.getLogger("unlearnkit")
ORIGINAL = "original"
HEAL_VARIANT_DATA = ("remaining", "twins", "spares", "random")
EPOCHS = {"half": None, "one": 1.0}


@dataclass(frozen=True, kw_only=True)
class HealVariant:
    """One healing setting. ``data``: ``remaining`` (D_r only), ``twins`` (D_r + the nearest twin of
    each deleted sample from a TwinIndex over the reserve pool), ``spares`` (D_r + the nearest spare
    of a SpareReserve of ``heal.spares`` samples drawn from the pool) or ``random`` (D_r + random
    spares of the same class). ``similarity``: euclidean (raw pixels), cosine or mahalanobis (the
    original model's features). ``epochs``: ``half`` (half the original epochs) or ``one``.
    ``methods``: the unlearning methods to heal with this setting (empty: every method)."""

    name: str
    data: str = "remaining"
    similarity: str = "mahalanobis"
    epochs: str = "half"
    methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.data not in HEAL_VARIANT_DATA:
            raise ConfigError(f"heal variant {self.name!r}: data must be one of {HEAL_VARIANT_DATA}, got {self.data!r}")
        if self.similarity not in SIMILARITIES:
            raise ConfigError(f"heal variant {self.name!r}: similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if self.epochs not in EPOCHS:
            raise ConfigError(f"heal variant {self.name!r}: epochs must be one of {tuple(EPOCHS)}, got {self.epochs!r}")

    def describe(self) -> str:
        what = {"remaining": "D_r", "twins": f"D_r + twins ({self.similarity})",
                "spares": f"D_r + spares ({self.similarity})", "random": "D_r + random"}[self.data]
        return f"{what}, {'½ epochs' if self.epochs == 'half' else '1 epoch'}"


DEFAULT_VARIANTS = (
    HealVariant(name="remaining-half", data="remaining", epochs="half"),
    HealVariant(name="remaining-one", data="remaining", epochs="one"),
    HealVariant(name="twins-mahalanobis-half", data="twins", similarity="mahalanobis", epochs="half"),
    HealVariant(name="twins-mahalanobis-one", data="twins", similarity="mahalanobis", epochs="one"),
    HealVariant(name="twins-cosine-half", data="twins", similarity="cosine", epochs="half"),
    HealVariant(name="twins-euclidean-half", data="twins", similarity="euclidean", epochs="half"),
    HealVariant(name="random-half", data="random", epochs="half"),
)


@dataclass(frozen=True, kw_only=True)
class HealSettings:
    """``strategy``: the adversary whose request is healed — a name, or ``worst``: the strategy with
    the largest mean damage (original TA − TA after unlearning, over methods and seeds) at ``budget``
    in the damage records of ``damage_dir``. ``lr_share``: healing learning rate / original.
    ``candidates``: neighbours kept per sample by twin indexes and reserves; ``same_class``: replace
    only within a class; ``spares``: size of the SpareReserve drawn from the pool (``spares``
    variants; default the whole pool). ``variants``: the settings compared side by side."""

    strategy: str = "worst"
    budget: float = 0.1
    damage_dir: str | None = None
    lr_share: float = 1.0
    candidates: int = 8
    same_class: bool = True
    spares: int | None = None
    variants: tuple[HealVariant, ...] = DEFAULT_VARIANTS

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"heal.variants: names repeat: {names}")
        if not (self.lr_share > 0 and math.isfinite(self.lr_share)):
            raise ConfigError(f"heal.lr_share must be > 0, got {self.lr_share}")
        if self.candidates < 1:
            raise ConfigError(f"heal.candidates must be >= 1, got {self.candidates}")


@dataclass(frozen=True, kw_only=True)
class AdversarialConfig:
    """A damage / healing experiment. ``reserve``: samples held out of the original training as the
    spare and twin pool. ``strategies`` × ``budgets`` (fractions of the training set, or counts ≥ 1):
    the requests. ``methods``: unlearning methods (empty: every registered one; the Gold Standard is
    always run). ``params.<method>`` / ``adversary.<strategy>``: hyperparameters."""

    data: DataConfig = field(default_factory=lambda: DataConfig(val_fraction=1 / 12))
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reserve: int = 10000
    strategies: tuple[str, ...] = ("random", "class", "typical", "boundary", "gradnorm", "influence", "coverage")
    budgets: tuple[float, ...] = (0.01, 0.05, 0.1)
    methods: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    adversary: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    out_dir: str | None = None
    cache_dir: str | None = None
    heal: HealSettings = field(default_factory=HealSettings)

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must name distinct seeds, got {list(self.seeds)}")
        if self.reserve < 1:
            raise ConfigError(f"reserve must be >= 1, got {self.reserve}")
        if not self.strategies or not self.budgets:
            raise ConfigError("strategies and budgets must not be empty")
        for b in self.budgets:
            if not (0 < b < 1 or (b >= 1 and float(b).is_integer())):
                raise ConfigError(f"budgets: {b} is neither a fraction in (0, 1) nor a count")

    def method_names(self) -> list[str]:
        return [m for m in (self.methods or tuple(list_methods())) if m != REFERENCE]


def _variant(raw: Any, i: int) -> HealVariant:
    if not isinstance(raw, dict):
        raise ConfigError(f"heal.variants[{i}] must be a mapping, got {raw!r}")
    return _build(HealVariant, raw, f"heal.variants[{i}].")


def adversarial_config_from_dict(raw: dict[str, Any]) -> AdversarialConfig:
    """Build and validate an AdversarialConfig from a nested mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping, got {type(raw).__name__}")
    top = dict(raw)
    sections: dict[str, Any] = {}
    for name, cls in {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}.items():
        section = top.pop(name, None)
        if section is not None:
            if not isinstance(section, dict):
                raise ConfigError(f"{name} must be a mapping, got {section!r}")
            sections[name] = _build(cls, section, f"{name}.")
    heal = dict(top.pop("heal", None) or {})
    if "variants" in heal:
        if not isinstance(heal["variants"], (list, tuple)):
            raise ConfigError("heal.variants must be a list of mappings")
        heal["variants"] = tuple(_variant(v, i) for i, v in enumerate(heal["variants"]))
    hints = _hints(HealSettings)
    unknown = sorted(set(heal) - set(hints))
    if unknown:
        raise ConfigError(f"unknown key(s) {['heal.' + u for u in unknown]}; valid: {['heal.' + n for n in hints]}")
    heal = {k: v if k == "variants" else _coerce(v, hints[k], "heal." + k) for k, v in heal.items()}
    config = _build(AdversarialConfig, top, "")
    config = dataclasses.replace(config, **sections, heal=HealSettings(**heal))
    _validate_names(config)
    return config


def _validate_names(config: AdversarialConfig) -> None:
    for name in config.methods:
        if name not in list_methods():
            raise ConfigError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    for v in config.heal.variants:
        for name in v.methods:
            if name not in list_methods():
                raise ConfigError(f"heal variant {v.name!r}: unknown method {name!r}; valid: {', '.join(list_methods())}")
    for name, params in config.params.items():
        if not isinstance(params, dict):
            raise ConfigError(f"params.{name} must be a mapping of hyperparameters, got {params!r}")
        create_method(name, **params)
    for name in config.strategies:
        create_adversary(name, **config.adversary.get(name, {}))
    for name, params in config.adversary.items():
        if name not in list_adversaries():
            raise ConfigError(f"adversary.{name}: unknown strategy; valid: {', '.join(list_adversaries())}")
        if not isinstance(params, dict):
            raise ConfigError(f"adversary.{name} must be a mapping of hyperparameters, got {params!r}")
    if config.heal.strategy != "worst" and config.heal.strategy not in list_adversaries():
        raise ConfigError(f"heal.strategy must be 'worst' or one of {', '.join(list_adversaries())}, "
                          f"got {config.heal.strategy!r}")


def load_adversarial_config(path: str | Path | None = None, overrides: list[str] = ()) -> AdversarialConfig:
    """Read a YAML file (optional) and apply ``key=value`` overrides."""
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p} is not valid YAML: {e}") from e
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        set_key(raw, key.strip(), _scalar(value))
    return adversarial_config_from_dict(raw)


def plain(config: AdversarialConfig) -> dict[str, Any]:
    """A JSON-serialisable nested dict of the config."""
    return to_dict(config)  # type: ignore[arg-type]  (same dataclass shape)


# --- per-seed setup -------------------------------------------------------------------------------
def load_adversarial_experiment(config: AdversarialConfig) -> Experiment:
    """Load the data and fix the experiment's identity: what determines the original model."""
    from ..data.dataset import load_dataset

    kwargs = dict(config.data.options)
    if config.data.data_dir is not None:
        kwargs["data_dir"] = config.data.data_dir
    if config.data.path is not None:
        kwargs["path"] = config.data.path
    dataset = load_dataset(config.data.name, **kwargs)
    d = plain(config)
    identity = {"data": {k: v for k, v in d["data"].items() if k != "data_dir"}, "model": d["model"],
                "train": d["train"], "reserve": config.reserve, "data_fingerprint": dataset_fingerprint(dataset)}
    run_config = RunConfig(data=config.data, model=config.model, train=config.train, methods=config.methods,
                           params=config.params, seeds=config.seeds, cache_dir=config.cache_dir)
    return Experiment(run_config, dataset, identity, digest(identity), ModelCache(config.cache_dir))


@dataclass(frozen=True, eq=False)
class AdversarialSeed:
    """One seed: D_v carved, the reserve pool held out, the original trained (or loaded) on the rest."""

    experiment: Experiment
    config: AdversarialConfig
    seed: int
    base: BaseSplit
    test: Samples
    pool: Samples
    original: nn.Module
    original_seconds: float
    original_cached: bool

    def request(self, strategy: str, budget: float) -> Tensor:
        """The adversary's validated request on the original (cached by content under the model cache)."""
        adversary = create_adversary(strategy, **self.config.adversary.get(strategy, {}))
        key = {"kind": "request", "identity": self.experiment.identity, "seed": self.seed, "strategy": strategy,
               "params": adversary_params(adversary), "budget": budget}
        path = self.experiment.cache.root / "requests" / f"{digest(key)}.npy"
        if path.exists():
            try:
                ids = torch.from_numpy(np.load(path, allow_pickle=False)).long()
                return validate_forget_ids(ids, self.base.train, len(self.base.train.pool))
            except Exception as e:  # a damaged file is recomputed, never trusted
                log.warning("request cache %s unreadable (%s); recomputing", path, e)
        start = time.perf_counter()
        ids = adversary.select(self.original, self.base.train, budget_value(budget),
                               generator=generator(self.seed, "adversary", strategy, budget), reference=self.base.val)
        ids = validate_forget_ids(ids, self.base.train, len(self.base.train.pool))
        log.info("seed %d: %s picked %d ids in %.1f s", self.seed, strategy, len(ids), time.perf_counter() - start)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npy")
        np.save(tmp, ids.numpy())
        tmp.replace(path)
        return ids

    def setup(self, ids: Tensor) -> SeedSetup:
        split = forget_split(self.base, self.test, ids, self.config.train)
        return SeedSetup(self.experiment, self.seed, self.original, self.original_seconds, self.original_cached, split)



def budget_value(budget: float) -> int | float:
    return int(budget) if budget >= 1 else float(budget)


def budget_label(budget: float) -> str:
    return f"{budget * 100:g}%" if budget < 1 else f"{int(budget)}"


def prepare_adversarial_seed(experiment: Experiment, config: AdversarialConfig, seed: int) -> AdversarialSeed:
    """Carve D_v, hold out the reserve pool, and train (or load) the original on the rest."""
    c = config
    base, test = base_split(experiment.dataset, val_fraction=c.data.val_fraction, train_subset=c.data.train_subset,
                            test_subset=c.data.test_subset, seed=seed)
    if not 0 < c.reserve < len(base.train):
        raise ConfigError(f"reserve={c.reserve} must be smaller than the training set ({len(base.train)})")
    pool_ids = stratified_subset(base.train.pool.y, base.train.ids, count=c.reserve,
                                 generator=generator(seed, "reserve"))
    keep = ~torch.isin(base.train.ids, pool_ids)
    train_base = BaseSplit(base.dataset, base.train.take(keep), base.val)
    pool = Samples(base.train.pool, pool_ids)

    def build() -> tuple[nn.Module, dict[str, Any]]:
        model = experiment.make_model(seed)
        stats = train(model, train_base.train, c.train, generator=generator(seed, "original"), desc="original")
        return model, {"seconds": stats.seconds}

    original, meta, cached = experiment.cache.get_or_build(
        {"kind": ORIGINAL, "identity": experiment.identity, "seed": seed}, experiment.make_model(seed), build)
    log.info("seed %d: original model %s", seed, "loaded from cache" if cached else f"trained in {meta['seconds']:.0f} s")
    return AdversarialSeed(experiment, c, seed, train_base, test, pool, original, meta["seconds"], cached)


def test_accuracy(model: nn.Module, samples: Samples) -> float:
    return accuracy(predict_logits(model, samples), samples.labels)


def forget_hash(ids: Tensor) -> str:
    return hashlib.sha256(ids.numpy().tobytes()).hexdigest()


def measure(model: nn.Module, split) -> dict[str, float]:
    """TA, VA and UA (100 − accuracy on the requested samples)."""
    return {"TA": test_accuracy(model, split.test), "VA": test_accuracy(model, split.val),
            "UA": 100.0 - test_accuracy(model, split.forget)}


# --- the damage recipe ------------------------------------------------------------------------------
def run_damage(config: AdversarialConfig, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """For every seed × strategy × budget: the original's TA, the Gold Standard's and each method's
    after unlearning, with damage (original − after) and excess damage (Gold Standard − after)."""
    out_dir = Path(config.out_dir or "runs/damage")
    store = RecordStore(out_dir)
    experiment = load_adversarial_experiment(config)
    rows = [ORIGINAL, REFERENCE] + config.method_names()
    methods = {m: create_method(m, **config.params.get(m, {})) for m in rows[1:]}
    params = {m: method_params(method) for m, method in methods.items()}
    # rows that unlearn from a start of their own (SISA's ensemble) measure damage from it
    own_start = {m for m, method in methods.items() if hasattr(method, "start_model")}
    adv = {s: adversary_params(create_adversary(s, **config.adversary.get(s, {}))) for s in config.strategies}

    def key(seed: int, strategy: str, budget: float, row: str) -> str:
        return digest({"experiment": experiment.digest, "seed": seed, "strategy": strategy, "adversary": adv[strategy],
                       "budget": budget, "row": row, "params": params.get(row, {}),
                       **({"damage_from": "start_model"} if row in own_start else {})})

    recorded = store.keys()
    for seed in config.seeds:
        seed_setup = None
        for strategy in config.strategies:
            for budget in config.budgets:
                pending = [r for r in rows if key(seed, strategy, budget, r) not in recorded]
                log.info("seed %d, %s %s: %d of %d rows to run", seed, strategy, budget_label(budget), len(pending), len(rows))
                if dry_run or not pending:
                    continue
                seed_setup = seed_setup or prepare_adversarial_seed(experiment, config, seed)
                ids = seed_setup.request(strategy, budget)
                setup = seed_setup.setup(ids)
                gold, gold_seconds, gold_cached = setup.oracle()
                ta_original = test_accuracy(seed_setup.original, setup.split.test)
                ta_gold = test_accuracy(gold, setup.split.test)
                context = {"experiment": experiment.digest, "config": plain(config), "seed": seed, "strategy": strategy,
                           "adversary": adv[strategy], "knowledge": create_adversary(strategy, **config.adversary.get(strategy, {})).knowledge,
                           "budget": budget, "n_train": len(seed_setup.base.train), "n_forget": len(ids),
                           "forget_ids_sha256": forget_hash(ids), "code_version": code_version(),
                           "ta_original": ta_original, "ta_gold": ta_gold}
                for row in pending:
                    rec = {"key": key(seed, strategy, budget, row), **context, "row": row,
                           "method": None if row == ORIGINAL else row, "params": params.get(row, {}),
                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                    try:
                        if row == ORIGINAL:
                            model, seconds, cached = seed_setup.original, 0.0, True
                        elif row == REFERENCE:
                            model, seconds, cached = gold, gold_seconds, gold_cached
                        else:
                            log.info("seed %d, %s %s: %s", seed, strategy, budget_label(budget), row)
                            method = methods[row]
                            model, seconds, cached = setup.run_method(method)
                            if row in own_start:  # SISA: its own ensemble, not the single original
                                start = method.start_model(seed_setup.original, setup.split,
                                                           generator=setup.method_generator(method.name))
                                rec["ta_start"] = test_accuracy(start, setup.split.test)
                        check_finite_model(model, row)
                        m = measure(model, setup.split)
                        rec.update(status="ok", metrics=m, damage=rec.get("ta_start", ta_original) - m["TA"],
                                   excess_damage=ta_gold - m["TA"],
                                   seconds=seconds, from_cache=cached, time_vs_retrain=seconds / gold_seconds if gold_seconds else None)
                    except TrainingError as e:
                        log.error("seed %d: %s failed: %s", seed, row, e)
                        rec.update(status="failed", error=str(e), metrics={}, seconds=float("nan"))
                    store.append(rec)
        if not dry_run:
            write_report(out_dir, [r for r in store if r.get("experiment") == experiment.digest], kind="damage")
    return [r for r in store if r.get("experiment") == experiment.digest]


def write_report(out_dir: Path, records: list[dict[str, Any]], *, kind: str) -> str:
    """Write ``table.md`` (and ``<kind>.png`` when matplotlib is installed); return the Markdown."""
    from ..report.adversarial import damage_report, heal_report, plot_damage

    if kind == "damage":
        png = plot_damage(records, out_dir / "damage.png")
        text = damage_report(records, plot=png)
    else:
        text = heal_report(records)
    write_atomic(out_dir / "table.md", text)
    return text
