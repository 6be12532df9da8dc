"""Per-seed setup shared by every recipe: data split, reserve pool, original model, validated request.

For a seed: carve D_v from the training file (and, for damage and healing, hold a reserve pool out
of the original's training), check a request that needs no model (``random``, ``class``, ``ids``)
*before* any training, train (or load) the original (dense, or OMP-pruned from the dense one), then
draw requests that read the model (``adversarial:*``, damage strategies). Models are cached by
content (cache.py), so every recipe, seed and process shares them.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..adversary.base import adversary_params, create_adversary
from ..adversary.scenario import is_adversarial, request_ids
from ..data.pool import Samples
from ..data.scenarios import select_forget_ids, validate_forget_ids
from ..data.splits import BaseSplit, ForgetSplit, base_split, forget_split
from ..errors import ConfigError
from ..methods.base import cache_key_part, create_method, unlearn_measured
from ..sparsity.masks import attach_masks, prunable, sparsity_of
from ..sparsity.omp import omp_rewind
from ..training.loop import train
from ..utils.files import write_atomic
from ..utils.sampling import stratified_subset
from ..utils.seeding import derived_generator as generator
from .config import digest
from .experiment import Experiment
from .guard import check_collapse, retained_accuracy

log = logging.getLogger("unlearnkit")
REFERENCE = "retrain"
ORIGINAL = "original"


@dataclass(frozen=True, eq=False)
class SeedSetup:
    """One seed ready for unlearning: D_v carved, the original trained (or loaded), the request
    validated and the split built."""

    experiment: Experiment
    seed: int
    original: nn.Module
    original_seconds: float
    original_cached: bool
    split: ForgetSplit

    @property
    def forget_hash(self) -> str:
        return forget_hash(self.split.forget.ids)

    def method_generator(self, method: str, trial: int = 0) -> torch.Generator:
        return generator(self.seed, "method", method, trial)

    def oracle(self, trial: int = 0, params: dict[str, Any] | None = None) -> tuple[nn.Module, float, bool]:
        """The retrain oracle ``(model, seconds, was_cached)``, cached by content (trial 1 = the noise floor)."""
        method = create_method(REFERENCE, **(params if params is not None else
                                             self.experiment.config.params.get(REFERENCE, {})))
        run = self.run_method(method, trial, cache=True)
        return run.model, run.seconds, run.cached

    def run_method(self, method, trial: int = 0, *, cache: bool = False) -> MethodRun:
        """Unlearn with ``method`` from the original; the seconds are the unlearning alone, as the
        method measures it (methods/base.unlearn_measured). ``cache``: store the model by content."""
        start: list[Callable[[], nn.Module] | None] = [None]

        def build() -> tuple[nn.Module, dict[str, Any]]:
            out = unlearn_measured(method, self.original, self.split, generator=self.method_generator(method.name, trial))
            start[0] = out.start
            return out.model, {"seconds": out.seconds, **({"cost": out.cost} if out.cost else {})}

        if not cache:
            model, meta = build()
            return MethodRun(model, meta["seconds"], False, meta.get("cost"), start[0])
        exp = self.experiment
        key = {"kind": method.name, "identity": exp.identity, "seed": self.seed, "trial": trial,
               "forget": self.forget_hash, **cache_key_part(method, self.split)}
        model, meta, was_cached = exp.cache.get_or_build(key, exp.make_model(self.seed, masks_like=self.original), build)
        return MethodRun(model, meta["seconds"], was_cached, meta.get("cost"), start[0])


    @cached_property
    def original_retained_accuracy(self) -> float:
        """The original's accuracy on retained validation data (the collapse guard's baseline)."""
        return retained_accuracy(self.original, self.split)[0]

    def check_collapse(self, method, run: MethodRun, guard: float, val_outputs: tuple[Tensor, Tensor] | None = None
                       ) -> float:
        """The drop of ``run``'s retained validation accuracy below the model it started from (the
        original, or SISA's ensemble), in points; CollapseError beyond ``guard`` (guard.py).
        ``val_outputs``: the run's outputs on D_v when its audit has them."""
        baseline = (retained_accuracy(run.start(), self.split)[0] if run.start is not None
                    else self.original_retained_accuracy)
        return check_collapse(method.name, run.model, self.split, baseline=baseline, guard=guard,
                              weaker=f"params.{method.name}: {method.weaker}" if getattr(method, "weaker", "") else "",
                              val_outputs=val_outputs)


class MethodRun(NamedTuple):
    """One method's unlearned model, its unlearning seconds, whether it came from the cache, the
    method's own cost bookkeeping, and (SISA) how to build the model it started from."""

    model: nn.Module
    seconds: float
    cached: bool
    cost: dict[str, Any] | None
    start: Callable[[], nn.Module] | None


@dataclass(frozen=True, eq=False)
class SeedOriginal:
    """One seed before any request: the base split (training IDs of the original, D_v), the test set,
    the reserve pool (damage and healing) and the original model trained on ``base.train``."""

    experiment: Experiment
    seed: int
    base: BaseSplit
    test: Samples
    pool: Samples | None
    original: nn.Module
    original_seconds: float
    original_cached: bool

    def setup(self, ids: Tensor, forget_class: int | None = None) -> SeedSetup:
        split = forget_split(self.base, self.test, ids, self.experiment.config.train, forget_class)
        return SeedSetup(self.experiment, self.seed, self.original, self.original_seconds, self.original_cached, split)

    def request(self, strategy: str, budget: float) -> Tensor:
        """The adversary's validated request on the original, cached by content beside the models."""
        config = self.experiment.config
        adversary = create_adversary(strategy, **config.adversary.get(strategy, {}))
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
        ids = adversary.select(self.original, self.base.train, int(budget) if budget >= 1 else float(budget),
                               generator=generator(self.seed, "adversary", strategy, budget), reference=self.base.val)
        ids = validate_forget_ids(ids, self.base.train, len(self.base.train.pool))
        log.info("seed %d: %s picked %d ids in %.1f s", self.seed, strategy, len(ids), time.perf_counter() - start)
        write_atomic(path, lambda tmp: np.save(tmp, ids.numpy()))
        return ids


