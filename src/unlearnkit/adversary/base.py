"""The DeletionAdversary protocol, its registry, budgets and the ranking helpers strategies share.

An adversary is a frozen, keyword-only dataclass (its fields are its hyperparameters) whose
``select(model, candidates, budget, *, generator, reference=None)`` returns the sample IDs of
``candidates`` to request for deletion: ``budget`` distinct IDs, sorted. ``knowledge`` states what
the strategy needs to see: ``data`` (the candidates and their labels), ``predictions`` (the model's
outputs on them, black-box) or ``weights`` (gradients or inner features, white-box). ``reference``
is held-out data from the same distribution (the validation set D_v in the recipes) for strategies
that measure the model's loss on unseen data; the others ignore it.

Every strategy leaves at least ``keep_per_class`` candidates of every class (default 1), so that its
request passes :func:`~unlearnkit.data.scenarios.validate_forget_ids`, which refuses a request that
empties a class it does not name.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pool import Samples
from ..errors import ConfigError, ForgetRequestError
from ..registry import Registry
from ..training.evaluate import predict_logits
from ..utils.sampling import largest_remainder
from ..utils.validation import checked_dataclass

KNOWLEDGE = ("data", "predictions", "weights")


@runtime_checkable
class DeletionAdversary(Protocol):
    name: ClassVar[str]
    knowledge: str

    def select(self, model: nn.Module, candidates: Samples, budget: int | float, *, generator: torch.Generator,
               reference: Samples | None = None) -> Tensor: ...


ADVERSARIES: Registry[type] = Registry("adversary")
T = TypeVar("T", bound=type)


def register_adversary(name: str, *, knowledge: str) -> Callable[[T], T]:
    """Class decorator: register a dataclass adversary under ``name`` with its ``knowledge``
    (``data``, ``predictions`` or ``weights``; a class may override it with a property when it
    depends on a hyperparameter). Field types are checked before the class's own ``__post_init__``."""
    if knowledge not in KNOWLEDGE:
        raise ValueError(f"knowledge must be one of {KNOWLEDGE}, got {knowledge!r}")

    def keep_one(self: Any) -> None:
        if self.keep_per_class < 1:
            raise ConfigError(f"{name}.keep_per_class must be >= 1, got {self.keep_per_class}")

    def decorator(cls: T) -> T:
        checked_dataclass(cls, kind="adversary", name=name, checks=keep_one)
        if not isinstance(getattr(cls, "knowledge", None), property):
            cls.knowledge = knowledge
        return ADVERSARIES.register(name)(cls)

    return decorator


def create_adversary(name: str, **params: Any) -> DeletionAdversary:
    """Build a registered adversary, e.g. ``create_adversary("class", target_class=3)``.

    Raises:
        RegistryError: unknown strategy (lists the valid ones).
        ConfigError: an unknown hyperparameter (lists the valid ones) or an invalid value.
    """
    return ADVERSARIES.create(name, **params)


def list_adversaries(pattern: str = "*") -> list[str]:
    return ADVERSARIES.names(pattern)


def adversary_params(adversary: DeletionAdversary) -> dict[str, Any]:
    return dataclasses.asdict(adversary)


def resolve_budget(budget: int | float, n: int) -> int:
    """A budget as a count: an int ``>= 1`` is a count, a float in (0, 1) a fraction of ``n`` (rounded,
    at least 1).

    Raises:
        ForgetRequestError: a non-positive, non-finite or too large budget.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise ForgetRequestError(f"budget must be a count or a fraction, got {budget!r}")
    if isinstance(budget, float) and not budget.is_integer():
        if not 0 < budget < 1:
            raise ForgetRequestError(f"a fractional budget must lie in (0, 1), got {budget}")
        count = max(1, round(budget * n))
    else:
        count = int(budget)
    if not 1 <= count < n:
        raise ForgetRequestError(f"budget {budget} asks for {count} of {n} candidates; it must lie in [1, {n - 1}]")
    return count


def rank_in_class(labels: Tensor) -> Tensor:
    """For labels in some order, each element's 0-based rank among the earlier elements of its class."""
    onehot = F.one_hot(labels, int(labels.max()) + 1)
    return onehot.cumsum(0).gather(1, labels[:, None]).squeeze(1) - 1


def top_k_capped(scores: Tensor, labels: Tensor, k: int, *, keep_per_class: int = 1) -> Tensor:
    """Positions of the ``k`` highest ``scores``, taking at most (class size − ``keep_per_class``) of
    any class; ties keep candidate order (stable sort).

    Raises:
        ForgetRequestError: fewer than ``k`` candidates can be taken under the cap.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    sizes = torch.bincount(labels)
    lab = labels[order]
    eligible = order[rank_in_class(lab) < sizes[lab] - keep_per_class]
    if len(eligible) < k:
        raise ForgetRequestError(f"budget {k} is too large: keeping {keep_per_class} sample(s) of every class "
                                 f"leaves only {len(eligible)} candidates")
    return eligible[:k]


def class_quotas(labels: Tensor, k: int, *, keep_per_class: int = 1) -> Tensor:
    """How many of ``k`` to take from each class (index = class): proportional to class sizes,
    rounding leftovers to the largest remainders, capped at size − ``keep_per_class``."""
    sizes = torch.bincount(labels)
    take = largest_remainder(sizes, k)
    cap = (sizes - keep_per_class).clamp_min(0)
    if (take > cap).any() or int(take.sum()) != k:
        raise ForgetRequestError(f"budget {k} is too large to take proportionally from every class "
                                 f"while keeping {keep_per_class} of each")
    return take


def top_per_class(scores: Tensor, labels: Tensor, quotas: Tensor) -> Tensor:
    """Positions of the highest ``scores`` within each class, ``quotas[c]`` of class ``c``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    lab = labels[order]
    return order[rank_in_class(lab) < quotas[lab]]


def to_ids(candidates: Samples, positions: Tensor) -> Tensor:
    """Sorted int64 sample IDs of the candidates at ``positions``."""
    return torch.sort(candidates.ids[positions]).values


def losses_and_margins(model: nn.Module, candidates: Samples) -> tuple[Tensor, Tensor]:
    """Each candidate's cross-entropy and logit margin (true-class logit minus the largest other)."""
    logits = predict_logits(model, candidates)
    y = candidates.labels
    loss = F.cross_entropy(logits, y, reduction="none")
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).max(dim=1).values
    return loss, true - other
