"""The experiment recipe: data → original model → forget request → unlearn → audit → record.

Reads top to bottom. For every seed: carve D_v, train (or load) the original model, draw the
forget set, train (or load) the retrain oracle, then run and audit every method, appending one
record per (seed, row). Rows already recorded are skipped, so an interrupted run resumes. Each
(seed, row) is a job (:func:`run_row`) that a backend (backends.py: in process, or Ray) runs;
the driver (:func:`run_experiment`) alone writes the records.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..adversary.scenario import check_scenario, request_ids
from ..attacks.samia import samia_audit
from ..backends import Backend, LocalBackend
from ..data.dataset import Dataset, load_dataset
from ..data.splits import ForgetSplit, base_split, forget_split
from ..errors import TrainingError
from ..methods.base import create_method, list_methods, method_params
from ..metrics.audit import AUDIT_VERSION, audit_version, audit_with_outputs, avg_disparity, per_sample_values
from ..models.base import create_model
from ..sparsity.masks import attach_masks, masks_of, prunable, sparsity_of
from ..sparsity.omp import omp_rewind
from ..training.loop import train
from ..version import code_version
from .cache import ModelCache
from .config import RunConfig, digest, to_dict
from .records import RecordStore, write_atomic

log = logging.getLogger("unlearnkit")
REFERENCE = "retrain"
ORIGINAL = "original"


def derive_seed(*parts: Any) -> int:
    """A 62-bit seed from any JSON-able parts: each (seed, purpose) gets its own stream."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:15], 16)


def generator(*parts: Any) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


def default_out_dir(config: RunConfig) -> Path:
    scenario = config.forget.scenario + (f"{config.forget.forget_class}" if config.forget.scenario == "class" else "")
    sparse = f"-sparse{config.sparsity:g}" if config.sparsity else ""
    return Path("runs") / f"{config.data.name}-{config.model.name}-{scenario}{sparse}"


