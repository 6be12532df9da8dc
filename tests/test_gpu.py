"""On a CUDA GPU: every recipe runs there, bf16 trains, the pool goes to the device once and
batches are indexed and augmented there. Skipped without CUDA (benchmarks/gpu_check.sh runs it on
the GPU machine)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.data import base_split, load_dataset
from unlearnkit.data.pool import Augment, _COPIES
from unlearnkit.models import create_model
from unlearnkit.training import TrainConfig, accuracy, predict_logits, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = ["data.name=synthetic", "data.options.n_train=600", "data.options.n_test=200", "data.options.size=8",
        "data.options.noise=90", "model.options.channels=[4,8]", "model.options.hidden=16", "train.epochs=2",
        "train.batch_size=32"]
ADV = TINY + ["data.val_fraction=0.1", "reserve=100", "budgets=[0.1]", "seeds=[0]"]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny():
    ds = load_dataset("synthetic", n_train=1000, n_test=400, num_classes=4, size=8, noise=90.0, seed=3)
    base, test = base_split(ds, val_fraction=0.1, seed=0)
    return ds, base.train, test


def trained(tiny, device="cuda", name="cnn", **changes):
    ds, samples, test = tiny
    options = dict(channels=(4, 8), hidden=16) if name == "cnn" else dict(width=8)
    model = create_model(name, num_classes=4, input_shape=ds.input_shape, seed=0, **options).to(device)
    train(model, samples, TrainConfig(epochs=3, lr=0.05, batch_size=32, **changes), generator=torch.Generator().manual_seed(0))
    return model, accuracy(predict_logits(model, test), test.labels)


def test_every_method_and_attack_runs_on_cuda(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--device", "cuda", "--seeds", "0", "samia=true", "--out", str(out)]) == 0
    recs = records(out)
    assert all(r["status"] == "ok" for r in recs), [(r["row"], r.get("error")) for r in recs if r["status"] != "ok"]
    assert {r["config"]["device"] for r in recs} == {"cuda:0"}
    cpu = tmp_path / "cpu"
    assert main(["run", *TINY, "--device", "cpu", "--seeds", "0", "--methods", "ft", "--out", str(cpu)]) == 0
    assert records(cpu)[0]["experiment"] != recs[0]["experiment"]  # a CUDA run has keys of its own


def test_damage_and_heal_run_on_cuda(tmp_path, capsys):
    damage, heal = tmp_path / "damage", tmp_path / "heal"
    assert main(["damage", *ADV, "--device", "cuda", "--strategies", "random,gradnorm,influence,coverage,typical",
                 "--methods", "ft,iu,sisa", "--out", str(damage)]) == 0
    variants = ("heal.variants=[{name: rem, data: remaining, epochs: one}, {name: tw, data: twins, similarity: "
                "mahalanobis, epochs: one}, {name: rnd, data: random, epochs: one}]")
    assert main(["heal", *ADV, "--device", "cuda", "--methods", "ft,sisa", f"heal.damage_dir={damage}", variants,
                 "--out", str(heal)]) == 0
    assert all(r["status"] == "ok" for r in records(damage) + records(heal))


def test_tune_runs_on_cuda(tmp_path, capsys):
    assert main(["tune", *TINY, "--device", "cuda", "--seeds", "0", "--method", "ga", "lr_share=0.001,0.01",
                 "--out", str(tmp_path / "t")]) == 0


def test_bf16_trains_about_as_well_as_fp32(tiny):
    fp32, acc32 = trained(tiny)
    bf16, acc16 = trained(tiny, precision="bf16")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in bf16.parameters())
    assert abs(acc32 - acc16) < 5


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_resnet_with_channels_last_and_a_precision(tiny, precision):
    model, acc = trained(tiny, name="resnet18", precision=precision, channels_last=True)
    assert acc > 40 and all(p.is_contiguous() for p in model.parameters())


def test_the_pool_goes_to_the_gpu_once_and_gives_the_host_pools_batches(tiny):
    ds, samples, _ = tiny
    trained(tiny)
    copies = _COPIES.get(samples.pool, {})
    assert list(copies) == ["cuda:0"]
    copy = copies["cuda:0"]
    trained(tiny)
    assert _COPIES[samples.pool]["cuda:0"] is copy  # reused, not copied again
    on_gpu = samples.to("cuda")
    host = list(samples.batches(32, shuffle=True, generator=torch.Generator().manual_seed(1), augment=Augment()))
    dev = list(on_gpu.batches(32, shuffle=True, generator=torch.Generator().manual_seed(1), augment=Augment()))
    assert all(xd.is_cuda and torch.equal(xh.cuda(), xd) and torch.equal(yh.cuda(), yd)
               for (xh, yh), (xd, yd) in zip(host, dev))


def test_a_pool_copied_while_evaluating_serves_training_later():
    ds = load_dataset("synthetic", n_train=300, n_test=100, num_classes=4, size=8, seed=5)  # a pool never copied yet
    samples = ds.train.all()
    model = create_model("cnn", num_classes=4, input_shape=ds.input_shape, seed=0, channels=(4, 8), hidden=16).cuda()
    predict_logits(model, samples)  # copies the pool under inference mode
    assert "cuda:0" in _COPIES[samples.pool]
    train(model, samples, TrainConfig(epochs=1, batch_size=32), generator=torch.Generator().manual_seed(0))


def test_on_device_pool_and_host_pool_train_alike(tiny):
    on, acc_on = trained(tiny)
    off, acc_off = trained(tiny, pool_on_device=False)
    for p, q in zip(on.parameters(), off.parameters()):
        assert torch.allclose(p, q, atol=1e-4)  # the same batches; cuDNN may sum in another order


def test_compile_trains(tiny):
    _, acc = trained(tiny, compile=True)
    assert acc > 40


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed")
@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0"])
def test_backbone_steps_on_cuda_in_bf16(name):
    model = create_model(name, num_classes=10, input_shape=(1, 28, 28), seed=0).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 1, 28, 28, device="cuda"), torch.randint(0, 10, (16,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
