"""KLoM: per example, the KL divergence of margins under unlearned models from margins under oracles
(Georgiev et al., ICLR 2025, "Attribute-to-delete", arXiv 2410.23232).

The margin of an example under one model is z_y − logsumexp_{j≠y} z_j, clipped to ±``clip``
(default 100: a saturated softmax cannot make one example dominate). For each example, the margins
of the unlearned models and of the oracles are binned on shared bins spanning both samples
(``bins``; default ⌈√m⌉ + 1 for m models per side, at least 2), each histogram smoothed by
``eps`` per bin and renormalised, and KLoM = KL(unlearned ‖ oracle) in nats (the paper's direction is
not in our sources: this one asks how surprising the unlearned outcome is under retraining). An
example whose margins are all equal scores 0.

Histogram KL is biased upwards for few models, so a figure means something only beside its noise
floor: the same statistic between two disjoint halves of the oracle family, compared on the same
numbers of models (:func:`klom_with_floor`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError

DEFAULT_CLIP = 100.0
DEFAULT_EPS = 1e-3


def margins(logits: Tensor, labels: Tensor, *, clip: float = DEFAULT_CLIP) -> Tensor:
    """``z_y − logsumexp_{j≠y} z_j`` per row, clipped to ±``clip`` (also log(p_y / (1 − p_y)))."""
    z = logits.double()
    own = z.gather(1, labels[:, None].long()).squeeze(1)
    others = z.scatter(1, labels[:, None].long(), float("-inf"))
    return (own - torch.logsumexp(others, dim=1)).clamp(-clip, clip).float()


def default_bins(n_models: int) -> int:
    return max(2, math.ceil(math.sqrt(n_models)) + 1)


def klom(unlearned: np.ndarray, oracle: np.ndarray, *, bins: int | None = None, eps: float = DEFAULT_EPS) -> np.ndarray:
    """KLoM per example from two ``(models, examples)`` arrays of margins (any numbers of models).

    Raises:
        ConfigError: fewer than one model, different numbers of examples, non-finite margins.
    """
    u, o = np.asarray(unlearned, dtype=np.float64), np.asarray(oracle, dtype=np.float64)
    if u.ndim != 2 or o.ndim != 2 or u.shape[1] != o.shape[1] or min(u.shape[0], o.shape[0]) < 1:
        raise ConfigError(f"KLoM needs (models, examples) margins with the same examples, got {u.shape} and {o.shape}")
    if not (np.isfinite(u).all() and np.isfinite(o).all()):
        raise ConfigError("KLoM: margins hold NaN or inf")
    b = bins or default_bins(min(u.shape[0], o.shape[0]))
    if b < 2 or not eps > 0:
        raise ConfigError(f"KLoM needs bins >= 2 and eps > 0, got bins={b}, eps={eps}")
    lo = np.minimum(u.min(0), o.min(0))
    width = np.maximum(u.max(0), o.max(0)) - lo
    flat = width <= 1e-12
    scale = np.where(flat, 1.0, width)

    def hist(a: np.ndarray) -> np.ndarray:
        idx = np.clip(np.floor((a - lo) / scale * b).astype(np.int64), 0, b - 1)  # (models, examples)
        counts = np.zeros((a.shape[1], b))
        np.add.at(counts, (np.broadcast_to(np.arange(a.shape[1]), idx.shape), idx), 1.0)
        p = counts / a.shape[0] + eps
        return p / p.sum(1, keepdims=True)

    p, q = hist(u), hist(o)
    kl = np.sum(p * np.log(p / q), axis=1)
    return np.where(flat, 0.0, kl).astype(np.float32)


def summary(values: np.ndarray, prefix: str) -> dict[str, float]:
    """Mean, 90th and 99th percentile of per-example values, as ``prefix.mean`` etc."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {}
    return {f"{prefix}.mean": float(v.mean()), f"{prefix}.p90": float(np.percentile(v, 90)),
            f"{prefix}.p99": float(np.percentile(v, 99))}


def halves(n_models: int) -> tuple[slice, slice]:
    """The two disjoint halves of an oracle family (the second gets the odd member)."""
    h = n_models // 2
    return slice(0, h), slice(h, n_models)


def klom_with_floor(unlearned: np.ndarray, oracle: np.ndarray, *, bins: int | None = None,
                    eps: float = DEFAULT_EPS) -> tuple[np.ndarray, np.ndarray]:
    """``(KLoM of the unlearned family, oracle-vs-oracle floor)`` on equal footing: the oracles are
    split into halves A and B; the floor is KLoM(A ‖ B), the method's KLoM(first |A| unlearned ‖ B).

    Raises:
        ConfigError: fewer than 2 oracles or fewer unlearned models than |A|.
    """
    a, b = halves(oracle.shape[0])
    if oracle.shape[0] < 2 or unlearned.shape[0] < a.stop:
        raise ConfigError(f"KLoM with a floor needs >= 2 oracles and >= {a.stop} unlearned models, "
                          f"got {oracle.shape[0]} and {unlearned.shape[0]}")
    size = bins or default_bins(min(a.stop, b.stop - b.start))
    return (klom(unlearned[a], oracle[b], bins=size, eps=eps), klom(oracle[a], oracle[b], bins=size, eps=eps))
