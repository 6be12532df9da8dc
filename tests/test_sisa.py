"""SISA: the plan, aggregation, exact unlearning (bit for bit against training without the IDs),
cost accounting, persisted bookkeeping and refused requests."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from tests.conftest import make_toy_model
from unlearnkit.errors import CheckpointError, ConfigError, DataError, ForgetRequestError
from unlearnkit.sisa import SisaConfig, SisaEnsemble, SisaStore, aggregate, make_plan, train_sisa
from unlearnkit.sisa.plan import first_affected, retrain_samples
from unlearnkit.training import TrainConfig, accuracy, predict_logits

BUDGET = TrainConfig(epochs=6, lr=0.05, batch_size=32)
CONFIG = SisaConfig(shards=3, slices=3, seed=11, budget=BUDGET)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def folder_digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def toy(toy_dataset, toy_base):
    base, test = toy_base
    return make_toy_model(toy_dataset), base.train, test


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    """A trained store, copied afresh for each test that changes it."""
    model, train, _ = toy
    return train_sisa(model, train, CONFIG, tmp_path_factory.mktemp("sisa") / "store")


@pytest.fixture
def store(trained, tmp_path):
    import shutil

    shutil.copytree(trained.root, tmp_path / "store")
    return SisaStore.open(tmp_path / "store")


def test_plan_is_a_seeded_stratified_partition(toy):
    _, train, _ = toy
    plan = make_plan(train.ids, train.labels, shards=4, slices=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plan.ids(), torch.sort(train.ids).values)  # every ID exactly once
    again = make_plan(train.ids, train.labels, shards=4, slices=3, generator=torch.Generator().manual_seed(0))
    assert plan.to_json() == again.to_json()
    y = train.pool.y
    overall = torch.bincount(y[train.ids], minlength=4).double() / len(train)
    for shard in plan.slices:
        for part in shard:
            share = torch.bincount(y[part], minlength=4).double()
            assert (share - overall * len(part)).abs().max() <= 1.0 + 1e-9  # within one sample per class
    shard, slice_ = plan.locate(torch.tensor([int(plan.slices[2][1][0]), 10**6]))
    assert shard.tolist() == [2, -1] and slice_.tolist() == [1, -1]
    with pytest.raises(ConfigError):
        make_plan(train.ids[:5], train.labels[:5], shards=3, slices=2, generator=torch.Generator())


def test_aggregation_and_documented_tie_break():
    # 4 members, 3 classes: votes 2 / 2 / 0 between classes 0 and 1; class 1 has the higher mean softmax
    probs = torch.tensor([[[0.6, 0.3, 0.1]], [[0.5, 0.4, 0.1]], [[0.1, 0.8, 0.1]], [[0.2, 0.7, 0.1]]])
    vote = aggregate(probs, "vote")
    assert vote.argmax(1).item() == 1
    assert torch.allclose(vote.sum(1), torch.ones(1)) and (vote > 0).all()
    assert torch.allclose(vote, torch.tensor([[0.5, 0.5, 0.0]]), atol=1e-3)
    assert torch.allclose(aggregate(probs, "softmax"), probs.mean(0))
    # a majority is never overturned by the tie-break
    probs = torch.tensor([[[0.51, 0.49]], [[0.51, 0.49]], [[0.0, 1.0]]])
    assert aggregate(probs, "vote").argmax(1).item() == 0
    members = [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)]
    ens = SisaEnsemble(members, "softmax")
    x = torch.randn(5, 3)
    expected = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
    assert torch.allclose(torch.softmax(ens(x), 1), expected, atol=1e-6)
    with pytest.raises(ConfigError):
        SisaEnsemble(members, "median")


def test_unlearning_is_bit_exact_against_training_without_the_ids(toy, store, tmp_path):
    """The test that matters: every shard, after unlearning, is the model that training from
    scratch on the same plan without the deleted IDs gives, with the same seeds."""
    model, train, _ = toy
    plan = store.plan
    # two IDs in shard 0 (slices 1 and 2) and one in slice 2 of shard 2; shard 1 untouched
    ids = torch.tensor([int(plan.slices[0][2][3]), int(plan.slices[0][1][0]), int(plan.slices[2][2][5])])
    untouched = {p: d for p, d in folder_digest(store.root).items() if p.startswith("shard001")}
    result = store.unlearn(ids, pool=train.pool, template=model)
    assert result.report.retrained == {0: 1, 2: 2}
    assert {p: d for p, d in folder_digest(store.root).items() if p.startswith("shard001")} == untouched

    reference = train_sisa(model, train, CONFIG, tmp_path / "scratch", plan=plan.without(ids))
    reopened = SisaStore.open(store.root)  # what a later process sees
    for s in range(CONFIG.shards):
        for r in range(CONFIG.slices):
            assert same(reopened.state(s, r), reference.state(s, r)), f"shard {s} slice {r} differs"
    # and the aggregate predicts the same
    x = train.take(slice(0, 64))
    assert torch.equal(predict_logits(reopened.ensemble(model), x), predict_logits(reference.ensemble(model), x))


def test_cost_is_only_the_affected_shards_and_matches_the_accounting(toy, store):
    model, train, _ = toy
    plan = store.plan
    budget = CONFIG.stage_budget
    full = retrain_samples(plan, {s: 0 for s in range(3)}, budget.epochs, budget.batch_size)
    assert full == store.manifest["training"]["samples"]  # the accounting is what train() processed
    ids = torch.cat([plan.slices[1][2][:4], plan.slices[1][0][:1]])  # a batch, one shard, from slice 0
    predicted = retrain_samples(plan.without(ids), first_affected(plan, ids), budget.epochs, budget.batch_size)
    report = store.unlearn(ids, pool=train.pool, template=model).report
    assert report.retrained == {1: 0}  # the batch retrains shard 1 once, from its first slice
    assert report.samples == predicted
    assert 0.25 < report.fraction_of_full_retrain < 0.45  # about one shard of three
    assert len(store.history) == 1 and store.history[0]["samples"] == predicted
    # a one-sample request in the last slice costs only the last stage of one shard
    last = store.plan.slices[2][2][:1]
    report = store.unlearn(last, pool=train.pool, template=model).report
    assert report.retrained == {2: 2} and report.fraction_of_full_retrain < 0.2


def test_bad_requests_change_nothing_on_disk(toy, store):
    model, train, _ = toy
    first = store.plan.slices[0][0][:2]
    store.unlearn(first, pool=train.pool, template=model)
    before = folder_digest(store.root)
    known = int(store.plan.slices[1][1][0])
    for bad, message in [(torch.tensor([known, known]), "duplicate"),
                         (torch.tensor([known, int(first[0])]), "already deleted"),
                         (torch.tensor([known, 10**7]), "never in this SISA training set"),
                         (torch.tensor([], dtype=torch.int64), "empty"),
                         (torch.tensor([1.5]), "integers"),
                         ([], "empty"), ([known, 2**70], "integers"), (["7"], "integers")]:
        with pytest.raises(ForgetRequestError, match=message):
            store.unlearn(bad, pool=train.pool, template=model)
    assert folder_digest(store.root) == before
    with pytest.raises(CheckpointError, match="architecture"):
        store.unlearn(torch.tensor([known]), pool=train.pool, template=torch.nn.Sequential(torch.nn.Linear(2, 2)))
    from unlearnkit.data.pool import Pool

    shuffled = Pool(train.pool.x.flip(0), train.pool.y.flip(0), train.pool.mean, train.pool.std)
    with pytest.raises(DataError, match="fingerprint"):
        store.unlearn(torch.tensor([known]), pool=shuffled, template=model)
    assert folder_digest(store.root) == before


def test_deleting_every_remaining_id_is_refused_and_changes_nothing(toy, store):
    model, train, _ = toy
    first = store.plan.slices[0][0][:2]
    store.unlearn(first, pool=train.pool, template=model)
    before = folder_digest(store.root)
    for persist in (True, False):
        with pytest.raises(ForgetRequestError, match="all .* remaining"):
            store.unlearn(store.plan.ids(), pool=train.pool, template=model, persist=persist)
    assert folder_digest(store.root) == before
    store.ensemble(model)  # still usable


def test_a_crash_mid_unlearning_leaves_the_store_as_it_was(toy, store):
    model, train, _ = toy

    class DiesAfterFirstShard:
        name = "dies"

        def map(self, fn, items, *, common=None):
            items = list(items)
            yield 0, fn(common, items[0])
            raise KeyboardInterrupt  # the process is stopped while the second shard retrains

    before = folder_digest(store.root)
    ids = torch.tensor([int(store.plan.slices[0][0][0]), int(store.plan.slices[1][0][0])])
    with pytest.raises(KeyboardInterrupt):
        store.unlearn(ids, pool=train.pool, template=model, backend=DiesAfterFirstShard())
    assert folder_digest(store.root) == before
    # a crash after new checkpoints were written but before the bookkeeping: orphans are ignored and cleared
    orphan = store.root / "shard000" / "slice000-g1.pt"
    orphan.write_bytes(b"half a checkpoint")
    again = SisaStore.open(store.root)
    again.unlearn(ids, pool=train.pool, template=model)
    assert json.loads((store.root / "sisa.json").read_text())["generation"] == 1
    assert torch.isin(ids, again.deleted).all()
    again.state(0, 0)  # the new generation-1 file, not the orphan, and its checksum holds


def test_an_explicit_plan_must_hold_distinct_ids_of_the_samples(toy, tmp_path):
    from unlearnkit.sisa import ShardPlan

    model, train, _ = toy
    small = train.take(slice(0, 40))
    config = SisaConfig(shards=2, slices=1, seed=0, budget=TrainConfig(epochs=1, batch_size=32))
    ids = small.ids
    outside = int(train.ids[50])  # in the pool, not in the samples
    for plan, message in [(ShardPlan(((ids[:20],), (torch.cat([ids[20:], torch.tensor([outside])]),))), "not in the samples"),
                          (ShardPlan(((ids[:20],), (ids[19:],))), "more than once")]:
        with pytest.raises(ConfigError, match=message):
            train_sisa(model, small, config, tmp_path / "store", plan=plan)
        assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("edit", ["float", "duplicate", "nested"])
def test_a_corrupted_plan_in_the_bookkeeping_is_refused(store, edit):
    path = store.root / "sisa.json"
    manifest = json.loads(path.read_text())
    first = manifest["plan"][0][0]
    if edit == "float":
        first[0] += 0.5  # would be truncated to another ID
    elif edit == "duplicate":
        first[0] = manifest["plan"][1][0][0]
    else:
        manifest["plan"][0][0] = [first]
    path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="malformed SISA plan"):
        SisaStore.open(store.root)


def test_corrupted_checkpoint_is_refused(toy, store):
    path = store.root / store.checkpoints[0][2]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        store.ensemble(toy[0])


def test_ensemble_is_accurate_and_a_class_deletion_forgets_it(toy, store):
    model, train, test = toy
    ens = store.ensemble(model)
    assert accuracy(predict_logits(ens, test), test.labels) > 70
    ids = train.ids[train.labels == 1]
    result = store.unlearn(ids, pool=train.pool, template=model, persist=False)
    assert result.report.retrained == {0: 0, 1: 0, 2: 0}
    forgotten = result.ensemble(model)
    forget = train.take(train.labels == 1)
    assert accuracy(predict_logits(forgotten, forget), forget.labels) < 10
    assert store.generation == 0 and len(store.deleted) == 0  # persist=False wrote nothing


def test_config_validation():
    with pytest.raises(ConfigError):
        SisaConfig(shards=0)
    with pytest.raises(ConfigError):
        SisaConfig(slices=2.5)
    assert SisaConfig(slices=4, budget=TrainConfig(epochs=10)).stage_budget.epochs == pytest.approx(4.0)


def test_sisa_row_in_a_run_times_the_unlearning_and_reuses_the_trained_ensemble(tmp_path):
    from unlearnkit.data.dataset import cache_root
    from unlearnkit.experiments import load_config, run_experiment
    from unlearnkit.sisa.store import MANIFEST

    tiny = ["data.name=synthetic", "data.options.n_train=400", "data.options.n_test=160", "data.options.size=8",
            "data.options.noise=90", "model.options.channels=[4,8]", "model.options.hidden=16", "train.epochs=2",
            "train.batch_size=32", "noise_floor=false", "attacks=false", "methods=[sisa]", "seeds=[0]",
            "params.sisa.shards=2", "params.sisa.slices=2"]
    (first,) = [r for r in run_experiment(load_config(None, tiny + [f"out_dir={tmp_path / 'a'}"])) if r["method"] == "sisa"]
    assert first["status"] == "ok" and first["cost"]["training_cached"] is False
    assert first["cost"]["shards_retrained"] == 2 and first["cost"]["samples"] == first["cost"]["full_retrain_samples"]
    # the class scenario of the same seed trains on the same set: the ensemble comes from the cache
    (second,) = [r for r in run_experiment(load_config(None, tiny + ["forget.scenario=class", "forget.forget_class=1",
                                                                     f"out_dir={tmp_path / 'b'}"]))
                 if r["method"] == "sisa"]
    assert second["cost"]["training_cached"] is True
    assert second["cost"]["training_seconds"] == first["cost"]["training_seconds"]
    assert second["metrics"]["UA"] > 90  # the class is gone from every shard
    stores = [SisaStore.open(p.parent) for p in (cache_root() / "sisa").rglob(MANIFEST)]
    assert len(stores) == 1 and stores[0].generation == 0 and len(stores[0].deleted) == 0  # never unlearned itself
