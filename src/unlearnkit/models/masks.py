"""Pruning masks that travel with the model and hold pruned weights at exactly zero.

A mask is a buffer ``<param>_mask`` registered on the module that owns the parameter, so it moves
with ``deepcopy``, ``state_dict`` and checkpoints. ``train()`` calls :func:`apply_masks` before the
first step and masks gradients and weights at every step, so weight decay and momentum cannot
revive a pruned weight; methods with loops of their own call :func:`apply_masks` (and
:func:`mask_gradients` before an optimiser step) themselves.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

SUFFIX = "_mask"


def _owner(model: nn.Module, param_name: str) -> tuple[nn.Module, str]:
    module_name, _, leaf = param_name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), leaf


def attach_masks(model: nn.Module, masks: dict[str, Tensor]) -> nn.Module:
    """Register ``masks`` (parameter name → 0/1 tensor of the parameter's shape) and apply them.

    Every mask is checked before any is registered, so a bad one leaves ``model`` untouched."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise KeyError(f"no parameter {name!r} to mask")
        if mask.shape != params[name].shape:
            raise ValueError(f"mask for {name} has shape {tuple(mask.shape)}, parameter {tuple(params[name].shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask for {name} must hold only 0 and 1 (a pruned or a kept weight)")
    for name, mask in masks.items():
        module, leaf = _owner(model, name)
        module.register_buffer(leaf + SUFFIX, mask.to(device=params[name].device, dtype=params[name].dtype).clone())
    apply_masks(model)
    return model


def masks_of(model: nn.Module) -> dict[str, Tensor]:
    """Parameter name → mask, for every masked parameter of ``model``."""
    out = {}
    for module_name, module in model.named_modules():
        for leaf in module._parameters:
            mask = module._buffers.get(leaf + SUFFIX)
            if mask is not None:
                out[f"{module_name}.{leaf}" if module_name else leaf] = mask
    return out


def _pairs(model: nn.Module):
    for module in model.modules():
        for leaf, param in module._parameters.items():
            mask = module._buffers.get(leaf + SUFFIX)
            if param is not None and mask is not None:
                yield param, mask


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero every pruned weight in place (a no-op for a dense model)."""
    for param, mask in _pairs(model):
        param.mul_(mask)


@torch.no_grad()
def mask_gradients(model: nn.Module) -> None:
    """Zero the gradients of pruned weights, so momentum buffers never hold them."""
    for param, mask in _pairs(model):
        if param.grad is not None:
            param.grad.mul_(mask)


def sparsity_of(model: nn.Module) -> float:
    """Share of masked-out entries over all masked parameters (0.0 for a dense model)."""
    total = zeros = 0
    for mask in masks_of(model).values():
        total += mask.numel()
        zeros += int((mask == 0).sum())
    return zeros / total if total else 0.0


def prunable(model: nn.Module) -> dict[str, Tensor]:
    """The weights one-shot magnitude pruning considers: conv and linear weights (not biases, BN)."""
    return {f"{m_name}.weight" if m_name else "weight": m.weight for m_name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}


@torch.no_grad()
def global_magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, Tensor]:
    """Masks removing the ``sparsity`` share of prunable weights with the smallest magnitude,
    ranked globally over all layers (one-shot magnitude pruning, Ma et al. 2021; Jia et al. 2023)."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity}")
    weights = prunable(model)
    scores = torch.cat([w.abs().flatten() for w in weights.values()])
    k = int(round(sparsity * scores.numel()))
    if k == 0:
        return {n: torch.ones_like(w) for n, w in weights.items()}
    threshold = torch.kthvalue(scores, k).values
    masks, budget = {}, k
    for name, w in weights.items():  # ties at the threshold are pruned until exactly k are gone
        below = w.abs() < threshold
        masks[name] = (~below).to(w.dtype)
        budget -= int(below.sum())
    for name, w in weights.items():
        if budget <= 0:
            break
        at = (w.abs() == threshold) & (masks[name] == 1)
        idx = at.flatten().nonzero().squeeze(1)[:budget]
        masks[name].view(-1)[idx] = 0
        budget -= len(idx)
    return masks
