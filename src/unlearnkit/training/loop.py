"""``train()``: one SGD loop for the original model, the retrain oracle, fine-tuning and healing."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pool import Augment, Samples
from ..errors import TrainingError
from ..models.masks import apply_masks, mask_gradients
from ..progress import progress_bar
from ..utils.devices import check_precision, precision_scope, use_channels_last
from .config import TrainConfig

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


def cross_entropy_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y)


@dataclass(frozen=True)
class TrainStats:
    steps: int
    samples: int
    seconds: float
    final_loss: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")


def make_optimizer(params, config: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def lr_factor(config: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """Multiplier of ``config.lr`` at ``step`` (0-based) of ``total`` steps."""
    warm = int(round(config.warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if config.schedule == "step":
        return 0.01 if t >= 0.75 else 0.1 if t >= 0.5 else 1.0
    return 1.0


def check_finite(loss: Tensor, where: str, config: TrainConfig | None = None) -> None:
    if not torch.isfinite(loss):
        advice = f"; lower the learning rate (now {config.lr})" if config is not None else ""
        raise TrainingError(f"non-finite loss ({loss.item()}) in {where}{advice}")


def masked_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    """One optimiser step on ``loss`` that keeps pruned weights at exactly zero: gradients masked
    before the step (so momentum never sees them), weights masked after it (so weight decay cannot
    revive them)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    mask_gradients(model)
    optimizer.step()
    apply_masks(model)


def train(
    model: nn.Module,
    samples: Samples,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    loss_fn: LossFn = cross_entropy_loss,
    desc: str = "train",
    after_step: Callable[[nn.Module], bool | None] | None = None,
    start_step: int = 0,
    stop_step: int | None = None,
) -> TrainStats:
    """Train ``model`` in place on ``samples`` with SGD under ``config``; return the statistics.

    Batches are drawn by shuffling an index tensor with ``generator``, so the same generator state
    gives the same weights on CPU. Pruning masks carried by the model (models/masks.py) hold:
    pruned weights and their gradients are zeroed at every step. ``after_step`` runs after every
    optimiser step; when it returns True, training stops there (an early-stopping rule, e.g. GA's). The
    model is left in eval mode.

    ``start_step`` / ``stop_step`` run only the steps ``[start_step, stop_step)`` of the schedule
    that ``config`` defines over its whole budget (learning rate as at those steps; momentum starts
    at zero): stopping at step k with the original generator replays a run's first k steps exactly,
    and starting at k resumes its schedule there (weight rewinding, sparsity/omp.py).

    It runs on the model's device. ``config.precision`` / ``channels_last`` / ``compile`` set how
    (utils/devices.py); on a GPU the samples' uint8 pool is copied there once when it fits
    (``config.pool_on_device``) and batches are indexed and augmented there. Shuffling and
    augmentation draw from ``generator`` on the CPU, so every device sees the same batches.

    Raises:
        TrainingError: the loss became NaN or infinite (the model is then left half-trained; callers
            that must not lose the input train a copy).
    """
    if len(samples) == 0:
        raise TrainingError(f"{desc}: no samples to train on")
    device = next(model.parameters()).device
    check_precision(config.precision, device)
    if config.pool_on_device:
        samples = samples.near(device)
    channels_last = samples.pool.is_image and use_channels_last(config.channels_last, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if config.compile else model
    steps_per_epoch = math.ceil(len(samples) / config.batch_size)
    total = max(1, math.ceil(config.epochs * steps_per_epoch))
    end = total if stop_step is None else stop_step
    if not 0 <= start_step < end <= total:
        raise TrainingError(f"{desc}: steps [{start_step}, {stop_step}) do not lie within the {total} steps of the budget")
    optimizer = make_optimizer(model.parameters(), config)
    augment = Augment() if config.augment else None
    apply_masks(model)
    model.train()
    step, seen, loss, stop = start_step, 0, torch.tensor(float("nan")), False
    start = time.perf_counter()
    with progress_bar(end - start_step, desc) as bar, precision_scope(config.precision, device):
        while step < end and not stop:
            for x, y in samples.batches(config.batch_size, shuffle=True, generator=generator,
                                        augment=augment, device=device):
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * lr_factor(config, step, total, steps_per_epoch)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                loss = loss_fn(forward, x, y).float()
                check_finite(loss, f"{desc} at step {step + 1}/{total}", config)
                masked_step(model, optimizer, loss)
                stop = after_step is not None and bool(after_step(model))
                step += 1
                seen += y.shape[0]
                bar.update(1)
                if step == end or stop:
                    break
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    return TrainStats(steps=step - start_step, samples=seen, seconds=time.perf_counter() - start, final_loss=float(loss.detach()))


def scaled(config: TrainConfig, **changes) -> TrainConfig:
    """A copy of ``config`` with some fields changed (e.g. a method's epochs and learning rate)."""
    return replace(config, **changes)
