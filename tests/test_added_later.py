"""Fields a method gained later (``added_later``): a record leaves them out while they hold the
value that does what the method did before, and a row rebuilt from its params runs that value,
not today's default (the record's key and its model must describe the same unlearning)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from unlearnkit.cli import main
from unlearnkit.methods.base import METHODS, create_method, list_methods, method_from_params, method_params

from .test_cli import TINY, records


def fields(method) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(method)))  # tuples and lists alike


@pytest.mark.parametrize("name", list_methods())
def test_method_from_params_inverts_method_params(name):
    before = getattr(METHODS.get(name), "added_later", {})
    for method in (create_method(name), create_method(name, **before)):
        for class_wise in (True, None):
            assert fields(method_from_params(name, method_params(method, class_wise))) == fields(method)


def test_a_run_rebuilds_an_added_later_field_at_its_old_value(tmp_path):
    # l1-sparse's class_epoch_share null means "as epoch_share": the row must run epoch_share's budget,
    # the same unlearning as naming that budget in class_epoch_share, and not the 0.5 default
    cls = [*TINY, "--scenario", "class", "--forget-class", "2", "--seeds", "0", "--methods", "l1-sparse",
           "noise_floor=false", "guard=0", "params.l1-sparse.class_lr_share=0.3"]
    rows = {}
    for tag, extra in (("null", ["params.l1-sparse.epoch_share=0.2", "params.l1-sparse.class_epoch_share=null"]),
                       ("named", ["params.l1-sparse.class_epoch_share=0.2"]),
                       ("default", [])):
        assert main(["run", *cls, *extra, "--out", str(tmp_path / tag)]) == 0
        rows[tag] = next(r for r in records(tmp_path / tag) if r["row"] == "l1-sparse")
    assert "class_epoch_share" not in rows["null"]["params"] and rows["named"]["params"]["class_epoch_share"] == 0.2
    assert rows["null"]["metrics"] == rows["named"]["metrics"]
    assert rows["null"]["metrics"] != rows["default"]["metrics"]


def test_a_report_labels_a_left_out_field_at_the_value_it_ran_at():
    """A record at a field's old value leaves the key out; beside today's default its row is labelled
    with that old value, not ``None`` (SCRUB's class_stop_judge: "train" before it existed)."""
    from unlearnkit.report.table import distinguish_variants

    def rec(judge):
        params = method_params(create_method("scrub", class_stop_judge=judge), class_wise=True)
        return {"experiment": "e", "row": "scrub", "method": "scrub", "seed": 0, "params": params}
    old, new = rec("train"), rec("eval")
    assert "class_stop_judge" not in old["params"]
    assert [r["row"] for r in distinguish_variants([new, old])] == [
        "scrub (class_stop_judge=eval)", "scrub (class_stop_judge=train)"]
    from unlearnkit.methods.base import params_as_run
    assert params_as_run("retrain", {"epoch_share": 1.0}) == {"epoch_share": 1.0}  # no method of that name
    assert params_as_run(None, {}) == {}


def test_an_id_request_row_from_before_the_trace_rule_is_labelled_by_it_alone():
    """An ID-request record of SCRUB made before ``trace_as_absent`` leaves out the class-only knobs
    too; beside today's record the label names the knobs added later at their old values, not
    ``class_mask_teacher=None``.
    Settings those keys cannot tell apart are labelled by every differing key."""
    from unlearnkit.report.table import distinguish_variants

    def rec(**knobs):
        params = method_params(create_method("scrub", **knobs), class_wise=False)
        return {"experiment": "e", "row": "scrub", "method": "scrub", "seed": 0, "params": params}
    old, new = rec(trace_as_absent=False), rec()
    assert "class_mask_teacher" not in old["params"] and new["params"]["class_mask_teacher"] is True
    assert [r["row"] for r in distinguish_variants([new, old])] == [  # both added later: old values
        "scrub (class_stop_judge=eval, trace_as_absent=True)", "scrub (class_stop_judge=train, trace_as_absent=False)"]
    unmasked = rec(class_mask_teacher=False)
    assert [r["row"] for r in distinguish_variants([new, old, unmasked])] == [
        "scrub (class_mask_teacher=True, class_stop_judge=eval, trace_as_absent=True)",
        "scrub (class_mask_teacher=None, class_stop_judge=train, trace_as_absent=False)",
        "scrub (class_mask_teacher=False, class_stop_judge=eval, trace_as_absent=True)"]
    bare = {**new, "params": {k: v for k, v in new["params"].items() if k != "class_mask_teacher"}}
    assert [r["row"] for r in distinguish_variants([new, bare])] == [  # they differ in that key alone
        "scrub (class_mask_teacher=True)", "scrub (class_mask_teacher=None)"]
