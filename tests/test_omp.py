"""OMP with weight rewinding (sparsity/omp.py) and the step window of train() it relies on."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from unlearnkit.errors import TrainingError
from unlearnkit.sparsity import global_magnitude_masks, masks_of, prunable, sparsity_of
from unlearnkit.sparsity.omp import omp_rewind, rewind_step
from unlearnkit.training import TrainConfig, train

from .conftest import make_toy_model

BUDGET = TrainConfig(epochs=2, lr=0.05, batch_size=64)


def same_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_stop_step_replays_the_first_steps_and_start_step_resumes_the_schedule(toy_dataset, toy_base):
    base, _ = toy_base
    steps_per_epoch = math.ceil(len(base.train) / BUDGET.batch_size)
    k = 5
    snapshots = {}

    def snap(model, counter=[0]):  # the weights of a full run after step k
        counter[0] += 1
        if counter[0] == k:
            snapshots["k"] = copy.deepcopy(model)

    full = make_toy_model(toy_dataset)
    train(full, base.train, BUDGET, generator=torch.Generator().manual_seed(3), after_step=snap)
    replay = make_toy_model(toy_dataset)
    stats = train(replay, base.train, BUDGET, generator=torch.Generator().manual_seed(3), stop_step=k)
    assert stats.steps == k and same_weights(replay, snapshots["k"])
    # resuming at k with the rest of the schedule runs exactly the remaining steps
    rest = train(replay, base.train, BUDGET, generator=torch.Generator().manual_seed(4), start_step=k)
    assert rest.steps == 2 * steps_per_epoch - k
    with pytest.raises(TrainingError, match="do not lie within"):
        train(make_toy_model(toy_dataset), base.train, BUDGET, generator=torch.Generator(), start_step=k, stop_step=k)


def test_rewind_step():
    assert rewind_step(BUDGET, 900, 0.05) == round(0.05 * 2 * 15)
    assert rewind_step(BUDGET, 900, 0.0) == 0
    with pytest.raises(ValueError):
        rewind_step(BUDGET, 900, 1.0)


@pytest.mark.parametrize("rewind", [0.0, 0.2])
def test_omp_rewind_prunes_the_trained_weights_and_rewinds(toy_dataset, toy_base, rewind):
    base, _ = toy_base
    init = make_toy_model(toy_dataset)
    dense = copy.deepcopy(init)
    train(dense, base.train, BUDGET, generator=torch.Generator().manual_seed(1))
    dense_before, init_before = copy.deepcopy(dense), copy.deepcopy(init)
    sparse = omp_rewind(dense, init, base.train, BUDGET, sparsity=0.8, rewind=rewind,
                        replay=torch.Generator().manual_seed(1), generator=torch.Generator().manual_seed(2))
    assert same_weights(dense, dense_before) and same_weights(init, init_before)  # inputs untouched
    total = sum(w.numel() for w in prunable(dense).values())
    assert sparsity_of(sparse) == pytest.approx(round(0.8 * total) / total)
    # the mask is that of the trained dense weights, and pruned weights are exactly zero
    expected = global_magnitude_masks(dense, 0.8)
    params = dict(sparse.named_parameters())
    for name, mask in masks_of(sparse).items():
        assert torch.equal(mask, expected[name])
        assert torch.all(params[name][mask == 0] == 0)
    # same generators, same sparse model
    again = omp_rewind(dense, init, base.train, BUDGET, sparsity=0.8, rewind=rewind,
                       replay=torch.Generator().manual_seed(1), generator=torch.Generator().manual_seed(2))
    assert same_weights(sparse, again)


def test_sparse_training_starts_from_the_masked_rewound_weights(toy_dataset, toy_base, monkeypatch):
    import unlearnkit.sparsity.omp as omp

    base, _ = toy_base
    init = make_toy_model(toy_dataset)
    dense = copy.deepcopy(init)
    train(dense, base.train, BUDGET, generator=torch.Generator().manual_seed(1))
    k = rewind_step(BUDGET, len(base.train), 0.2)
    rewound = copy.deepcopy(init)
    train(rewound, base.train, BUDGET, generator=torch.Generator().manual_seed(1), stop_step=k)
    starts = []
    real_train = omp.train

    def spy(model, *args, **kwargs):
        if kwargs.get("start_step"):
            starts.append((copy.deepcopy(model), kwargs["start_step"]))
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(omp, "train", spy)
    omp_rewind(dense, init, base.train, BUDGET, sparsity=0.8, rewind=0.2, replay=torch.Generator().manual_seed(1),
               generator=torch.Generator().manual_seed(2))
    (start, step), = starts
    assert step == k > 0
    masks = global_magnitude_masks(dense, 0.8)
    for name, p in start.named_parameters():
        expected = dict(rewound.named_parameters())[name] * masks.get(name, 1)
        assert torch.equal(p, expected), name
