"""SISA training and exact unlearning, persisted in a folder (a *store*).

A store holds ``sisa.json`` (the configuration, the shard/slice plan, the IDs deleted so far, which
checkpoint file holds each (shard, stage), a fingerprint of the training data and the history of
deletions) and one checksummed checkpoint per (shard, stage) (``training/checkpoint.py``). A later
process opens the store and honours a deletion without the run that trained it.

Exactness. Stage r of shard s starts from the weights after stage r − 1 (fresh weights drawn from
``(seed, "init", s)`` for r = 0), trains with a fresh optimiser on the cumulative IDs of slices
0..r, and draws every random number (batch order, dropout) from ``(seed, "stage", s, r)``: never
from a stream shared with other stages. So a stage's result depends only on its start weights and
its IDs, and retraining stages r0..R−1 of a shard from the checkpoint of stage r0 − 1 gives, bit for
bit on CPU, the model that training the shard from scratch without the deleted IDs gives.

Budget. Each stage trains ``2E / (R + 1)`` epochs of its cumulative set, E being the single
model's epochs (Bourtoule et al.'s choice): a shard then processes as many samples as E epochs over
it, and a full SISA training as many as training one model for E epochs. Each stage follows the
budget's learning-rate schedule from the start (a restart per stage, as in SGDR).

Safety. A deletion is validated (integers, none repeated, none already deleted, all known)
before anything is written. Retrained checkpoints go to new files; ``sisa.json`` is replaced
atomically last and only then are the superseded files removed, so a crash leaves the store as it
was before the deletion. One writer at a time (a lock file).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..backends import Backend, LocalBackend
from ..data.dataset import cache_root
from ..data.pool import Pool, Samples
from ..errors import CheckpointError, ConfigError, DataError
from ..models.base import reinitialise
from ..models.masks import apply_masks, masks_of
from ..training.checkpoint import load_checkpoint, save_checkpoint, state_checksum
from ..training.config import TrainConfig, train_identity
from ..training.loop import scaled, train
from ..utils.files import write_atomic
from ..utils.seeding import derive_seed, derived_generator
from .ensemble import SisaEnsemble
from .plan import ShardPlan, check_deletion, first_affected, ids_digest, make_plan, retrain_samples

FORMAT = "unlearnkit-sisa/1"
log = logging.getLogger("unlearnkit")
MANIFEST = "sisa.json"


@dataclass(frozen=True, kw_only=True)
class SisaConfig:
    """S ``shards`` × R ``slices``, ``stratified`` dealing, the ``seed`` every stage's randomness
    derives from, and ``budget``: the single model's training recipe (see the module docstring)."""

    shards: int = 5
    slices: int = 4
    stratified: bool = True
    seed: int = 0
    budget: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name in ("shards", "slices"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"sisa.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            raise ConfigError(f"sisa.seed must be an integer, got {self.seed!r}")

    @property
    def stage_budget(self) -> TrainConfig:
        share = 2.0 / (self.slices + 1)
        return scaled(self.budget, epochs=self.budget.epochs * share, warmup_epochs=self.budget.warmup_epochs * share)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "budget": train_identity(asdict(self.budget))}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SisaConfig":
        return cls(**{**data, "budget": TrainConfig(**data["budget"])})


