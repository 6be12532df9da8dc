"""Experiment configuration: frozen dataclasses, loaded from YAML and ``key=value`` overrides.

Every key is checked: an unknown key or a value of the wrong type is a ConfigError that names the
valid keys. ``data.options.*`` and ``model.options.*`` pass keyword arguments to the dataset and
model builders; ``params.<method>.<hyperparameter>`` sets a method's hyperparameters.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.scenarios import ForgetRequest
from ..errors import ConfigError
from ..sparsity.omp import DEFAULT_REWIND
from ..training.config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """``name``: a registered dataset; ``path``: the file or folder of ``npz`` / ``imagefolder``;
    ``data_dir``: where to look first; ``val_fraction``: D_v carved from the training file;
    ``train_subset`` / ``test_subset``: a stratified subset (tests, quick runs); ``options``:
    extra keyword arguments of the dataset builder (e.g. ``size`` of ``imagefolder``)."""

    name: str = "fashion-mnist"
    path: str | None = None
    data_dir: str | None = None
    val_fraction: float = 0.1
    train_subset: int | None = None
    test_subset: int | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """``name``: a registered model; ``options``: its keyword arguments (e.g. ``width`` of resnet18)."""

    name: str = "cnn"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One experiment: data → original model → forget request → each method → audit → record.

    ``methods`` empty means every registered method. ``seeds``: each seed draws its own validation
    split, forget set, original model and method randomness. ``noise_floor`` adds a second retrain
    with another training seed, whose distance to the first is the floor below which a method's
    disparity means nothing. ``cache_dir`` (default ``$UNLEARNKIT_CACHE/models``) holds the
    original models and retrain oracles by content hash. ``sparsity`` > 0 makes the original
    model sparse by one-shot magnitude pruning with weight rewinding to ``sparsity_rewind`` of its
    training (sparsity/omp.py); the retrain oracle then trains from scratch under the same mask.
    ``samia`` adds the SAMIA transformer attack (DAU's attacker, ``attacks/samia.py``) to the audit
    of every row run from then on: slower (~10 s per row on W1), so off by default; it does not
    change cached models or record keys.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    forget: ForgetRequest = field(default_factory=ForgetRequest)
    methods: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    noise_floor: bool = True
    attacks: bool = True
    samia: bool = False
    out_dir: str | None = None
    cache_dir: str | None = None
    sparsity: float = 0.0
    sparsity_rewind: float = DEFAULT_REWIND

    def __post_init__(self) -> None:
        if not 0 <= self.sparsity < 1:
            raise ConfigError(f"sparsity must lie in [0, 1) (0 = dense, 0.95 = 95% of weights pruned), got {self.sparsity}")
        if not 0 <= self.sparsity_rewind < 1:
            raise ConfigError(f"sparsity_rewind must lie in [0, 1) (share of training to rewind to), got {self.sparsity_rewind}")
        if not self.seeds:
            raise ConfigError("seeds must name at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds repeat: {list(self.seeds)}")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "forget": ForgetRequest}


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a type hint (int, float, bool, str, dict, tuple[...], X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(_coerce(_scalar(v) if isinstance(v, str) else v, inner, key) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if hint is dict or origin is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{key} must be a mapping, got {value!r}")
    return value


def _scalar(text: str) -> Any:
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


def _build(cls, values: dict[str, Any], prefix: str):
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + u for u in unknown]}; valid: {[prefix + n for n in names]}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {e}") from e


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build and validate a RunConfig from a nested mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping, got {type(raw).__name__}")
    top = dict(raw)
    sections = {}
    for name, cls in SECTIONS.items():
        section = top.pop(name, None) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{name} must be a mapping, got {section!r}")
        sections[name] = _build(cls, section, f"{name}.")
    config = _build(RunConfig, top, "")
    config = dataclasses.replace(config, **sections)
    validate_params(config)
    return config


def validate_params(config: RunConfig) -> None:
    """Check ``params`` against the method registry: known methods, known hyperparameters, valid values."""
    from ..methods import create_method, list_methods

    for name in config.methods:
        if name not in list_methods():
            raise ConfigError(f"unknown method {name!r}; valid: {', '.join(list_methods())}")
    for name, params in config.params.items():
        if not isinstance(params, dict):
            raise ConfigError(f"params.{name} must be a mapping of hyperparameters, got {params!r}")
        if name not in list_methods():
            raise ConfigError(f"params.{name}: unknown method; valid: {', '.join(list_methods())}")
        create_method(name, **params)


def to_dict(config: RunConfig) -> dict[str, Any]:
    """A JSON-serialisable nested dict (the inverse of ``config_from_dict``)."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


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


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML file (optional) and apply ``key=value`` overrides (values parsed as YAML scalars)."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p} is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a config must be a mapping at the top level")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        set_key(raw, key.strip(), _scalar(value))
    return config_from_dict(raw)


def digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (content-hash keys of caches and records)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
