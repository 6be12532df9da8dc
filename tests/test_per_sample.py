"""Vectorised per-sample gradients agree with a per-sample autograd loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearnkit.methods.base import fresh_copy
from unlearnkit.sparsity import attach_masks, global_magnitude_masks
from unlearnkit.training.per_sample import (flat_per_sample_grads, mean_flat_grad, per_sample_grad_norms,
                                            per_sample_grads)


def looped(model, x, y):
    rows = []
    for i in range(len(y)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1).clone() for p in model.parameters()]))
    return torch.stack(rows)


def test_vectorised_equals_loop(toy_original, toy_random_split):
    model = fresh_copy(toy_original).eval()
    x, y = next(toy_random_split.forget.batches(9))
    fast = flat_per_sample_grads(model, x, y)
    assert fast.shape == (9, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(fast, looped(model, x, y), rtol=1e-4, atol=1e-6)
    grads = per_sample_grads(model, x, y)
    assert list(grads) == [n for n, _ in model.named_parameters()]


def test_norms_and_mean_gradient(toy_original, toy_random_split):
    model = fresh_copy(toy_original).eval()
    forget = toy_random_split.forget
    x, y = next(forget.batches(len(forget)))
    flat = flat_per_sample_grads(model, x, y)
    torch.testing.assert_close(per_sample_grad_norms(model, forget, batch_size=7), flat.norm(dim=1))
    torch.testing.assert_close(mean_flat_grad(model, forget, batch_size=5), flat.mean(dim=0), rtol=1e-4, atol=1e-6)


def test_pruned_weights_get_zero_gradient(toy_original, toy_random_split):
    model = attach_masks(fresh_copy(toy_original), global_magnitude_masks(toy_original, 0.7))
    x, y = next(toy_random_split.forget.batches(4))
    grads = per_sample_grads(model, x, y)
    mask = model.encoder[0].weight_mask
    assert torch.all(grads["encoder.0.weight"][:, mask == 0] == 0)
    assert grads["encoder.0.weight"][:, mask == 1].abs().sum() > 0
