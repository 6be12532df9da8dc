"""The append-only ledger: every state change of a request, batch or model version is one row.

Rows are only ever inserted, inside the same transaction as the change they record. The database
itself refuses UPDATE and DELETE on the table (triggers on SQLite and PostgreSQL), so neither a bug
nor a careless admin can rewrite history through SQL.
"""
from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from .db import ledger

REFUSAL = "the ledger is append-only"
_INSERT = ledger.insert()  # built once: record() is on the submit path

_SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END",
    f"CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END",
]
_POSTGRES = [
    f"""CREATE OR REPLACE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$""",
    "DROP TRIGGER IF EXISTS ledger_no_change ON ledger",
    """CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()""",
]


def install_triggers(engine: sa.Engine) -> None:
    """Make the ledger table refuse UPDATE and DELETE (idempotent)."""
    statements = _SQLITE if engine.dialect.name == "sqlite" else _POSTGRES if engine.dialect.name == "postgresql" else []
    if not statements:
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # several processes may start at once
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727272)")
        for statement in statements:
            conn.exec_driver_sql(statement)


def record(conn: sa.Connection, *, deployment: str, actor: str, event: str, request_id: int | None = None,
           batch_id: int | None = None, version_before: int | None = None, version_after: int | None = None,
           **detail: Any) -> None:
    """Append one event in the caller's transaction."""
    conn.execute(_INSERT, {"at": time.time(), "deployment": deployment, "actor": actor, "event": event,
                           "request_id": request_id, "batch_id": batch_id, "version_before": version_before,
                           "version_after": version_after, "detail": json.dumps(detail, sort_keys=True)})


def record_many(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Append several events (dicts with the arguments of :func:`record`) in one statement."""
    if not rows:
        return
    now = time.time()
    base = {"request_id": None, "batch_id": None, "version_before": None, "version_after": None}
    values = []
    for row in rows:
        row = dict(row)
        fixed = {k: row.pop(k) for k in ("deployment", "actor", "event")}
        keyed = {k: row.pop(k, base[k]) for k in base}
        values.append({**fixed, **keyed, "at": now, "detail": json.dumps(row, sort_keys=True)})
    conn.execute(_INSERT, values)


def events(conn: sa.Connection, *, deployment: str | None = None, request_id: int | None = None) -> list[dict[str, Any]]:
    query = sa.select(ledger).order_by(ledger.c.seq)
    if deployment is not None:
        query = query.where(ledger.c.deployment == deployment)
    if request_id is not None:
        query = query.where(ledger.c.request_id == request_id)
    return [{**row._asdict(), "detail": json.loads(row.detail)} for row in conn.execute(query)]
