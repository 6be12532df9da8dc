"""The four metric attacks of Song & Mittal (2021) with per-class thresholds.

Statistics of the softmax output p for label y (logs clamped at 1e-30):
correctness 1{argmax p = y}; confidence p_y; entropy −Σ p_i log p_i (statistic: −entropy);
modified entropy Mentr = −(1−p_y) log p_y − Σ_{i≠y} p_i log(1−p_i) (statistic: −Mentr).
A sample is called a member iff its statistic ≥ τ_y, where τ_k maximises ½(TPR + TNR) on the
shadow members and non-members of class k (all classes pooled when class k lacks one side).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor

from .base import OutputAttack, register_attack

Outputs = tuple[Tensor, Tensor]


def _log(p: Tensor) -> Tensor:
    return torch.log(p.clamp_min(1e-30))


def correctness(probs: Tensor, labels: Tensor) -> Tensor:
    return (probs.argmax(dim=1) == labels).double()


def confidence(probs: Tensor, labels: Tensor) -> Tensor:
    return probs.gather(1, labels[:, None]).squeeze(1).double()


def neg_entropy(probs: Tensor, labels: Tensor) -> Tensor:
    p = probs.double()
    return (p * _log(p)).sum(dim=1)


def neg_modified_entropy(probs: Tensor, labels: Tensor) -> Tensor:
    p = probs.double()
    p_y = p.gather(1, labels[:, None]).squeeze(1)
    others = p * _log(1 - p)
    others = others.sum(dim=1) - others.gather(1, labels[:, None]).squeeze(1)
    mentr = -(1 - p_y) * _log(p_y) - others
    return -mentr


STATISTICS = {"correctness": correctness, "confidence": confidence, "entropy": neg_entropy,
              "m_entropy": neg_modified_entropy}


def best_threshold(members: Tensor, nonmembers: Tensor) -> float:
    """The τ maximising ½(TPR + TNR) for the rule "member iff statistic ≥ τ" (vectorised)."""
    m, _ = torch.sort(members)
    n, _ = torch.sort(nonmembers)
    candidates = torch.cat([torch.unique(torch.cat([m, n])), torch.tensor([float("inf")], dtype=m.dtype)])
    tpr = 1 - torch.searchsorted(m, candidates, side="left").double() / len(m)
    tnr = torch.searchsorted(n, candidates, side="left").double() / len(n)
    return float(candidates[torch.argmax(tpr + tnr)])


@dataclass
class ThresholdAttack(OutputAttack):
    """A Song & Mittal metric attack; ``statistic`` is one of ``STATISTICS``."""

    statistic: str = "confidence"
    thresholds: dict[int, float] = field(default_factory=dict, init=False)
    global_threshold: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {self.statistic!r}; valid: {sorted(STATISTICS)}")

    def fit_outputs(self, members: Outputs, nonmembers: Outputs) -> "ThresholdAttack":
        stat = STATISTICS[self.statistic]
        sm, sn = stat(*members), stat(*nonmembers)
        if len(sm) == 0 or len(sn) == 0:
            raise ValueError("a threshold attack needs members and non-members to fit")
        self.global_threshold = best_threshold(sm, sn)
        ym, yn = members[1], nonmembers[1]
        self.thresholds = {}
        for k in torch.unique(torch.cat([ym, yn])).tolist():
            a, b = sm[ym == k], sn[yn == k]
            self.thresholds[k] = best_threshold(a, b) if len(a) and len(b) else self.global_threshold
        return self

    def margin(self, out: Outputs) -> Tensor:
        """Statistic minus the threshold of each sample's class (≥ 0 means "member")."""
        probs, labels = out
        tau = torch.tensor([self.thresholds.get(k, self.global_threshold) for k in range(probs.shape[1])],
                           dtype=torch.float64)
        return STATISTICS[self.statistic](probs, labels) - tau[labels]

    def score_outputs(self, out: Outputs) -> Tensor:
        return self.margin(out)

    def predict_outputs(self, out: Outputs) -> Tensor:
        return self.margin(out) >= 0


for _name in STATISTICS:
    register_attack(_name)(partial(ThresholdAttack, statistic=_name))