def data_fingerprint(pool: Pool, ids: Tensor) -> str:
    """SHA-256 of the IDs with their inputs and labels: names the training data of a store."""
    ids = torch.sort(ids).values
    h = hashlib.sha256(ids_digest(ids).encode())
    h.update(pool.x[ids].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(pool.y[ids].numpy().tobytes())
    return h.hexdigest()


def architecture(model: nn.Module) -> str:
    """What a shard model is, apart from its weights: its layers and its pruning masks."""
    masks = masks_of(model)
    return repr(model) + (f"\nmasks {state_checksum(masks)}" if masks else "")


# ---------------------------------------------------------------- one shard's stages (a backend job)
@dataclass(frozen=True)
class ShardJob:
    """Train stages ``start``..R−1 of ``shard`` from ``state`` (weights after stage start−1; None:
    fresh weights) on its ``slices`` (the shard's slice IDs, deleted IDs already removed)."""

    shard: int
    start: int
    state: dict[str, Tensor] | None
    slices: tuple[Tensor, ...]


@dataclass(frozen=True)
class ShardResult:
    shard: int
    start: int
    states: tuple[dict[str, Tensor], ...]  # after each stage start..R−1
    samples: int
    seconds: float


def train_shard(common: tuple[nn.Module, Pool, SisaConfig], job: ShardJob) -> ShardResult:
    """Run one :class:`ShardJob` (a pure function of its inputs; see the module docstring)."""
    template, pool, config = common
    begin = time.perf_counter()
    model = copy.deepcopy(template)
    if job.state is None:
        reinitialise(model, derived_generator(config.seed, "init", job.shard))
        apply_masks(model)
    else:
        model.load_state_dict(job.state)
    states, samples = [], 0
    for stage in range(job.start, config.slices):
        ids = torch.cat(job.slices[: stage + 1])
        if len(ids):  # a shard emptied by deletions up to here keeps its current weights
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(config.seed, "dropout", job.shard, stage))
                stats = train(model, Samples(pool, ids), config.stage_budget,
                              generator=derived_generator(config.seed, "stage", job.shard, stage),
                              desc=f"sisa shard {job.shard} slice {stage}")
            samples += stats.samples
        states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    return ShardResult(job.shard, job.start, tuple(states), samples, time.perf_counter() - begin)


def run_jobs(jobs: list[ShardJob], template: nn.Module, pool: Pool, config: SisaConfig,
             backend: Backend | None) -> dict[int, ShardResult]:
    backend = backend or LocalBackend()
    return {r.shard: r for _, r in backend.map(train_shard, jobs, common=(template, pool, config))}


# ---------------------------------------------------------------- reports
@dataclass(frozen=True)
class UnlearningReport:
    """What one deletion cost. ``full_retrain_samples``: what retraining every shard from scratch
    on the remaining data would process (the same as one single model's training, see above)."""

    deleted: int
    retrained: dict[int, int]  # shard → first retrained slice
    samples: int
    full_retrain_samples: int
    seconds: float

    @property
    def fraction_of_full_retrain(self) -> float:
        return self.samples / self.full_retrain_samples if self.full_retrain_samples else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "retrained": {str(k): v for k, v in self.retrained.items()},
                "samples": self.samples, "full_retrain_samples": self.full_retrain_samples, "seconds": self.seconds}


def build_ensemble(template: nn.Module, plan: ShardPlan, states: list[dict[str, Tensor]], *,
                   aggregation: str = "softmax") -> SisaEnsemble:
    """An ensemble of the shards that still hold data, each a copy of ``template`` with its weights."""
    device = next(template.parameters()).device
    members = []
    for shard, state in enumerate(states):
        if plan.shard_size(shard) == 0:
            continue
        member = copy.deepcopy(template)
        member.load_state_dict(state)
        members.append(member.to(device).eval())
    if not members:
        raise DataError("every SISA shard is empty: nothing is left to predict with")
    return SisaEnsemble(members, aggregation).eval()


@dataclass(frozen=True, eq=False)
class Unlearning:
    """The result of :meth:`SisaStore.unlearn`: the plan after the deletion, the final weights of
    every shard, the report, the deleted ``ids`` and the retrained shards' ``results``."""

    plan: ShardPlan
    states: list[dict[str, Tensor]]
    report: UnlearningReport
    ids: Tensor
    results: dict[int, ShardResult]

    def ensemble(self, template: nn.Module, *, aggregation: str = "softmax") -> SisaEnsemble:
        return build_ensemble(template, self.plan, self.states, aggregation=aggregation)


