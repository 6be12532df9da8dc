"""Devices and precision on the CPU: parsing, one-line errors before any work, identities and cache
keys unchanged for cpu + fp32 (pinned from the code before devices existed) and changed otherwise,
and training at the defaults bit-identical to that code."""
from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.data import base_split, load_dataset
from unlearnkit.errors import ConfigError
from unlearnkit.experiments.config import AdversarialConfig, RunConfig, digest, load
from unlearnkit.experiments.experiment import experiment_identity
from unlearnkit.models import create_model
from unlearnkit.report.compare import workload_key
from unlearnkit.sisa.store import SisaConfig
from unlearnkit.training import TrainConfig, train
from unlearnkit.training.checkpoint import state_checksum
from unlearnkit.utils.devices import check_device_name, check_precision, fits_on_device, precision_scope, resolve_device

NO_CUDA = not torch.cuda.is_available()
NO_MPS = not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


# --- parsing and errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps", " CUDA:1 "])
def test_device_names_parse(name):
    assert check_device_name(name) == name.strip().lower()


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cuda0", "tpu", "", "cpu:0"])
def test_bad_device_names_are_refused(name):
    with pytest.raises(ConfigError, match="device must be one of auto | cpu | cuda | cuda:N | mps"):
        check_device_name(name)


