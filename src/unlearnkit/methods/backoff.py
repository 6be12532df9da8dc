"""The retain back-off that IU and FF share: a one-shot edit of the weights (a Newton step, Fisher
noise) that costs too much accuracy on D_r is weakened by halving until it does not."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..data.splits import ForgetSplit
from ..training.evaluate import sample_accuracy
from ..utils.validation import check, positive

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RetainBackoff:
    """Fields and loop of the back-off (in neither paper): ``apply(scale)`` sets the model to the
    edit at ``scale`` of its strength; while that costs more than ``retain_guard`` points of accuracy
    on ``guard_samples`` random D_r samples, the scale is halved, at most ``guard_halvings`` times.
    An edit that passes at full strength is the unguarded model, bit for bit."""

    retain_guard: float = 5.0  # largest D_r accuracy drop allowed, in points; 0 turns the back-off off
    guard_samples: int = 1000  # D_r samples the drop is measured on
    guard_halvings: int = 8  # most halvings; if none passes, the weakest edit is kept, with a warning

    def check_backoff(self, prefix: str) -> None:
        check(self.retain_guard == 0 or positive(self.retain_guard),
              f"{prefix}.retain_guard must be >= 0 (0 turns the guard off), got {self.retain_guard}")
        check(self.guard_samples >= 1, f"{prefix}.guard_samples must be >= 1, got {self.guard_samples}")
        check(self.guard_halvings >= 0, f"{prefix}.guard_halvings must be >= 0, got {self.guard_halvings}")

    def back_off(self, model: nn.Module, split: ForgetSplit, apply: Callable[[float], None], *,
                 generator: torch.Generator, what: str) -> float:
        """Apply the edit to ``model`` (still unedited) at the largest scale 1, 1/2, 1/4, … that passes;
        returns that scale. ``what`` names the edit in the log (e.g. "iu: the step")."""
        if not self.retain_guard:
            apply(1.0)
            return 1.0
        probe = split.retain.capped(self.guard_samples, generator=generator)
        before = sample_accuracy(model, probe)
        for scale in (0.5**k for k in range(self.guard_halvings + 1)):
            apply(scale)
            drop = before - sample_accuracy(model, probe)
            if drop <= self.retain_guard:
                break
        else:
            log.warning("%s still costs %.1f points of D_r accuracy at %g of its strength (retain_guard %.1f); "
                        "kept the weakest", what, drop, scale, self.retain_guard)
        if scale < 1:
            log.info("%s: retain guard weakened it to %g of its strength (D_r probe accuracy %.2f → %.2f)",
                     what, scale, before, before - drop)
        return scale