def dataset_fingerprint(ds: Dataset) -> str:
    h = hashlib.sha256()
    for t in (ds.train.x, ds.train.y, ds.test.x, ds.test.y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def experiment_identity(config: RunConfig, fingerprint: str) -> dict[str, Any]:
    """What determines the results, apart from seed and method: the record key's base.

    Top-level options left at their defaults are omitted, so adding a new option (with a default
    that reproduces the old behaviour) keeps existing records and cached models valid. A dense run
    (``sparsity`` 0) ignores ``sparsity_rewind``.
    """
    d = to_dict(config)
    for k in ("methods", "params", "seeds", "out_dir", "cache_dir", "noise_floor", "samia"):
        d.pop(k)
    defaults = to_dict(RunConfig())
    for k in [k for k in d if k not in ("data", "model", "train", "forget") and d[k] == defaults[k]]:
        d.pop(k)
    if not config.sparsity:
        d.pop("sparsity_rewind", None)
    d["data"].pop("data_dir")
    d["data_fingerprint"] = fingerprint
    return d


@dataclass(frozen=True)
class Row:
    """One line of the table for one seed: the original, the oracle, the noise floor or a method."""

    label: str
    method: str | None
    trial: int
    params: dict[str, Any]


def rows_for(config: RunConfig) -> list[Row]:
    methods = config.methods or tuple(list_methods())
    params = lambda m: method_params(create_method(m, **config.params.get(m, {})))  # noqa: E731
    rows = [Row(ORIGINAL, None, 0, {}), Row(REFERENCE, REFERENCE, 0, params(REFERENCE))]
    if config.noise_floor:
        rows.append(Row("retrain (2nd seed)", REFERENCE, 1, params(REFERENCE)))
    rows += [Row(m, m, 0, params(m)) for m in methods if m != REFERENCE]
    return rows


def check_finite_model(model: nn.Module, label: str) -> None:
    bad = [n for n, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad:
        raise TrainingError(f"{label} produced non-finite weights (e.g. {bad[:3]})")


@dataclass(frozen=True, eq=False)
class Experiment:
    """What every seed of a config shares: the dataset, the experiment's identity, its cache and rows."""

    config: RunConfig
    dataset: Dataset
    identity: dict[str, Any]
    digest: str
    cache: ModelCache

    def make_model(self, seed: int, *, masks_like: nn.Module | None = None) -> nn.Module:
        """A freshly initialised model of the configured architecture (init drawn from ``seed``);
        with ``masks_like``, carrying that model's pruning masks (e.g. a cache template of a sparse run)."""
        c = self.config
        model = create_model(c.model.name, num_classes=self.dataset.num_classes, input_shape=self.dataset.input_shape,
                             seed=derive_seed(seed, "init"), **c.model.options)
        masks = masks_of(masks_like) if masks_like is not None else {}
        return attach_masks(model, masks) if masks else model


def load_experiment(config: RunConfig) -> Experiment:
    """Load the data of ``config`` and fix its identity (the base of every record and cache key)."""
    check_scenario(config.forget)
    dataset = load_dataset(config.data.name, **_dataset_kwargs(config))
    identity = experiment_identity(config, dataset_fingerprint(dataset))
    return Experiment(config, dataset, identity, digest(identity), ModelCache(config.cache_dir))


@dataclass(frozen=True, eq=False)
class SeedSetup:
    """One seed of an experiment, ready for unlearning: D_v carved, the original model trained (or
    loaded from the cache), the forget request drawn and validated, and the split built."""

    experiment: Experiment
    seed: int
    original: nn.Module
    original_seconds: float
    original_cached: bool
    split: ForgetSplit

    @property
    def forget_hash(self) -> str:
        return hashlib.sha256(self.split.forget.ids.numpy().tobytes()).hexdigest()

    def method_generator(self, method: str, trial: int = 0) -> torch.Generator:
        return generator(self.seed, "method", method, trial)

    def oracle(self, trial: int = 0, params: dict[str, Any] | None = None) -> tuple[nn.Module, float, bool]:
        """The retrain oracle ``(model, seconds, was_cached)``, cached by content (trial 1 = the noise floor)."""
        method = create_method(REFERENCE, **(params if params is not None else
                                             self.experiment.config.params.get(REFERENCE, {})))
        return self.run_method(method, trial, cache=True)

    def run_method(self, method, trial: int = 0, *, cache: bool = False) -> tuple[nn.Module, float, bool]:
        """Unlearn with ``method`` from the original; ``(model, seconds, was_cached)``."""
        def build() -> tuple[nn.Module, dict[str, Any]]:
            start = time.perf_counter()
            model = method.unlearn(self.original, self.split, generator=self.method_generator(method.name, trial))
            return model, {"seconds": time.perf_counter() - start}

        if not cache:
            model, meta = build()
            return model, meta["seconds"], False
        exp = self.experiment
        key = {"kind": method.name, "identity": exp.identity, "seed": self.seed, "trial": trial,
               "forget": self.forget_hash, "params": method_params(method)}
        model, meta, was_cached = exp.cache.get_or_build(key, exp.make_model(self.seed, masks_like=self.original), build)
        return model, meta["seconds"], was_cached


def prepare_seed(experiment: Experiment, seed: int) -> SeedSetup:
    """Steps 1–3 of the recipe for one seed: data split, original model, validated forget request."""
    config, dataset = experiment.config, experiment.dataset
    # 1. data: validation carved from the training file; test never trained on
    base, test = base_split(dataset, val_fraction=config.data.val_fraction, train_subset=config.data.train_subset,
                            test_subset=config.data.test_subset, seed=seed)

    # 2. the original model, trained on D_r ∪ D_f (independent of the forget request); with
    #    ``sparsity``, pruned from the dense one and retrained under its mask (sparsity/omp.py)
    def build_dense() -> tuple[nn.Module, dict[str, Any]]:
        model = experiment.make_model(seed)
        stats = train(model, base.train, config.train, generator=generator(seed, "original"), desc="original")
        return model, {"seconds": stats.seconds, "final_loss": stats.final_loss}

    dense_identity = {k: v for k, v in experiment.identity.items() if k not in ("forget", "sparsity", "sparsity_rewind")}

    def dense_original() -> tuple[nn.Module, dict[str, Any], bool]:
        return experiment.cache.get_or_build({"kind": "original", "identity": dense_identity, "seed": seed},
                                             experiment.make_model(seed), build_dense)

    def build_sparse() -> tuple[nn.Module, dict[str, Any]]:
        dense, dense_meta, dense_cached = dense_original()
        log.info("seed %d: dense original %s; pruning to %g%%", seed, "loaded from cache" if dense_cached else "trained",
                 100 * config.sparsity)
        start = time.perf_counter()
        model = omp_rewind(dense, experiment.make_model(seed), base.train, config.train, sparsity=config.sparsity,
                           rewind=config.sparsity_rewind, replay=generator(seed, "original"),
                           generator=generator(seed, "sparse original"))
        # the cost of a sparse original includes its dense parent
        return model, {"seconds": dense_meta["seconds"] + time.perf_counter() - start, "sparsity": sparsity_of(model)}

    if config.sparsity:
        original_identity = {k: v for k, v in experiment.identity.items() if k != "forget"}
        template = experiment.make_model(seed)  # with all-ones masks, replaced by the cached ones
        attach_masks(template, {n: torch.ones_like(w) for n, w in prunable(template).items()})
        original, meta, cached = experiment.cache.get_or_build(
            {"kind": "original-omp", "identity": original_identity, "seed": seed}, template, build_sparse)
    else:
        original, meta, cached = dense_original()
    log.info("seed %d: original model %s (%.1f s to train)", seed, "loaded from cache" if cached else "trained",
             meta["seconds"])
    # 3. the forget request, validated before any model is touched
    forget_ids = request_ids(base.train, config.forget, model=original, reference=base.val,  # adversarial:* reads the model
                             generator=generator(seed, "forget"))
    split = forget_split(base, test, forget_ids, config.train,
                         config.forget.forget_class if config.forget.scenario == "class" else None)
    return SeedSetup(experiment, seed, original, meta["seconds"], cached, split)


@dataclass(frozen=True)
class RowJob:
    """One row of one seed: the unit a backend runs (``out_dir`` only goes into the record)."""

    seed: int
    row: Row
    key: str
    out_dir: str


_SETUPS: "weakref.WeakKeyDictionary[Experiment, dict[int, SeedSetup]]" = weakref.WeakKeyDictionary()


def seed_setup(experiment: Experiment, seed: int) -> SeedSetup:
    """:func:`prepare_seed`, done once per seed for each experiment object in a process."""
    setups = _SETUPS.setdefault(experiment, {})
    if seed not in setups:
        setups[seed] = prepare_seed(experiment, seed)
    return setups[seed]


def _prepare_job(experiment: Experiment, seed: int) -> None:
    seed_setup(experiment, seed)


def run_row(experiment: Experiment, job: RowJob) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Steps 4–5 of the recipe for one (seed, row): unlearn (or load from the cache) and audit.

    Returns the record, still without its comparison with the oracle (the driver adds it), and the
    per-sample values. Writes nothing but the content-addressed model caches, so it can run
    anywhere and run twice.
    """
    config, row = experiment.config, job.row
    setup = seed_setup(experiment, job.seed)
    split = setup.split
    log.info("seed %d: %s", job.seed, row.label)
    record = {"key": job.key, "experiment": experiment.digest, "config": to_dict(config), "seed": job.seed,
              "code_version": code_version(), "audit": AUDIT_VERSION, "out_dir": job.out_dir,
              "n_retain": len(split.retain), "n_forget": len(split.forget), "n_test": len(split.test),
              "forget_ids_sha256": setup.forget_hash,
              "sparsity": sparsity_of(setup.original), "row": row.label, "method": row.method, "trial": row.trial,
              "params": row.params}
    try:
        if row.method is None:
            model, seconds, cached = setup.original, 0.0, True
        elif row.method == REFERENCE:
            model, seconds, cached = setup.oracle(row.trial, config.params.get(REFERENCE, {}))
        else:
            model, seconds, cached = setup.run_method(create_method(row.method, **config.params.get(row.method, {})),
                                                      row.trial)
        # a method with a one-off set-up (SISA trains, or loads, its ensemble of the full training
        # set first) times its unlearning itself: the set-up is training, not unlearning
        if getattr(model, "unlearning_seconds", None) is not None:
            seconds = model.unlearning_seconds
        check_finite_model(model, row.label)
        metrics, outs = audit_with_outputs(model, split, attacks=config.attacks)
        if config.samia:
            metrics.update(samia_audit(model, split, seed=job.seed))
    except TrainingError as e:
        if row.label == REFERENCE:
            raise  # no table without its reference
        log.error("seed %d: %s failed: %s", job.seed, row.label, e)
        return {**record, "status": "failed", "error": str(e), "metrics": {}, "seconds": float("nan"),
                "from_cache": False}, None
    cost = getattr(model, "cost", None)
    record.update(status="ok", metrics=metrics, seconds=seconds, from_cache=cached, **({"cost": cost} if cost else {}))
    return record, per_sample_values(outs, split)


def run_experiment(config: RunConfig, *, dry_run: bool = False, backend: Backend | None = None
                   ) -> list[dict[str, Any]]:
    """Run ``config``; return its records (old and new, for its seeds, rows and hyperparameters,
    of the current audit protocol: a row recorded under an older one is rerun).

    The driver lists the (seed, row) jobs not yet recorded; ``backend`` (default: this process, in
    order) first prepares each seed, so that the original model is in the content-addressed cache
    before parallel jobs need it, then runs the jobs (:func:`run_row`). The driver alone writes
    records: each as it arrives (a row waits for its seed's oracle, which its record is compared
    with), once per key, so a job that a backend reran after its worker died is recorded once and
    nothing recorded before is touched.
    """
    backend = backend or LocalBackend()
    out_dir = Path(config.out_dir) if config.out_dir else default_out_dir(config)
    store = RecordStore(out_dir)
    experiment = load_experiment(config)
    rows = rows_for(config)
    # a record of an older audit protocol does not count as written: its row is rerun, and the new
    # record (same key, appended after it) supersedes it (unless the two protocols agree on this data)
    n_test = config.data.test_subset or len(experiment.dataset.test)
    current = lambda: (r for r in store if audit_version(r, n_test) == AUDIT_VERSION)  # noqa: E731
    recorded = {r["key"]: r for r in current()}
    written = set(recorded)
    key = lambda seed, row: digest({"experiment": experiment.digest, "seed": seed, "row": row.label,  # noqa: E731
                                    "trial": row.trial, "params": row.params})
    wanted = {key(seed, row) for seed in config.seeds for row in rows}
    mine = lambda: [r for r in current() if r["key"] in wanted]  # noqa: E731  (this config's rows only)

    jobs = []
    for seed in config.seeds:
        pending = [r for r in rows if key(seed, r) not in written]
        log.info("seed %d: %d of %d rows to run%s", seed, len(pending), len(rows),
                 f" ({', '.join(r.label for r in pending)})" if pending else "")
        jobs += [RowJob(seed, r, key(seed, r), str(out_dir)) for r in pending]
    if dry_run or not jobs:
        return mine()
    seeds = list(dict.fromkeys(job.seed for job in jobs))
    for _ in backend.map(_prepare_job, seeds, common=experiment):
        pass
    references = {seed: recorded.get(key(seed, rows[1])) for seed in seeds}
    waiting: dict[int, list] = {seed: [] for seed in seeds}

    def write(record: dict[str, Any], samples: dict[str, np.ndarray] | None) -> None:
        if record["key"] in written:
            return
        is_reference = record["row"] == REFERENCE
        record = _compared(record, None if is_reference else references[record["seed"]])
        if samples is not None:
            save_samples(out_dir / "samples" / f"{record['key']}.npz", samples)
        store.append(record)
        written.add(record["key"])
        if is_reference:
            references[record["seed"]] = record

    for _, (record, samples) in backend.map(run_row, jobs, common=experiment):
        seed = record["seed"]
        if record["row"] == REFERENCE:
            write(record, samples)
            for item in waiting.pop(seed, []):
                write(*item)
        elif references[seed] is None:
            waiting[seed].append((record, samples))
        else:
            write(record, samples)
    from ..report.attack_plot import plot_attacks  # late imports: report depends on records only
    from ..report.table import experiment_report

    records = mine()
    text = experiment_report(records)
    png = plot_attacks(records, out_dir / "attacks.png")
    write_atomic(out_dir / "table.md", text + (f"\n![Membership attacks per method]({png.name})\n" if png else ""))
    return records


def _compared(record: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """``record`` with its distance to the oracle's ``reference`` record (None: it is the oracle)."""
    ok = record["status"] == "ok" and record["metrics"]
    if reference is None:
        disparity, ref_seconds = 0.0, record["seconds"]
    else:
        disparity = avg_disparity(record["metrics"], reference["metrics"]) if ok else None
        ref_seconds = reference["seconds"]
    return {**record, "avg_disparity": disparity, "time_vs_retrain": record["seconds"] / ref_seconds if ref_seconds else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def save_samples(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write per-sample arrays atomically (a record's companion file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _dataset_kwargs(config: RunConfig) -> dict[str, Any]:
    kwargs = dict(config.data.options)
    if config.data.data_dir is not None:
        kwargs["data_dir"] = config.data.data_dir
    if config.data.path is not None:
        kwargs["path"] = config.data.path
    return kwargs
