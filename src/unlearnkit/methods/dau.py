"""DAU: Discriminative Adversarial Unlearning — unlearning as a min-max game (Sharma et al. 2024).

A SAMIA attacker (``attacks/samia.py``) learns to tell the defender's outputs on D_f (members) from
those on D_v (non-members); the defender (the model) minimises ``CE(D_r batch) + α · L_adv(D_f
batch) + β · L_BT(z_f, z_v)`` (``papers/FACTS.md`` §1–2). ``L_adv`` is the attacker's objective on
D_f, backpropagated through the prediction and the noise-sensitivity input; ``L_BT`` is Barlow Twins
between encoder features of equal-sized D_f and D_v batches. Class-wise, one weight goes to 0 after
``class_zero_after`` steps (the paper's schedule: "unlearning the class is notably easier than
retaining general performance"); by default α, since that is the forgetting pressure. With
``trace_as_absent`` (ours) the schedule also runs on an ID request that leaves a class only a trace
in D_r (ForgetSplit.trace_classes; the ``class`` damage strategy).
``class_zero_below`` < 1 keeps it on until the D_f batch's accuracy has fallen that far: it helped
the tests' toy task and hurt W1 at 2,000 samples, where D_v holds the forgotten class too and α pulls
D_f towards looking like it (docs/results.md, "Class-wise learning rates"), so it stays off.

Silent in the paper, chosen here: the step counts, rates, batch sizes, α and β (on W1's validation
split); attack inputs and features taken in eval mode (what an auditor queries), CE in train mode;
BatchNorm normalising by batch statistics throughout the game, running statistics recomputed on D_r
at the end (the alternatives diverged or collapsed on W2). docs/results.md, "Where the defaults come from".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks.samia import SamiaNet, attack_inputs, attacker_step, balanced_batch, inputs_of, sensitivity
from ..data.pool import Samples
from ..data.splits import ForgetSplit
from ..models.masks import apply_masks
from ..training.batchnorm import batch_statistics, batchnorms, recompute_running_statistics
from ..training.loop import check_finite, masked_step
from ..utils.modules import fresh_copy, model_device
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import SelectGrid, acts_class_wise, cycle_batches, register_method

FORMS = ("non-saturating", "minimax")
CLASS_ZERO = ("alpha", "beta", "none")


def barlow_twins_loss(za: Tensor, zb: Tensor, *, lambd: float = 5e-3, eps: float = 1e-5) -> Tensor:
    """``(1/d) · [Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²]`` with C the d × d cross-correlation of
    batch-normalised ``za``, ``zb``.

    Per feature dimension, so that its weight means the same on a 128-d and a 512-d feature: with
    n samples C has rank < n, so at least d − n + 1 diagonal terms cannot reach 1 and the summed
    loss (Zbontar et al.'s) grows with d and swamps the cross-entropy on wide features.
    """
    n, d = za.shape
    na = (za - za.mean(0)) / torch.sqrt(za.var(0, unbiased=False) + eps)
    nb = (zb - zb.mean(0)) / torch.sqrt(zb.var(0, unbiased=False) + eps)
    c = na.T @ nb / n
    diag = torch.diagonal(c)
    return ((1 - diag).pow(2).sum() + lambd * (c.pow(2).sum() - diag.pow(2).sum())) / d


def adversarial_loss(logits: Tensor, form: str) -> Tensor:
    """The defender's term from the attacker's logits on D_f (class 1 = member)."""
    if form == "minimax":
        return -F.cross_entropy(logits, torch.ones(len(logits), dtype=torch.long, device=logits.device))
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def draw(samples: Samples, n: int, generator: torch.Generator, device) -> tuple[Tensor, Tensor]:
    """``n`` random samples without replacement (all of them if fewer), as ``(inputs, labels)``."""
    return next(samples.random_subset(n, generator=generator).batches(n, device=device))


@register_method("dau")
@dataclass(frozen=True, kw_only=True)
class DAU:
    """Min-max unlearning against a SAMIA attacker, with a Barlow-Twins feature term (see module doc)."""

    weaker: ClassVar[str] = "a smaller alpha, beta or lr_share"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("lr_share", (0.1, 0.2, 0.4)),)  # what `run --select` tries (base.py)
    added_later: ClassVar[dict[str, bool]] = {"trace_as_absent": False}  # records before it keep their keys

    iterations: int = 100  # defender steps (one D_r batch and one D_f / D_v batch each)
    budget_cap: float = 0.3  # at most this share of the original training's steps (see schedule)
    lr_share: float = 0.2  # defender SGD lr, × the original lr (original momentum and weight decay)
    batch_size: int = 128  # D_r samples per defender step
    attack_batch_size: int = 32  # D_f and D_v samples (each) per step
    alpha: float = 0.5  # weight of the adversarial term
    beta: float = 1.28  # weight of the Barlow-Twins term (per feature dimension: 0.01 × 128 of the summed loss)
    form: str = "non-saturating"  # −log(1 − A(f)), the paper's GAN adjustment; "minimax": log A(f)
    attacker_lr: float = 1e-3  # the attacker's Adam lr
    pretrain_steps: int = 100  # attacker steps on the original's outputs before the game
    pretrain_samples: int = 256  # D_f and D_v samples (each) for that pre-training, computed once
    attacker_steps: int = 1  # attacker steps per defender step (the first on the step's own batches)
    class_zero: str = "alpha"  # class-wise: the weight set to 0 ("alpha", "beta" or "none")
    class_zero_after: int = 30  # class-wise: steps before it is set to 0
    class_zero_below: float = 1.0  # class-wise: also wait for D_f batch accuracy (share) <= this; 1 = no wait
    bt_lambda: float = 5e-3  # Barlow Twins' off-diagonal weight λ
    copies: int = 10  # noise copies per sample for the sensitivity input
    eps: float = 1e-3  # scale of that noise
    trace_as_absent: bool = True  # an ID request leaving a class only a trace in D_r runs the class-wise schedule

    def __post_init__(self) -> None:
        for f in ("iterations", "batch_size", "copies"):
            check(getattr(self, f) >= 1, f"{self.name}.{f} must be >= 1, got {getattr(self, f)}")
        for f in ("attack_batch_size", "pretrain_samples"):
            check(getattr(self, f) >= 2, f"{self.name}.{f} must be >= 2, got {getattr(self, f)}")
        for f in ("pretrain_steps", "attacker_steps", "class_zero_after"):
            check(getattr(self, f) >= 0, f"{self.name}.{f} must be >= 0, got {getattr(self, f)}")
        for f in ("lr_share", "attacker_lr", "eps", "budget_cap"):
            check(positive(getattr(self, f)), f"{self.name}.{f} must be > 0, got {getattr(self, f)}")
        for f in ("alpha", "beta", "bt_lambda"):
            v = getattr(self, f)
            check(v == v and 0 <= v < float("inf"), f"{self.name}.{f} must be finite and >= 0, got {v}")
        check(isinstance(self.class_zero_below, (int, float)) and 0 <= self.class_zero_below <= 1,
              f"{self.name}.class_zero_below must lie in [0, 1], got {self.class_zero_below}")
        check(self.form in FORMS, f"{self.name}.form must be one of {FORMS}, got {self.form!r}")
        check(self.class_zero in CLASS_ZERO, f"{self.name}.class_zero must be one of {CLASS_ZERO}, got {self.class_zero!r}")

    def schedule(self, split: ForgetSplit) -> tuple[int, int, int]:
        """``(iterations, class_zero_after, pretrain_steps)`` for ``split``: ``iterations`` defender
        steps, but at most ``budget_cap`` × the steps the original was trained for, the class-wise
        switch and the attacker's pre-training shrunk in proportion. Fixed counts cost 2–11 × a
        retrain on 1–10k-sample sets, where the original itself took only a few hundred steps; on
        W1 (3,800 steps) the cap does not bind."""
        b = split.budget
        original = b.epochs * math.ceil(len(split.train) / b.batch_size)
        iterations = max(1, min(self.iterations, math.ceil(self.budget_cap * original)))
        share = iterations / self.iterations
        return iterations, math.ceil(self.class_zero_after * share), math.ceil(self.pretrain_steps * share)

    def weights(self, iteration: int, class_wise: bool, switched: bool = True,
                zero_after: int | None = None) -> tuple[float, float]:
        """``(α, β)`` at ``iteration`` (0-based), after the class-wise schedule (switching after
        ``zero_after`` steps, by default ``class_zero_after``); ``switched``: the forget-batch
        accuracy has fallen to ``class_zero_below`` (always true at the default 1)."""
        zero_after = self.class_zero_after if zero_after is None else zero_after
        off = class_wise and iteration >= zero_after and switched
        return (0.0 if off and self.class_zero == "alpha" else self.alpha,
                0.0 if off and self.class_zero == "beta" else self.beta)

    def _advice(self) -> str:
        return (f" (the defender's outputs diverged; lower {self.name}.lr_share (now {self.lr_share})"
                + (f" or {self.name}.beta (now {self.beta}))" if self.beta > 0 else ")"))

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        new, device, b = fresh_copy(model), model_device(model), split.budget
        apply_masks(new)
        noise = dict(generator=generator, copies=self.copies, eps=self.eps)
        optimizer = torch.optim.SGD(new.parameters(), lr=b.lr * self.lr_share, momentum=b.momentum,
                                    weight_decay=b.weight_decay)
        retain = cycle_batches(split.retain, self.batch_size, generator, device)
        n = min(self.attack_batch_size, len(split.forget), len(split.val))
        check(n >= 2 or not batchnorms(new), f"{self.name} on a network with BatchNorm needs at least 2 samples in D_f and "
              f"in D_v (its game normalises by batch statistics), got {n}")
        with seeded(generator), batch_statistics(new):
            attacker = SamiaNet(split.num_classes).to(device)
            att_opt = torch.optim.Adam(attacker.parameters(), lr=self.attacker_lr)
            iterations, zero_after, pretrain_steps = self.schedule(split)
            if self.alpha > 0 and pretrain_steps > 0:
                im, iv = (inputs_of(new, s.random_subset(self.pretrain_samples, generator=generator), **noise)
                          for s in (split.forget, split.val))
                for _ in range(pretrain_steps):
                    attacker_step(attacker, att_opt, *balanced_batch(im, iv, 2 * n, generator))
            switched = self.class_zero_below >= 1  # the paper's fixed schedule needs no measurement
            class_wise = acts_class_wise(self, split)
            for it in range(iterations):
                alpha, beta = self.weights(it, class_wise, switched, zero_after)
                (xf, yf), (xv, yv) = draw(split.forget, n, generator, device), draw(split.val, n, generator, device)
                loss = torch.zeros((), device=device)
                new.eval()
                if alpha > 0 or beta > 0:
                    zf = new.forward_features(xf)
                    zv = new.forward_features(xv) if beta > 0 else None
                if alpha > 0:
                    pf = torch.softmax(new.forward_head(zf), dim=1)
                    if not switched and it + 1 >= zero_after:
                        switched = (pf.argmax(1) == yf).float().mean().item() <= self.class_zero_below
                    inf = attack_inputs(pf, sensitivity(new, xf, pf, **noise), yf)
                    with torch.no_grad():
                        pv = torch.softmax(new(xv) if zv is None else new.forward_head(zv), dim=1)
                        inv = attack_inputs(pv, sensitivity(new, xv, pv, **noise), yv)
                    for k in range(self.attacker_steps):
                        if k > 0:
                            inf_k, inv_k = (inputs_of(new, s.random_subset(n, generator=generator), **noise)
                                            for s in (split.forget, split.val))
                        check_finite(attacker_step(attacker, att_opt, *((inf, inv) if k == 0 else (inf_k, inv_k))),
                                     f"{self.name} attacker at iteration {it + 1}{self._advice()}")
                    attacker.eval().requires_grad_(False)
                    loss = loss + alpha * adversarial_loss(attacker(inf), self.form)
                    attacker.requires_grad_(True)
                if beta > 0:
                    loss = loss + beta * barlow_twins_loss(zf, zv, lambd=self.bt_lambda)
                new.train()
                xr, yr = next(retain)
                loss = loss + F.cross_entropy(new(xr), yr)
                check_finite(loss, f"{self.name} defender at iteration {it + 1}/{iterations}{self._advice()}")
                masked_step(new, optimizer, loss)
        recompute_running_statistics(new, split.retain)
        return new.eval()
