"""The collapse guard: a method that wrecks retained accuracy is a failed row, never a table row."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from unlearnkit.cli import main
from unlearnkit.errors import TrainingError
from unlearnkit.experiments.guard import CollapseError, check_collapse, noise_margin, retained_accuracy, retained_val

from .test_cli import TINY


def constant(model: nn.Module, label: int) -> nn.Module:
    """``model`` made to predict ``label`` for every input (a collapsed model)."""
    out = copy.deepcopy(model)
    head = [m for m in out.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[label] = 1.0
    return out


def test_retained_validation_data_leaves_out_the_forgotten_class_only(toy_class_split, toy_random_split):
    kept = retained_val(toy_class_split)
    assert len(kept) < len(toy_class_split.val)
    assert not (kept.labels == toy_class_split.forget_class).any()
    assert retained_val(toy_random_split) is toy_random_split.val


def test_a_collapsed_model_is_refused_and_names_the_method_and_its_knob(toy_original, toy_random_split):
    baseline, _ = retained_accuracy(toy_original, toy_random_split)
    assert check_collapse("ft", toy_original, toy_random_split, baseline=baseline, guard=10) == 0
    broken = constant(toy_original, 0)
    with pytest.raises(CollapseError, match=r"ff collapsed: .*fell .* guard=10 .*params.ff: a smaller alpha") as e:
        check_collapse("ff", broken, toy_random_split, baseline=baseline, guard=10, weaker="params.ff: a smaller alpha")
    assert isinstance(e.value, TrainingError)  # so the runner makes it a failed row
    drop = check_collapse("ff", broken, toy_random_split, baseline=baseline, guard=0)  # guard off
    assert drop > 10


def test_the_noise_margin_shrinks_with_the_validation_set():
    assert noise_margin(91.0, 6000) == pytest.approx(0.74, abs=0.01)  # W1's D_v
    assert noise_margin(66.7, 15) > 20  # a handful of samples proves nothing
    assert noise_margin(100.0, 5) > 0  # smoothed: never a zero margin on a perfect score


def test_a_collapsing_method_is_a_failed_row_and_the_others_complete(tmp_path, capsys):
    out = tmp_path / "out"
    # a huge but finite FF noise: finite outputs, chance-level accuracy
    args = ["run", *TINY, "--seeds", "0", "--methods", "ff,rl", "params.ff.alpha=1e3", "noise_floor=false",
            "--out", str(out)]
    assert main(args) == 1
    recs = {r["row"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    assert recs["ff"]["status"] == "failed" and "ff collapsed" in recs["ff"]["error"]
    assert "a smaller alpha" in recs["ff"]["error"]
    assert recs["rl"]["status"] == "ok" and recs["rl"]["retained_drop"] < 10
    table = (out / "table.md").read_text()
    assert "| FF | — |" in table and "ff collapsed" in table
    capsys.readouterr()
    # guard=0: the same setting is measured, as a row of its own settings
    assert main([*args[:-2], "guard=0", "--out", str(tmp_path / "off")]) == 0
