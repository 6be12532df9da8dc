from __future__ import annotations

import pytest
import torch

from unlearnkit.data import Augment, ForgetRequest, base_split, forget_split, select_forget_ids, stratified_subset
from unlearnkit.errors import ConfigError


def test_shuffled_batches_cover_every_id_once(toy_base):
    base, _ = toy_base
    seen = torch.cat([y for _, y in base.train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert len(seen) == len(base.train)
    assert torch.equal(torch.sort(seen).values, torch.sort(base.train.labels).values)


def test_relabel_and_union_keep_targets(toy_base):
    base, _ = toy_base
    part = base.train.take(slice(0, 10))
    wrong = part.relabel((part.labels + 1) % 4)
    joined = base.train.take(slice(10, 20)).union(wrong)
    assert torch.equal(joined.labels[10:], (part.labels + 1) % 4)
    ys = torch.cat([y for _, y in joined.batches(7)])
    assert torch.equal(ys, joined.labels)


def test_augment_is_seeded_and_shape_preserving():
    x = torch.rand(5, 3, 8, 8)
    a = Augment()(x, torch.Generator().manual_seed(0))
    b = Augment()(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert torch.equal(Augment(crop_padding=0, flip=False)(x, torch.Generator()), x)
    flipped = Augment(crop_padding=0, flip=True)(x, torch.Generator().manual_seed(1))
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x))


def test_validation_is_stratified_seeded_and_disjoint(toy_dataset):
    (b1, t1), (b2, _), (b3, _) = (base_split(toy_dataset, seed=s) for s in (0, 0, 1))
    assert torch.equal(b1.val.ids, b2.val.ids) and not torch.equal(b1.val.ids, b3.val.ids)
    assert not torch.isin(b1.val.ids, b1.train.ids).any()
    assert len(b1.val) + len(b1.train) == len(toy_dataset.train)
    counts = torch.bincount(b1.val.labels, minlength=4)
    assert counts.max() - counts.min() <= 1
    assert len(t1) == len(toy_dataset.test)


def test_subsets_keep_file_ids(toy_dataset):
    base, test = base_split(toy_dataset, train_subset=200, test_subset=40, seed=0)
    assert len(base.train) + len(base.val) == 200 and len(test) == 40
    assert base.train.ids.max() >= 200  # IDs are rows of the file, not renumbered
    with pytest.raises(ConfigError):
        base_split(toy_dataset, train_subset=10**6)


def test_stratified_subset_exact_count():
    labels = torch.tensor([0] * 7 + [1] * 3)
    got = stratified_subset(labels, torch.arange(10), count=5, generator=torch.Generator().manual_seed(0))
    assert len(got) == 5 and (labels[got] == 0).sum() in (3, 4)


def test_forget_split_partitions_training_set(toy_base, toy_random_split):
    base, _ = toy_base
    s = toy_random_split
    assert len(s.retain) + len(s.forget) == len(base.train)
    assert not torch.isin(s.forget.ids, s.retain.ids).any()
    assert torch.equal(torch.sort(s.train.ids).values, torch.sort(base.train.ids).values)
    assert abs(len(s.forget) - round(0.1 * len(base.train))) <= 1
