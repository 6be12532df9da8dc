"""Every experiment file in configs/ loads, names its own command first, and dry-runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from unlearnkit.experiments import load_config
from unlearnkit.experiments import AdversarialConfig, load

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
LOADERS = {"run": load_config, "damage": lambda p: load(AdversarialConfig, p),
           "heal": lambda p: load(AdversarialConfig, p)}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_starts_with_its_command(path):
    first = path.read_text().splitlines()[0]
    command = first.split()[2] if first.startswith("# unlearnkit ") else None
    if command == "register":  # a deployment spec of the deletion service
        from unlearnkit.service.spec import read_spec

        assert first.startswith(f"# unlearnkit register configs/{path.name}")
        assert read_spec(path).name
        return
    assert command in LOADERS and first == f"# unlearnkit {command} --config configs/{path.name}"
    config = LOADERS[command](path)
    assert config.seeds
