"""``unlearnkit run ... audit.per_example=N``: the per-example audit's part of the run recipe.

With N > 0 every row's record gets ``per_example`` figures (U-LiRA on D_f, KLoM on D_f / D_r /
D_test with their oracle-vs-oracle floor; experiments/families.py): the original row scores the
untouched originals, the Retrain row the oracle-vs-oracle floor (half the oracles in the place of
the unlearned models), every method row its unlearned family; the noise-floor retrain gets none.
The audit's settings join the row keys only when it is on, so rows recorded without it keep their
keys, and a change of N or of the number of examples reruns the rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...methods.base import method_from_params
from ..config import RunConfig, to_dict
from ..families import audit_row, prepare_families
from ..setup import REFERENCE, SeedSetup


def key_part(config: RunConfig) -> dict[str, Any]:
    """What a row key adds for the per-example audit (nothing when it is off)."""
    return {"per_example": to_dict(config.audit)} if config.audit.per_example else {}


def prepare(config: RunConfig, setup: SeedSetup) -> None:
    if config.audit.per_example:
        prepare_families(setup, config.audit.per_example)


def audit(config: RunConfig, setup: SeedSetup, row, model, seconds: float, record: dict[str, Any],
          samples: dict[str, Any]) -> None:
    """Add the row's per-example figures to ``record`` and its per-example arrays to ``samples``."""
    n = config.audit.per_example
    if not n or (row.method == REFERENCE and row.trial != 0):
        return
    kw = dict(n=n, examples=config.audit.examples)
    if row.method is None:
        figures, arrays = audit_row(setup, **kw)
    elif row.method == REFERENCE:
        figures, arrays = audit_row(setup, floor=True, **kw)
    else:
        method = method_from_params(row.method, row.params)
        figures, arrays = audit_row(setup, method=method, model=(model, seconds), **kw)
    record["per_example"] = figures
    samples.update(arrays)


def report(records: list[dict[str, Any]], out_dir: Path) -> str:
    """The per-example table and plot of ``records`` ("" when none has per-example figures)."""
    from ...report.per_example import per_example_table, plot_per_example  # report reads records only

    text = per_example_table(records)
    if not text:
        return ""
    png = plot_per_example(records, out_dir / "samples", out_dir / "per_example.png")
    return "\n" + text + (f"\n![Per-example scores per method]({png.name})\n" if png else "")
