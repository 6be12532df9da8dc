"""Per-sample gradients, vectorised (no Python loop over samples).

Layer inputs × output gradients (layer_grads.py) for models made of Linear, Conv2d and BatchNorm
layers, written straight into preallocated rows by :func:`flat_per_sample_grads`;
``torch.func.vmap(grad(...))`` for any other model.

Fisher forgetting, influence unlearning and the gradient-based deletion adversaries all need the
gradient of one sample's loss with respect to the weights, for many samples. ``vmap(grad(...))``
computes a whole batch of them in one call. The model is evaluated in eval mode (BatchNorm uses
its running statistics, dropout is off), which is what "the gradient of this sample's loss at these
weights" means; pruned weights (sparsity masks) get exactly zero gradient.

Built on them: :func:`fisher_diagonal` (the diagonal of the empirical or the expected Fisher, the
latter summing every class's gradient weighted by the model's probability, as Golatkar et al.
2020 do) and :func:`woodfisher_solve` (the damped empirical Fisher's inverse applied to vectors, as
WoodFisher's recursion computes it; Singh & Alistarh 2020).
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vjp, vmap

from ..data.pool import Samples
from ..models.masks import masks_of
from .layer_grads import layer_grads

SampleLoss = Callable[[Tensor, Tensor], Tensor]  # (logits [C], label []) -> scalar


def _cross_entropy(logits: Tensor, label: Tensor) -> Tensor:
    return F.cross_entropy(logits, label)


def trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _functional(model: nn.Module, names: list[str] | None):
    """(parameters to differentiate, a function ``(params, x [1, ...]) -> logits [1, C]``)."""
    names = trainable_names(model) if names is None else names
    all_params = dict(model.named_parameters())
    params = {n: all_params[n].detach() for n in names}
    frozen = {n: p.detach() for n, p in all_params.items() if n not in params}
    buffers = dict(model.named_buffers())

    def forward(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, ({**frozen, **p}, buffers), (x,))

    return params, forward


def _masked(model: nn.Module, grads: dict[str, Tensor]) -> dict[str, Tensor]:
    masks = masks_of(model)
    return {n: g * masks[n] if n in masks else g for n, g in grads.items()}


def _grads(model: nn.Module, x: Tensor, y: Tensor, loss: SampleLoss, names: list[str],
           out: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Unmasked per-sample gradients in eval mode: layer_grads.py's path where it applies, vmap
    otherwise; written into the ``out`` views when given. The model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        fast = layer_grads(model, x, lambda logits: [vmap(grad(loss))(logits, y)], names, out=out)
        if fast is not None:
            return next(fast)
        params, forward = _functional(model, names)

        def sample_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
            return loss(forward(p, xi.unsqueeze(0)).squeeze(0), yi)

        grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
        if out is None:
            return grads
        for n, g in grads.items():
            out[n].copy_(g)
        return out
    finally:
        model.train(was_training)


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
    return _masked(model, _grads(model, x, y, loss, names))


def expected_squared_grads(model: nn.Module, x: Tensor, *, names: list[str] | None = None) -> dict[str, Tensor]:
    """Per sample, ``Σ_c p(c|x) · (∇ CE(f(x), c))²`` (elementwise): ``name → [B, *param.shape]``.

    The sample's contribution to the diagonal of the expected (true) Fisher: every class ``c``'s
    cross-entropy gradient, weighted by the model's probability of ``c``. One forward pass per
    sample and ``C`` vector–Jacobian products (the gradient of CE(·, c) with respect to the logits is
    ``softmax − onehot(c)``), all vectorised. Eval mode, masks applied as in :func:`per_sample_grads`.
    """
    params, forward = _functional(model, names)

    def sample_fisher(p: dict[str, Tensor], xi: Tensor) -> dict[str, Tensor]:
        logits, pull = vjp(lambda q: forward(q, xi.unsqueeze(0)).squeeze(0), p)
        probs = torch.softmax(logits.detach(), dim=0)
        cotangents = probs.unsqueeze(0) - torch.eye(probs.shape[0], dtype=probs.dtype, device=probs.device)
        (per_class,) = vmap(pull)(cotangents)  # name -> [C, *shape]: gradient of CE(·, c) for every c
        return {n: torch.tensordot(probs, g.square(), dims=1) for n, g in per_class.items()}

    held: dict[str, Tensor] = {}

    def every_class(logits: Tensor) -> list[Tensor]:  # the gradient of CE(·, c) at the logits, for every c
        probs = held["probs"] = torch.softmax(logits, dim=1)
        eye = torch.eye(probs.shape[1], dtype=probs.dtype, device=probs.device)
        return [probs - eye[c] for c in range(probs.shape[1])]

    was_training = model.training
    model.eval()
    try:
        fast = layer_grads(model, x, every_class, list(params))
        if fast is None:
            out = vmap(sample_fisher, in_dims=(None, 0))(params, x)
        else:
            out = {}
            for c, grads in enumerate(fast):
                weight = held["probs"][:, c]
                for n, g in grads.items():
                    term = g.square_().mul_(weight.reshape(-1, *([1] * (g.dim() - 1))))
                    out[n] = term if c == 0 else out[n].add_(term)
    finally:
        model.train(was_training)
    return _masked(model, out)


def fisher_diagonal(model: nn.Module, samples: Samples, *, expected: bool = True, batch_size: int = 16,
                    names: list[str] | None = None) -> dict[str, Tensor]:
    """Diagonal of the Fisher information of the mean cross-entropy over ``samples``.

    ``expected=True`` (Golatkar et al. 2020): ``mean_i Σ_c p(c|x_i) (∇ CE(x_i, c))²``, the Fisher of
    the model's own predictive distribution; ``expected=False``: the empirical Fisher,
    ``mean_i (∇ CE(x_i, y_i))²`` with the true labels. Returns ``name → tensor of the parameter's
    shape``; pruned weights get 0. ``batch_size`` samples are vectorised at a time (the expected
    Fisher holds ``batch_size × C`` gradients in memory at once).

    Raises:
        ValueError: ``samples`` is empty.
    """
    if len(samples) == 0:
        raise ValueError("the Fisher needs at least one sample")
    device = next(model.parameters()).device
    total: dict[str, Tensor] | None = None
    for x, y in samples.batches(batch_size, device=device):
        sq = (expected_squared_grads(model, x, names=names) if expected else
              {n: g.square() for n, g in per_sample_grads(model, x, y, names=names).items()})
        sums = {n: g.sum(dim=0) for n, g in sq.items()}
        total = sums if total is None else {n: total[n] + sums[n] for n in total}
    return {n: t / len(samples) for n, t in total.items()}


def _column_views(model: nn.Module, names: list[str], out: Tensor) -> dict[str, Tensor]:
    """``name → out[:, block].view(B, *shape)``: each parameter's columns of a flat ``[B, P]`` matrix."""
    params = dict(model.named_parameters())
    views, offset = {}, 0
    for n in names:
        size = params[n].numel()
        views[n] = out[:, offset : offset + size].view(out.shape[0], *params[n].shape)
        offset += size
    if offset != out.shape[1]:
        raise ValueError(f"out has {out.shape[1]} columns for {offset} weights")
    return views


