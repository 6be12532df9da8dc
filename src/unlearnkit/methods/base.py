"""The Unlearner protocol, the method registry and small helpers every method shares.

A method is a frozen, keyword-only dataclass whose fields are its hyperparameters (validated in
``__post_init__``); data arrives only in ``unlearn``. ``unlearn`` never mutates the model it is
given and returns a new one on the same device.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import types
import typing
from typing import Any, Callable, ClassVar, Iterator, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from ..data.splits import ForgetSplit
from ..errors import ConfigError
from ..registry import Registry


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


METHODS: Registry[type] = Registry("method")
T = TypeVar("T", bound=type)


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: register a dataclass method under ``name`` (and set its ``name``).

    Every field's value is type-checked against its annotation before the class's own
    ``__post_init__`` validates ranges, so a string where a number belongs is a ConfigError too.
    """

    def decorator(cls: T) -> T:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"method {name!r} must be a dataclass (its fields are its hyperparameters)")
        cls.name = name
        own_post_init = getattr(cls, "__post_init__", None)

        def __post_init__(self) -> None:
            check_field_types(self)
            if own_post_init is not None:
                own_post_init(self)

        cls.__post_init__ = __post_init__
        return METHODS.register(name)(cls)

    return decorator


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, tuple)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def check_field_types(obj: Any) -> None:
    """Raise ConfigError if a dataclass field holds a value of the wrong type."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _matches(value, hints[f.name]):
            raise ConfigError(f"{getattr(obj, 'name', type(obj).__name__)}.{f.name} must be {hints[f.name]}, "
                              f"got {value!r}")


def create_method(name: str, **params: Any) -> Unlearner:
    """Build a registered method with hyperparameters, e.g. ``create_method("ft", epoch_share=0.3)``.

    Raises:
        RegistryError: unknown method (lists the valid ones).
        ConfigError: an unknown hyperparameter (lists the valid ones) or an invalid value.
    """
    cls = METHODS.get(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ConfigError(f"method {name!r} has no hyperparameter(s) {unknown}; valid: {sorted(fields)}")
    return cls(**params)


def list_methods(pattern: str = "*") -> list[str]:
    return METHODS.names(pattern)


def method_params(method: Unlearner) -> dict[str, Any]:
    """The hyperparameters of ``method`` as a JSON-serialisable dict (``create_method`` inverts it)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(method).items()}


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds (hyperparameter validation)."""
    if not condition:
        raise ConfigError(message)


def positive(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def fresh_copy(model: nn.Module) -> nn.Module:
    """A deep copy to update, so the caller's model is never touched."""
    return copy.deepcopy(model)


@contextlib.contextmanager
def seeded(generator: torch.Generator) -> Iterator[None]:
    """Seed the global RNG (dropout, layer init) from ``generator``, restoring it afterwards."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def cycle_batches(samples, batch_size: int, generator: torch.Generator, device) -> Iterator:
    """Endless shuffled batches of ``samples`` (a new permutation every pass)."""
    while True:
        yield from samples.batches(batch_size, shuffle=True, generator=generator, device=device)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
