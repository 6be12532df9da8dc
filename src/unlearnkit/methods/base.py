"""The Unlearner protocol, the method registry and small helpers every method shares.

A method is a frozen, keyword-only dataclass whose fields are its hyperparameters (validated in
``__post_init__``); data arrives only in ``unlearn``. ``unlearn`` never mutates the model it is
given and returns a new one on the same device.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from ..data.splits import ForgetSplit
from ..registry import Registry
from ..training.loop import TrainConfig, scaled
from ..utils.modules import fresh_copy, model_device  # noqa: F401  (re-exported: their old home)
from ..utils.seeding import seeded  # noqa: F401  (re-exported: its old home)
from ..utils.validation import check, check_field_types, checked_dataclass, positive  # noqa: F401  (check, check_field_types, positive: re-exported from their old home)


@runtime_checkable
class Unlearner(Protocol):
    """Every method. Optional, for a method whose call includes a one-off set-up that is training,
    not unlearning (SISA trains or loads its shard ensemble): ``unlearn_measured(model, split, *,
    generator) -> Outcome``, timing the deletion alone; with ``returns_ensemble = True`` it also names
    the ensemble it started from, where its damage is measured from."""

    name: ClassVar[str]

    def unlearn(self, model: nn.Module, split: ForgetSplit, *, generator: torch.Generator) -> nn.Module: ...


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one unlearning call gave: the model, the seconds of unlearning alone, the method's own
    cost bookkeeping (SISA: samples and shards retrained) and the model it unlearned from when that
    is not the one it was given (SISA's ensemble)."""

    model: nn.Module
    seconds: float
    cost: dict[str, Any] | None = None
    start: Callable[[], nn.Module] | None = None  # built on demand


def unlearn_measured(method: Unlearner, model: nn.Module, split: ForgetSplit, *,
                     generator: torch.Generator) -> Outcome:
    """Unlearn and time it: the method's own ``unlearn_measured`` where it has one, else the whole call."""
    own = getattr(method, "unlearn_measured", None)
    if own is not None:
        return own(model, split, generator=generator)
    start = time.perf_counter()
    out = method.unlearn(model, split, generator=generator)
    return Outcome(out, time.perf_counter() - start)


def returns_ensemble(method: Unlearner) -> bool:
    """Whether ``method`` unlearns from an ensemble of its own (its damage is measured from that)."""
    return bool(getattr(type(method), "returns_ensemble", False))


SelectGrid = tuple[tuple[str, tuple[Any, ...]], ...]
"""A method's ``select_grid``: hyperparameter name → values to try; their product, at most
:data:`MAX_SELECT_POINTS` points for either kind of request, is what ``unlearnkit run --select``
chooses among on the validation split (a method without one has no selected row: nothing to choose,
e.g. retrain and SISA)."""
MAX_SELECT_POINTS = 4


def select_grid(method: str, class_wise: bool | None = None) -> SelectGrid:
    """``method``'s declared selection grid (empty when it declares none); with ``class_wise``, only
    the axes that act on that kind of request. A method field ``class_<k>`` replaces ``<k>`` on
    class-wise requests (l1-sparse's ``class_gamma``, IU's ``class_alpha``, FT's ``class_lr_share``),
    so an axis ``class_<k>`` is tried on class-wise requests only and ``<k>`` on the others only."""
    axes = tuple(getattr(METHODS.get(method), "select_grid", ()))
    if class_wise is None:
        return axes
    return tuple(axis for axis in axes if knob_acts(method, axis[0], class_wise))


def knob_acts(method: str, name: str, class_wise: bool) -> bool:
    """Whether hyperparameter ``name`` of ``method`` acts on a class-wise request (``class_wise``) or
    on the others, by the ``class_<k>`` convention of :func:`select_grid` (knobs of another prefix,
    e.g. DAU's ``class_zero_after``, are class-wise-only too)."""
    if name.startswith("class_"):
        return class_wise
    return not (class_wise and f"class_{name}" in {f.name for f in dataclasses.fields(METHODS.get(method))})


def acts_class_wise(method: Unlearner, split: ForgetSplit) -> bool:
    """Whether ``method`` treats ``split`` as a class-wise request: it names a class, or (for a method
    whose ``trace_as_absent`` is on) D_f takes a class D_r keeps only a trace of
    (:meth:`~unlearnkit.data.splits.ForgetSplit.forgotten_classes`)."""
    return bool(split.forgotten_classes(getattr(method, "trace_as_absent", False)))


def for_split(method: Unlearner, name: str, split: ForgetSplit) -> Any:
    """Hyperparameter ``name`` of ``method`` as it acts on ``split``: ``class_<name>`` on a split it
    treats as class-wise (:func:`acts_class_wise`) when the method has one that is not None, else
    ``name`` (the convention :func:`select_grid` follows; None is how a ``class_<name>`` added later
    says "as ``name``", e.g. l1-sparse's ``class_epoch_share`` for records made before it)."""
    if acts_class_wise(method, split) and getattr(method, f"class_{name}", None) is not None:
        return getattr(method, f"class_{name}")
    return getattr(method, name)


