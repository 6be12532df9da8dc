"""Forward passes over a sample set: logits, probabilities, features, accuracy."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.pool import Samples


@torch.inference_mode()
def predict_logits(model: nn.Module, samples: Samples, *, batch_size: int = 1024) -> Tensor:
    """Logits ``[n, C]`` (on CPU) of ``model`` in eval mode; the model's mode is restored after.
    On a GPU the samples' pool is copied there once when it fits (Samples.near)."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    out = [model(x).float() for x, _ in samples.near(device).batches(batch_size, device=device)]
    model.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out).cpu()  # one copy back (on a GPU, one synchronisation)


@torch.inference_mode()
def predict_features(model: nn.Module, samples: Samples, *, batch_size: int = 1024) -> Tensor:
    """Penultimate features ``[n, d]`` from ``model.forward_features`` in eval mode."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    out = [model.forward_features(x).float() for x, _ in samples.near(device).batches(batch_size, device=device)]
    model.train(was_training)
    return torch.cat(out).cpu() if out else torch.empty(0, 0)


def sample_accuracy(model: nn.Module, samples: Samples) -> float:
    """Top-1 accuracy in percent of ``model`` on ``samples`` (one forward pass; NaN for an empty set)."""
    return accuracy(predict_logits(model, samples), samples.labels)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy in percent (NaN for an empty set)."""
    if labels.numel() == 0:
        return float("nan")
    return 100.0 * (logits.argmax(dim=1) == labels).float().mean().item()
