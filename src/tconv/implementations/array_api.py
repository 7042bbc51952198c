"""The array-API algorithms: any array library (PyTorch, CuPy, JAX, array-api-strict; NumPy without numba,
with ``TCONV_NO_JIT=1``, or of rank > 3).

They work on one internal layout, whatever the caller's (:class:`InternalLayout` converts):

* input ``xg``: ``(G, C_in/G, N, *spatial_in)``: group-major, channel before batch, so that one matrix
  product per kernel tap covers the whole batch;
* weight ``wt``: ``(K, G, C_out/G, C_in/G)`` with ``K = prod(kernel_size)`` taps in C order, so that tap
  ``t`` of either direction is the matrix ``wt[t]``;
* output: ``(G, C_out/G, N, *spatial_out)``.

A convolution's weight ``(C_out, C_in/G, *k)`` and a transposed convolution's ``(C_in, C_out/G, *k)`` both
become ``wt``; after that the two directions differ only in which side is strided (see :func:`_taps`).
Only array-API operations are used (``reshape``, ``permute_dims``, ``matmul``, slicing), so autograd
libraries differentiate through them. Every algorithm here takes the weight gradient as the per-tap
correlation (:func:`_taps_weight_grad`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import array_api_compat

from .. import _tuning
from .._backend import Array, add_into
from .._geometry import tap_windows
from ..shapes import equivalent_conv
from ..spec import ConvSpec

# --- the internal layout ------------------------------------------------------------------------------


def _to_internal(xp: Any, a: Array, spec: ConvSpec, channels: int, size: tuple[int, ...], channels_last: bool) -> Array:
    """``(N, C, *sp)`` or ``(N, *sp, C)`` -> ``(G, C/G, N, *sp)``."""
    d, groups, batch = spec.ndim, spec.groups, a.shape[0]
    if channels_last:  # (N, *sp, C) -> (N, *sp, G, Cg) -> (G, Cg, N, *sp)
        a = xp.reshape(a, (batch, *size, groups, channels // groups))
        return xp.permute_dims(a, (d + 1, d + 2, 0, *range(1, d + 1)))
    a = xp.reshape(a, (batch, groups, channels // groups, *size))
    return xp.permute_dims(a, (1, 2, 0, *range(3, d + 3)))


def _weight_to_taps(xp: Any, weight: Array, spec: ConvSpec) -> Array:
    """Either direction's weight -> ``(K, G, C_out/G, C_in/G)``."""
    groups, taps = spec.groups, math.prod(spec.kernel_size)
    c_in_g, c_out_g = spec.in_channels // groups, spec.out_channels // groups
    if spec.transposed:  # (C_in, C_out/G, *k) -> (G, C_in/G, C_out/G, K) -> (K, G, C_out/G, C_in/G)
        wt = xp.reshape(weight, (groups, c_in_g, c_out_g, taps))
        return xp.permute_dims(wt, (3, 0, 2, 1))
    # (C_out, C_in/G, *k) -> (G, C_out/G, C_in/G, K) -> (K, G, C_out/G, C_in/G)
    wt = xp.reshape(weight, (groups, c_out_g, c_in_g, taps))
    return xp.permute_dims(wt, (3, 0, 1, 2))


def _taps_to_weight(xp: Any, wt: Array, spec: ConvSpec) -> Array:
    """The inverse of :func:`_weight_to_taps`."""
    c_in_g, c_out_g = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    if spec.transposed:
        w = xp.permute_dims(wt, (1, 3, 2, 0))  # (G, C_in/G, C_out/G, K)
        return xp.reshape(w, (spec.in_channels, c_out_g, *spec.kernel_size))
    w = xp.permute_dims(wt, (1, 2, 3, 0))  # (G, C_out/G, C_in/G, K)
    return xp.reshape(w, (spec.out_channels, c_in_g, *spec.kernel_size))


