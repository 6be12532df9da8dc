"""``coverage``: one representative per cluster of every class, so the request covers the data."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from ..healing.neighbours import nearest
from ..training.evaluate import predict_features
from ..utils.sampling import random_positions
from ..utils.validation import check
from .base import class_quotas, register_adversary, resolve_budget, to_ids

SPACES = ("features", "pixels")


def kmeans(x: Tensor, k: int, *, iterations: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means from ``k`` distinct random points: ``(centroids [k, d], assignment [n])``.

    An emptied cluster is moved to the point farthest from its centroid, so all ``k`` stay in use.
    """
    x = x.double()
    centroids = x[random_positions(len(x), k, generator)].clone()
    for _ in range(iterations):
        dist, assign = nearest(x, centroids)
        assign = assign.squeeze(1)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        moved = sums / counts.clamp_min(1)[:, None]
        empty = counts == 0
        if empty.any():
            far = torch.sort(dist.squeeze(1), descending=True, stable=True).indices[: int(empty.sum())]
            moved[empty] = x[far]
        if torch.equal(moved, centroids):
            break
        centroids = moved
    return centroids, nearest(x, centroids)[1].squeeze(1)


@register_adversary("coverage", knowledge="weights")
@dataclass(frozen=True, kw_only=True)
class CoverageAdversary:
    """Within every class, k-means with as many clusters as the class's share of the budget, then
    the candidate nearest to each centroid: the request spreads over the whole of each class and
    takes the sample that stands for each region. Knowledge: ``space="features"`` reads the model's
    penultimate features (white-box: inner activations); ``space="pixels"`` uses the raw inputs
    only (data only).

    k-means runs ``iterations`` Lloyd steps from random distinct candidates. A cluster's
    representative is its member nearest to its centroid; every cluster is non-empty (emptied ones
    are re-seeded), so the representatives are distinct; should duplicate samples leave a cluster
    empty all the same, random other members of the class make up the quota.
    """

    space: str = "features"
    iterations: int = 20
    keep_per_class: int = 1

    def __post_init__(self) -> None:
        check(self.space in SPACES, f"coverage.space must be one of {SPACES}, got {self.space!r}")
        check(self.iterations >= 1, f"coverage.iterations must be >= 1, got {self.iterations}")

    @property
    def knowledge(self) -> str:
        return "weights" if self.space == "features" else "data"

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor:
        k = resolve_budget(budget, len(candidates))
        labels = candidates.labels
        x = predict_features(model, candidates) if self.space == "features" else candidates.inputs().flatten(1)
        quotas = class_quotas(labels, k, keep_per_class=self.keep_per_class)
        chosen = []
        for c in torch.nonzero(quotas).squeeze(1).tolist():  # a loop over classes, not samples
            members = torch.nonzero(labels == c).squeeze(1)
            centroids, assign = kmeans(x[members], int(quotas[c]), iterations=self.iterations, generator=generator)
            dist = ((x[members].double() - centroids[assign]) ** 2).sum(1)
            best = torch.full((int(quotas[c]),), float("inf"), dtype=torch.float64).scatter_reduce(
                0, assign, dist, reduce="amin")
            is_rep = dist == best[assign]
            # one representative per cluster: the first member reaching the cluster's minimum
            first = torch.full((int(quotas[c]),), len(members)).scatter_reduce(
                0, assign[is_rep], torch.nonzero(is_rep).squeeze(1), reduce="amin")
            reps = first[first < len(members)]
            if len(reps) < quotas[c]:  # coinciding centroids (duplicate samples) left a cluster empty
                rest = torch.ones(len(members), dtype=torch.bool)
                rest[reps] = False
                spare = torch.nonzero(rest).squeeze(1)
                reps = torch.cat([reps, spare[random_positions(len(spare), int(quotas[c]) - len(reps), generator)]])
            chosen.append(members[reps])
        return to_ids(candidates, torch.cat(chosen))
