"""The common-checks battery: every registered method must pass all of these."""
from __future__ import annotations

import dataclasses
import json
import math
import typing

import pytest
import torch

from unlearnkit.methods import create_method, list_methods, method_params
from unlearnkit.training import accuracy, predict_logits

# Toy-task settings for methods whose defaults are scaled for real workloads and move too little
# on a 6-epoch toy model to show forgetting within seconds (like sklearn's checking parameters).
TOY_PARAMS: dict[str, dict] = {
    "ft": {"epoch_share": 1.0, "lr_share": 1.0, "class_lr_share": 1.0},
    "ga": {"lr_share": 0.2, "epochs": 2},
    "rl": {"epoch_share": 0.5, "lr_share": 0.5},
    "neggrad+": {"epoch_share": 0.5, "lr_share": 0.5, "class_lr_share": 0.5, "retain_weight": 0.95},
    # FF forgets only by noise: on the toy model, noise that reaches the class reaches D_r as well
    # (forget 99 → 6, retain 100 → 60 here); the W1 figures are in docs/results.md ("Where the defaults come from").
    "ff": {"alpha": 1e-6, "variance_cap": 1e6, "head_variance_cap": 1e5},
    "l1-sparse": {"epoch_share": 1.0, "lr_share": 1.0, "class_lr_share": 1.0},
    "salun": {"epoch_share": 0.5, "lr_share": 0.5},
    "dau": {"iterations": 30, "pretrain_steps": 20},
    "dau-nobt": {"iterations": 30, "pretrain_steps": 20},
    # SCRUB's max-steps (unbounded KL ascent) diverge easily on this BN-free model: of a 24-point
    # grid (rounds 3/5, msteps 2/3, lr_share 0.1–1, epoch_share 0.2/0.5) half ended in NaN; this
    # setting forgets the class (99 → 0) and keeps test accuracy 69.5 of a possible ~75.
    "scrub": {"epoch_share": 0.5, "lr_share": 0.1, "rounds": 3, "msteps": 2, "forget_batch_size": 32, "min_forget_steps": 1},
}
METHODS = list_methods()


def toy_method(name: str):
    return create_method(name, **TOY_PARAMS.get(name, {}))


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", METHODS)
def test_input_model_unchanged_and_same_architecture(name, toy_original, toy_random_split):
    before = state(toy_original)
    out = toy_method(name).unlearn(toy_original, toy_random_split, generator=torch.Generator().manual_seed(0))
    assert same_state(before, state(toy_original)), f"{name} mutated the model it was given"
    assert out is not toy_original
    # a method that declares ``returns_ensemble`` (SISA) returns models of the input's architecture
    # inside an ensemble: each member must pass the checks a single returned model passes
    models = list(out.members) if getattr(type(toy_method(name)), "returns_ensemble", False) else [out]
    assert models
    for model in models:
        assert model is not toy_original
        assert type(model) is type(toy_original)
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in before.items()}
        assert next(model.parameters()).device == next(toy_original.parameters()).device
        assert not same_state(before, state(model)), f"{name} returned the original weights unchanged"


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_result(name, toy_original, toy_random_split):
    method = toy_method(name)
    a = method.unlearn(toy_original, toy_random_split, generator=torch.Generator().manual_seed(7))
    b = method.unlearn(toy_original, toy_random_split, generator=torch.Generator().manual_seed(7))
    assert same_state(state(a), state(b))


@pytest.mark.parametrize("split_name", ["toy_random_split", "toy_class_split"])
@pytest.mark.parametrize("name", METHODS)
def test_contract_at_defaults(name, split_name, toy_original, request):
    """Every method at its own defaults (no TOY_PARAMS): the contract holds on both kinds of split.

    Checks the contract only, not that the defaults forget on the toy task (several do not).
    """
    split = request.getfixturevalue(split_name)
    method = create_method(name)
    before = state(toy_original)
    a = method.unlearn(toy_original, split, generator=torch.Generator().manual_seed(3))
    assert same_state(before, state(toy_original)), f"{name} mutated the model it was given"
    shapes = {k: v.shape for k, v in before.items()}
    for model in (list(a.members) if getattr(type(method), "returns_ensemble", False) else [a]):
        assert model is not toy_original and type(model) is type(toy_original)
        assert {k: v.shape for k, v in model.state_dict().items()} == shapes
        bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        assert not bad, f"{name} at its defaults returned non-finite {bad}"
    b = method.unlearn(toy_original, split, generator=torch.Generator().manual_seed(3))
    assert same_state(state(a), state(b)), f"{name} at its defaults is not reproducible from the same seed"


def _bad_values(hint) -> list:
    origin = typing.get_origin(hint)
    if hint is bool:
        return ["yes"]
    if hint in (int, float) or (origin is not None and (int in typing.get_args(hint) or float in typing.get_args(hint))):
        return [-1.0, float("nan"), "3"]
    if hint is str:
        return ["no-such-option"]
    return []


@pytest.mark.parametrize("name", METHODS)
def test_bad_hyperparameters_raise_value_error(name):
    cls = type(create_method(name))
    hints = typing.get_type_hints(cls)
    checked = 0
    for f in dataclasses.fields(cls):
        for bad in _bad_values(hints[f.name]):
            with pytest.raises(ValueError):
                create_method(name, **{f.name: bad})
            checked += 1
    with pytest.raises(ValueError):
        create_method(name, no_such_hyperparameter=1)
    assert checked or not dataclasses.fields(cls)


