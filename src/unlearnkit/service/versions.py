"""Model version files: one complete, checksummed file per published version.

A version file holds the weights (a single model, or every member of a SISA ensemble), the training
IDs the model embodies (after deletions and healing replacements), the reserve still unused and the
IDs deleted so far. It is written through ``write_atomic`` (temporary file, fsync, ``os.replace``),
and its SHA-256 goes into the database in the transaction that publishes it; :func:`load_version`
refuses a file whose bytes do not match.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from ..sisa import SisaEnsemble
from ..utils.files import write_atomic

FORMAT = "unlearnkit-version/1"


@dataclass(frozen=True, eq=False)
class Version:
    """A loaded version: the model and the ID sets it stands for."""

    model: nn.Module
    train_ids: Tensor
    reserve_ids: Tensor
    deleted_ids: Tensor
    meta: dict[str, Any]


def version_path(folder: str | os.PathLike, version: int) -> Path:
    return Path(folder) / "versions" / f"v{version:05d}.pt"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_version(path: Path, model: nn.Module, *, train_ids: Tensor, reserve_ids: Tensor, deleted_ids: Tensor,
                 meta: dict[str, Any]) -> str:
    """Write the version atomically; return the SHA-256 of the file's bytes."""
    members = len(model.members) if isinstance(model, SisaEnsemble) else 0
    payload = {"format": FORMAT, "members": members,
               "aggregation": model.aggregation if members else None,
               "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "train_ids": torch.sort(train_ids).values, "reserve_ids": torch.sort(reserve_ids).values,
               "deleted_ids": torch.sort(deleted_ids).values, "meta": meta}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def load_version(path: str | os.PathLike, sha256: str, template: nn.Module) -> Version:
    """Read a version file, checking its bytes against ``sha256``; ``template``: a model of the
    deployment's architecture (one member's, for an ensemble).

    Raises:
        CheckpointError: missing, altered (checksum) or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model version file missing: {path}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(f"model version file {path} does not match its published sha256")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"model version file {path} is unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an unlearnkit model version")
    import copy

    if payload["members"]:
        model = SisaEnsemble([copy.deepcopy(template) for _ in range(payload["members"])], payload["aggregation"])
    else:
        model = copy.deepcopy(template)
    model.load_state_dict(payload["state"])
    return Version(model.eval(), payload["train_ids"], payload["reserve_ids"], payload["deleted_ids"], payload["meta"])
