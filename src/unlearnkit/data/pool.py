"""In-memory samples with stable IDs, batched by index tensors.

A :class:`Pool` holds every sample of one file (row ``i`` has sample ID ``i``); a :class:`Samples`
is a pool plus an ID tensor. Forget sets, retain sets and reserves are ID tensors over the same
pool, so nothing is copied and nothing is lost.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..errors import DataError
from ..utils.devices import fits_on_device
from ..utils.sampling import random_positions


@dataclass(frozen=True, eq=False)
class Pool:
    """Every sample of one file. ``x`` is uint8 ``[N, C, H, W]`` (images) or float ``[N, D]``."""

    x: Tensor
    y: Tensor
    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise DataError(f"{self.x.shape[0]} inputs but {self.y.shape[0]} labels")
        if self.y.dtype != torch.int64 or self.y.dim() != 1:
            raise DataError(f"labels must be a 1-D int64 tensor, got {self.y.dtype} {tuple(self.y.shape)}")
        if self.x.dim() not in (2, 4):
            raise DataError(f"inputs must be [N, C, H, W] images or [N, D] features, got {tuple(self.x.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    def inputs(self, ids: Tensor) -> Tensor:
        """Normalised float32 inputs of the given sample IDs."""
        x = self.x[ids]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        return (x - self.mean) / self.std

    def all(self) -> "Samples":
        return Samples(self, torch.arange(len(self)))

    @property
    def nbytes(self) -> int:
        return self.x.nelement() * self.x.element_size() + self.y.nelement() * self.y.element_size()

    def to(self, device: torch.device | str) -> "Pool":
        """This pool on ``device``, copied there once per pool and device (later calls reuse the
        copy while this pool lives); the pool itself when it is already there."""
        device = _resolved(device)
        if self.x.device == device:
            return self
        copies = _COPIES.setdefault(self, {})
        if str(device) not in copies:
            with torch.inference_mode(False):  # a copy made while evaluating serves training later too
                copies[str(device)] = Pool(self.x.to(device), self.y.to(device), self.mean.to(device),
                                           self.std.to(device))
        return copies[str(device)]

    def is_on(self, device: torch.device | str) -> bool:
        """Whether this pool, or its copy, already lies on ``device`` (:meth:`to` then costs nothing)."""
        device = _resolved(device)
        return self.x.device == device or str(device) in _COPIES.get(self, {})


def _resolved(device: torch.device | str) -> torch.device:
    """``device`` with its index ("cuda" → "cuda:N", the current one), as tensors report it."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


_COPIES: "weakref.WeakKeyDictionary[Pool, dict[str, Pool]]" = weakref.WeakKeyDictionary()


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel (images) or per-feature mean and std, shaped to broadcast over a batch."""
    xf = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if xf.dim() == 4:
        mean = xf.mean(dim=(0, 2, 3)).view(-1, 1, 1)
        std = xf.std(dim=(0, 2, 3)).view(-1, 1, 1)
    else:
        mean, std = xf.mean(dim=0), xf.std(dim=0)
    return mean, std.clamp_min(1e-6)


@dataclass(frozen=True)
class Augment:
    """Tensor-level augmentation for CIFAR-like images: random crop after zero padding, and flip."""

    crop_padding: int = 4
    flip: bool = True

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Augment the batch ``x`` where it lies; the random draws come from ``generator`` (a CPU
        generator: the same draws, hence the same batches, on every device)."""
        b, _, h, w = x.shape
        dev = x.device
        if self.crop_padding > 0:
            p = self.crop_padding
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            oy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(dev)
            ox = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(dev)
            rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]  # [B, H, 1]
            cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]  # [B, 1, W]
            x = padded[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        if self.flip:
            flip = torch.rand(b, generator=generator).to(dev) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x.contiguous()


@dataclass(frozen=True, eq=False)
class Samples:
    """Some samples of a pool, named by their IDs (int64). ``targets``, when given, overrides the
    pool's labels for these samples (random-label unlearning, relabelled replacements)."""

    pool: Pool
    ids: Tensor
    targets: Tensor | None = None

    def __post_init__(self) -> None:
        if self.targets is not None and self.targets.shape != self.ids.shape:
            raise DataError(f"{self.ids.shape[0]} ids but {self.targets.shape[0]} target labels")

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def labels(self) -> Tensor:
        return self.pool.y[self.ids] if self.targets is None else self.targets

    def inputs(self) -> Tensor:
        return self.pool.inputs(self.ids)

    def to(self, device: torch.device | str) -> "Samples":
        """The same samples over the pool's copy on ``device`` (:meth:`Pool.to`), IDs and targets
        moved with it: batches are then indexed (and augmented) there."""
        pool = self.pool.to(device)
        if pool is self.pool:
            return self
        targets = None if self.targets is None else self.targets.to(pool.x.device)
        return Samples(pool, self.ids.to(pool.x.device), targets)

    def near(self, device: torch.device | str) -> "Samples":
        """:meth:`to` ``device`` when the pool fits there (a GPU with room: utils/devices.py), else
        these samples as they are (batches are then copied one by one). A pool already there stays
        used: its own copy would otherwise count against the free memory the check reads."""
        return self.to(device) if self.pool.is_on(device) or fits_on_device(self.pool.nbytes, device) else self

    def relabel(self, targets: Tensor) -> "Samples":
        return Samples(self.pool, self.ids, targets.long())

    def take(self, positions: Tensor | slice) -> "Samples":
        """The samples at the given positions of this set (not IDs)."""
        targets = None if self.targets is None else self.targets[positions]
        return Samples(self.pool, self.ids[positions], targets)

    def random_subset(self, count: int | None, *, generator: torch.Generator) -> "Samples":
        """``count`` of these samples drawn without replacement, in random order (all of them,
        shuffled, if fewer). Always draws one permutation from ``generator``."""
        return self.take(random_positions(len(self), count, generator))

    def capped(self, limit: int | None, *, generator: torch.Generator) -> "Samples":
        """These samples themselves if there are at most ``limit`` (or ``limit`` is None; no draw),
        else :meth:`random_subset` of ``limit``."""
        if limit is None or len(self) <= limit:
            return self
        return self.random_subset(limit, generator=generator)

    def union(self, other: "Samples") -> "Samples":
        if other.pool is not self.pool:
            raise DataError("cannot join samples of different pools")
        targets = None
        if self.targets is not None or other.targets is not None:
            targets = torch.cat([self.labels, other.labels])
        return Samples(self.pool, torch.cat([self.ids, other.ids]), targets)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(inputs, labels)`` batches by slicing an index tensor (no per-sample Python).

        The shuffling order is drawn from ``generator`` on the CPU, so the batches are the same
        wherever the pool lies (see :meth:`to`)."""
        ids, labels = self.ids, self.labels
        if shuffle:
            if generator is None:
                raise ValueError("shuffle=True needs an explicit generator")
            order = torch.randperm(len(ids), generator=generator).to(ids.device)
            ids, labels = ids[order], labels[order]
        if augment is not None and generator is None:
            raise ValueError("augmentation needs an explicit generator")
        stop = len(ids) - (len(ids) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            x = self.pool.inputs(ids[start : start + batch_size])
            if augment is not None:
                x = augment(x, generator)
            yield x.to(device), labels[start : start + batch_size].to(device)
