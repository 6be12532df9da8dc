"""Named seeds and the global RNG forked from an explicit generator."""
from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any, Iterator

import torch


def derive_seed(*parts: Any) -> int:
    """A 62-bit seed from any JSON-able parts: each (seed, purpose) gets its own stream."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:15], 16)


def derived_generator(*parts: Any) -> torch.Generator:
    """A CPU generator seeded with :func:`derive_seed` of ``parts``."""
    return torch.Generator().manual_seed(derive_seed(*parts))


@contextlib.contextmanager
def seeded(generator: torch.Generator) -> Iterator[None]:
    """Seed the global RNG (dropout, layer init) from ``generator``, restoring it afterwards."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
