"""End-to-end: the real CLI on tiny data (synthetic, and a Fashion-MNIST subset)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unlearnkit.cli import main

TINY = ["data.name=synthetic", "data.options.n_train=600", "data.options.n_test=200", "data.options.size=8",
        "data.options.noise=90", "model.options.channels=[4,8]", "model.options.hidden=16", "train.epochs=2",
        "train.batch_size=32"]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_run_prints_table_writes_records_and_skips_on_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--seeds", "0,1", "--methods", "ft,ga", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for needle in ("| Method | UA | MIA-Efficacy | RA | TA | Avg. Disparity", "Retrain, 2nd seed (noise floor)",
                   "| FT |", "| GA |", "± "):
        assert needle in printed
    recs = records(out)
    assert sorted({r["row"] for r in recs}) == ["ft", "ga", "original", "retrain", "retrain (2nd seed)"]
    assert len(recs) == 10
    r = next(r for r in recs if r["row"] == "ft")
    assert {"config", "seed", "code_version", "seconds", "metrics", "avg_disparity", "time_vs_retrain"} <= set(r)
    assert r["config"]["train"]["epochs"] == 2 and r["n_forget"] > 0
    assert (out / "table.md").read_text().startswith("### synthetic")
    try:  # the dev install has matplotlib: the attack bar plot is drawn and linked from the table
        import matplotlib  # noqa: F401
        assert (out / "attacks.png").stat().st_size > 1000
        assert "![Membership attacks per method](attacks.png)" in (out / "table.md").read_text()
    except ImportError:
        assert not (out / "attacks.png").exists()
    import numpy as np
    with np.load(out / "samples" / f"{r['key']}.npz") as per_sample:
        assert len(per_sample["forget_ids"]) == r["n_forget"] == len(per_sample["forget_confidence"])
        assert 100 - 100 * per_sample["forget_correct"].mean() == pytest.approx(r["metrics"]["UA"])
    # rerun: everything is recorded, nothing runs again, the original comes from the cache
    assert main(["run", *TINY, "--seeds", "0,1", "--methods", "ft,ga", "--out", str(out)]) == 0
    assert len(records(out)) == 10
    # a new method adds only its own rows; the retrain oracle is not retrained
    assert main(["run", *TINY, "--seeds", "0", "--methods", "rl", "--out", str(out)]) == 0
    new = records(out)[10:]
    assert [r["row"] for r in new] == ["rl"]
    assert main(["report", str(out)]) == 0
    assert "| RL |" in capsys.readouterr().out


def test_class_scenario_and_dry_run(tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="unlearnkit")
    out = tmp_path / "cls"
    assert main(["run", *TINY, "--scenario", "class", "--forget-class", "2", "--seeds", "0", "--methods", "rl",
                 "--out", str(out), "--dry-run"]) == 0
    assert not (out / "records.jsonl").exists()
    assert main(["run", *TINY, "--scenario", "class", "--forget-class", "2", "--seeds", "0", "--methods", "rl",
                 "noise_floor=false", "--out", str(out)]) == 0
    recs = records(out)
    retrain = next(r for r in recs if r["row"] == "retrain")
    assert retrain["metrics"]["UA"] == 100.0  # a model never trained on class 2 cannot predict it
    assert "class 2" in capsys.readouterr().out
    # the original model does not depend on the forget request: a random run reuses it from the cache
    assert main(["run", *TINY, "--seeds", "0", "--methods", "ft", "noise_floor=false", "--out", str(tmp_path / "rnd")]) == 0
    assert "original model loaded from cache" in caplog.text


@pytest.mark.parametrize("args, message", [
    (["--methods", "nope"], "unknown method 'nope'"),
    (["--scenario", "class", "--forget-class", "9"], "class 9 does not exist"),
    (["train.epochs=-1"], "train.epochs must be > 0"),
    (["data.name=nope"], "unknown dataset 'nope'"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, args, message):
    out = tmp_path / "bad"
    assert main(["run", *TINY, "--seeds", "0", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "records.jsonl").exists()


def test_bad_ids_file_touches_nothing(tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n1\n")
    out = tmp_path / "ids"
    assert main(["run", *TINY, "--seeds", "0", "--forget-ids", str(ids), "--out", str(out)]) == 2
    assert "duplicate forget ids: [1]" in capsys.readouterr().err
    assert not (out / "records.jsonl").exists()


def test_ls_lists_registries(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for kind in ("datasets:", "models:", "methods:", "attacks:", "scenarios:"):
        assert kind in out
    assert "fashion-mnist" in out and "neggrad+" in out


FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.skipif(not FMNIST.exists() and not os.environ.get("CI_REQUIRE_DATA"),
                    reason="Fashion-MNIST not installed (./setup.sh installs it)")
def test_run_on_a_fashion_mnist_subset(tmp_path, capsys):
    out = tmp_path / "fm"
    assert main(["run", "data.train_subset=1500", "data.test_subset=500", "train.epochs=1", "--seeds", "0",
                 "--methods", "ft", "noise_floor=false", "--out", str(out)]) == 0
    recs = records(out)
    assert recs[0]["config"]["data"]["name"] == "fashion-mnist"
    retrain = next(r for r in recs if r["row"] == "retrain")
    assert retrain["metrics"]["TA"] > 50  # one epoch on 1.2k images already beats chance by far


def test_prepare_seed_gives_the_recipe_split_and_cached_oracle(tmp_path):
    """The per-seed setup used by tuning and reports is the one the run records."""
    from unlearnkit.experiments import load_config, load_experiment, prepare_seed, run_experiment

    config = load_config(None, TINY + ["methods=[ft]", "seeds=[0]", f"out_dir={tmp_path / 'out'}", "noise_floor=false",
                                       "attacks=false"])
    (record,) = [r for r in run_experiment(config) if r["row"] == "retrain"]
    setup = prepare_seed(load_experiment(config), 0)
    assert setup.original_cached
    assert setup.forget_hash == record["forget_ids_sha256"]
    assert len(setup.split.retain) == record["n_retain"]
    oracle, seconds, cached = setup.oracle()
    assert cached and seconds == record["seconds"]


def test_changed_hyperparameters_get_their_own_rows(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["run", *TINY, "--seeds", "0", "--methods", "ft", "--out", str(out), "noise_floor=false", "attacks=false"]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base + ["params.ft.lr_share=0.5"]) == 0
    printed = capsys.readouterr().out
    assert "| FT |" in printed and "lr_share" not in printed  # the run shows only its own setting
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ft (lr_share=0.3)" in printed and "ft (lr_share=0.5)" in printed


def test_rows_recorded_under_an_older_audit_are_rerun_and_superseded(tmp_path, capsys):
    from unlearnkit.metrics.audit import AUDIT_VERSION
    from unlearnkit.report import current_audit

    out = tmp_path / "run"
    # a test set larger than D_r, where audit versions 1 and 2 fit the SVC on different samples
    args = ["run", *TINY, "data.options.n_test=1000", "--seeds", "0", "--methods", "ga", "noise_floor=false",
            "--out", str(out)]
    assert main(args) == 0
    fresh = records(out)
    assert len(fresh) == 3 and all(r["audit"] == AUDIT_VERSION for r in fresh)
    assert all(r["n_retain"] < r["n_test"] == 1000 for r in fresh)
    # the same records as a release before the audit was versioned wrote them, with a marked value
    old = [{**{k: v for k, v in r.items() if k not in ("audit", "n_test")},
            "metrics": {**r["metrics"], "MIA-Efficacy": 123.0}} for r in fresh]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    capsys.readouterr()
    assert main(args) == 0  # every row runs again: nothing recorded under the current audit
    recs = records(out)
    assert len(recs) == 6 and [r.get("audit") for r in recs[3:]] == [AUDIT_VERSION] * 3
    assert [r["key"] for r in recs[3:]] == [r["key"] for r in fresh]
    assert "123.00" not in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert "123.00" not in capsys.readouterr().out
    # a partly rerun folder: the table shows the current audit's rows only, never a mix
    mixed = current_audit(old[:1] + recs[4:])
    assert mixed == recs[4:]
    assert current_audit(old) == old  # an experiment with old records only keeps them


def test_old_audit_records_stand_where_both_versions_fit_the_same_samples(tmp_path, capsys, caplog):
    """With |D_r| >= |D_test| (as on W1) version 1 fitted the SVC on exactly version 2's samples:
    its records are neither rerun nor hidden beside new ones."""
    from unlearnkit.report import current_audit

    out = tmp_path / "run"
    args = ["run", *TINY, "--seeds", "0", "noise_floor=false", "attacks=false", "--out", str(out), "--methods"]
    assert main(args + ["ga"]) == 0
    fresh = records(out)
    assert all(r["n_retain"] >= r["n_test"] == 200 for r in fresh)
    old = [{k: v for k, v in r.items() if k not in ("audit", "n_test")} for r in fresh]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    assert main(args + ["ga"]) == 0
    assert records(out) == old  # nothing rerun
    assert main(args + ["rl"]) == 0
    recs = records(out)
    assert recs[:3] == old and [r["row"] for r in recs[3:]] == ["rl"]  # only the new row ran
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        assert current_audit(recs) == recs  # the old rows stay beside the new one
        assert main(["report", str(out)]) == 0
    assert "| GA |" in capsys.readouterr().out and "older audit" not in caplog.text


@pytest.mark.parametrize("request_args", [["--forget-ids", "IDS"], ["--scenario", "class", "--forget-class", "9"]])
def test_a_bad_request_is_refused_before_any_training(tmp_path, capsys, monkeypatch, request_args):
    """The request of every seed is checked before an original is trained or loaded (also in a dry run)."""
    import unlearnkit.experiments.setup as setup

    def no_training(*args, **kwargs):
        raise AssertionError("an original was trained before the request was checked")

    monkeypatch.setattr(setup, "train_original", no_training)
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n1\n")
    args = [str(ids) if a == "IDS" else a for a in request_args]
    for dry in ([], ["--dry-run"]):
        assert main(["run", *TINY, "--seeds", "0,1", *args, "--out", str(tmp_path / "out"), *dry]) == 2
        err = capsys.readouterr().err
        assert "duplicate forget ids: [1]" in err or "class 9 does not exist" in err


@pytest.mark.parametrize("args, message", [
    (["--methods", ""], "--methods names nothing"),
    (["--methods", "ft,ft"], "methods repeat: ['ft', 'ft']"),
    (["--scenario", "random", "--forget-class", "2"], "forget.forget_class=2 applies to the class scenario"),
    (["params.ft.lr_share=abc"], "ft.lr_share must be a number, got 'abc'"),
    (["--forget-ids", "BIG"], "forget ids out of range: [123456789012345678901234]"),
    (["--out", "FILE"], "is a file; name a folder"),
])
def test_bad_options_are_refused_in_a_dry_run(tmp_path, capsys, args, message):
    (tmp_path / "big.txt").write_text("123456789012345678901234\n")
    (tmp_path / "file").write_text("")
    swap = {"BIG": str(tmp_path / "big.txt"), "FILE": str(tmp_path / "file")}
    args = [swap.get(a, a) for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
    assert main(["run", *TINY, "--seeds", "0", *args, *out, "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_forget_class_alone_means_the_class_scenario(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", *TINY, "--seeds", "0", "--methods", "ft", "--forget-class", "2", "--out", str(out),
                 "--dry-run"]) == 0
    from unlearnkit.experiments import load_config
    from unlearnkit.cli import _overrides, build_parser
    args, _ = build_parser().parse_known_args(["run", "--forget-class", "2"])
    assert load_config(None, _overrides(args)).forget.scenario == "class"


def test_a_method_with_non_finite_outputs_is_a_failed_row_and_the_others_go_on(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", *TINY, "--seeds", "0", "--methods", "ff,ft", "params.ff.alpha=1e30", "noise_floor=false",
            "--out", str(out)]
    assert main(args) == 1
    recs = {r["row"]: r for r in records(out)}
    assert recs["ff"]["status"] == "failed" and "outputs are not finite" in recs["ff"]["error"]
    assert recs["ft"]["status"] == "ok"
    assert "rerun with --retry-failed to run them again" in capsys.readouterr().err
    assert main(args) == 1 and len(records(out)) == len(recs)  # recorded, not retried


def test_retry_failed_reruns_failed_rows_only(tmp_path, capsys, monkeypatch):
    import unlearnkit.experiments.recipes.run as run_recipe
    from unlearnkit.errors import TrainingError

    def flaky(model, label):
        if label == "ft":
            raise TrainingError("ft: a transient failure")

    out = tmp_path / "out"
    args = ["run", *TINY, "--seeds", "0", "--methods", "ft,ga", "noise_floor=false", "attacks=false", "--out", str(out)]
    with monkeypatch.context() as m:
        m.setattr(run_recipe, "check_finite_model", flaky)
        assert main(args) == 1
    first = records(out)
    assert {r["row"]: r["status"] for r in first} == {"original": "ok", "retrain": "ok", "ft": "failed", "ga": "ok"}
    capsys.readouterr()
    assert main(args) == 1 and records(out) == first  # without the flag: kept as recorded, and the hint names it
    assert "--retry-failed" in capsys.readouterr().err
    assert main([*args, "--retry-failed"]) == 0
    recs = records(out)
    assert recs[:4] == first and [(r["row"], r["status"]) for r in recs[4:]] == [("ft", "ok")]
    assert recs[4]["key"] == next(r["key"] for r in first if r["row"] == "ft")
    assert "failed" not in (out / "table.md").read_text()
    assert main(args) == 0 and len(records(out)) == 5  # the retried row is recorded: nothing runs again
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "transient" not in capsys.readouterr().out


def test_an_ids_file_is_honoured_with_seeds_0_1_2(tmp_path, capsys):
    """The README's `unlearnkit run --forget-ids my_ids.txt` with the default seeds, on any valid file."""
    ids = tmp_path / "my_ids.txt"
    ids.write_text("\n".join(str(i) for i in range(3, 600, 29)) + "\n")  # 21 ids across the file
    out = tmp_path / "out"
    assert main(["run", *TINY, "--forget-ids", str(ids), "--methods", "ft", "noise_floor=false", "attacks=false",
                 "--out", str(out)]) == 0
    recs = records(out)
    assert sorted(r["seed"] for r in recs if r["row"] == "ft") == [0, 1, 2]
    assert {r["n_forget"] for r in recs} == {21} and len({r["forget_ids_sha256"] for r in recs}) == 1
    assert "ids from" in capsys.readouterr().out
