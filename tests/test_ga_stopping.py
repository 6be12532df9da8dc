"""GA's stopping target: what D_f's accuracy would be on a model that never saw it."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from unlearnkit.methods.ga import ABSENT_CLASS_SLACK, stopping_accuracy
from unlearnkit.training.evaluate import predict_logits


def class_accuracy(model, samples, c):
    pred = predict_logits(model, samples).argmax(1)
    in_class = samples.labels == c
    return float((pred[in_class] == c).float().mean())


def test_a_class_forgotten_whole_targets_the_slack(toy_original, toy_class_split):
    assert stopping_accuracy(toy_original, toy_class_split) == pytest.approx(ABSENT_CLASS_SLACK)


def test_random_samples_target_unseen_data_of_their_classes(toy_original, toy_random_split):
    split = toy_random_split
    expected = sum(class_accuracy(toy_original, split.val, int(c)) for c in split.forget.labels) / len(split.forget)
    assert stopping_accuracy(toy_original, split) == pytest.approx(expected)


def test_a_class_missing_from_d_v_falls_back_to_overall_validation_accuracy(toy_original, toy_random_split):
    split = toy_random_split
    c = int(split.forget.labels[0])
    keep = split.val.labels != c
    val = split.val.take(keep.nonzero().squeeze(1))
    forget = split.forget.take((split.forget.labels == c).nonzero().squeeze(1))
    pred = predict_logits(toy_original, val).argmax(1)
    overall = float((pred == val.labels).float().mean())
    target = stopping_accuracy(toy_original, dataclasses.replace(split, val=val, forget=forget))
    assert target == pytest.approx(overall) and target > 0.3  # not 0: GA would ascend far past "unseen"


def retain_accuracy(model, split):
    from unlearnkit.training.evaluate import accuracy
    return accuracy(predict_logits(model, split.retain), split.retain.labels)


def test_the_retain_guard_undoes_the_step_that_costs_too_much(toy_original, toy_random_split):
    from unlearnkit.methods import create_method
    before = retain_accuracy(toy_original, toy_random_split)
    wild = dict(lr_share=1000.0)  # one step wrecks D_r (and the stopping rule then ends ascent: too late)
    unguarded = create_method("ga", retain_guard=0.0, **wild).unlearn(
        toy_original, toy_random_split, generator=torch.Generator().manual_seed(0))
    guarded = create_method("ga", retain_guard=5.0, **wild).unlearn(
        toy_original, toy_random_split, generator=torch.Generator().manual_seed(0))
    assert before - retain_accuracy(unguarded, toy_random_split) > 20
    assert before - retain_accuracy(guarded, toy_random_split) <= 5  # the probe is 512 of D_r's 810 here


def test_a_guard_that_never_fires_leaves_the_run_bit_for_bit(toy_original, toy_random_split):
    from unlearnkit.methods import create_method
    runs = [create_method("ga", retain_guard=g).unlearn(toy_original, toy_random_split,
                                                      generator=torch.Generator().manual_seed(3)) for g in (0.0, 100.0)]
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        assert torch.equal(a, b)


def test_the_retain_guard_rejects_a_negative_setting():
    from unlearnkit.methods import create_method
    from unlearnkit.utils.validation import ConfigError
    with pytest.raises(ConfigError, match="ga.retain_guard"):
        create_method("ga", retain_guard=-1.0)