def test_auto_takes_cuda_when_present_else_cpu():
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not NO_CUDA, reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:7"])
def test_unavailable_cuda_is_refused(name):
    with pytest.raises(ConfigError, match="CUDA is not available here.*available: cpu"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_missing_gpu_index_is_refused():
    with pytest.raises(ConfigError, match="cuda:7"):
        resolve_device("cuda:7")


@pytest.mark.skipif(not NO_MPS, reason="MPS is available here")
def test_unavailable_mps_is_refused():
    with pytest.raises(ConfigError, match="Metal backend is not available"):
        resolve_device("mps")


@pytest.mark.skipif(not NO_CUDA, reason="CUDA is available here")
@pytest.mark.parametrize("command", [["run"], ["tune", "--method", "ft", "lr_share=0.1,0.2"], ["damage"], ["heal"]])
@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "garbage"])
def test_cli_refuses_a_device_in_one_line_before_any_work(tmp_path, capsys, command, device):
    if device == "mps" and not NO_MPS:
        pytest.skip("MPS is available here")
    out = tmp_path / "out"
    assert main([*command, "--device", device, "--out", str(out), "--seeds", "0", "data.name=no-such-data"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "device" in err  # the device, not the unknown dataset, is refused
    assert not out.exists()


def test_cli_takes_device_from_the_config_key(tmp_path, capsys):
    if not NO_CUDA:
        pytest.skip("CUDA is available here")
    assert main(["run", "device=cuda", "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


# --- precision ---------------------------------------------------------------------------------------
def test_precision_names_are_checked():
    with pytest.raises(ConfigError, match=r"train.precision must be one of \('fp32', 'tf32', 'bf16'\)"):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize("precision, device, ok", [("fp32", "cpu", True), ("bf16", "cpu", True), ("tf32", "cpu", False),
                                                   ("fp32", "mps", True), ("bf16", "mps", False), ("tf32", "mps", False),
                                                   ("fp32", "cuda", True), ("tf32", "cuda", True), ("bf16", "cuda", True)])
def test_precision_per_device(precision, device, ok):
    if ok:
        check_precision(precision, device)
    else:
        with pytest.raises(ConfigError, match=f"precision={precision}"):
            check_precision(precision, device)


def test_precision_scope_fp32_changes_nothing_and_bf16_autocasts_on_cpu():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with precision_scope("fp32", "cpu"):
        assert lin(x).dtype == torch.float32
    with precision_scope("bf16", "cpu"):
        assert lin(x).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_cli_refuses_tf32_on_cpu(capsys):
    assert main(["run", "--device", "cpu", "train.precision=tf32", "--dry-run"]) == 2
    assert "tf32 needs a CUDA device" in capsys.readouterr().err


def test_a_pool_never_goes_to_a_cpu_or_absent_gpu():
    assert not fits_on_device(10, "cpu")


# --- training at the defaults: bit-identical to the code before devices ------------------------------
# Checksums of the weights (training/checkpoint.state_checksum) given by the code of e9cbf61, before
# devices, precisions and the on-device pool existed, with 2 torch threads. Float kernels differ
# between CPUs, so the pins are keyed by float_kernels(), and a machine without pins skips: to add
# one, check out e9cbf61, train RECIPES there and record the checksums under this machine's key.
# (The first key, a hash of one convolution and matmul, named two AMD EPYC machines alike whose
# training differed; float_kernels() now trains a small net by hand, and that machine, pinned
# 2026-12-05, would need its pins recorded again under the new key.)
PINNED_WEIGHTS = {
    "dc36955f": {  # AMD EPYC (family 25, AVX2, 2 cores), torch 2.13.0+cpu, 2026-12-06: e9cbf61 and the code of this date agree
        "cnn": "8f1158624f1c2c99248c0938ca23c9d23d64510fc60014fc78d915864ba6c8ca",
        "cnn-augment": "cc3db319990e20da7f95423ab9143307f0dbe27e311626a1fff44548eafca8fe",
        "resnet18": "134587130b4f6ffafd3f3c34c27707396812db0c023f3c151c83a152571cd198",
    },
}


def float_kernels() -> str:
    """Names this CPU's float arithmetic: a hash of a small conv net (plain torch.nn, no unlearnkit
    code) after a few SGD steps — convolutions, pooling, batch norm, matmuls and their gradients at
    the shapes the pinned recipes use."""
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(5):
        x, y = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 4, (32,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return hashlib.sha256(b"".join(p.detach().contiguous().numpy().tobytes() for p in net.parameters())).hexdigest()[:8]


RECIPES = {
    "cnn": ("cnn", dict(channels=(4, 8), hidden=16), dict(epochs=2, lr=0.05, batch_size=32)),
    "cnn-augment": ("cnn", dict(channels=(4, 8), hidden=16), dict(epochs=2, lr=0.05, batch_size=32, augment=True)),
    "resnet18": ("resnet18", dict(width=4), dict(epochs=1, lr=0.05, batch_size=32)),
}


@pytest.fixture(scope="module")
def tiny_train():
    ds = load_dataset("synthetic", n_train=400, n_test=100, num_classes=4, size=8, noise=90.0, seed=3)
    return ds, base_split(ds, val_fraction=0.1, seed=0)[0].train


def trained(tiny_train, recipe: str, **changes):
    ds, samples = tiny_train
    name, options, budget = RECIPES[recipe]
    model = create_model(name, num_classes=4, input_shape=ds.input_shape, seed=0, **options)
    train(model, samples, TrainConfig(**{**budget, **changes}), generator=torch.Generator().manual_seed(4))
    return model


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_training_at_the_defaults_is_bit_identical_to_before(tiny_train, recipe):
    if torch.get_num_threads() != 2:
        pytest.skip("pinned with 2 torch threads (float sums are ordered by the thread count)")
    pins = PINNED_WEIGHTS.get(float_kernels())
    if pins is None:
        pytest.skip(f"no pins for this CPU's float kernels ({float_kernels()}); see PINNED_WEIGHTS")
    assert state_checksum(trained(tiny_train, recipe).state_dict()) == pins[recipe]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_pool_on_host_or_device_is_the_same_on_cpu(tiny_train, recipe):
    a = trained(tiny_train, recipe, pool_on_device=False)
    b = trained(tiny_train, recipe)
    assert state_checksum(a.state_dict()) == state_checksum(b.state_dict())


def test_bf16_on_cpu_trains_float32_weights_that_differ_from_fp32(tiny_train):
    fp32, bf16 = trained(tiny_train, "cnn"), trained(tiny_train, "cnn", precision="bf16")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in bf16.parameters())
    assert state_checksum(fp32.state_dict()) != state_checksum(bf16.state_dict())
    drift = max((p - q).abs().max().item() for p, q in zip(fp32.parameters(), bf16.parameters()))
    assert drift < 0.5  # the same run, rounded differently


def test_channels_last_is_left_off_on_a_cpu(tiny_train, caplog, monkeypatch):
    # on a CPU the NHWC backward gave wrong gradients (utils/devices.use_channels_last): the option
    # warns and trains exactly as without it; tests/test_gpu.py checks it on CUDA
    from unlearnkit.utils import devices

    monkeypatch.setattr(devices, "_warned_channels_last", False)  # it warns once per process
    with caplog.at_level("WARNING", logger="unlearnkit"):
        plain, nhwc = trained(tiny_train, "resnet18", epochs=0.25), trained(tiny_train, "resnet18", epochs=0.25, channels_last=True)
    assert all(p.is_contiguous() for p in nhwc.parameters())
    assert state_checksum(plain.state_dict()) == state_checksum(nhwc.state_dict())
    assert "channels_last applies on CUDA only" in caplog.text


# --- identities and cache keys -----------------------------------------------------------------------
# digest(experiment_identity(config, "fingerprint")) recorded with the code of e9cbf61.
PINNED_IDENTITIES = {
    (RunConfig, None): "4bb33b9b4a3352256fd9b58238b633baec801f1bd4ad8f0a62a6930972c7601d",
    (RunConfig, "configs/w1-random.yaml"): "e58aa7e096f028e1b0cbd0ad2d7691eeaa749fa382d98a4df4cd590d3a8ad2a4",
    (RunConfig, "configs/w1-class.yaml"): "69235ed7c00376c80ec00eeb40bfa09170866001be8ad01b76561d715cc9958a",
    (RunConfig, "configs/w2-random-sparse.yaml"): "ea7ac718b97eced67d3ac086da3a8f378a3574b939c9ad73cae3131738c9ed7f",
    (AdversarialConfig, "configs/w1-damage.yaml"): "87b6f8549200ae382408dfa62c6d06673213ca0e8799d009766cdb4a6cb250d9",
    (AdversarialConfig, None): "b6e7be7ef57e16b2566fd40caa8719ec47dd13d3d5181bd23740766a3abebfcd",
}
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cls, path", list(PINNED_IDENTITIES))
@pytest.mark.parametrize("extra", [[], ["device=cpu"], ["device=auto"], ["train.precision=fp32"],
                                   ["train.pool_on_device=false"], ["train.channels_last=false", "train.compile=false"]])
def test_cpu_fp32_identity_is_unchanged(cls, path, extra):
    config = load(cls, path and ROOT / path, extra)
    assert digest(experiment_identity(config, "fingerprint", device="cpu")) == PINNED_IDENTITIES[(cls, path)]


@pytest.mark.parametrize("cls", [RunConfig, AdversarialConfig])
@pytest.mark.parametrize("extra, device", [([], "cuda"), ([], "cuda:1"), ([], "mps"), (["train.precision=bf16"], "cpu"),
                                           (["train.precision=tf32"], "cuda"), (["train.channels_last=true"], "cpu"),
                                           (["train.compile=true"], "cpu")])
def test_other_devices_and_precisions_get_identities_of_their_own(cls, extra, device):
    base = digest(experiment_identity(load(cls, None, []), "fingerprint", device="cpu"))
    assert digest(experiment_identity(load(cls, None, extra), "fingerprint", device=device)) != base


def test_gpus_of_one_kind_share_an_identity():
    config = load(RunConfig, None, [])
    assert experiment_identity(config, "f", device="cuda:0") == experiment_identity(config, "f", device="cuda:1")


def test_sisa_store_key_is_unchanged_at_the_defaults():
    # SisaConfig().to_json() of e9cbf61: the budget's fields as they were
    assert set(SisaConfig().to_json()["budget"]) == {"epochs", "lr", "batch_size", "momentum", "weight_decay",
                                                     "schedule", "warmup_epochs", "augment"}
    assert SisaConfig(budget=TrainConfig(precision="bf16")).to_json()["budget"]["precision"] == "bf16"
    assert SisaConfig.from_json(SisaConfig().to_json()) == SisaConfig()


def test_old_and_new_records_of_one_workload_share_a_table():
    new = {"data": {"name": "x"}, "model": {}, "forget": {}, "device": "cpu",
           "train": dataclasses.asdict(TrainConfig())}
    old = {**new, "train": {k: v for k, v in new["train"].items()
                            if k not in ("precision", "channels_last", "compile", "pool_on_device")}}
    old.pop("device")
    assert workload_key({"config": new}) == workload_key({"config": old})
    assert workload_key({"config": {**new, "device": "cuda:0"}}) != workload_key({"config": old})


# --- Ray tasks on GPUs -------------------------------------------------------------------------------
def test_ray_tasks_reserve_a_share_of_a_gpu():
    from unlearnkit.backends import create_backend

    assert create_backend("ray").gpus_per_task == 0
    assert create_backend("ray", gpus_per_task=0.25).gpus_per_task == 0.25
    assert create_backend("ray", gpus_per_task=2).gpus_per_task == 2
    for bad in (-1, 1.5, "half"):
        with pytest.raises(ConfigError, match="gpus_per_task"):
            create_backend("ray", gpus_per_task=bad)
