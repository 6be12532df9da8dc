"""A deployment's spec: the YAML an admin registers (see configs/serve-fmnist.yaml).

Type-checked dataclasses read by the experiments' config parser (unknown keys are refused with the
valid ones listed); names (model, method) are checked against the registries before any work.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..budget import TrainConfig
from ..errors import ConfigError
from ..experiments.config import DataConfig, ModelConfig
from ..experiments.parsing import build

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
POLICIES = ("approximate", "exact")
HEAL_DATA = ("remaining", "replacements", "random")


@dataclass(frozen=True, kw_only=True)
class OwnersSpec:
    """``csv``: a file of ``id,owner`` rows (header included; relative paths from the spec's folder);
    ``round_robin``: instead, that many demo owners ``owner-0``.. hold the training IDs in turn."""

    csv: str | None = None
    round_robin: int | None = None

    def __post_init__(self) -> None:
        if (self.csv is None) == (self.round_robin is None):
            raise ConfigError("owners: give exactly one of csv (a file of id,owner rows) or round_robin (a count)")
        if self.round_robin is not None and self.round_robin < 1:
            raise ConfigError(f"owners.round_robin must be >= 1, got {self.round_robin}")


@dataclass(frozen=True, kw_only=True)
class PolicySpec:
    """``exact``: SISA (``sisa_shards`` × ``sisa_slices``), retraining the shards that held the IDs.
    ``approximate``: ``method`` (with ``params``) on the current version, then healing: fine-tune on
    the remaining data plus (``heal_data: replacements``) the nearest spare of each deleted sample
    from a ``reserve`` held out of training (``heal_epochs``; ``heal_data: null``: no healing)."""

    kind: str = "approximate"
    method: str = "ft"
    params: dict = field(default_factory=dict)
    heal_data: str | None = "replacements"
    heal_epochs: float = 1.0
    reserve: int = 500
    similarity: str = "euclidean"
    sisa_shards: int = 4
    sisa_slices: int = 2

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise ConfigError(f"policy.kind must be one of {POLICIES}, got {self.kind!r}")
        if self.heal_data is not None and self.heal_data not in HEAL_DATA:
            raise ConfigError(f"policy.heal_data must be one of {HEAL_DATA} or null, got {self.heal_data!r}")
        if self.kind == "approximate" and self.heal_data in ("replacements", "random") and self.reserve < 1:
            raise ConfigError(f"policy.heal_data={self.heal_data} needs a reserve >= 1, got {self.reserve}")
        if self.reserve < 0 or self.heal_epochs <= 0:
            raise ConfigError("policy.reserve must be >= 0 and policy.heal_epochs > 0")


@dataclass(frozen=True, kw_only=True)
class BatchSpec:
    """The worker takes queued requests once the oldest waited ``window_s`` seconds (or ``max_ids``
    IDs wait), at most ``max_ids`` IDs per batch."""

    window_s: float = 5.0
    max_ids: int = 2000

    def __post_init__(self) -> None:
        if self.window_s < 0 or self.max_ids < 1:
            raise ConfigError("batch.window_s must be >= 0 and batch.max_ids >= 1")


@dataclass(frozen=True, kw_only=True)
class GuardSpec:
    """A version is not published when its retained validation accuracy fell more than ``collapse``
    points (+ two standard errors) below the previous version's (experiments/guard.py), its test
    accuracy fell more than ``max_ta_drop`` points, or MIA-Efficacy on the deleted IDs is below
    ``min_mia_efficacy`` percent. 0 turns a check off."""

    collapse: float = 10.0
    max_ta_drop: float = 10.0
    min_mia_efficacy: float = 0.0


@dataclass(frozen=True, kw_only=True)
class MonitorSpec:
    """The adversarial-request monitor (adversary/monitor.py); ``enabled: false`` turns it off."""

    enabled: bool = True
    threshold: float = 4.0
    draws: int = 200
    min_batch: int = 20
    grad: bool = True


@dataclass(frozen=True, kw_only=True)
class LimitsSpec:
    """Per request at most ``max_ids`` IDs (413 beyond); per owner at most ``per_minute`` requests
    in any 60 seconds (429 beyond)."""

    max_ids: int = 1000
    per_minute: int = 30

    def __post_init__(self) -> None:
        if self.max_ids < 1 or self.per_minute < 1:
            raise ConfigError("limits.max_ids and limits.per_minute must be >= 1")


@dataclass(frozen=True, kw_only=True)
class DeploymentSpec:
    """Everything a deployment is: data and training IDs (``data``: the train/validation carving of
    the experiments, seeded by ``seed``), the model (``checkpoint``: an unlearnkit checkpoint of this
    architecture trained on these training IDs; none: trained at registration with ``train``), the
    owners, the deletion policy, batching, guards, the monitor and the limits."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: str | None = None
    seed: int = 0
    owners: OwnersSpec = field(default_factory=lambda: OwnersSpec(round_robin=3))
    policy: PolicySpec = field(default_factory=PolicySpec)
    batch: BatchSpec = field(default_factory=BatchSpec)
    guard: GuardSpec = field(default_factory=GuardSpec)
    monitor: MonitorSpec = field(default_factory=MonitorSpec)
    limits: LimitsSpec = field(default_factory=LimitsSpec)

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError(f"name must be 1-64 lowercase letters, digits, '-' or '_', got {self.name!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def read_spec(path: str | Path) -> DeploymentSpec:
    """Read and check a spec file; relative file names in it are made absolute from its folder.

    Raises:
        ConfigError: missing, not YAML, unknown keys, wrong types or unknown names.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"deployment spec not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not YAML: {e}") from e
    return spec_from_dict(raw, base=path.parent)


def spec_from_dict(raw: Any, *, base: Path = Path(".")) -> DeploymentSpec:
    if not isinstance(raw, dict):
        raise ConfigError("a deployment spec must be a mapping")
    spec = build(DeploymentSpec, raw, "")
    resolve = lambda p: p if p is None or Path(p).is_absolute() else str((base / p).resolve())  # noqa: E731
    spec = dataclasses.replace(spec, checkpoint=resolve(spec.checkpoint),
                               owners=dataclasses.replace(spec.owners, csv=resolve(spec.owners.csv)))
    _check_names(spec)
    return spec


def spec_from_json(text: str) -> DeploymentSpec:
    return spec_from_dict(json.loads(text))


def _check_names(spec: DeploymentSpec) -> None:
    from ..methods import create_method, list_methods
    from ..models import list_models

    if spec.model.name not in list_models():
        raise ConfigError(f"unknown model {spec.model.name!r}; valid: {', '.join(list_models())}")
    if spec.policy.kind == "approximate":
        if spec.policy.method not in list_methods() or spec.policy.method == "sisa":
            valid = [m for m in list_methods() if m != "sisa"]
            raise ConfigError(f"policy.method must be an approximate method, one of {', '.join(valid)} "
                              f"(for SISA use policy.kind: exact), got {spec.policy.method!r}")
        create_method(spec.policy.method, **spec.policy.params)
