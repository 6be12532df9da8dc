"""The Dataset type, the dataset registry and where files are looked for."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import DataError
from ..registry import Registry
from .pool import Pool, Samples

DATASETS: Registry[Callable[..., "Dataset"]] = Registry("dataset")
register_dataset = DATASETS.register


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train and a test pool held in memory. Training sample IDs are row numbers of the train file."""

    name: str
    train: Pool
    test: Pool
    num_classes: int
    class_names: tuple[str, ...] = field(default=())

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def in_channels(self) -> int:
        return self.input_shape[0] if self.train.is_image else 1

    def train_samples(self) -> Samples:
        return self.train.all()

    def test_samples(self) -> Samples:
        return self.test.all()


def load_dataset(name: str, **kwargs) -> Dataset:
    """Load a registered dataset by name, e.g. ``load_dataset("fashion-mnist", data_dir="...")``.

    Raises:
        RegistryError: unknown name (the message lists the valid ones).
        DataError: files missing or malformed (the message says where it looked).
    """
    return DATASETS.get(name)(**kwargs)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def cache_root() -> Path:
    """Where downloads and derived tensors go: ``$UNLEARNKIT_CACHE`` or ``~/.cache/unlearnkit``."""
    root = os.environ.get("UNLEARNKIT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "unlearnkit"


def search_dirs(name: str, data_dir: str | os.PathLike | None, extra: tuple[str, ...] = ()) -> list[Path]:
    """Folders to look in, in order: ``data_dir``, ``$UNLEARNKIT_DATA``, ``extra`` (system paths),
    then the download cache. Each base folder is tried as is and with the dataset name appended."""
    bases: list[Path] = []
    if data_dir is not None:
        bases.append(Path(data_dir))
    if os.environ.get("UNLEARNKIT_DATA"):
        bases.append(Path(os.environ["UNLEARNKIT_DATA"]))
    dirs: list[Path] = []
    for base in bases:
        dirs += [base, base / name]
    dirs += [Path(p) for p in extra]
    dirs.append(cache_root() / "data" / name)
    return dirs


def labels_tensor(labels, n_expected: int, num_classes: int, where: str) -> torch.Tensor:
    y = torch.as_tensor(labels).long().flatten()
    if y.shape[0] != n_expected:
        raise DataError(f"{where}: {n_expected} inputs but {y.shape[0]} labels")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels must lie in [0, {num_classes}), found {int(y.min())}..{int(y.max())}")
    return y


def make_dataset(name: str, x_train, y_train, x_test, y_test, num_classes: int,
                 class_names: tuple[str, ...] = ()) -> Dataset:
    """Build a Dataset from tensors; normalisation statistics come from the training file only."""
    from .pool import channel_stats

    mean, std = channel_stats(x_train)
    return Dataset(
        name=name,
        train=Pool(x_train, y_train, mean, std),
        test=Pool(x_test, y_test, mean, std),
        num_classes=num_classes,
        class_names=class_names,
    )
