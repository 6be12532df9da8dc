"""training/batchnorm.py: batch statistics in both modes without moving the running ones, and
running statistics recomputed as a plain average over a sample set."""
from __future__ import annotations

import torch
from torch import nn

from unlearnkit.data import load_dataset
from unlearnkit.training.batchnorm import batch_statistics, batchnorms, recompute_running_statistics


def _net(channels: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


def test_batch_statistics_in_eval_mode_leave_the_running_statistics_alone():
    net = _net()
    x = torch.randn(16, 1, 6, 6) * 3 + 2
    net(x)  # materialise the lazy layer
    bn = net[1]
    bn.running_mean.fill_(5.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with batch_statistics(net):
        net.eval()
        in_eval = net(x)
        net.train()
        in_train = net(x)
    assert torch.allclose(in_eval, in_train)
    net.eval()
    assert not torch.allclose(net(x), in_eval)  # back on the (deliberately wrong) running statistics
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items() if "num_batches" not in k)


def test_recomputed_statistics_are_the_data_statistics():
    ds = load_dataset("synthetic", n_train=64, n_test=8, num_classes=2, size=6, noise=50.0, seed=0)
    net, samples = _net(ds.input_shape[0]), ds.train.all()
    x = samples.inputs()
    with torch.no_grad():
        pre = net[0](x)
    bn = net[1]
    recompute_running_statistics(net, samples, batch_size=len(samples))
    assert not net.training and bn.momentum == 0.1
    assert torch.allclose(bn.running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, pre.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4)


def test_a_model_without_batchnorm_is_untouched():
    net = nn.Sequential(nn.Linear(4, 2))
    assert batchnorms(net) == []
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with batch_statistics(net):
        pass
    recompute_running_statistics(net, None)  # never reads the samples
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