def share_budget(method: Unlearner, split: ForgetSplit) -> TrainConfig:
    """The fine-tuning family's budget (FT, l1-sparse, NegGrad+, RL, SalUn): ``epoch_share`` of the
    original epochs at ``lr_share`` × its lr (``class_epoch_share`` and ``class_lr_share`` class-wise
    where the method has them, :func:`for_split`), constant, no warm-up."""
    b = split.budget
    return scaled(b, epochs=b.epochs * for_split(method, "epoch_share", split),
                  lr=b.lr * for_split(method, "lr_share", split),
                  schedule="constant", warmup_epochs=0.0)


METHODS: Registry[type] = Registry("method")
T = TypeVar("T", bound=type)


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: register a dataclass method under ``name`` (and set its ``name``).

    Every field's value is type-checked against its annotation before the class's own
    ``__post_init__`` validates ranges, so a string where a number belongs is a ConfigError too.
    """

    def decorator(cls: T) -> T:
        return METHODS.register(name)(checked_dataclass(cls, kind="method", name=name))

    return decorator


def create_method(name: str, **params: Any) -> Unlearner:
    """Build a registered method with hyperparameters, e.g. ``create_method("ft", epoch_share=0.3)``.

    Raises:
        RegistryError: unknown method (lists the valid ones).
        ConfigError: an unknown hyperparameter (lists the valid ones) or an invalid value.
    """
    return METHODS.create(name, **params)


def list_methods(pattern: str = "*") -> list[str]:
    return METHODS.names(pattern)


def method_params(method: Unlearner, class_wise: bool | None = None) -> dict[str, Any]:
    """The hyperparameters of ``method`` as a JSON-serialisable dict (:func:`method_from_params` inverts it).
    With ``class_wise=False`` (a random or explicit request) the fields the class lists in
    ``class_only`` are left out: they act on class-wise requests only and were added after records
    of other requests existed, which keep their keys (as ``budget.train_identity`` does for speed).
    A method whose ``trace_as_absent`` is on keys them on every request: they act on an ID request
    that leaves a class only a trace (:func:`acts_class_wise`).
    A field the class lists in ``added_later`` (name → the value that does what the method did before
    the field existed) is left out while it holds that value, so the records made before it keep
    their keys; any other value is keyed."""
    keyed = class_wise is not False or getattr(method, "trace_as_absent", False)
    skip = set() if keyed else set(getattr(type(method), "class_only", ()))
    same_as_before = getattr(type(method), "added_later", {})
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(method).items()
            if k not in skip and not (k in same_as_before and v == same_as_before[k])}


def params_as_run(name: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """A record's or a row's ``params`` (what :func:`method_params` wrote) with each field of the
    class's ``added_later`` that they leave out at the value that does what the method did before
    it existed: the setting the record ran at. Names no method is registered under (retrain, SISA
    rows of other recipes) keep their params as they are."""
    cls = METHODS.get(name) if name in METHODS else None
    return {**getattr(cls, "added_later", {}), **params}


def method_from_params(name: str, params: dict[str, Any]) -> Unlearner:
    """Rebuild a method from a record's or a row's ``params`` (:func:`params_as_run`): a field that a
    record made before it (or with its old value) left out runs at that old value, not at today's
    default, which ``create_method`` alone would run under the old record's key."""
    return create_method(name, **params_as_run(name, params))


def code_digest(method: Unlearner) -> str | None:
    """A digest of the source files that define ``method``'s class and its base classes.
    The model cache keys unlearned models by it besides their hyperparameters, so that a method
    edited under unchanged hyperparameters does not get models its old code made. ``None`` for a
    class with ``code_in_cache_key = False`` (Retrain: it is training, keyed like the original)."""
    if not getattr(type(method), "code_in_cache_key", True):
        return None
    files = set()
    for c in type(method).__mro__:
        if c.__module__ not in ("builtins", "typing", "abc"):
            try:
                files.add(inspect.getsourcefile(c))
            except TypeError:  # a class defined without a source file (e.g. interactively)
                continue
    h = hashlib.sha256()
    for f in sorted(filter(None, files)):
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def cache_key_part(method: Unlearner, split: ForgetSplit) -> dict[str, Any]:
    """What identifies ``method`` on ``split`` in a model-cache key: its hyperparameters (those that
    act on that kind of request, :func:`method_params`) and its code digest."""
    code = code_digest(method)
    return {"params": method_params(method, split.forget_class is not None), **({"code": code} if code is not None else {})}


def cycle_batches(samples, batch_size: int, generator: torch.Generator, device) -> Iterator:
    """Endless shuffled batches of ``samples`` (a new permutation every pass)."""
    while True:
        yield from samples.batches(batch_size, shuffle=True, generator=generator, device=device)

