"""Per-example audits of model families: gather margins on chosen example sets, then U-LiRA and KLoM.

The example sets are D_f, a sample of D_r and a sample of D_test, each at most ``limit`` examples
(default 1,000), drawn once per seed so every row of a run is scored on the same examples. A
family's outputs are one ``(models, examples)`` array of margins per set (metrics/klom.py); U-LiRA
reads D_f's, KLoM all three. :func:`audit_families` turns two families' arrays into the record's
figures and per-example arrays; :func:`floor_audit` does the same between two halves of the oracles.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..attacks.ulira import ulira
from ..data.pool import Samples
from ..data.splits import ForgetSplit
from ..errors import ConfigError, TrainingError
from ..training.evaluate import predict_logits
from .klom import DEFAULT_CLIP, halves, klom_with_floor, margins, summary

SETS = ("forget", "retain", "test")
DEFAULT_EXAMPLES = 1000
Margins = dict[str, np.ndarray]  # set name → (models, examples)


def example_sets(split: ForgetSplit, limit: int = DEFAULT_EXAMPLES, *, generator: torch.Generator
                 ) -> dict[str, Samples]:
    """D_f, D_r and D_test, each capped at ``limit`` random examples (in that order of drawing)."""
    if limit < 1:
        raise ConfigError(f"audit.examples must be >= 1, got {limit}")
    return {name: getattr(split, name).capped(limit, generator=generator) for name in SETS}


def family_margins(models: Iterable[nn.Module], sets: dict[str, Samples], *, clip: float = DEFAULT_CLIP) -> Margins:
    """One ``(models, examples)`` float32 array of margins per example set.

    Raises:
        TrainingError: a model's outputs are not finite (an audit never averages NaN away; the run
            marks that row failed and goes on, as for a model whose weights are not finite).
    """
    rows: dict[str, list[np.ndarray]] = {name: [] for name in sets}
    for i, model in enumerate(models):
        for name, samples in sets.items():
            logits = predict_logits(model, samples)
            if not torch.isfinite(logits).all():
                raise TrainingError(f"family member {i}: outputs on {name} are not finite")
            rows[name].append(margins(logits, samples.labels.cpu(), clip=clip).numpy())
    return {name: np.stack(r) for name, r in rows.items()}


def _figures(unlearned: Margins, oracle: Margins, *, ulira_pair: tuple[np.ndarray, np.ndarray] | None,
             bins: int | None) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    floors: dict[str, np.ndarray] = {}
    if ulira_pair is not None:
        result = ulira(*ulira_pair)
        metrics.update(result.metrics())
        arrays["ulira_score"] = result.scores
    for name in SETS:
        value, floor = klom_with_floor(unlearned[name], oracle[name], bins=bins)
        metrics.update(summary(value, f"klom.{name}"))
        arrays[f"klom_{name}"] = value
        floors[name] = floor
    return metrics, arrays, floors


def audit_families(unlearned: Margins, oracle: Margins, *, bins: int | None = None
                   ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """U-LiRA on D_f (all N unlearned against all N oracles) and KLoM on each set with its
    oracle-vs-oracle floor (``klom_floor.<set>.*``). Returns ``(figures, per-example arrays)``.

    Raises:
        ConfigError: the families differ in size or examples, or hold fewer than 2 models.
    """
    n_u, n_o = unlearned["forget"].shape[0], oracle["forget"].shape[0]
    if n_u != n_o or n_u < 2:
        raise ConfigError(f"a per-example audit needs two families of the same size >= 2, got {n_u} unlearned "
                          f"and {n_o} oracles")
    metrics, arrays, floors = _figures(unlearned, oracle, ulira_pair=(unlearned["forget"], oracle["forget"]), bins=bins)
    for name, floor in floors.items():
        metrics.update(summary(floor, f"klom_floor.{name}"))
    return metrics, arrays


def floor_audit(oracle: Margins, *, bins: int | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The oracle-vs-oracle floor as a row: one half of the oracles in the place of the unlearned
    models. U-LiRA needs 2 models per half (N >= 4); below that its figures are absent."""
    a, b = halves(oracle["forget"].shape[0])
    k = min(a.stop - a.start, b.stop - b.start)
    pair = (oracle["forget"][a][:k], oracle["forget"][b][:k]) if k >= 2 else None
    first = {name: oracle[name][a] for name in SETS}
    metrics, arrays, floors = _figures(first, oracle, ulira_pair=pair, bins=bins)
    for name, floor in floors.items():
        metrics.update(summary(floor, f"klom_floor.{name}"))
    return metrics, arrays