# ---------------------------------------------------------------- the store
class SisaStore:
    """A trained SISA ensemble on disk. Make one with :func:`train_sisa`; open one with :meth:`open`."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self._load(manifest)

    def _load(self, manifest: dict[str, Any]) -> None:
        root = self.root
        self.manifest = manifest
        try:
            self.config = SisaConfig.from_json(manifest["config"])
            self.plan = ShardPlan.from_json(manifest["plan"])
            self.deleted = torch.tensor(manifest["deleted"], dtype=torch.int64)
            self.generation = int(manifest["generation"])
            self.checkpoints: list[list[str]] = manifest["checkpoints"]
            self.fingerprint: str = manifest["fingerprint"]
            self.architecture: str = manifest["architecture"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{root / MANIFEST} is malformed ({type(e).__name__}: {e})") from e
        if (self.plan.num_shards, self.plan.num_slices) != (self.config.shards, self.config.slices) or \
                [len(c) for c in self.checkpoints] != [self.config.slices] * self.config.shards:
            raise CheckpointError(f"{root / MANIFEST} does not match its own configuration")

    @classmethod
    def open(cls, root: str | os.PathLike) -> "SisaStore":
        """Read a store's bookkeeping (checkpoints are read and verified when used).

        Raises:
            CheckpointError: no store there, or its ``sisa.json`` is unreadable or malformed.
        """
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise CheckpointError(f"no SISA store in {root} (missing {MANIFEST})")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path} is unreadable ({e})") from e
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not an unlearnkit SISA store")
        return cls(root, manifest)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.manifest.get("history", [])

    def state(self, shard: int, stage: int) -> dict[str, Tensor]:
        """The verified weights of ``shard`` after ``stage``."""
        path = self.root / self.checkpoints[shard][stage]
        state, meta = load_checkpoint(path)
        expected = {"shard": shard, "slice": stage, "ids_sha256": ids_digest(self.plan.cumulative(shard, stage))}
        if {k: meta.get(k) for k in expected} != expected:
            raise CheckpointError(f"{path} does not hold shard {shard} after slice {stage} of this plan")
        return state

    def check_inputs(self, pool: Pool, template: nn.Module) -> None:
        """Refuse data or an architecture other than the ones the store was trained with."""
        if architecture(template) != self.architecture:
            raise CheckpointError(f"the model given is not the architecture this SISA store was trained with:\n"
                                  f"{self.architecture}")
        all_ids = torch.cat([self.plan.ids(), self.deleted])
        if len(pool) <= int(all_ids.max()) or data_fingerprint(pool, all_ids) != self.fingerprint:
            raise DataError("the data given is not the data this SISA store was trained on (fingerprint differs)")

    def ensemble(self, template: nn.Module, *, aggregation: str = "softmax") -> SisaEnsemble:
        """The current ensemble (every shard after its last slice) on ``template``'s device."""
        states = [self.state(s, self.config.slices - 1) for s in range(self.config.shards)]
        return build_ensemble(template, self.plan, states, aggregation=aggregation)

    def unlearn(self, ids: Tensor, *, pool: Pool, template: nn.Module, backend: Backend | None = None,
                persist: bool = True) -> Unlearning:
        """Delete ``ids``: retrain only the shards that hold them, each once, from the checkpoint
        before its first affected slice.

        Args:
            ids: training IDs to delete (one request or a batch).
            pool: the training file the store was trained on (checked against its fingerprint).
            template: a model of the store's architecture (its weights are not used).
            backend: where the shard jobs run (default: in this process).
            persist: write the new checkpoints and bookkeeping (False: compute only, store untouched).

        Raises:
            ForgetRequestError: not integers, empty, repeated, already deleted, never trained on, or
                every ID left (nothing is written).
            DataError / CheckpointError: other data or architecture; a corrupted checkpoint.
        """
        if not persist:
            return self._unlearn(ids, pool=pool, template=template, backend=backend)
        with self._locked():
            self._load(SisaStore.open(self.root).manifest)  # another process may have deleted since
            _remove_unreferenced(self.root, self.checkpoints)  # leftovers of a crash
            result = self._unlearn(ids, pool=pool, template=template, backend=backend)
            self._commit(result, template)
            return result

    def _unlearn(self, ids: Tensor, *, pool: Pool, template: nn.Module, backend: Backend | None) -> Unlearning:
        ids = check_deletion(self.plan, self.deleted, ids)
        self.check_inputs(pool, template)
        begin = time.perf_counter()
        start = first_affected(self.plan, ids)
        plan = self.plan.without(ids)
        jobs = [ShardJob(s, r0, self.state(s, r0 - 1) if r0 > 0 else None, plan.slices[s])
                for s, r0 in sorted(start.items())]
        results = run_jobs(jobs, template, pool, self.config, backend)
        states = [results[s].states[-1] if s in results else self.state(s, self.config.slices - 1)
                  for s in range(self.config.shards)]
        budget = self.config.stage_budget
        report = UnlearningReport(
            deleted=len(ids), retrained=dict(sorted(start.items())), samples=sum(r.samples for r in results.values()),
            full_retrain_samples=retrain_samples(plan, {s: 0 for s in range(plan.num_shards)}, budget.epochs,
                                                 budget.batch_size),
            seconds=time.perf_counter() - begin)
        return Unlearning(plan, states, report, ids, results)

    def commit(self, result: Unlearning, template: nn.Module, *, generation: int | None = None) -> None:
        """Persist an unlearning computed with ``persist=False`` (e.g. after auditing it).

        ``generation``: the generation the store must reach (default: the next). A store already at
        that generation that has deleted ``result.ids`` is left as it is, so a caller that crashed
        after committing can commit again safely.

        Raises:
            CheckpointError: the store moved on since ``result`` was computed (another deletion),
                or ``generation`` is not the next one.
        """
        with self._locked():
            self._load(SisaStore.open(self.root).manifest)
            if generation is not None and generation == self.generation and \
                    bool(torch.isin(result.ids, self.deleted).all()):
                return
            target = self.generation + 1 if generation is None else generation
            if target != self.generation + 1 or self.plan.without(result.ids).to_json() != result.plan.to_json():
                raise CheckpointError(f"the SISA store in {self.root} is at generation {self.generation}; this "
                                      f"unlearning was computed for another state (asked for generation {target})")
            _remove_unreferenced(self.root, self.checkpoints)  # leftovers of a crash
            self._commit(result, template, target)

    def _commit(self, result: Unlearning, template: nn.Module, generation: int | None = None) -> None:
        generation = self.generation + 1 if generation is None else generation
        checkpoints = [list(c) for c in self.checkpoints]
        for s, shard_result in result.results.items():
            for offset, state in enumerate(shard_result.states):
                stage = shard_result.start + offset
                rel = f"shard{s:03d}/slice{stage:03d}-g{generation}.pt"
                _save_state(self.root / rel, template, state, {"shard": s, "slice": stage, "generation": generation,
                                                     "ids_sha256": ids_digest(result.plan.cumulative(s, stage))})
                checkpoints[s][stage] = rel
        manifest = {**self.manifest, "plan": result.plan.to_json(), "generation": generation,
                    "deleted": torch.sort(torch.cat([self.deleted, result.ids])).values.tolist(),
                    "checkpoints": checkpoints,
                    "history": self.history + [{**result.report.to_json(), "generation": generation,
                                                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}]}
        _write_manifest(self.root, manifest)
        self._load(manifest)
        _remove_unreferenced(self.root, checkpoints)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl  # POSIX; one writer at a time

        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _save_state(path: Path, template: nn.Module, state: dict[str, Tensor], meta: dict[str, Any]) -> None:
    holder = copy.deepcopy(template).cpu()
    holder.load_state_dict(state)
    save_checkpoint(path, holder, meta)


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    write_atomic(root / MANIFEST, json.dumps(manifest))


