"""Backends: a grid and SISA shards on a local 2-CPU Ray cluster give the local backend's records
and weights; a worker that dies mid-job is retried and nothing recorded is lost or duplicated."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import make_toy_model
from unlearnkit.backends import LocalBackend, create_backend, current_backend, use_backend
from unlearnkit.cli import main
from unlearnkit.errors import ConfigError
from unlearnkit.experiments import load_config, run_experiment
from unlearnkit.experiments.runner import Job
from unlearnkit.sisa import SisaConfig, SisaStore, train_sisa
from unlearnkit.training import TrainConfig

TINY = ["data.name=synthetic", "data.options.n_train=400", "data.options.n_test=160", "data.options.size=8",
        "data.options.noise=90", "model.options.channels=[4,8]", "model.options.hidden=16", "train.epochs=2",
        "train.batch_size=32", "noise_floor=false", "attacks=false", "params.sisa.shards=2", "params.sisa.slices=2"]
# what may differ between two runs of the same job: timings, cache hits, where the records went
VOLATILE = {"seconds", "time_vs_retrain", "created", "from_cache", "out_dir", "cost", "index_seconds", "gold_seconds"}


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def comparable(recs: list[dict]) -> dict[str, dict]:
    return {r["key"]: {**{k: v for k, v in r.items() if k not in VOLATILE},
                       "config": {k: v for k, v in r["config"].items() if k not in ("out_dir", "seeds")}} for r in recs}


@pytest.fixture
def one_thread():
    """Ray tasks run with one torch thread; the local runs they are compared with must too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_local_backend_and_registry():
    assert list(LocalBackend().map(lambda c, x: c + x, [1, 2, 3], common=10)) == [(0, 11), (1, 12), (2, 13)]
    with pytest.raises(ConfigError, match="valid: local, ray"):
        create_backend("spark")
    assert isinstance(current_backend(), LocalBackend)
    marker = LocalBackend()
    with use_backend(marker):
        assert current_backend() is marker


def test_unknown_backend_on_the_cli(tmp_path, capsys):
    assert main(["run", *TINY, "--seeds", "0", "--methods", "ft", "--backend", "spark", "--out", str(tmp_path)]) == 2
    assert "unknown backend 'spark'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray")
    cache = tmp_path_factory.mktemp("ray-cache")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"UNLEARNKIT_CACHE": str(cache), "UNLEARNKIT_PROGRESS": "0"}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fault injector below
    yield ray
    ray.shutdown()


class KillFirstAttempt:
    """Wraps a job: the first attempt at the ``target`` row kills its worker process outright."""

    def __init__(self, fn, marker: Path, seed: int, label: str) -> None:
        self.fn, self.marker, self.seed, self.label = fn, marker, seed, label
        self.__name__ = fn.__name__

    def __call__(self, common, item):
        if isinstance(item, Job) and (item.group, item.spec.label) == (self.seed, self.label):
            if not self.marker.exists():
                self.marker.write_text(str(os.getpid()))
                os._exit(1)  # no exception, no cleanup: the worker is simply gone
        return self.fn(common, item)


