"""A generic ``.npz`` dataset: arrays ``x_train, y_train, x_test, y_test``."""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset, labels_tensor, make_dataset, register_dataset

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _inputs(x: np.ndarray, where: str) -> torch.Tensor:
    """uint8 images N×H×W or N×H×W×C become N×C×H×W; float features N×D stay as they are."""
    if x.dtype == np.uint8:
        if x.ndim == 3:
            return torch.from_numpy(x.copy()).unsqueeze(1)
        if x.ndim == 4 and x.shape[-1] in (1, 3, 4):
            return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        raise DataError(f"{where}: uint8 images must be N×H×W or N×H×W×C (C in 1, 3, 4), got {x.shape}")
    if np.issubdtype(x.dtype, np.floating) and x.ndim == 2:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, refused by the caller
            return torch.from_numpy(x.astype(np.float32))
    raise DataError(f"{where}: expected uint8 images or float N×D features, got {x.dtype} {x.shape}")


@register_dataset("npz")
def npz(*, path: str | None = None, num_classes: int | None = None, data_dir=None,
        download: bool = False) -> Dataset:
    """Load ``path`` (an ``.npz`` with x_train, y_train, x_test, y_test), checked before any use.

    ``num_classes`` defaults to the largest label + 1. ``data_dir`` and ``download`` are accepted
    for a uniform call signature; a relative ``path`` is resolved against ``data_dir``.

    Raises:
        DataError: one line naming the file and the problem: unreadable (empty, truncated, not an
            npz), missing arrays, empty or mismatched arrays, non-finite inputs, or labels that do
            not number the classes 0..K-1 in both the training and the test arrays (see :func:`check_labels`).
    """
    if path is None:
        raise DataError("dataset 'npz' needs a file: set data.path=/path/to/file.npz")
    p = Path(path)
    if not p.is_absolute() and data_dir is not None:
        p = Path(data_dir) / p
    if not p.is_file():
        raise DataError(f"npz dataset file not found: {p}")
    arrays = _read(p)
    inputs = {}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim == 0 or len(x) == 0:
            raise DataError(f"{p}: x_{part} is empty (0 samples)")
        if y.ndim == 2 and y.shape[1] == 1:
            y = arrays[f"y_{part}"] = y.ravel()
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{p}: x_{part} has {len(x)} samples but y_{part} has shape {y.shape} (one label each)")
        x = inputs[part] = _inputs(x, f"{p}:x_{part}")
        if x.is_floating_point():
            bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
            if bad.any():
                raise DataError(f"{p}: x_{part} holds NaN or inf (as float32) in {int(bad.sum())} sample(s), first "
                                f"row {int(bad.nonzero()[0])}; clean or drop them")
    x_tr, x_te = inputs["train"], inputs["test"]
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"{p}: train inputs {tuple(x_tr.shape[1:])} and test inputs {tuple(x_te.shape[1:])} differ")
    k = check_labels(arrays["y_train"], arrays["y_test"], num_classes, str(p))
    y_tr = labels_tensor(arrays["y_train"], len(x_tr), k, f"{p}:y_train")
    y_te = labels_tensor(arrays["y_test"], len(x_te), k, f"{p}:y_test")
    return make_dataset(p.stem, x_tr, y_tr, x_te, y_te, k)


def _read(p: Path) -> dict[str, np.ndarray]:
    """The four arrays of ``p``; an unreadable archive is a one-line DataError, never a traceback."""
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(f"{p}: missing arrays {missing}; an npz dataset needs {list(KEYS)}")
            return {k: f[k] for k in KEYS}
    except DataError:
        raise
    except (AttributeError, TypeError):  # np.load gave one array (.npy): no archive to open
        raise DataError(f"{p}: not an npz archive; save the arrays with np.savez(path, {', '.join(KEYS)})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        if p.stat().st_size == 0:
            what = "the file is empty"
        elif isinstance(e, zipfile.BadZipFile):
            what = f"not a complete zip archive (truncated, or not an npz): {e}"
        else:
            what = f"{type(e).__name__}: {e}"
        raise DataError(f"cannot read npz dataset {p}: {what}") from e


def check_labels(y_train: np.ndarray, y_test: np.ndarray, num_classes: int | None, where: str) -> int:
    """The number of classes K, after checking that the labels number them 0..K-1 and that every
    class has samples in both the training and the test arrays (a stray label such as one 99 among
    0..9 would otherwise make 100 classes, and a class seen only in testing cannot be learnt).

    Raises:
        DataError: naming ``where`` and the offending labels.
    """
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: labels must be integers, got {y.dtype} in {name}")
        if len(y) and y.min() < 0:
            raise DataError(f"{where}: labels must be >= 0, found {int(y.min())} in {name}")
    train, test = set(np.unique(y_train).tolist()), set(np.unique(y_test).tolist())
    k = max(train | test) + 1 if num_classes is None else num_classes
    if num_classes is not None and max(train | test) >= k:
        raise DataError(f"{where}: labels must lie in [0, {k}) (num_classes={k}), found {max(train | test)}")
    counts = np.bincount(np.concatenate([y_train.ravel(), y_test.ravel()]).astype(np.int64), minlength=k)
    absent = [c for c in range(k) if counts[c] == 0]
    if absent:
        rare = sorted(train | test, key=lambda c: (counts[c], -c))[0]
        raise DataError(f"{where}: labels must number the classes 0..K-1 without gaps, but classes {_ranges(absent)} "
                        f"have no samples; label {rare} has only {counts[rare]} (a stray label?)")
    for name, only in (("y_test", sorted(test - train)), ("y_train", sorted(train - test))):
        if only:
            other = "y_train" if name == "y_test" else "y_test"
            raise DataError(f"{where}: class(es) {_ranges(only)} appear in {name} but not in {other}; every class "
                            "needs training and test samples")
    return k


def _ranges(values: list[int]) -> str:
    """``[3, 10..98]``: consecutive runs written as ranges."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return "[" + ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs) + "]"
