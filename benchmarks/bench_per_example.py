"""What a per-example audit costs: one method's audit against training its oracle family, one run.

    python benchmarks/bench_per_example.py                                  # W1 subset: 10,000 images, 3 epochs, N=4, ft
    python benchmarks/bench_per_example.py --n 8 --method ga                # another family size or method
    python benchmarks/bench_per_example.py data.train_subset=2000 train.epochs=1 --n 2   # a quick check

From an empty model cache, in one process and one torch thread, for seed 0 of the config: the
original is trained (not counted), then timed in turn: the oracle family (N retrains without D_f),
the family of originals (N − 1 more trainings; shared by every method, so paid once), and the audit
of one method (N unlearnings — in a run member 0 is the row's own model — plus every forward pass
and the U-LiRA / KLoM figures). Reported: each time, and the audit over the oracle family's
training, without and with the shared originals (target: at most 2×). Other processes on the
machine make the seconds noisy; the ratios are what matters.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from unlearnkit.experiments import load_config, load_experiment, prepare_seed
from unlearnkit.experiments.families import audit_row, oracle_family, original_family
from unlearnkit.methods import create_method


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--config", default="configs/w1-random.yaml")
    p.add_argument("--n", type=int, default=4, help="family size N")
    p.add_argument("--method", default="ft")
    p.add_argument("--examples", type=int, default=1000)
    args = p.parse_intermixed_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["UNLEARNKIT_CACHE"] = cache
        config = load_config(args.config, ["data.train_subset=10000", "train.epochs=3", "seeds=[0]",
                                           *args.overrides, f"cache_dir={cache}/models"])
        setup = prepare_seed(load_experiment(config), 0)
        _, t_oracles = timed(lambda: oracle_family(setup, args.n))
        _, t_originals = timed(lambda: original_family(setup, args.n))
        method = create_method(args.method, **config.params.get(args.method, {}))
        (figures, _), t_audit = timed(lambda: audit_row(setup, n=args.n, examples=args.examples, method=method))
    print(f"{config.data.name}, {len(setup.split.train)} trained on, {config.train.epochs:g} epochs, N={args.n}, "
          f"{args.method}, {args.examples} examples per set")
    print(f"oracle family   {t_oracles:8.1f} s  ({args.n} retrains)")
    print(f"originals       {t_originals:8.1f} s  ({args.n - 1} trainings, shared by every method)")
    print(f"audit of {args.method:<6} {t_audit:8.1f} s  ({args.n} unlearnings and the scoring; "
          f"U-LiRA AUC {figures['ulira.auc']:.1f}, KLoM D_f {figures['klom.forget.mean']:.3f})")
    print(f"audit / oracle family: {t_audit / t_oracles:.2f}x alone, "
          f"{(t_audit + t_originals) / t_oracles:.2f}x with the shared originals (target <= 2x)")


if __name__ == "__main__":
    main()
