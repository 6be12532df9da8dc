"""Per-sample gradients from each layer's input and output gradient (one batched backward pass).

For a layer ``y = W a + b`` the gradient of sample ``i``'s loss with respect to ``W`` is the outer
product of the loss's gradient at the layer's output, ``g_i``, with the layer's input ``a_i``
(summed over positions for a convolution, whose input is first unfolded into patches). One forward
pass of the batch keeps every layer's input; one backward pass of ``Σ_i loss_i`` to the layer
outputs gives every ``g_i`` at once, since in eval mode sample ``i``'s output depends on sample
``i`` alone. The products are batched matrix multiplications (Goodfellow 2015, "Efficient
per-example gradient computations"; Opacus computes them the same way).

It covers exactly ``nn.Linear``, ``nn.Conv2d`` (ungrouped, zero padding) and eval-mode
``nn.BatchNorm1d/2d``, with dimension 0 of every hooked layer's input the batch. :func:`layer_grads`
returns ``None``, and the callers in per_sample.py fall back to ``torch.func.vmap``, for any other
model: a parameter outside those layers or shared by two of them, a subclass or a layer with
forward hooks of its own, a layer called twice or by keyword, a layer whose input does not have
the batch in dimension 0, a model in training mode. As a last guard the per-sample gradients'
sum over the batch is checked against autograd's gradient of the summed loss (computed in the same
backward pass); a mismatch (a weight also used outside its layer, say) also means ``None``. The
check runs on a model's first batch of each input shape and parameter list, then is remembered for
that model object (it is not free, and the failures it catches are structural). A
layer that permutes samples along an axis as long as the batch cannot be told apart from one that
does not; such models must not be passed.
"""
from __future__ import annotations

import weakref
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SUPPORTED = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)
_VERIFIED: "weakref.WeakKeyDictionary[nn.Module, set[tuple]]" = weakref.WeakKeyDictionary()


def _supported(module: nn.Module) -> bool:
    if type(module) not in SUPPORTED or module._forward_hooks:
        return False
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return module.running_mean is not None and module.running_var is not None
    return isinstance(module, nn.Linear)


def plan(model: nn.Module, names: list[str]) -> dict[str, tuple[nn.Module, list[tuple[str, str]]]] | None:
    """``module path → (module, [(parameter name, "weight" | "bias")])`` for the parameters in
    ``names``, or ``None`` when one of them is not the weight or bias of a supported layer."""
    modules = dict(model.named_modules())
    slots: dict[int, int] = {}  # parameter → how many (module, attribute) slots hold it
    for _, module in model.named_modules(remove_duplicate=False):
        for p in module._parameters.values():
            if p is not None:
                slots[id(p)] = slots.get(id(p), 0) + 1
    params = dict(model.named_parameters())
    out: dict[str, tuple[nn.Module, list[tuple[str, str]]]] = {}
    for name in names:
        path, _, leaf = name.rpartition(".")
        module = modules.get(path)
        if (module is None or leaf not in ("weight", "bias") or not _supported(module)
                or slots.get(id(params.get(name)), 0) != 1):
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
    if not layers or model.training:
        return None
    batch = x.shape[0]
    inputs: dict[str, Tensor] = {}
    outputs: dict[str, Tensor] = {}
    calls: dict[str, int] = {}

    def hook(path: str):
        def keep(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor:
            calls[path] = calls.get(path, 0) + 1
            if not args or args[0].shape[:1] != (batch,) or out.shape[:1] != (batch,):
                calls[path] += 1  # called by keyword, or the batch is not dimension 0: refuse
                return out
            inputs[path], outputs[path] = args[0].detach(), out
            return out.clone()  # later in-place ops act on the clone, not on the tensor differentiated
        return keep

    handles = [module.register_forward_hook(hook(path)) for path, (module, _) in layers.items()]
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True) if x.is_floating_point() else x)
    finally:
        for h in handles:
            h.remove()
    if any(calls.get(path, 0) != 1 for path in layers) or logits.shape[:1] != (batch,):
        return None
    paths = list(layers)
    params = dict(model.named_parameters())
    vectors = cotangents(logits.detach())

    def backward(k: int, check: bool) -> dict[str, Tensor] | None:
        wanted = [outputs[p] for p in paths] + ([params[n] for n in names] if check else [])
        grads = torch.autograd.grad(logits, wanted, grad_outputs=vectors[k], allow_unused=True,
                                    retain_graph=check or k < len(vectors) - 1)
        per_layer: dict[str, Tensor] = {}
        for path, g in zip(paths, grads):
            module, wanted_params = layers[path]
            g = torch.zeros_like(outputs[path]) if g is None else g
            per_layer.update(_param_grads(module, inputs[path], g, wanted_params, out))
        if check:  # the per-sample gradients must add up to the batch gradient
            for n, total in zip(names, grads[len(paths):]):
                total = torch.zeros_like(params[n]) if total is None else total
                scale = float(total.abs().max()) + 1e-12
                if not torch.allclose(per_layer[n].sum(dim=0), total, rtol=1e-3, atol=1e-4 * scale):
                    return None
        return {n: per_layer[n] for n in names}

    signature = (tuple(names), tuple(x.shape[1:]), x.dtype)
    verified = signature in _VERIFIED.get(model, set())
    first = backward(0, check=not verified) if vectors else None
    if first is None:
        return None
    _VERIFIED.setdefault(model, set()).add(signature)

    def each() -> Iterator[dict[str, Tensor]]:
        yield first
        for k in range(1, len(vectors)):
            yield backward(k, check=False)

    return each()
