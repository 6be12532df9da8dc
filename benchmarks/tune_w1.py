"""Grid search of one method's hyperparameters on W1, scored on the validation split only.

    python benchmarks/tune_w1.py --method l1-sparse --config configs/w1-class.yaml \\
        --grid "gamma=1e-4,3e-4 epoch_share=0.1,0.15" --out tuning/l1-sparse-class.jsonl [key=value ...]

For seed 0 (``--seed``) it loads the cached original and retrain oracle (training them first if they
are not cached: ~4 min each on one core), runs the method for every point of the grid (the product
of the listed values; other hyperparameters at their defaults) and scores it against the oracle
with ``validation_audit`` and ``avg_disparity(keys=VALIDATION_HEADLINE)``: UA, MIA-Efficacy with
D_v as non-members, RA and VA. D_test is never looked at. One JSON line per point is appended to
``--out`` (points already there are skipped), with the disparity, the four figures and the wall
time of the method (informative only unless the machine is otherwise idle).
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from unlearnkit.errors import TrainingError
from unlearnkit.experiments.config import load_config
from unlearnkit.experiments import load_experiment, prepare_seed
from unlearnkit.methods import create_method, method_params
from unlearnkit.metrics.audit import VALIDATION_HEADLINE, avg_disparity, validation_audit


def parse_grid(text: str) -> list[dict]:
    """``"a=1,2 b=x"`` → ``[{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]`` (numbers parsed as JSON)."""
    axes = []
    for part in text.split():
        key, _, values = part.partition("=")
        axes.append([(key, json.loads(v) if v[:1] in "-.0123456789" else v) for v in values.split(",")])
    return [dict(point) for point in itertools.product(*axes)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--grid", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. cache_dir=/tmp/models")
    args = p.parse_args()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.dumps(json.loads(line)["params"], sort_keys=True) for line in out.open()} if out.exists() else set()
    points = [create_method(args.method, **point) for point in parse_grid(args.grid)]
    points = [m for m in points if json.dumps(method_params(m), sort_keys=True) not in done]
    if not points:
        return
    setup = prepare_seed(load_experiment(load_config(args.config, args.overrides)), args.seed)
    oracle, oracle_seconds, _ = setup.oracle()
    reference = validation_audit(oracle, setup.split)
    print(f"oracle ({oracle_seconds:.0f} s): " + " ".join(f"{k} {reference[k]:.2f}" for k in VALIDATION_HEADLINE))
    original = validation_audit(setup.original, setup.split)
    print(f"original: disparity {avg_disparity(original, reference, keys=VALIDATION_HEADLINE):.2f} "
          + " ".join(f"{k} {original[k]:.2f}" for k in VALIDATION_HEADLINE))
    for method in points:
        start = time.perf_counter()
        try:
            model = setup.run_method(method).model
            seconds = time.perf_counter() - start
            figures = validation_audit(model, setup.split)
            disparity = avg_disparity(figures, reference, keys=VALIDATION_HEADLINE)
        except TrainingError as e:
            seconds, figures, disparity = time.perf_counter() - start, {}, None
            print(f"{method_params(method)}: failed: {e}")
        row = {"method": args.method, "config": args.config, "seed": args.seed, "params": method_params(method),
               "disparity": disparity, "figures": figures, "seconds": seconds,
               "time_vs_retrain": seconds / oracle_seconds}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if disparity is not None:
            print(f"{method_params(method)}: disparity {disparity:.2f} "
                  + " ".join(f"{k} {figures[k]:.2f}" for k in VALIDATION_HEADLINE) + f" ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
