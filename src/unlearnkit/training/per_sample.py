"""Per-sample gradients, vectorised with ``torch.func`` (no Python loop over samples).

Fisher forgetting, influence unlearning and the gradient-based deletion adversaries all need the
gradient of one sample's loss with respect to the weights, for many samples. ``vmap(grad(...))``
computes a whole batch of them in one call. The model is evaluated in eval mode (BatchNorm uses
its running statistics, dropout is off), which is what "the gradient of this sample's loss at these
weights" means; pruned weights (sparsity masks) get exactly zero gradient.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ..data.pool import Samples
from ..sparsity.masks import masks_of

SampleLoss = Callable[[Tensor, Tensor], Tensor]  # (logits [C], label []) -> scalar


def _cross_entropy(logits: Tensor, label: Tensor) -> Tensor:
    return F.cross_entropy(logits, label)


def trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def per_sample_grads(model: nn.Module, x: Tensor, y: Tensor, *, loss: SampleLoss = _cross_entropy,
                     names: list[str] | None = None) -> dict[str, Tensor]:
    """Gradient of each sample's loss: parameter name → tensor ``[B, *param.shape]``.

    Args:
        model: evaluated in eval mode; its mode is restored afterwards. Not modified.
        x, y: one batch of inputs and labels (on the model's device).
        loss: per-sample loss of ``(logits [C], label [])``; cross-entropy by default.
        names: the parameters to differentiate (default: every trainable one).
    """
    names = trainable_names(model) if names is None else names
    all_params = dict(model.named_parameters())
    params = {n: all_params[n].detach() for n in names}
    frozen = {n: p.detach() for n, p in all_params.items() if n not in params}
    buffers = dict(model.named_buffers())

    def sample_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(model, ({**frozen, **p}, buffers), (xi.unsqueeze(0),))
        return loss(logits.squeeze(0), yi)

    was_training = model.training
    model.eval()
    try:
        grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
    finally:
        model.train(was_training)
    masks = masks_of(model)
    return {n: g * masks[n] if n in masks else g for n, g in grads.items()}


def flat_per_sample_grads(model: nn.Module, x: Tensor, y: Tensor, *, loss: SampleLoss = _cross_entropy,
                          names: list[str] | None = None) -> Tensor:
    """:func:`per_sample_grads` flattened and concatenated in parameter order: ``[B, P]``."""
    grads = per_sample_grads(model, x, y, loss=loss, names=names)
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)


def iter_flat_grads(model: nn.Module, samples: Samples, *, batch_size: int = 64, loss: SampleLoss = _cross_entropy,
                    names: list[str] | None = None) -> Iterator[Tensor]:
    """Flat per-sample gradients of ``samples`` in order, ``batch_size`` rows at a time."""
    device = next(model.parameters()).device
    for x, y in samples.batches(batch_size, device=device):
        yield flat_per_sample_grads(model, x, y, loss=loss, names=names)


def per_sample_grad_norms(model: nn.Module, samples: Samples, *, batch_size: int = 64,
                          loss: SampleLoss = _cross_entropy) -> Tensor:
    """L2 norm of each sample's full gradient, ``[len(samples)]`` (on CPU)."""
    norms = [g.norm(dim=1).cpu() for g in iter_flat_grads(model, samples, batch_size=batch_size, loss=loss)]
    return torch.cat(norms) if norms else torch.empty(0)


def mean_flat_grad(model: nn.Module, samples: Samples, *, batch_size: int = 256,
                   loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> Tensor:
    """Gradient of the mean loss over ``samples``, flattened like :func:`flat_per_sample_grads` (eval mode)."""
    names = trainable_names(model)
    params = dict(model.named_parameters())
    total = [torch.zeros_like(params[n]) for n in names]
    was_training = model.training
    model.eval()
    try:
        for x, y in samples.batches(batch_size, device=next(model.parameters()).device):
            batch_loss = loss(model(x), y) * (y.shape[0] / len(samples))
            for t, g in zip(total, torch.autograd.grad(batch_loss, [params[n] for n in names])):
                t.add_(g)
    finally:
        model.train(was_training)
    masks = masks_of(model)
    return torch.cat([(t * masks[n] if n in masks else t).reshape(-1) for n, t in zip(names, total)])
