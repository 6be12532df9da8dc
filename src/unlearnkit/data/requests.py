"""The one validator every forget (deletion) request passes, whoever receives it.

Scenarios (:func:`~unlearnkit.data.scenarios.validate_forget_ids`), SISA stores
(:func:`~unlearnkit.sisa.plan.check_deletion`) and spare reserves
(:meth:`~unlearnkit.healing.reserve.SpareReserve.check_request`) call :func:`validate_request`
with what they know (the training IDs; the pool size, labels and ledgers where they have them), so
a request is refused by the same rules and in the same words everywhere.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import ForgetRequestError


def validate_request(ids: Any, train_ids: Tensor, *, pool_size: int | None = None, labels: Tensor | None = None,
                     named_class: int | None = None, outside: Sequence[tuple[str, Tensor]] = (),
                     unknown: str = "validation, held-out or already deleted") -> Tensor:
    """Check a forget request against the training IDs; return the IDs as a sorted int64 tensor.

    The rules, in the order they are checked (the first that fails raises):

    1. convertible to a tensor, not empty, 1-D integers (no floats, booleans or complex numbers);
    2. within ``[0, pool_size)`` (when the pool size is known);
    3. no duplicates;
    4. none of the IDs in ``outside``: ``(reason, ids)`` pairs that say why some known IDs are not
       in training (e.g. ``("already deleted", deleted)``), checked before rule 5 to say so;
    5. every ID in ``train_ids``; ``unknown`` describes the others in the message;
    6. not all of ``train_ids`` (nothing would remain);
    7. with ``labels`` (those of ``train_ids``): no class other than ``named_class`` emptied.

    Raises:
        ForgetRequestError: naming the rule and the first offending IDs.
    """
    try:
        ids = torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError) as e:  # strings, ragged lists, ints beyond int64
        raise ForgetRequestError(f"forget ids must be a 1-D list of integers ({e})") from e
    if ids.numel() == 0:
        raise ForgetRequestError("the forget request is empty")
    if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ForgetRequestError(f"forget ids must be a 1-D list of integers, got {ids.dtype} {tuple(ids.shape)}")
    ids = ids.to(torch.int64)
    if pool_size is not None:
        bad = ids[(ids < 0) | (ids >= pool_size)]
        if bad.numel():
            raise ForgetRequestError(f"forget ids out of range: {bad[:5].tolist()} "
                                     f"(the training file has ids 0..{pool_size - 1})")
    uniq, counts = torch.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ForgetRequestError(f"duplicate forget ids: {uniq[counts > 1][:5].tolist()}")
    for reason, known in outside:
        bad = ids[torch.isin(ids, known)]
        if bad.numel():
            raise ForgetRequestError(f"{bad.numel()} forget ids are {reason}: {bad[:5].tolist()}")
    stray = ids[~torch.isin(ids, train_ids)]
    if stray.numel():
        raise ForgetRequestError(f"{stray.numel()} forget ids are not in the training set ({unknown}): "
                                 f"{stray[:5].tolist()}")
    if ids.numel() == len(train_ids):
        raise ForgetRequestError(f"the forget request names the whole training set (all {len(train_ids)} remaining "
                                 "training ids); nothing would remain")
    if labels is not None:
        remaining = labels[~torch.isin(train_ids, ids)]
        emptied = sorted(set(torch.unique(labels).tolist()) - set(torch.unique(remaining).tolist()) - {named_class})
        if emptied:
            raise ForgetRequestError(f"the forget request removes every training sample of class(es) {emptied}; "
                                     f"use the class scenario to forget a whole class")
    return uniq
