"""Per-sample gradients from each layer's input and output gradient (one batched backward pass).

For a layer ``y = W a + b`` the gradient of sample ``i``'s loss with respect to ``W`` is the outer
product of the loss's gradient at the layer's output, ``g_i``, with the layer's input ``a_i``
(summed over positions for a convolution, whose input is first unfolded into patches). One forward
pass of the batch keeps every layer's input; one backward pass of ``Σ_i loss_i`` to the layer
outputs (not to the weights) gives every ``g_i`` at once, since in eval mode sample ``i``'s output
depends on sample ``i`` alone. The products are batched matrix multiplications. This is the
technique of Goodfellow (2015, "Efficient per-example gradient computations") and of Opacus.

On a CPU it is several times faster than ``torch.func.vmap(grad(...))``, which replays the
autograd graph per sample (benchmarks/bench_per_sample.py). It covers ``nn.Linear``, ``nn.Conv2d``
(ungrouped, zero padding) and eval-mode ``nn.BatchNorm1d/2d``; :func:`layer_grads` returns ``None``
for any other model (a parameter outside those layers, or a layer called twice in one forward
pass), and the callers in per_sample.py fall back to ``vmap``.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SUPPORTED = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


def _supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return module.running_mean is not None and module.running_var is not None
    return isinstance(module, nn.Linear)


def plan(model: nn.Module, names: list[str]) -> dict[str, tuple[nn.Module, list[tuple[str, str]]]] | None:
    """``module path → (module, [(parameter name, "weight" | "bias")])`` for the parameters in
    ``names``, or ``None`` when one of them is not the weight or bias of a supported layer."""
    modules = dict(model.named_modules())
    out: dict[str, tuple[nn.Module, list[tuple[str, str]]]] = {}
    for name in names:
        path, _, leaf = name.rpartition(".")
        module = modules.get(path)
        if module is None or leaf not in ("weight", "bias") or not _supported(module):
            return None
        out.setdefault(path, (module, []))[1].append((name, leaf))
    return out


def _param_grads(module: nn.Module, a: Tensor, g: Tensor, wanted: list[tuple[str, str]],
                 out: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Per-sample gradients of ``module``'s weight and/or bias from its input ``a`` and output
    gradient ``g``, written into ``out[name]`` (``[B, *shape]``, any strides) when given."""
    b = a.shape[0]
    if isinstance(module, nn.Linear):
        a2, g2 = a.reshape(b, -1, a.shape[-1]), g.reshape(b, -1, g.shape[-1])  # [B, positions, features]
        weight = lambda o: torch.bmm(g2.transpose(1, 2), a2, out=o)  # noqa: E731
        bias = lambda o: torch.sum(g2, dim=1, out=o)  # noqa: E731
    elif isinstance(module, nn.Conv2d):
        patches = F.unfold(a, module.kernel_size, dilation=module.dilation, padding=module.padding,
                           stride=module.stride)  # [B, C_in·kh·kw, L]
        g2 = g.reshape(b, g.shape[1], -1)  # [B, C_out, L]
        weight = lambda o: torch.bmm(g2, patches.transpose(1, 2), out=o)  # noqa: E731
        bias = lambda o: torch.sum(g2, dim=2, out=o)  # noqa: E731
    else:  # eval-mode batch norm: y = γ · x̂ + β with the running statistics
        shape = (1, -1) + (1,) * (a.dim() - 2)
        x_hat = (a - module.running_mean.reshape(shape)) * torch.rsqrt(module.running_var.reshape(shape) + module.eps)
        dims = tuple(range(2, a.dim()))
        weight = lambda o: torch.sum(g * x_hat, dim=dims, out=o) if dims else torch.mul(g, x_hat, out=o)  # noqa: E731
        bias = lambda o: torch.sum(g, dim=dims, out=o) if dims else torch.mul(g, 1.0, out=o)  # noqa: E731
    result = {}
    for name, leaf in wanted:
        compute = weight if leaf == "weight" else bias
        shape = (b, *getattr(module, leaf).shape)
        if out is None:
            result[name] = compute(None).reshape(shape)
        else:
            target = out[name]
            flat = target.view(b, target.shape[1], -1) if leaf == "weight" and target.dim() > 3 else target
            compute(flat)
            result[name] = target
    return result


def layer_grads(model: nn.Module, x: Tensor, cotangents: Callable[[Tensor], list[Tensor]],
                names: list[str], out: dict[str, Tensor] | None = None) -> Iterator[dict[str, Tensor]] | None:
    """Per-sample gradients for one or more output cotangents, or ``None`` if the model is unsupported.

    ``cotangents(logits [B, C])`` returns a list of ``[B, C]`` tensors ``v``; for each, the iterator
    yields ``name → [B, *shape]``, row ``i`` being ``v_iᵀ ∂logits_i/∂θ`` (for ``v_i`` the gradient of
    sample ``i``'s loss at its logits, that is the gradient of its loss). One forward pass, then one
    backward pass per cotangent as the iterator is consumed. The model must be in eval mode; its
    parameters are not modified and no ``.grad`` is written. With ``out`` (``name → [B, *shape]``
    views, e.g. column blocks of one preallocated matrix) the gradients are written there and no
    new memory is taken for them: on a CPU, fresh allocations of this size cost more than the
    arithmetic.
    """
    layers = plan(model, names)
    if not layers:
        return None
    inputs: dict[str, Tensor] = {}
    outputs: dict[str, Tensor] = {}
    calls: dict[str, int] = {}

    def hook(path: str):
        def keep(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor:
            calls[path] = calls.get(path, 0) + 1
            inputs[path], outputs[path] = args[0].detach(), out
            return out.clone()  # later in-place ops act on the clone, not on the tensor differentiated
        return keep

    handles = [module.register_forward_hook(hook(path)) for path, (module, _) in layers.items()]
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
    if any(calls.get(path, 0) != 1 for path in layers):
        return None
    paths = list(layers)

    def each() -> Iterator[dict[str, Tensor]]:
        vectors = cotangents(logits.detach())
        for k, v in enumerate(vectors):
            grads = torch.autograd.grad(logits, [outputs[p] for p in paths], grad_outputs=v,
                                        retain_graph=k < len(vectors) - 1, allow_unused=True)
            per_layer: dict[str, Tensor] = {}
            for path, g in zip(paths, grads):
                module, wanted = layers[path]
                g = torch.zeros_like(outputs[path]) if g is None else g
                per_layer.update(_param_grads(module, inputs[path], g, wanted, out))
            yield {n: per_layer[n] for n in names}

    return each()
