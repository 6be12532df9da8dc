"""MNIST and Fashion-MNIST from IDX files (gzip or raw)."""
from __future__ import annotations

import gzip
import os
import struct
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..utils.files import write_atomic
from .dataset import Dataset, make_dataset, register_dataset, search_dirs, labels_tensor

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not, told apart by its first bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header promises {expected} bytes of data for shape {dims}, "
                        f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in FILES.values():
        target = folder / f"{stem}.gz"
        if target.exists():
            continue
        with urllib.request.urlopen(url + f"{stem}.gz", timeout=30) as r:
            write_atomic(target, r.read())


def load_idx_dataset(name: str, *, data_dir=None, download: bool = True, url: str,
                     system_dirs: tuple[str, ...] = (), hint: str = "",
                     class_names: tuple[str, ...] = ()) -> Dataset:
    dirs = search_dirs(name, data_dir, system_dirs)
    folder = next((d for d in dirs if all(_find(d, s) for s in FILES.values())), None)
    if folder is None and download:
        try:
            _download(url, dirs[-1])
            folder = dirs[-1]
        except OSError as e:
            hint = f"{hint}; download from {url} failed: {e}"
    if folder is None:
        looked = ", ".join(str(d) for d in dirs)
        raise DataError(f"{name}: IDX files ({', '.join(FILES.values())}[.gz]) not found; looked in: "
                        f"{looked}{hint}. Pass --data-dir or set UNLEARNKIT_DATA to the folder holding them.")
    arrays = {k: read_idx(_find(folder, s)) for k, s in FILES.items()}
    xs = {}
    for part in ("train", "test"):
        x = arrays[f"{part}_x"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(f"{name}: {part} images must be uint8 N×H×W, got {x.dtype} {x.shape}")
        xs[part] = torch.from_numpy(x.copy()).unsqueeze(1)
    where = str(folder)
    return make_dataset(
        name,
        xs["train"], labels_tensor(arrays["train_y"], len(xs["train"]), 10, where + " (train)"),
        xs["test"], labels_tensor(arrays["test_y"], len(xs["test"]), 10, where + " (test)"),
        num_classes=10, class_names=class_names,
    )


@register_dataset("fashion-mnist")
def fashion_mnist(*, data_dir=None, download: bool = True) -> Dataset:
    """Fashion-MNIST (60k train / 10k test, 28×28 grey, 10 classes): the default dataset."""
    return load_idx_dataset(
        "fashion-mnist", data_dir=data_dir, download=download, url=FASHION_URL,
        system_dirs=(DEBIAN_FASHION,), class_names=FASHION_CLASSES,
        hint=" (on Debian/Ubuntu: apt-get install dataset-fashion-mnist)",
    )


@register_dataset("mnist")
def mnist(*, data_dir=None, download: bool = True) -> Dataset:
    """MNIST (60k train / 10k test, 28×28 grey, 10 classes) from the four IDX files."""
    return load_idx_dataset("mnist", data_dir=data_dir, download=download, url=MNIST_URL,
                            system_dirs=("/usr/share/datasets/mnist",),
                            class_names=tuple(str(i) for i in range(10)))
