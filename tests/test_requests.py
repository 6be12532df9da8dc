"""One validator for every forget request: scenarios, SISA plans and spare reserves refuse alike."""
from __future__ import annotations

import pytest
import torch

from unlearnkit.data.dataset import make_dataset
from unlearnkit.data.pool import Samples
from unlearnkit.data.requests import validate_request
from unlearnkit.data.scenarios import validate_forget_ids
from unlearnkit.errors import ForgetRequestError
from unlearnkit.healing import SpareReserve, fit_similarity
from unlearnkit.sisa.plan import check_deletion, make_plan


def tiny_pool(n=60, classes=3):
    x = (torch.rand(n, 1, 1, 4, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    y = torch.arange(n) % classes
    return make_dataset("tiny", x, y, x[:2], y[:2], classes).train


def refusals(ids):
    """The message each receiver gives for ``ids`` (training IDs 0..44 everywhere)."""
    pool = tiny_pool()
    train = Samples(pool, torch.arange(45))
    plan = make_plan(train.ids, train.labels, shards=3, slices=2, generator=torch.Generator().manual_seed(0))
    reserve = SpareReserve(train, Samples(pool, torch.arange(45, 60)), fit_similarity("euclidean"))
    out = []
    for call in (lambda: validate_forget_ids(ids, train, len(pool)),
                 lambda: check_deletion(plan, torch.empty(0, dtype=torch.int64), ids),
                 lambda: reserve.check_request(ids)):
        with pytest.raises(ForgetRequestError) as info:
            call()
        out.append(str(info.value))
    return out


@pytest.mark.parametrize("ids", [torch.tensor([], dtype=torch.int64), torch.tensor([1.5]), torch.tensor([[1, 2]]),
                                 torch.tensor([3, 4, 3]), torch.arange(45), ["7"]])
def test_every_receiver_refuses_with_the_same_words(ids):
    scenario, sisa, reserve = refusals(ids)
    assert scenario == sisa == reserve


def test_ids_outside_training_are_described_by_the_receiver():
    scenario, sisa, reserve = refusals(torch.tensor([1, 50]))  # 50: a spare of the reserve
    assert "not in the training set" in scenario and "never in this SISA training set" in sisa
    assert "1 forget ids are spares in the reserve" in reserve


def test_outside_reasons_come_before_membership_and_class_rule_needs_labels():
    train = torch.arange(10)
    with pytest.raises(ForgetRequestError, match="2 forget ids are already deleted"):
        validate_request(torch.tensor([11, 12, 1]), train, outside=[("already deleted", torch.tensor([11, 12]))])
    labels = torch.tensor([0] * 5 + [1] * 5)
    with pytest.raises(ForgetRequestError, match=r"class\(es\) \[1\]"):
        validate_request(torch.arange(5, 10), train, labels=labels)
    assert validate_request(torch.arange(5, 10), train, labels=labels, named_class=1).tolist() == [5, 6, 7, 8, 9]
    assert validate_request(torch.tensor([9, 2]), train).tolist() == [2, 9]
