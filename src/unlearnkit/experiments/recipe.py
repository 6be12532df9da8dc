"""The experiment recipe: data → original model → forget request → unlearn → audit → record.

Reads top to bottom. For every seed: carve D_v, train (or load) the original model, draw the
forget set, train (or load) the retrain oracle, then run and audit every method, appending one
record per (seed, row). Rows already recorded are skipped, so an interrupted run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.dataset import Dataset, load_dataset
from ..data.scenarios import select_forget_ids
from ..data.splits import ForgetSplit, base_split, forget_split
from ..errors import TrainingError
from ..methods.base import create_method, list_methods, method_params
import numpy as np

from ..metrics.audit import audit_with_outputs, avg_disparity, per_sample_values
from ..models.base import create_model
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
    return Path("runs") / f"{config.data.name}-{config.model.name}-{scenario}"


def dataset_fingerprint(ds: Dataset) -> str:
    h = hashlib.sha256()
    for t in (ds.train.x, ds.train.y, ds.test.x, ds.test.y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def experiment_identity(config: RunConfig, fingerprint: str) -> dict[str, Any]:
    """What determines the results, apart from seed and method: the record key's base.

    Top-level options left at their defaults are omitted, so adding a new option (with a default
    that reproduces the old behaviour) keeps existing records and cached models valid.
    """
    d = to_dict(config)
    for k in ("methods", "params", "seeds", "out_dir", "cache_dir", "noise_floor"):
        d.pop(k)
    defaults = to_dict(RunConfig())
    for k in [k for k in d if k not in ("data", "model", "train", "forget") and d[k] == defaults[k]]:
        d.pop(k)
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


def run_experiment(config: RunConfig, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """Run ``config``; return the records of this experiment (old and new), seed by seed."""
    out_dir = Path(config.out_dir) if config.out_dir else default_out_dir(config)
    store = RecordStore(out_dir)
    cache = ModelCache(config.cache_dir)
    dataset = load_dataset(config.data.name, **_dataset_kwargs(config))
    identity = experiment_identity(config, dataset_fingerprint(dataset))
    experiment = digest(identity)
    rows = rows_for(config)
    recorded = store.keys()
    key = lambda seed, row: digest({"experiment": experiment, "seed": seed, "row": row.label,  # noqa: E731
                                    "trial": row.trial, "params": row.params})

    for seed in config.seeds:
        pending = [r for r in rows if key(seed, r) not in recorded]
        log.info("seed %d: %d of %d rows to run%s", seed, len(pending), len(rows),
                 f" ({', '.join(r.label for r in pending)})" if pending else "")
        if dry_run or not pending:
            continue
        # 1. data: validation carved from the training file; test never trained on
        base, test = base_split(dataset, val_fraction=config.data.val_fraction, train_subset=config.data.train_subset,
                                test_subset=config.data.test_subset, seed=seed)
        # 2. the original model, trained on D_r ∪ D_f (independent of the forget request)
        def make_model() -> nn.Module:
            return create_model(config.model.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                                seed=derive_seed(seed, "init"), **config.model.options)

        def build_original() -> tuple[nn.Module, dict[str, Any]]:
            model = make_model()
            stats = train(model, base.train, config.train, generator=generator(seed, "original"), desc="original")
            return model, {"seconds": stats.seconds, "final_loss": stats.final_loss}

        original_identity = {k: v for k, v in identity.items() if k != "forget"}  # independent of the request
        original, original_meta, cached = cache.get_or_build(
            {"kind": "original", "identity": original_identity, "seed": seed}, make_model(), build_original)
        log.info("seed %d: original model %s (%.1f s to train)", seed, "loaded from cache" if cached else "trained",
                 original_meta["seconds"])
        # 3. the forget request, validated before any model is touched
        forget_ids = select_forget_ids(base.train, config.forget, generator=generator(seed, "forget"))
        split = forget_split(base, test, forget_ids, config.train,
                             config.forget.forget_class if config.forget.scenario == "class" else None)
        context = {"experiment": experiment, "config": to_dict(config), "seed": seed, "code_version": code_version(),
                   "out_dir": str(out_dir), "n_retain": len(split.retain), "n_forget": len(split.forget),
                   "forget_ids_sha256": hashlib.sha256(split.forget.ids.numpy().tobytes()).hexdigest()}
        # 4. the retrain oracle (cached by content) and its audit: the reference of every row
        def unlearn(row: Row) -> tuple[nn.Module, float, bool]:
            method = create_method(row.method, **config.params.get(row.method, {}))
            def build() -> tuple[nn.Module, dict[str, Any]]:
                start = time.perf_counter()
                model = method.unlearn(original, split, generator=generator(seed, "method", row.method, row.trial))
                return model, {"seconds": time.perf_counter() - start}
            if row.method == REFERENCE:
                model, meta, was_cached = cache.get_or_build(
                    {"kind": "retrain", "identity": identity, "seed": seed, "trial": row.trial,
                     "forget": context["forget_ids_sha256"], "params": row.params}, make_model(), build)
                return model, meta["seconds"], was_cached
            model, meta = build()
            return model, meta["seconds"], False

        def measure(model: nn.Module, record_key: str) -> dict[str, float]:
            """Audit ``model``; keep its per-sample values in samples/<record key>.npz."""
            metrics, outs = audit_with_outputs(model, split, attacks=config.attacks)
            save_samples(out_dir / "samples" / f"{record_key}.npz", per_sample_values(outs, split))
            return metrics

        reference_row = rows[1]
        reference_record = store.get(key(seed, reference_row))
        if reference_record is None:
            ref_model, ref_seconds, ref_cached = unlearn(reference_row)
            reference_record = _record(key(seed, reference_row), reference_row, context,
                                       measure(ref_model, key(seed, reference_row)), ref_seconds, ref_cached, None,
                                       ref_seconds)
            store.append(reference_record)
        reference = reference_record["metrics"]
        ref_seconds = reference_record["seconds"]
        # 5. every other row: run, audit, compare with the oracle, record
        for row in rows:
            k = key(seed, row)
            if k in recorded or row is reference_row:
                continue
            log.info("seed %d: %s", seed, row.label)
            try:
                if row.method is None:
                    model, seconds, was_cached = original, 0.0, True
                else:
                    model, seconds, was_cached = unlearn(row)
                check_finite_model(model, row.label)
                rec = _record(k, row, context, measure(model, k), seconds, was_cached, reference, ref_seconds)
            except TrainingError as e:
                log.error("seed %d: %s failed: %s", seed, row.label, e)
                rec = {**_record(k, row, context, {}, float("nan"), False, None, ref_seconds), "status": "failed",
                       "error": str(e)}
            store.append(rec)
        from ..report.table import experiment_report  # late import: report depends on records only
        write_atomic(out_dir / "table.md", experiment_report([r for r in store if r.get("experiment") == experiment]))
    return [r for r in store if r.get("experiment") == experiment]


def _record(key: str, row: Row, context: dict[str, Any], metrics: dict[str, float], seconds: float, cached: bool,
            reference: dict[str, float] | None, ref_seconds: float) -> dict[str, Any]:
    disparity = avg_disparity(metrics, reference) if reference is not None and metrics else (0.0 if row.label == REFERENCE else None)
    return {
        "key": key, **context, "row": row.label, "method": row.method, "trial": row.trial, "params": row.params,
        "status": "ok", "metrics": metrics, "avg_disparity": disparity, "seconds": seconds, "from_cache": cached,
        "time_vs_retrain": seconds / ref_seconds if ref_seconds else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


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
