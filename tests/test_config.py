from __future__ import annotations

import pytest

from unlearnkit.errors import ConfigError
from unlearnkit.experiments import config_from_dict, load_config, to_dict


def test_defaults_are_the_w1_workload():
    c = load_config()
    assert (c.data.name, c.model.name, c.forget.scenario, c.forget.fraction) == ("fashion-mnist", "cnn", "random", 0.1)
    assert c.train.epochs == 10 and c.seeds == (0, 1, 2) and c.methods == ()


def test_overrides_parse_types(tmp_path):
    c = load_config(None, ["train.epochs=3", "train.lr=1e-3", "seeds=4,5", "methods=ft,ga", "params.ft.lr_share=0.5",
                           "data.options.size=8", "model.options.width=16", "noise_floor=false"])
    assert c.train.epochs == 3.0 and c.train.lr == 0.001 and c.seeds == (4, 5) and c.methods == ("ft", "ga")
    assert c.params == {"ft": {"lr_share": 0.5}} and c.data.options == {"size": 8} and not c.noise_floor
    assert config_from_dict(to_dict(c)) == c


def test_yaml_file_then_overrides(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("data: {name: synthetic}\ntrain:\n  epochs: 2\nforget: {scenario: class, forget_class: 1}\n")
    c = load_config(f, ["train.epochs=4"])
    assert c.data.name == "synthetic" and c.train.epochs == 4 and c.forget.forget_class == 1


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", r"unknown key\(s\) \['train.epoch'\].*train.epochs"),
    ("bogus=1", "unknown key"),
    ("train.batch_size=1.5", "must be an integer"),
    ("train.lr=fast", "must be a number"),
    ("methods=ft,nope", "unknown method 'nope'"),
    ("params.ft.nope=1", "no hyperparameter"),
    ("params.ft.lr_share=-1", "lr_share"),
    ("seeds=1,1", "repeat"),
    ("forget.fraction=2", "fraction"),
    ("train", "key=value"),
])
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
