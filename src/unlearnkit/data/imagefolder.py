"""An image-folder tree (AFHQ-style): ``root/train/<class>/*`` and ``root/test|val/<class>/*``.

Images are decoded and resized once, then cached as uint8 tensors keyed by the tree's listing.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..utils.files import write_atomic
from .dataset import Dataset, cache_root, make_dataset, register_dataset

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _listing(split_dir: Path) -> list[tuple[str, Path]]:
    return [(c.name, f) for c in sorted(p for p in split_dir.iterdir() if p.is_dir())
            for f in sorted(c.iterdir()) if f.suffix.lower() in EXTENSIONS]


def _decode(files: list[tuple[str, Path]], classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    x = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, (_, f) in enumerate(files):
        try:
            with Image.open(f) as im:
                x[i] = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"cannot decode image {f}: {e}") from e
    y = torch.tensor([classes.index(c) for c, _ in files], dtype=torch.int64)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), y


@register_dataset("imagefolder")
def imagefolder(*, path: str | None = None, size: int = 64, data_dir=None, download: bool = False) -> Dataset:
    """Load ``path/train/<class>/`` and ``path/test/<class>/`` (or ``val/``), resized to ``size``².

    The decoded tensors are cached under ``$UNLEARNKIT_CACHE/imagefolder/``; the cache key covers
    every file's name, size and modification time, so an edited tree is decoded again.
    """
    if path is None:
        raise DataError("dataset 'imagefolder' needs a folder: set data.path=/path/to/tree")
    root = Path(path) if Path(path).is_absolute() or data_dir is None else Path(data_dir) / path
    train_dir = root / "train"
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(f"image folder {root} must hold train/<class>/ and test/<class>/ (or val/<class>/)")
    train_files, test_files = _listing(train_dir), _listing(test_dir)
    classes = sorted({c for c, _ in train_files})
    if not train_files or not test_files:
        raise DataError(f"image folder {root}: no images ({', '.join(sorted(EXTENSIONS))}) under train/ or test/")
    unknown = sorted({c for c, _ in test_files} - set(classes))
    if unknown:
        raise DataError(f"image folder {root}: test classes {unknown} do not appear in train/")
    h = hashlib.sha256(f"{root.resolve()}|{size}".encode())
    for _, f in train_files + test_files:
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    cache = cache_root() / "imagefolder" / f"{h.hexdigest()[:24]}.pt"
    tensors = None
    if cache.is_file():
        try:
            tensors = torch.load(cache, weights_only=True)
        except Exception:  # a corrupted cache is rebuilt, never trusted
            tensors = None
    if tensors is None:
        x_tr, y_tr = _decode(train_files, classes, size)
        x_te, y_te = _decode(test_files, classes, size)
        tensors = {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}
        write_atomic(cache, lambda tmp: torch.save(tensors, tmp))
    return make_dataset(root.name, tensors["x_train"], tensors["y_train"], tensors["x_test"],
                        tensors["y_test"], len(classes), tuple(classes))
