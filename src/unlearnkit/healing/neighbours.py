"""Chunked, vectorised nearest-neighbour search under the Euclidean distance.

Every similarity of this package is turned into a Euclidean one by an embedding (healing/
similarity.py), so one search serves them all. Queries are processed ``chunk`` at a time against
every key: the memory peak is ``chunk × len(keys)`` distances, and there is no Python loop over
elements.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def squared_distances(queries: Tensor, keys: Tensor) -> Tensor:
    """``[q, k]`` squared Euclidean distances, ‖a‖² − 2a·b + ‖b‖² clamped at 0, in the inputs' precision
    (float64 if either is float64, else float32)."""
    dtype = torch.float64 if torch.float64 in (queries.dtype, keys.dtype) else torch.float32
    q, k = queries.to(dtype), keys.to(dtype)
    d = (q * q).sum(1, keepdim=True) - 2.0 * q @ k.T + (k * k).sum(1)[None, :]
    return d.clamp_min_(0.0)


def nearest(queries: Tensor, keys: Tensor, *, k: int = 1, chunk: int = 1024, query_labels: Tensor | None = None,
            key_labels: Tensor | None = None, key_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest keys of every query: ``(squared distances [q, k], key positions [q, k])``.

    Args:
        queries, keys: ``[q, d]`` and ``[n, d]`` embeddings.
        k: neighbours per query (at most ``n``); rows are sorted nearest first (ties in a fixed order on CPU).
        chunk: queries per block.
        query_labels, key_labels: when both are given, a query only matches keys of its own label.
        key_mask: ``[n]`` bool; keys where it is False are never returned.
    Returns:
        Where fewer than ``k`` keys are allowed for a query, the missing places hold distance ``inf``
        and position ``-1``.
    """
    if queries.dim() != 2 or keys.dim() != 2 or queries.shape[1] != keys.shape[1]:
        raise ConfigError(f"nearest: embeddings must be [q, d] and [n, d], got {tuple(queries.shape)} and {tuple(keys.shape)}")
    if not 1 <= k <= max(1, keys.shape[0]):
        raise ConfigError(f"nearest: k must lie in [1, {keys.shape[0]}], got {k}")
    if (query_labels is None) != (key_labels is None):
        raise ConfigError("nearest: give both query_labels and key_labels, or neither")
    dists, idx = [], []
    for start in range(0, queries.shape[0], chunk):
        d = squared_distances(queries[start : start + chunk], keys)
        if query_labels is not None:
            d.masked_fill_(query_labels[start : start + chunk, None] != key_labels[None, :], float("inf"))
        if key_mask is not None:
            d.masked_fill_(~key_mask[None, :], float("inf"))
        order = torch.topk(d, k, dim=1, largest=False, sorted=True).indices
        top = d.gather(1, order)
        order = torch.where(torch.isinf(top), torch.full_like(order, -1), order)
        dists.append(top)
        idx.append(order)
    if not dists:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(dists), torch.cat(idx)

