"""The engine's entry points: one call, a weight gradient, a transposed convolution's two gradients.

Each selects its algorithm the same way (:func:`_select`, from the call's batch and compute dtype), casts
to the compute dtype with a batch axis, asks the algorithm object, and hands the result back in the
caller's dtype (:mod:`tconv.engine.layout`).
"""

from __future__ import annotations

from .._backend import Array, Prepared
from ..spec import ConvSpec
from . import layout, planner, registry


def _select(prepared: Prepared, spec: ConvSpec, batched: bool, channels_last: bool) -> registry.Algorithm:
    batch = int(prepared.x.shape[0]) if batched else 1
    return planner.select(spec, prepared.xp, channels_last, batch, layout.compute_itemsize(prepared))


def run(prepared: Prepared, spec: ConvSpec, *, batched: bool, channels_last: bool) -> Array:
    """Compute one call: the selected algorithm's forward, in the caller's layout and dtype."""
    algorithm = _select(prepared, spec, batched, channels_last)
    xp, dtype = prepared.xp, prepared.compute_dtype
    x = layout.computed(prepared, prepared.x, batched)
    weight = layout.cast(xp, prepared.weight, dtype)
    bias = None if prepared.bias is None else layout.cast(xp, prepared.bias, dtype)
    out = algorithm.forward(xp, x, weight, bias, spec, channels_last)
    return layout.finish(xp, out if batched else out[0, ...], prepared.dtype)


def run_weight_grad(
    prepared: Prepared, spec: ConvSpec, grad_output: Array, *, batched: bool, channels_last: bool
) -> Array:
    """The gradient of the loss with respect to the weight, in the weight's own layout."""
    algorithm = _select(prepared, spec, batched, channels_last)
    x = layout.computed(prepared, prepared.x, batched)
    gy = layout.computed(prepared, grad_output, batched)
    grad = algorithm.weight_grad(prepared.xp, x, gy, spec, channels_last)
    return layout.finish(prepared.xp, grad, prepared.dtype)


def run_transpose_grads(
    prepared: Prepared, spec: ConvSpec, *, batched: bool, channels_last: bool
) -> tuple[Array, Array] | None:
    """``(grad_x, grad_weight)`` of a transposed convolution in one pass, where the selected algorithm shares
    their work (the compiled path: one im2col of the output gradient); else None."""
    algorithm = _select(prepared, spec, batched, channels_last)
    if not algorithm.shares_transpose_grads:
        return None
    xp = prepared.xp
    x = layout.computed(prepared, prepared.x, batched)
    gy = layout.computed(prepared, prepared.grad_output, batched)
    weight = layout.cast(xp, prepared.weight, prepared.compute_dtype)
    dx, dw = algorithm.transpose_grads(xp, x, weight, gy, spec, channels_last)
    return layout.finish(xp, dx if batched else dx[0, ...], prepared.dtype), layout.finish(xp, dw, prepared.dtype)
