"""The one atomic file writer: write a temporary file beside the target, fsync it, rename it over."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[Path], object], *, suffix: str = "") -> Path:
    """Write ``data`` (text, bytes, or a function that writes to the path it is given) to ``path`` so
    that a reader sees the old file or the whole new one, never a part; returns ``path``.

    ``suffix`` ends the temporary name, for writers that insist on an extension (``np.savez``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}{suffix}")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            data(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
