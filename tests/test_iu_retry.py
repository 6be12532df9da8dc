"""IU's class-wise retry: a class-wise step that leaves D_f known is redone at the retry point and
the step that forgets more is kept; a step that forgets, and every random request, are untouched."""
from __future__ import annotations

import torch

from unlearnkit.methods import create_method
from unlearnkit.methods.base import method_params
from unlearnkit.training.evaluate import accuracy, predict_logits

from .test_class_knobs import same_model


def iu(model, split, **params):
    return create_method("iu", **params).unlearn(model, split, generator=torch.Generator().manual_seed(0))


def forget_accuracy(model, split) -> float:
    return accuracy(predict_logits(model, split.forget), split.forget.labels)


def test_a_step_that_forgets_is_not_retried(toy_original, toy_class_split):
    plain = iu(toy_original, toy_class_split, class_retry_alpha=0)
    assert forget_accuracy(plain, toy_class_split) <= 10  # the default step forgets the toy class
    assert same_model(plain, iu(toy_original, toy_class_split, class_retry_alpha=1.0, class_retry_damping=0.5))


def test_a_step_that_leaves_the_class_known_is_replaced_by_the_retry(toy_original, toy_class_split):
    weak = iu(toy_original, toy_class_split, class_alpha=1e-4, class_retry_alpha=0)
    assert forget_accuracy(weak, toy_class_split) > 10
    retried = iu(toy_original, toy_class_split, class_alpha=1e-4, retain_guard=0)
    assert forget_accuracy(retried, toy_class_split) < forget_accuracy(weak, toy_class_split)
    # the model kept is the retry point's own step
    assert same_model(retried, iu(toy_original, toy_class_split, class_alpha=6.0, class_damping=3.0,
                                  class_retry_alpha=0, retain_guard=0))


def test_a_retry_that_forgets_no_more_is_dropped(toy_original, toy_class_split):
    first = iu(toy_original, toy_class_split, class_alpha=1e-3, class_retry_alpha=0)
    assert forget_accuracy(first, toy_class_split) > 10
    assert same_model(first, iu(toy_original, toy_class_split, class_alpha=1e-3, class_retry_alpha=1e-6))


def test_the_retry_acts_on_class_wise_requests_only(toy_original, toy_random_split):
    assert same_model(iu(toy_original, toy_random_split, class_retry_alpha=0), iu(toy_original, toy_random_split))
    keyed = method_params(create_method("iu", trace_as_absent=False), class_wise=False)  # keys before the trace rule
    assert "class_retry_alpha" not in keyed and "class_retry_damping" not in keyed
    assert method_params(create_method("iu"), class_wise=True)["class_retry_alpha"] == 6.0
    # retry off: the key of the records made before the retry existed
    assert not {"class_retry_alpha", "class_retry_damping"} & set(method_params(create_method("iu", class_retry_alpha=0), class_wise=True))