def _remove_unreferenced(root: Path, checkpoints: list[list[str]]) -> None:
    keep = {root / rel for shard in checkpoints for rel in shard}
    for path in root.glob("shard*/*.pt*"):
        if path not in keep:
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- training a store
def train_sisa(template: nn.Module, samples: Samples, config: SisaConfig, root: str | os.PathLike, *,
               backend: Backend | None = None, plan: ShardPlan | None = None) -> SisaStore:
    """Train a SISA ensemble of ``template``'s architecture on ``samples`` into the new folder ``root``.

    The store is built in a temporary sibling folder and renamed into place, so ``root`` either
    holds a complete store or nothing; if another process finished the same store first, that one
    is kept and returned.

    Args:
        template: a model of the shards' architecture (its weights are not used; masks are kept).
        samples: the training set (pool labels; relabelled samples are refused).
        config: shards, slices, stratification, seed and the single-model budget.
        root: the store's folder (must not hold a store yet).
        backend: where the shard jobs run (default: in this process).
        plan: an explicit shard/slice assignment instead of :func:`make_plan` (e.g. a plan with
            some IDs removed, to train the reference that an unlearning must equal).

    Raises:
        ConfigError: ``root`` already holds a store, fewer samples than shards × slices, a plan
            that does not fit the config or holds IDs twice or outside ``samples``, or relabelled samples.
    """
    root = Path(root)
    if (root / MANIFEST).exists():
        raise ConfigError(f"{root} already holds a SISA store; open it with SisaStore.open")
    if samples.targets is not None:
        raise ConfigError("SISA trains on the pool's labels; relabelled samples are not supported")
    if plan is None:
        plan = make_plan(samples.ids, samples.labels, shards=config.shards, slices=config.slices,
                         stratified=config.stratified, generator=derived_generator(config.seed, "plan"))
    elif (plan.num_shards, plan.num_slices) != (config.shards, config.slices):
        raise ConfigError(f"the plan has {plan.num_shards} × {plan.num_slices} parts, the config "
                          f"{config.shards} × {config.slices}")
    else:
        held = plan.ids()
        outside = held[~torch.isin(held, samples.ids)]
        if outside.numel():
            raise ConfigError(f"{outside.numel()} ids of the plan are not in the samples given: {outside[:5].tolist()}")
        twice = plan.repeated_ids()
        if twice.numel():
            raise ConfigError(f"the plan holds ids more than once: {twice[:5].tolist()}")
    begin = time.perf_counter()
    jobs = [ShardJob(s, 0, None, plan.slices[s]) for s in range(config.shards)]
    results = run_jobs(jobs, template, samples.pool, config, backend)
    seconds = time.perf_counter() - begin
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        checkpoints = []
        for s in range(config.shards):
            row = []
            for stage, state in enumerate(results[s].states):
                rel = f"shard{s:03d}/slice{stage:03d}-g0.pt"
                _save_state(tmp / rel, template, state, {"shard": s, "slice": stage, "generation": 0,
                                               "ids_sha256": ids_digest(plan.cumulative(s, stage))})
                row.append(rel)
            checkpoints.append(row)
        manifest = {"format": FORMAT, "config": config.to_json(), "architecture": architecture(template),
                    "fingerprint": data_fingerprint(samples.pool, plan.ids()), "plan": plan.to_json(),
                    "deleted": [], "generation": 0, "checkpoints": checkpoints,
                    "training": {"samples": sum(r.samples for r in results.values()), "seconds": seconds},
                    "history": []}
        _write_manifest(tmp, manifest)
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a successful rename; else the loser's copy
    return SisaStore.open(root)


