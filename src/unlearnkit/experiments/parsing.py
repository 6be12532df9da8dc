"""How configs are read: type-checked sections from nested mappings, ``key=value`` overrides, and
names checked against the registries. Used by config.py's :func:`~.config.load` only."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import yaml

from ..errors import ConfigError


def build(cls, values: Any, prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + u for u in unknown]}; valid: {[prefix + n for n in names]}")
    kwargs = {k: _value(v, hints[k], prefix + k) for k, v in values.items() if not (v is None and _is_section(hints[k]))}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {e}") from e


def _is_section(hint: Any) -> bool:
    return dataclasses.is_dataclass(hint)


def _value(value: Any, hint: Any, key: str) -> Any:
    if _is_section(hint):
        return build(hint, value, key + ".")
    if typing.get_origin(hint) is tuple and _is_section(inner := typing.get_args(hint)[0]):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of mappings")
        return tuple(build(inner, v, f"{key}[{i}].") for i, v in enumerate(value))
    return _coerce(value, hint, key)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a type hint (int, float, bool, str, dict, tuple[...], X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(hint) if o is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return None
        errors = []
        for option in options:
            try:
                return _coerce(value, option, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(scalar(v) if isinstance(v, str) else v, inner, key) for v in value)
    checks = {bool: (lambda v: isinstance(v, bool), "true or false"),
              int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
              float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
              str: (lambda v: isinstance(v, str), "a string"),
              dict: (lambda v: isinstance(v, dict), "a mapping")}
    kind = dict if origin is dict else hint
    if kind in checks:
        ok, what = checks[kind]
        if not ok(value):
            raise ConfigError(f"{key} must be {what}, got {value!r}")
        return float(value) if kind is float else value
    return value


def scalar(text: str) -> Any:
    """Parse an override value as YAML, reading ``1e-3`` as a number (YAML 1.1 would not)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def set_key(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c = value`` in a nested dict, creating the intermediate mappings."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"bad key {dotted!r}")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {p} is not a section")
    node[parts[-1]] = value


def validate_names(config: Any) -> None:
    """Check model, method, parameter and strategy names against the registries, before any work."""
    from ..adversary.base import create_adversary, list_adversaries
    from ..methods.base import create_method, list_methods
    from ..models.base import UNAVAILABLE, list_models

    if config.model.name in UNAVAILABLE and config.model.name not in list_models():
        raise ConfigError(f"model {config.model.name!r} {UNAVAILABLE[config.model.name]}")
    if config.model.name not in list_models():
        raise ConfigError(f"unknown model {config.model.name!r}; valid: {', '.join(list_models())}")

    methods = list(config.methods)
    if hasattr(config, "heal"):  # damage and heal configs
        methods += [m for v in config.heal.variants for m in v.methods]
    for name in methods:
        if name not in list_methods():
            raise ConfigError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    for name, params in config.params.items():
        if not isinstance(params, dict):
            raise ConfigError(f"params.{name} must be a mapping of hyperparameters, got {params!r}")
        if name not in list_methods():
            raise ConfigError(f"params.{name}: unknown method; valid: {', '.join(list_methods())}")
        try:
            create_method(name, **params)
        except ConfigError as e:  # name the key the user typed: params.ft.lr_share, not ft.lr_share
            text = str(e)
            raise ConfigError(f"params.{text}" if text.startswith(f"{name}.") else f"params.{name}: {text}") from e
    if not hasattr(config, "adversary"):
        return
    for name, params in config.adversary.items():
        if name not in list_adversaries():
            raise ConfigError(f"adversary.{name}: unknown strategy; valid: {', '.join(list_adversaries())}")
        if not isinstance(params, dict):
            raise ConfigError(f"adversary.{name} must be a mapping of hyperparameters, got {params!r}")
    for name in config.strategies:
        create_adversary(name, **config.adversary.get(name, {}))
    if config.heal.strategy != "worst" and config.heal.strategy not in list_adversaries():
        raise ConfigError(f"heal.strategy must be 'worst' or one of {', '.join(list_adversaries())}, "
                          f"got {config.heal.strategy!r}")
