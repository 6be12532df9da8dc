"""An experiment: the loaded dataset, the identity that keys every record and cached model, the
model cache, and a per-process memo of what its seeds prepare (setups, reserves, requests)."""
from __future__ import annotations

import dataclasses
import hashlib
import weakref
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from ..adversary.scenario import check_scenario
from ..data.dataset import DATASETS, Dataset, load_dataset
from ..data.scenarios import read_ids_file
from ..errors import ConfigError, TrainingError, UnlearnKitError
from ..models.base import MODELS, create_model
from ..sparsity.masks import attach_masks, masks_of
from ..training.config import train_identity
from ..utils.devices import check_precision, resolve_device
from ..utils.seeding import derive_seed
from .cache import ModelCache
from .config import AdversarialConfig, ExperimentConfig, RunConfig, digest, to_dict

T = TypeVar("T")


def dataset_fingerprint(ds: Dataset) -> str:
    h = hashlib.sha256()
    for t in (ds.train.x, ds.train.y, ds.test.x, ds.test.y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def experiment_identity(config: ExperimentConfig, fingerprint: str, requested: torch.Tensor | None = None, *,
                        device: torch.device | str = "cpu"
                        ) -> dict[str, Any]:
    """What determines the results apart from seed and method: the base of record and cache keys.

    ``run``: the config less its bookkeeping, with top-level options at their defaults omitted (so a
    new option whose default reproduces the old behaviour keeps records and caches valid; a dense
    run ignores ``sparsity_rewind``). ``damage``/``heal``: data, model, training and reserve.
    Training's speed settings enter only away from their defaults (budget.train_identity), and the
    ``device`` (resolved) only by its type and only when it is not the CPU: CPU fp32 keys are those
    of records made before devices and precisions existed; a CUDA or bf16 run gets keys of its own.
    ``requested``: the IDs an ``ids`` request names; their hash joins the identity, since they
    decide which samples D_v is carved from (data/splits.base_split), hence the original's training.
    """
    d = to_dict(config)
    d["data"].pop("data_dir")
    d.pop("device")
    d["train"] = train_identity(d["train"])
    on = {"device": torch.device(device).type} if torch.device(device).type != "cpu" else {}
    if isinstance(config, AdversarialConfig):
        return {"data": d["data"], "model": d["model"], "train": d["train"], "reserve": config.reserve,
                "data_fingerprint": fingerprint, **on}
    for k in ("methods", "params", "seeds", "out_dir", "cache_dir", "noise_floor", "samia", "guard", "select"):
        d.pop(k)
    d.pop("audit", None)  # per-example audits: in the row keys of recipes/run.py, never in model caches
    defaults = to_dict(type(config)())
    for k in [k for k in d if k not in ("data", "model", "train", "forget") and d[k] == defaults[k]]:
        d.pop(k)
    if not getattr(config, "sparsity", 0):
        d.pop("sparsity_rewind", None)
    d["data_fingerprint"] = fingerprint
    if requested is not None:
        d["requested_sha256"] = hashlib.sha256(torch.sort(requested).values.numpy().tobytes()).hexdigest()
    return {**d, **on}


def check_finite_model(model: nn.Module, label: str) -> None:
    bad = [n for n, p in model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad:
        raise TrainingError(f"{label} produced non-finite weights (e.g. {bad[:3]})")


@dataclass(frozen=True, eq=False)
class Experiment:
    """What every seed of a config shares: the dataset, the experiment's identity, its cache, the
    device its models are built on (every method, attack and healing step follows the model), and
    the IDs of an ``ids`` request (read once; every seed keeps them out of D_v)."""

    config: ExperimentConfig
    dataset: Dataset
    identity: dict[str, Any]
    digest: str
    cache: ModelCache
    device: torch.device = torch.device("cpu")
    requested: torch.Tensor | None = None

    @property
    def sparsity(self) -> float:
        return getattr(self.config, "sparsity", 0.0)

    def make_model(self, seed: int, *, masks_like: nn.Module | None = None) -> nn.Module:
        """A fresh model of the configured architecture (init drawn from ``seed``), carrying
        ``masks_like``'s pruning masks when given."""
        c = self.config
        model = create_model(c.model.name, num_classes=self.dataset.num_classes, input_shape=self.dataset.input_shape,
                             seed=derive_seed(seed, "init"), **c.model.options).to(self.device)
        masks = masks_of(masks_like) if masks_like is not None else {}
        return attach_masks(model, masks) if masks else model


def load_experiment(config: ExperimentConfig) -> Experiment:
    """Check the device, load the data of ``config`` and fix its identity (the base of every record
    and cache key).

    Raises:
        ConfigError: the device is unavailable or cannot run ``train.precision`` (before any data
            is read).
    """
    device = resolve_device(config.device)
    check_precision(config.train.precision, device)
    requested = None
    if isinstance(config, RunConfig):
        check_scenario(config.forget)
        if config.forget.scenario == "ids" and config.forget.ids_file is not None:
            requested = read_ids_file(config.forget.ids_file)
    kwargs = dict(config.data.options)
    kwargs.update({k: v for k, v in (("data_dir", config.data.data_dir), ("path", config.data.path)) if v is not None})
    DATASETS.check_options(config.data.name, kwargs, "data.options / data.path")
    dataset = load_dataset(config.data.name, **kwargs)
    config = dataclasses.replace(config, device=str(device))  # records say where they ran ("auto" does not)
    identity = experiment_identity(config, dataset_fingerprint(dataset), requested, device=device)
    experiment = Experiment(config, dataset, identity, digest(identity), ModelCache(config.cache_dir), device, requested)
    check_model(experiment)
    return experiment


def check_model(experiment: Experiment) -> None:
    """Build the configured model once (untrained), so that a bad model name, option or input shape
    is refused before any seed trains, in a dry run too."""
    c = experiment.config
    MODELS.check_options(c.model.name, c.model.options, "model.options", fixed=("num_classes", "input_shape", "seed"))
    try:
        experiment.make_model(0)
    except UnlearnKitError:
        raise
    except Exception as e:  # a builder's own complaint about these options or this data's shape
        raise ConfigError(f"model {c.model.name!r} cannot be built with options {c.model.options} for inputs of "
                          f"shape {experiment.dataset.input_shape}: {type(e).__name__}: {e}") from e


_MEMO: "weakref.WeakKeyDictionary[Experiment, dict[Any, Any]]" = weakref.WeakKeyDictionary()


def memo(experiment: Experiment, key: Any, build: Callable[[], T]) -> T:
    """``build()`` once per key for each experiment object in a process (seed setups, reserves)."""
    store = _MEMO.setdefault(experiment, {})
    if key not in store:
        store[key] = build()
    return store[key]
