"""Checkpoints that carry their config and a checksum, written atomically."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..utils.files import write_atomic

FORMAT = "unlearnkit-checkpoint/1"


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model``'s weights and ``meta`` (JSON-serialisable) to ``path`` atomically:
    a crash leaves either the old file or the new one, never half of one."""
    path = Path(path)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "meta": json.dumps(meta, sort_keys=True), "state": state,
               "checksum": state_checksum(state)}
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint; return ``(state_dict, meta)``.

    Raises:
        CheckpointError: missing, unreadable, not an unlearnkit checkpoint, or checksum mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types on truncated or garbage files
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an unlearnkit checkpoint")
    state = payload["state"]
    if state_checksum(state) != payload.get("checksum"):
        raise CheckpointError(f"checkpoint {path} is corrupted: its weights do not match their checksum")
    return state, json.loads(payload["meta"])
