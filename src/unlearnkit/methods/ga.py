"""GA: gradient ascent on the forget set (Graves et al. 2021; Thudi et al. 2022)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pool import Samples
from ..data.splits import ForgetSplit
from ..training.evaluate import predict_logits, sample_accuracy
from ..training.loop import scaled, train
from ..utils.modules import fresh_copy
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import SelectGrid, register_method

log = logging.getLogger(__name__)


def negative_cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return -F.cross_entropy(model(x), y)


ABSENT_CLASS_SLACK = 0.1  # stop a class's ascent at 10% accuracy rather than 0: the last few samples
# of a class take the largest pushes, and pushing them costs D_r more than it gains (UA >= 90 counts as forgotten)


def stopping_accuracy(model: nn.Module, split: ForgetSplit, *, trace_as_absent: bool = True) -> float:
    """The accuracy (0–1) at which D_f looks unseen, estimated without an oracle or the test set.

    A forget sample whose class D_r still holds counts at ``model``'s D_v accuracy on that class (D_v
    is unseen data of the same distribution; its overall accuracy where D_v lacks the class); one
    whose class D_r lacks counts :data:`ABSENT_CLASS_SLACK` (a model never shown the class cannot
    name it: 0, plus a slack). ``trace_as_absent``: a class D_r keeps only a trace of
    (:meth:`ForgetSplit.trace_classes`) counts as lacking too."""
    kept = torch.zeros(split.num_classes, dtype=torch.bool)
    kept[torch.unique(split.retain.labels)] = True
    kept[split.forgotten_classes(trace_as_absent)] = False  # a named class is absent from D_r anyway
    per_class = torch.full((split.num_classes,), ABSENT_CLASS_SLACK)
    forget_classes = torch.unique(split.forget.labels).tolist()
    if any(kept[c] for c in forget_classes):  # D_v is read only where a forget class is still held
        val_pred = predict_logits(model, split.val).argmax(1)
        val_labels = split.val.labels
        overall = float((val_pred == val_labels).float().mean())
    for c in forget_classes:
        if kept[c]:
            in_class = val_labels == c
            per_class[c] = float((val_pred[in_class] == c).float().mean()) if in_class.any() else overall
    return float(per_class[split.forget.labels].mean())


def ascent_stop_accuracy(model: nn.Module, split: ForgetSplit, on: bool, *,
                         trace_as_absent: bool) -> float | None:
    """The accuracy below which a class-wise ascent (SCRUB's, NegGrad+'s ``class_ascent_stop``) leaves
    a D_f batch alone: :func:`stopping_accuracy` when ``on`` and ``split`` has a class to forget whole
    (class-wise, or with ``trace_as_absent`` an ID request leaving a class a trace), else None."""
    if not (on and split.forgotten_classes(trace_as_absent)):
        return None
    return stopping_accuracy(model, split, trace_as_absent=trace_as_absent)


def batch_looks_unseen(model: nn.Module, x: Tensor, y: Tensor, stop: float) -> bool:
    """Whether ``model`` gets the batch ``(x, y)`` no better than ``stop`` (a share, as
    :func:`stopping_accuracy`) right, in eval mode: what an auditor sees. In train mode a BatchNorm
    network normalises a one-class D_f batch by its own statistics, which hides the class from the
    head, so the batch looks forgotten long before the model has forgotten it (W2's ResNet)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        right = float((model(x).argmax(1) == y).float().mean())
    model.train(was_training)
    return right <= stop


@register_method("ga")
@dataclass(frozen=True, kw_only=True)
class GradientAscent:
    """Maximise the cross-entropy on D_f by SGD on its negative, until D_f looks unseen.

    Jia et al. run 5 epochs over D_f at lr 1e-4 after an lr-0.1 original. GA has no term that keeps
    D_r accurate and its loss is unbounded, so a fixed budget walks a knife edge between doing
    nothing (a small D_f gives a handful of steps) and diverging (a large one gives hundreds). Here
    it stops by a rule instead: after every step, the accuracy on ``check_samples`` of D_f is
    compared with :func:`stopping_accuracy` (the original's D_v accuracy on D_f's classes; for a
    class D_r no longer holds, or keeps only a trace of, 0 plus a slack), and ascent ends once it is reached. ``epochs`` (passes over D_f) only
    caps the run; ``lr_share`` × the original lr, constant. Retain guard (in neither paper): after
    every step the accuracy on ``check_samples`` of D_r is measured too; a step that costs more than
    ``retain_guard`` points of it against the original is undone and ascent ends there (on a memorising
    ResNet, W2, the D_f rule alone cost one seed 12 points of validation accuracy). docs/results.md,
    "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller lr_share, fewer epochs or a smaller retain_guard"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("lr_share", (0.005, 0.01, 0.02, 0.05)),)  # what `run --select` tries (base.py)

    epochs: float = 10.0  # at most this many passes over D_f
    lr_share: float = 0.02  # lr, × the original lr
    check_samples: int = 512  # D_f samples the stopping rule evaluates after each step (and D_r samples the guard does)
    retain_guard: float = 8.0  # largest D_r accuracy drop a step may leave, in points (inside the run's collapse guard of 10); 0 = off
    trace_as_absent: bool = True  # a class D_r keeps only a trace of (ForgetSplit.trace_classes) is a class to forget whole
    added_later: ClassVar[dict[str, bool]] = {"trace_as_absent": False}  # records before it keep their keys

    def __post_init__(self) -> None:
        check(positive(self.epochs), f"ga.epochs must be > 0, got {self.epochs}")
        check(positive(self.lr_share), f"ga.lr_share must be > 0, got {self.lr_share}")
        check(isinstance(self.check_samples, int) and self.check_samples >= 1,
              f"ga.check_samples must be an integer >= 1, got {self.check_samples}")
        check(self.retain_guard == 0 or positive(self.retain_guard),
              f"ga.retain_guard must be >= 0 (0 turns the guard off), got {self.retain_guard}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new = fresh_copy(model)
        target = stopping_accuracy(new, split, trace_as_absent=self.trace_as_absent)
        probe: Samples = split.forget.capped(self.check_samples, generator=generator)
        guard = self._retain_guard(new, split, generator) if self.retain_guard else None

        def reached(m: nn.Module) -> bool:
            if guard is not None and guard(m):
                return True
            return sample_accuracy(m, probe) / 100 <= target

        config = scaled(split.budget, epochs=self.epochs, lr=split.budget.lr * self.lr_share,
                        schedule="constant", warmup_epochs=0.0)
        with seeded(generator):
            train(new, split.forget, config, generator=generator, loss_fn=negative_cross_entropy, desc="ga",
                  after_step=reached)
        return new

    def _retain_guard(self, model: nn.Module, split: ForgetSplit, generator: torch.Generator
                      ) -> Callable[[nn.Module], bool]:
        """A check to run after each step: True (and the step undone) once the model has lost more
        than ``retain_guard`` points on a D_r probe. The probe is drawn from a generator of its own
        (seeded from ``generator``'s seed), so a run the guard never stops is the unguarded run, bit for bit."""
        own = torch.Generator().manual_seed(generator.initial_seed() + 1)
        probe = split.retain.capped(self.check_samples, generator=own)
        before = sample_accuracy(model, probe)
        last = {k: v.detach().clone() for k, v in model.state_dict().items()}

        def exceeded(m: nn.Module) -> bool:
            drop = before - sample_accuracy(m, probe)
            if not drop <= self.retain_guard:  # a NaN accuracy counts as a drop too
                m.load_state_dict(last)
                log.info("ga: a step cost %.1f points of D_r accuracy (retain_guard %g); undone, ascent ends",
                         drop, self.retain_guard)
                return True
            for k, v in m.state_dict().items():
                last[k].copy_(v)
            return False

        return exceeded
