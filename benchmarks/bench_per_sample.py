"""Per-sample gradients: vectorised (training/per_sample.py) against an autograd loop.

    python benchmarks/bench_per_sample.py                  # the ratio, W1 cnn on W1 data, ~1 min
    python benchmarks/bench_per_sample.py --methods        # also FF and IU time / retrain time, W1 seed 0, ~+6 min

Both compute the gradient of every sample's cross-entropy with respect to all weights of W1's `cnn`
(421,642 weights, fresh weights of seed 0; the cost does not depend on their values) for the same
`--samples` Fashion-MNIST training images, as one preallocated [N, P] matrix: the vectorised path
with `flat_per_sample_grads` in chunks of `--chunk` samples (layer inputs × output gradients,
training/layer_grads.py), the loop with one forward and backward pass per sample. Rounds alternate (loop, vectorised) and the ratio of median times is reported, after
checking that both give the same gradients. Target: ratio >= 5.
With --methods, the same process also trains the retrain oracle of W1's random-10% request for
seed 0 (configs/w1-random.yaml, not from the cache) and runs `ff` and `iu` with their defaults from
the cached (or freshly trained) original model, then prints each method's time over retrain's,
for random and class-wise (configs/w1-class.yaml) forgetting. Targets: FF <= 0.15, IU <= 0.10.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from unlearnkit.data import base_split, load_dataset
from unlearnkit.models import create_model
from unlearnkit.training.per_sample import flat_per_sample_grads

ROOT = Path(__file__).resolve().parent.parent


def looped_grads(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One forward and backward pass per sample, each gradient flattened into a row."""
    params = list(model.parameters())
    out = torch.empty(len(y), sum(p.numel() for p in params))
    for i in range(len(y)):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), params)
        out[i] = torch.cat([g.reshape(-1) for g in grads])
    return out


def vectorised_grads(model, x: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
    """``chunk`` samples at a time, into one preallocated matrix like the loop's."""
    out = torch.empty(len(y), sum(p.numel() for p in model.parameters()))
    for i in range(0, len(y), chunk):
        flat_per_sample_grads(model, x[i : i + chunk], y[i : i + chunk], out=out[i : i + chunk])
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def per_sample_ratio(samples: int, chunk: int, rounds: int) -> None:
    ds = load_dataset("fashion-mnist")
    base, _ = base_split(ds, seed=0)
    x, y = next(base.train.batches(samples))
    model = create_model("cnn", num_classes=10, input_shape=ds.input_shape, seed=0).eval()
    loop_t, vec_t = [], []
    for r in range(rounds):
        t_loop, g_loop = timed(lambda: looped_grads(model, x, y))
        t_vec, g_vec = timed(lambda: vectorised_grads(model, x, y, chunk))
        loop_t.append(t_loop)
        vec_t.append(t_vec)
        err = (g_loop - g_vec).abs().max().item() / g_loop.abs().max().item()
        if err > 1e-4:
            raise SystemExit(f"the two paths disagree: max relative difference {err:.2e}")
        print(f"round {r}: loop {samples / t_loop:.0f} samples/s, vectorised {samples / t_vec:.0f} samples/s "
              f"(max difference {err:.1e} of the largest entry)", flush=True)
    ratio = statistics.median(loop_t) / statistics.median(vec_t)
    print(f"per-sample gradients of {samples} W1 images, {x.shape[1:]} → {g_vec.shape[1]} weights: vectorised "
          f"{samples / statistics.median(vec_t):.0f} samples/s, loop {samples / statistics.median(loop_t):.0f} "
          f"samples/s, ratio {ratio:.2f} (median of {rounds} alternating rounds; target >= 5)")


def method_times() -> None:
    from unlearnkit.experiments.config import load_config
    from unlearnkit.experiments import load_experiment, prepare_seed
    from unlearnkit.methods import create_method

    retrain_seconds = None
    for name in ("w1-random", "w1-class"):
        setup = prepare_seed(load_experiment(load_config(ROOT / "configs" / f"{name}.yaml")), 0)
        if retrain_seconds is None:
            retrain_seconds = setup.run_method(create_method("retrain")).seconds
            print(f"retrain (W1 random, seed 0, trained now): {retrain_seconds:.1f} s", flush=True)
        for method in ("ff", "iu"):
            seconds = setup.run_method(create_method(method)).seconds
            print(f"{name} {method}: {seconds:.1f} s = {seconds / retrain_seconds:.3f} × retrain", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--methods", action="store_true", help="also FF and IU time over retrain time (W1 seed 0)")
    args = p.parse_args()
    per_sample_ratio(args.samples, args.chunk, args.rounds)
    if args.methods:
        method_times()


if __name__ == "__main__":
    main()
