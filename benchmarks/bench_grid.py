"""A grid of runs through the local backend and through Ray on this machine: same records? how fast?

    python benchmarks/bench_grid.py                      # 2 scenarios × 3 seeds × 7 rows = 42 runs, ~25 min on 2 cores
    python benchmarks/bench_grid.py --local-threads 2    # also time a local run with 2 torch threads
    python benchmarks/bench_grid.py data.train_subset=1000 train.epochs=1 --seeds 0,1 --methods ft   # a quick check

The grid: configs/w1-random.yaml and configs/w1-class.yaml on a stratified 10,000-image subset of
Fashion-MNIST, 3 epochs, seeds 0–2, rows original / retrain / noise floor / ft / ga / rl / sisa
(SISA's shards become nested Ray tasks). Each backend starts from an empty model cache and writes
to its own folder. The local run uses one torch thread, like each Ray task, so that the records
must agree bit for bit (every field but timings, cache hits and folders); Ray gets a local cluster
with ``--num-cpus`` CPUs (default: all). Reported: wall time of each (Ray's with and without its
start-up), the ratio ray / local, and whether the records agree.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from unlearnkit.backends import RayBackend
from unlearnkit.experiments import load_config, run_experiment

VOLATILE = {"seconds", "time_vs_retrain", "created", "from_cache", "out_dir", "cost"}


def comparable(records: list[dict]) -> dict[str, dict]:
    return {r["key"]: {**{k: v for k, v in r.items() if k not in VOLATILE},
                       "config": {k: v for k, v in r["config"].items() if k not in ("out_dir", "cache_dir")}}
            for r in records}


def run_grid(configs: list[str], overrides: list[str], root: Path, backend=None) -> tuple[list[dict], float]:
    os.environ["UNLEARNKIT_CACHE"] = str(root / "cache")  # SISA stores; Ray workers inherit it at start-up
    begin = time.perf_counter()
    records = []
    for path in configs:
        name = Path(path).stem
        config = load_config(path, overrides + [f"out_dir={root / name}", f"cache_dir={root / 'cache' / 'models'}"])
        records += run_experiment(config, backend=backend)
    return records, time.perf_counter() - begin


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--configs", default="configs/w1-random.yaml,configs/w1-class.yaml")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="ft,ga,rl,sisa")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    p.add_argument("--local-threads", type=int, default=None, help="also time a local run with this many threads")
    args = p.parse_intermixed_args()
    overrides = ["data.train_subset=10000", "train.epochs=3", f"seeds=[{args.seeds}]", f"methods=[{args.methods}]",
                 *args.overrides]
    configs = args.configs.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    try:
        torch.set_num_threads(1)
        local, local_seconds = run_grid(configs, overrides, work / "local")
        print(f"local (1 thread): {len(local)} runs in {local_seconds:.1f} s", flush=True)

        os.environ["UNLEARNKIT_CACHE"] = str(work / "ray" / "cache")
        begin = time.perf_counter()
        backend = RayBackend(num_cpus=args.num_cpus)
        backend.start()
        startup = time.perf_counter() - begin
        try:
            remote, ray_seconds = run_grid(configs, overrides, work / "ray", backend)
        finally:
            backend.close()
        print(f"ray: {len(remote)} runs in {ray_seconds:.1f} s (+ {startup:.1f} s start-up)", flush=True)

        a, b = comparable(local), comparable(remote)
        differ = sorted({f for k in a for f in a[k] if k in b and a[k][f] != b[k][f]})
        same = a.keys() == b.keys() and not differ
        extra = ""
        if args.local_threads:
            torch.set_num_threads(args.local_threads)
            other, other_seconds = run_grid(configs, overrides, work / f"local{args.local_threads}")
            c = comparable(other)
            equal = c.keys() == a.keys() and all(c[k] == a[k] for k in a)
            extra = (f"\n| local, {args.local_threads} threads | {other_seconds:.1f} | "
                     f"{'same records' if equal else 'records differ in the last digits (thread count)'} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n### A grid of {len(local)} runs: Ray vs local on this machine\n")
    print("| backend | wall time (s) | records |\n|---|---|---|")
    print(f"| local, 1 thread | {local_seconds:.1f} | reference |")
    print(f"| ray, 1 thread per task | {ray_seconds:.1f} (+ {startup:.1f} start-up) | "
          f"{'the same' if same else 'DIFFERENT: ' + ', '.join(differ) or 'different keys'} |{extra}")
    print(f"\nratio ray / local: {ray_seconds / local_seconds:.3f} ({(ray_seconds + startup) / local_seconds:.3f} "
          f"with Ray's start-up)")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
