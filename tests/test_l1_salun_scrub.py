"""Focused tests of l1-sparse (penalty schedule), SalUn (saliency-restricted updates) and SCRUB
(max-steps only in the first ``msteps`` epochs)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unlearnkit.errors import ConfigError, TrainingError
from unlearnkit.methods import create_method
from unlearnkit.methods import l1_sparse as l1_module
from unlearnkit.methods import scrub as scrub_module
from unlearnkit.methods.base import fresh_copy
from unlearnkit.methods.l1_sparse import l1_norm, l1_weight
from unlearnkit.methods.salun import saliency_masks
from unlearnkit.sparsity import attach_masks, global_magnitude_masks, masks_of
from unlearnkit.training.evaluate import accuracy, predict_logits

from .conftest import TOY_BUDGET


def params_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# --- l1-sparse ---------------------------------------------------------------------------------

def test_l1_weight_decays_linearly_to_zero():
    gamma, total = 3e-4, 40
    w = torch.tensor([l1_weight(gamma, t, total) for t in range(total + 1)], dtype=torch.float64)
    assert w[0] == gamma and w[-1] == 0
    assert torch.allclose(w[1:] - w[:-1], torch.full((total,), -gamma / total, dtype=torch.float64))


def test_l1_sparse_schedule_spans_the_run_and_shrinks_weights(toy_original, toy_random_split, monkeypatch):
    calls = []
    real = l1_module.l1_weight
    monkeypatch.setattr(l1_module, "l1_weight", lambda g, t, n: calls.append((t, n)) or real(g, t, n))
    shares = dict(epoch_share=0.5, lr_share=1.0)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    sparse = create_method("l1-sparse", gamma=5e-3, **shares).unlearn(toy_original, toy_random_split, generator=g())
    steps = math.ceil(0.5 * TOY_BUDGET.epochs * math.ceil(len(toy_random_split.retain) / TOY_BUDGET.batch_size))
    assert calls == [(t, steps) for t in range(steps)], "one weight per optimiser step, from γ down towards 0"
    plain = create_method("l1-sparse", gamma=0.0, **shares).unlearn(toy_original, toy_random_split, generator=g())
    ft = create_method("ft", **shares).unlearn(toy_original, toy_random_split, generator=g())
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), ft.parameters())), "γ = 0 must be plain FT"
    assert l1_norm(sparse) < 0.97 * l1_norm(plain)


# --- SalUn -------------------------------------------------------------------------------------

def test_saliency_mask_is_the_global_top_share_of_forget_gradients(toy_original, toy_class_split):
    share = 0.3
    masks = saliency_masks(toy_original, toy_class_split.forget, share)
    total = sum(p.numel() for p in toy_original.parameters())
    assert sum(int(m.sum()) for m in masks.values()) == round(share * total)
    x, y = toy_class_split.forget.inputs(), toy_class_split.forget.labels
    grads = torch.autograd.grad(F.cross_entropy(toy_original(x), y), list(toy_original.parameters()))
    g = {n: gr.abs() for (n, _), gr in zip(toy_original.named_parameters(), grads)}
    salient = torch.cat([g[n][m] for n, m in masks.items()])
    other = torch.cat([g[n][~m] for n, m in masks.items()])
    assert salient.min() >= other.max() - 1e-7, "salient weights are those with the largest |gradient|, globally"


@pytest.mark.parametrize("pruned", [False, True])
def test_salun_updates_only_salient_weights(toy_original, toy_class_split, pruned):
    model = fresh_copy(toy_original)
    if pruned:
        attach_masks(model, global_magnitude_masks(model, 0.5))
    before = params_of(model)
    share = 0.2
    out = create_method("salun", saliency_share=share, epoch_share=0.5, lr_share=0.5).unlearn(
        model, toy_class_split, generator=torch.Generator().manual_seed(0))
    salient = saliency_masks(model, toy_class_split.forget, share)
    after = params_of(out)
    for name, mask in salient.items():
        assert torch.equal(after[name][~mask], before[name][~mask]), f"non-salient weights of {name} moved"
    assert any(not torch.equal(after[n][m], before[n][m]) for n, m in salient.items()), "nothing salient moved"
    pruning = masks_of(model)
    for name, mask in pruning.items():
        assert not salient[name][mask == 0].any(), "a pruned weight was called salient"
        assert torch.all(after[name][mask == 0] == 0)
    alive = sum(int((pruning[n] != 0).sum()) if n in pruning else p.numel() for n, p in model.named_parameters())
    assert sum(int(m.sum()) for m in salient.values()) == round(share * alive)
    assert out.state_dict().keys() == model.state_dict().keys(), "the saliency map must not be stored on the model"


# --- SCRUB -------------------------------------------------------------------------------------

@pytest.mark.parametrize("msteps,min_forget_steps", [(0, 1), (2, 1), (2, 20)])
def test_scrub_max_steps_stop_after_msteps(toy_original, toy_class_split, msteps, min_forget_steps):
    """Each training forward pass of the student is logged as D_f or D_r: the D_f passes (max-steps)
    must be exactly one pass over D_f at the start of each of the first ``msteps`` rounds — as many
    passes as make ``min_forget_steps`` steps when D_f has fewer batches. The ascent stop is off: a
    batch it skips takes no training forward pass."""
    split = toy_class_split
    fingerprint = lambda x: x.flatten(1).sum(1).mul(1e3).round().tolist()  # noqa: E731
    forget_rows = set(fingerprint(split.forget.inputs()))
    log = []

    def spy(module, inputs):
        if torch.is_grad_enabled() and module.training:  # the student's steps, not the frozen teacher
            log.append("f" if set(fingerprint(inputs[0])) <= forget_rows else "r")

    model = fresh_copy(toy_original)
    model.register_forward_pre_hook(spy)  # deep-copied into the student and the teacher
    rounds, epoch_share = 4, 0.5
    create_method("scrub", rounds=rounds, msteps=msteps, epoch_share=epoch_share, lr_share=0.01,
                  forget_batch_size=32, min_forget_steps=min_forget_steps, class_ascent_stop=False).unlearn(
        model, split, generator=torch.Generator().manual_seed(0))
    per_pass = math.ceil(len(split.forget) / 32)
    per_f = per_pass * math.ceil(min_forget_steps / per_pass)
    assert (per_f > per_pass) == (min_forget_steps == 20)
    total = math.ceil(epoch_share * TOY_BUDGET.epochs * math.ceil(len(split.retain) / TOY_BUDGET.batch_size))
    expected = "".join("f" * per_f * (r < msteps) + "r" * (total * (r + 1) // rounds - total * r // rounds)
                       for r in range(rounds))
    assert "".join(log) == expected
    assert log.count("r") == total and log.count("f") == per_f * msteps


def test_distill_kl_without_a_class_is_the_kl_to_the_renormalised_teacher():
    """``drop_classes``: the target is the teacher's softened distribution over the other classes,
    renormalised; the student keeps all its classes (mass on the dropped one is what the KL penalises)."""
    from unlearnkit.methods.scrub import distill_kl

    g = torch.Generator().manual_seed(0)
    student, teacher, t, c = torch.randn(5, 4, generator=g), 3 * torch.randn(5, 4, generator=g), 4.0, 1
    keep = [j for j in range(4) if j != c]
    p = torch.softmax(teacher[:, keep] / t, dim=1)
    log_q = torch.log_softmax(student / t, dim=1)[:, keep]
    direct = (p * (p.log() - log_q)).sum(1).mean() * t * t
    torch.testing.assert_close(distill_kl(student, teacher, t, drop_classes=[c]), direct)
    assert torch.isfinite(distill_kl(student, teacher, t, drop_classes=[c]))
    torch.testing.assert_close(distill_kl(student, teacher, t), distill_kl(student, teacher, t, drop_classes=()))


def test_scrub_masks_the_teacher_only_class_wise(toy_original, toy_random_split):
    """``class_mask_teacher`` acts on requests with a class to forget whole only: a random request's
    model does not depend on it. Its ID-request key carries it only with ``trace_as_absent`` (it acts
    on an ID request that leaves a class a trace); without, the key is the one of records before it."""
    from unlearnkit.methods.base import method_params

    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    on, off = (create_method("scrub", class_mask_teacher=v, epoch_share=0.2) for v in (True, False))
    a, b = (m.unlearn(toy_original, toy_random_split, generator=g()) for m in (on, off))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert method_params(on, class_wise=False)["class_mask_teacher"] is True
    assert "class_mask_teacher" not in method_params(create_method("scrub", trace_as_absent=False), class_wise=False)
    assert method_params(on, class_wise=True)["class_mask_teacher"] is True


def test_scrub_stops_the_ascent_on_a_class_that_looks_unseen(toy_original, toy_class_split):
    """Class-wise, 30 max-steps a round for 3 rounds at 0.1 × lr push KL(teacher ‖ student) on D_f
    to NaN; with ``class_ascent_stop`` (the default) a D_f batch the student gets <= 10% right is not
    pushed further: the run finishes, the class is forgotten and D_r kept."""
    split = toy_class_split
    hard = dict(lr_share=0.1, rounds=3, msteps=3, min_forget_steps=30, forget_batch_size=32)
    with pytest.raises(TrainingError, match="max-step"):
        create_method("scrub", class_ascent_stop=False, **hard).unlearn(
            toy_original, split, generator=torch.Generator().manual_seed(0))
    out = create_method("scrub", **hard).unlearn(toy_original, split, generator=torch.Generator().manual_seed(0))
    assert accuracy(predict_logits(out, split.forget), split.forget.labels) <= 10
    assert accuracy(predict_logits(out, split.retain), split.retain.labels) > 95


def test_scrub_judges_a_forget_batch_in_eval_mode_unless_told_train(toy_original, toy_class_split, monkeypatch):
    """The ascent stop asks ``ga.batch_looks_unseen`` (eval mode, what an auditor sees; its BatchNorm
    case is tested in test_class_knobs.py) whether a D_f batch is forgotten; ``class_stop_judge="train"``
    (records before it) judges the train-mode logits and never asks it."""
    asked = []

    def judge(answer):
        def looks_unseen(model, x, y, stop):
            asked.append(stop)
            return answer
        return looks_unseen

    run = lambda **kw: create_method("scrub", epoch_share=0.2, **kw).unlearn(  # noqa: E731
        toy_original, toy_class_split, generator=torch.Generator().manual_seed(0))
    same = lambda a, b: all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # noqa: E731
    unbounded = run(class_ascent_stop=False)
    monkeypatch.setattr(scrub_module, "batch_looks_unseen", judge(False))
    assert same(run(), unbounded), "a batch judged still known takes its max-step"
    assert asked and all(s == pytest.approx(0.1) for s in asked)
    monkeypatch.setattr(scrub_module, "batch_looks_unseen", judge(True))
    assert not same(run(), unbounded), "a batch judged unseen takes none"
    asked.clear()
    run(class_stop_judge="train")
    assert not asked
    with pytest.raises(ConfigError, match="class_stop_judge"):
        create_method("scrub", class_stop_judge="test")


def test_l1_sparse_uses_class_gamma_on_class_wise_requests(toy_original, toy_class_split):
    shares = dict(epoch_share=0.5, lr_share=1.0, class_lr_share=1.0)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    plain = create_method("l1-sparse", gamma=5e-3, class_gamma=0.0, **shares).unlearn(
        toy_original, toy_class_split, generator=g())
    ft = create_method("ft", **shares).unlearn(toy_original, toy_class_split, generator=g())
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), ft.parameters())), \
        "class-wise requests must use class_gamma, not gamma"
