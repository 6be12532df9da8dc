"""Unlearning time as a fraction of retraining time, every method measured in one run.

    python benchmarks/bench_methods.py --config configs/w1-random.yaml            # every method, ~15 min on W1
    python benchmarks/bench_methods.py --config configs/w1-class.yaml --methods ff,iu,dau

The original model of the seed comes from the model cache (trained once if missing, not timed).
Then, in this one process: a retrain from scratch on D_r (timed), every method (timed, from the
same original), and a second retrain at the end; the ratio is each method's wall time over the
mean of the two retrains, so a drift of the machine during the run shows as a gap between them.
Run it alone on the machine: a timing taken beside another job is worthless.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from unlearnkit.experiments import load_config, load_experiment, prepare_seed
from unlearnkit.methods import create_method, list_methods


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/w1-random.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", help="comma-separated (default: every registered method but retrain)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args()
    config = load_config(args.config, args.overrides)
    methods = args.methods.split(",") if args.methods else [m for m in list_methods() if m != "retrain"]
    setup = prepare_seed(load_experiment(config), args.seed)
    print(f"# {args.config} seed {args.seed}: |D_r| = {len(setup.split.retain)}, |D_f| = {len(setup.split.forget)}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}")

    def timed(name: str) -> float:
        method = create_method(name, **config.params.get(name, {}))
        start = time.perf_counter()
        method.unlearn(setup.original, setup.split, generator=setup.method_generator(name, 99))
        return time.perf_counter() - start

    first = timed("retrain")
    seconds = {m: timed(m) for m in methods}
    last = timed("retrain")
    retrain = (first + last) / 2
    print(f"\nretrain: {first:.1f} s then {last:.1f} s (drift {100 * (last - first) / first:+.1f}%)\n")
    print("| method | seconds | time / retrain |\n|---|---|---|")
    for m, s in seconds.items():
        print(f"| {m} | {s:.1f} | {s / retrain:.3f} |")


if __name__ == "__main__":
    main()