@pytest.mark.parametrize("name", METHODS)
def test_hyperparameters_round_trip_json(name):
    method = toy_method(name)
    restored = create_method(name, **json.loads(json.dumps(method_params(method))))
    assert restored == method
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(method, dataclasses.fields(method)[0].name, 1) if dataclasses.fields(method) else (_ for _ in ()).throw(
            dataclasses.FrozenInstanceError())


@pytest.mark.parametrize("name", METHODS)
def test_forget_accuracy_drops_on_toy_task(name, toy_original, toy_class_split):
    split = toy_class_split
    before = accuracy(predict_logits(toy_original, split.forget), split.forget.labels)
    out = toy_method(name).unlearn(toy_original, split, generator=torch.Generator().manual_seed(0))
    after = accuracy(predict_logits(out, split.forget), split.forget.labels)
    test_acc = accuracy(predict_logits(out, split.test), split.test.labels)
    assert before > 80, "the toy original should know the class before unlearning"
    assert after < before - 30, f"{name}: forget accuracy {before:.1f} → {after:.1f}"
    assert math.isfinite(test_acc)


@pytest.mark.parametrize("name", METHODS)
def test_pruned_weights_stay_exactly_zero(name, toy_original, toy_random_split):
    from unlearnkit.methods.base import fresh_copy
    from unlearnkit.sparsity import attach_masks, global_magnitude_masks, masks_of

    sparse = fresh_copy(toy_original)
    attach_masks(sparse, global_magnitude_masks(sparse, 0.5))
    out = toy_method(name).unlearn(sparse, toy_random_split, generator=torch.Generator().manual_seed(0))
    masks = masks_of(out)
    assert masks, f"{name} dropped the pruning masks"
    params = dict(out.named_parameters())
    for pname, mask in masks.items():
        assert torch.all(params[pname][mask == 0] == 0), f"{name} revived pruned weights of {pname}"


# At their defaults these leave a class of the toy task intact (forget accuracy stays above 90):
# fine-tuning on D_r alone at 0.3 × the original lr, 0.15-0.2 × its 174 steps, barely touches a class
# the model separates confidently (l1-sparse and NegGrad+, whose ascent term has weight 0.001);
# DAU without Barlow Twins, capped at 0.3 × the toy original's 174 steps (53 iterations, α on for
# 16), keeps it under generator 0 (97%; generators 1 and 2 forget it all: the game is chaotic).
# docs/results.md, "A small workload". The test below fails when one of them starts to forget, so
# that this list and the docs stay true.
KEEP_A_TOY_CLASS_AT_DEFAULTS = {"dau-nobt", "l1-sparse", "neggrad+"}
# These forget part of the toy class, by an amount that depends on the generator (and, for DAU's
# game, on the CPU's float kernels): FT at its class-wise rate (the original lr, 35 steps here),
# forget accuracy 99 -> 81 / 98 / 83 under generators 0 / 1 / 2 (the test uses 0); DAU, capped at
# 0.3 × the toy original's 174 steps (53 iterations, α on for 16), 99 -> 79 / 62 / 0 on an AMD
# EPYC (2026-12-06), below 69 on the machine before; SCRUB with its class-wise teacher mask and
# ascent stop, 99 -> 65 / 7 / 52 (it kept the class, > 90, before them). At 2,000 W1 samples and on
# full W1 they forget the class on most seeds (docs/results.md).
PARTLY_FORGET_A_TOY_CLASS_AT_DEFAULTS = {"dau", "ft", "scrub"}

# SISA's 5 default shards deal the toy's 900 samples into 180 each, about 15 steps per stage: its
# members are as unstable as their data is small (retained accuracy of the start ensemble 77-95 and of
# the unlearned one 68-82 over seeds 0-2), so the toy runs it with 2 shards (92-99, within 1.5 points).
TOY_OVERRIDES = {"sisa": {"shards": 2}}


def retained_test_accuracy(model, split) -> float:
    keep = split.test.labels != split.forget_class
    return accuracy(predict_logits(model, split.test)[keep], split.test.labels[keep])


@pytest.mark.parametrize("name", METHODS)
def test_defaults_forget_a_class_without_collapse(name, toy_original, toy_class_split):
    """Every method at its own defaults on a small task: the retained accuracy stays within the
    run's collapse guard (10 points) of the model it started from, and the class is forgotten
    (forget accuracy drops by more than 30 points) unless the method is listed above."""
    from unlearnkit.experiments.guard import DEFAULT_GUARD
    from unlearnkit.methods.base import unlearn_measured

    split = toy_class_split
    outcome = unlearn_measured(create_method(name, **TOY_OVERRIDES.get(name, {})), toy_original, split, generator=torch.Generator().manual_seed(0))
    start = outcome.start() if outcome.start is not None else toy_original
    drop = retained_test_accuracy(start, split) - retained_test_accuracy(outcome.model, split)
    assert drop <= DEFAULT_GUARD, f"{name} at its defaults lost {drop:.1f} points of retained accuracy"
    before = accuracy(predict_logits(toy_original, split.forget), split.forget.labels)
    after = accuracy(predict_logits(outcome.model, split.forget), split.forget.labels)
    if name in KEEP_A_TOY_CLASS_AT_DEFAULTS:
        assert after > 90, f"{name} now forgets the class at its defaults ({before:.1f} → {after:.1f}): " \
                           "remove it from KEEP_A_TOY_CLASS_AT_DEFAULTS and update docs/results.md"
    elif name in PARTLY_FORGET_A_TOY_CLASS_AT_DEFAULTS:
        assert after < 95, f"{name} at its defaults: forget accuracy {before:.1f} → {after:.1f} " \
                           "(listed as forgetting at least part of the class: update the list and the docs)"
    else:
        assert after < before - 30, f"{name} at its defaults: forget accuracy {before:.1f} → {after:.1f}"
