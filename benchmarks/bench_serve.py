"""The deletion-request service under load, and the adversarial-request monitor on Fashion-MNIST.

    python benchmarks/bench_serve.py                                   # 2,000 submissions, 50 clients; demo; ~5-8 min on 2 cores
    python benchmarks/bench_serve.py --submissions 500 --clients 20 --random-batches 400   # a quicker check
    python benchmarks/bench_serve.py --skip-demo                       # the load test alone
    python benchmarks/bench_serve.py --skip-demo --rate 200            # clients paced at 200 submissions/s in all

Load test (SQLite, loopback): a synthetic deployment (6,000 8×8 samples, tiny cnn) whose ``--clients``
owners each hold their share of the training IDs; ``unlearnkit serve`` and ``unlearnkit worker`` run
as two processes; ``--clients`` threads submit ``--submissions`` requests in all (``--ids`` IDs each,
one keep-alive connection per client) as fast as they can. Reported: accepted / refused, submit
latency p50 / p99 (client side, queueing included), submissions per second, the time until every
accepted request is applied (or held/failed) and applied requests per minute; then the ledger is
checked: every accepted request has its ``queued`` event and at most one ``applied``, and every
``applied`` request has exactly one.

Malicious-batch demo (Fashion-MNIST ``--fmnist-subset`` samples, cnn 2 epochs): one owner holds half of
the training IDs. It submits the ``boundary`` strategy's picks among its own samples (``--budget``
IDs), then the ``class`` strategy's picks, then a random batch of the same size; the worker's monitor
decides. The false hold rate: ``--random-batches`` random batches of ``--budget`` IDs from that
owner's samples, scored by the same monitor on the same model version.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from unlearnkit.adversary import create_adversary  # noqa: E402
from unlearnkit.adversary.monitor import RequestMonitor, class_distribution, monitor_features  # noqa: E402
from unlearnkit.data.pool import Samples  # noqa: E402
from unlearnkit.service import ledger  # noqa: E402
from unlearnkit.service.db import Database, batches, default_url, requests, samples, versions  # noqa: E402
from unlearnkit.service.registration import register  # noqa: E402
from unlearnkit.service.spec import spec_from_dict  # noqa: E402
from unlearnkit.service.versions import load_version  # noqa: E402
from unlearnkit.service.worker import Worker  # noqa: E402


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "UNLEARNKIT_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "unlearnkit.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_up(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not come up")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def owned(db: Database, name: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    with db.read() as conn:
        for sid, owner in conn.execute(sa.select(samples.c.sample_id, samples.c.owner)
                                       .where(samples.c.deployment == name).order_by(samples.c.sample_id)):
            out.setdefault(owner, []).append(sid)
    return out


def load_test(args: argparse.Namespace, folder: Path) -> dict:
    db = Database(default_url(folder))
    spec = {"name": "load", "data": {"name": "synthetic", "options": {"n_train": 6000, "n_test": 500, "num_classes": 4,
                                                                      "size": 8, "noise": 90.0, "seed": 3}},
            "model": {"name": "cnn", "options": {"channels": [4, 8], "hidden": 16}},
            "train": {"epochs": 2, "lr": 0.05, "batch_size": 64}, "owners": {"round_robin": args.clients},
            "policy": {"method": "ft", "params": {"epoch_share": 0.2}, "heal_data": "replacements", "heal_epochs": 0.3,
                       "reserve": 200},
            "batch": {"window_s": 2.0, "max_ids": 2000}, "monitor": {"threshold": 4.0, "draws": 200},
            "limits": {"max_ids": 100, "per_minute": 100000}}
    reg = register(db, spec_from_dict(spec), folder)
    holdings = owned(db, "load")
    per_client = args.submissions // args.clients
    port = free_port()
    dirs = ["--dir", str(folder)]
    server = start("serve", *dirs, "--port", str(port))
    worker = start("worker", *dirs, "--poll", "0.2", *(["--nice", str(args.worker_nice)] if args.worker_nice is not None else []))
    latencies: list[float] = []
    accepted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def client(index: int, owner: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        ids = holdings[owner]
        gap = args.clients / args.rate if args.rate else 0.0
        start = begin + index * gap / args.clients  # staggered: paced arrivals are even, not bursts of --clients
        for r in range(per_client):
            if gap:
                time.sleep(max(0.0, start + r * gap - time.perf_counter()))
            body = json.dumps({"ids": ids[r * args.ids:(r + 1) * args.ids]})
            t = time.perf_counter()
            conn.request("POST", "/deletions", body=body, headers={"Authorization": f"Bearer {reg.tokens[owner]}",
                                                                    "Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                (accepted.append(json.loads(data)["id"]) if response.status == 202 else refused.append(response.status))

    try:
        wait_up(port)
        begin = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i, o)) for i, o in enumerate(sorted(holdings)[: args.clients])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        submit_s = time.perf_counter() - begin
        deadline = time.time() + args.apply_timeout
        while time.time() < deadline:
            with db.read() as conn:
                left = conn.execute(sa.select(sa.func.count()).select_from(requests).where(
                    requests.c.status.in_(("queued", "running")))).scalar_one()
            if left == 0:
                break
            time.sleep(0.5)
        settle_s = time.perf_counter() - begin
    finally:
        for p in (server, worker):
            p.terminate()
            p.wait(timeout=30)
    with db.read() as conn:
        states = dict(conn.execute(sa.select(requests.c.status, sa.func.count()).group_by(requests.c.status)).all())
        events = ledger.events(conn, deployment="load")
        n_versions = conn.execute(sa.select(sa.func.count()).select_from(versions)).scalar_one()
    queued = [e["request_id"] for e in events if e["event"] == "queued"]
    applied = [e["request_id"] for e in events if e["event"] == "applied"]
    applied_state = states.get("applied", 0)
    lat = sorted(latencies)
    return {
        "submissions": len(latencies), "clients": args.clients, "ids_per_request": args.ids, "rate": args.rate or "max",
        "accepted": len(accepted), "refused": len(refused),
        "submit_p50_ms": 1000 * lat[len(lat) // 2], "submit_p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "submit_mean_ms": 1000 * statistics.fmean(lat), "submissions_per_s": len(lat) / submit_s,
        "states": states, "versions_published": n_versions - 1,
        "seconds_until_settled": settle_s, "applied_per_minute": 60 * applied_state / settle_s,
        "every_accepted_in_ledger": sorted(queued) == sorted(accepted),
        "applied_twice": len(applied) - len(set(applied)),
        "applied_events_match_states": len(set(applied)) == applied_state,
    }


def demo(args: argparse.Namespace, folder: Path) -> dict:
    db = Database(default_url(folder))
    spec_dict = {"name": "demo", "data": {"name": "fashion-mnist", "train_subset": args.fmnist_subset, "test_subset": 2000},
                 "model": {"name": "cnn"}, "train": {"epochs": 2, "lr": 0.05, "batch_size": 128},
                 "owners": {"csv": str(folder / "owners.csv")},
                 "policy": {"method": "ft", "params": {"epoch_share": 0.2}, "heal_data": "replacements",
                            "heal_epochs": 0.3, "reserve": 300},
                 "batch": {"window_s": 0.0, "max_ids": 2000}, "monitor": {"threshold": 4.0, "draws": 200},
                 "limits": {"max_ids": 1000, "per_minute": 1000}}
    # the big owner holds every other training ID; the rest belong to "others"
    from unlearnkit.service.registration import carve_ids, load_data

    spec = spec_from_dict({**spec_dict, "owners": {"round_robin": 1}})
    train_ids = carve_ids(spec, load_data(spec))[2]
    lines = ["id,owner"] + [f"{i},{'big' if k % 2 == 0 else 'others'}" for k, i in enumerate(train_ids.tolist())]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "owners.csv").write_text("\n".join(lines) + "\n")
    reg = register(db, spec_from_dict(spec_dict), folder)
    worker = Worker(db, lease_s=60)
    mine = torch.tensor(owned(db, "demo")["big"])
    with db.read() as conn:
        row = conn.execute(sa.select(versions).where(versions.c.version == 0)).one()
    d = worker.load(db.engine.connect(), "demo")
    v0 = load_version(row.path, row.sha256, d.template)
    pool = d.dataset.train
    g = torch.Generator().manual_seed(1)
    picks: dict[str, torch.Tensor] = {}
    free = mine
    for name in ("random", "boundary", "class"):  # disjoint batches; random first, from all the owner holds
        if name == "random":
            ids = free[torch.randperm(len(free), generator=g)[: args.budget]]
        else:
            ids = create_adversary(name).select(v0.model, Samples(pool, free), args.budget, generator=g)
        picks[name] = torch.sort(ids).values
        free = free[~torch.isin(free, ids)]
    picks = {name: picks[name] for name in ("boundary", "class", "random")}  # submitted in this order
    from unlearnkit.service.submissions import submit

    results = {}
    for name, ids in picks.items():
        t = time.perf_counter()
        view = submit(db, reg.tokens["big"], {"ids": ids.tolist()})
        while worker.run_once():
            pass
        with db.read() as conn:
            r = conn.execute(sa.select(requests).where(requests.c.id == view["id"])).one()
            monitor = json.loads(conn.execute(sa.select(batches.c.monitor).where(batches.c.id == r.batch_id))
                                 .scalar_one() or "{}")
        results[name] = {"status": r.status, "reason": r.reason, "score": monitor.get("score"),
                         "seconds": time.perf_counter() - t}
    monitor = RequestMonitor(threshold=4.0, draws=200)
    t = time.perf_counter()
    features = monitor_features(v0.model, Samples(pool, mine))
    labels = pool.y[mine]
    expected = class_distribution(pool.y[v0.train_ids], labels)
    scores = [monitor.score_features(features, labels, torch.randperm(len(mine), generator=g)[: args.budget], expected,
                                     generator=g) for _ in range(args.random_batches)]
    held = sum(s.held for s in scores)
    return {"owner_holds": len(mine), "budget": args.budget, "batches": results,
            "random_batches": args.random_batches, "false_holds": held,
            "false_hold_rate": held / args.random_batches,
            "random_score_p50": statistics.median(s.score for s in scores),
            "random_score_max": max(s.score for s in scores), "scoring_seconds": time.perf_counter() - t}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--submissions", type=int, default=2000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--ids", type=int, default=2, help="IDs per request")
    p.add_argument("--rate", type=float, default=0.0,
                   help="total submissions per second, spread over the clients (default 0: as fast as they can)")
    p.add_argument("--worker-nice", type=int, help="the worker's --nice (default: its own default, 10)")
    p.add_argument("--apply-timeout", type=float, default=600)
    p.add_argument("--fmnist-subset", type=int, default=10000)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--random-batches", type=int, default=400)
    p.add_argument("--skip-demo", action="store_true")
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        if not args.skip_load:
            out["load"] = load_test(args, Path(tmp) / "load")
            print(json.dumps(out["load"], indent=1), flush=True)
        if not args.skip_demo:
            out["demo"] = demo(args, Path(tmp) / "demo")
            print(json.dumps(out["demo"], indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