def cached_store(template: nn.Module, samples: Samples, config: SisaConfig, *,
                 backend: Backend | None = None, root: str | os.PathLike | None = None) -> tuple[SisaStore, bool]:
    """The SISA store of ``(template's architecture, samples, config)``, trained on first use.

    Stores are content-addressed like the model cache: under ``root`` (default
    ``$UNLEARNKIT_CACHE/sisa``) in a folder named by the SHA-256 of the configuration, the
    architecture and the data fingerprint. Returns ``(store, was_cached)``. A store whose
    bookkeeping is unreadable is trained again.
    """
    device = next(template.parameters()).device.type
    key = {"format": FORMAT, "config": config.to_json(), "architecture": architecture(template),
           "fingerprint": data_fingerprint(samples.pool, samples.ids), **({"device": device} if device != "cpu" else {})}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    folder = Path(root) if root is not None else cache_root() / "sisa"
    path = folder / digest[:2] / digest
    if (path / MANIFEST).exists():
        try:
            store = SisaStore.open(path)
            if store.generation == 0 and store.fingerprint == key["fingerprint"]:
                return store, True
            raise CheckpointError(f"{path} was changed after training")
        except CheckpointError as e:
            log.warning("sisa cache: %s; training it again", e)
            shutil.rmtree(path, ignore_errors=True)
    return train_sisa(template, samples, config, path, backend=backend), False
