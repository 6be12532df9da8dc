"""Random subsets and proportional quotas, drawn from an explicit generator.

Every helper here makes exactly the draws the code it replaced made (same calls, same order), so
splits, forget sets and method samples recorded before keep their numbers.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def random_positions(n: int, count: int | None, generator: torch.Generator) -> Tensor:
    """``count`` distinct positions of ``range(n)`` in random order (all ``n``, shuffled, if
    ``count`` is None or at least ``n``). Always draws one permutation of ``n`` from ``generator``."""
    return torch.randperm(n, generator=generator)[:count]


def largest_remainder(sizes: Tensor, total: int, *, stable: bool = True) -> Tensor:
    """Split ``total`` over groups in proportion to ``sizes``: each group gets its share rounded
    down, and the units lost to rounding go to the groups with the largest remainders (int64 out).

    Ties among remainders go to the earlier group with ``stable``; ``stable=False`` keeps the
    (deterministic on CPU) tie order of an unstable sort, which the train/validation/forget splits
    have always used — changing it would change every recorded split with more than 16 classes.
    """
    sizes = sizes.double()
    exact = sizes * total / max(1, int(sizes.sum()))
    take = exact.floor().long()
    short = total - int(take.sum())
    if short > 0:
        take[torch.argsort(exact - take, descending=True, stable=stable)[:short]] += 1
    return take


def stratified_subset(labels: Tensor, ids: Tensor, fraction: float | None = None, *, count: int | None = None,
                      generator: torch.Generator) -> Tensor:
    """Pick ``fraction`` (or ``count``) of ``ids``, the same share from every class; sorted IDs out.

    Per class the number taken is rounded from its share; leftovers from rounding go to the
    classes with the largest remainders so the total is exact (:func:`largest_remainder`).

    Raises:
        ConfigError: a count outside ``[0, len(ids)]``.
    """
    y = labels[ids]
    classes = torch.unique(y)
    sizes = torch.stack([(y == c).sum() for c in classes])
    total = round(fraction * len(ids)) if count is None else count
    if not 0 <= total <= len(ids):
        raise ConfigError(f"cannot take {total} of {len(ids)} samples")
    take = largest_remainder(sizes, total, stable=False)
    chosen = []
    for c, k in zip(classes, take.tolist()):
        members = ids[y == c]
        chosen.append(members[random_positions(len(members), k, generator)])
    return torch.sort(torch.cat(chosen)).values
