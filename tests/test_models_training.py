from __future__ import annotations

import math

import pytest
import torch

from unlearnkit.errors import ConfigError, TrainingError
from unlearnkit.models import create_model, list_models, reinitialise
from unlearnkit.training import TrainConfig, accuracy, predict_features, predict_logits, train
from unlearnkit.training.loop import lr_factor

from .conftest import TOY_BUDGET, make_toy_model

SMALL = {"cnn": {"channels": (4, 8), "hidden": 16}, "mlp": {"hidden": (16,)}, "resnet18": {"width": 4}}


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_models_share_features_and_head(name, shape):
    m = create_model(name, num_classes=7, input_shape=shape, seed=0, **SMALL.get(name, {}))
    x = torch.randn(3, *shape)
    z = m.forward_features(x)
    assert z.shape == (3, m.feature_dim)
    assert torch.allclose(m.forward_head(z), m(x))
    assert m(x).shape == (3, 7)


def test_model_seed_is_deterministic_and_local():
    state = torch.random.get_rng_state()
    a = create_model("cnn", num_classes=3, input_shape=(1, 8, 8), seed=5)
    b = create_model("cnn", num_classes=3, input_shape=(1, 8, 8), seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    before = [p.clone() for p in a.parameters()]
    reinitialise(a, torch.Generator().manual_seed(0))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), before))


def test_model_errors():
    with pytest.raises(KeyError, match="cnn"):
        create_model("vgg99", num_classes=2, input_shape=(1, 8, 8))
    with pytest.raises(ConfigError):
        create_model("cnn", num_classes=2, input_shape=(10,))


def test_train_is_deterministic_and_learns(toy_dataset, toy_base):
    base, test = toy_base
    models = []
    for _ in range(2):
        m = make_toy_model(toy_dataset)
        stats = train(m, base.train, TOY_BUDGET, generator=torch.Generator().manual_seed(3))
        models.append(m)
    assert all(torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters()))
    assert stats.steps == math.ceil(len(base.train) / 32) * 6 and stats.samples_per_second > 0
    assert accuracy(predict_logits(models[0], test), test.labels) > 80
    assert predict_features(models[0], test).shape == (len(test), 16)
    assert not models[0].training


def test_fractional_epochs(toy_dataset, toy_base):
    base, _ = toy_base
    m = make_toy_model(toy_dataset)
    stats = train(m, base.train, TrainConfig(epochs=0.5, batch_size=100), generator=torch.Generator())
    assert stats.steps == math.ceil(0.5 * math.ceil(len(base.train) / 100))


def test_non_finite_loss_is_a_clear_error(toy_dataset, toy_base):
    base, _ = toy_base
    m = make_toy_model(toy_dataset)
    with pytest.raises(TrainingError, match="non-finite loss.*lower the learning rate"):
        train(m, base.train, TrainConfig(epochs=1, lr=1e12, batch_size=32), generator=torch.Generator())


def test_schedules():
    c = TrainConfig(epochs=10, schedule="step")
    assert [lr_factor(c, s, 100, 10) for s in (0, 49, 50, 75)] == [1.0, 1.0, 0.1, 0.01]
    cos = TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1)
    assert lr_factor(cos, 0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(cos, 10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(cos, 99, 100, 10) < 0.01


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=-1), dict(batch_size=0), dict(momentum=1.0),
                                 dict(schedule="linear"), dict(warmup_epochs=20)])
def test_bad_train_config(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_train_equals_a_plain_pytorch_loop(toy_dataset, toy_base):
    """With the same seed, train() is exactly plain SGD over a randperm of the samples (cosine per step)."""
    base, _ = toy_base
    cfg = TrainConfig(epochs=2, lr=0.05, batch_size=32)
    ours, plain = make_toy_model(toy_dataset), make_toy_model(toy_dataset)
    train(ours, base.train, cfg, generator=torch.Generator().manual_seed(4))
    x, y = base.train.inputs(), base.train.labels
    g = torch.Generator().manual_seed(4)
    opt = torch.optim.SGD(plain.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    total = 2 * math.ceil(len(x) / 32)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    plain.train()
    for _ in range(2):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            idx = perm[i : i + 32]
            loss = torch.nn.functional.cross_entropy(plain(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    for p, q in zip(ours.parameters(), plain.parameters()):
        assert torch.allclose(p, q, atol=1e-6), "train() drifted from plain SGD"
