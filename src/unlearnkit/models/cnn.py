"""Small convolutional and fully connected classifiers."""
from __future__ import annotations

import math

from torch import nn

from ..errors import ConfigError
from .base import Classifier, register_model


class CNN(Classifier):
    """Two 3×3 conv layers (each ReLU + 2×2 max-pool) and two fully connected layers.

    Features are the ``hidden``-wide output of the first fully connected layer.
    """

    def __init__(self, *, num_classes: int, input_shape: tuple[int, ...], channels: tuple[int, int] = (32, 64),
                 hidden: int = 128) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"cnn needs image inputs (C, H, W), got {input_shape}")
        c, h, w = input_shape
        c1, c2 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * (h // 4) * (w // 4), hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden


class MLP(Classifier):
    """Fully connected ReLU layers over flattened inputs; features are the last hidden layer."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, ...], hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        if not hidden:
            raise ConfigError("mlp needs at least one hidden layer")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)
        self.feature_dim = width


@register_model("cnn")
def cnn(*, num_classes: int, input_shape: tuple[int, ...], channels=(32, 64), hidden: int = 128) -> CNN:
    return CNN(num_classes=num_classes, input_shape=input_shape, channels=tuple(channels), hidden=hidden)


@register_model("mlp")
def mlp(*, num_classes: int, input_shape: tuple[int, ...], hidden=(256, 256)) -> MLP:
    return MLP(num_classes=num_classes, input_shape=input_shape, hidden=tuple(hidden))
