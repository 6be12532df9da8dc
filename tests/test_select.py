"""``unlearnkit run --select``: declared grids, selected rows beside the default rows, the choice
recorded with its cost, reused on a rerun."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from unlearnkit.cli import main
from unlearnkit.methods import create_method, list_methods
from unlearnkit.methods.base import MAX_SELECT_POINTS, select_grid

from .test_cli import TINY, records


@pytest.mark.parametrize("name", list_methods())
def test_declared_grids_are_small_and_valid(name):
    grid = select_grid(name)
    if name in ("retrain", "sisa"):  # nothing to choose: the oracle itself, and an exact method
        assert grid == ()
        return
    assert grid, f"{name} declares no select_grid"
    for class_wise in (False, True):  # each kind of request tries the axes that act on it
        assert select_grid(name, class_wise), f"{name}: nothing to choose when class_wise={class_wise}"
        assert math.prod(len(values) for _, values in select_grid(name, class_wise)) <= MAX_SELECT_POINTS
    for key, values in grid:
        assert len(set(values)) == len(values) >= 2, f"{name}.{key}: at least two distinct values"
        for value in values:
            create_method(name, **{key: value})  # every point is a valid setting


def test_a_class_knob_is_tried_on_class_wise_requests_only():
    # IU's class_alpha replaces alpha class-wise (trying both would repeat points); class_damping acts
    # class-wise only, and damping (not in the grid) on the others
    assert dict(select_grid("iu", class_wise=True)).keys() == {"class_alpha", "class_damping"}
    assert dict(select_grid("iu", class_wise=False)).keys() == {"alpha"}
    assert dict(select_grid("iu")).keys() == {"alpha", "class_alpha", "class_damping"}  # the declaration
    assert select_grid("ga", class_wise=True) == select_grid("ga", class_wise=False) == select_grid("ga")


def test_select_adds_a_selected_row_per_method_and_reuses_the_choice(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", *TINY, "--scenario", "class", "--forget-class", "1", "--seeds", "0", "--methods", "iu,ga",
            "--select", "--out", str(out)]
    assert main(args) == 0
    rows = {r["row"]: r for r in records(out)}
    assert {"iu", "iu (selected)", "ga", "ga (selected)"} <= set(rows)
    for name in ("iu", "ga"):
        sel = rows[f"{name} (selected)"]
        assert sel["status"] == "ok" and sel["method"] == name
        grid = dict(select_grid(name, class_wise=True))  # the run forgets a class
        assert set(sel["selection"]["point"]) == set(grid)
        chosen = create_method(name, **sel["params"])  # params may leave out a knob at its old value (added_later)
        assert all(getattr(chosen, k) == v and v in grid[k] for k, v in sel["selection"]["point"].items())
        assert sel["selection"]["seconds"] > 0 and math.isfinite(sel["selection"]["disparity_val"])
        assert "selection" not in rows[name]
    tune = [json.loads(line) for line in (out / "tune" / "records.jsonl").read_text().splitlines()]
    assert len(tune) == 4 + 4  # every point of both grids, on the one seed (IU: its two class-wise axes)
    assert {r["method"] for r in tune[:4]} == {"iu"}
    assert all(set(r["point"]) == {"class_alpha", "class_damping"} for r in tune[:4])
    text = capsys.readouterr().out
    assert "| IU (selected) |" in text and "choosing cost" in text
    before = (out / "records.jsonl").read_text(), (out / "tune" / "records.jsonl").read_text()
    assert main(args) == 0  # a rerun chooses the same points from the recorded grid and runs nothing
    assert ((out / "records.jsonl").read_text(), (out / "tune" / "records.jsonl").read_text()) == before


def test_without_select_there_are_no_selected_rows_and_the_keys_do_not_change(tmp_path):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--seeds", "0", "--methods", "ft", "--out", str(out)]) == 0
    plain = {r["row"]: r["key"] for r in records(out)}
    assert not any(k.endswith("(selected)") for k in plain)
    assert main(["run", *TINY, "--seeds", "0", "--methods", "ft", "--select", "--out", str(out)]) == 0
    both = {r["row"]: r["key"] for r in records(out)}
    assert {k: both[k] for k in plain} == plain  # the default rows were reused, not rerun
    assert "ft (selected)" in both


def test_selected_rows_are_not_split_by_the_point_each_workload_chose():
    from unlearnkit.report.table import distinguish_variants

    def rec(experiment, lr_share, selected=True, epochs=10.0):
        r = {"experiment": experiment, "row": "ga (selected)" if selected else "ga", "seed": 0,
             "params": {"lr_share": lr_share, "epochs": epochs}}
        if selected:
            r["selection"] = {"point": {"lr_share": lr_share}}
        return r

    rows = distinguish_variants([rec("class", 0.05), rec("random", 0.005)])
    assert [r["row"] for r in rows] == ["ga (selected)", "ga (selected)"]  # the notes print each point
    rows = distinguish_variants([rec("class", 0.05), rec("random", 0.05, epochs=5.0)])
    assert [r["row"] for r in rows] == ["ga (selected) (epochs=10.0)", "ga (selected) (epochs=5.0)"]
    rows = distinguish_variants([rec("a", 0.02, False), rec("b", 0.0001, False)])  # default rows still split
    assert [r["row"] for r in rows] == ["ga (lr_share=0.02)", "ga (lr_share=0.0001)"]


def test_a_selected_point_equal_to_the_default_shares_one_unlearning():
    from unlearnkit.experiments.config import load_config
    from unlearnkit.experiments.recipes.run import rows_for
    from unlearnkit.experiments.recipes.select import Selection

    config = dataclasses.replace(load_config(None, []), methods=["ga"])
    at = lambda lr: Selection("ga", {"lr_share": lr}, {"lr_share": [0.005, 0.02]}, 1.0, {0: 1.0})  # noqa: E731
    rows = {r.label: r for r in rows_for(config, [at(0.02)])}  # 0.02 is GA's default
    assert rows["ga"].shared and rows["ga (selected)"].shared and rows["ga"].params == rows["ga (selected)"].params
    rows = {r.label: r for r in rows_for(config, [at(0.005)])}
    assert not rows["ga"].shared and not rows["ga (selected)"].shared


def test_dry_run_with_select_lists_each_grid_and_runs_nothing(tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="unlearnkit"):
        assert main(["run", *TINY, "--seeds", "0,1", "--methods", "ft,ga", "--select", "--dry-run", "--out", str(out)]) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("--select:")]
    assert [line.split()[1] for line in lines] == ["ft", "ga"]
    assert "tries 4 points (lr_share ∈ {0.3, 1}; epoch_share ∈ {0.2, 0.5})" in lines[0]
    assert "of each of 2 seed(s)" in lines[0] and "'ft (selected)'" in lines[0]
    assert not (out / "records.jsonl").exists()


def test_a_new_grid_reruns_the_selected_row_even_when_it_chooses_the_same_point(tmp_path, monkeypatch):
    from unlearnkit.methods.ft import FineTune

    out = tmp_path / "run"
    args = ["run", *TINY, "--seeds", "0", "--methods", "ft", "--select", "--out", str(out)]
    monkeypatch.setattr(FineTune, "select_grid", (("lr_share", (0.1,)),))
    assert main(args) == 0
    first = {r["row"]: r for r in records(out)}
    monkeypatch.setattr(FineTune, "select_grid", (("lr_share", (0.1,)), ("epoch_share", (0.2,))))
    assert main(args) == 0
    second = {r["row"]: r for r in records(out)}
    assert first["ft"]["key"] == second["ft"]["key"]  # the default row is reused
    assert first["ft (selected)"]["params"] == second["ft (selected)"]["params"]  # the same point...
    assert first["ft (selected)"]["key"] != second["ft (selected)"]["key"]  # ...recorded afresh with its grid
    assert second["ft (selected)"]["selection"]["grid"] == {"lr_share": [0.1], "epoch_share": [0.2]}
