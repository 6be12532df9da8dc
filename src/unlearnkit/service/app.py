"""The HTTP service (FastAPI): deletion requests for owners, held batches for the admin, a page.

Owners authenticate with ``Authorization: Bearer <owner token>``; the admin with the admin token
(header, the ``ukt_admin`` cookie that ``POST /login`` sets, or ``?token=`` for scripts and
headless browsers). The page (``GET /``) is server-rendered HTML: deployments, model versions
with their audits, held batches and why, and the latest requests with their states.
"""
from __future__ import annotations

import html
import json
import time
from typing import Any

import sqlalchemy as sa

from ..errors import ConfigError
from . import ledger
from .db import Database, batches, deployments, requests, samples, set_sample_state, versions
from .submissions import Refusal, authenticate, is_admin, request_view, submit

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
except ImportError as e:  # pragma: no cover
    raise ConfigError("the service needs its extra: pip install 'unlearnkit[serve]'") from e

COOKIE = "ukt_admin"
PAGE_ROWS = 200


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _admin_token(request: Request) -> str | None:
    return _bearer(request) or request.cookies.get(COOKIE) or request.query_params.get("token")


def create_app(db: Database) -> FastAPI:
    """The service's ASGI app over ``db``."""
    app = FastAPI(title="unlearnkit deletion service", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Refusal)
    def refused(_request: Request, e: Refusal) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=e.status, headers=e.headers)

    def require_admin(request: Request) -> None:
        with db.read() as conn:
            if not is_admin(conn, _admin_token(request)):
                raise Refusal(401, "admin token required")

    @app.post("/deletions", status_code=202)
    async def post_deletion(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None  # refused with 400 after the token is checked
        from starlette.concurrency import run_in_threadpool

        view = await run_in_threadpool(submit, db, _bearer(request), body)
        return JSONResponse(view, status_code=202)

    @app.get("/deletions/{request_id}")
    def get_deletion(request_id: int, request: Request) -> dict[str, Any]:
        token = _bearer(request)
        with db.read() as conn:
            admin = is_admin(conn, token)
            caller = None if admin else authenticate(conn, token)
            view = request_view(conn, request_id)
            if view is None or (caller and (view["owner"], view["deployment"]) != (caller.owner, caller.deployment)):
                raise Refusal(404, f"no request {request_id} of yours")
            view["events"] = [{k: e[k] for k in ("at", "event", "actor", "version_before", "version_after", "detail")}
                              for e in ledger.events(conn, request_id=request_id)]
            return view

    @app.get("/samples")
    def get_samples(request: Request, state: str = "present", limit: int = 100) -> dict[str, Any]:
        """The caller's own sample IDs in ``state`` (present | pending | deleted), the first ``limit``."""
        if state not in ("present", "pending", "deleted") or not 1 <= limit <= 100000:
            raise Refusal(400, "state must be present, pending or deleted, and limit in [1, 100000]")
        with db.read() as conn:
            caller = authenticate(conn, _bearer(request))
            where = (samples.c.deployment == caller.deployment, samples.c.owner == caller.owner,
                     samples.c.state == state)
            total = conn.execute(sa.select(sa.func.count()).select_from(samples).where(*where)).scalar_one()
            ids = conn.execute(sa.select(samples.c.sample_id).where(*where).order_by(samples.c.sample_id)
                               .limit(limit)).scalars().all()
        return {"deployment": caller.deployment, "owner": caller.owner, "state": state, "total": total, "ids": ids}

    @app.get("/deployments/{name}/versions")
    def get_versions(name: str, request: Request) -> list[dict[str, Any]]:
        token = _bearer(request)
        with db.read() as conn:
            if not is_admin(conn, token) and authenticate(conn, token).deployment != name:
                raise Refusal(404, f"no deployment {name!r} of yours")
            rows = conn.execute(sa.select(versions).where(versions.c.deployment == name)
                                .order_by(versions.c.version)).all()
        return [{**r._asdict(), "audit": json.loads(r.audit)} for r in rows]

    @app.post("/admin/batches/{batch_id}/{action}")
    def act_on_batch(batch_id: int, action: str, request: Request):
        require_admin(request)
        if action not in ("release", "reject"):
            raise Refusal(404, f"unknown action {action!r}; use release or reject")
        now = time.time()
        with db.write() as conn:
            row = conn.execute(sa.select(batches).where(batches.c.id == batch_id)).first()
            if row is None:
                raise Refusal(404, f"no batch {batch_id}")
            if row.status != "held":
                raise Refusal(409, f"batch {batch_id} is {row.status}, not held")
            reqs = conn.execute(sa.select(requests.c.id, requests.c.ids).where(requests.c.batch_id == batch_id)).all()
            if action == "release":
                conn.execute(batches.update().where(batches.c.id == batch_id).values(status="released"))
                conn.execute(requests.update().where(requests.c.batch_id == batch_id)
                             .values(status="queued", reason="released by the admin", updated=now))
            else:
                conn.execute(batches.update().where(batches.c.id == batch_id)
                             .values(status="rejected", reason="rejected by the admin"))
                conn.execute(requests.update().where(requests.c.batch_id == batch_id)
                             .values(status="failed", reason="rejected by the admin after the monitor held it",
                                     updated=now))
                set_sample_state(conn, row.deployment, sorted(i for r in reqs for i in json.loads(r.ids)), "present")
            ledger.record_many(conn, [{"deployment": row.deployment, "actor": "admin",
                                       "event": "released" if action == "release" else "rejected",
                                       "request_id": r.id, "batch_id": batch_id} for r in reqs])
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/", status_code=303)
        return {"batch": batch_id, "status": "released" if action == "release" else "rejected"}

    @app.post("/login")
    async def login(request: Request):
        form = (await request.body()).decode("utf-8", "replace")
        from urllib.parse import parse_qs

        token = (parse_qs(form).get("token") or [""])[0]
        with db.read() as conn:
            if not is_admin(conn, token):
                raise Refusal(401, "invalid admin token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        with db.read() as conn:
            token = _admin_token(request)
            if not is_admin(conn, token):
                return HTMLResponse(LOGIN, status_code=401)
            response = HTMLResponse(render_page(conn))
        if request.cookies.get(COOKIE) != token:  # signed in by header or ?token=: the page's buttons need the cookie
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/healthz")
    def health() -> dict[str, str]:
        with db.read() as conn:
            conn.execute(sa.select(1))
        return {"status": "ok"}

    return app


LOGIN = """<!doctype html><html><head><meta charset="utf-8"><title>unlearnkit service</title></head><body>
<h1>unlearnkit deletion service</h1><form method="post" action="/login">
<label>Admin token <input type="password" name="token"></label> <button>Sign in</button></form></body></html>"""

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}th{background:#f3f3f3}
.applied{color:#176317}.failed{color:#a11}.held{color:#a60}.queued,.running{color:#246}code{font-size:.85em}"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z" if t else ""


def render_page(conn: sa.Connection) -> str:
    """The whole page as one HTML string (every value escaped)."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>unlearnkit service</title>"
           f"<style>{STYLE}</style></head><body><h1>unlearnkit deletion service</h1>"]
    for dep in conn.execute(sa.select(deployments).order_by(deployments.c.name)).all():
        spec = json.loads(dep.spec)
        p = spec["policy"]
        policy = (f"exact (SISA {p['sisa_shards']}×{p['sisa_slices']})" if p["kind"] == "exact" else
                  f"approximate: {p['method']} + healing ({p['heal_data']}, {p['heal_epochs']} epoch(s))")
        out.append(f"<section class='deployment' id='dep-{_e(dep.name)}'><h2>Deployment {_e(dep.name)}</h2>"
                   f"<p>data {_e(spec['data']['name'])}, model {_e(spec['model']['name'])}, policy {_e(policy)}, "
                   f"monitor threshold {_e(spec['monitor']['threshold'])}, registered {_when(dep.created)}</p>")
        out.append("<h3>Model versions</h3><table class='versions'><tr><th>version</th><th>published</th>"
                   "<th>IDs deleted</th><th>TA</th><th>MIA-Efficacy</th><th>RA</th><th>VA</th><th>sha256</th></tr>")
        for v in conn.execute(sa.select(versions).where(versions.c.deployment == dep.name)
                              .order_by(versions.c.version.desc())).all():
            a = json.loads(v.audit)
            fig = lambda k: f"{a[k]:.2f}" if k in a else "–"  # noqa: E731
            out.append(f"<tr><td>{v.version}</td><td>{_when(v.created)}</td><td>{v.deleted}</td><td>{fig('TA')}</td>"
                       f"<td>{fig('MIA-Efficacy')}</td><td>{fig('RA')}</td><td>{fig('VA')}</td>"
                       f"<td><code>{_e(v.sha256[:16])}…</code></td></tr>")
        out.append("</table><h3>Held batches</h3>")
        held = conn.execute(sa.select(batches).where(batches.c.deployment == dep.name, batches.c.status == "held")
                            .order_by(batches.c.id)).all()
        if not held:
            out.append("<p>none</p>")
        for b in held:
            monitor = json.loads(b.monitor or "{}")
            z = ", ".join(f"{k} z={v:.1f}" for k, v in sorted(monitor.get("z", {}).items()))
            out.append(f"<div class='held-batch' id='batch-{b.id}'><p><b>batch {b.id}</b>: {_e(b.reason)}"
                       f"<br><small>{_e(z)}</small></p>"
                       f"<form method='post' action='/admin/batches/{b.id}/release' style='display:inline'>"
                       f"<button>release</button></form> "
                       f"<form method='post' action='/admin/batches/{b.id}/reject' style='display:inline'>"
                       f"<button>reject</button></form></div>")
        out.append(f"<h3>Requests (latest {PAGE_ROWS})</h3><table class='requests'><tr><th>request</th><th>owner</th>"
                   "<th>IDs</th><th>status</th><th>version</th><th>batch</th><th>submitted</th><th>reason</th></tr>")
        for r in conn.execute(sa.select(requests).where(requests.c.deployment == dep.name)
                              .order_by(requests.c.id.desc()).limit(PAGE_ROWS)).all():
            out.append(f"<tr class='request' data-id='{r.id}'><td>{r.id}</td><td>{_e(r.owner)}</td><td>{r.count}</td>"
                       f"<td class='{_e(r.status)}'>{_e(r.status)}</td><td>{_e(r.version)}</td><td>{_e(r.batch_id)}</td>"
                       f"<td>{_when(r.created)}</td><td>{_e(r.reason)}</td></tr>")
        out.append("</table></section>")
    out.append("</body></html>")
    return "".join(out)
