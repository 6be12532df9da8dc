"""The four record kinds, one per recipe, and how to tell them apart (here, below experiments/, so
that both the recipes that write records and the renderers that read them share it)."""
from __future__ import annotations

from typing import Any, Literal

Kind = Literal["run", "damage", "heal", "tune"]
REQUIRED: dict[str, frozenset[str]] = {
    "run": frozenset({"key", "seed", "row", "status", "metrics"}),
    "damage": frozenset({"key", "seed", "strategy", "budget", "row", "status", "metrics"}),
    "heal": frozenset({"key", "seed", "strategy", "method", "variant", "status", "metrics"}),
    "tune": frozenset({"key", "seed", "method", "point", "status", "metrics"}),
}


def record_kind(record: dict[str, Any]) -> Kind:
    """The record's ``kind`` field, or, for records written before it existed, the kind whose
    distinctive field the record has."""
    if "kind" in record:
        return record["kind"]
    if "point" in record:
        return "tune"
    if "variant" in record:
        return "heal"
    return "damage" if "strategy" in record else "run"


def is_complete(record: Any) -> bool:
    """A dict with every field its kind's records have (a crash may leave a partial line)."""
    return isinstance(record, dict) and REQUIRED.get(record_kind(record), frozenset({"?"})) <= record.keys()
