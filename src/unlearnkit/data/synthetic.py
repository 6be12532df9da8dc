"""A seeded synthetic image task: noisy copies of one random prototype per class.

Small and fast, for tests and first tries; the forget-accuracy and MIA checks use it because its
answer is known: with ``label_noise`` some labels are random, which only memorisation can fit.
"""
from __future__ import annotations

import torch

from .dataset import Dataset, make_dataset, register_dataset


@register_dataset("synthetic")
def synthetic(*, n_train: int = 2000, n_test: int = 500, num_classes: int = 4, size: int = 12,
              channels: int = 1, noise: float = 70.0, label_noise: float = 0.0, seed: int = 0,
              data_dir=None, download: bool = False) -> Dataset:
    """``num_classes`` prototypes of ``channels×size×size`` uint8 pixels; samples are prototype +
    Gaussian noise (std ``noise`` grey levels), balanced over classes; ``label_noise`` of the
    *training* labels are replaced by random classes."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(num_classes, channels, size, size, generator=g) * 255

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % num_classes
        y = y[torch.randperm(n, generator=g)]
        x = protos[y] + noise * torch.randn(n, channels, size, size, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8), y

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    if label_noise > 0:
        flip = torch.rand(n_train, generator=g) < label_noise
        y_tr = torch.where(flip, torch.randint(0, num_classes, (n_train,), generator=g), y_tr)
    return make_dataset("synthetic", x_tr, y_tr, x_te, y_te, num_classes)
