"""``class_<k>`` knobs (FT's, l1-sparse's and NegGrad+'s ``class_lr_share``, l1-sparse's and NegGrad+'s
``class_epoch_share``): they replace ``<k>`` on class-wise splits and do nothing on the others."""
from __future__ import annotations

import pytest
import torch

from unlearnkit.errors import ConfigError
from unlearnkit.methods import create_method
from unlearnkit.methods.base import for_split, knob_acts, method_params, select_grid
from unlearnkit.methods.ga import batch_looks_unseen
from unlearnkit.training.evaluate import sample_accuracy


def same_model(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def unlearn(name, model, split, **params):
    return create_method(name, epoch_share=0.2, **params).unlearn(model, split, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["ft", "l1-sparse", "neggrad+"])
def test_class_lr_share_replaces_lr_share_on_class_wise_splits_only(name, toy_original, toy_class_split,
                                                                    toy_random_split):
    m = toy_original
    # class-wise: the rate is class_lr_share whatever lr_share says
    assert same_model(unlearn(name, m, toy_class_split, lr_share=0.05, class_lr_share=0.4),
                      unlearn(name, m, toy_class_split, lr_share=0.4, class_lr_share=0.4))
    # random: the rate is lr_share whatever class_lr_share says, and it does change the model
    assert same_model(unlearn(name, m, toy_random_split, lr_share=0.05, class_lr_share=0.4),
                      unlearn(name, m, toy_random_split, lr_share=0.05, class_lr_share=0.05))
    assert not same_model(unlearn(name, m, toy_random_split, lr_share=0.05),
                          unlearn(name, m, toy_random_split, lr_share=0.4))


def test_for_split_and_knob_acts_follow_one_convention(toy_class_split, toy_random_split):
    ft = create_method("ft", lr_share=0.1, class_lr_share=0.7)
    assert for_split(ft, "lr_share", toy_class_split) == 0.7
    assert for_split(ft, "lr_share", toy_random_split) == 0.1
    assert for_split(ft, "epoch_share", toy_class_split) == 0.2  # no class_epoch_share: the plain knob
    assert knob_acts("ft", "class_lr_share", True) and not knob_acts("ft", "class_lr_share", False)
    assert knob_acts("ft", "lr_share", False) and not knob_acts("ft", "lr_share", True)
    assert knob_acts("ft", "epoch_share", True) and knob_acts("ft", "epoch_share", False)
    assert knob_acts("ga", "lr_share", True)  # GA has no class-wise rate


def test_iu_class_damping_replaces_damping_on_class_wise_splits_only(toy_original, toy_class_split, toy_random_split):
    m = toy_original
    iu = lambda split, **p: create_method("iu", retain_guard=0, class_retry_alpha=0, **p).unlearn(  # noqa: E731
        m, split, generator=torch.Generator().manual_seed(0))
    assert same_model(iu(toy_class_split, damping=0.01, class_damping=1.0), iu(toy_class_split, damping=1.0, class_damping=1.0))
    assert same_model(iu(toy_random_split, damping=0.3, class_damping=0.01), iu(toy_random_split, damping=0.3, class_damping=1.0))
    assert not same_model(iu(toy_class_split, class_damping=0.01), iu(toy_class_split, class_damping=1.0))
    assert knob_acts("iu", "class_damping", True) and not knob_acts("iu", "damping", True)


@pytest.mark.parametrize("name", ["l1-sparse", "neggrad+"])
def test_class_epoch_share_replaces_epoch_share_and_none_means_as_before(name, toy_original, toy_class_split,
                                                                         toy_random_split):
    m = toy_original
    l1 = lambda split, **p: create_method(name, lr_share=0.3, class_lr_share=0.3, **p).unlearn(  # noqa: E731
        m, split, generator=torch.Generator().manual_seed(0))
    # class-wise: the budget is class_epoch_share whatever epoch_share says; None (records before it) is epoch_share
    assert same_model(l1(toy_class_split, epoch_share=0.1, class_epoch_share=0.4),
                      l1(toy_class_split, epoch_share=0.4, class_epoch_share=0.4))
    assert same_model(l1(toy_class_split, epoch_share=0.4, class_epoch_share=None),
                      l1(toy_class_split, epoch_share=0.1, class_epoch_share=0.4))
    assert not same_model(l1(toy_class_split, class_epoch_share=0.1), l1(toy_class_split, class_epoch_share=0.4))
    # random: epoch_share whatever class_epoch_share says
    assert same_model(l1(toy_random_split, epoch_share=0.2, class_epoch_share=0.1),
                      l1(toy_random_split, epoch_share=0.2, class_epoch_share=0.4))
    assert knob_acts(name, "class_epoch_share", True) and not knob_acts(name, "epoch_share", True)
    assert knob_acts(name, "epoch_share", False) and not knob_acts(name, "class_epoch_share", False)


@pytest.mark.parametrize("name", ["l1-sparse", "neggrad+"])
def test_class_epoch_share_keys_leave_old_records_alone(name):
    # a random request's params carry it only once it acts there (trace_as_absent, test_trace_classes.py);
    # a class-wise one carries it unless it is None (as before it existed)
    assert "class_epoch_share" not in method_params(create_method(name, trace_as_absent=False), class_wise=False)
    assert "class_epoch_share" not in method_params(create_method(name, class_epoch_share=None), class_wise=True)
    assert method_params(create_method(name, class_epoch_share=0.5), class_wise=True)["class_epoch_share"] == 0.5
    assert set(dict(select_grid(name, class_wise=True))) == {"class_lr_share", "class_epoch_share"}
    assert set(dict(select_grid(name, class_wise=False))) == {"lr_share", "epoch_share"}
    with pytest.raises(ConfigError, match="class_epoch_share"):
        create_method(name, class_epoch_share=0.0)


def test_neggrad_ascent_stop_acts_on_class_wise_splits_only(toy_original, toy_random_split):
    assert same_model(unlearn("neggrad+", toy_original, toy_random_split, lr_share=0.3, class_ascent_stop=True),
                      unlearn("neggrad+", toy_original, toy_random_split, lr_share=0.3, class_ascent_stop=False))
    assert "class_ascent_stop" not in method_params(create_method("neggrad+", class_ascent_stop=True, trace_as_absent=False),
                                                    class_wise=False)  # records before the trace rule
    assert "class_ascent_stop" not in method_params(create_method("neggrad+", class_ascent_stop=False), class_wise=True)
    assert method_params(create_method("neggrad+", class_ascent_stop=True), class_wise=True)["class_ascent_stop"] is True


def test_neggrad_ascent_stop_keeps_a_long_class_wise_run_from_collapsing(toy_original, toy_class_split):
    """Class-wise, a long run with a heavy ascent term drives the unbounded −CE(D_f) until D_r goes
    with it; with ``class_ascent_stop`` a D_f batch already at GA's stopping accuracy takes no ascent:
    the class is forgotten and D_r kept."""
    split = toy_class_split
    hard = dict(retain_weight=0.99, class_lr_share=1.0, class_epoch_share=2.0)
    kept = lambda m: sample_accuracy(m, split.retain)  # noqa: E731
    assert kept(unlearn("neggrad+", toy_original, split, class_ascent_stop=False, **hard)) < 50, \
        "the setting must collapse without the stop, or the test proves nothing"
    out = unlearn("neggrad+", toy_original, split, class_ascent_stop=True, **hard)
    assert sample_accuracy(out, split.forget) <= 10
    assert kept(out) > 90


def test_a_forget_batch_is_judged_in_eval_mode():
    """NegGrad+'s ascent stop asks whether a D_f batch looks unseen as an auditor would (eval mode).
    In train mode a BatchNorm layer normalises a one-class batch by its own statistics: here a
    constant batch becomes 0 and the head's bias alone decides, so the class would look forgotten."""
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(1), torch.nn.Linear(1, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0], [-1.0]]))  # eval mode (running mean 0, var 1): x > 0 is class 0
        model[1].bias.copy_(torch.tensor([0.0, 0.5]))  # a zero input is class 1
    x, y = torch.full((8, 1), 2.0), torch.zeros(8, dtype=torch.long)
    model.train()
    assert (model(x).argmax(1) != y).all(), "in train mode the batch looks forgotten"
    assert not batch_looks_unseen(model, x, y, 0.1), "in eval mode the class is still known"
    assert model.training, "the model's mode is restored"
    model.eval()
    assert not batch_looks_unseen(model, x, y, 0.1) and not model.training
