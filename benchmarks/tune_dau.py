"""Tune DAU on a workload's *validation* split (never the test set) and compare with other methods.

    python benchmarks/tune_dau.py --config configs/w1-class.yaml                        # defaults of dau, dau-nobt
    python benchmarks/tune_dau.py --config configs/w1-random.yaml --methods dau,ft,ga,rl,neggrad+
    python benchmarks/tune_dau.py --config configs/w1-class.yaml --grid '{"alpha": [0.5, 1], "beta": [0, 0.01]}'
    python benchmarks/tune_dau.py --config configs/w1-class.yaml --grid '[{"_method": "dau", "beta": 0.001}, {}]'

Seed 0's original model and retrain oracle are loaded from the cache (or trained: ~4 + ~5 min on
one core). DAU trains against D_v, so to keep the tuning figure honest D_v is cut in two seeded
halves: every method receives the split with the first half as D_v, and ``validation_audit`` (UA,
MIA-Efficacy(val), RA, VA) measures the method and the retrain oracle with the second half. The
score is ``avg_disparity(keys=VALIDATION_HEADLINE)``; lower is closer to retraining. Song & Mittal's
four metric attacks (fitted on D_r vs half of the held-out D_v half, tested on D_f vs the rest) and,
with ``--samia``, the SAMIA attack are printed as balanced accuracy next to the oracle's, to check
that DAU's defence carries over to attackers it never trained against. ``--out`` appends JSON lines.
``secs`` is wall time, ``cpu`` the process's CPU time (one thread: what a dedicated core would
take); both informative only — run time claims come from ``unlearnkit run`` on an idle core.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time

import torch

from unlearnkit.attacks.base import outputs
from unlearnkit.attacks.samia import samia_audit
from unlearnkit.errors import TrainingError
from unlearnkit.experiments import load_config
from unlearnkit.experiments import load_experiment, prepare_seed
from unlearnkit.methods import create_method, method_params
from unlearnkit.metrics import VALIDATION_HEADLINE, avg_disparity, metric_attack_scores, validation_audit

ATTACKS = ("correctness", "confidence", "entropy", "m_entropy")


def halves(split, seed: int):
    """(split given to the method, split used to audit): D_v cut in two seeded halves."""
    perm = torch.randperm(len(split.val), generator=torch.Generator().manual_seed(seed + 7919))
    half = len(perm) // 2
    return (dataclasses.replace(split, val=split.val.take(perm[:half])),
            dataclasses.replace(split, val=split.val.take(perm[half:])))


def measure(model, audit_split, samia: bool) -> dict[str, float]:
    m = validation_audit(model, audit_split)
    outs = {k: outputs(model, getattr(audit_split, k)) for k in ("retain", "forget", "val")}
    scores = metric_attack_scores(outs["retain"], outs["val"], outs["forget"])
    m.update({a: scores[f"attack.{a}.bacc"] for a in ATTACKS})
    if samia:
        m["samia"] = samia_audit(model, dataclasses.replace(audit_split, test=audit_split.val))["attack.samia.bacc"]
    return m


def grid(spec: str | None) -> list[dict]:
    if not spec:
        return [{}]
    axes = json.loads(spec)
    if isinstance(axes, list):
        return axes
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default="dau,dau-nobt", help="comma-separated; the grid applies to dau*")
    p.add_argument("--grid", help='JSON: {"param": [values], ...} (product) or a list of param dicts '
                                  '(an entry with "_method" applies to that method only)')
    p.add_argument("--samia", action="store_true", help="also the SAMIA attack's balanced accuracy (slower)")
    p.add_argument("--out", help="append one JSON line per run to this file")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args()

    setup = prepare_seed(load_experiment(load_config(args.config, args.overrides)), args.seed)
    oracle, oracle_seconds, _ = setup.oracle()
    given, audited = halves(setup.split, args.seed)
    cols = list(VALIDATION_HEADLINE) + list(ATTACKS) + (["samia"] if args.samia else [])
    print(f"{'method':<10} {'params':<60} " + " ".join(f"{c[:12]:>12}" for c in cols) + "   disp   secs    cpu")
    ref = measure(oracle, audited, args.samia)
    for label, model in (("retrain", oracle), ("original", setup.original)):
        m = ref if label == "retrain" else measure(model, audited, args.samia)
        d = avg_disparity(m, ref, keys=VALIDATION_HEADLINE)
        secs = oracle_seconds if label == "retrain" else 0.0
        print(f"{label:<10} {'':<60} " + " ".join(f"{m[c]:12.2f}" for c in cols) + f" {d:6.2f} {secs:6.1f}", flush=True)
    for name in args.methods.split(","):
        for params in (grid(args.grid) if name.startswith("dau") else [{}]):
            if params.get("_method", name) != name:  # a list entry may name its method
                continue
            params = {k: v for k, v in params.items() if k != "_method"}
            try:
                method = create_method(name, **params)
            except ValueError as e:  # e.g. a beta for dau-nobt
                print(f"{name:<10} {json.dumps(params):<60} skipped: {e}", flush=True)
                continue
            start, cpu = time.perf_counter(), time.process_time()
            try:
                model = method.unlearn(setup.original, given, generator=setup.method_generator(name))
            except TrainingError as e:  # e.g. GA diverging class-wise: report it and go on
                print(f"{name:<10} {json.dumps(params):<60} failed: {e}", flush=True)
                continue
            secs, cpu = time.perf_counter() - start, time.process_time() - cpu
            m = measure(model, audited, args.samia)
            d = avg_disparity(m, ref, keys=VALIDATION_HEADLINE)
            print(f"{name:<10} {json.dumps(params):<60} " + " ".join(f"{m[c]:12.2f}" for c in cols)
                  + f" {d:6.2f} {secs:6.1f} {cpu:6.1f}", flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps({"config": args.config, "seed": args.seed, "method": name, "params": params,
                                        "all_params": method_params(method), "metrics": m, "disparity": d,
                                        "seconds": secs, "cpu_seconds": cpu, "reference": ref}) + "\n")


if __name__ == "__main__":
    main()
