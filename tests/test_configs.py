"""Every experiment file in configs/ loads, names its own command first, and dry-runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from unlearnkit.experiments import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_starts_with_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first == f"# unlearnkit run --config configs/{path.name}"
    config = load_config(path)
    assert config.seeds
