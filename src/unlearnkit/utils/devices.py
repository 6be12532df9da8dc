"""Devices and numeric precision: the one place that parses, checks and applies them.

``--device`` / ``device:`` accepts ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` and ``mps``. An unknown or unavailable device is a :class:`~unlearnkit.errors.ConfigError`
with one line that says what is available, raised before any data is loaded or model trained.
Library code never picks a device itself: the device comes with the model.

``train.precision``:

- ``fp32`` (default): plain float32, bit-identical to unlearnkit before precision existed on the
  CPU; strict float32 on CUDA (cuDNN's TensorFloat-32 default switched off while training).
- ``tf32``: CUDA only; float32 weights, matmuls and convolutions on TensorFloat-32 tensor cores.
- ``bf16``: autocast to bfloat16 (weights, optimiser and loss stay float32) on CUDA, and on the CPU
  too (slower than fp32 on most CPUs; useful to check a bf16 run on a laptop). Not on MPS.
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import ConfigError

DEVICE_CHOICES = "auto | cpu | cuda | cuda:N | mps"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(spec: str) -> str:
    """``spec`` stripped and lower-cased if it is a well-formed device name (availability unchecked)."""
    name = str(spec).strip().lower()
    if not _PATTERN.match(name):
        raise ConfigError(f"device must be one of {DEVICE_CHOICES}, got {spec!r}")
    return name


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """What this machine offers, e.g. ``['cpu', 'cuda:0', 'cuda:1']``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` that ``spec`` names on this machine.

    ``auto`` is ``cuda`` when CUDA is available, else ``cpu`` (MPS is used only when named).

    Raises:
        ConfigError: ``spec`` is not a device name, or names a device this machine lacks.
    """
    name = check_device_name(str(spec))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available here (this PyTorch build or machine has no "
                              f"GPU); available: {', '.join(available_devices())}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: there is no such GPU; available: {', '.join(available_devices())}")
    if device.type == "mps" and not _mps_available():
        raise ConfigError(f"device 'mps': Apple's Metal backend is not available here; "
                          f"available: {', '.join(available_devices())}")
    return device


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse a precision the device cannot run.

    Raises:
        ConfigError: ``tf32`` off CUDA; ``bf16`` on MPS; an unknown precision (TrainConfig
            refuses those first, with the list of valid ones).
    """
    kind = torch.device(device).type
    if precision not in ("fp32", "tf32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}")
    if precision == "tf32" and kind != "cuda":
        raise ConfigError(f"train.precision=tf32 needs a CUDA device (got {kind}); use fp32")
    if precision == "bf16" and kind not in ("cuda", "cpu"):
        raise ConfigError(f"train.precision=bf16 runs on cuda or cpu, not {kind}; use fp32")


def use_channels_last(requested: bool, device: torch.device | str) -> bool:
    """Whether ``train.channels_last`` applies on ``device``: on CUDA only. On a CPU (torch 2.13.0+cpu,
    an AMD EPYC, 2026-12-06) the NHWC backward of a ResNet's strided 1×1 shortcut gave a weight
    gradient 4.7 off its float64 value (NCHW: 3e-7), so there it is left off, with a warning."""
    if not requested or torch.device(device).type == "cuda":
        return requested
    global _warned_channels_last
    if not _warned_channels_last:
        logging.getLogger("unlearnkit").warning("train.channels_last applies on CUDA only; training on %s in the default "
                                                "layout (NHWC gradients were wrong on a CPU)", torch.device(device).type)
        _warned_channels_last = True
    return False


_warned_channels_last = False


@contextmanager
def precision_scope(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the enclosed passes in ``precision`` on ``device``.

    On CUDA, ``fp32`` is strict float32 (PyTorch lets cuDNN use TensorFloat-32 by default; here
    both cuBLAS and cuDNN are held to float32 for the block) and ``tf32`` allows TensorFloat-32 in
    both; the previous settings come back after the block. ``bf16`` autocasts to bfloat16. On the
    CPU ``fp32`` changes nothing.
    """
    device = torch.device(device)
    check_precision(precision, device)
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
        return
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def fits_on_device(nbytes: int, device: torch.device | str, *, share: float = 0.25) -> bool:
    """Whether ``nbytes`` take at most ``share`` of ``device``'s free memory (CUDA; other devices: no).

    Used to decide whether a dataset pool is moved to the GPU once for the whole training run.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= share * free
