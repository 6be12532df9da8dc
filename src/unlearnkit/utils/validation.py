"""Hyperparameter validation for frozen dataclasses (methods, adversaries, healers)."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable, TypeVar

from ..errors import ConfigError


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds (hyperparameter validation)."""
    if not condition:
        raise ConfigError(message)


def positive(value: float) -> bool:
    """True for a finite number (not a bool) above zero."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


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


T = TypeVar("T", bound=type)


def checked_dataclass(cls: T, *, kind: str, name: str, checks: Callable[[Any], None] | None = None) -> T:
    """Name a hyperparameter dataclass ``name`` and validate every instance it makes: field types
    first (:func:`check_field_types`), then ``checks``, then the class's own ``__post_init__``.

    Raises:
        TypeError: ``cls`` is not a dataclass.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{kind} {name!r} must be a dataclass (its fields are its hyperparameters)")
    cls.name = name
    own_post_init = getattr(cls, "__post_init__", None)

    def __post_init__(self) -> None:
        check_field_types(self)
        if checks is not None:
            checks(self)
        if own_post_init is not None:
            own_post_init(self)

    cls.__post_init__ = __post_init__
    if own_post_init is None:  # the dataclass's __init__ calls __post_init__ only if it existed then
        plain_init = cls.__init__

        def __init__(self, **params: Any) -> None:
            plain_init(self, **params)
            __post_init__(self)

        cls.__init__ = __init__
    return cls


def check_field_types(obj: Any) -> None:
    """Raise ConfigError if a dataclass field holds a value of the wrong type."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _matches(value, hints[f.name]):
            raise ConfigError(f"{getattr(obj, 'name', type(obj).__name__)}.{f.name} must be "
                              f"{describe_type(hints[f.name])}, got {value!r}")


def describe_type(hint: Any) -> str:
    """A type hint in words, for error messages: ``float | None`` → "a number or null"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(describe_type(h) for h in typing.get_args(hint))
    words = {float: "a number", int: "an integer", bool: "true or false", str: "a string", type(None): "null",
             dict: "a mapping", tuple: "a list"}
    return words.get(typing.get_origin(hint) or hint, getattr(hint, "__name__", str(hint)))