def _flat_layout(model: nn.Module, names: list[str] | None) -> tuple[list[str], int, torch.dtype]:
    """(parameter names, columns of the flat gradient matrix, its dtype: the parameters')."""
    names = trainable_names(model) if names is None else names
    params = dict(model.named_parameters())
    dtype = params[names[0]].dtype if names else torch.get_default_dtype()
    return names, sum(params[n].numel() for n in names), dtype


def flat_per_sample_grads(model: nn.Module, x: Tensor, y: Tensor, *, loss: SampleLoss = _cross_entropy,
                          names: list[str] | None = None, out: Tensor | None = None) -> Tensor:
    """:func:`per_sample_grads` flattened and concatenated in parameter order: ``[B, P]``.

    ``out``, a ``[B, P]`` matrix (e.g. rows of a preallocated one), receives them in place: for the
    layers of layer_grads.py no other memory of that size is taken.
    """
    names, size, dtype = _flat_layout(model, names)
    if out is None:
        out = torch.empty(len(y), size, device=x.device, dtype=dtype)
    if out.dtype != dtype or out.shape[0] != len(y):
        raise ValueError(f"out must be [{len(y)}, P] of {dtype}, got {list(out.shape)} of {out.dtype}")
    views = _column_views(model, names, out)
    _grads(model, x, y, loss, names, out=views)
    masks = masks_of(model)
    for n in names:
        if n in masks:
            views[n].mul_(masks[n])
    return out


