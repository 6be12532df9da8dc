"""Spare reserves and twin indexes: real samples that replace deleted ones, each handed out once.

Bookkeeping. A reserve tracks every ID it started with — the training set plus the held-out spare
pool — and gives each exactly one status: *training*, *deleted* or *reserve*. A request moves the
deleted IDs from training to deleted and the spares handed out from reserve to training, so the
three sets always add up to the original set, and a spare leaves the reserve the moment it is
handed out. A request is checked whole before anything changes, by the rules every forget request
passes (:func:`~unlearnkit.data.requests.validate_request`): non-integer or empty requests,
duplicates, IDs already deleted, IDs still in the reserve, unknown IDs and the whole training set
raise ``ForgetRequestError`` and leave the reserve as it was.

Replacement policy ("parallel greedy in request order"). Every deleted sample has a list of its
``candidates`` nearest spares (same class by default). In rounds, every sample still waiting
proposes its nearest spare not yet handed out; a spare proposed by several goes to the earliest in
the request, and the others propose again in the next round. A sample whose list runs out searches
the remaining reserve again; one for which no spare is left (of its class) gets none (``-1``). The
earliest waiting sample always gets its nearest free spare, so the rounds end, and each round is
one vectorised step over all waiting samples.

:class:`SpareReserve` searches at request time; :class:`TwinIndex` precomputes the candidate lists
("twins") of every training sample when it is built, so a request costs a look-up.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.pool import Samples
from ..data.requests import validate_request
from ..errors import ConfigError, ForgetRequestError
from .neighbours import nearest
from .similarity import Embedder

TRAINING, DELETED, RESERVE = 0, 1, 2
POLICIES = ("nearest", "random")


@dataclass(frozen=True, eq=False)
class Replacements:
    """``spares[i]`` replaces ``deleted[i]`` (request order); ``-1`` where the reserve had none left."""

    deleted: Tensor
    spares: Tensor

    @property
    def handed_out(self) -> Tensor:
        return self.spares[self.spares >= 0]


class SpareReserve:
    """k spares held out of the original training; each deleted sample is replaced by its most
    similar spare still in the reserve (see the module docstring for the policy).

    Args:
        train: the samples the model was trained on (the training set of the ledger).
        spares: the reserve, disjoint from ``train``, from the same pool.
        embedder: a fitted similarity (healing/similarity.py).
        same_class: replace a sample only by a spare of its own label (default). The papers do not
            say; a spare of another class would teach the model the wrong region of the input space.
        candidates: neighbours kept per deleted sample before searching again.
        chunk: queries per block of the nearest-neighbour search.
    """

    def __init__(self, train: Samples, spares: Samples, embedder: Embedder, *, same_class: bool = True,
                 candidates: int = 8, chunk: int = 1024) -> None:
        if spares.pool is not train.pool:
            raise ConfigError("the spares must come from the same pool (file) as the training samples")
        if len(spares) == 0:
            raise ConfigError("the spare reserve is empty")
        if candidates < 1 or chunk < 1:
            raise ConfigError(f"candidates and chunk must be >= 1, got {candidates} and {chunk}")
        every = torch.cat([train.ids, spares.ids])
        ids, counts = torch.unique(every, return_counts=True)
        if (counts > 1).any():
            raise ConfigError(f"training and spare IDs must be distinct; repeated: {ids[counts > 1][:5].tolist()}")
        self.pool = train.pool
        self.embedder = embedder
        self.same_class = same_class
        self.candidates = candidates
        self.chunk = chunk
        self.ids = ids  # the original set, sorted
        self.status = torch.full((len(ids),), TRAINING, dtype=torch.int8)
        self.spare_ids = torch.sort(spares.ids).values
        self.spare_slots = torch.searchsorted(ids, self.spare_ids)
        self.status[self.spare_slots] = RESERVE
        self.spare_labels = self.pool.y[self.spare_ids]
        self.spare_embeddings = embedder(Samples(self.pool, self.spare_ids))

    # --- the ledger ---------------------------------------------------------------------------
    def _where(self, status: int) -> Tensor:
        return self.ids[self.status == status]

    @property
    def original_ids(self) -> Tensor:
        return self.ids

    @property
    def train_ids(self) -> Tensor:
        return self._where(TRAINING)

    @property
    def deleted_ids(self) -> Tensor:
        return self._where(DELETED)

    @property
    def reserve_ids(self) -> Tensor:
        return self._where(RESERVE)

    def copy(self) -> "SpareReserve":
        """An independent ledger over the same embeddings (for comparing policies from one state)."""
        other = copy.copy(self)
        other.status = self.status.clone()
        return other

    def check_request(self, ids: Tensor) -> Tensor:
        """Validate a deletion request against the ledger; return the IDs' slots. Changes nothing.

        Raises:
            ForgetRequestError: naming the first offending IDs.
        """
        validate_request(ids, self.train_ids, outside=[("already deleted", self.deleted_ids),
                                                       ("spares in the reserve, not in training", self.reserve_ids)],
                         unknown="unknown ids, never in training or the reserve")
        ids = torch.as_tensor(ids).long()
        slots = torch.searchsorted(self.ids, ids)
        return slots

    def request(self, ids: Tensor, *, policy: str = "nearest", generator: torch.Generator | None = None) -> Replacements:
        """Delete ``ids`` and hand out one spare for each while the reserve lasts.

        ``policy="nearest"``: the most similar free spare (parallel greedy, see the module);
        ``policy="random"``: a random free spare (of the same class with ``same_class``), drawn from
        ``generator`` — the control that shows whether similarity matters.
        """
        if policy not in POLICIES:
            raise ConfigError(f"unknown replacement policy {policy!r}; valid: {', '.join(POLICIES)}")
        if policy == "random" and generator is None:
            raise ConfigError("random replacements need a generator")
        slots = self.check_request(ids)
        ids = torch.as_tensor(ids).long()
        labels = self.pool.y[ids]
        free = self.status[self.spare_slots] == RESERVE
        chosen = self._assign_nearest(ids, labels, free) if policy == "nearest" else self._assign_random(labels, free, generator)
        # commit: nothing above changed the ledger
        self.status[slots] = DELETED
        self.status[self.spare_slots[chosen[chosen >= 0]]] = TRAINING
        spares = torch.where(chosen >= 0, self.spare_ids[chosen.clamp_min(0)], torch.full_like(chosen, -1))
        return Replacements(ids, spares)

    # --- matching -----------------------------------------------------------------------------
    def search(self, ids: Tensor, labels: Tensor, free: Tensor) -> Tensor:
        """``[len(ids), candidates]`` positions (into ``spare_ids``) of the nearest free spares, -1 padded."""
        k = min(self.candidates, len(self.spare_ids))
        queries = self.embedder(Samples(self.pool, ids))
        if not self.same_class:
            return nearest(queries, self.spare_embeddings, k=k, chunk=self.chunk, key_mask=free)[1]
        out = torch.full((len(ids), k), -1, dtype=torch.long)
        for c in torch.unique(labels).tolist():  # a loop over classes: each searches only its own spares
            rows, keys = torch.nonzero(labels == c).squeeze(1), torch.nonzero(self.spare_labels == c).squeeze(1)
            if len(keys) == 0:
                continue
            kc = min(k, len(keys))
            pos = nearest(queries[rows], self.spare_embeddings[keys], k=kc, chunk=self.chunk, key_mask=free[keys])[1]
            out[rows[:, None], torch.arange(kc)[None, :]] = torch.where(pos >= 0, keys[pos.clamp_min(0)], pos)
        return out

    def initial_candidates(self, ids: Tensor, labels: Tensor, free: Tensor) -> Tensor:
        return self.search(ids, labels, free)

    def _assign_nearest(self, ids: Tensor, labels: Tensor, free: Tensor) -> Tensor:
        q = len(ids)
        order = torch.arange(q)
        cand = self.initial_candidates(ids, labels, free)
        taken = ~free
        chosen = torch.full((q,), -1, dtype=torch.long)
        waiting = torch.ones(q, dtype=torch.bool)
        while waiting.any():
            valid = (cand >= 0) & ~taken[cand.clamp_min(0)]
            exhausted = waiting & ~valid.any(1)
            if exhausted.any():  # search the remaining reserve again; none left → no replacement
                rows = torch.nonzero(exhausted).squeeze(1)
                fresh = self.search(ids[rows], labels[rows], ~taken)
                cand = cand.clone()
                cand[rows] = fresh
                waiting[rows[(fresh < 0).all(1)]] = False
                continue
            proposal = cand.gather(1, valid.int().argmax(1, keepdim=True)).squeeze(1)
            active = order[waiting]
            winner = torch.full((len(self.spare_ids),), q).scatter_reduce(0, proposal[active], active, reduce="amin")
            won = active[winner[proposal[active]] == active]
            chosen[won] = proposal[won]
            taken[proposal[won]] = True
            waiting[won] = False
        return chosen

    def _assign_random(self, labels: Tensor, free: Tensor, generator: torch.Generator) -> Tensor:
        chosen = torch.full((len(labels),), -1, dtype=torch.long)
        shuffled = torch.randperm(len(self.spare_ids), generator=generator)
        groups = torch.unique(labels).tolist() if self.same_class else [None]
        for c in groups:  # a loop over classes, not samples
            want = torch.nonzero(labels == c).squeeze(1) if c is not None else torch.arange(len(labels))
            ok = free[shuffled] & ((self.spare_labels[shuffled] == c) if c is not None else True)
            pool = shuffled[ok]
            n = min(len(want), len(pool))
            chosen[want[:n]] = pool[:n]
        return chosen


class TwinIndex(SpareReserve):
    """For every training sample, its ``candidates`` most similar samples of an extra pool (its
    "twins"), found once when the index is built; a deleted sample is replaced by its nearest twin
    still free. Samples that joined training later (handed-out twins) are searched on request.

    Building costs one nearest-neighbour search of the whole training set against the pool
    (chunked); the arguments are those of :class:`SpareReserve`, ``spares`` being the extra pool.
    """

    def __init__(self, train: Samples, spares: Samples, embedder: Embedder, *, same_class: bool = True,
                 candidates: int = 8, chunk: int = 1024) -> None:
        super().__init__(train, spares, embedder, same_class=same_class, candidates=candidates, chunk=chunk)
        self.twin_owner = torch.sort(train.ids).values
        free = torch.ones(len(self.spare_ids), dtype=torch.bool)
        self.twins = self.search(self.twin_owner, self.pool.y[self.twin_owner], free)

    def twins_of(self, ids: Tensor) -> Tensor:
        """The precomputed twins (sample IDs, nearest first; -1 padded) of training samples ``ids``."""
        rows = self._rows(ids)
        if (rows < 0).any():
            raise ForgetRequestError(f"no precomputed twins for ids {ids[rows < 0][:5].tolist()} (not in the original training set)")
        pos = self.twins[rows]
        return torch.where(pos >= 0, self.spare_ids[pos.clamp_min(0)], pos)

    def _rows(self, ids: Tensor) -> Tensor:
        rows = torch.searchsorted(self.twin_owner, ids).clamp_max(len(self.twin_owner) - 1)
        return torch.where(self.twin_owner[rows] == ids, rows, torch.full_like(rows, -1))

    def initial_candidates(self, ids: Tensor, labels: Tensor, free: Tensor) -> Tensor:
        rows = self._rows(ids)
        cand = torch.full((len(ids), self.twins.shape[1]), -1, dtype=torch.long)
        known = rows >= 0
        cand[known] = self.twins[rows[known]]
        if (~known).any():
            cand[~known] = self.search(ids[~known], labels[~known], free)
        return cand
