"""DAU without the Barlow-Twins term: the ablation of Sharma et al. (2024), §4.5 ("Ours (No L_BT)")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..utils.validation import check
from .base import register_method
from .dau import DAU


@register_method("dau-nobt")
@dataclass(frozen=True, kw_only=True)
class DAUNoBT(DAU):
    """:class:`~unlearnkit.methods.dau.DAU` with ``beta`` fixed at 0 — the min-max game alone.

    Every other hyperparameter and default is DAU's, so the two rows of a table differ only by the
    self-supervised term. ``beta`` stays a field (it is recorded with the run) but must be 0: set it
    on ``dau`` instead.
    """

    weaker: ClassVar[str] = "a smaller alpha or lr_share"  # how to weaken it (the collapse guard's hint)

    beta: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta == 0, f"dau-nobt.beta must be 0 (it is DAU without the Barlow-Twins term), got {self.beta}")
