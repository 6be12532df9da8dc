"""DAU and its attacker: sensitivity against references, the Barlow-Twins loss on known inputs,
the attack network's shapes, and the game's effect on a fixed attacker."""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn

from unlearnkit.attacks.samia import (SamiaAttack, SamiaNet, attack_inputs, attacker_step, balanced_batch, inputs_of,
                                      samia_audit, sensitivity)
from unlearnkit.errors import ConfigError, TrainingError
from unlearnkit.methods import create_method
from unlearnkit.methods.dau import adversarial_loss, barlow_twins_loss
from unlearnkit.models import create_model
from unlearnkit.training import train
from unlearnkit.training.batchnorm import batchnorms, recompute_running_statistics

from .conftest import TOY_BUDGET


def test_attacker_network_and_input_shapes(toy_original, toy_random_split):
    inputs = inputs_of(toy_original, toy_random_split.forget, generator=torch.Generator().manual_seed(0))
    n, c = len(toy_random_split.forget), toy_random_split.num_classes
    assert inputs.shape == (n, 3 * c)
    p, s, y = inputs[:, :c], inputs[:, c:2 * c], inputs[:, 2 * c:]
    assert torch.allclose(p.sum(1), torch.ones(n)) and (s >= 0).all()
    assert torch.equal(y.argmax(1), toy_random_split.forget.labels) and torch.equal(y.sum(1), torch.ones(n))
    net = SamiaNet(c)
    assert net(inputs).shape == (n, 2)
    assert sum(isinstance(m, nn.TransformerEncoderLayer) for m in net.modules()) == 3
    layer = net.encoder.layers[0]
    assert layer.self_attn.num_heads == 4 and layer.self_attn.embed_dim == 64 and layer.linear1.out_features == 128
    assert net.head[1].in_features == 64 * c


