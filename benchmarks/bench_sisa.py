"""SISA on W1: what honouring deletion requests costs, and what sharding costs in accuracy.

    python benchmarks/bench_sisa.py                                  # W1 seed 0, S=5, R=4: ~80 min on 2 cores
    python benchmarks/bench_sisa.py --sequential-limit 20            # time 20 one-by-one requests per pattern: ~35 min
    python benchmarks/bench_sisa.py --backend ray                    # shards as Ray tasks (pip install 'unlearnkit[ray]')
    python benchmarks/bench_sisa.py data.train_subset=3000 train.epochs=2 --requests 1,10   # a check in a minute

On the training set D of the config's seed (W1: configs/w1-random.yaml, 54,000 Fashion-MNIST
images, cnn, 10 epochs): trains one single model (timed: a single-model retrain) and a SISA ensemble
of S shards × R slices (timed: a full SISA retrain), compares their test accuracy (mean softmax and
majority vote; and one shard model alone), then for n = 1, 10, 100 random training IDs unlearns them
one request at a time and as one batch, each pattern on a fresh copy of the trained store.
Costs are reported as samples processed by train() and wall time, each over a full SISA retrain
and over a single-model retrain of the remaining data. Sample counts are exact; with
``--sequential-limit K``, only the first K requests of a one-by-one pattern are run and timed, the
rest are counted exactly from the bookkeeping and timed by extrapolation (marked "est.").
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from unlearnkit.backends import create_backend
from unlearnkit.data.splits import base_split
from unlearnkit.experiments import load_config, load_experiment
from unlearnkit.utils.seeding import derived_generator as generator
from unlearnkit.sisa import SisaConfig, SisaStore, train_sisa
from unlearnkit.sisa.plan import first_affected, retrain_samples, train_samples
from unlearnkit.training import accuracy, predict_logits, train


def pattern(trained: Path, work: Path, ids: torch.Tensor, *, one_by_one: bool, limit: int | None, pool, model,
            backend) -> dict:
    """Unlearn ``ids`` on a copy of the store; return samples, seconds, shards retrained."""
    shutil.copytree(trained, work)
    store = SisaStore.open(work)
    budget = store.config.stage_budget
    requests = [ids[i : i + 1] for i in range(len(ids))] if one_by_one else [ids]
    run = requests if limit is None else requests[:limit]
    samples, seconds, shards = 0, 0.0, 0
    for request in run:
        begin = time.perf_counter()
        report = store.unlearn(request, pool=pool, template=model, backend=backend).report
        seconds += time.perf_counter() - begin
        samples += report.samples
        shards += len(report.retrained)
    counted, plan = 0, store.plan
    for request in requests[len(run):]:  # counted from the bookkeeping, not run
        start = first_affected(plan, request)
        plan = plan.without(request)
        counted += retrain_samples(plan, start, budget.epochs, budget.batch_size)
        shards += len(start)
    estimated = counted > 0
    if estimated:
        seconds += seconds / samples * counted if samples else 0.0
    shutil.rmtree(work)
    return {"requests": len(requests), "run": len(run), "samples": samples + counted, "seconds": seconds,
            "shards_retrained": shards, "estimated": estimated}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.train_subset=3000")
    p.add_argument("--config", default="configs/w1-random.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shards", type=int, default=5)
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--requests", default="1,10,100", help="comma-separated request counts")
    p.add_argument("--sequential-limit", type=int, default=None,
                   help="run at most this many one-by-one requests per pattern; count and extrapolate the rest")
    p.add_argument("--backend", default="local", help="local or ray (where the shard jobs run)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_intermixed_args()

    config = load_config(args.config, args.overrides)
    experiment = load_experiment(config)
    base, test = base_split(experiment.dataset, val_fraction=config.data.val_fraction,
                            train_subset=config.data.train_subset, test_subset=config.data.test_subset, seed=args.seed)
    data, budget = base.train, config.train
    backend = create_backend(args.backend)
    work = Path(tempfile.mkdtemp(prefix="bench-sisa-"))
    try:
        print(f"D: {len(data)} samples; single model: {budget.epochs:g} epochs; SISA: {args.shards} shards × "
              f"{args.slices} slices, {2 * budget.epochs / (args.slices + 1):g} epochs per slice stage", flush=True)
        single = experiment.make_model(args.seed)
        stats = train(single, data, budget, generator=generator(args.seed, "original"), desc="single")
        single_seconds = stats.seconds
        print(f"single model: {stats.samples} samples in {single_seconds:.1f} s", flush=True)

        sisa = SisaConfig(shards=args.shards, slices=args.slices, seed=args.seed, budget=budget)
        begin = time.perf_counter()
        store = train_sisa(experiment.make_model(args.seed), data, sisa, work / "trained", backend=backend)
        sisa_seconds = time.perf_counter() - begin
        sisa_samples = store.manifest["training"]["samples"]
        print(f"SISA training: {sisa_samples} samples in {sisa_seconds:.1f} s", flush=True)

        template = experiment.make_model(args.seed)
        ta = lambda m: accuracy(predict_logits(m, test), test.labels)  # noqa: E731
        soft = store.ensemble(template, aggregation="softmax")
        accuracy_rows = {"single model": ta(single), "SISA, mean softmax": ta(soft),
                         "SISA, majority vote": ta(store.ensemble(template, aggregation="vote")),
                         "one shard model alone (mean over shards)":
                             sum(ta(m) for m in soft.members) / len(soft.members)}

        g = torch.Generator().manual_seed(args.seed)
        counts = [int(n) for n in args.requests.split(",")]
        draw = data.ids[torch.randperm(len(data), generator=g)[: max(counts)]]
        results = []
        for n in counts:
            ids = draw[:n]
            single_samples = train_samples(len(data) - n, budget.epochs, budget.batch_size)
            single_time = single_seconds * single_samples / stats.samples
            for one_by_one in (True, False):
                if n == 1 and not one_by_one:
                    continue  # one request is both patterns
                r = pattern(work / "trained", work / "copy", ids, one_by_one=one_by_one, limit=args.sequential_limit,
                            pool=data.pool, model=template, backend=backend)
                r.update(n=n, pattern="one by one" if one_by_one else "one batch",
                         vs_sisa_samples=r["samples"] / sisa_samples, vs_single_samples=r["samples"] / single_samples,
                         vs_sisa_time=r["seconds"] / sisa_seconds, vs_single_time=r["seconds"] / single_time)
                results.append(r)
                print(f"{n} deletion(s), {r['pattern']}: {r['samples']} samples, {r['seconds']:.1f} s"
                      f"{' (est.)' if r['estimated'] else ''}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        backend.close()

    print(f"\n### SISA unlearning cost ({args.shards} shards × {args.slices} slices, {len(data)} training samples)\n")
    print("| deletions | arriving | shards retrained | samples / full SISA retrain | samples / single retrain "
          "| time / full SISA retrain | time / single retrain | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        est = " (est.)" if r["estimated"] else ""
        print(f"| {r['n']} | {r['pattern']} | {r['shards_retrained']} | {r['vs_sisa_samples']:.3f} | "
              f"{r['vs_single_samples']:.3f} | {r['vs_sisa_time']:.3f}{est} | {r['vs_single_time']:.3f}{est} | "
              f"{r['seconds']:.1f}{est} |")
    print(f"\nFull SISA retrain: {sisa_samples} samples, {sisa_seconds:.1f} s; single-model retrain: "
          f"{stats.samples} samples, {single_seconds:.1f} s.\n")
    print("### The accuracy price of sharding (test accuracy, %)\n")
    print("| model | TA |\n|---|---|")
    for name, value in accuracy_rows.items():
        print(f"| {name} | {value:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "overrides": args.overrides, "seed": args.seed,
                                               "shards": args.shards, "slices": args.slices,
                                               "sisa_training": {"samples": sisa_samples, "seconds": sisa_seconds},
                                               "single_training": {"samples": stats.samples,
                                                                   "seconds": single_seconds},
                                               "accuracy": accuracy_rows, "unlearning": results}, indent=2))


if __name__ == "__main__":
    main()
