"""One-shot magnitude pruning (OMP) with weight rewinding: the sparse original model.

"Prune first, then unlearn" (Jia et al. 2023, *Model Sparsity Can Simplify Machine Unlearning*):
their reference code trains the dense model, removes the smallest-magnitude weights globally in one
shot, rewinds the surviving weights to an early point of the dense run (epoch 8 of 182, with the
learning-rate schedule rewound to the same point) and trains again with the mask held. We do the
same on the budget of the experiment:

1. ``masks`` = global magnitude pruning of the trained dense model to ``sparsity``, ranked over
   conv *and* linear weights (biases and BatchNorm stay dense). Their pruner ranks conv weights
   only, which leaves ResNet-18's small head dense; W1's cnn holds ~95% of its weights in a linear
   layer, so conv-only pruning would hardly make it sparse;
2. the rewind point is ``rewind`` × the budget's optimiser steps (default 5%: Jia et al.'s 8/182 =
   4.4%, rounded; Frankle et al. 2020 find that rewinding to the first few percent of training keeps
   very sparse networks trainable where rewinding to the initialisation does not). The weights there
   are not stored by the dense run, so they are *replayed*: the dense initialisation trained for
   exactly those steps with the dense run's generator, which on CPU gives the dense run's weights
   at that step (``rewind=0`` rewinds to the initialisation itself, the lottery-ticket setting);
3. the masks are attached and the rest of the budget's schedule runs from the rewind point with a
   fresh generator and zero momentum (their code also builds a new optimiser after pruning).

Where the reference differs: it trains a full second budget after rewinding, its step schedule
shifted by the rewind epochs (the surplus epochs run at the final learning rate); with our cosine
schedule a shifted schedule would have nothing to run at its end, so the sparse phase runs the
remaining ``(1 − rewind)`` of the budget instead.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..data.pool import Samples
from ..models.masks import attach_masks, global_magnitude_masks
from ..training.config import TrainConfig
from ..training.loop import train

DEFAULT_REWIND = 0.05


def rewind_step(config: TrainConfig, n_samples: int, rewind: float) -> int:
    """The optimiser step of a ``config`` run over ``n_samples`` samples that ``rewind`` points to."""
    if not 0 <= rewind < 1:
        raise ValueError(f"rewind must lie in [0, 1), got {rewind}")
    total = max(1, math.ceil(config.epochs * math.ceil(n_samples / config.batch_size)))
    return min(round(rewind * total), total - 1)


def omp_rewind(dense: nn.Module, init: nn.Module, samples: Samples, config: TrainConfig, *, sparsity: float,
               rewind: float = DEFAULT_REWIND, replay: torch.Generator, generator: torch.Generator) -> nn.Module:
    """The sparse original: prune ``dense`` to ``sparsity``, rewind, retrain with the mask held.

    Args:
        dense: the trained dense model (not modified).
        init: the dense model's initialisation (not modified).
        samples, config: what ``dense`` was trained on, and its budget.
        replay: a generator in the state the dense run's generator started in (replays its first steps).
        generator: the randomness of the sparse retraining.

    Returns:
        A new model carrying pruning masks of exactly ``round(sparsity × prunable weights)`` zeros.
    """
    masks = global_magnitude_masks(dense, sparsity)
    model = copy.deepcopy(init)
    k = rewind_step(config, len(samples), rewind)
    if k > 0:
        train(model, samples, config, generator=replay, stop_step=k, desc="rewind (replay)")
    attach_masks(model, masks)
    train(model, samples, config, generator=generator, start_step=k, desc=f"sparse {100 * sparsity:g}%")
    return model
