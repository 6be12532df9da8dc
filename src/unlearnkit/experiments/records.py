"""Run records: one JSON object per line, appended and fsync'ed; a rerun skips recorded keys.

A crash can leave at most one partial last line; it is ignored on read and isolated by a newline
before the next append, so records already written are never lost or rewritten.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("unlearnkit")


class RecordStore:
    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.dir = Path(out_dir)
        self.path = self.dir / "records.jsonl"

    def __iter__(self) -> Iterator[dict[str, Any]]:
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
                if isinstance(rec, dict) and "key" in rec:
                    yield rec

    def keys(self) -> set[str]:
        return {r["key"] for r in self}

    def get(self, key: str) -> dict[str, Any] | None:
        found = None
        for r in self:
            if r["key"] == key:
                found = r
        return found

    def append(self, record: dict[str, Any]) -> None:
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


def write_atomic(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