def iter_flat_grads(model: nn.Module, samples: Samples, *, batch_size: int = 64, loss: SampleLoss = _cross_entropy,
                    names: list[str] | None = None) -> Iterator[Tensor]:
    """Flat per-sample gradients of ``samples`` in order, ``batch_size`` rows at a time.

    The rows are written into one buffer, reused: each yielded matrix is overwritten by the next, so
    use it (or clone it) before asking for the next one.
    """
    device = next(model.parameters()).device
    names, size, dtype = _flat_layout(model, names)
    buffer = torch.empty(min(batch_size, len(samples)), size, device=device, dtype=dtype)
    for x, y in samples.batches(batch_size, device=device):
        yield flat_per_sample_grads(model, x, y, loss=loss, names=names, out=buffer[: len(y)])


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


def stack_flat_grads(model: nn.Module, samples: Samples, *, batch_size: int = 32,
                     loss: SampleLoss = _cross_entropy) -> Tensor:
    """Every sample's flat gradient as the rows of one preallocated ``[len(samples), P]`` matrix."""
    device = next(model.parameters()).device
    _, size, dtype = _flat_layout(model, None)
    out = torch.empty(len(samples), size, device=device, dtype=dtype)
    row = 0
    for x, y in samples.batches(batch_size, device=device):
        flat_per_sample_grads(model, x, y, loss=loss, out=out[row : row + len(y)])
        row += len(y)
    return out


def woodfisher_solve(grads: Tensor, vectors: Tensor, *, damping: float) -> Tensor:
    """``F⁻¹ v`` for the damped empirical Fisher ``F = damping·I + (1/N) Σ_i g_i g_iᵀ``.

    WoodFisher (Singh & Alistarh 2020) builds ``F⁻¹`` by N Sherman–Morrison updates, one per
    gradient, starting from ``I / damping``. Their product has the closed form (Woodbury)
    ``F⁻¹ = (I − Gᵀ (N·damping·I + G Gᵀ)⁻¹ G) / damping``, computed here with one N×N Gram matrix
    and a Cholesky solve in float64: the same result and arithmetic (O(N²P)) as the recursion, as
    two matrix products instead of N rounds of vector updates.

    Args:
        grads: ``[N, P]``, one per-sample gradient per row.
        vectors: ``[P]`` or ``[P, k]``.
        damping: ``> 0``.
    Returns:
        ``F⁻¹ v``, shaped like ``vectors``.
    """
    if not damping > 0:
        raise ValueError(f"damping must be > 0, got {damping}")
    n = grads.shape[0]
    v = vectors.unsqueeze(1) if vectors.dim() == 1 else vectors
    gram = (grads @ grads.T).double()
    gram.diagonal().add_(n * damping)
    coeffs = torch.cholesky_solve((grads @ v).double(), torch.linalg.cholesky(gram))
    out = (v - grads.T @ coeffs.to(grads.dtype)) / damping
    return out.squeeze(1) if vectors.dim() == 1 else out
