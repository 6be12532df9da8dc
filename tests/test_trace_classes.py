"""A class an ID request leaves only a trace of in D_r counts as forgotten whole (GA's target, FF's rows,
SCRUB's masked teacher and ascent stop, the class budgets of l1-sparse, FT and NegGrad+, IU's class-wise
step and retry, DAU's class-wise schedule)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from unlearnkit.data.splits import TRACE_SHARE
from unlearnkit.methods import create_method
from unlearnkit.methods.base import METHODS, list_methods, method_params, params_as_run
from unlearnkit.methods.ga import ABSENT_CLASS_SLACK, stopping_accuracy
from unlearnkit.training.evaluate import predict_logits


def test_trace_classes_are_the_classes_d_r_keeps_at_most_one_sample_of(toy_class_split, toy_random_split,
                                                                        toy_trace_split):
    assert toy_class_split.trace_classes() == [toy_class_split.forget_class]
    assert toy_trace_split.trace_classes() == [1]
    assert toy_random_split.trace_classes() == []
    in_class = int((toy_class_split.forget.labels == 1).sum())
    enough = max(2, math.ceil(TRACE_SHARE * in_class))  # 3 of the toy class's 225

    def keeping(k):
        return dataclasses.replace(toy_class_split, forget_class=None,
                                   retain=toy_class_split.retain.union(toy_class_split.forget.take(slice(0, k))),
                                   forget=toy_class_split.forget.take(slice(k, None)))
    assert keeping(enough).trace_classes() == []
    assert keeping(enough - 1).trace_classes() == [1]


def test_ga_targets_the_slack_on_a_class_left_as_a_trace(toy_original, toy_trace_split):
    split = toy_trace_split
    assert stopping_accuracy(toy_original, split) == pytest.approx(ABSENT_CLASS_SLACK)
    pred = predict_logits(toy_original, split.val).argmax(1)
    val_class = float((pred[split.val.labels == 1] == 1).float().mean())
    assert stopping_accuracy(toy_original, split, trace_as_absent=False) == pytest.approx(val_class)
    assert val_class > 0.5  # the old target: GA stopped once D_f looked like unseen data of a held class


def test_ga_forgets_a_class_left_as_a_trace(toy_original, toy_trace_split):
    from unlearnkit.training.evaluate import sample_accuracy
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    now = create_method("ga").unlearn(toy_original, toy_trace_split, generator=g())
    before = create_method("ga", trace_as_absent=False).unlearn(toy_original, toy_trace_split, generator=g())
    assert sample_accuracy(now, toy_trace_split.forget) < sample_accuracy(before, toy_trace_split.forget) - 20


@pytest.mark.parametrize("trace_as_absent", [True, False])
def test_ff_redraws_the_head_row_of_a_class_left_as_a_trace(toy_original, toy_trace_split, trace_as_absent):
    out = create_method("ff", trace_as_absent=trace_as_absent).unlearn(
        toy_original, toy_trace_split, generator=torch.Generator().manual_seed(0))
    row = out.head.weight[1].detach()
    assert bool(row.abs().max() < 0.15 and out.head.bias[1].abs() < 0.15) == trace_as_absent
    assert create_method("ff", class_rows=False).classes_to_redraw(toy_trace_split) == []


def test_forgotten_classes_add_the_trace_classes_only_when_asked(toy_class_split, toy_random_split, toy_trace_split):
    for on in (True, False):
        assert toy_class_split.forgotten_classes(on) == [toy_class_split.forget_class]
        assert toy_random_split.forgotten_classes(on) == []
    assert toy_trace_split.forgotten_classes(True) == [1]
    assert toy_trace_split.forgotten_classes(False) == []


def test_scrub_masks_and_judges_a_class_left_as_a_trace(toy_original, toy_trace_split, monkeypatch):
    """With ``trace_as_absent`` SCRUB's min-step KL drops the trace class from the teacher and its
    ascent stops at the absent-class slack, as class-wise; without, neither acts (records before it)."""
    import unlearnkit.methods.scrub as scrub

    drops, stops = [], []
    real_kl = scrub.distill_kl

    def kl(student, teacher, temperature, drop_classes=()):
        drops.append(list(drop_classes))
        return real_kl(student, teacher, temperature, drop_classes)

    def looks_unseen(model, x, y, stop):
        stops.append(stop)
        return False

    monkeypatch.setattr(scrub, "distill_kl", kl)
    monkeypatch.setattr(scrub, "batch_looks_unseen", looks_unseen)
    for on in (True, False):
        drops.clear()
        stops.clear()
        create_method("scrub", trace_as_absent=on, rounds=1, msteps=1, min_forget_steps=1).unlearn(
            toy_original, toy_trace_split, generator=torch.Generator().manual_seed(0))
        assert ([1] in drops) == on
        assert bool(stops) == on and all(s == pytest.approx(ABSENT_CLASS_SLACK) for s in stops)


def test_scrub_forgets_a_class_left_as_a_trace(toy_original, toy_trace_split):
    from unlearnkit.training.evaluate import sample_accuracy
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    now = create_method("scrub").unlearn(toy_original, toy_trace_split, generator=g())
    before = create_method("scrub", trace_as_absent=False).unlearn(toy_original, toy_trace_split, generator=g())
    assert sample_accuracy(now, toy_trace_split.forget) < sample_accuracy(before, toy_trace_split.forget) - 20
    assert sample_accuracy(now, toy_trace_split.retain) > 90


def test_l1_sparse_runs_its_class_budget_on_a_class_left_as_a_trace(toy_trace_split, toy_random_split):
    from unlearnkit.methods.base import for_split, share_budget
    on, off = create_method("l1-sparse"), create_method("l1-sparse", trace_as_absent=False)
    epochs = toy_trace_split.budget.epochs
    assert share_budget(on, toy_trace_split).epochs == pytest.approx(epochs * on.class_epoch_share)
    assert share_budget(off, toy_trace_split).epochs == pytest.approx(epochs * off.epoch_share)
    assert for_split(on, "gamma", toy_trace_split) == on.class_gamma
    assert for_split(on, "gamma", toy_random_split) == on.gamma  # a random request has no trace class


def test_ft_runs_its_class_rate_on_a_class_left_as_a_trace(toy_trace_split, toy_random_split):
    from unlearnkit.methods.base import share_budget
    on, off = create_method("ft"), create_method("ft", trace_as_absent=False)
    lr = toy_trace_split.budget.lr
    assert share_budget(on, toy_trace_split).lr == pytest.approx(lr * on.class_lr_share)
    assert share_budget(off, toy_trace_split).lr == pytest.approx(lr * off.lr_share)
    assert share_budget(on, toy_random_split).lr == pytest.approx(lr * on.lr_share)


WITH_RULE = sorted(n for n in list_methods() if "trace_as_absent" in {f.name for f in dataclasses.fields(METHODS.get(n))})


def test_every_method_with_a_class_wise_rule_reads_the_trace_rule():
    """A method that acts on a class-wise split otherwise than on an ID request (a class_ knob, a
    class-wise schedule or stopping rule) has the knob; RL and SalUn have no class-wise rule."""
    assert WITH_RULE == ["dau", "dau-nobt", "ff", "ft", "ga", "iu", "l1-sparse", "neggrad+", "scrub"]
    for name in WITH_RULE:
        cls_only, method = getattr(METHODS.get(name), "class_only", ()), create_method(name)
        as_before = getattr(type(method), "added_later", {})  # a field at its old value is never keyed
        acting = {f for f in cls_only if not (f in as_before and getattr(method, f) == as_before[f])}
        assert acting <= set(method_params(method, class_wise=False))  # they act on ID requests now
        assert not set(cls_only) & set(method_params(create_method(name, trace_as_absent=False), class_wise=False))


@pytest.mark.parametrize("name", WITH_RULE)
def test_the_trace_rule_changes_a_class_emptying_request_only(name, toy_original, toy_trace_split, toy_random_split):
    """On an ID request that leaves a class a trace the knob changes the model; on a random request
    (no class left as a trace) the model is bit for bit the one without it."""
    def run(split, on):
        return create_method(name, trace_as_absent=on).unlearn(toy_original, split, generator=torch.Generator().manual_seed(0))

    def same(a, b):
        return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not same(run(toy_trace_split, True), run(toy_trace_split, False))
    assert same(run(toy_random_split, True), run(toy_random_split, False))


@pytest.mark.parametrize("name", WITH_RULE)
def test_records_from_before_the_knob_read_as_its_old_setting(name):
    assert method_params(create_method(name))["trace_as_absent"] is True
    assert "trace_as_absent" not in method_params(create_method(name, trace_as_absent=False))
    assert params_as_run(name, {})["trace_as_absent"] is False
