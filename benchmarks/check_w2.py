"""Does a workload memorise? Train (or load from the cache) its original model and print accuracies.

    python benchmarks/check_w2.py                                     # W2 seed 0: ~7 min on one free core
    python benchmarks/check_w2.py --seeds 0,1,2 --oracle              # also each seed's retrain oracle
    python benchmarks/check_w2.py --config configs/w1-random-sparse.yaml --oracle   # a sparse original and oracle

Goes through the recipe (``prepare_seed``, ``SeedSetup.oracle``), so every model it trains lands in
the model cache and a later ``unlearnkit run`` of the same config loads it instead of training it.
Prints, per seed and model: accuracy on the training set (D_r ∪ D_f), on D_v and on D_test, the
train–test gap, the share of pruned weights and the training seconds. W2's target: train ≥ 99%.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("UNLEARNKIT_PROGRESS", "0")

from unlearnkit.attacks.base import outputs  # noqa: E402
from unlearnkit.experiments import load_config, load_experiment, prepare_seed  # noqa: E402
from unlearnkit.sparsity import sparsity_of  # noqa: E402
from unlearnkit.training import accuracy  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/w2-random.yaml")
    p.add_argument("--seeds", default="0")
    p.add_argument("--oracle", action="store_true", help="also build and check the retrain oracle")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args()
    config = load_config(args.config, args.overrides)
    experiment = load_experiment(config)
    print("| seed | model | train acc | val acc | test acc | train − test | sparsity | seconds | cached |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        setup = prepare_seed(experiment, seed)
        models = [("original", setup.original, setup.original_seconds, setup.original_cached)]
        if args.oracle:
            models.append(("retrain oracle", *setup.oracle()))
        for name, model, seconds, cached in models:
            acc = {k: accuracy(*outputs(model, s)) for k, s in
                   (("train", setup.split.train), ("val", setup.split.val), ("test", setup.split.test))}
            print(f"| {seed} | {name} | {acc['train']:.2f} | {acc['val']:.2f} | {acc['test']:.2f} | "
                  f"{acc['train'] - acc['test']:.2f} | {sparsity_of(model):.3f} | {seconds:.0f} | {cached} |", flush=True)
    print("\nThe retrain oracle is trained on D_r only: its 'train acc' includes D_f, which it never saw.")


if __name__ == "__main__":
    main()
