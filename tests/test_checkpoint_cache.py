from __future__ import annotations

import pytest
import torch

from unlearnkit.errors import CheckpointError
from unlearnkit.experiments.cache import ModelCache
from unlearnkit.training import load_checkpoint, save_checkpoint

from .conftest import make_toy_model


def test_round_trip_carries_config(tmp_path, toy_dataset):
    m = make_toy_model(toy_dataset)
    save_checkpoint(tmp_path / "m.pt", m, {"config": {"epochs": 3}})
    state, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta == {"config": {"epochs": 3}}
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())
    assert not list(tmp_path.glob("*.tmp*"))


def test_corruption_is_detected(tmp_path, toy_dataset):
    m = make_toy_model(toy_dataset)
    path = tmp_path / "m.pt"
    save_checkpoint(path, m, {})
    raw = bytearray(path.read_bytes())
    # flip one byte inside the weights (far from the zip directory at the end)
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    path.write_bytes(bytes(raw[: len(raw) // 3]))
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_cache_reuses_and_rebuilds_corrupted(tmp_path, toy_dataset, caplog):
    cache = ModelCache(tmp_path)
    builds = []

    def build():
        builds.append(1)
        return make_toy_model(toy_dataset, seed=len(builds)), {"seconds": 1.0}

    key = {"kind": "original", "seed": 0}
    a, meta, cached = cache.get_or_build(key, make_toy_model(toy_dataset, seed=99), build)
    assert not cached and meta["seconds"] == 1.0
    b, _, cached = cache.get_or_build(key, make_toy_model(toy_dataset, seed=99), build)
    assert cached and len(builds) == 1
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    path = cache.path(key)
    path.write_bytes(path.read_bytes()[:100])
    _, _, cached = cache.get_or_build(key, make_toy_model(toy_dataset, seed=99), build)
    assert not cached and len(builds) == 2
    assert "rebuilding" in caplog.text


def test_an_edited_method_gets_a_new_cache_key(tmp_path, monkeypatch, toy_random_split):
    """Unlearned models are cached by hyperparameters and by the source of the method's class: the
    same hyperparameters under edited code must not find the old code's model (retrain excepted)."""
    import importlib
    import sys

    from unlearnkit.methods import create_method
    from unlearnkit.methods.base import cache_key_part, code_digest

    source = ("from dataclasses import dataclass\n\n@dataclass(frozen=True, kw_only=True)\n"
              "class Toy:\n    name = 'toy'\n    lr_share: float = 0.1\n\n    def unlearn(self, model, split, *, generator):\n"
              "        return model{}\n")
    (tmp_path / "toy_method_mod.py").write_text(source.format(""))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_method_mod")
    before = cache_key_part(module.Toy(), toy_random_split)
    (tmp_path / "toy_method_mod.py").write_text(source.format("  # edited"))
    after = cache_key_part(importlib.reload(module).Toy(), toy_random_split)
    sys.modules.pop("toy_method_mod")
    assert before["params"] == after["params"] == {"lr_share": 0.1}
    assert before["code"] != after["code"]
    assert code_digest(create_method("dau")) != code_digest(create_method("dau-nobt"))  # a subclass's file counts too
    assert code_digest(create_method("retrain")) is None and "code" not in cache_key_part(create_method("retrain"), toy_random_split)


def test_a_class_only_knob_stays_out_of_other_requests_keys(toy_random_split, toy_class_split):
    """Without its trace rule (``trace_as_absent=False``, every record before it) FT's class_lr_share
    acts on class-wise requests only: a random request's key and record params leave it out (keys
    made before it existed stay valid), a class-wise one carries it. With the rule it is keyed on
    every request (test_trace_classes.py)."""
    from unlearnkit.methods import create_method, method_params
    from unlearnkit.methods.base import cache_key_part, method_from_params

    ft = create_method("ft", trace_as_absent=False)
    assert "class_lr_share" not in cache_key_part(ft, toy_random_split)["params"]
    assert (cache_key_part(create_method("ft", class_lr_share=0.5, trace_as_absent=False), toy_random_split)
            == cache_key_part(ft, toy_random_split))
    assert cache_key_part(ft, toy_class_split)["params"]["class_lr_share"] == 1.0
    assert method_params(ft, class_wise=False) == {"epoch_share": 0.2, "lr_share": 0.3}
    assert method_from_params("ft", method_params(ft, class_wise=False)) == ft  # still inverts to the same method


def test_a_knob_added_later_is_keyed_only_off_the_old_behaviour():
    """IU's class_damping (added after records existed) at 0.3 does what damping 0.3 did for both kinds
    of request before: left out of the key there, so old records stay valid; any other value is keyed."""
    from unlearnkit.methods import create_method, method_params

    assert "class_damping" not in method_params(create_method("iu"), class_wise=True)
    assert method_params(create_method("iu", class_damping=3.0), class_wise=True)["class_damping"] == 3.0
    old_rule = dict(trace_as_absent=False)  # records before the trace rule: class-wise knobs unkeyed on ID requests
    assert "class_damping" not in method_params(create_method("iu", class_damping=3.0, **old_rule), class_wise=False)
    assert create_method("iu", **method_params(create_method("iu"), class_wise=True)) == create_method("iu")