class InternalLayout:
    """The algorithm interface (:class:`tconv.engine.registry.Algorithm`) for an algorithm that computes on the
    internal layout: a subclass names itself and writes :meth:`compute` (and :meth:`supports` where it does not
    run every call); the layouts, the bias and the weight gradient are done here."""

    name = ""
    description = ""
    shares_transpose_grads = False

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return True

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """Not in the cost model: the planner picks ``gemm`` by rule wherever the compiled paths do not run."""
        return None

    def batch_cost(self, spec: ConvSpec, batch: int, channels_last: bool = False) -> float | None:
        cost = self.cost(spec, channels_last)
        return None if cost is None else cost * batch

    def setup_cost(self, spec: ConvSpec) -> float:
        return 0.0

    def compute(self, xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
        """``(G, C_out/G, N, *out)`` from ``xg`` and ``wt`` in the internal layout."""
        raise NotImplementedError

    def forward(
        self, xp: Any, x: Array, weight: Array, bias: Array | None, spec: ConvSpec, channels_last: bool
    ) -> Array:
        batch, d = x.shape[0], spec.ndim
        xg = _to_internal(xp, x, spec, spec.in_channels, spec.input_size, channels_last)
        out = self.compute(xp, xg, _weight_to_taps(xp, weight, spec), spec, batch)
        out = _keep_second_order(out, x, weight)
        if bias is not None:
            out = out + xp.reshape(bias, (spec.groups, spec.out_channels // spec.groups, 1, *(1,) * d))
        out = xp.reshape(out, (spec.out_channels, batch, *spec.output_size))
        if channels_last:
            return xp.permute_dims(out, (1, *range(2, d + 2), 0))
        return xp.permute_dims(out, (1, 0, *range(2, d + 2)))

    def weight_grad(self, xp: Any, x: Array, grad_output: Array, spec: ConvSpec, channels_last: bool) -> Array:
        xg = _to_internal(xp, x, spec, spec.in_channels, spec.input_size, channels_last)
        gyg = _to_internal(xp, grad_output, spec, spec.out_channels, spec.output_size, channels_last)
        return _taps_to_weight(xp, _taps_weight_grad(xp, xg, gyg, spec, x.shape[0]), spec)

    def transpose_grads(
        self, xp: Any, x: Array, weight: Array, grad_output: Array, spec: ConvSpec, channels_last: bool
    ) -> tuple[Array, Array]:
        """Nothing to share (``shares_transpose_grads`` is False): the input gradient is a call of the
        convolution, the weight's is :meth:`weight_grad`."""
        raise NotImplementedError(f"{self.name} computes a transposed convolution's gradients one by one")

    def runs_weight_grad_in_blocks(self, spec: ConvSpec, batch: int, channels_last: bool) -> bool:
        """Never: the register blocks are compiled NumPy code; this path runs on any array library."""
        return False


# --- taps ------------------------------------------------------------------------------------------------

_LEAD = (slice(None),) * 3


def _taps(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
    """Per-tap gather (convolution) or scatter (transposed convolution).

    With the windows of :func:`tconv._geometry.tap_windows`, for each tap ``t``:

    * convolution:  ``out[o0:o1] += W_t   @ x[b0::s]``  (gather a strided input window)
    * transposed:   ``out[b0::s] += W_t^T @ x[a0:a1]``  (scatter into a strided output window)

    so padding is never materialised, no zeros are ever inserted or multiplied,
    and a padding larger than the kernel simply shortens the windows (a crop).
    Temporaries are one tap's product, at most the output's size.
    """
    groups, c_out_g, c_in_g = wt.shape[1], wt.shape[2], wt.shape[3]
    out = xp.zeros((groups, c_out_g, batch, *spec.output_size), dtype=xg.dtype, device=array_api_compat.device(xg))

    touched = False
    for t, box, x_index, out_index in tap_windows(spec):
        touched = True
        y = _product(xp, wt[t, ...], xp.reshape(xg[_LEAD + x_index], (groups, c_in_g, -1)))
        y = xp.reshape(y, (groups, c_out_g, batch, *box))
        out = add_into(xp, out, _LEAD + out_index, y)
    if not touched:
        out = _keep_dependence(xp, out, xg, wt)
    return out


def _keep_dependence(xp: Any, out: Array, xg: Array, wt: Array) -> Array:
    """For an output wholly in the padding: 0 (plus bias) whatever x and the weight.

    One empty product keeps the dependence visible to autograd (PyTorch, JAX), which then
    gives x and the weight zero gradients, as the frameworks' own operators do; unlike
    ``0 * sum(x)`` it cannot turn an inf in x into a NaN.
    """
    empty = xp.reshape(xg[..., 0:0], (xg.shape[0], xg.shape[1], 0))
    return out + xp.sum(_product(xp, wt[0, ...], empty))


def _keep_second_order(out: Array, x: Array, weight: Array) -> Array:
    """For PyTorch tensors that require grad: ``out`` plus a zero that keeps a gradient's graph alive.

    The output is linear in x and in the weight, so the gradient with respect to x depends on the weight
    only (and the reverse); with ``create_graph=True`` and a weight that does not require grad, that
    gradient would have no graph and ``g.sum().backward()`` would raise. PyTorch's own convolution keeps a
    double-backward node whenever an input requires grad, giving zero gradients instead. The sum of
    squares of an empty slice is 0 with a first derivative that depends on the array: the same outcome,
    at no cost, and no inf in x can make it NaN.
    """
    if not array_api_compat.is_torch_array(x) or not (x.requires_grad or weight.requires_grad):
        return out
    empty_x, empty_w = x[..., 0:0], weight[..., 0:0]
    return out + ((empty_x * empty_x).sum() + (empty_w * empty_w).sum()).to(out.dtype)


# The weight gradient, as a correlation
# -------------------------------------
# Forward, per tap t and per group:  out[:, :, window_out] += W_t @ x[:, :, window_x]
# (W_t^T for the transposed direction, which is the same statement with the roles of
# the windows exchanged). The output is linear in W_t, so
#
#     dL/dW_t = sum over batch and window of  grad_out[:, window_out] (x) x[:, window_x]
#             = gy_window @ x_window^T          (C_out/G, M) @ (M, C_in/G), M = N * |window|
#
# Read as a function of the tap position i, dL/dW[i] = sum_o gy[o] * x[o*s + i*d - lo]:
# a correlation of the input with the output gradient in which the output gradient is
# the kernel, applied with the roles of stride and dilation swapped (the tap advances
# by d, the "kernel" gy is spread by s). JAX's lax writes it as exactly that convolution
# with batch and feature axes exchanged; tconv evaluates the same sum tap by tap on the
# windows the forward pass uses, which keeps groups, padding pairs and crops for free.
def _taps_weight_grad(xp: Any, xg: Array, gyg: Array, spec: ConvSpec, batch: int) -> Array:
    """The weight gradient in tap layout ``(K, G, C_out/G, C_in/G)``; see the comment above."""
    groups, c_in_g, c_out_g = xg.shape[0], xg.shape[1], gyg.shape[1]
    taps = math.prod(spec.kernel_size)
    grad = xp.zeros((taps, groups, c_out_g, c_in_g), dtype=xg.dtype, device=array_api_compat.device(xg))
    for t, _, x_index, out_index in tap_windows(spec):
        x_window = xp.reshape(xg[_LEAD + x_index], (groups, c_in_g, -1))
        gy_window = xp.reshape(gyg[_LEAD + out_index], (groups, c_out_g, -1))
        product = xp.matmul(gy_window, xp.permute_dims(x_window, (0, 2, 1)))
        grad = add_into(xp, grad, (t, slice(None), slice(None), slice(None)), product)
    return grad


# --- gemm ------------------------------------------------------------------------------------------------


def _batch_chunks(batch: int, bytes_per_sample: int, output_bytes: int) -> list[tuple[int, int]]:
    """Batch ranges whose temporaries stay within ``_tuning.GEMM_CHUNK_BYTES``, and always within
    max(MEMORY_BUDGET, 2 x output) (one sample at least)."""
    budget = min(_tuning.GEMM_CHUNK_BYTES, max(_tuning.MEMORY_BUDGET, 2 * output_bytes))
    step = max(1, budget // max(bytes_per_sample, 1))
    return [(n0, min(n0 + step, batch)) for n0 in range(0, batch, step)] or [(0, 0)]


def _itemsize(a: Array) -> int:
    return int(getattr(a.dtype, "itemsize", 4))


def _product(xp: Any, w: Array, x: Array) -> Array:
    """``w @ x`` batched over groups; a broadcast product when the inner dimension is 1 (depthwise)."""
    if w.shape[-1] == 1:
        return w * x
    return xp.matmul(w, x)


def _gemm(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
    """All taps in one matrix product per batch chunk, then overlap-add (transposed) or im2col (forward).

    Transposed: ``cols = W (K*C_out/G, C_in/G) @ x (C_in/G, N*P)`` and each tap's block of
    ``cols`` is added into its strided output window (col2im). Forward: each tap's strided
    input window is gathered into ``cols (C_in/G*K, N*P_out)`` (im2col) and multiplied once.
    Same arithmetic as :func:`_taps`, fewer and larger matrix products. A call of which one sample's
    columns exceed max(MEMORY_BUDGET, 2 x output) runs as :func:`_taps` (one tap's product at a time).
    """
    taps, groups, c_out_g, c_in_g = wt.shape
    p_in, p_out = math.prod(spec.input_size), math.prod(spec.output_size)
    item = _itemsize(xg)
    if spec.transposed:
        per_sample = groups * taps * c_out_g * p_in * item
    else:
        per_sample = groups * c_in_g * taps * p_out * item
    output_bytes = groups * c_out_g * batch * p_out * item
    if per_sample > max(_tuning.MEMORY_BUDGET, 2 * output_bytes):
        return _taps(xp, xg, wt, spec, batch)
    device = array_api_compat.device(xg)
    out = xp.zeros((groups, c_out_g, batch, *spec.output_size), dtype=xg.dtype, device=device)
    if spec.transposed:
        wk = xp.reshape(xp.permute_dims(wt, (1, 0, 2, 3)), (groups, taps * c_out_g, c_in_g))
    else:
        wk = xp.reshape(xp.permute_dims(wt, (1, 2, 3, 0)), (groups, c_out_g, c_in_g * taps))
    windows = list(tap_windows(spec))
    if not windows:
        return _keep_dependence(xp, out, xg, wt)
    for n0, n1 in _batch_chunks(batch, per_sample, output_bytes):
        nb = n1 - n0
        chunk = (slice(None), slice(None), slice(n0, n1))
        if spec.transposed:
            rest = (*chunk, ...)
            x2 = xp.reshape(xg[rest], (groups, c_in_g, nb * p_in))
            cols = xp.reshape(_product(xp, wk, x2), (groups, taps, c_out_g, nb, *spec.input_size))
            if _use_blocked_col2im(spec):
                out = add_into(xp, out, rest, _col2im_blocked(xp, cols, spec))
            else:
                for t, _, x_index, out_index in windows:
                    block = (slice(None), t, slice(None), slice(None), *x_index)
                    out = add_into(xp, out, chunk + out_index, cols[block])
        else:
            cols = xp.zeros((groups, c_in_g, taps, nb, *spec.output_size), dtype=xg.dtype, device=device)
            for t, _, x_index, out_index in windows:
                index = (slice(None), slice(None), t, slice(None), *out_index)
                cols = add_into(xp, cols, index, xg[chunk + x_index])
            y = _product(xp, wk, xp.reshape(cols, (groups, c_in_g * taps, nb * p_out)))
            out = add_into(xp, out, (*chunk, ...), xp.reshape(y, (groups, c_out_g, nb, *spec.output_size)))
    return out


def _use_blocked_col2im(spec: ConvSpec) -> bool:
    """Whether a block gathers ``_tuning.BLOCKED_COL2IM_MIN_TAPS_PER_BLOCK`` taps or more on average (dilation 1)."""
    blocks = math.prod(-(-k // s) for k, s in zip(spec.kernel_size, spec.stride))
    taps = math.prod(spec.kernel_size)
    return all(d == 1 for d in spec.dilation) and taps >= _tuning.BLOCKED_COL2IM_MIN_TAPS_PER_BLOCK * blocks


def _kernel_stride_order(d: int) -> list[int]:
    """Axes of ``(G, k_1..k_d, C_out/G, N, n_1..n_d)`` in the order ``(G, C_out/G, N, n_1, k_1, ..., n_d, k_d)``."""
    order = [0, d + 1, d + 2]
    for axis in range(d):
        order += [d + 3 + axis, 1 + axis]
    return order


def _col2im_blocked(xp: Any, cols: Array, spec: ConvSpec) -> Array:
    """Overlap-add of a transposed convolution's columns, ``ceil(k/s)`` blocks per axis instead of ``k`` taps.

    ``cols`` is ``(G, K, C_out/G, N, *n)``. Writing the tap index as ``i = a*s + r`` (``0 <= r < s``),
    input ``j`` lands at ``o = (j + a)*s + r``: in the full output viewed as ``(rows, s)`` per axis,
    the ``s`` taps sharing ``a`` fill one contiguous block ``[a : a + n, 0 : r_count]``. So the
    additions are ``prod(ceil(k/s))`` large array operations, not ``prod(k)`` small ones (fcn32s: 4,
    not 4096). Dilation 1 only. Returns the cropped ``(G, C_out/G, N, *out)``.
    """
    groups, _, c_out_g, batch = cols.shape[:4]
    d = spec.ndim
    n, k, s = spec.input_size, spec.kernel_size, spec.stride
    cols = xp.reshape(cols, (groups, *k, c_out_g, batch, *n))
    blocks = [-(-kk // ss) for kk, ss in zip(k, s)]
    # Rows of s elements per axis: enough for the full output and for the crop window.
    rows = [
        max(nn + m - 1, -(-(lo + out) // ss))
        for nn, m, ss, (lo, _), out in zip(n, blocks, s, spec.padding, spec.output_size)
    ]
    shape = [groups, c_out_g, batch]
    for r, ss in zip(rows, s):
        shape += [r, ss]
    full = xp.zeros(tuple(shape), dtype=cols.dtype, device=array_api_compat.device(cols))
    order = tuple(_kernel_stride_order(d))
    for a in itertools.product(*(range(m) for m in blocks)):
        taps = tuple(slice(ai * ss, min(ai * ss + ss, kk)) for ai, ss, kk in zip(a, s, k))
        selection = (slice(None), *taps, Ellipsis)
        block = xp.permute_dims(cols[selection], order)
        target: list[slice] = [slice(None)] * 3
        for ai, nn, tap in zip(a, n, taps):
            target += [slice(ai, ai + nn), slice(0, tap.stop - tap.start)]
        full = add_into(xp, full, tuple(target), block)
    full = xp.reshape(full, (groups, c_out_g, batch, *(r * ss for r, ss in zip(rows, s))))
    crop = tuple(slice(lo, lo + out) for (lo, _), out in zip(spec.padding, spec.output_size))
    window = (slice(None), slice(None), slice(None), *crop)
    return full[window]


# --- the algorithms ------------------------------------------------------------------------------------


class Gemm(InternalLayout):
    name = "gemm"
    description = "one matrix product per batch chunk over all taps, then col2im (or im2col first)"

    def compute(self, xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
        return _gemm(xp, xg, wt, spec, batch)


class Taps(InternalLayout):
    name = "taps"
    description = "one matrix product per kernel tap, gathered from or scattered into strided windows"

    def compute(self, xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
        return _taps(xp, xg, wt, spec, batch)


class DepthToSpace(InternalLayout):
    name = "depth_to_space"
    description = "kernel equal to stride, no padding: one matrix product and a rearrangement"

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return (
            spec.transposed
            and spec.kernel_size == spec.stride
            and all(p == (0, 0) for p in spec.padding)
            and not any(spec.output_padding)
            and all(d == 1 for d in spec.dilation)
        )

    def compute(self, xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
        """Kernel equal to stride, no padding (U-Net's 2x2/2): one matrix product, then a rearrangement.

        The kernel copies tile the output without overlapping, so ``cols`` rows ``(k_1..k_d, C_out/G)``
        are moved next to their input positions: ``(.., n_i, k_i, ..) -> n_i*k_i``. No additions.
        """
        taps, groups, c_out_g, c_in_g = wt.shape
        wk = xp.reshape(xp.permute_dims(wt, (1, 0, 2, 3)), (groups, taps * c_out_g, c_in_g))
        x2 = xp.reshape(xg, (groups, c_in_g, batch * math.prod(spec.input_size)))
        cols = xp.reshape(_product(xp, wk, x2), (groups, *spec.kernel_size, c_out_g, batch, *spec.input_size))
        out = xp.permute_dims(cols, tuple(_kernel_stride_order(spec.ndim)))
        return xp.reshape(out, (groups, c_out_g, batch, *spec.output_size))


def _equivalent_padding(spec: ConvSpec) -> list[tuple[int, int]]:
    """Per axis, the padding of the direct convolution a transposed convolution equals (negative: a crop)."""
    return [
        equivalent_conv(n, k, stride=s, padding=pair, output_padding=output_pad, dilation=d).padding
        for n, k, s, pair, output_pad, d in zip(
            spec.input_size, spec.kernel_size, spec.stride, spec.padding, spec.output_padding, spec.dilation
        )
    ]


class Direct(InternalLayout):
    name = "direct"
    description = "stride-1 transposed convolution as the direct convolution with the flipped kernel (im2col)"

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return (
            spec.transposed
            and all(st == 1 for st in spec.stride)
            and all(lo >= 0 and hi >= 0 for lo, hi in _equivalent_padding(spec))
        )

    def compute(self, xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
        """A stride-1 transposed convolution as the direct convolution it equals (seed 001).

        Padded as :func:`tconv.shapes.equivalent_conv` says, the kernel flipped (reversing all spatial axes
        reverses the taps' C order, so ``wt[::-1]``), channels already swapped in ``wt``; computed by the
        forward im2col path, so the output is written once, not added into tap by tap.
        """
        zeros = (0,) * spec.ndim
        padding = tuple(_equivalent_padding(spec))
        forward = dataclasses.replace(
            spec, transposed=False, stride=(1,) * spec.ndim, padding=padding, output_padding=zeros
        )
        return _gemm(xp, xg, xp.flip(wt, axis=0), forward, batch)


#: The array-API algorithms, in the order the engine registers them.
ALGORITHMS = (Direct(), DepthToSpace(), Taps(), Gemm())
