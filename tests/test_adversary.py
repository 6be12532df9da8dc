"""Deletion adversaries: valid, distinct, deterministic requests of the right size; the class one hurts."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from unlearnkit.adversary import create_adversary, list_adversaries, resolve_budget
from unlearnkit.adversary.base import KNOWLEDGE, top_k_capped
from unlearnkit.data import forget_split, validate_forget_ids
from unlearnkit.errors import ConfigError, ForgetRequestError, RegistryError
from unlearnkit.methods import create_method
from unlearnkit.training import accuracy, predict_logits

from .conftest import TOY_BUDGET

STRATEGIES = list_adversaries()


def select(name, model, base, budget, seed=0, **params):
    return create_adversary(name, **params).select(model, base.train, budget, generator=torch.Generator().manual_seed(seed),
                                                   reference=base.val)


def test_the_required_strategies_are_registered():
    assert {"random", "class", "typical", "boundary", "gradnorm", "influence", "coverage"} <= set(STRATEGIES)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("budget, count", [(0.1, 90), (37, 37)])
def test_valid_distinct_ids_of_the_budget_and_deterministic(name, budget, count, toy_original, toy_base):
    base, _ = toy_base
    assert len(base.train) == 900
    ids = select(name, toy_original, base, budget)
    assert ids.dtype == torch.int64 and ids.shape == (count,)
    assert torch.equal(ids, torch.sort(ids).values) and len(torch.unique(ids)) == count
    assert torch.isin(ids, base.train.ids).all()
    validate_forget_ids(ids, base.train, len(base.train.pool))  # what every request must pass
    assert torch.equal(ids, select(name, toy_original, base, budget))
    assert create_adversary(name).knowledge in KNOWLEDGE


def test_seed_moves_random_choices_only(toy_original, toy_base):
    base, _ = toy_base
    assert not torch.equal(select("random", toy_original, base, 50, seed=0), select("random", toy_original, base, 50, seed=1))
    assert torch.equal(select("typical", toy_original, base, 50, seed=0), select("typical", toy_original, base, 50, seed=1))


def test_strategies_pick_what_they_claim(toy_original, toy_base):
    base, _ = toy_base
    logits = predict_logits(toy_original, base.train)
    loss = torch.nn.functional.cross_entropy(logits, base.train.labels, reduction="none")
    typical = torch.isin(base.train.ids, select("typical", toy_original, base, 0.2))
    assert loss[typical].max() <= loss[~typical].median()  # the easiest samples
    assert typical.sum() == 180 and torch.bincount(base.train.labels[typical]).tolist() == [45, 45, 45, 45]
    boundary = torch.isin(base.train.ids, select("boundary", toy_original, base, 0.1))
    top2 = logits.topk(2, dim=1).values
    gap = (top2[:, 0] - top2[:, 1])
    assert gap[boundary].mean() < gap[~boundary].mean()
    cls = select("class", toy_original, base, 50, target_class=2)
    assert (base.train.pool.y[cls] == 2).all()


def test_class_strategy_spills_over_and_keeps_one_of_each_class(toy_original, toy_base):
    base, _ = toy_base
    sizes = torch.bincount(base.train.labels)
    ids = select("class", toy_original, base, int(sizes[0]) + 10, target_class=0)
    per_class = torch.bincount(base.train.pool.y[ids], minlength=4)
    assert per_class[0] == sizes[0] - 1 and per_class.sum() == sizes[0] + 10
    with pytest.raises(ForgetRequestError, match="too large"):
        select("class", toy_original, base, len(base.train) - 2)


def test_budgets_and_bad_parameters():
    assert resolve_budget(0.1, 1000) == 100 and resolve_budget(5, 1000) == 5 and resolve_budget(5.0, 10) == 5
    for bad in (0, -3, 1.5, 1000, float("nan"), "10", True):
        with pytest.raises(ForgetRequestError):
            resolve_budget(bad, 1000)
    with pytest.raises(RegistryError, match="valid: boundary, class"):
        create_adversary("nope")
    with pytest.raises(ConfigError, match="no hyperparameter"):
        create_adversary("random", alpha=1)
    for name, bad in [("coverage", {"space": "voxels"}), ("gradnorm", {"batch_size": 0}), ("random", {"keep_per_class": 0}),
                      ("class", {"target_class": "3"})]:
        with pytest.raises(ConfigError):
            create_adversary(name, **bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        create_adversary("coverage").space = "pixels"


def test_influence_needs_reference_and_knowledge_follows_parameters(toy_original, toy_base):
    base, _ = toy_base
    with pytest.raises(ConfigError, match="reference"):
        create_adversary("influence").select(toy_original, base.train, 10, generator=torch.Generator())
    assert create_adversary("class").knowledge == "predictions"
    assert create_adversary("class", target_class=1).knowledge == "data"
    assert create_adversary("coverage", space="pixels").knowledge == "data"
    assert create_adversary("gradnorm").knowledge == "weights"


def test_top_k_capped_keeps_every_class():
    labels = torch.tensor([0, 0, 0, 1, 1])
    scores = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    assert top_k_capped(scores, labels, 3).tolist() == [0, 1, 3]


def test_class_request_hurts_retraining_more_than_random(toy_original, toy_base):
    """The gold standard itself (retraining without the request) loses a class's accuracy when the
    request concentrates on it, and barely moves when the same number are drawn at random."""
    base, test = toy_base
    budget = int(torch.bincount(base.train.labels).min()) - 1
    ta = {}
    for name in ("random", "class"):
        ids = select(name, toy_original, base, budget)
        split = forget_split(base, test, ids, TOY_BUDGET)
        gold = create_method("retrain").unlearn(toy_original, split, generator=torch.Generator().manual_seed(0))
        ta[name] = accuracy(predict_logits(gold, test), test.labels)
    assert ta["random"] > 90
    assert ta["class"] < ta["random"] - 15, ta
