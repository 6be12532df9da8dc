"""The collapse guard: an unlearned model must keep the accuracy its start had on retained data.

After every method of ``run`` and ``tune``, its accuracy on the *retained validation data* (D_v
less the forgotten class, if any: never D_test, so tuning stays sealed) is compared with the model
it unlearned from (the original; SISA's own ensemble). A drop of more than ``guard`` points makes
the row a failed record (CollapseError) naming the method and the knob that weakens it, so a
chance-level model never enters a table as a normal row. ``guard: 0`` turns the check off. On a
small D_v a few samples are many points, so the drop must also exceed two standard errors of the
baseline's accuracy (0.7 points on W1's 6,000 samples; about 24 on 15 samples).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..data.pool import Samples
from ..data.splits import ForgetSplit
from ..errors import TrainingError
from ..training.evaluate import accuracy, sample_accuracy

DEFAULT_GUARD = 10.0  # points of retained validation accuracy


class CollapseError(TrainingError):
    """A method's result lost more retained accuracy than the guard allows."""


def retained_val(split: ForgetSplit) -> Samples:
    """D_v without the forgotten class (all of D_v for a request of single samples)."""
    if split.forget_class is None:
        return split.val
    return split.val.take(split.val.labels != split.forget_class)


def retained_accuracy(model: nn.Module, split: ForgetSplit, val_outputs: tuple[Tensor, Tensor] | None = None
                      ) -> tuple[float, int]:
    """Accuracy on retained validation data and its sample count. ``val_outputs``: the model's
    ``(scores, labels)`` on all of D_v when the audit has them already (no second forward pass)."""
    if val_outputs is None:
        samples = retained_val(split)
        return sample_accuracy(model, samples), len(samples)
    scores, labels = val_outputs
    keep = labels != split.forget_class if split.forget_class is not None else slice(None)
    return accuracy(scores[keep], labels[keep]), len(labels[keep])


def noise_margin(accuracy_percent: float, n: int) -> float:
    """Two standard errors (points) of an accuracy measured on ``n`` samples (Laplace-smoothed)."""
    p = (accuracy_percent / 100 * n + 1) / (n + 2)
    return 200 * math.sqrt(p * (1 - p) / max(n, 1))


def check_collapse(label: str, model: nn.Module, split: ForgetSplit, *, baseline: float, guard: float,
                   weaker: str = "", val_outputs: tuple[Tensor, Tensor] | None = None) -> float:
    """The drop of ``model``'s retained validation accuracy below ``baseline`` (points); raises
    CollapseError when it exceeds ``guard`` (> 0). ``weaker``: how to weaken the method;
    ``val_outputs``: as in :func:`retained_accuracy`."""
    acc, n = retained_accuracy(model, split, val_outputs)
    drop = baseline - acc
    margin = noise_margin(baseline, n)
    if guard > 0 and not drop <= guard + margin:  # a NaN accuracy fails too
        hint = f"; weaken it ({weaker}) or raise guard" if weaker else "; weaken it or raise guard"
        raise CollapseError(f"{label} collapsed: retained validation accuracy fell {drop:.1f} points (from "
                            f"{baseline:.2f} to {baseline - drop:.2f} on {n} samples), beyond guard={guard:g} "
                            f"(+ {margin:.1f} sampling margin){hint}")
    return drop