def test_grid_on_ray_gives_the_local_records_despite_a_dying_worker(ray_cluster, tmp_path, one_thread):
    from unlearnkit.backends import RayBackend

    base = TINY + ["methods=[ft,sisa]", "seeds=[0,1]"]
    local = run_experiment(load_config(None, base + [f"out_dir={tmp_path / 'local'}"]))

    # an earlier (local) run recorded seed 0; the Ray run must skip it and leave its lines untouched
    out = tmp_path / "ray"
    run_experiment(load_config(None, TINY + ["methods=[ft,sisa]", "seeds=[0]", f"out_dir={out}"]))
    earlier = (out / "records.jsonl").read_text()

    marker = tmp_path / "killed"

    class FlakyRay(RayBackend):
        def map(self, fn, items, *, common=None):
            return super().map(KillFirstAttempt(fn, marker, 1, "sisa"), items, common=common)

    backend = FlakyRay(max_retries=2)
    run_experiment(load_config(None, base + [f"out_dir={out}"]), backend=backend)
    assert marker.exists(), "the fault was never injected"
    assert int(marker.read_text()) != os.getpid()  # it killed a Ray worker, not this process

    text = (out / "records.jsonl").read_text()
    assert text.startswith(earlier)
    recs = records(out)
    assert len({r["key"] for r in recs}) == len(recs) == 8  # 2 seeds × (original, retrain, ft, sisa)
    ours, theirs = comparable(recs), comparable(local)
    assert ours.keys() == theirs.keys()
    differ = [(ours[k]["seed"], ours[k]["row"], f) for k in ours for f in ours[k] if ours[k][f] != theirs[k].get(f)]
    assert not differ, differ
    assert all(r["status"] == "ok" for r in recs)
    assert {Path(p).stem for p in os.listdir(out / "samples")} == {r["key"] for r in recs}
    sisa = [r for r in recs if r["method"] == "sisa"]
    assert all(r["cost"]["samples"] > 0 for r in sisa)
    # the CLI's --backend ray reaches the same cluster and finds everything recorded
    assert main(["run", *base[:-2], "--methods", "ft,sisa", "--seeds", "0,1", "--backend", "ray",
                 "--out", str(out)]) == 0
    assert records(out) == recs


def test_sisa_shards_on_ray_are_the_local_weights(ray_cluster, toy_dataset, toy_base, tmp_path, one_thread):
    from unlearnkit.backends import RayBackend

    base, _ = toy_base
    model = make_toy_model(toy_dataset)
    config = SisaConfig(shards=2, slices=2, seed=5, budget=TrainConfig(epochs=2, batch_size=32))
    local = train_sisa(model, base.train, config, tmp_path / "local")
    remote = train_sisa(model, base.train, config, tmp_path / "ray", backend=RayBackend())
    ids = torch.cat([local.plan.slices[0][1][:3], local.plan.slices[1][0][:2]])
    local.unlearn(ids, pool=base.train.pool, template=model)
    SisaStore.open(tmp_path / "ray").unlearn(ids, pool=base.train.pool, template=model, backend=RayBackend())
    remote = SisaStore.open(tmp_path / "ray")
    for s in range(2):
        for r in range(2):
            a, b = local.state(s, r), remote.state(s, r)
            assert all(torch.equal(a[k], b[k]) for k in a), f"shard {s} slice {r}"


def _dies_on_one(common, item):
    if item == 1:
        os._exit(1)
    return common * item


def test_a_job_whose_worker_keeps_dying_is_a_backend_error(ray_cluster):
    from unlearnkit.backends import RayBackend
    from unlearnkit.errors import BackendError

    got = {}
    with pytest.raises(BackendError, match="_dies_on_one job failed on Ray after 0 retries"):
        for i, result in RayBackend(max_retries=0).map(_dies_on_one, [0, 1, 2], common=10):
            got[i] = result
    assert set(got) <= {0, 2} and all(got[i] == 10 * i for i in got)


def test_damage_heal_and_tune_on_ray_give_the_local_records(ray_cluster, tmp_path, one_thread):
    """Every recipe goes through the one runner, so every recipe's jobs run on Ray alike."""
    adv = [a for a in TINY if not a.startswith(("noise_floor", "attacks"))] + [
        "data.val_fraction=0.1", "reserve=60", "budgets=[0.1]", "seeds=[0]", "--methods", "ft"]
    heal = ["heal.strategy=class", "heal.variants=[{name: tw, data: twins, similarity: cosine, epochs: one}]"]
    commands = {"damage": ["damage", *adv, "--strategies", "random,class"], "heal": ["heal", *adv, *heal],
                "tune": ["tune", *TINY, "--seeds", "0", "--method", "ft", "lr_share=0.1,0.3"]}
    for name, args in commands.items():
        found = {}
        for backend in ("local", "ray"):
            out = tmp_path / backend / name
            assert main([*args, "--backend", backend, "--out", str(out)]) == 0
            found[backend] = comparable(records(out / "tune" if name == "tune" else out))
        ray, local = found["ray"], found["local"]
        assert ray.keys() == local.keys() and local, name
        differ = [(name, f) for k in local for f in local[k] if local[k][f] != ray[k].get(f)]
        assert not differ, differ
