"""Running the service: the database from the command line's URL and uvicorn, with or without an
in-process worker."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from .db import Database, default_url

log = logging.getLogger("unlearnkit")
DEFAULT_DIR = "serve"


def service_dir(path: str | None) -> Path:
    return Path(path or os.environ.get("UNLEARNKIT_SERVE_DIR") or DEFAULT_DIR)


def open_db(folder: Path, url: str | None) -> Database:
    """The service's database: ``url``, else $UNLEARNKIT_DB, else the SQLite file in ``folder``."""
    return Database(url or os.environ.get("UNLEARNKIT_DB") or default_url(folder))


def serve(db: Database, *, host: str, port: int, worker: bool, lease_s: float) -> None:
    """Serve HTTP until interrupted; with ``worker``, also process batches in a background thread."""
    import uvicorn

    from .app import create_app
    from .worker import Worker

    stop = threading.Event()
    thread = None
    if worker:
        thread = threading.Thread(target=Worker(db, lease_s=lease_s).run, args=(stop,), daemon=True, name="worker")
        thread.start()
    try:
        uvicorn.run(create_app(db), host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)
