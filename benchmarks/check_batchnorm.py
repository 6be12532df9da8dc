"""Does a method leave a BatchNorm network's running statistics stale? Unlearn, then compare.

    python benchmarks/check_batchnorm.py                                   # W2 seed 0, dau
    python benchmarks/check_batchnorm.py --methods dau,ft,rl params.dau.beta=0

For each method: TA (D_test) and UA (100 − acc(D_f)) of the model as the method returns it, then
of the same weights after recomputing every BatchNorm layer's running statistics on D_r (a plain
average over one pass, in train mode, no gradient). A large gap means the returned model's
statistics no longer describe its weights, which is what DAU did on W2 before its game moved to batch
statistics (docs/results.md). This is a diagnostic, not a tuning tool: it reads
the test set, so never pick a hyperparameter from it (``benchmarks/tune_dau.py`` uses D_v only).
The original model comes from the cache (or is trained: ~9 min on one core for W2).
"""
from __future__ import annotations

import argparse
import copy
import os
import time

os.environ.setdefault("UNLEARNKIT_PROGRESS", "0")

from torch import nn  # noqa: E402

from unlearnkit.attacks.base import outputs  # noqa: E402
from unlearnkit.errors import TrainingError  # noqa: E402
from unlearnkit.experiments import load_config, load_experiment, prepare_seed  # noqa: E402
from unlearnkit.methods import create_method  # noqa: E402
from unlearnkit.training import accuracy  # noqa: E402
from unlearnkit.training.batchnorm import recompute_running_statistics  # noqa: E402


def recalibrated(model: nn.Module, samples) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are the average over ``samples``."""
    m = copy.deepcopy(model)
    recompute_running_statistics(m, samples)
    return m


def row(model: nn.Module, split) -> str:
    ta, fa = (accuracy(*outputs(model, s)) for s in (split.test, split.forget))
    return f"{ta:.2f} | {100 - fa:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/w2-random.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default="dau")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args()
    config = load_config(args.config, args.overrides)
    setup = prepare_seed(load_experiment(config), args.seed)
    split = setup.split
    print("| method | TA | UA | TA, statistics recomputed on D_r | UA, recomputed | seconds |")
    print("|---|---|---|---|---|---|")
    print(f"| original | {row(setup.original, split)} | "
          f"{row(recalibrated(setup.original, split.retain), split)} | — |", flush=True)
    for name in args.methods.split(","):
        method = create_method(name, **config.params.get(name, {}))
        start = time.perf_counter()
        try:
            model = method.unlearn(setup.original, split, generator=setup.method_generator(name))
        except TrainingError as e:
            print(f"| {name} | failed: {e} |||| |", flush=True)
            continue
        secs = time.perf_counter() - start
        print(f"| {name} | {row(model, split)} | {row(recalibrated(model, split.retain), split)} | "
              f"{secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
