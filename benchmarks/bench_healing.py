"""Healing cost on W1: twin-index build time for the reserve pool, and healing time / retrain time.

    python benchmarks/bench_healing.py                              # W1 (configs/w1-heal.yaml), seed 0, ~12 min
    python benchmarks/bench_healing.py data.train_subset=3000 data.test_subset=500 reserve=500 train.epochs=2
                                                                    # a small setting, ~1 min: checks the script

Setting: the data split, original model and Gold Standard of ``unlearnkit heal`` (the original
comes from the model cache when ``unlearnkit damage``/``heal`` already trained it; otherwise it is
trained first, ~4 min, not timed). Measured in one run, in this order:
1. twin-index build for every similarity (euclidean on raw pixels, cosine and mahalanobis on the
   original model's features): fitting the similarity, embedding the 45k training samples and the
   10k pool, and the chunked nearest-neighbour search (8 twins per sample, same class);
2. one request of a 10% ``--strategy`` budget (default random) served from each index;
3. the Gold Standard retrained from scratch on D_r (the full original budget, 10 epochs);
4. healing the Gold Standard's model with D_r + twins (mahalanobis) for half the original epochs and
   for one epoch, and with D_r alone for half the epochs; each as a fraction of step 3's time.
Run alone on the machine (``taskset -c 0`` pins one core); quote the ratios.
"""
from __future__ import annotations

import argparse
import time

import torch

from unlearnkit.experiments import AdversarialConfig, load, load_experiment
from unlearnkit.experiments.setup import prepare_adversarial_seed
from unlearnkit.healing import SIMILARITIES, Heal, TwinIndex, fit_similarity
from unlearnkit.methods import create_method


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--config", default="configs/w1-heal.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", default="random")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = load(AdversarialConfig, args.config, args.overrides)
    experiment = load_experiment(config)
    seed = prepare_adversarial_seed(experiment, args.seed)
    train, pool = seed.base.train, seed.pool
    print(f"training set {len(train)}, reserve pool {len(pool)}, {args.threads} thread(s)", flush=True)

    indexes = {}
    for sim in SIMILARITIES:
        start = time.perf_counter()
        indexes[sim] = TwinIndex(train, pool, fit_similarity(sim, model=seed.original, fit_on=pool),
                                 candidates=config.heal.candidates, same_class=config.heal.same_class)
        print(f"twin index ({sim}): built in {time.perf_counter() - start:.2f} s", flush=True)
    ids = seed.request(args.strategy, config.heal.budget)
    for sim, index in indexes.items():
        start = time.perf_counter()
        handed = index.copy().request(ids).handed_out
        print(f"request of {len(ids)} ({args.strategy}) from the {sim} index: {time.perf_counter() - start:.3f} s, "
              f"{len(handed)} twins handed out", flush=True)

    setup = seed.setup(ids)
    start = time.perf_counter()
    gold = create_method("retrain").unlearn(seed.original, setup.split, generator=torch.Generator().manual_seed(0))
    retrain = time.perf_counter() - start
    print(f"retrain (Gold Standard, {config.train.epochs:g} epochs on {len(setup.split.retain)}): {retrain:.1f} s", flush=True)
    for name, heal, data in [("D_r + twins, half the epochs", Heal(data="replacements", lr_share=config.heal.lr_share), "twins"),
                             ("D_r + twins, 1 epoch", Heal(data="replacements", epochs=1, lr_share=config.heal.lr_share), "twins"),
                             ("D_r alone, half the epochs", Heal(data="remaining", lr_share=config.heal.lr_share), None)]:
        reserve = indexes["mahalanobis"].copy() if data else None
        start = time.perf_counter()
        heal.heal(gold, setup.split, reserve, generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - start
        print(f"heal with {name}: {seconds:.1f} s = {seconds / retrain:.3f} × retrain", flush=True)


if __name__ == "__main__":
    main()
