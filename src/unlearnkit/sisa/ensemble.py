"""The SISA ensemble: one model per shard, predictions aggregated.

``forward`` returns the *log* of the aggregated class probabilities, so ``softmax(forward(x))`` is
the aggregate itself and everything that reads a classifier's logits (accuracy, the audit, the
membership attacks) works on the ensemble unchanged.

Aggregations:
- ``softmax`` (default): the mean of the members' softmax outputs.
- ``vote``: majority vote (Bourtoule et al.'s default). The aggregate is the share of votes per
  class plus a tie-break term: ``VOTE_TIE_BREAK`` × the mean softmax, renormalised. The term is
  below one vote, so it never overturns a majority; among classes with the same number of votes the
  one with the highest mean softmax probability wins, and on an exact tie of both the lowest class
  index wins (``argmax`` takes the first). It also keeps every class's probability above zero.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

AGGREGATIONS = ("softmax", "vote")
VOTE_TIE_BREAK = 1e-3


def aggregate(probs: Tensor, how: str) -> Tensor:
    """Aggregate member probabilities ``[S, B, C]`` into ``[B, C]`` class probabilities."""
    mean = probs.mean(dim=0)
    if how == "softmax":
        return mean
    if how == "vote":
        votes = F.one_hot(probs.argmax(dim=2), probs.shape[2]).sum(dim=0).to(probs.dtype)
        return (votes + VOTE_TIE_BREAK * mean) / (probs.shape[0] + VOTE_TIE_BREAK)
    raise ConfigError(f"unknown SISA aggregation {how!r}; valid: {', '.join(AGGREGATIONS)}")


class SisaEnsemble(nn.Module):
    """Shard models whose predictions are aggregated (see the module docstring).

    Args:
        members: one trained model per (non-empty) shard, all of the same architecture.
        aggregation: ``softmax`` or ``vote``.
    """

    def __init__(self, members: list[nn.Module], aggregation: str = "softmax") -> None:
        super().__init__()
        if not members:
            raise ConfigError("a SISA ensemble needs at least one member")
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"unknown SISA aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")
        self.members = nn.ModuleList(members)
        self.aggregation = aggregation

    def member_probabilities(self, x: Tensor) -> Tensor:
        return torch.stack([torch.softmax(m(x), dim=1) for m in self.members])

    def forward(self, x: Tensor) -> Tensor:
        p = aggregate(self.member_probabilities(x), self.aggregation)
        return p.clamp_min(torch.finfo(p.dtype).tiny).log()
