"""The service's database: SQLite by default (a file in the service folder), PostgreSQL by URL.

SQLAlchemy Core tables, no ORM: every state change is a short explicit transaction. On SQLite
writers are serialised by a process-wide lock (SQLite allows one writer; waiting on our own lock
is cheaper than its busy-retry loop) and the file runs in WAL mode, so readers never block.
"""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError

try:
    import sqlalchemy as sa
    from sqlalchemy import event
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ConfigError("the service needs its extra: pip install 'unlearnkit[serve]'") from e

DEFAULT_FILE = "service.sqlite"
metadata = sa.MetaData()

settings = sa.Table(
    "settings", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
deployments = sa.Table(
    "deployments", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("folder", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # the resolved spec, JSON
)
owners = sa.Table(
    "owners", metadata,
    sa.Column("deployment", sa.String(64), sa.ForeignKey("deployments.name"), primary_key=True),
    sa.Column("owner", sa.String(128), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
)
samples = sa.Table(
    "samples", metadata,
    sa.Column("deployment", sa.String(64), sa.ForeignKey("deployments.name"), primary_key=True),
    sa.Column("sample_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # present | pending | deleted
)
batches = sa.Table(
    "batches", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(64), sa.ForeignKey("deployments.name"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | held | released | done | failed | rejected
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("worker", sa.String(128)),
    sa.Column("lease_until", sa.Float),
    sa.Column("monitor", sa.Text),  # JSON: scores and why it was held
    sa.Column("reason", sa.Text),
)
requests = sa.Table(
    "requests", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(64), sa.ForeignKey("deployments.name"), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("ids", sa.Text, nullable=False),  # JSON list, sorted
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | applied | failed | held
    sa.Column("reason", sa.Text),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id")),
    sa.Column("version", sa.Integer),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)
sa.Index("requests_by_status", requests.c.deployment, requests.c.status)
sa.Index("requests_by_owner", requests.c.deployment, requests.c.owner, requests.c.created)
versions = sa.Table(
    "versions", metadata,
    sa.Column("deployment", sa.String(64), sa.ForeignKey("deployments.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("batch_id", sa.Integer),
    sa.Column("deleted", sa.Integer, nullable=False),  # IDs deleted by this version
    sa.Column("audit", sa.Text, nullable=False),  # JSON
)
ledger = sa.Table(
    "ledger", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("deployment", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(160), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("request_id", sa.Integer),
    sa.Column("batch_id", sa.Integer),
    sa.Column("version_before", sa.Integer),
    sa.Column("version_after", sa.Integer),
    sa.Column("detail", sa.Text, nullable=False),  # JSON
)
sa.Index("ledger_by_request", ledger.c.request_id)


def default_url(folder: str | os.PathLike) -> str:
    return f"sqlite:///{Path(folder).resolve() / DEFAULT_FILE}"


class Database:
    """An engine and the schema, created on first use (ledger triggers included).

    Args:
        url: a SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://user@host:port/db``).
    """

    def __init__(self, url: str) -> None:
        from .ledger import install_triggers

        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            if self.is_sqlite:
                path = url.split("///", 1)[-1]
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                self.engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
                event.listen(self.engine, "connect", _sqlite_pragmas)
                event.listen(self.engine, "begin", _sqlite_begin)
            else:
                self.engine = sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            metadata.create_all(self.engine)
            install_triggers(self.engine)
        except sa.exc.ArgumentError as e:
            raise ConfigError(f"bad database URL {url!r}: {e}") from e
        except sa.exc.OperationalError as e:
            raise ConfigError(f"cannot open the database at {url!r}: {e.orig}") from e
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction (committed on success, rolled back on any exception)."""
        with self._write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


ID_CHUNK = 900  # IDs per IN (...): SQLite's default limit is 999 bound variables


def id_chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


_SET_STATE = samples.update().where(  # built once: the submit path marks samples pending with it
    samples.c.deployment == sa.bindparam("in_deployment"), samples.c.sample_id.in_(sa.bindparam("chunk", expanding=True))
).values(state=sa.bindparam("new_state"))


def set_sample_state(conn: sa.Connection, deployment: str, ids: list[int], state: str) -> None:
    """Set the state (present | pending | deleted) of ``ids`` of ``deployment``, in the caller's transaction."""
    for chunk in id_chunks(ids):
        conn.execute(_SET_STATE, {"in_deployment": deployment, "chunk": chunk, "new_state": state})


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (_sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # a committed deletion survives a power loss
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    """Writers take SQLite's write lock at BEGIN (IMMEDIATE): a transaction that read first and
    then writes could otherwise fail when another process committed in between."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "BEGIN")
