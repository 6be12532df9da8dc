"""Sparse runs through the CLI (``--sparsity``) and the dense-vs-sparse report, on tiny data."""
from __future__ import annotations

import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.experiments import load_config, load_experiment, prepare_seed
from unlearnkit.experiments.recipes.run import default_out_dir
from unlearnkit.experiments.experiment import experiment_identity
from unlearnkit.sparsity import masks_of, prunable, sparsity_of

from .test_cli import TINY, records

SPARSITY = 0.7
QUICK = ["--seeds", "0", "--methods", "ft", "attacks=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A dense run, then a sparse run of the same workload, sharing one model cache."""
    root = tmp_path_factory.mktemp("sparse")
    cache = f"cache_dir={root / 'cache'}"
    dense, sparse = root / "dense", root / "sparse"
    assert main(["run", *TINY, *QUICK, "noise_floor=false", cache, "--out", str(dense)]) == 0
    assert main(["run", *TINY, *QUICK, cache, "--sparsity", str(SPARSITY), "--out", str(sparse)]) == 0
    return {"dense": dense, "sparse": sparse, "cache": root / "cache", "cache_arg": cache}


def sparse_config(runs):
    return load_config(None, [*TINY, "seeds=[0]", "methods=[ft]", "attacks=false", runs["cache_arg"],
                              f"sparsity={SPARSITY}", f"out_dir={runs['sparse']}"])


def test_sparse_original_and_oracles_share_the_mask(runs):
    setup = prepare_seed(load_experiment(sparse_config(runs)), 0)
    assert setup.original_cached
    total = sum(w.numel() for w in prunable(setup.original).values())
    assert sparsity_of(setup.original) == pytest.approx(round(SPARSITY * total) / total)
    mask = masks_of(setup.original)
    oracle, _, cached = setup.oracle()
    twin, _, twin_cached = setup.oracle(trial=1)  # the noise floor's second retrain
    assert cached and twin_cached
    for model in (oracle, twin):
        assert masks_of(model).keys() == mask.keys()
        assert all(torch.equal(masks_of(model)[k], mask[k]) for k in mask)
        params = dict(model.named_parameters())
        assert all(torch.all(params[k][m == 0] == 0) for k, m in mask.items())
    # trained from scratch: neither the original's weights nor each other's
    w = lambda m: dict(m.named_parameters())["head.weight"]  # noqa: E731
    assert not torch.equal(w(oracle), w(setup.original)) and not torch.equal(w(oracle), w(twin))


def test_records_carry_the_sparsity_and_a_rerun_skips(runs):
    recs = records(runs["sparse"])
    assert sorted(r["row"] for r in recs) == ["ft", "original", "retrain", "retrain (2nd seed)"]
    assert all(r["config"]["sparsity"] == SPARSITY and r["sparsity"] == pytest.approx(SPARSITY, abs=1e-3)
               for r in recs)
    assert all(r["sparsity"] == 0 for r in records(runs["dense"]))
    # the sparse run pruned the dense run's cached original instead of training its own: the cache
    # holds the dense original and oracle, the sparse original and its two oracles, nothing else
    assert len(list(runs["cache"].rglob("*.pt"))) == 5
    assert main(["run", *TINY, *QUICK, runs["cache_arg"], "--sparsity", str(SPARSITY), "--out", str(runs["sparse"])]) == 0
    assert len(records(runs["sparse"])) == len(recs)
    assert len(list(runs["cache"].rglob("*.pt"))) == 5


def test_dense_identity_is_unchanged_by_the_sparsity_options():
    dense = load_config(None, TINY)
    assert experiment_identity(dense, "f") == experiment_identity(load_config(None, [*TINY, "sparsity_rewind=0.2"]), "f")
    assert "sparsity" not in experiment_identity(dense, "f")
    sparse = experiment_identity(load_config(None, [*TINY, "sparsity=0.9"]), "f")
    assert sparse["sparsity"] == 0.9
    assert sparse != experiment_identity(load_config(None, [*TINY, "sparsity=0.9", "sparsity_rewind=0.2"]), "f")
    assert str(default_out_dir(load_config(None, ["sparsity=0.95"]))).endswith("random-sparse0.95")


@pytest.mark.parametrize("bad, message", [("sparsity=1", "sparsity must lie in [0, 1)"),
                                          ("sparsity=-0.1", "sparsity must lie in [0, 1)"),
                                          ("sparsity_rewind=1.5", "sparsity_rewind must lie in [0, 1)")])
def test_bad_sparsity_exits_2(tmp_path, capsys, bad, message):
    assert main(["run", *TINY, *QUICK, bad, "--out", str(tmp_path / "bad")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_report_puts_dense_and_sparse_side_by_side(runs, capsys):
    assert main(["report", str(runs["dense"]), str(runs["sparse"])]) == 0
    out = capsys.readouterr().out
    assert "### Dense vs sparse — synthetic" in out
    assert "| Method | Avg. Disparity, dense | Avg. Disparity, 70% sparse | Time (s), dense | Time (s), 70% sparse |" in out
    ft = {r["config"].get("sparsity", 0): r for r in records(runs["dense"]) + records(runs["sparse"]) if r["row"] == "ft"}
    comparison = out[out.index("### Dense vs sparse"):].splitlines()
    row = next(line for line in comparison if line.startswith("| FT | ") and "sparse |" not in line
               and "dense |" not in line)
    assert row.split(" | ")[1:3] == [f"{ft[0]['avg_disparity']:.2f}", f"{ft[SPARSITY]['avg_disparity']:.2f}"]
    full = next(line for line in comparison if line.startswith("| FT | 70% sparse |"))
    assert f"{ft[SPARSITY]['metrics']['UA']:.2f}" in full and f"{ft[SPARSITY]['metrics']['TA']:.2f}" in full
    assert "| FT | dense |" in out and "Retrain, 2nd seed (noise floor) | 70% sparse" in out
    # one folder: its own table, no comparison; a folder without records: exit 2
    assert main(["report", str(runs["sparse"])]) == 0
    assert "Dense vs sparse" not in capsys.readouterr().out
    assert main(["report", str(runs["dense"]), str(runs["dense"] / "nothing")]) == 2
    assert "no records in" in capsys.readouterr().err


def test_dense_vs_sparse_keeps_hyperparameter_settings_apart(runs):
    """A method recorded under two settings (a default changed, a tuned rerun) gets one row per
    setting in both columns, never the mean of the two."""
    from unlearnkit.report.compare import sparsity_report

    recs = records(runs["dense"]) + records(runs["sparse"])
    ft = next(r for r in recs if r["row"] == "ft" and not r["config"].get("sparsity"))
    tuned = {**ft, "key": "tuned", "params": {**ft["params"], "lr_share": 7.0}, "avg_disparity": 99.0}
    out = sparsity_report(recs + [tuned])
    default = ft["params"]["lr_share"]
    assert "| ft (lr_share=7.0) | 99.00 | — |" in out
    row = next(line for line in out.splitlines() if line.startswith(f"| ft (lr_share={default}) | "))
    assert row.split(" | ")[1] == f"{ft['avg_disparity']:.2f}" and "99" not in row
