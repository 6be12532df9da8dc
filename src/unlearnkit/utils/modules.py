"""Copies of a model and where it lives."""
from __future__ import annotations

import copy

import torch
from torch import nn


def fresh_copy(model: nn.Module) -> nn.Module:
    """A deep copy to update, so the caller's model is never touched."""
    return copy.deepcopy(model)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter."""
    return next(model.parameters()).device
