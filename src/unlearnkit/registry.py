"""A small name → object registry shared by datasets, models, methods and attacks."""
from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError, RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to builders. Duplicate registrations and unknown look-ups raise RegistryError.

    >>> r = Registry("toy")
    >>> @r.register("a")
    ... def make_a(): return 1
    >>> r.get("a")()
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def create(self, name: str, **params: Any) -> Any:
        """Build the dataclass registered under ``name`` from ``params`` (its fields).

        Raises:
            RegistryError: unknown name (lists the valid ones).
            ConfigError: a parameter the dataclass has no field for (lists the valid ones), or what
                the dataclass itself raises on an invalid value.
        """
        cls = self.get(name)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ConfigError(f"{self.kind} {name!r} has no hyperparameter(s) {unknown}; valid: {sorted(fields)}")
        return cls(**params)

    def check_options(self, name: str, options: dict[str, Any], where: str, *, fixed: tuple[str, ...] = ()) -> None:
        """Refuse keyword ``options`` that the builder registered under ``name`` does not take
        (before it is called, so that a typo is a ConfigError naming ``where``, not a TypeError).
        ``fixed``: arguments the caller always passes itself (not the user's to set).

        Raises:
            RegistryError: unknown name. ConfigError: unknown options (lists the valid ones).
        """
        params = inspect.signature(self.get(name)).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return
        valid = sorted(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                       and p.name not in fixed)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"{where}: {self.kind} {name!r} takes no option(s) {unknown}; valid: {valid}")

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