def carve(experiment: Experiment, seed: int, reserve: int = 0) -> tuple[BaseSplit, Samples, Samples | None]:
    """D_v carved from the training file (outside an ``ids`` request's IDs), the test set, and
    ``reserve`` samples held out as a pool."""
    c = experiment.config
    base, test = base_split(experiment.dataset, val_fraction=c.data.val_fraction, train_subset=c.data.train_subset,
                            test_subset=c.data.test_subset, seed=seed, requested=experiment.requested)
    if not reserve:
        return base, test, None
    if not 0 < reserve < len(base.train):
        raise ConfigError(f"reserve={reserve} must be smaller than the training set ({len(base.train)})")
    pool_ids = stratified_subset(base.train.pool.y, base.train.ids, count=reserve, generator=generator(seed, "reserve"))
    keep = ~torch.isin(base.train.ids, pool_ids)
    return BaseSplit(base.dataset, base.train.take(keep), base.val), test, Samples(base.train.pool, pool_ids)


def train_original(experiment: Experiment, seed: int, base: BaseSplit, test: Samples, pool: Samples | None = None
                   ) -> SeedOriginal:
    """Train (or load) the original on ``base.train``; with ``sparsity``, pruned from the dense one
    and retrained under its mask (sparsity/omp.py), its cost including its dense parent's."""
    exp, c = experiment, experiment.config
    dense_identity = {k: v for k, v in exp.identity.items() if k not in ("forget", "sparsity", "sparsity_rewind")}

    def build_dense() -> tuple[nn.Module, dict[str, Any]]:
        model = exp.make_model(seed)
        stats = train(model, base.train, c.train, generator=generator(seed, "original"), desc="original")
        return model, {"seconds": stats.seconds, "final_loss": stats.final_loss}

    def dense() -> tuple[nn.Module, dict[str, Any], bool]:
        return exp.cache.get_or_build({"kind": ORIGINAL, "identity": dense_identity, "seed": seed},
                                      exp.make_model(seed), build_dense)

    def build_sparse() -> tuple[nn.Module, dict[str, Any]]:
        parent, parent_meta, parent_cached = dense()
        log.info("seed %d: dense original %s; pruning to %g%%", seed,
                 "loaded from cache" if parent_cached else "trained", 100 * exp.sparsity)
        start = time.perf_counter()
        model = omp_rewind(parent, exp.make_model(seed), base.train, c.train, sparsity=exp.sparsity,
                           rewind=c.sparsity_rewind, replay=generator(seed, "original"),
                           generator=generator(seed, "sparse original"))
        return model, {"seconds": parent_meta["seconds"] + time.perf_counter() - start, "sparsity": sparsity_of(model)}

    if exp.sparsity:
        template = exp.make_model(seed)  # with all-ones masks, replaced by the cached ones
        attach_masks(template, {n: torch.ones_like(w) for n, w in prunable(template).items()})
        identity = {k: v for k, v in exp.identity.items() if k != "forget"}
        original, meta, cached = exp.cache.get_or_build({"kind": "original-omp", "identity": identity, "seed": seed},
                                                        template, build_sparse)
    else:
        original, meta, cached = dense()
    log.info("seed %d: original model %s (%.1f s to train)", seed, "loaded from cache" if cached else "trained",
             meta["seconds"])
    return SeedOriginal(exp, seed, base, test, pool, original, meta["seconds"], cached)


def _model_free_request(experiment: Experiment, seed: int, base: BaseSplit) -> Tensor | None:
    request = experiment.config.forget
    if is_adversarial(request.scenario):
        return None
    return select_forget_ids(base.train, request, generator=generator(seed, "forget"))


def forget_ids_before_training(experiment: Experiment, seed: int) -> Tensor | None:
    """The validated request of a ``run`` seed when it needs no model (None for ``adversarial:*``):
    a bad IDs file or class is refused here, before any training."""
    return _model_free_request(experiment, seed, carve(experiment, seed)[0])


def prepare_seed(experiment: Experiment, seed: int) -> SeedSetup:
    """A ``run`` seed: data split, validated request (before training unless it reads the model),
    original model, split."""
    request = experiment.config.forget
    base, test, _ = carve(experiment, seed)
    ids = _model_free_request(experiment, seed, base)
    orig = train_original(experiment, seed, base, test)
    if ids is None:  # adversarial:* reads the model
        ids = request_ids(base.train, request, model=orig.original, reference=base.val,
                          generator=generator(seed, "forget"))
    return orig.setup(ids, request.forget_class if request.scenario == "class" else None)


def prepare_adversarial_seed(experiment: Experiment, seed: int) -> SeedOriginal:
    """A damage/heal seed: D_v carved, the reserve pool held out, the original trained on the rest."""
    base, test, pool = carve(experiment, seed, experiment.config.reserve)
    return train_original(experiment, seed, base, test, pool)


def forget_hash(ids: Tensor) -> str:
    return hashlib.sha256(ids.numpy().tobytes()).hexdigest()
