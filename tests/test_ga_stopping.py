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
