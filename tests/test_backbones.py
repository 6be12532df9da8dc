"""The torchvision backbones (resnet50, efficientnet_b0): registered with torchvision, a clear error
and a hint in ``ls`` without it. The model tests skip cleanly where torchvision is missing."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.errors import ConfigError
from unlearnkit.experiments import load_config
from unlearnkit.models import UNAVAILABLE, create_model, list_models

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
BACKBONES = ("resnet50", "efficientnet_b0")
needs_torchvision = pytest.mark.skipif(not HAS_TORCHVISION, reason="torchvision is not installed")


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed")
@pytest.mark.parametrize("name", BACKBONES)
def test_without_torchvision_create_model_says_how_to_get_it(name):
    assert name not in list_models()
    with pytest.raises(ConfigError, match=rf"model '{name}' needs torchvision: pip install 'unlearnkit\[vision\]'"):
        create_model(name, num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match="needs torchvision"):
        load_config(None, [f"model.name={name}"])


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed")
def test_without_torchvision_ls_says_how_to_get_them(capsys):
    assert main(["ls", "models"]) == 0
    out = capsys.readouterr().out
    assert "not available here: efficientnet_b0, resnet50" in out and "unlearnkit[vision]" in out


def test_unknown_model_is_refused_when_the_config_loads():
    with pytest.raises(Exception, match="unknown model 'nope'; valid: cnn"):
        load_config(None, ["model.name=nope"])


@needs_torchvision
@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_backbone_on_small_inputs(name, shape):
    assert name in list_models() and name not in UNAVAILABLE
    a = create_model(name, num_classes=10, input_shape=shape, seed=0)
    b = create_model(name, num_classes=10, input_shape=shape, seed=0)
    x = torch.randn(2, *shape)
    a.eval(), b.eval()
    z = a.forward_features(x)
    assert z.shape == (2, a.feature_dim)
    assert a(x).shape == (2, 10)
    assert torch.equal(a(x), b(x))  # the seed fixes the initial weights


@needs_torchvision
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_weights_only_from_a_local_file(tmp_path, name):
    with pytest.raises(ConfigError, match="weights file not found.*never downloaded"):
        create_model(name, num_classes=10, input_shape=(1, 28, 28), weights=str(tmp_path / "missing.pth"))
    source = create_model(name, num_classes=10, input_shape=(1, 28, 28), seed=1)
    import torchvision  # the file holds a torchvision state dict, as saved from torchvision's own model

    net = getattr(torchvision.models, name)(weights=None, num_classes=10)
    path = tmp_path / "w.pth"
    torch.save(net.state_dict(), path)
    loaded = create_model(name, num_classes=10, input_shape=(1, 28, 28), seed=1, weights=str(path))
    assert not all(torch.equal(p, q) for p, q in zip(source.parameters(), loaded.parameters()))
    with pytest.raises(ConfigError, match="stem must be one of"):
        create_model(name, num_classes=10, input_shape=(1, 28, 28), stem="big")
