"""ResNet-18 with the CIFAR stem (3×3 conv, no max-pool), a width multiplier and any input channels."""
from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from .base import Classifier, register_model


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(Classifier):
    """He et al.'s ResNet-18 as used for CIFAR (Jia et al., DAU): stages of width w, 2w, 4w, 8w."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"resnet18 needs image inputs (C, H, W), got {input_shape}")
        if width < 1:
            raise ConfigError(f"resnet18 width must be >= 1, got {width}")
        layers: list[nn.Module] = [nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        c_in = width
        for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)
        self.feature_dim = c_in


@register_model("resnet18")
def resnet18(*, num_classes: int, input_shape: tuple[int, ...], width: int = 64) -> ResNet18:
    return ResNet18(num_classes=num_classes, input_shape=input_shape, width=width)
