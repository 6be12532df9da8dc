"""Experiment configuration: frozen dataclasses, loaded by one :func:`load` from YAML and overrides.

Every key is checked against the dataclass's type hints (parsing.py): an unknown key or a value of
the wrong type is a ConfigError naming the valid keys. A field whose type is a config dataclass (``data``,
``heal``, ``heal.variants[i]``) is a section, built the same way. ``data.options.*`` and
``model.options.*`` pass keyword arguments to the dataset and model builders;
``params.<method>.<hyperparameter>`` sets a method's hyperparameters.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..data.scenarios import ForgetRequest
from ..errors import ConfigError
from ..healing.similarity import SIMILARITIES
from ..sparsity.omp import DEFAULT_REWIND
from ..training.config import TrainConfig
from ..utils.devices import check_device_name
from .guard import DEFAULT_GUARD
from .parsing import build, scalar, set_key, validate_names

C = TypeVar("C")


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
class ExperimentConfig:
    """What every recipe shares: data, model, the original's training budget, the methods (empty:
    every registered one) and their ``params``, the ``seeds`` (each draws its own validation split,
    original model and randomness), the output folder and the model cache (default
    ``$UNLEARNKIT_CACHE/models``; models are stored by content hash), and the ``device`` every
    model is built on (``auto``: CUDA when available, else the CPU; utils/devices.py)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    out_dir: str | None = None
    cache_dir: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_device_name(self.device)  # its availability is checked before any work (load_experiment)
        if not self.seeds:
            raise ConfigError("seeds must name at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds repeat: {list(self.seeds)}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods repeat: {list(self.methods)}")


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    """Per-example audits (experiments/families.py, docs/per_example.md). ``per_example``: the size N
    of the model families (N originals each unlearned by every method, N retrain oracles) that
    U-LiRA and KLoM compare; 0 = off. ``examples``: at most this many examples of each of D_f, D_r
    and D_test are scored."""

    per_example: int = 0
    examples: int = 1000

    def __post_init__(self) -> None:
        if self.per_example != 0 and self.per_example < 2:
            raise ConfigError(f"audit.per_example must be 0 (off) or a family size >= 2 (one member to fit a "
                              f"distribution, one to test it), got {self.per_example}")
        if self.examples < 1:
            raise ConfigError(f"audit.examples must be >= 1, got {self.examples}")


@dataclass(frozen=True, kw_only=True)
class RunConfig(ExperimentConfig):
    """``unlearnkit run``: data → original → forget request → each method → audit → record.

    ``noise_floor`` adds a second retrain with another training seed, whose distance to the first
    is the floor below which a method's disparity means nothing. ``sparsity`` > 0 makes the original
    sparse by one-shot magnitude pruning with weight rewinding to ``sparsity_rewind`` of its training
    (sparsity/omp.py); the oracle then trains from scratch under the same mask. ``samia`` adds DAU's
    transformer attack to the audit (slow; changes no cached model or record key). ``guard``: the
    largest drop of retained validation accuracy (points) a method may cause before its row is
    failed as collapsed (experiments/guard.py; 0 = off; changes no cached model or record key).
    ``select``: add a ``<method> (selected)`` row per method whose strength is chosen on the
    validation split from the method's declared ``select_grid`` (recipes/select.py)."""

    forget: ForgetRequest = field(default_factory=ForgetRequest)
    noise_floor: bool = True
    guard: float = DEFAULT_GUARD
    select: bool = False
    attacks: bool = True
    samia: bool = False
    sparsity: float = 0.0
    sparsity_rewind: float = DEFAULT_REWIND
    audit: AuditSettings = field(default_factory=AuditSettings)  # per-example audits; in row keys only when on

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.audit.per_example and self.sparsity:
            raise ConfigError("audit.per_example does not support sparse runs yet (its family of originals would "
                              "need pruning too); set sparsity=0 or audit.per_example=0")
        if not 0 <= self.sparsity < 1:
            raise ConfigError(f"sparsity must lie in [0, 1) (0 = dense, 0.95 = 95% of weights pruned), got {self.sparsity}")
        if not 0 <= self.sparsity_rewind < 1:
            raise ConfigError(f"sparsity_rewind must lie in [0, 1) (share of training to rewind to), got {self.sparsity_rewind}")
        if not (self.guard >= 0 and math.isfinite(self.guard)):
            raise ConfigError(f"guard must be >= 0 points of retained validation accuracy (0 = off), got {self.guard}")


HEAL_VARIANT_DATA = ("remaining", "twins", "spares", "random")
HEAL_EPOCHS = {"half": None, "one": 1.0}


