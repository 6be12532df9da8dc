"""Shared fixtures: a toy task small enough that every test runs in seconds (workload Wt)."""
from __future__ import annotations

import os

import pytest
import torch

from unlearnkit.data import ForgetRequest, base_split, forget_split, load_dataset, select_forget_ids
from unlearnkit.models import create_model
from unlearnkit.training import TrainConfig, train

os.environ.setdefault("UNLEARNKIT_PROGRESS", "0")
torch.set_num_threads(min(2, torch.get_num_threads()))

TOY_DATA = dict(n_train=1000, n_test=400, num_classes=4, size=8, noise=90.0, seed=3)
TOY_MODEL = dict(channels=(4, 8), hidden=16)
TOY_BUDGET = TrainConfig(epochs=6, lr=0.05, batch_size=32)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder, so nothing leaks between tests or to ~/.cache."""
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def toy_dataset():
    return load_dataset("synthetic", **TOY_DATA)


def make_toy_model(dataset, seed: int = 0):
    return create_model("cnn", num_classes=dataset.num_classes, input_shape=dataset.input_shape, seed=seed, **TOY_MODEL)


@pytest.fixture(scope="session")
def toy_base(toy_dataset):
    return base_split(toy_dataset, val_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def toy_original(toy_dataset, toy_base):
    base, _ = toy_base
    model = make_toy_model(toy_dataset)
    train(model, base.train, TOY_BUDGET, generator=torch.Generator().manual_seed(0))
    return model


def toy_split(toy_base, request: ForgetRequest):
    base, test = toy_base
    ids = select_forget_ids(base.train, request, generator=torch.Generator().manual_seed(1))
    return forget_split(base, test, ids, TOY_BUDGET, request.forget_class if request.scenario == "class" else None)


@pytest.fixture(scope="session")
def toy_class_split(toy_base):
    return toy_split(toy_base, ForgetRequest(scenario="class", forget_class=1))


@pytest.fixture(scope="session")
def toy_random_split(toy_base):
    return toy_split(toy_base, ForgetRequest(scenario="random", fraction=0.1))


@pytest.fixture(scope="session")
def toy_trace_split(toy_class_split):
    """An ID request for all of class 1 but one sample, which D_r keeps (what the ``class`` damage
    strategy asks): not class-wise, though a retrain could not learn the class."""
    import dataclasses
    split = toy_class_split
    left = split.forget.take(slice(0, 1))
    return dataclasses.replace(split, retain=split.retain.union(left), forget=split.forget.take(slice(1, None)),
                               forget_class=None)
