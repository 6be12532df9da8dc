"""Explicit randomness: every (seed, purpose) pair gets its own reproducible stream."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def derive_seed(*parts: Any) -> int:
    """A 62-bit seed from any JSON-able parts: each (seed, purpose) gets its own stream."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:15], 16)


def generator(*parts: Any) -> torch.Generator:
    """A CPU generator seeded by :func:`derive_seed` of ``parts``."""
    return torch.Generator().manual_seed(derive_seed(*parts))
