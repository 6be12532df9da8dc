"""SalUn: random-label unlearning restricted to salient weights (Fan et al. 2024, "SalUn: Empowering
Machine Unlearning via Gradient-based Weight Saliency")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pool import Samples
from ..data.splits import ForgetSplit
from ..models.masks import apply_masks, masks_of
from ..training.loop import train
from ..utils.modules import fresh_copy, model_device
from ..utils.seeding import seeded
from ..utils.validation import check, positive
from .base import SelectGrid, register_method, share_budget
from .rl import random_other_labels


def saliency_masks(model: nn.Module, forget: Samples, share: float, *, batch_size: int = 512) -> dict[str, Tensor]:
    """Parameter name → bool tensor: the ``share`` of weights with the largest |∇_θ CE(D_f)|.

    The gradient is that of the mean cross-entropy over all of ``forget`` at the model's weights
    (eval mode), accumulated batch by batch. Weights are ranked globally over every parameter, as in
    Fan et al.'s code; pruned weights (sparsity/masks.py) are never salient and ``share`` counts
    only unpruned ones. Exactly ``round(share × unpruned)`` entries are chosen (ties by position).
    """
    params = dict(model.named_parameters())
    grads = {name: torch.zeros_like(p) for name, p in params.items()}
    was_training = model.training
    model.eval()
    for x, y in forget.batches(batch_size, device=model_device(model)):
        loss = F.cross_entropy(model(x), y, reduction="sum") / len(forget)
        for name, g in zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True)):
            if g is not None:
                grads[name] += g
    model.train(was_training)
    pruning = masks_of(model)
    alive = {n: (pruning[n] != 0) if n in pruning else torch.ones_like(g, dtype=torch.bool) for n, g in grads.items()}
    scores = torch.cat([torch.where(alive[n], g.abs(), -1.0).flatten() for n, g in grads.items()])
    k = round(share * int(sum(a.sum() for a in alive.values())))
    chosen = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    chosen[torch.argsort(scores, descending=True, stable=True)[:k]] = True
    pieces = torch.split(chosen, [g.numel() for g in grads.values()])
    return {n: piece.view_as(g) for (n, g), piece in zip(grads.items(), pieces)}


@register_method("salun")
@dataclass(frozen=True, kw_only=True)
class SalUn:
    """Random labels on D_f, fine-tuned with D_r, updating only the salient weights.

    1. Saliency map m: the ``saliency_share`` of weights with the largest gradient magnitude of the
       forget loss at the original weights (:func:`saliency_masks`; Fan et al. use the top 50%).
    2. RL as in :mod:`rl`, but θ = m ⊙ θ_trained + (1 − m) ⊙ θ_original after every step, so the
       non-salient weights stay bit-identical to the input's (Fan et al.'s formula; their code masks
       the gradient only, which lets weight decay and momentum move them).
    Their code draws labels anew each epoch and passes over D_f then D_r; we use the library's RL
    (fixed wrong labels, shuffled union), so the two differ only by m. The map is a local tensor,
    never a ``_mask`` buffer, so it cannot be mistaken for a pruning mask. Budget: ``epoch_share``
    of the original epochs at ``lr_share`` × the original lr, constant, chosen on W1's validation
    split. docs/results.md, "Where the defaults come from".
    """

    weaker: ClassVar[str] = "a smaller lr_share or saliency_share"  # how to weaken it (the collapse guard's hint)
    select_grid: ClassVar[SelectGrid] = (("lr_share", (0.1, 0.3)), ("epoch_share", (0.1, 0.2)))  # what `run --select` tries (base.py)

    saliency_share: float = 0.5  # share of (unpruned) weights that may move
    epoch_share: float = 0.1  # epochs over D_r ∪ D_f, × the original epochs
    lr_share: float = 0.3  # constant lr, × the original lr

    def __post_init__(self) -> None:
        check(0 < self.saliency_share <= 1, f"salun.saliency_share must lie in (0, 1], got {self.saliency_share}")
        check(positive(self.epoch_share), f"salun.epoch_share must be > 0, got {self.epoch_share}")
        check(positive(self.lr_share), f"salun.lr_share must be > 0, got {self.lr_share}")

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module:
        if split.num_classes < 2:
            raise ValueError("random-label unlearning needs at least two classes")
        new = fresh_copy(model)
        apply_masks(new)
        salient = saliency_masks(new, split.forget, self.saliency_share)
        frozen = {n: p.detach().clone() for n, p in new.named_parameters()}

        @torch.no_grad()
        def keep_non_salient(m: nn.Module) -> None:
            for name, p in m.named_parameters():
                p.copy_(torch.where(salient[name], p, frozen[name]))

        wrong = split.forget.relabel(random_other_labels(split.forget.labels, split.num_classes, generator))
        config = share_budget(self, split)
        with seeded(generator):
            train(new, split.retain.union(wrong), config, generator=generator, after_step=keep_non_salient,
                  desc="salun")
        return new