def test_sensitivity_of_linear_softmax_matches_finite_differences_and_jacobian():
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    m, eps = 10, 1e-3
    p = torch.softmax(model(x), dim=1)
    s = sensitivity(model, x, p, generator=torch.Generator().manual_seed(11), copies=m, eps=eps)
    u = torch.randn((m, 4, 5), generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    with torch.no_grad():
        reference = sum((torch.softmax(model(x + eps * u[k]), dim=1) - p).abs() for k in range(m)) / (m * eps)
        assert torch.allclose(s, reference, rtol=1e-9, atol=1e-12)
        # first order: |J u| with J = (diag(p) − p pᵀ) W, the softmax-linear Jacobian
        jac = (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) @ model.weight
        linear = torch.stack([(jac @ u[k][:, :, None]).squeeze(2).abs() for k in range(m)]).mean(0)
        assert torch.allclose(s, linear, rtol=2e-2, atol=1e-6)
    # differentiable in the weights (the defender backpropagates through it)
    s.sum().backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all() and model.weight.grad.abs().sum() > 0


def test_sensitivity_of_a_constant_model_is_zero():
    model = nn.Linear(5, 3)
    nn.init.zeros_(model.weight)
    x = torch.randn(6, 5)
    p = torch.softmax(model(x), dim=1)
    assert torch.equal(sensitivity(model, x, p, generator=torch.Generator().manual_seed(0)), torch.zeros(6, 3))


def test_barlow_twins_identical_features_leave_only_the_off_diagonal_term():
    z = torch.randn(32, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    corr = torch.corrcoef(z.T)
    off = (corr ** 2).sum() - (torch.diagonal(corr) ** 2).sum()
    assert barlow_twins_loss(z, z, lambd=5e-3, eps=0.0).item() == pytest.approx(5e-3 * off.item() / 5, rel=1e-9)
    assert barlow_twins_loss(z, z, lambd=0.0, eps=0.0).item() == pytest.approx(0.0, abs=1e-12)


def test_barlow_twins_hand_computed_2x2():
    # columns normalise to (−1, 1) except zb's second, (1, −1): C = [[1, −1], [1, −1]]
    za = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    zb = torch.tensor([[0.0, 5.0], [2.0, 1.0]])
    # on-diagonal (1 − 1)² + (1 + 1)² = 4, off-diagonal λ·((−1)² + 1²) = 2λ; per dimension: / 2
    assert barlow_twins_loss(za, zb, lambd=5e-3, eps=0.0).item() == pytest.approx(4.01 / 2)
    assert barlow_twins_loss(za, zb, lambd=1.0, eps=0.0).item() == pytest.approx(6.0 / 2)


@pytest.mark.parametrize("n", [32, 256])
def test_barlow_twins_scale_does_not_grow_with_the_feature_width(n):
    # independent D_f / D_v features, as at the game's start: from a 128-d (W1, W2) to a 512-d
    # (ResNet-18 width 64) feature the loss stays within 1.5× and its gradient within 2.5× (the
    # summed loss grew 4×: it swamped the cross-entropy at width 64)
    g = torch.Generator().manual_seed(0)
    loss, grad = {}, {}
    for d in (128, 512):
        za = torch.randn(n, d, generator=g, requires_grad=True)
        zb = torch.randn(n, d, generator=g)
        value = barlow_twins_loss(za, zb)
        value.backward()
        loss[d], grad[d] = value.item(), za.grad.norm().item()
    assert 0.66 < loss[512] / loss[128] < 1.5
    assert 0.4 < grad[512] / grad[128] < 2.5


def test_adversarial_loss_forms():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    member = torch.softmax(logits, 1)[:, 1]
    assert adversarial_loss(logits, "non-saturating").item() == pytest.approx(-torch.log(1 - member).mean().item())
    assert adversarial_loss(logits, "minimax").item() == pytest.approx(torch.log(member).mean().item())


@pytest.mark.parametrize("form", ["non-saturating", "minimax"])
def test_defender_steps_reduce_a_fixed_attackers_advantage(form, toy_original, toy_class_split):
    from unlearnkit.methods.base import fresh_copy

    split, g = toy_class_split, torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    fm, fv = (inputs_of(toy_original, s, generator=g) for s in (split.forget, split.val))
    attacker = SamiaNet(split.num_classes)
    opt = torch.optim.Adam(attacker.parameters(), lr=1e-3)
    for _ in range(60):
        attacker_step(attacker, opt, *balanced_batch(fm, fv, 64, g))
    attacker.eval().requires_grad_(False)

    def member_prob(model):
        return torch.softmax(attacker(inputs_of(model, split.forget, generator=torch.Generator().manual_seed(1))), 1)[:, 1].mean()

    defender = fresh_copy(toy_original).eval()
    before = member_prob(defender)
    sgd = torch.optim.SGD(defender.parameters(), lr=0.2)
    x, y = next(split.forget.batches(len(split.forget)))
    for _ in range(5):
        p = torch.softmax(defender(x), 1)
        loss = adversarial_loss(attacker(attack_inputs(p, sensitivity(defender, x, p, generator=g), y)), form)
        sgd.zero_grad()
        loss.backward()
        sgd.step()
    assert before > 0.6, "the pre-trained attacker should call D_f member"
    assert member_prob(defender) < before - 0.3


def test_class_wise_schedule():
    dau = create_method("dau", class_zero_after=30)
    assert dau.weights(29, True) == (dau.alpha, dau.beta)
    assert dau.weights(30, True) == (0.0, dau.beta)
    assert dau.weights(500, False) == (dau.alpha, dau.beta)
    assert create_method("dau", class_zero="beta").weights(30, True) == (dau.alpha, 0.0)
    assert create_method("dau", class_zero="none").weights(30, True) == (dau.alpha, dau.beta)
    # class_zero_below: past step 30 the weight stays on until the forget batch is forgotten enough
    assert dau.weights(30, True, switched=False) == (dau.alpha, dau.beta)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="class_zero_below"):
            create_method("dau", class_zero_below=bad)


def test_iterations_are_capped_by_the_original_training_budget(toy_class_split):
    """DAU makes at most budget_cap × the original's training steps; the class-wise switch and the
    attacker's pre-training shrink with them."""
    split = toy_class_split
    b = split.budget
    original = b.epochs * math.ceil(len(split.train) / b.batch_size)
    share = original / 10 ** 6
    assert create_method("dau", iterations=10 ** 6, budget_cap=1.0).schedule(split) == (original, math.ceil(30 * share),
                                                                                      math.ceil(100 * share))
    capped, zero_after, pretrain = create_method("dau", iterations=1000, class_zero_after=300, budget_cap=0.5).schedule(split)
    assert capped == math.ceil(0.5 * original) and zero_after == math.ceil(300 * capped / 1000)
    assert pretrain == math.ceil(100 * capped / 1000)
    assert create_method("dau", iterations=3, class_zero_after=1, pretrain_steps=7, budget_cap=1.0).schedule(split) == (3, 1, 7)
    with pytest.raises(ConfigError, match="budget_cap"):
        create_method("dau", budget_cap=0)


def test_class_zero_below_keeps_the_adversarial_term_on_until_the_class_is_forgotten(toy_original, toy_class_split):
    # a tiny learning rate keeps the forget class classified right, so with class_zero_below=0 α stays
    # on past class_zero_after (the attacker keeps playing) and the result differs from the paper's
    # fixed schedule (the default class_zero_below=1), which switches α off after step 1
    small = dict(iterations=4, pretrain_steps=2, pretrain_samples=16, attack_batch_size=8, class_zero_after=1, lr_share=1e-6)
    fixed = create_method("dau", **small).unlearn(toy_original, toy_class_split, generator=torch.Generator().manual_seed(3))
    held = create_method("dau", class_zero_below=0.0, **small).unlearn(toy_original, toy_class_split,
                                                                        generator=torch.Generator().manual_seed(3))
    assert any(not torch.equal(fixed.state_dict()[k], held.state_dict()[k]) for k in fixed.state_dict())


def test_dau_nobt_is_dau_without_the_barlow_twins_term(toy_original, toy_random_split):
    small = dict(iterations=3, pretrain_steps=2, pretrain_samples=16, attack_batch_size=8)
    a = create_method("dau-nobt", **small).unlearn(toy_original, toy_random_split, generator=torch.Generator().manual_seed(3))
    b = create_method("dau", beta=0.0, **small).unlearn(toy_original, toy_random_split, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(ValueError, match="beta"):
        create_method("dau-nobt", beta=0.1)


def _tiny_resnet(dataset):
    return create_model("resnet18", num_classes=dataset.num_classes, input_shape=dataset.input_shape, seed=0, width=4)


def test_batchnorm_statistics_are_recomputed_on_the_retain_set_after_the_game(toy_dataset, toy_base, toy_random_split):
    model = _tiny_resnet(toy_dataset)
    train(model, toy_base[0].train, dataclasses.replace(TOY_BUDGET, epochs=1), generator=torch.Generator().manual_seed(0))
    out = create_method("dau", iterations=4, pretrain_steps=2, pretrain_samples=16, attack_batch_size=8).unlearn(
        model, toy_random_split, generator=torch.Generator().manual_seed(0))
    assert not out.training
    again = copy.deepcopy(out)
    recompute_running_statistics(again, toy_random_split.retain)
    stats = [k for k in out.state_dict() if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.allclose(out.state_dict()[k], again.state_dict()[k], atol=1e-6) for k in stats)
    assert any(not torch.allclose(out.state_dict()[k], model.state_dict()[k]) for k in stats)
    assert all(b.running_mean is not None for b in batchnorms(out))  # the buffers came back


def test_one_forget_sample_on_a_batchnorm_network_is_a_clear_error(toy_dataset, toy_base, toy_random_split):
    model = _tiny_resnet(toy_dataset)
    one = dataclasses.replace(toy_random_split, forget=toy_random_split.forget.take(torch.tensor([0])))
    with pytest.raises(ValueError, match="dau on a network with BatchNorm needs at least 2 samples in D_f and in D_v.*got 1"):
        create_method("dau", iterations=2).unlearn(model, one, generator=torch.Generator().manual_seed(0))


def test_divergence_is_a_training_error(toy_original, toy_random_split):
    dau = create_method("dau", lr_share=1e12, iterations=20, pretrain_steps=1, pretrain_samples=8, attack_batch_size=8)
    with pytest.raises(TrainingError, match=r"non-finite.*diverged; lower dau.lr_share \(now 1000000000000.0\) or dau.beta \(now 1.28\)"):
        dau.unlearn(toy_original, toy_random_split, generator=torch.Generator().manual_seed(0))


def test_samia_attack_separates_known_members():
    # members: confident correct predictions, insensitive to noise; non-members: unsure and sensitive
    g = torch.Generator().manual_seed(0)
    n, c = 200, 4
    y = torch.arange(n) % c

    def rows(conf, sens):
        p = torch.full((n, c), 0.0) + ((1 - conf) / (c - 1))[:, None]
        p[torch.arange(n), y] = conf
        return attack_inputs(p, sens[:, None].expand(n, c).clone(), y)

    members = rows(0.9 + 0.1 * torch.rand(n, generator=g), 0.1 * torch.rand(n, generator=g))
    nonmembers = rows(0.4 + 0.3 * torch.rand(n, generator=g), 0.5 + 0.5 * torch.rand(n, generator=g))
    attack = SamiaAttack(steps=150, seed=0)
    torch.manual_seed(0)
    attack.net = SamiaNet(c)
    opt = torch.optim.Adam(attack.net.parameters(), lr=1e-3)
    for _ in range(150):
        attacker_step(attack.net, opt, *balanced_batch(members, nonmembers, 64, g))
    assert (attack.score_inputs(members) > 0).float().mean() > 0.95
    assert (attack.score_inputs(nonmembers) < 0).float().mean() > 0.95


def test_samia_audit_on_the_toy_model(toy_original, toy_random_split):
    r = samia_audit(toy_original, toy_random_split, steps=30)
    assert set(r) == {"attack.samia.bacc", "attack.samia.auc"} and all(0 <= v <= 100 for v in r.values())
    assert samia_audit(toy_original, toy_random_split, steps=30) == r  # seeded
    with pytest.raises(ValueError):
        SamiaAttack(optimizer="rmsprop")
    with pytest.raises(RuntimeError):
        SamiaAttack().score_inputs(torch.zeros(2, 12))
    empty = dataclasses.replace(toy_random_split).forget.take(slice(0, 0))
    with pytest.raises(ValueError):
        SamiaAttack(steps=1).fit(toy_original, empty, toy_random_split.val)


def test_cli_run_prints_dau_rows_and_the_attack_tables(tmp_path, capsys, monkeypatch):
    import functools

    import unlearnkit.experiments.recipes.run as recipe
    from tests.test_cli import TINY, records
    from unlearnkit.cli import main

    monkeypatch.setattr(recipe, "samia_audit", functools.partial(samia_audit, steps=10, max_target=100))
    out = tmp_path / "dau"
    small = ["params.dau.iterations=4", "params.dau.pretrain_steps=2", "params.dau-nobt.iterations=4",
             "params.dau-nobt.pretrain_steps=2"]
    assert main(["run", *TINY, *small, "--seeds", "0", "--methods", "dau,dau-nobt", "noise_floor=false", "samia=true",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for needle in ("| DAU |", "| DAU (no BT) |", "samia bacc / AUC", "Membership-inference robustness"):
        assert needle in printed
    attack_lines = printed[printed.index("Membership-inference robustness"):].splitlines()
    assert any(line.startswith("| DAU |") for line in attack_lines)
    dau = next(r for r in records(out) if r["row"] == "dau")
    assert {"attack.samia.bacc", "attack.samia.auc", "attack.m_entropy.bacc"} <= set(dau["metrics"])
    assert dau["params"]["iterations"] == 4
