"""Healing: nearest neighbours against brute force, the reserve's bookkeeping, and heal() itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnkit.data import Samples, forget_split
from unlearnkit.data.dataset import make_dataset
from unlearnkit.errors import ConfigError, ForgetRequestError
from unlearnkit.healing import Heal, SpareReserve, TwinIndex, fit_similarity, nearest
from unlearnkit.methods import create_method
from unlearnkit.methods.ga import negative_cross_entropy
from unlearnkit.training.loop import scaled, train as train_model
from unlearnkit.utils.modules import fresh_copy
from unlearnkit.methods.ga import negative_cross_entropy
from unlearnkit.training.loop import scaled, train as train_model
from unlearnkit.utils.modules import fresh_copy
from unlearnkit.training import accuracy, predict_features, predict_logits

from .conftest import TOY_BUDGET


def tiny_pool(n=60, d=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 1, d, generator=g) * 255).to(torch.uint8)
    y = torch.arange(n) % classes
    return make_dataset("tiny", x, y, x[:2], y[:2], classes).train


@pytest.mark.parametrize("k, chunk", [(1, 7), (4, 1000)])
def test_nearest_matches_brute_force(k, chunk):
    g = torch.Generator().manual_seed(0)
    q, keys = torch.randn(23, 6, generator=g), torch.randn(40, 6, generator=g)
    ql, kl = torch.randint(0, 3, (23,), generator=g), torch.randint(0, 3, (40,), generator=g)
    mask = torch.rand(40, generator=g) < 0.7
    dist, idx = nearest(q, keys, k=k, chunk=chunk, query_labels=ql, key_labels=kl, key_mask=mask)
    brute = torch.cdist(q.double(), keys.double()) ** 2
    brute[(ql[:, None] != kl[None, :]) | ~mask[None, :]] = float("inf")
    ref_d, ref_i = brute.sort(dim=1)
    torch.testing.assert_close(dist, ref_d[:, :k].float(), rtol=1e-5, atol=1e-5)
    finite = torch.isfinite(ref_d[:, :k])
    assert torch.equal(idx[finite], ref_i[:, :k][finite]) and (idx[~finite] == -1).all()


def test_similarities_rank_like_their_definitions(toy_original, toy_base):
    from sklearn.covariance import LedoitWolf

    base, _ = toy_base
    a, b = base.train.take(slice(0, 30)), base.val.take(slice(0, 20))
    f_a, f_b = predict_features(toy_original, a).double(), predict_features(toy_original, b).double()
    cos = fit_similarity("cosine", model=toy_original)
    ref = torch.nn.functional.normalize(f_a, dim=1) @ torch.nn.functional.normalize(f_b, dim=1).T
    assert torch.equal(nearest(cos(a), cos(b))[1].squeeze(1), ref.argmax(1))
    maha = fit_similarity("mahalanobis", model=toy_original, fit_on=b)
    inv = torch.from_numpy(np.linalg.inv(LedoitWolf().fit(f_b.numpy()).covariance_))
    diff = f_a[:, None, :] - f_b[None, :, :]
    ref_d = torch.einsum("qkd,de,qke->qk", diff, inv, diff)
    torch.testing.assert_close(torch.cdist(maha(a).double(), maha(b).double()) ** 2, ref_d, rtol=1e-4, atol=1e-4)
    raw = fit_similarity("euclidean")(a)
    assert raw.shape == (30, 64) and raw.max() <= 1
    with pytest.raises(ConfigError, match="valid: euclidean, cosine, mahalanobis"):
        fit_similarity("manhattan")
    with pytest.raises(ConfigError, match="give the model"):
        fit_similarity("cosine")


def greedy_reference(queries, q_labels, keys, k_labels, free):
    """The documented policy, one element at a time: rounds in which each waiting element proposes its
    nearest free spare of its class and the earliest proposer of a spare wins it."""
    free = free.clone()
    chosen = [-1] * len(queries)
    waiting = list(range(len(queries)))
    while waiting:
        proposals = {}
        for i in waiting:
            d = [((queries[i] - keys[j]) ** 2).sum().item() if free[j] and k_labels[j] == q_labels[i] else float("inf")
                 for j in range(len(keys))]
            best = int(np.argmin(d))
            if d[best] == float("inf"):
                continue
            proposals.setdefault(best, i)
        for i in list(waiting):
            best = [j for j, w in proposals.items() if w == i]
            if best:
                chosen[i] = best[0]
                free[best[0]] = False
        waiting = [i for i in waiting if chosen[i] == -1 and any(free[j] and k_labels[j] == q_labels[i] for j in range(len(keys)))]
    return chosen


@pytest.mark.parametrize("kind", [SpareReserve, TwinIndex])
@pytest.mark.parametrize("candidates", [1, 3])
def test_replacements_follow_the_documented_policy(kind, candidates):
    pool = tiny_pool()
    train, spares = Samples(pool, torch.arange(0, 45)), Samples(pool, torch.arange(45, 60))
    emb = fit_similarity("euclidean")
    reserve = kind(train, spares, emb, candidates=candidates, chunk=4)
    request = torch.tensor([3, 17, 0, 8, 30, 31, 5, 6, 9, 12, 14, 21, 24, 27, 33, 36, 39, 40])  # more than the spares
    rep = reserve.request(request)
    q, keys = emb(Samples(pool, request)).double(), emb(spares).double()
    expected = greedy_reference(q, pool.y[request], keys, pool.y[spares.ids], torch.ones(15, dtype=torch.bool))
    assert rep.spares.tolist() == [45 + j if j >= 0 else -1 for j in expected]
    handed = rep.handed_out
    per_class = torch.minimum(torch.bincount(pool.y[request], minlength=3), torch.bincount(pool.y[spares.ids], minlength=3))
    assert len(torch.unique(handed)) == len(handed) == int(per_class.sum())  # each spare once, while a class lasts
    assert (pool.y[handed] == pool.y[request[rep.spares >= 0]]).all()


def test_twin_index_precomputes_the_nearest_twins(toy_original, toy_base):
    base, _ = toy_base
    train, extra = base.train.take(slice(0, 600)), base.train.take(slice(600, 900))
    emb = fit_similarity("cosine", model=toy_original)
    twins = TwinIndex(train, extra, emb, candidates=2, same_class=False)
    ref = torch.nn.functional.normalize(predict_features(toy_original, train), dim=1) @ \
        torch.nn.functional.normalize(predict_features(toy_original, extra), dim=1).T
    assert torch.equal(twins.twins_of(train.ids)[:, 0], extra.ids[ref.argmax(1)])
    # a first request gets the same replacements from a twin index and from a spare reserve
    spare = SpareReserve(train, extra, emb, candidates=2, same_class=False)
    ids = train.ids[torch.randperm(600, generator=torch.Generator().manual_seed(0))[:100]]
    assert torch.equal(twins.request(ids).spares, spare.request(ids).spares)


def assert_ledger(reserve, original):
    parts = [reserve.train_ids, reserve.deleted_ids, reserve.reserve_ids]
    everything = torch.cat(parts)
    assert len(torch.unique(everything)) == len(everything) == len(original)
    assert torch.equal(torch.sort(everything).values, original)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", [SpareReserve, TwinIndex])
def test_bookkeeping_invariant_over_random_request_sequences(seed, kind):
    """Property: whatever sequence of valid and invalid requests arrives, training ⊔ deleted ⊔ reserve
    is the original set, a refused request changes nothing, and no spare is handed out twice."""
    g = torch.Generator().manual_seed(seed)
    pool = tiny_pool(n=80, seed=seed)
    perm = torch.randperm(80, generator=g)
    reserve = kind(Samples(pool, perm[:50]), Samples(pool, perm[50:]), fit_similarity("euclidean"), candidates=2)
    original = torch.sort(perm).values
    handed_so_far = []
    for step in range(12):
        train, deleted, spares = reserve.train_ids, reserve.deleted_ids, reserve.reserve_ids
        kind_of_request = int(torch.randint(0, 6, (1,), generator=g))
        n = int(torch.randint(1, 6, (1,), generator=g))
        ids = train[torch.randperm(len(train), generator=g)[:n]]
        bad = {1: torch.cat([ids, ids[:1]]),                                     # duplicate
               2: torch.cat([ids, torch.tensor([1000 + step])]),                 # unknown
               3: torch.cat([ids, deleted[:1]]) if len(deleted) else None,       # already deleted
               4: torch.cat([ids, spares[:1]]) if len(spares) else None}.get(kind_of_request)  # still a spare
        status = reserve.status.clone()
        if bad is not None:
            with pytest.raises(ForgetRequestError):
                reserve.request(bad)
            assert torch.equal(reserve.status, status), "a refused request changed the ledger"
        else:
            policy = "random" if kind_of_request == 5 else "nearest"
            rep = reserve.request(ids, policy=policy, generator=g)
            assert torch.isin(rep.deleted, reserve.deleted_ids).all()
            assert torch.isin(rep.handed_out, reserve.train_ids).all()
            assert torch.isin(rep.handed_out, spares).all()
            handed_so_far += rep.handed_out.tolist()
            assert (rep.spares >= 0).sum() == min(len(ids), len(spares)) or reserve.same_class
        assert_ledger(reserve, original)
    assert len(set(handed_so_far)) == len(handed_so_far)


def test_copy_is_independent():
    pool = tiny_pool()
    reserve = SpareReserve(Samples(pool, torch.arange(45)), Samples(pool, torch.arange(45, 60)), fit_similarity("euclidean"))
    twin = reserve.copy()
    twin.request(torch.tensor([1, 2]))
    assert len(reserve.deleted_ids) == 0 and len(twin.deleted_ids) == 2


def test_reserve_refuses_bad_construction():
    pool, other = tiny_pool(), tiny_pool(seed=1)
    emb = fit_similarity("euclidean")
    with pytest.raises(ConfigError, match="distinct"):
        SpareReserve(Samples(pool, torch.arange(10)), Samples(pool, torch.arange(5, 15)), emb)
    with pytest.raises(ConfigError, match="same pool"):
        SpareReserve(Samples(pool, torch.arange(10)), Samples(other, torch.arange(10, 15)), emb)
    reserve = SpareReserve(Samples(pool, torch.arange(10)), Samples(pool, torch.arange(10, 15)), emb)
    for bad, message in [([], "empty"), ([1.5], "integers"), ([99], "unknown")]:
        with pytest.raises(ForgetRequestError, match=message):
            reserve.request(torch.tensor(bad))
    with pytest.raises(ConfigError, match="policy"):
        reserve.request(torch.tensor([1]), policy="best")


def test_heal_repairs_a_damaged_model(toy_dataset, toy_original, toy_base):
    base, test = toy_base
    held = torch.isin(base.train.ids, base.train.ids[::5])
    train, spares = base.train.take(~held), base.train.take(held)
    forget = train.ids[train.labels == 0][:-5]  # nearly a whole class requested
    split = forget_split(type(base)(base.dataset, train, base.val), test, forget, TOY_BUDGET)
    damaged = fresh_copy(toy_original)  # a fixed-budget ascent (GA itself stops once D_f looks unseen)
    train_model(damaged, split.forget, scaled(split.budget, epochs=2, lr=split.budget.lr * 0.2, schedule="constant",
                                              warmup_epochs=0.0), generator=torch.Generator().manual_seed(0),
                loss_fn=negative_cross_entropy)
    before = accuracy(predict_logits(damaged, test), test.labels)
    state = {k: v.clone() for k, v in damaged.state_dict().items()}
    results = {}
    for data in ("remaining", "replacements", "random"):
        reserve = TwinIndex(train, spares, fit_similarity("mahalanobis", model=toy_original, fit_on=spares))
        healed = Heal(data=data, epochs=2, lr_share=0.1).heal(damaged, split, reserve, generator=torch.Generator().manual_seed(0))
        results[data] = accuracy(predict_logits(healed, test), test.labels)
        assert all(torch.equal(v, damaged.state_dict()[k]) for k, v in state.items()), "heal mutated its input"
        if data != "remaining":
            handed = reserve.train_ids[~torch.isin(reserve.train_ids, train.ids)]
            assert len(reserve.deleted_ids) == len(forget) and (spares.pool.y[handed] == 0).all()
            assert len(handed) == min(len(forget), int((spares.labels == 0).sum()))
    assert before < 80
    # gradient ascent on a class thinned to 5 samples broke the model; every healing repairs much of it,
    # and the replacements (which bring the class back) more than the remaining data alone
    assert min(results.values()) > before + 10, (before, results)
    assert results["replacements"] > results["remaining"] + 3, results
    again = Heal(data="remaining", epochs=2, lr_share=0.1).heal(damaged, split, None, generator=torch.Generator().manual_seed(0))
    assert accuracy(predict_logits(again, test), test.labels) == results["remaining"]


def test_heal_configuration_errors(toy_original, toy_random_split):
    for bad in ({"data": "twins"}, {"epochs": 0.0}, {"epoch_share": -1.0}, {"lr_share": float("nan")}, {"epochs": "1"}):
        with pytest.raises(ConfigError):
            Heal(**bad)
    with pytest.raises(ConfigError, match="needs a spare reserve"):
        Heal().heal(toy_original, toy_random_split, None, generator=torch.Generator())
