"""``class``: concentrate every deletion request on one class (a given one, or the most fragile)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.pool import Samples
from ..errors import ForgetRequestError
from .base import losses_and_margins, register_adversary, resolve_budget, to_ids, top_k_capped


@register_adversary("class", knowledge="predictions")
@dataclass(frozen=True, kw_only=True)
class ClassAdversary:
    """Request samples of one class, chosen at random within it, until only ``keep_per_class`` of it
    remain; a budget larger than that spills over to the next class in the same order.

    ``target_class`` names the class (knowledge: data only — the labels). Without it the classes are
    ranked by fragility, which we define as the model's mean cross-entropy on the class's candidates
    (knowledge: predictions): the class the model is least sure of is the one whose accuracy falls
    first when its training samples thin out. A whole class cannot be requested as individual
    deletions: the forget-request checks refuse to empty a class that the request does not name.
    """

    target_class: int | None = None
    keep_per_class: int = 1

    @property
    def knowledge(self) -> str:
        return "data" if self.target_class is not None else "predictions"

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor:
        k = resolve_budget(budget, len(candidates))
        labels = candidates.labels
        num_classes = int(labels.max()) + 1
        present = torch.bincount(labels, minlength=num_classes) > 0
        if self.target_class is not None:
            if not (0 <= self.target_class < num_classes and present[self.target_class]):
                raise ForgetRequestError(f"class {self.target_class} has no candidates "
                                         f"(classes: {torch.nonzero(present).squeeze(1).tolist()})")
            fragility = torch.zeros(num_classes)
            fragility[self.target_class] = 1.0
        else:
            loss, _ = losses_and_margins(model, candidates)
            fragility = torch.zeros(num_classes).index_add_(0, labels, loss) / torch.bincount(labels).clamp_min(1)
        fragility[~present] = float("-inf")
        class_rank = torch.empty(num_classes, dtype=torch.long)
        class_rank[torch.sort(fragility, descending=True, stable=True).indices] = torch.arange(num_classes)
        # whole classes in fragility order, random order inside each class
        scores = -class_rank[labels].double() + torch.rand(len(candidates), generator=generator).double()
        return to_ids(candidates, top_k_capped(scores, labels, k, keep_per_class=self.keep_per_class))
