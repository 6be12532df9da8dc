"""Helpers for the service tests: a tiny deployment spec, a server on loopback, HTTP calls, and a
real PostgreSQL started from the Debian binaries in a temporary folder."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import yaml

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY_DATA = {"name": "synthetic", "val_fraction": 0.1,
             "options": {"n_train": 900, "n_test": 300, "num_classes": 4, "size": 8, "noise": 90.0, "seed": 3}}
TINY_MODEL = {"name": "cnn", "options": {"channels": [4, 8], "hidden": 16}}
TINY_TRAIN = {"epochs": 3, "lr": 0.05, "batch_size": 32}


def tiny_spec(name: str, **sections: Any) -> dict[str, Any]:
    """A spec that registers in a second or two: 1,200 synthetic 8×8 samples, a tiny CNN, 3 epochs;
    ft for 1 epoch-share and healing for half an epoch; no batch window."""
    spec = {"name": name, "data": TINY_DATA, "model": TINY_MODEL, "train": TINY_TRAIN,
            "owners": {"round_robin": 3},
            "policy": {"kind": "approximate", "method": "ft", "params": {"epoch_share": 0.3}, "heal_data": "replacements",
                       "heal_epochs": 0.5, "reserve": 100},
            "batch": {"window_s": 0.0, "max_ids": 500},
            "monitor": {"threshold": 4.0, "draws": 100, "min_batch": 20, "grad": False},
            "limits": {"max_ids": 300, "per_minute": 1000}}
    for key, value in sections.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec


def write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method: str, url: str, *, token: str | None = None, body: Any = None, raw: bytes | None = None,
         timeout: float = 30) -> tuple[int, Any]:
    """One HTTP call; returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@contextlib.contextmanager
def running_server(db) -> Iterator[str]:
    """The app over ``db`` served by uvicorn in a thread on a free loopback port; yields its URL."""
    import uvicorn

    from unlearnkit.service.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    """``unlearnkit ARGS`` in a subprocess running this checkout's code."""
    full_env = {**os.environ, "PYTHONPATH": SRC, "UNLEARNKIT_PROGRESS": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "unlearnkit.cli", *args], env=full_env, **kw)


# ---------------------------------------------------------------- PostgreSQL from the Debian package
def postgres_bin() -> Path | None:
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "initdb").exists() and (root / "pg_ctl").exists():
            return root
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port; yields a SQLAlchemy URL. As root the cluster
    runs as the ``postgres`` user (initdb refuses root)."""
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="ukpg-"))
    data, port = folder / "data", free_port()
    as_user: list[str] = []
    user = os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o700)
        as_user, user = ["runuser", "-u", "postgres", "--"], "postgres"
    run = lambda *a: subprocess.run([*as_user, *a], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        try:
            yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
