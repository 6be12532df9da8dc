"""FF's Fisher and IU's WoodFisher solve against direct computations on tiny problems."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unlearnkit.errors import ConfigError
from unlearnkit.methods import create_method
from unlearnkit.methods.base import fresh_copy
from unlearnkit.methods.ff import fisher_noise_std, head_names
from unlearnkit.models import create_model
from unlearnkit.training.evaluate import accuracy, predict_logits
from unlearnkit.training.per_sample import (fisher_diagonal, flat_per_sample_grads, stack_flat_grads,
                                            woodfisher_solve)


def tiny_model():
    return create_model("cnn", num_classes=4, input_shape=(1, 8, 8), seed=0, channels=(2, 3), hidden=4).eval()


def looped_fisher(model, x, y, expected: bool):
    """The diagonal Fisher one sample and one class at a time, as Golatkar et al.'s code does."""
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        probs = torch.softmax(model(x[i : i + 1]), dim=1)[0].detach()
        for c in range(probs.shape[0]) if expected else [int(y[i])]:
            model.zero_grad()
            F.cross_entropy(model(x[i : i + 1]), torch.tensor([c])).backward()
            weight = probs[c] if expected else 1.0
            for n, p in model.named_parameters():
                total[n] += weight * p.grad.square()
    return {n: t / len(x) for n, t in total.items()}


@pytest.mark.parametrize("expected", [True, False])
def test_fisher_diagonal_matches_a_loop(toy_dataset, expected):
    model = tiny_model()
    samples = toy_dataset.train.all().take(slice(0, 11))
    x, y = next(samples.batches(11))
    fast = fisher_diagonal(model, samples, expected=expected, batch_size=4)
    slow = looped_fisher(model, x, y, expected)
    assert fast.keys() == slow.keys()
    for n in slow:
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-4, atol=1e-9)


def test_fisher_noise_follows_the_reference_shaping(toy_original):
    fisher = {n: torch.full_like(p, 1e-2) for n, p in toy_original.named_parameters()}
    fisher["encoder.0.weight"][0] = 0.0  # no information: 1/F hits the cap
    std = fisher_noise_std(toy_original, fisher, alpha=1e-4)
    assert head_names(toy_original) == {"head.weight", "head.bias"}
    torch.testing.assert_close(std["encoder.0.weight"][1], torch.full_like(std["encoder.0.weight"][1], 1e-4 ** 0.5 * 10))
    torch.testing.assert_close(std["encoder.0.weight"][0], torch.full_like(std["encoder.0.weight"][0], 1e-4 ** 0.5 * 1e3 ** 0.5))
    torch.testing.assert_close(std["head.weight"], torch.full_like(std["head.weight"], (1e-4 * 1e2 * 10) ** 0.5))
    torch.testing.assert_close(std["encoder.0.bias"], torch.full_like(std["encoder.0.bias"], (1e-4 * 1e2 * 10) ** 0.5))


def test_woodfisher_solve_equals_the_exact_inverse(toy_dataset):
    model = tiny_model()
    samples = toy_dataset.train.all().take(slice(0, 13))
    grads = stack_flat_grads(model, samples, batch_size=5)
    x, y = next(samples.batches(13))
    torch.testing.assert_close(grads, flat_per_sample_grads(model, x, y))
    g = grads.double()
    p = g.shape[1]
    v = torch.randn(p, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for damping in (1e-3, 1e-1):
        fisher = damping * torch.eye(p, dtype=torch.float64) + g.T @ g / g.shape[0]
        exact = torch.linalg.solve(fisher, v)
        torch.testing.assert_close(woodfisher_solve(g, v, damping=damping), exact, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(woodfisher_solve(g, v[:, 0], damping=damping), exact[:, 0], rtol=1e-8, atol=1e-10)
        # float32 gradients, as IU uses them
        torch.testing.assert_close(woodfisher_solve(grads, v[:, 0].float(), damping=damping).double(), exact[:, 0],
                                   rtol=2e-3, atol=1e-6 / damping)
    with pytest.raises(ValueError):
        woodfisher_solve(g, v, damping=0.0)


def test_iu_step_is_the_scaled_newton_step(toy_original, toy_random_split):
    """With every D_r sample in the Fisher, IU moves the weights by alpha·(n_f/n_r)·F⁻¹∇L(D_f) exactly."""
    from unlearnkit.training.per_sample import mean_flat_grad

    split = toy_random_split
    method = create_method("iu", alpha=0.5, damping=1e-2, num_samples=len(split.retain), retain_guard=0)
    out = method.unlearn(toy_original, split, generator=torch.Generator().manual_seed(0))
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()])  # noqa: E731
    grads = stack_flat_grads(toy_original, split.retain)
    expected = 0.5 * len(split.forget) / len(split.retain) * woodfisher_solve(
        grads, mean_flat_grad(toy_original, split.forget), damping=1e-2)
    torch.testing.assert_close(flat(out) - flat(toy_original), expected, rtol=1e-4, atol=1e-6)


GUARDED = {"iu": {"damping": 1e-2}, "ff": {}}  # besides the guard's settings
WILD = {"iu": 100.0, "ff": 1e-2}  # alphas that wreck D_r unguarded
HARMLESS = {"iu": 0.5, "ff": 1e-8}
POWER = {"iu": 1.0, "ff": 0.5}  # the move scales as the halved knob to this power (FF: noise std = sqrt(variance))