@dataclass(frozen=True, kw_only=True)
class HealVariant:
    """One healing setting. ``data``: ``remaining`` (D_r only), ``twins`` (D_r + the nearest twin of
    each deleted sample from a TwinIndex over the reserve pool), ``spares`` (D_r + the nearest spare
    of a SpareReserve of ``heal.spares`` samples drawn from the pool) or ``random`` (D_r + random
    spares of the same class). ``similarity``: euclidean (raw pixels), cosine or mahalanobis (the
    original model's features). ``epochs``: ``half`` (half the original epochs) or ``one``.
    ``methods``: the unlearning methods to heal with this setting (empty: every method)."""

    name: str
    data: str = "remaining"
    similarity: str = "mahalanobis"
    epochs: str = "half"
    methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.data not in HEAL_VARIANT_DATA:
            raise ConfigError(f"heal variant {self.name!r}: data must be one of {HEAL_VARIANT_DATA}, got {self.data!r}")
        if self.similarity not in SIMILARITIES:
            raise ConfigError(f"heal variant {self.name!r}: similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if self.epochs not in HEAL_EPOCHS:
            raise ConfigError(f"heal variant {self.name!r}: epochs must be one of {tuple(HEAL_EPOCHS)}, got {self.epochs!r}")

    def describe(self) -> str:
        what = {"remaining": "D_r", "twins": f"D_r + twins ({self.similarity})",
                "spares": f"D_r + spares ({self.similarity})", "random": "D_r + random"}[self.data]
        return f"{what}, {'½ epochs' if self.epochs == 'half' else '1 epoch'}"


DEFAULT_VARIANTS = (
    HealVariant(name="remaining-half", data="remaining", epochs="half"),
    HealVariant(name="remaining-one", data="remaining", epochs="one"),
    HealVariant(name="twins-mahalanobis-half", data="twins", similarity="mahalanobis", epochs="half"),
    HealVariant(name="twins-mahalanobis-one", data="twins", similarity="mahalanobis", epochs="one"),
    HealVariant(name="twins-cosine-half", data="twins", similarity="cosine", epochs="half"),
    HealVariant(name="twins-euclidean-half", data="twins", similarity="euclidean", epochs="half"),
    HealVariant(name="random-half", data="random", epochs="half"),
)


@dataclass(frozen=True, kw_only=True)
class HealSettings:
    """``strategy``: the adversary whose request is healed — a name, or ``worst``: the strategy with
    the largest mean damage at ``budget`` in the damage records of ``damage_dir``. ``lr_share``:
    healing learning rate / original. ``candidates``: neighbours kept per sample by twin indexes and
    reserves; ``same_class``: replace only within a class; ``spares``: size of the SpareReserve drawn
    from the pool (default the whole pool). ``variants``: the settings compared side by side."""

    strategy: str = "worst"
    budget: float = 0.1
    damage_dir: str | None = None
    lr_share: float = 1.0
    candidates: int = 8
    same_class: bool = True
    spares: int | None = None
    variants: tuple[HealVariant, ...] = DEFAULT_VARIANTS

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"heal.variants: names repeat: {names}")
        if not (self.lr_share > 0 and math.isfinite(self.lr_share)):
            raise ConfigError(f"heal.lr_share must be > 0, got {self.lr_share}")
        if self.candidates < 1:
            raise ConfigError(f"heal.candidates must be >= 1, got {self.candidates}")


@dataclass(frozen=True, kw_only=True)
class AdversarialConfig(ExperimentConfig):
    """``unlearnkit damage`` and ``heal``. ``reserve``: samples held out of the original training as
    the spare and twin pool. ``strategies`` × ``budgets`` (fractions of the training set, or counts
    ≥ 1): the requests. ``adversary.<strategy>``: a strategy's hyperparameters."""

    data: DataConfig = field(default_factory=lambda: DataConfig(val_fraction=1 / 12))
    reserve: int = 10000
    strategies: tuple[str, ...] = ("random", "class", "typical", "boundary", "gradnorm", "influence", "coverage")
    budgets: tuple[float, ...] = (0.01, 0.05, 0.1)
    adversary: dict = field(default_factory=dict)
    heal: HealSettings = field(default_factory=HealSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reserve < 1:
            raise ConfigError(f"reserve must be >= 1, got {self.reserve}")
        if not self.strategies or not self.budgets:
            raise ConfigError("strategies and budgets must not be empty")
        for b in self.budgets:
            if not (0 < b < 1 or (b >= 1 and float(b).is_integer())):
                raise ConfigError(f"budgets: {b} is neither a fraction in (0, 1) nor a count")


# --- loading ----------------------------------------------------------------------------------------
def load(cls: type[C], path: str | Path | None = None, overrides: list[str] = ()) -> C:
    """Read a YAML file (optional), apply ``key=value`` overrides (values parsed as YAML scalars)
    and build a validated ``cls`` (RunConfig or AdversarialConfig)."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:  # one line: the problem and where (PyYAML's text spans several)
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = " ".join(str(getattr(e, "problem", None) or e).split())
            raise ConfigError(f"{p} is not valid YAML{where}: {problem}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a config must be a mapping at the top level")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        set_key(raw, key.strip(), scalar(value))
    return from_dict(cls, raw)


def from_dict(cls: type[C], raw: Any) -> C:
    """Build and validate ``cls`` from a nested mapping (as read from YAML); the inverse of :func:`to_dict`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping, got {type(raw).__name__}")
    config = build(cls, raw, "")
    validate_names(config)
    return config


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    return load(RunConfig, path, overrides)


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    return from_dict(RunConfig, raw)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-serialisable nested dict (the inverse of :func:`from_dict`)."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (content-hash keys of caches and records)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
