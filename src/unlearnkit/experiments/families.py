"""Model families for per-example audits (U-LiRA, KLoM): N originals, N oracles, N unlearned models.

For one seed and its forget request: the *originals* are N models trained on the same training set
(D_r ∪ D_f) from different training seeds — member 0 is the run's own original; the *oracles* are
N retrains without D_f — members 0 and 1 are the run's retrain oracle and its noise-floor retrain
(trials 0 and 1), so nothing is trained twice; the *unlearned* family of a method is that method
applied to each original — member 0 is the row's own model. Every other member is trained through
the model cache (cache.py): stored by content as soon as it is built (an interrupted run resumes
there), rebuilt when its file fails its checksum, shared by every method, row and process (Ray
workers find what ``prepare`` built). The originals and oracles are memoised per process.

Each member carries the hash of the forget set it was made for; a family whose members disagree
is refused (:meth:`Family.check`) before any figure is computed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..methods.base import Unlearner, cache_key_part, returns_ensemble, unlearn_measured
from ..metrics.per_example import Margins, audit_families, example_sets, family_margins, floor_audit
from ..progress import progress_bar
from ..training.loop import train
from ..utils.seeding import derive_seed, derived_generator as generator
from .experiment import check_finite_model, memo
from .setup import SeedSetup

log = logging.getLogger("unlearnkit")


def check_family_size(n: int) -> int:
    """``n`` when it is a usable family size (>= 2: one member to fit, one as target)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"audit.per_example must be 0 (off) or a family size >= 2 (one member to fit a "
                          f"distribution, one to test it), got {n!r}")
    return n


@dataclass(frozen=True)
class Family:
    """``kind``'s N models for one seed, the forget-set hash each was made for, the seconds each took
    to build (0 when it is a model the run made anyway) and whether it came from the cache."""

    kind: str
    models: tuple[nn.Module, ...]
    forget: tuple[str, ...]
    seconds: tuple[float, ...]
    cached: tuple[bool, ...]

    def check(self, forget_hash: str) -> "Family":
        """This family, or DataError when a member was made for another forget set than ``forget_hash``."""
        bad = [i for i, h in enumerate(self.forget) if h != forget_hash]
        if bad:
            raise DataError(f"{self.kind} family: member(s) {bad} were made for another forget set "
                            f"({self.forget[bad[0]][:12]}… instead of {forget_hash[:12]}…); the audit needs one "
                            "forget set for every member")
        return self


def _built(kind: str, setup: SeedSetup, n: int, member, first: tuple[nn.Module, float, bool] | None) -> Family:
    models, seconds, cached = [], [], []
    bar = progress_bar(n, f"seed {setup.seed}: {kind} family")
    for i in range(n):
        model, s, was_cached = first if (i == 0 and first is not None) else member(i)
        check_finite_model(model, f"{kind} family member {i}")
        models.append(model)
        seconds.append(s)
        cached.append(was_cached)
        bar.update(1)
    bar.close()
    built = n - sum(cached)
    log.info("seed %d: %s family of %d (%d built, %.1f s)", setup.seed, kind, n, built, sum(seconds))
    return Family(kind, tuple(models), (setup.forget_hash,) * n, tuple(seconds), tuple(cached))


def original_family(setup: SeedSetup, n: int) -> Family:
    """The run's original and n − 1 more trained on D_r ∪ D_f (sorted by ID) from their own seeds."""
    exp, seed = setup.experiment, setup.seed
    identity = {k: v for k, v in exp.identity.items() if k not in ("forget", "sparsity", "sparsity_rewind")}
    train_set = setup.split.train
    train_set = train_set.take(torch.argsort(train_set.ids))  # independent of which request drew D_f

    def member(i: int) -> tuple[nn.Module, float, bool]:
        def build() -> tuple[nn.Module, dict[str, Any]]:
            model = exp.make_model(derive_seed(seed, "family", i))
            stats = train(model, train_set, exp.config.train, generator=generator(seed, "family original", i),
                          desc=f"original {i}")
            return model, {"seconds": stats.seconds}
        key = {"kind": "family-original", "identity": identity, "seed": seed, "member": i}
        model, meta, was_cached = exp.cache.get_or_build(key, exp.make_model(seed), build)
        return model, meta["seconds"], was_cached

    def build_all() -> Family:
        return _built("original", setup, n, member, (setup.original, setup.original_seconds, setup.original_cached))
    return memo(exp, ("family", "original", seed, n), build_all)