def _move(name, original, split, **params):
    out = create_method(name, num_samples=len(split.retain), guard_samples=len(split.retain), **GUARDED[name],
                        **params).unlearn(original, split, generator=torch.Generator().manual_seed(0))
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()])  # noqa: E731
    return out, flat(out) - flat(original)


@pytest.mark.parametrize("name", ["iu", "ff"])
def test_guard_weakens_an_edit_that_wrecks_the_retain_set(name, toy_original, toy_random_split):
    """An alpha far too large costs D_r accuracy unguarded; the guard weakens the same edit (IU's
    step, FF's noise draw) by halving alpha until D_r accuracy stays within retain_guard points."""
    split = toy_random_split
    ra = lambda m: accuracy(predict_logits(m, split.retain), split.retain.labels)  # noqa: E731
    before = ra(toy_original)
    wild, wild_move = _move(name, toy_original, split, alpha=WILD[name], retain_guard=0)
    assert before - ra(wild) > 10  # the unguarded edit does real damage, so the guard has work to do
    kept, kept_move = _move(name, toy_original, split, alpha=WILD[name], retain_guard=2.0, guard_halvings=16)
    assert before - ra(kept) <= 2.0
    scale = (kept_move @ wild_move / (wild_move @ wild_move)).item()
    halvings = math.log2(scale) / POWER[name]
    assert scale < 1 and halvings == pytest.approx(round(halvings), abs=1e-3)
    torch.testing.assert_close(kept_move, scale * wild_move, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", ["iu", "ff"])
def test_guard_keeps_a_harmless_edit_whole(name, toy_original, toy_random_split):
    """An edit that costs no D_r accuracy gives the unguarded model bit for bit."""
    _, guarded = _move(name, toy_original, toy_random_split, alpha=HARMLESS[name], retain_guard=2.0)
    _, plain = _move(name, toy_original, toy_random_split, alpha=HARMLESS[name], retain_guard=0)
    assert torch.equal(guarded, plain)


def test_ff_guard_leaves_the_forgotten_class_row_redrawn(toy_original, toy_class_split):
    """Class-wise, the guard scales the Fisher noise but not the forgotten class's redrawn head row."""
    split = toy_class_split
    wild, _ = _move("ff", toy_original, split, alpha=WILD["ff"], retain_guard=0)
    kept, _ = _move("ff", toy_original, split, alpha=WILD["ff"], retain_guard=2.0)
    c = split.forget_class
    assert torch.equal(kept.head.weight[c], wild.head.weight[c])
    assert not torch.equal(kept.head.weight[c - 1], wild.head.weight[c - 1])
    assert kept.head.weight[c].abs().max() < 0.2  # around 0, not the original row plus noise


@pytest.mark.parametrize("name", ["iu", "ff"])
@pytest.mark.parametrize("params", [{"retain_guard": -1.0}, {"guard_samples": 0}, {"guard_halvings": -1}])
def test_guard_rejects_bad_settings(name, params):
    with pytest.raises(ConfigError, match=f"{name}.(retain_guard|guard_samples|guard_halvings)"):
        create_method(name, **params)


def test_ff_noise_scales_with_sqrt_alpha(toy_original, toy_random_split):
    """Same generator, same Fisher sample and draws: four times alpha moves every weight twice as far."""
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()])  # noqa: E731
    moves = []
    for alpha in (1e-6, 4e-6):
        out = create_method("ff", alpha=alpha, num_samples=200).unlearn(
            fresh_copy(toy_original), toy_random_split, generator=torch.Generator().manual_seed(3))
        moves.append(flat(out) - flat(toy_original))
    torch.testing.assert_close(moves[1], 2 * moves[0], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("class_rows", [True, False])
def test_ff_redraws_the_forgotten_class_head_row_around_zero(toy_original, toy_class_split, toy_random_split, class_rows):
    """Class-wise, the forgotten class's head row and bias end near 0 (variance 1e-3, as in Golatkar
    et al.'s and Jia et al.'s code) and the class is mostly forgotten (on the toy task a zero logit still
    wins for some of its samples); off, or on a random request, no row is zeroed."""
    split = toy_class_split
    c = split.forget_class
    out = create_method("ff", class_rows=class_rows).unlearn(toy_original, split, generator=torch.Generator().manual_seed(0))
    before, after = toy_original.head.weight[c].detach(), out.head.weight[c].detach()
    near_zero = after.abs().max() < 0.15 and out.head.bias[c].abs() < 0.15
    assert bool(near_zero) == class_rows and before.abs().max() > 0.3
    forget_before = accuracy(predict_logits(toy_original, split.forget), split.forget.labels)
    forget_after = accuracy(predict_logits(out, split.forget), split.forget.labels)
    assert (forget_after < forget_before - 30) == class_rows, (forget_before, forget_after)
    randomly = create_method("ff").unlearn(toy_original, toy_random_split, generator=torch.Generator().manual_seed(0))
    assert randomly.head.weight.detach().abs().amax(dim=1).min() > 0.15
