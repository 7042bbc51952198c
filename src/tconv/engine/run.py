"""The engine's entry points: one call, a weight gradient, a transposed convolution's two gradients.

Each selects its algorithm the same way (:func:`_select`, from the call's batch and compute dtype), casts
to the compute dtype with a batch axis, asks the algorithm object, and hands the result back in the
caller's dtype (:mod:`tconv.engine.layout`).
"""

from __future__ import annotations

import functools
import math

from .._backend import Array, Prepared
from ..spec import ConvSpec
from . import layout, planner, registry

#: The largest index (and byte count) a NumPy array and the compiled kernels' int64 arithmetic can hold.
INDEX_LIMIT = 2**63 - 1


@functools.lru_cache(maxsize=1024)
def check_index_range(spec: ConvSpec, batch: int, itemsize: int) -> None:
    """``ValueError`` naming the arguments when a call's numbers or its output overflow the 64-bit index range
    (where NumPy would say "array is too big" or "Maximum allowed dimension exceeded" and the kernels would
    wrap around). A huge stride or dilation on a small input is fine: only the sizes that exist count. Calls
    that pass are remembered (a refused one raises, and is checked again next time)."""
    pads = tuple(v for pair in spec.padding for v in pair)
    for name, values in (
        ("stride", spec.stride),
        ("dilation", spec.dilation),
        ("padding", pads),
        ("output_padding", spec.output_padding),
    ):
        if any(v > INDEX_LIMIT for v in values):
            raise ValueError(f"{name} must be below 2**63 on every axis (the 64-bit index range); received {values}")
    out = spec.output_size
    elements = batch * spec.out_channels * math.prod(out)
    if any(n > INDEX_LIMIT for n in out) or elements * itemsize > INDEX_LIMIT:
        options = f"stride={spec.stride}, dilation={spec.dilation}, padding={spec.padding}"
        if spec.transposed:
            options += f", output_padding={spec.output_padding}"
        raise ValueError(
            f"the output would have spatial size {out} ({elements} elements of {batch} samples, "
            f"{spec.out_channels} channels), beyond the 64-bit index range; from an input of spatial size "
            f"{spec.input_size} with kernel_size={spec.kernel_size}, {options}"
        )


def _select(prepared: Prepared, spec: ConvSpec, batched: bool, channels_last: bool) -> registry.Algorithm:
    batch = int(prepared.x.shape[0]) if batched else 1
    check_index_range(spec, batch, layout.compute_itemsize(prepared))
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
