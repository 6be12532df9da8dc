"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Union

Content = Union[str, bytes, Callable[[Path], None]]


def write_atomic(path: str | os.PathLike, content: Content, *, encoding: str = "utf-8") -> Path:
    """Write ``content`` to ``path`` through a temporary sibling file and ``os.replace``.

    ``content`` is text, bytes, or a callback that writes the file at the path it is given (e.g.
    ``lambda p: torch.save(obj, p)``, ``lambda p: np.save(p, arr)``). The temporary file keeps
    ``path``'s suffix (``name.tmp<pid><suffix>``), so writers that append a missing suffix
    (``np.save``, ``np.savez_compressed``) write where they are told. The file is flushed to disk (fsync) before the rename and the folder after it, so the new name
    survives a power loss too. The parent folder is created if missing.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        if callable(content):
            content(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        else:
            data = content.encode(encoding) if isinstance(content, str) else content
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
