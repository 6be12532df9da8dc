"""Registering a deployment: data and training IDs, owners, the model (version 0), tokens.

Everything is checked and built before the database changes: the deployment's folder is built in
a temporary sibling and renamed into place, then one transaction records the deployment, its owners
(token hashes), its samples, version 0 and the ``registered`` ledger event. Tokens are returned
once and never stored in clear.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import torch
from torch import nn

from ..data.dataset import DATASETS, Dataset, load_dataset
from ..data.pool import Samples
from ..data.splits import base_split
from ..errors import CheckpointError, ConfigError, DataError
from ..experiments.guard import retained_accuracy
from ..models import create_model
from ..sisa import SisaConfig, train_sisa
from ..training.checkpoint import load_checkpoint
from ..training.evaluate import sample_accuracy
from ..training.loop import train
from ..utils.files import write_atomic
from ..utils.sampling import stratified_subset
from ..utils.seeding import derive_seed, derived_generator
from . import ledger
from .db import Database, deployments, owners, samples, settings, versions
from .spec import DeploymentSpec
from .tokens import new_token, token_hash
from .versions import save_version, version_path

log = logging.getLogger("unlearnkit")
SPLIT_FILE = "split.pt"
ADMIN_KEY = "admin_token_sha256"


@dataclass(frozen=True)
class Registered:
    """What registration hands back once: the owner tokens and, the first time, the admin token."""

    name: str
    folder: Path
    tokens: dict[str, str]
    admin_token: str | None
    audit: dict[str, float]


def load_data(spec: DeploymentSpec) -> Dataset:
    kwargs = dict(spec.data.options)
    kwargs.update({k: v for k, v in (("data_dir", spec.data.data_dir), ("path", spec.data.path)) if v is not None})
    DATASETS.check_options(spec.data.name, kwargs, "data.options / data.path")
    return load_dataset(spec.data.name, **kwargs)


def make_template(spec: DeploymentSpec, dataset: Dataset) -> nn.Module:
    return create_model(spec.model.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                        seed=derive_seed(spec.seed, "init"), **spec.model.options)


def read_owners(spec: DeploymentSpec, train_ids: torch.Tensor) -> dict[int, str]:
    """The owner of each ownable training ID. IDs outside training (validation, test, reserve) or
    repeated are refused, naming the first ones."""
    if spec.owners.round_robin is not None:
        n = spec.owners.round_robin
        return {int(i): f"owner-{k % n}" for k, i in enumerate(train_ids.tolist())}
    path = Path(spec.owners.csv)
    if not path.is_file():
        raise ConfigError(f"owners file not found: {path}")
    result: dict[int, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or [h.strip() for h in header] != ["id", "owner"]:
            raise ConfigError(f"{path}: the first line must be the header 'id,owner', got {header}")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != 2 or not row[1].strip():
                raise ConfigError(f"{path}:{line}: expected 'id,owner', got {row}")
            try:
                sample = int(row[0])
            except ValueError:
                raise ConfigError(f"{path}:{line}: id must be an integer, got {row[0]!r}") from None
            if sample in result:
                raise ConfigError(f"{path}:{line}: id {sample} is listed twice")
            owner = row[1].strip()
            if len(owner) > 128:
                raise ConfigError(f"{path}:{line}: owner names are at most 128 characters")
            result[sample] = owner
    if not result:
        raise ConfigError(f"{path} lists no ids")
    known = torch.tensor(sorted(result))
    stray = known[~torch.isin(known, train_ids)]
    if stray.numel():
        raise ConfigError(f"{path}: {stray.numel()} ids are not training IDs of this deployment (validation, test, "
                          f"reserve or outside the file): {stray[:5].tolist()}")
    return result


def carve_ids(spec: DeploymentSpec, dataset: Dataset):
    """``(base split, test samples, training IDs, reserve IDs)`` of a spec: D_v carved as in the
    experiments, then (approximate policy healing from spares) a stratified reserve held out."""
    base, test = base_split(dataset, val_fraction=spec.data.val_fraction, train_subset=spec.data.train_subset,
                            test_subset=spec.data.test_subset, seed=spec.seed)
    train_ids = base.train.ids
    reserve_ids = train_ids[:0]
    p = spec.policy
    if p.kind == "approximate" and p.heal_data in ("replacements", "random"):
        if not 0 < p.reserve < len(train_ids) // 2:
            raise ConfigError(f"policy.reserve={p.reserve} must lie in [1, {len(train_ids) // 2 - 1}]")
        reserve_ids = stratified_subset(dataset.train.y, train_ids, count=p.reserve,
                                        generator=derived_generator(spec.seed, "reserve"))
        train_ids = train_ids[~torch.isin(train_ids, reserve_ids)]
    return base, test, train_ids, reserve_ids


def register(db: Database, spec: DeploymentSpec, service_dir: str | Path) -> Registered:
    """Register ``spec``: train or load the model, write version 0, give each owner a token.

    Raises:
        ConfigError: the name is taken, or the spec's data, owners or checkpoint are unusable.
    """
    service_dir = Path(service_dir)
    with db.read() as conn:
        if conn.execute(sa.select(deployments.c.name).where(deployments.c.name == spec.name)).first():
            raise ConfigError(f"a deployment named {spec.name!r} is already registered")
    folder = (service_dir / "deployments" / spec.name).resolve()
    dataset = load_data(spec)
    base, test, train_ids, reserve_ids = carve_ids(spec, dataset)
    p = spec.policy
    owned = read_owners(spec, train_ids)
    template = make_template(spec, dataset)
    train_samples = Samples(dataset.train, train_ids)

    if folder.exists():  # a registration that crashed before its transaction left it
        log.warning("removing %s, left by an unfinished registration", folder)
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=folder.parent))
    try:
        if p.kind == "exact":
            config = SisaConfig(shards=p.sisa_shards, slices=p.sisa_slices, seed=derive_seed(spec.seed, "sisa"),
                                budget=spec.train)
            store = train_sisa(template, train_samples, config, tmp / "sisa")
            model = store.ensemble(template)
        else:
            model = _original(spec, template, train_samples)
        val = base.val
        audit = {"TA": sample_accuracy(model, test), "VA": retained_accuracy(model, _val_split(val))[0]}
        write_atomic(tmp / SPLIT_FILE, lambda path: torch.save({"val_ids": val.ids, "test_ids": test.ids}, path))
        sha = save_version(version_path(tmp, 0), model, train_ids=train_ids, reserve_ids=reserve_ids,
                           deleted_ids=train_ids[:0], meta={"deployment": spec.name, "version": 0})
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    tokens = {owner: new_token("owner") for owner in sorted(set(owned.values()))}
    admin_token = None
    now = time.time()
    try:
        with db.write() as conn:
            if conn.execute(sa.select(deployments.c.name).where(deployments.c.name == spec.name)).first():
                raise ConfigError(f"a deployment named {spec.name!r} is already registered")
            if not conn.execute(sa.select(settings.c.value).where(settings.c.key == ADMIN_KEY)).first():
                admin_token = new_token("admin")
                conn.execute(settings.insert().values(key=ADMIN_KEY, value=token_hash(admin_token)))
            conn.execute(deployments.insert().values(name=spec.name, created=now, folder=str(folder),
                                                     spec=spec.to_json()))
            conn.execute(owners.insert(), [{"deployment": spec.name, "owner": o, "token_sha256": token_hash(t)}
                                           for o, t in tokens.items()])
            rows = [{"deployment": spec.name, "sample_id": i, "owner": o, "state": "present"} for i, o in owned.items()]
            for start in range(0, len(rows), 5000):
                conn.execute(samples.insert(), rows[start:start + 5000])
            conn.execute(versions.insert().values(
                deployment=spec.name, version=0, path=str(version_path(folder, 0)), sha256=sha, created=now,
                batch_id=None, deleted=0, audit=json.dumps(audit)))
            ledger.record(conn, deployment=spec.name, actor="admin", event="registered", version_after=0,
                          owners=len(tokens), ownable_ids=len(owned), train_ids=len(train_ids),
                          reserve=len(reserve_ids), policy=dataclasses.asdict(p), audit=audit, sha256=sha)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Registered(spec.name, folder, tokens, admin_token, audit)


def _original(spec: DeploymentSpec, template: nn.Module, train_samples: Samples) -> nn.Module:
    import copy

    model = copy.deepcopy(template)
    if spec.checkpoint is None:
        train(model, train_samples, spec.train, generator=derived_generator(spec.seed, "original"), desc="original")
        return model
    state, _ = load_checkpoint(spec.checkpoint)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{spec.checkpoint} does not hold a {spec.model.name} model of this spec's shape: "
                              f"{str(e).splitlines()[0]}") from e
    return model


def _val_split(val: Samples):
    """A stand-in with the fields the collapse guard reads (D_v, no forgotten class)."""
    return type("ValOnly", (), {"val": val, "forget_class": None})()


def load_split(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation and test IDs of a deployment."""
    path = Path(folder) / SPLIT_FILE
    try:
        data = torch.load(path, weights_only=True)
        return data["val_ids"], data["test_ids"]
    except Exception as e:
        raise DataError(f"{path} is unreadable ({e})") from e
