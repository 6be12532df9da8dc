"""Per-sample gradients from layer inputs × output gradients (training/layer_grads.py) agree with
torch.func's vmap over every layer type they cover, and hand over to vmap where they do not."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import grad, vjp, vmap

from unlearnkit.models import create_model
from unlearnkit.training import per_sample as ps
from unlearnkit.training.layer_grads import layer_grads


def by_vmap(model, x, y):
    params, forward = ps._functional(model, None)

    def sample_loss(p, xi, yi):
        return nn.functional.cross_entropy(forward(p, xi.unsqueeze(0)).squeeze(0), yi)

    return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)


def expected_by_vmap(model, x):
    params, forward = ps._functional(model, None)

    def sample(p, xi):
        logits, pull = vjp(lambda q: forward(q, xi.unsqueeze(0)).squeeze(0), p)
        probs = torch.softmax(logits.detach(), 0)
        (per_class,) = vmap(pull)(probs.unsqueeze(0) - torch.eye(probs.shape[0]))
        return {n: torch.tensordot(probs, g.square(), dims=1) for n, g in per_class.items()}

    return vmap(sample, in_dims=(None, 0))(params, x)


class Odd(nn.Module):
    """In-place ReLU, a strided and dilated conv with bias, BatchNorm1d and a Linear over positions."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, stride=2, padding=2, dilation=2)
        self.relu = nn.ReLU(inplace=True)
        self.mix = nn.Linear(4, 5)  # applied to the last axis of a [B, 3·4, 4] tensor
        self.bn = nn.BatchNorm1d(60)
        self.head = nn.Linear(60, 4)

    def forward(self, x):
        h = self.relu(self.conv(x))  # [B, 3, 4, 4]
        h = self.relu(self.mix(h.reshape(len(x), 12, 4)))  # [B, 12, 5]
        return self.head(self.bn(h.flatten(1)))


def trained_stats(model, shape):
    model.train()
    with torch.no_grad():
        model(torch.randn(32, *shape))
    return model.eval()


@pytest.mark.parametrize("name, shape", [("cnn", (1, 12, 12)), ("mlp", (1, 6, 6)), ("resnet18", (3, 8, 8)), ("odd", (2, 8, 8))])
def test_layer_path_equals_vmap(name, shape):
    torch.manual_seed(0)
    model = Odd() if name == "odd" else create_model(
        name, num_classes=4, input_shape=shape, seed=0, **({"width": 4} if name == "resnet18" else {}))
    model = trained_stats(model, shape)  # BatchNorm with running statistics that are not 0/1
    x, y = torch.randn(5, *shape), torch.randint(0, 4, (5,))
    names = ps.trainable_names(model)
    assert layer_grads(model, x, lambda logits: [logits], names) is not None  # the fast path is taken
    slow = by_vmap(model, x, y)
    fast = ps.per_sample_grads(model, x, y)
    for n in names:
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-4, atol=1e-6)
    flat = ps.flat_per_sample_grads(model, x, y)
    torch.testing.assert_close(flat, torch.cat([slow[n].reshape(5, -1) for n in names], 1), rtol=1e-4, atol=1e-6)
    expected, slow_expected = ps.expected_squared_grads(model, x), expected_by_vmap(model, x)
    for n in names:
        torch.testing.assert_close(expected[n], slow_expected[n], rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_out_rows_are_written_in_place_and_the_rest_is_untouched():
    model = trained_stats(create_model("cnn", num_classes=3, input_shape=(1, 8, 8), seed=1, channels=(2, 3), hidden=5),
                          (1, 8, 8))
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,))
    size = sum(p.numel() for p in model.parameters())
    big = torch.full((6, size), 7.0)
    result = ps.flat_per_sample_grads(model, x, y, out=big[1:5])
    assert result.data_ptr() == big[1].data_ptr()
    torch.testing.assert_close(big[1:5], ps.flat_per_sample_grads(model, x, y))
    assert torch.all(big[0] == 7) and torch.all(big[5] == 7)
    with pytest.raises(ValueError, match="columns"):
        ps.flat_per_sample_grads(model, x, y, out=torch.empty(4, size + 1))


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)

    def forward(self, x):
        return self.a(torch.tanh(self.a(x)))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, groups=2)
        self.scale = nn.Parameter(torch.ones(1))  # a parameter outside any layer

    def forward(self, x):
        return self.conv(x).flatten(1)[:, :3] * self.scale


class Merged(nn.Module):
    """The batch merged into the rows of a Linear's input: dimension 0 is not the batch."""

    def __init__(self):
        super().__init__()
        self.mix, self.head = nn.Linear(2, 2), nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.mix(x.reshape(-1, 2)).reshape(len(x), 6))


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.c = nn.Linear(3, 3), nn.Linear(3, 3)
        self.c.weight = self.a.weight

    def forward(self, x):
        return self.c(torch.tanh(self.a(x)))


class OutsideUse(nn.Module):
    """A Linear's weight also used by a function call outside the layer: only the sum check sees it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)

    def forward(self, x):
        return nn.functional.linear(torch.tanh(self.a(x)), self.a.weight)


class Scaled(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


class Embedded(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3).requires_grad_(False)
        self.head = nn.Linear(3, 3)

    def forward(self, x):
        return self.head(self.emb(x))


def hooked():
    layer = nn.Linear(3, 3)
    layer.register_forward_hook(lambda m, a, out: out * 3)
    return layer


@pytest.mark.parametrize("model, shape", [(Twice(), (3,)), (Grouped(), (2, 5, 5)), (Merged(), (3, 2)), (Tied(), (3,)),
                                          (OutsideUse(), (3,)), (Scaled(3, 3), (3,)), (hooked(), (3,))])
def test_unsupported_models_fall_back_to_vmap(model, shape):
    model.eval()
    x, y = torch.randn(4, *shape), torch.randint(0, 3, (4,))
    names = ps.trainable_names(model)
    assert layer_grads(model, x, lambda logits: [logits], names) is None
    slow = by_vmap(model, x, y)
    flat = ps.flat_per_sample_grads(model, x, y)
    torch.testing.assert_close(flat, torch.cat([slow[n].reshape(4, -1) for n in names], 1))


def test_integer_inputs_and_float64_models():
    model = Embedded().eval()
    x, y = torch.randint(0, 5, (4,)), torch.randint(0, 3, (4,))
    assert layer_grads(model, x, lambda logits: [logits], ps.trainable_names(model)) is not None
    slow = by_vmap(model, x, y)
    torch.testing.assert_close(ps.flat_per_sample_grads(model, x, y),
                               torch.cat([slow[n].reshape(4, -1) for n in ps.trainable_names(model)], 1))
    double = nn.Linear(3, 2).double().eval()
    flat = ps.flat_per_sample_grads(double, torch.randn(4, 3, dtype=torch.float64), torch.randint(0, 2, (4,)))
    assert flat.dtype == torch.float64
    with pytest.raises(ValueError, match="float64"):
        ps.flat_per_sample_grads(double, torch.randn(4, 3, dtype=torch.float64), torch.randint(0, 2, (4,)),
                                 out=torch.empty(4, 8))


def test_training_mode_is_refused():
    model = nn.Linear(3, 2).train()
    assert layer_grads(model, torch.randn(4, 3), lambda logits: [logits], ["weight", "bias"]) is None
