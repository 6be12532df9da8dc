"""``unlearnkit tune`` end to end on tiny data: table, records, skipping, bad input, and the proof
that it never reads the test set."""
from __future__ import annotations

import json

import numpy as np
import pytest

import unlearnkit.experiments.experiment as recipe
from unlearnkit.cli import main
from unlearnkit.data import load_dataset
from unlearnkit.data.pool import Pool, Samples
from unlearnkit.metrics.audit import VALIDATION_HEADLINE, avg_disparity

from .test_cli import TINY


def tune_records(out):
    return [json.loads(line) for line in (out / "tune" / "records.jsonl").read_text().splitlines()]


def test_tune_prints_the_table_and_the_best_value_and_skips_what_is_recorded(tmp_path, capsys):
    out = tmp_path / "exp"
    # a run first: tune must score against the very oracle the run recorded (shared through the cache)
    assert main(["run", *TINY, "--seeds", "0", "--methods", "ft", "noise_floor=false", "--out", str(out)]) == 0
    run_oracle = next(json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()
                      if json.loads(line)["row"] == "retrain")
    capsys.readouterr()
    # guard=0: at lr_share 0.5 FT collapses this tiny task (tests/test_guard.py); here the grid's bookkeeping is tested
    assert main(["tune", *TINY, "--method", "ft", "lr_share=0.05,0.5", "guard=0", "--seeds", "0,1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| lr_share | UA | MIA-Efficacy(val) | RA | VA | Avg. Disparity (val) | Time (s) | seeds |" in printed
    assert "| Retrain (oracle) |" in printed and "| 0.05 |" in printed and "| 0.5 |" in printed
    recs = tune_records(out)
    assert len(recs) == 4 and {r["seed"] for r in recs} == {0, 1}
    for r in recs:
        assert r["status"] == "ok" and set(r["metrics"]) == set(VALIDATION_HEADLINE)
        assert r["disparity"] == pytest.approx(avg_disparity(r["metrics"], r["reference"], keys=VALIDATION_HEADLINE))
        assert "TA" not in r["metrics"] and "TA" not in r["reference"]
    seed0 = next(r for r in recs if r["seed"] == 0)
    assert seed0["reference_seconds"] == run_oracle["seconds"]  # the cached oracle of the run
    mean = {v: np.mean([r["disparity"] for r in recs if r["point"]["lr_share"] == v]) for v in (0.05, 0.5)}
    assert f"best: lr_share={min(mean, key=mean.get):g} " in printed
    # a second grid: the value already recorded is skipped, only the new one runs
    assert main(["tune", *TINY, "--method", "ft", "lr_share=0.5,0.2", "guard=0", "--seeds", "0,1", "--out", str(out)]) == 0
    new = tune_records(out)[4:]
    assert len(new) == 2 and {r["point"]["lr_share"] for r in new} == {0.2}
    # two hyperparameters: their product
    capsys.readouterr()
    assert main(["tune", *TINY, "--method", "ft", "lr_share=0.5", "epoch_share=0.2,0.4", "guard=0", "--seeds", "0",
                 "--out", str(out)]) == 0
    assert "| lr_share | epoch_share | UA |" in capsys.readouterr().out
    assert len(tune_records(out)) == 7  # (0.5, 0.2) is the default epoch_share: recorded already


@pytest.mark.parametrize("args, message", [
    (["--method", "nope", "a=1"], "unknown method 'nope'"),
    (["--method", "ft", "alpah=1,2"], "method 'ft' has no hyperparameter 'alpah'; valid: ['epoch_share', 'lr_share', 'class_lr_share', 'trace_as_absent']"),
    (["--method", "ft", "lr_share=0.1,-1"], "ft.lr_share must be > 0, got -1"),
    (["--method", "ft", "lr_share=0.1,abc"], "ft.lr_share must be"),
    (["--method", "ft", "lr_share=0.1,"], "empty value"),
    (["--method", "ft", "lr_share=0.1,0.1"], "lists a value twice"),
    (["--method", "ft"], "name at least one hyperparameter of 'ft'"),
    (["--method", "ft", "lr_share=0.1", "train.epochs=-1"], "train.epochs must be > 0"),
    (["--method", "ft", "lr_share=0.1,0.3", "--scenario", "class"],
     "ft.lr_share does not act on class-wise requests: every point would give the same model; tune class_lr_share instead"),
    (["--method", "iu", "class_alpha=1,2"], "iu.class_alpha does not act on random or explicit requests"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "bad"
    assert main(["tune", *TINY, "--seeds", "0", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def poisoned_test_set(monkeypatch):
    """Every read of a loaded dataset's test samples (inputs, labels or batches) fails the test."""
    poisoned: set[int] = set()
    real_load = recipe.load_dataset

    def load(*args, **kwargs):
        ds = real_load(*args, **kwargs)
        poisoned.add(id(ds.test))
        return ds

    def guard(pool):
        if id(pool) in poisoned:
            raise AssertionError("the test set was read")

    real_inputs, real_labels, real_batches = Pool.inputs, Samples.labels.fget, Samples.batches
    monkeypatch.setattr(recipe, "load_dataset", load)
    monkeypatch.setattr(Pool, "inputs", lambda self, ids: (guard(self), real_inputs(self, ids))[1])
    monkeypatch.setattr(Samples, "labels", property(lambda self: (guard(self.pool), real_labels(self))[1]))
    monkeypatch.setattr(Samples, "batches", lambda self, *a, **k: (guard(self.pool), real_batches(self, *a, **k))[1])
    return poisoned


def test_tune_never_reads_the_test_set(tmp_path, poisoned_test_set):
    # the guard works: a run, which audits on D_test, trips it
    with pytest.raises(AssertionError, match="the test set was read"):
        main(["run", *TINY, "--seeds", "0", "--methods", "ft", "--out", str(tmp_path / "run")])
    assert poisoned_test_set
    # tune does not: on the dense models the run built (training never read D_test either) and on a
    # sparse original and oracle built here, under the guard
    assert main(["tune", *TINY, "--method", "ft", "lr_share=0.1,0.3", "--seeds", "0", "--out", str(tmp_path / "t")]) == 0
    assert main(["tune", *TINY, "--method", "ga", "lr_share=1e-3", "--sparsity", "0.5", "--seeds", "0",
                 "--out", str(tmp_path / "s")]) == 0


def test_run_select_chooses_without_reading_the_test_set(tmp_path, poisoned_test_set):
    """``run --select``'s choosing step (recipes/select.py) runs under the same guard as tune."""
    from unlearnkit.experiments import load_config
    from unlearnkit.experiments.recipes.select import select

    config = load_config(None, [*TINY, "seeds=[0]", f"out_dir={tmp_path / 'sel'}"])
    chosen = select(config, ["ft", "ga", "retrain"])
    assert [s.method for s in chosen] == ["ft", "ga"]  # retrain declares no grid: nothing to choose
    assert poisoned_test_set  # the guard was armed: the dataset was loaded under it


def test_tune_results_do_not_depend_on_the_test_set(tmp_path):
    """Same training file, test file replaced by noise with random labels: identical tuning results."""
    ds = load_dataset("synthetic", n_train=600, n_test=200, size=8, noise=90.0)
    rng = np.random.default_rng(0)
    x_train, y_train = ds.train.x.squeeze(1).numpy(), ds.train.y.numpy()
    for name, (x_test, y_test) in {"real": (ds.test.x.squeeze(1).numpy(), ds.test.y.numpy()),
                                   "noise": (rng.integers(0, 256, (300, 8, 8), dtype=np.uint8),
                                             rng.integers(0, ds.num_classes, 300))}.items():
        np.savez(tmp_path / f"{name}.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    results = {}
    for name in ("real", "noise"):
        args = [f"data.path={tmp_path / name}.npz", "data.name=npz", *TINY[5:], "--seeds", "0"]
        assert main(["tune", *args, "--method", "ft", "lr_share=0.1,0.3", "--out", str(tmp_path / name)]) == 0
        results[name] = [(r["point"], r["metrics"], r["reference"]) for r in tune_records(tmp_path / name)]
    assert results["real"] == results["noise"]


def test_report_shows_the_error_of_the_seed_that_failed():
    from unlearnkit.report.tune import Grid, tune_report

    config = {"data": {"name": "synthetic"}, "model": {"name": "cnn", "options": {}}, "train": {"epochs": 2},
              "forget": {"scenario": "random", "count": None, "fraction": 0.1, "forget_class": None, "ids_file": None}}
    reference = {k: 50.0 for k in VALIDATION_HEADLINE}
    ok = {"config": config, "seed": 0, "point": {"alpha": 1.0}, "status": "ok", "metrics": reference,
          "disparity": 0.0, "seconds": 1.0, "reference": reference, "reference_seconds": 2.0}
    failed = {**ok, "seed": 1, "status": "failed", "metrics": {}, "disparity": None, "seconds": float("nan"),
              "error": "non-finite loss (nan) in ga at step 3/10"}
    report = tune_report([ok, failed], Grid("ga", (("alpha", (1.0,)),)))
    assert "1 failed: non-finite loss (nan) in ga" in report
    assert "best: none" in report  # a point must succeed on every seed


def test_a_point_recorded_under_two_keys_counts_each_seed_once():
    """alpha=9 from the command line and 9.0 from a grid are one point: the table shows 3 seeds, not 6."""
    from unlearnkit.report.tune import best_point, tune_report

    config = {"data": {"name": "synthetic"}, "model": {"name": "cnn", "options": {}}, "train": {"epochs": 2},
              "forget": {"scenario": "random", "count": None, "fraction": 0.1, "forget_class": None, "ids_file": None}}
    reference = {k: 50.0 for k in VALIDATION_HEADLINE}
    base = {"config": config, "method": "iu", "status": "ok", "metrics": reference, "seconds": 1.0,
            "reference": reference, "reference_seconds": 2.0}
    records = [{**base, "seed": s, "point": {"alpha": a}, "disparity": 0.5 + 0.5 * s}
               for a in (9.0, 9) for s in (0, 1, 2)]
    records += [{**base, "seed": s, "point": {"alpha": 4.5}, "disparity": 1.5} for s in (0, 1, 2)]
    report = tune_report(records)
    assert report.count("| 9 |") == 1 and "| 6 |" not in report
    point, values = best_point(records)
    assert point == {"alpha": 9.0} and values == [0.5, 1.0, 1.5]