def oracle_family(setup: SeedSetup, n: int) -> Family:
    """Retrain oracles of trials 0..n−1 (0: the run's oracle, 1: its noise-floor retrain)."""
    def member(i: int) -> tuple[nn.Module, float, bool]:
        return setup.oracle(i)
    return memo(setup.experiment, ("family", "oracle", setup.seed, n), lambda: _built("oracle", setup, n, member, None))


def unlearned_family(setup: SeedSetup, method: Unlearner, originals: Family,
                     first: tuple[nn.Module, float] | None = None) -> Family:
    """``method`` applied to each original (member 0: ``first``, the row's own model and its
    unlearning seconds, when given)."""
    exp, seed = setup.experiment, setup.seed
    identity = cache_key_part(method, setup.split)

    def member(i: int) -> tuple[nn.Module, float, bool]:
        def build() -> tuple[nn.Module, dict[str, Any]]:
            out = unlearn_measured(method, originals.models[i], setup.split,
                                   generator=generator(seed, "family method", method.name, i))
            return out.model, {"seconds": out.seconds}
        if returns_ensemble(method):  # an ensemble is not a model of the configured architecture: not cached
            model, meta = build()
            return model, meta["seconds"], False
        key = {"kind": "family-unlearned", "method": method.name, **identity, "identity": exp.identity,
               "seed": seed, "member": i, "forget": setup.forget_hash}
        model, meta, was_cached = exp.cache.get_or_build(key, exp.make_model(seed), build)
        return model, meta["seconds"], was_cached

    return _built(method.name, setup, len(originals.models), member, (*first, True) if first is not None else None)


def audit_sets(setup: SeedSetup, examples: int):
    """The example sets of a seed's per-example audit (the same for every row)."""
    return memo(setup.experiment, ("family sets", setup.seed, examples),
                lambda: example_sets(setup.split, examples, generator=generator(setup.seed, "per-example sets")))


def margins_of(setup: SeedSetup, family: Family, examples: int, *, memo_key: Any = None) -> Margins:
    """The family's margins on the seed's example sets (memoised per process under ``memo_key``)."""
    family.check(setup.forget_hash)
    compute = lambda: family_margins(family.models, audit_sets(setup, examples))  # noqa: E731
    return compute() if memo_key is None else memo(setup.experiment, ("family margins", setup.seed, examples, len(family.models), memo_key),
                                                   compute)


def prepare_families(setup: SeedSetup, n: int) -> None:
    """Build (or load) a seed's originals and oracles, so parallel jobs find them in the cache."""
    start = time.perf_counter()
    original_family(setup, check_family_size(n))
    oracle_family(setup, n)
    log.info("seed %d: families of %d ready in %.1f s", setup.seed, n, time.perf_counter() - start)


def audit_row(setup: SeedSetup, *, n: int, examples: int, method: Unlearner | None = None,
              model: tuple[nn.Module, float] | None = None, floor: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """One row's per-example audit: its family (the originals when ``method`` is None, else ``method``
    applied to them, member 0 = ``model``: the row's own model and seconds) against the oracles; ``floor``: half the oracles against
    the other half. Returns ``(figures, per-example arrays)``: the figures add ``seconds`` (this
    audit, families included), ``family_seconds`` (building the row's family) and
    ``oracle_family_seconds`` (training the oracles, as recorded when each was trained)."""
    start = time.perf_counter()
    check_family_size(n)
    oracles = oracle_family(setup, n)
    o = margins_of(setup, oracles, examples, memo_key="oracle")
    if floor:
        metrics, arrays = floor_audit(o)
        family_seconds = 0.0
    else:
        originals = original_family(setup, n)
        family = originals if method is None else unlearned_family(setup, method, originals, first=model)
        u = margins_of(setup, family, examples, memo_key="original" if method is None else None)
        metrics, arrays = audit_families(u, o)
        family_seconds = sum(family.seconds)
    sets = audit_sets(setup, examples)
    arrays = {f"pe_{k}": v for k, v in arrays.items()}
    arrays.update({f"pe_{name}_ids": s.ids.cpu().numpy() for name, s in sets.items()})
    metrics.update(n_models=float(n), seconds=time.perf_counter() - start, family_seconds=family_seconds,
                   oracle_family_seconds=float(sum(oracles.seconds)))
    return metrics, arrays
