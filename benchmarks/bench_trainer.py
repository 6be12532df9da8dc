"""Trainer throughput: images/s of unlearnkit's train() against a bare PyTorch loop, as a ratio.

    python benchmarks/bench_trainer.py                 # throughput, W1 data + cnn, ~3 min
    python benchmarks/bench_trainer.py --accuracy      # also the full 10-epoch budget both ways, ~+7 min

Both loops train the same `cnn` on the same W1 training set (Fashion-MNIST minus the 10% validation
split) with the same SGD (lr 0.05, momentum 0.9, wd 5e-4, batch 128, cosine per step). The bare
loop is the fastest plain loop we could write: inputs normalised once into a float tensor, batches by
slicing a randperm, no progress bar, no checks. train() converts uint8 batches on the fly, checks
the loss for NaN, holds pruning masks and updates a progress bar. Rounds alternate (bare, ours) and
the ratio of medians is reported. Target: ratio ≥ 0.95.
With --accuracy, both train the full W1 budget (10 epochs) on D_r of seed 0's random-10% split
from the same initial weights, and the test accuracies are compared (target: within 1 point).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from unlearnkit.data import ForgetRequest, base_split, forget_split, load_dataset, select_forget_ids
from unlearnkit.models import create_model
from unlearnkit.training import TrainConfig, accuracy, predict_logits, train


def bare_loop(model, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, seed: int) -> float:
    """Plain PyTorch: returns seconds. ``x`` is already normalised float32."""
    g = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    total = math.ceil(config.epochs * steps_per_epoch)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    model.train()
    step = 0
    start = time.perf_counter()
    while step < total:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), config.batch_size):
            idx = perm[i : i + config.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step == total:
                break
    model.eval()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs-per-round", type=float, default=1.0)
    p.add_argument("--accuracy", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(2)
    ds = load_dataset("fashion-mnist")
    base, test = base_split(ds, seed=0)
    data = base.train
    x_all, y_all = data.inputs(), data.labels
    cfg = TrainConfig(epochs=args.epochs_per_round)
    make = lambda: create_model("cnn", num_classes=10, input_shape=ds.input_shape, seed=0)  # noqa: E731
    ours, bare = [], []
    for r in range(args.rounds):
        secs = bare_loop(make(), x_all, y_all, cfg, seed=r)
        bare.append(len(data) * cfg.epochs / secs)
        stats = train(make(), data, cfg, generator=torch.Generator().manual_seed(r))
        ours.append(stats.samples_per_second)
        print(f"round {r}: bare {bare[-1]:.0f} img/s, train() {ours[-1]:.0f} img/s", flush=True)
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"throughput: train() {statistics.median(ours):.0f} img/s, bare loop {statistics.median(bare):.0f} img/s, "
          f"ratio {ratio:.3f} (median of {args.rounds} alternating rounds of {cfg.epochs:g} epoch)")
    if args.accuracy:
        ids = select_forget_ids(base.train, ForgetRequest(), generator=torch.Generator().manual_seed(0))
        split = forget_split(base, test, ids, TrainConfig())
        full = TrainConfig()
        m_ours, m_bare = make(), make()
        s = train(m_ours, split.retain, full, generator=torch.Generator().manual_seed(0))
        b = bare_loop(m_bare, split.retain.inputs(), split.retain.labels, full, seed=0)
        ta_ours = accuracy(predict_logits(m_ours, test), test.labels)
        ta_bare = accuracy(predict_logits(m_bare, test), test.labels)
        print(f"full budget on D_r ({len(split.retain)} images, {full.epochs:g} epochs): test accuracy train() "
              f"{ta_ours:.2f}% in {s.seconds:.0f} s, bare loop {ta_bare:.2f}% in {b:.0f} s, "
              f"difference {ta_ours - ta_bare:+.2f} points")


if __name__ == "__main__":
    main()
