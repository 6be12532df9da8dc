"""Run records: one JSON object per line, appended and fsync'ed; a rerun skips recorded keys.

Four kinds (report/kinds.py), one per recipe: ``run`` (a table row: a method's audit for one seed), ``damage`` (TA
after an adversarial request), ``heal`` (TA after healing) and ``tune`` (a grid point's validation
audit). New records carry their ``kind``; records written before it was added get it from the one
field only their kind has (``report.kinds.record_kind``). A line that is not a complete record of its kind
(a crash can leave at most one partial last line) is skipped with a warning, never used, and
isolated by a newline before the next append, so records already written are never lost or rewritten.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError
from ..report.kinds import is_complete
from ..utils.files import write_atomic

log = logging.getLogger("unlearnkit")
Record = dict[str, Any]


class RecordStore:
    """``out_dir/records.jsonl``. With ``complete``, reading skips lines that are not a complete
    record of their kind (what the recipes and reports read); without, any object with a ``key``."""

    def __init__(self, out_dir: str | os.PathLike, *, complete: bool = False) -> None:
        self.dir = Path(out_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise ConfigError(f"the output folder {self.dir} is a file; name a folder (--out DIR)")
        self.path = self.dir / "records.jsonl"
        self.complete = complete

    def __iter__(self) -> Iterator[Record]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("%s:%d: skipping a damaged record (interrupted write?)", self.path, lineno)
                    continue
                if isinstance(rec, dict) and "key" in rec and (not self.complete or is_complete(rec)):
                    yield rec
                else:
                    log.warning("%s:%d: skipping an incomplete record (not every field of its kind)", self.path, lineno)

    def keys(self) -> set[str]:
        return {r["key"] for r in self}

    def get(self, key: str) -> Record | None:
        found = None
        for r in self:
            if r["key"] == key:
                found = r
        return found

    def append(self, record: Record) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())


def save_samples(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a record's per-sample arrays (its companion ``samples/<key>.npz``) atomically."""
    write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays))


