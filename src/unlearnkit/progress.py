"""Progress bars on stderr, shown when it is a terminal (``UNLEARNKIT_PROGRESS=1/0`` forces it)."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_enabled() -> bool:
    forced = os.environ.get("UNLEARNKIT_PROGRESS")
    if forced is not None:
        return forced not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress_bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, leave=False, disable=not progress_enabled(),
                dynamic_ncols=True, mininterval=0.5)
