from __future__ import annotations

import copy

import pytest
import torch

from unlearnkit.sparsity import apply_masks, attach_masks, global_magnitude_masks, masks_of, prunable, sparsity_of
from unlearnkit.training import TrainConfig, load_checkpoint, save_checkpoint, train
from unlearnkit.training.loop import masked_step

from .conftest import make_toy_model


def test_global_magnitude_pruning_is_exact_and_global(toy_dataset):
    m = make_toy_model(toy_dataset)
    masks = global_magnitude_masks(m, 0.9)
    total = sum(w.numel() for w in prunable(m).values())
    assert sum(int((k == 0).sum()) for k in masks.values()) == round(0.9 * total)
    kept = torch.cat([w[masks[n] == 1].abs() for n, w in prunable(m).items()])
    pruned = torch.cat([w[masks[n] == 0].abs() for n, w in prunable(m).items()])
    assert kept.min() >= pruned.max()
    with pytest.raises(ValueError):
        global_magnitude_masks(m, 1.0)


def test_masks_travel_with_copies_and_checkpoints(tmp_path, toy_dataset):
    m = attach_masks(make_toy_model(toy_dataset), global_magnitude_masks(make_toy_model(toy_dataset), 0.8))
    assert sparsity_of(m) == pytest.approx(0.8, abs=1e-3)
    assert masks_of(copy.deepcopy(m)).keys() == masks_of(m).keys()
    save_checkpoint(tmp_path / "s.pt", m, {})
    state, _ = load_checkpoint(tmp_path / "s.pt")
    assert any(k.endswith("weight_mask") for k in state)


def test_training_never_revives_pruned_weights(toy_dataset, toy_base):
    base, _ = toy_base
    m = make_toy_model(toy_dataset)
    attach_masks(m, global_magnitude_masks(m, 0.7))
    train(m, base.train, TrainConfig(epochs=1, weight_decay=5e-3, momentum=0.9, batch_size=64),
          generator=torch.Generator())
    params = dict(m.named_parameters())
    for name, mask in masks_of(m).items():
        assert torch.all(params[name][mask == 0] == 0)
    # a dense model is untouched by apply_masks
    dense = make_toy_model(toy_dataset)
    before = [p.clone() for p in dense.parameters()]
    apply_masks(dense)
    assert all(torch.equal(a, b) for a, b in zip(before, dense.parameters()))


@pytest.mark.parametrize("bad", ["half", "nan", "unknown"])
def test_a_bad_mask_is_refused_and_attaches_nothing(toy_dataset, bad):
    m = make_toy_model(toy_dataset)
    before = copy.deepcopy(m.state_dict())
    masks = global_magnitude_masks(m, 0.5)
    last = list(masks)[-1]
    if bad == "unknown":
        masks["nope.weight"] = torch.ones(1)
    else:
        masks[last] = masks[last] * (0.5 if bad == "half" else float("nan"))
    with pytest.raises((ValueError, KeyError)):
        attach_masks(m, masks)
    assert masks_of(m) == {}
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_masked_step_keeps_momentum_of_pruned_weights_at_zero(toy_dataset):
    # mask_gradients's own effect: the optimiser never sees a gradient at a pruned position, so its
    # momentum buffer stays zero there (apply_masks alone would zero the weight but not the buffer)
    m = make_toy_model(toy_dataset)
    attach_masks(m, global_magnitude_masks(m, 0.7))
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(8, *toy_dataset.input_shape)
    y = torch.randint(0, toy_dataset.num_classes, (8,))
    masked_step(m, opt, torch.nn.functional.cross_entropy(m(x), y))
    params = dict(m.named_parameters())
    for name, mask in masks_of(m).items():
        buf = opt.state[params[name]]["momentum_buffer"]
        assert torch.all(buf[mask == 0] == 0) and buf[mask == 1].abs().sum() > 0
