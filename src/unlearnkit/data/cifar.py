"""CIFAR-10 and CIFAR-100 from the official python pickle folders."""
from __future__ import annotations

import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset, cache_root, labels_tensor, make_dataset, register_dataset, search_dirs

_SPECS = {
    "cifar10": dict(folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)],
                    test=["test_batch"], meta="batches.meta", names_key=b"label_names",
                    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", classes=10),
    "cifar100": dict(folder="cifar-100-python", train=["train"], test=["test"], meta="meta",
                     names_key=b"fine_label_names",
                     url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", classes=100),
}


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"cannot read CIFAR batch {path}: {e}") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _read_batches(folder: Path, files: list[str], label_key: bytes, num_classes: int):
    xs, ys = [], []
    for name in files:
        d = _unpickle(folder / name)
        if b"data" not in d or label_key not in d:
            raise DataError(f"{folder / name}: missing key b'data' or {label_key!r}")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{folder / name}: data must be N×3072 uint8, got {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key]))
    x = torch.from_numpy(np.concatenate(xs))
    y = labels_tensor(np.concatenate(ys), len(x), num_classes, str(folder))
    return x, y


def _load_cifar(name: str, *, data_dir, download: bool, coarse: bool = False) -> Dataset:
    spec = _SPECS[name]
    dirs = search_dirs(name, data_dir)
    candidates = [p for d in dirs for p in (d / spec["folder"], d)]
    folder = next((c for c in candidates if all((c / f).is_file() for f in spec["train"] + spec["test"])), None)
    hint = ""
    if folder is None and download:
        target = cache_root() / "data" / name
        try:
            target.mkdir(parents=True, exist_ok=True)
            archive = target / "archive.tar.gz.part"
            with urllib.request.urlopen(spec["url"], timeout=30) as r, open(archive, "wb") as f:
                f.write(r.read())
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
            os.remove(archive)
            folder = target / spec["folder"]
        except (OSError, tarfile.TarError) as e:
            hint = f"; download from {spec['url']} failed: {e}"
    if folder is None:
        looked = ", ".join(str(c) for c in candidates)
        raise DataError(f"{name}: the python pickle folder {spec['folder']}/ was not found; looked in: {looked}"
                        f"{hint}. Download {spec['url']}, unpack it and pass --data-dir.")
    classes = 20 if coarse else spec["classes"]
    label_key = b"coarse_labels" if coarse else (b"labels" if name == "cifar10" else b"fine_labels")
    x_tr, y_tr = _read_batches(folder, spec["train"], label_key, classes)
    x_te, y_te = _read_batches(folder, spec["test"], label_key, classes)
    names: tuple[str, ...] = ()
    if (folder / spec["meta"]).is_file():
        meta = _unpickle(folder / spec["meta"])
        key = b"coarse_label_names" if coarse else spec["names_key"]
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(key, []))
    return make_dataset(name, x_tr, y_tr, x_te, y_te, classes, names)


@register_dataset("cifar10")
def cifar10(*, data_dir=None, download: bool = True) -> Dataset:
    """CIFAR-10 (50k train / 10k test, 32×32 RGB, 10 classes) from ``cifar-10-batches-py/``."""
    return _load_cifar("cifar10", data_dir=data_dir, download=download)


@register_dataset("cifar100")
def cifar100(*, data_dir=None, download: bool = True, coarse: bool = False) -> Dataset:
    """CIFAR-100 (50k/10k, 32×32 RGB) from ``cifar-100-python/``; ``coarse=True`` uses the 20 superclasses."""
    return _load_cifar("cifar100", data_dir=data_dir, download=download, coarse=coarse)
