"""Deletion requests: authentication and every refusal, checked before anything changes.

One write transaction per submission: the owner's token is checked (401), the body (400: not a
list of integers, unknown fields, empty, duplicates), the size (413), the owner's rate (429), the
ownership (403 for any ID the owner does not hold — the same answer whether or not the ID exists,
so owners learn nothing about other owners' data) and the state (409: already deleted or pending).
Only then is the request inserted (``queued``), its samples marked ``pending`` and the ledger
event appended, all in the same transaction.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from ..errors import UnlearnKitError
from . import ledger
from .db import Database, deployments, id_chunks, owners, requests, samples, set_sample_state, settings
from .registration import ADMIN_KEY
from .spec import DeploymentSpec, spec_from_json
from .tokens import matches, token_hash

MAX_ID = 2**63 - 1

# The submit path's statements, built once with bound parameters: building a SQLAlchemy statement
# per call cost about as much as executing it (benchmarks/bench_serve.py).
_BY_TOKEN = sa.select(owners.c.deployment, owners.c.owner, owners.c.token_sha256).where(
    owners.c.token_sha256 == sa.bindparam("token_hash"))
_SPEC = sa.select(deployments.c.spec).where(deployments.c.name == sa.bindparam("deployment"))
_RECENT = sa.select(sa.func.count()).select_from(requests).where(
    requests.c.deployment == sa.bindparam("deployment"), requests.c.owner == sa.bindparam("owner"),
    requests.c.created > sa.bindparam("since"))
_STATES = sa.select(samples.c.sample_id, samples.c.owner, samples.c.state).where(
    samples.c.deployment == sa.bindparam("in_deployment"), samples.c.sample_id.in_(sa.bindparam("chunk", expanding=True)))
_INSERT_REQUEST = requests.insert()


class Refusal(UnlearnKitError):
    """A request refused with an HTTP ``status`` and a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class Caller:
    deployment: str
    owner: str


def authenticate(conn: sa.Connection, token: str | None) -> Caller:
    """The owner a bearer token belongs to (401 otherwise)."""
    if not token:
        raise Refusal(401, "missing token: send 'Authorization: Bearer <owner token>'", {"WWW-Authenticate": "Bearer"})
    row = conn.execute(_BY_TOKEN, {"token_hash": token_hash(token)}).first()
    if row is None or not matches(token, row.token_sha256):
        raise Refusal(401, "invalid token", {"WWW-Authenticate": "Bearer"})
    return Caller(row.deployment, row.owner)


def is_admin(conn: sa.Connection, token: str | None) -> bool:
    row = conn.execute(sa.select(settings.c.value).where(settings.c.key == ADMIN_KEY)).first()
    return bool(token) and row is not None and matches(token, row.value)


@lru_cache(maxsize=64)
def _spec(text: str) -> DeploymentSpec:
    return spec_from_json(text)


def deployment_spec(conn: sa.Connection, name: str) -> DeploymentSpec:
    text = conn.execute(_SPEC, {"deployment": name}).scalar_one()
    return _spec(text)


def parse_ids(body: Any) -> list[int]:
    """The IDs of a request body ``{"ids": [...]}`` (400 on anything else)."""
    if not isinstance(body, dict):
        raise Refusal(400, 'the body must be a JSON object {"ids": [...]}')
    unknown = sorted(set(body) - {"ids"})
    if unknown:
        raise Refusal(400, f"unknown field(s) {unknown}; the body is {{\"ids\": [...]}}")
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise Refusal(400, '"ids" must be a list of integers')
    if not ids:
        raise Refusal(400, "the request is empty: list at least one id")
    bad = [v for v in ids if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_ID]
    if bad:
        raise Refusal(400, f"ids must be non-negative integers; got {bad[:5]}")
    seen, twice = set(), []
    for v in ids:
        if v in seen:
            twice.append(v)
        seen.add(v)
    if twice:
        raise Refusal(400, f"duplicate ids: {sorted(set(twice))[:5]}")
    return sorted(ids)


def submit(db: Database, token: str | None, body: Any) -> dict[str, Any]:
    """Validate and enqueue one deletion request; return its public view.

    Raises:
        Refusal: 401, 400, 413, 429, 403 or 409 (nothing is written).
    """
    with db.write() as conn:
        caller = authenticate(conn, token)
        ids = parse_ids(body)
        spec = deployment_spec(conn, caller.deployment)
        if len(ids) > spec.limits.max_ids:
            raise Refusal(413, f"{len(ids)} ids in one request; at most {spec.limits.max_ids}")
        now = time.time()
        recent = conn.execute(_RECENT, {"deployment": caller.deployment, "owner": caller.owner,
                                        "since": now - 60}).scalar_one()
        if recent >= spec.limits.per_minute:
            raise Refusal(429, f"rate limit: at most {spec.limits.per_minute} requests per minute per owner",
                          {"Retry-After": "60"})
        rows = [row for chunk in id_chunks(ids)
                for row in conn.execute(_STATES, {"in_deployment": caller.deployment, "chunk": chunk})]
        mine = {r.sample_id: r.state for r in rows if r.owner == caller.owner}
        foreign = [i for i in ids if i not in mine]
        if foreign:  # the same answer for another owner's IDs and for IDs that do not exist
            raise Refusal(403, f"{len(foreign)} of the ids are not yours to delete: {foreign[:5]}")
        taken = {state: [i for i in ids if mine[i] == state] for state in ("deleted", "pending")}
        if taken["deleted"] or taken["pending"]:
            parts = [f"{len(v)} already {'deleted' if k == 'deleted' else 'pending in another request'}: {v[:5]}"
                     for k, v in taken.items() if v]
            raise Refusal(409, "; ".join(parts))
        request_id = conn.execute(_INSERT_REQUEST, {
            "deployment": caller.deployment, "owner": caller.owner, "ids": json.dumps(ids), "count": len(ids),
            "status": "queued", "created": now, "updated": now}).inserted_primary_key[0]
        set_sample_state(conn, caller.deployment, ids, "pending")
        ledger.record(conn, deployment=caller.deployment, actor=f"owner:{caller.owner}", event="queued",
                      request_id=request_id, ids=len(ids))
    return {"id": request_id, "deployment": caller.deployment, "owner": caller.owner, "count": len(ids),
            "status": "queued", "reason": None, "version": None, "created": now, "updated": now}


def request_view(conn: sa.Connection, request_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(requests).where(requests.c.id == request_id)).first()
    if row is None:
        return None
    view = row._asdict()
    view["ids"] = json.loads(view["ids"])
    return view
