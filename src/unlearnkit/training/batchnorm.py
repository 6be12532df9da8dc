"""BatchNorm bookkeeping for methods that mix eval-mode and train-mode passes (DAU).

``batch_statistics(model)``: inside the block every BatchNorm layer normalises with the statistics
of the batch it is given, in train and in eval mode, and its running statistics do not move.
``recompute_running_statistics(model, samples)`` then sets them from one pass over a sample set (a
plain average over the batches, not a moving one), so that the model used in eval mode matches the
weights it was trained to.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..data.pool import Samples


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm on batch statistics in both modes inside the block; running statistics untouched.

    A BatchNorm layer without running statistics normalises every batch by its own statistics
    (PyTorch's rule), so the buffers are set aside for the block and put back after it."""
    saved = [(b, b.running_mean, b.running_var) for b in batchnorms(model)]
    for b, _, _ in saved:
        b.running_mean = b.running_var = None
    try:
        yield
    finally:
        for b, mean, var in saved:
            b.running_mean, b.running_var = mean, var


@torch.no_grad()
def recompute_running_statistics(model: nn.Module, samples: Samples, *, batch_size: int = 256) -> None:
    """Set every BatchNorm layer's running statistics to their average over one pass of ``samples``
    (train-mode forward passes without gradients); the model is left in eval mode."""
    norms = batchnorms(model)
    if not norms:
        return
    momenta = [b.momentum for b in norms]
    for b in norms:
        b.reset_running_stats()
        b.momentum = None  # cumulative average
    model.train()
    device = next(model.parameters()).device
    try:
        for x, _ in samples.batches(batch_size, device=device):
            model(x)
    finally:  # the layers' own momentum back even if a pass fails
        for b, m in zip(norms, momenta):
            b.momentum = m
        model.eval()
