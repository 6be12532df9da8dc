"""The worker: takes queued requests in batches, screens, unlearns, heals, audits and publishes.

A batch is claimed in one transaction (a ``batches`` row with this worker's name and a lease; its
requests go ``running``). A heartbeat thread extends the lease; a worker that dies (``kill -9``)
stops extending it, and once it expires any worker claims the batch again and redoes it from the
last published version. Publishing is two steps: the new version's file is written atomically
(versions.py), then ONE transaction inserts the version row with the file's SHA-256, marks the
requests ``applied`` and their samples ``deleted``, closes the batch and appends the ledger events.
That transaction only succeeds while the batch is still this worker's and the version number is
free, so a request is applied at most once; a redone batch overwrites an unpublished file.

A batch the monitor flags goes ``held`` (an admin releases or rejects it, app.py); a batch whose
audit fails is not published and its requests go ``failed`` with the reason (their samples can be
requested again).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import torch
from torch import Tensor, nn

from ..adversary.monitor import RequestMonitor
from ..data.dataset import Dataset
from ..data.pool import Samples
from ..data.splits import ForgetSplit
from ..errors import UnlearnKitError
from ..experiments.guard import CollapseError, check_collapse
from ..healing import Heal
from ..healing.reserve import SpareReserve
from ..healing.similarity import fit_similarity
from ..methods import create_method
from ..methods.base import unlearn_measured
from ..metrics.audit import audit_with_outputs
from ..sisa import SisaStore
from ..utils.seeding import derived_generator
from . import ledger
from .db import Database, batches, deployments, requests, samples, set_sample_state, versions
from .registration import load_data, load_split, make_template
from .spec import DeploymentSpec, spec_from_json
from .versions import Version, load_version, save_version, version_path

log = logging.getLogger("unlearnkit")
PAUSE_ENV = "UNLEARNKIT_SERVE_TEST_PAUSE_BEFORE_PUBLISH"  # tests only: seconds to sleep before publishing
AUDIT_RETAIN = 2000  # D_r samples the audit's shadow attack and RA use (a seeded random subset)


class AuditFailed(UnlearnKitError):
    """The new version failed an audit check; it is not published."""


@dataclass(frozen=True, eq=False)
class Loaded:
    """What a deployment needs in memory: spec, data, a model template, D_v and D_test."""

    spec: DeploymentSpec
    folder: Path
    dataset: Dataset
    template: nn.Module
    val: Samples
    test: Samples


class Worker:
    """Processes batches until stopped. ``lease_s``: how long a claim lasts without a heartbeat."""

    def __init__(self, db: Database, *, name: str | None = None, lease_s: float = 30.0, poll_s: float = 0.5) -> None:
        self.db = db
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._loaded: dict[str, Loaded] = {}

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        log.info("worker %s: started", self.name)
        while not stop.is_set():
            try:
                worked = self.run_once()
            except sa.exc.OperationalError as e:  # the database is briefly unavailable: try again
                log.warning("worker %s: database error (%s); retrying", self.name, e.orig)
                worked = False
            if not worked:
                stop.wait(self.poll_s)

    def run_once(self) -> bool:
        """Claim and process one batch; False when there was nothing to do."""
        batch = self.claim()
        if batch is None:
            return False
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(batch["id"], stop), daemon=True)
        beat.start()
        try:
            self.process(batch)
        finally:
            stop.set()
            beat.join()
        return True

    def _heartbeat(self, batch_id: int, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                with self.db.write() as conn:
                    conn.execute(batches.update().where(batches.c.id == batch_id, batches.c.worker == self.name)
                                 .values(lease_until=time.time() + self.lease_s))
            except sa.exc.OperationalError as e:
                log.warning("worker %s: heartbeat failed (%s)", self.name, e.orig)

    # ------------------------------------------------------------------ claiming
    def claim(self) -> dict[str, Any] | None:
        """Take over an expired or released batch, else open a new batch from queued requests."""
        now = time.time()
        with self.db.write() as conn:
            row = conn.execute(sa.select(batches).where(sa.or_(
                batches.c.status == "released",
                sa.and_(batches.c.status == "running", batches.c.lease_until < now))).order_by(batches.c.id)).first()
            if row is not None:
                released = row.status == "released" or json.loads(row.monitor or "{}").get("released", False)
                conn.execute(batches.update().where(batches.c.id == row.id).values(
                    status="running", worker=self.name, lease_until=now + self.lease_s,
                    monitor=json.dumps({**json.loads(row.monitor or "{}"), "released": released})))
                if row.status == "released":
                    conn.execute(requests.update().where(requests.c.batch_id == row.id)
                                 .values(status="running", updated=now))
                ledger.record(conn, deployment=row.deployment, actor=f"worker:{self.name}", event="batch_claimed",
                              batch_id=row.id, previous_worker=row.worker, previous_status=row.status)
                return {"id": row.id, "deployment": row.deployment, "released": released}
            busy = {r.deployment for r in conn.execute(sa.select(batches.c.deployment).where(
                batches.c.status == "running"))}
            for (name,) in conn.execute(sa.select(deployments.c.name).order_by(deployments.c.name)).all():
                if name in busy:
                    continue
                batch = self._open_batch(conn, name, now)
                if batch is not None:
                    return batch
        return None

    def _open_batch(self, conn: sa.Connection, deployment: str, now: float) -> dict[str, Any] | None:
        spec = spec_from_json(conn.execute(sa.select(deployments.c.spec).where(
            deployments.c.name == deployment)).scalar_one())
        queued = conn.execute(sa.select(requests.c.id, requests.c.count, requests.c.created).where(
            requests.c.deployment == deployment, requests.c.status == "queued").order_by(requests.c.id)
            .limit(spec.batch.max_ids)).all()
        if not queued:
            return None
        total = sum(r.count for r in queued)
        if queued[0].created > now - spec.batch.window_s and total < spec.batch.max_ids:
            return None
        taken, count = [], 0
        for r in queued:
            if taken and count + r.count > spec.batch.max_ids:
                break
            taken.append(r.id)
            count += r.count
        batch_id = conn.execute(batches.insert().values(
            deployment=deployment, status="running", created=now, worker=self.name,
            lease_until=now + self.lease_s)).inserted_primary_key[0]
        changed = conn.execute(requests.update().where(requests.c.id.in_(taken), requests.c.status == "queued")
                               .values(status="running", batch_id=batch_id, updated=now)).rowcount
        if changed != len(taken):
            raise RuntimeError("queued requests changed under a claim")  # rolls the claim back
        ledger.record_many(conn, [{"deployment": deployment, "actor": f"worker:{self.name}", "event": "running",
                                   "request_id": i, "batch_id": batch_id} for i in taken])
        return {"id": batch_id, "deployment": deployment, "released": False}

    # ------------------------------------------------------------------ processing
    def load(self, conn: sa.Connection, name: str) -> Loaded:
        if name not in self._loaded:
            row = conn.execute(sa.select(deployments).where(deployments.c.name == name)).one()
            spec = spec_from_json(row.spec)
            dataset = load_data(spec)
            val_ids, test_ids = load_split(row.folder)
            self._loaded[name] = Loaded(spec, Path(row.folder), dataset, make_template(spec, dataset),
                                        Samples(dataset.train, val_ids), Samples(dataset.test, test_ids))
        return self._loaded[name]

    def process(self, batch: dict[str, Any]) -> None:
        batch_id, name = batch["id"], batch["deployment"]
        with self.db.read() as conn:
            d = self.load(conn, name)
            current = conn.execute(sa.select(versions).where(versions.c.deployment == name)
                                   .order_by(versions.c.version.desc()).limit(1)).one()
            reqs = conn.execute(sa.select(requests.c.id, requests.c.owner, requests.c.ids).where(
                requests.c.batch_id == batch_id).order_by(requests.c.id)).all()
        ids = torch.tensor(sorted(i for r in reqs for i in json.loads(r.ids)), dtype=torch.int64)
        version = load_version(current.path, current.sha256, d.template)
        spec = d.spec
        g = derived_generator(spec.seed, "batch", batch_id)
        if spec.monitor.enabled and not batch["released"]:
            verdict = self._monitor(d, version, ids, {r.owner for r in reqs}, name, g)
            if verdict.held:
                self._finish(batch_id, name, reqs, "held", verdict.reason, monitor=verdict.to_json())
                return
            monitor = verdict.to_json()
        else:
            monitor = {"released": True} if batch["released"] else {"enabled": False}
        new_version = current.version + 1
        try:
            model, train_ids, reserve_ids, commit = self._apply(d, version, ids, new_version, g)
            audit = self._audit(d, model, train_ids, ids, json.loads(current.audit))
        except (UnlearnKitError, RuntimeError, ValueError) as e:  # a method or audit refusal: not published
            self._finish(batch_id, name, reqs, "failed", f"{type(e).__name__}: {e}", monitor=monitor)
            return
        commit()  # SISA: the store moves to the new generation (idempotent on a redo)
        path = version_path(d.folder, new_version)
        deleted = torch.cat([version.deleted_ids, ids])
        sha = save_version(path, model, train_ids=train_ids, reserve_ids=reserve_ids, deleted_ids=deleted,
                           meta={"deployment": name, "version": new_version, "batch": batch_id, "audit": audit})
        pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
        if pause:
            print(f"worker: paused before publishing version {new_version}", flush=True)
            time.sleep(pause)
        self._publish(batch_id, name, reqs, ids, current.version, new_version, str(path), sha, audit, monitor)

    def _monitor(self, d: Loaded, version: Version, ids: Tensor, owners_: set[str], name: str, g: torch.Generator):
        with self.db.read() as conn:
            held = conn.execute(sa.select(samples.c.sample_id).where(
                samples.c.deployment == name, samples.c.owner.in_(sorted(owners_)),
                samples.c.state != "deleted")).scalars().all()
        candidates = torch.tensor(held, dtype=torch.int64)
        if len(candidates) < 4 * len(ids):  # the requesters hold too little to draw from: use all training data
            candidates = version.train_ids
        m = d.spec.monitor
        monitor = RequestMonitor(threshold=m.threshold, draws=m.draws, min_batch=m.min_batch, grad=m.grad)
        return monitor.score(version.model, d.dataset.train, ids, candidates, d.dataset.train.y[version.train_ids],
                             generator=g)

    def _apply(self, d: Loaded, version: Version, ids: Tensor, new_version: int, g: torch.Generator):
        """The policy's model, its training and reserve IDs, and what to run before publishing."""
        p, pool = d.spec.policy, d.dataset.train
        retain = Samples(pool, version.train_ids[~torch.isin(version.train_ids, ids)])
        split = ForgetSplit(retain=retain, forget=Samples(pool, ids), val=d.val, test=d.test,
                            num_classes=d.dataset.num_classes, budget=d.spec.train)
        if p.kind == "exact":
            store = SisaStore.open(d.folder / "sisa")
            if store.generation == new_version and bool(torch.isin(ids, store.deleted).all()):
                return store.ensemble(d.template), retain.ids, version.reserve_ids, lambda: None  # a redo
            result = store.unlearn(ids, pool=pool, template=d.template, persist=False)
            return (result.ensemble(d.template), retain.ids, version.reserve_ids,
                    lambda: store.commit(result, d.template, generation=new_version))
        method = create_method(p.method, **p.params)
        model = unlearn_measured(method, version.model, split, generator=g).model
        if p.heal_data is None:
            return model, retain.ids, version.reserve_ids, lambda: None
        reserve = None
        if p.heal_data != "remaining" and len(version.reserve_ids):
            embedder = fit_similarity(p.similarity, model=version.model, fit_on=retain)
            reserve = SpareReserve(Samples(pool, version.train_ids), Samples(pool, version.reserve_ids), embedder)
        healer = Heal(data=p.heal_data if reserve is not None else "remaining", epochs=p.heal_epochs)
        model = healer.heal(model, split, reserve, generator=g)
        if reserve is None:
            return model, retain.ids, version.reserve_ids, lambda: None
        return model, reserve.train_ids, reserve.reserve_ids, lambda: None

    def _audit(self, d: Loaded, model: nn.Module, train_ids: Tensor, ids: Tensor, previous: dict[str, float]
               ) -> dict[str, float]:
        """TA, MIA-Efficacy on the deleted IDs, RA, VA; AuditFailed beyond the spec's guards."""
        pool = d.dataset.train
        g = derived_generator(d.spec.seed, "audit", int(ids.sum()))
        retain = train_ids[torch.randperm(len(train_ids), generator=g)[:AUDIT_RETAIN]]
        split = ForgetSplit(retain=Samples(pool, retain), forget=Samples(pool, ids), val=d.val, test=d.test,
                            num_classes=d.dataset.num_classes, budget=d.spec.train)
        figures, outs = audit_with_outputs(model, split, attacks=False)
        guard = d.spec.guard
        try:
            check_collapse("the new version", model, split, baseline=previous["VA"], guard=guard.collapse,
                           val_outputs=outs["val"])
        except CollapseError as e:
            raise AuditFailed(f"collapse guard: {e}") from e
        if guard.max_ta_drop > 0 and previous["TA"] - figures["TA"] > guard.max_ta_drop:
            raise AuditFailed(f"test accuracy fell {previous['TA'] - figures['TA']:.1f} points "
                              f"({previous['TA']:.2f} → {figures['TA']:.2f}), beyond max_ta_drop={guard.max_ta_drop:g}")
        if figures["MIA-Efficacy"] < guard.min_mia_efficacy:
            raise AuditFailed(f"MIA-Efficacy on the deleted IDs is {figures['MIA-Efficacy']:.1f}%, below "
                              f"min_mia_efficacy={guard.min_mia_efficacy:g}")
        return {k: round(float(v), 4) for k, v in figures.items()}

    # ------------------------------------------------------------------ outcomes
    def _finish(self, batch_id: int, name: str, reqs, status: str, reason: str, *, monitor: dict[str, Any]) -> None:
        """Close the batch as ``held`` or ``failed`` (failed requests' samples can be asked for again)."""
        now = time.time()
        with self.db.write() as conn:
            owned = conn.execute(batches.update().where(batches.c.id == batch_id, batches.c.worker == self.name,
                                                        batches.c.status == "running")
                                 .values(status=status, reason=reason, monitor=json.dumps(monitor),
                                         lease_until=None)).rowcount
            if owned != 1:
                log.warning("worker %s: batch %d was taken over; dropping my result", self.name, batch_id)
                return
            conn.execute(requests.update().where(requests.c.batch_id == batch_id)
                         .values(status=status, reason=reason, updated=now))
            if status == "failed":
                self._release_samples(conn, name, reqs)
            ledger.record_many(conn, [{"deployment": name, "actor": f"worker:{self.name}", "event": status,
                                       "request_id": r.id, "batch_id": batch_id, "reason": reason,
                                       "monitor": monitor} for r in reqs])
        log.info("worker %s: batch %d %s: %s", self.name, batch_id, status, reason)

    @staticmethod
    def _release_samples(conn: sa.Connection, name: str, reqs) -> None:
        set_sample_state(conn, name, sorted(i for r in reqs for i in json.loads(r.ids)), "present")

    def _publish(self, batch_id: int, name: str, reqs, ids: Tensor, before: int, after: int, path: str, sha: str,
                 audit: dict[str, float], monitor: dict[str, Any]) -> None:
        now = time.time()
        with self.db.write() as conn:
            owned = conn.execute(batches.update().where(batches.c.id == batch_id, batches.c.worker == self.name,
                                                        batches.c.status == "running")
                                 .values(status="done", monitor=json.dumps(monitor), lease_until=None)).rowcount
            if owned != 1:
                log.warning("worker %s: batch %d was taken over; not publishing", self.name, batch_id)
                return
            conn.execute(versions.insert().values(deployment=name, version=after, path=path, sha256=sha, created=now,
                                                  batch_id=batch_id, deleted=len(ids), audit=json.dumps(audit)))
            conn.execute(requests.update().where(requests.c.batch_id == batch_id)
                         .values(status="applied", version=after, reason=None, updated=now))
            set_sample_state(conn, name, ids.tolist(), "deleted")
            common = {"deployment": name, "actor": f"worker:{self.name}", "batch_id": batch_id,
                      "version_before": before, "version_after": after}
            ledger.record_many(conn, [{**common, "event": "applied", "request_id": r.id, "audit": audit}
                                      for r in reqs] +
                               [{**common, "event": "published", "sha256": sha, "deleted": len(ids), "audit": audit,
                                 "monitor": monitor}])
        log.info("worker %s: batch %d published version %d (%d ids; TA %.2f, MIA-Efficacy %.1f)", self.name,
                 batch_id, after, len(ids), audit["TA"], audit["MIA-Efficacy"])
