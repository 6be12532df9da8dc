"""SISA's bookkeeping: which training ID sits in which (shard, slice), and what a deletion costs.

Bourtoule et al. (2021), "Machine Unlearning", IEEE S&P: the training set is split into S disjoint
*shards*; each shard into R disjoint *slices*. Stage r of shard s trains on slices 0..r of that shard
(the cumulative set), resuming from the checkpoint saved after stage r − 1. Deleting an ID that sits
in slice r of shard s only invalidates stages r..R−1 of shard s.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.requests import validate_request
from ..errors import CheckpointError, ConfigError


def ids_digest(ids: Tensor) -> str:
    """SHA-256 of an int64 ID tensor (names a cumulative training set in a checkpoint)."""
    return hashlib.sha256(ids.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()


@dataclass(frozen=True, eq=False)
class ShardPlan:
    """``slices[s][r]``: the sorted int64 IDs in slice ``r`` of shard ``s``."""

    slices: tuple[tuple[Tensor, ...], ...]

    @property
    def num_shards(self) -> int:
        return len(self.slices)

    @property
    def num_slices(self) -> int:
        return len(self.slices[0])

    def ids(self) -> Tensor:
        """Every ID of the plan, sorted."""
        return torch.sort(torch.cat([t for shard in self.slices for t in shard])).values

    def repeated_ids(self) -> Tensor:
        """The IDs the plan holds in more than one place (empty for a valid plan)."""
        ids = self.ids()
        return torch.unique(ids[1:][ids[1:] == ids[:-1]])

    def cumulative(self, shard: int, stage: int) -> Tensor:
        """The IDs that stage ``stage`` of ``shard`` trains on: its slices 0..stage, in plan order."""
        return torch.cat(self.slices[shard][: stage + 1])

    def shard_size(self, shard: int) -> int:
        return sum(len(t) for t in self.slices[shard])

    def locate(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``(shard, slice)`` of each of ``ids``; ``-1`` for an ID the plan does not hold."""
        all_ids, shard_of, slice_of = [], [], []
        for s, shard in enumerate(self.slices):
            for r, part in enumerate(shard):
                all_ids.append(part)
                shard_of.append(torch.full_like(part, s))
                slice_of.append(torch.full_like(part, r))
        flat = torch.cat(all_ids)
        order = torch.argsort(flat)
        flat, shards, slices = flat[order], torch.cat(shard_of)[order], torch.cat(slice_of)[order]
        pos = torch.searchsorted(flat, ids).clamp_max(max(len(flat) - 1, 0))
        found = (flat[pos] == ids) if len(flat) else torch.zeros_like(ids, dtype=torch.bool)
        minus = torch.full_like(ids, -1)
        return torch.where(found, shards[pos], minus), torch.where(found, slices[pos], minus)

    def without(self, ids: Tensor) -> "ShardPlan":
        """The same plan with ``ids`` removed (every other ID keeps its shard and slice)."""
        return ShardPlan(tuple(tuple(t[~torch.isin(t, ids)] for t in shard) for shard in self.slices))

    def to_json(self) -> list[list[list[int]]]:
        return [[t.tolist() for t in shard] for shard in self.slices]

    @classmethod
    def from_json(cls, data: list) -> "ShardPlan":
        try:
            plan = cls(tuple(tuple(_id_list(part) for part in shard) for shard in data))
        except (TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"malformed SISA plan ({e})") from e
        if not plan.slices or len({len(shard) for shard in plan.slices}) != 1:
            raise CheckpointError("malformed SISA plan: shards must all have the same number of slices")
        twice = plan.repeated_ids()
        if twice.numel():
            raise CheckpointError(f"malformed SISA plan: ids in more than one place: {twice[:5].tolist()}")
        return plan


def _id_list(part: list) -> Tensor:
    """One slice of a JSON plan as int64 IDs (floats and booleans are refused, not truncated)."""
    if not isinstance(part, list):
        raise TypeError(f"a slice must be a list of ids, got {type(part).__name__}")
    ids = torch.tensor(part) if part else torch.empty(0, dtype=torch.int64)
    if ids.dim() != 1 or ids.dtype != torch.int64:
        raise ValueError(f"a slice must be a flat list of integers, got {ids.dtype} {tuple(ids.shape)}")
    return ids


def make_plan(ids: Tensor, labels: Tensor, *, shards: int, slices: int, generator: torch.Generator,
              stratified: bool = True) -> ShardPlan:
    """Deal ``ids`` (with their ``labels``) into ``shards`` × ``slices`` parts of near-equal size.

    The IDs are put in a seeded random order (with ``stratified``, grouped by class, random within
    a class) and dealt like cards: position p goes to shard p mod S, and within its shard to slice
    (p // S) mod R. Stratified dealing gives every shard and every slice the class proportions of the
    whole set, to within one sample per class.

    Raises:
        ConfigError: fewer IDs than shards × slices, or a non-positive count.
    """
    if shards < 1 or slices < 1:
        raise ConfigError(f"SISA needs at least one shard and one slice, got {shards} × {slices}")
    if len(ids) < shards * slices:
        raise ConfigError(f"cannot split {len(ids)} samples into {shards} shards × {slices} slices")
    order = torch.randperm(len(ids), generator=generator)
    if stratified:
        order = order[torch.sort(labels[order], stable=True).indices]
    dealt = ids[order]
    position = torch.arange(len(ids))
    shard_of, slice_of = position % shards, (position // shards) % slices
    return ShardPlan(tuple(
        tuple(torch.sort(dealt[(shard_of == s) & (slice_of == r)]).values for r in range(slices))
        for s in range(shards)))


def check_deletion(plan: ShardPlan, deleted: Tensor, ids: Tensor) -> Tensor:
    """Validate a deletion request against the plan; return the IDs as a sorted int64 tensor.

    The rules are :func:`~unlearnkit.data.requests.validate_request`'s, the training set being the
    IDs the plan still holds (``deleted`` ones are refused as already deleted).

    Raises:
        ForgetRequestError: empty, not integers, duplicated, already deleted, unknown to the plan, or
            every ID the plan still holds.
    """
    return validate_request(ids, plan.ids(), outside=[("already deleted", deleted)],
                            unknown="never in this SISA training set")


def first_affected(plan: ShardPlan, ids: Tensor) -> dict[int, int]:
    """Shard → the first slice that holds any of ``ids`` (only shards that hold some)."""
    shard, slice_ = plan.locate(ids)
    out: dict[int, int] = {}
    for s in torch.unique(shard).tolist():
        out[s] = int(slice_[shard == s].min())
    return out


def train_samples(n: int, epochs: float, batch_size: int) -> int:
    """Samples that train() processes for ``epochs`` over ``n`` samples (each epoch's last batch short)."""
    if n == 0:
        return 0
    steps_per_epoch = -(-n // batch_size)
    total = max(1, math.ceil(epochs * steps_per_epoch))  # as train() counts its steps
    full, rest = divmod(total, steps_per_epoch)
    return full * n + min(rest * batch_size, n)


def stage_samples(plan: ShardPlan, shard: int, stage: int, epochs: float, batch_size: int) -> int:
    """Samples that one stage of ``shard`` processes (0 if its cumulative set is empty)."""
    return train_samples(len(plan.cumulative(shard, stage)), epochs, batch_size)


def retrain_samples(plan: ShardPlan, start: dict[int, int], epochs: float, batch_size: int) -> int:
    """Samples processed to retrain each shard ``s`` in ``start`` from slice ``start[s]`` on."""
    return sum(stage_samples(plan, s, r, epochs, batch_size)
               for s, r0 in start.items() for r in range(r0, plan.num_slices))
