"""The adversarial-request monitor: does a deletion batch look chosen to damage the model?

The strategies of this package pick requests that are concentrated on one class (``class``), near
the decision boundary (``boundary``), hard for the model (high loss: ``typical``'s opposite,
``influence``) or with large gradients (``gradnorm``). A batch is scored against each trait:

- ``class``: the chi-square statistic of the batch's class counts against the training set's class
  distribution (its cube root, which is close to normal, so that a z-score of the right-skewed
  statistic does not fire on random batches), and the largest single-class share;
- ``low_margin``: the mean of −|logit margin| over the batch;
- ``high_loss``: the mean cross-entropy;
- ``high_grad``: the mean per-sample gradient norm (white-box; skipped with ``grad=False``).

Each statistic is compared with ``draws`` random batches of the same size drawn from the
*candidate pool* (what the requesters could have asked for: their own samples when they hold
enough, else the whole training set): ``z = (batch − mean(draws)) / std(draws)``. The batch's score
is the largest z; a score above ``threshold`` holds it for an admin. Comparing with draws of the
same size, rather than with a formula, makes the score's null distribution the same for every batch
size and pool, so one threshold means one false-hold rate (measured in benchmarks/bench_serve.py).
Batches smaller than ``min_batch`` are not scored: a handful of samples cannot move a model much,
and their statistics are too noisy to tell apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pool import Pool, Samples
from ..errors import ConfigError
from ..training.evaluate import predict_logits
from ..training.per_sample import per_sample_grad_norms


@dataclass(frozen=True, kw_only=True)
class MonitorVerdict:
    """The batch's ``score`` (largest z), whether it is ``held``, each statistic's ``z`` and why."""

    score: float
    held: bool
    z: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "held": self.held, "z": self.z, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class RequestMonitor:
    """Score deletion batches against random draws (see the module docstring)."""

    threshold: float = 4.0
    draws: int = 200
    min_batch: int = 20
    pool_cap: int = 4000  # candidates scored at most (a random subset beyond it, plus the batch)
    grad: bool = True

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ConfigError(f"monitor.threshold must be > 0, got {self.threshold}")
        for name in ("draws", "min_batch", "pool_cap"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 2):
                raise ConfigError(f"monitor.{name} must be an integer >= 2, got {getattr(self, name)!r}")

    def score(self, model: nn.Module, pool: Pool, batch: Tensor, candidates: Tensor, train_labels: Tensor, *,
              generator: torch.Generator) -> MonitorVerdict:
        """Score ``batch`` (sample IDs) against random draws from ``candidates`` (IDs that include
        the batch); ``train_labels``: the labels of the training set (the class reference)."""
        batch = torch.as_tensor(batch, dtype=torch.int64)
        k = len(batch)
        if k < self.min_batch:
            return MonitorVerdict(score=0.0, held=False, reason=f"not scored: {k} < min_batch={self.min_batch}")
        others = candidates[~torch.isin(candidates, batch)]
        if len(others) > self.pool_cap:
            others = others[torch.randperm(len(others), generator=generator)[: self.pool_cap]]
        ids = torch.cat([batch, others])
        if len(ids) < 2 * k:
            return MonitorVerdict(score=0.0, held=False,
                                  reason=f"not scored: the candidate pool ({len(ids)}) is under twice the batch")
        labels = pool.y[ids]
        features = monitor_features(model, Samples(pool, ids), grad=self.grad)
        return self.score_features(features, labels, torch.arange(k), class_distribution(train_labels, labels),
                                   generator=generator)

    def score_features(self, features: dict[str, Tensor], labels: Tensor, batch: Tensor, expected: Tensor, *,
                       generator: torch.Generator) -> MonitorVerdict:
        """Score the rows ``batch`` (positions) of precomputed ``features`` (:func:`monitor_features`)
        and ``labels`` against draws from all rows; ``expected``: the training class distribution.
        Lets a caller score many batches of one pool with one forward pass (benchmarks)."""
        k, n = len(batch), len(labels)
        num_classes = len(expected)
        draws = torch.stack([torch.randperm(n, generator=generator)[:k] for _ in range(self.draws)])
        rows = torch.cat([batch[None], draws])  # row 0: the batch itself
        stats: dict[str, Tensor] = {}
        counts = F.one_hot(labels[rows], num_classes).sum(1).double()  # [draws+1, C]
        chi2 = ((counts - k * expected) ** 2 / (k * expected).clamp_min(1e-12)).sum(1)
        stats["class_chi2"] = chi2.clamp_min(0).pow(1 / 3)  # Wilson-Hilferty: the cube root is near normal
        stats["class_max_share"] = counts.max(1).values / k
        for name, values in features.items():
            stats[name] = values[rows].double().mean(1)
        z = {name: _z(values) for name, values in stats.items()}
        score = max(z.values())
        held = score > self.threshold
        worst = sorted(((v, n) for n, v in z.items() if v > self.threshold), reverse=True)
        reason = ("; ".join(f"{_WHY[n]} (z={v:.1f} > {self.threshold:g})" for v, n in worst) if held
                  else f"score {score:.1f} <= threshold {self.threshold:g}")
        return MonitorVerdict(score=score, held=held, z=z, reason=reason)


def class_distribution(train_labels: Tensor, labels: Tensor) -> Tensor:
    """The training set's class shares, over every class seen in either set."""
    num_classes = int(max(int(train_labels.max()), int(labels.max()))) + 1
    expected = torch.bincount(train_labels, minlength=num_classes).double()
    return expected / expected.sum()


_WHY = {"class_chi2": "class distribution far from training's", "class_max_share": "concentrated on one class",
        "low_margin": "enriched in low-margin samples (near the decision boundary)",
        "high_loss": "enriched in high-loss samples", "high_grad": "enriched in high-gradient-norm samples"}


def monitor_features(model: nn.Module, samples: Samples, *, grad: bool = True) -> dict[str, Tensor]:
    """Per-sample traits the strategies select on: −|margin|, loss and (``grad``) gradient norm."""
    logits = predict_logits(model, samples)
    y = samples.labels
    loss = F.cross_entropy(logits, y, reduction="none")
    true = logits.gather(1, y[:, None]).squeeze(1)
    margin = true - logits.scatter(1, y[:, None], float("-inf")).max(dim=1).values
    out = {"low_margin": -margin.abs(), "high_loss": loss}
    if grad:
        out["high_grad"] = per_sample_grad_norms(model, samples, batch_size=256)
    return out


def _z(values: Tensor) -> float:
    """How many standard deviations ``values[0]`` lies above the mean of ``values[1:]``."""
    ref = values[1:]
    std = float(ref.std())
    diff = float(values[0] - ref.mean())
    if std < 1e-12:
        return 0.0 if abs(diff) < 1e-12 else (1e9 if diff > 0 else -1e9)
    return diff / std
