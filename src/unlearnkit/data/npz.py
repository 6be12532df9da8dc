"""A generic ``.npz`` dataset: arrays ``x_train, y_train, x_test, y_test``."""
from __future__ import annotations

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
        return torch.from_numpy(x.astype(np.float32))
    raise DataError(f"{where}: expected uint8 images or float N×D features, got {x.dtype} {x.shape}")


@register_dataset("npz")
def npz(*, path: str | None = None, num_classes: int | None = None, data_dir=None,
        download: bool = False) -> Dataset:
    """Load ``path`` (an ``.npz`` with x_train, y_train, x_test, y_test).

    ``num_classes`` defaults to the largest label + 1. ``data_dir`` and ``download`` are accepted
    for a uniform call signature; a relative ``path`` is resolved against ``data_dir``.
    """
    if path is None:
        raise DataError("dataset 'npz' needs a file: set data.path=/path/to/file.npz")
    p = Path(path)
    if not p.is_absolute() and data_dir is not None:
        p = Path(data_dir) / p
    if not p.is_file():
        raise DataError(f"npz dataset file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DataError(f"{p}: missing arrays {missing}; an npz dataset needs {list(KEYS)}")
            arrays = {k: f[k] for k in KEYS}
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read npz dataset {p}: {e}") from e
    x_tr, x_te = _inputs(arrays["x_train"], f"{p}:x_train"), _inputs(arrays["x_test"], f"{p}:x_test")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"{p}: train inputs {tuple(x_tr.shape[1:])} and test inputs {tuple(x_te.shape[1:])} differ")
    labels = np.concatenate([arrays["y_train"].ravel(), arrays["y_test"].ravel()])
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{p}: labels must be integers, got {labels.dtype}")
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    y_tr = labels_tensor(arrays["y_train"], len(x_tr), k, f"{p}:y_train")
    y_te = labels_tensor(arrays["y_test"], len(x_te), k, f"{p}:y_test")
    return make_dataset(p.stem, x_tr, y_tr, x_te, y_te, k)
