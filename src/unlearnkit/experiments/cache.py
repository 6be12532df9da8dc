"""A content-addressed cache of trained models (original models, retrain oracles).

A model is stored under the SHA-256 of the JSON description of how it was made. A file that fails
its checksum or cannot be read is reported and rebuilt, never used.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..data.dataset import cache_root
from ..errors import CheckpointError
from ..training.checkpoint import load_checkpoint, save_checkpoint
from .config import digest

log = logging.getLogger("unlearnkit")


class ModelCache:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root() / "models"

    def path(self, key: dict[str, Any]) -> Path:
        h = digest(key)
        return self.root / h[:2] / f"{h}.pt"

    def get_or_build(self, key: dict[str, Any], template: nn.Module,
                     build: Callable[[], tuple[nn.Module, dict[str, Any]]]) -> tuple[nn.Module, dict[str, Any], bool]:
        """Return ``(model, meta, was_cached)``. ``template`` is a model of the right architecture
        whose weights are replaced by the cached ones; ``build`` makes the model and its meta."""
        path = self.path(key)
        if path.exists():
            try:
                state, meta = load_checkpoint(path)
                if meta.get("key") != key:
                    raise CheckpointError(f"{path} holds a different model (hash collision or edited file)")
                template.load_state_dict(state)
                return template, meta, True
            except (CheckpointError, RuntimeError) as e:
                log.warning("cache: %s; rebuilding it", e)
        model, meta = build()
        meta = {**meta, "key": key}
        save_checkpoint(path, model, meta)
        return model, meta, False
