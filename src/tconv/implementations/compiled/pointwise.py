"""1x1 kernels as plain products (``jit_pointwise``): no im2col, no overlap-add.

A convolution whose kernel is 1 on every axis and that pads nothing (any stride), and a transposed one with
such a kernel (nothing padded, nothing cropped), computes at every output pixel ``p`` one product per group:
``out[n, g, :, p] = W[g] @ x[n, g, :, p * s] + bias[g]``, with ``W[g]`` the ``(C_out/G, C_in/G)`` matrix of the
weight (the transposed weight's ``(C_in/G, C_out/G)`` matrix read transposed). So the product
reads x where it lies (a strided convolution's pixels copied together first) and writes the output in the
caller's layout, in blocks of pixels (whole samples where they fit), each block one product on one thread with
its bias added after it: the output is written once, where ``jit_gemm`` writes a column buffer and then the
output. A strided transposed one scatters: its stride-1 call's pixels land on every ``s``-th output pixel
along each axis, and every other pixel holds the bias (:func:`_scattered`).

A call whose output is under ``TEAM_MIN_BYTES`` runs its products in the calling thread with BLAS as NumPy has it,
its own threads included for a large product: the compiled path's rule elsewhere (BLAS on one thread outside the
team, or products cut into blocks on the team: :func:`.team.matmul`) measured 1.2-2x slower on such calls (U-Net's
3-channel head at batch 1, 1.0 against 2.2 ms; docs/design.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import machine, team


def fits(spec: ConvSpec) -> bool:
    """A 1x1 kernel with no padding (transposed: any stride and output padding, :func:`_scattered`)."""
    return all(k == 1 for k in spec.kernel_size) and not any(v for pair in spec.padding for v in pair)


def _scattered_call(spec: ConvSpec) -> bool:
    """Whether a call :func:`fits` is a transposed one whose output is more than its stride-1 pixels."""
    return spec.transposed and (any(s != 1 for s in spec.stride) or any(spec.output_padding))


@functools.lru_cache(maxsize=256)
def _dense(spec: ConvSpec) -> ConvSpec:
    """A transposed call that :func:`fits` at stride 1 with no output padding: its output is x's pixels (one
    description per call's, whose output size is worked out once: about 60 us through :mod:`tconv.shapes`)."""
    ones = (1,) * spec.ndim
    return dataclasses.replace(spec, stride=ones, dilation=ones, output_padding=(0,) * spec.ndim)


def preferred(spec: ConvSpec, batch: int, channels_last: bool) -> bool:
    """Whether the planner runs a call it :func:`fits` on ``jit_pointwise``: every such call but a strided
    transposed one channels-first whose whole output is above ``POINTWISE_SCATTER_MAX_BYTES`` (the fill and the
    scatter, every ``s``-th element of each row, are single-threaded passes; channels-last, the scatter writes
    whole pixels' channel vectors). A batch of channels-first samples of a few pixels each runs one stacked
    product (or thin per-sample products on the team), not ``jit_gemm``'s one product over the gathered batch:
    19 such layers of 4-49 pixels, 0.28-0.99 of ``jit_gemm``'s time on 17 (docs/design.md)."""
    if _scattered_call(spec):
        output = batch * spec.out_channels * math.prod(spec.output_size) * _tuning.COST_ITEMSIZE
        return channels_last or output <= _tuning.POINTWISE_SCATTER_MAX_BYTES
    return True


def cost(spec: ConvSpec, channels_last: bool = False) -> float:
    """Seconds per sample: the product at ``gemm_rate()`` (slower in proportion for inner dimensions or rows
    below ``GEMM_FULL_RATE_INNER``, BLAS's rate on thin products; none for one input channel a group, a broadcast
    multiply) and the output written once at ``COLUMN_STREAM``, with a strided convolution's pixels copied
    together once (read and written); a scattering transposed call's products over x's pixels, written and read
    once before the whole output is written (:func:`_scattered`)."""
    if _scattered_call(spec):
        dense = _dense(spec)
        item = float(_tuning.COST_ITEMSIZE)
        moved = item * spec.out_channels * (math.prod(spec.output_size) + 2 * math.prod(spec.input_size))
        return cost(dense, channels_last) + moved / _tuning.COLUMN_STREAM
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    pixels = math.prod(spec.output_size)
    full = _tuning.GEMM_FULL_RATE_INNER
    rate = machine.gemm_rate() * min(1.0, cg_in / full) * min(1.0, cg_out / full)
    item = float(_tuning.COST_ITEMSIZE)
    copied = 0.0 if all(s == 1 for s in spec.stride) or spec.transposed else 2 * item * spec.in_channels * pixels
    output = item * spec.out_channels * pixels
    if cg_in == 1:  # broadcast multiplies: a pass over the output
        return (output + copied) / _tuning.COLUMN_STREAM
    return 2.0 * spec.out_channels * cg_in * pixels / rate + (output + copied) / _tuning.COLUMN_STREAM


def _matrices(weight: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The weight as ``(G, C_out/G, C_in/G)`` (a transposed weight ``(C_in, C_out/G, 1...)`` read transposed)."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    if spec.transposed:
        return weight.reshape(groups, cg_in, cg_out).transpose(0, 2, 1)
    return weight.reshape(groups, cg_out, cg_in)


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The call (:func:`fits`) on a batched x in the caller's layout; the output in the same layout."""
    if _scattered_call(spec):
        return _scattered(x, weight, bias, spec, channels_last)
    groups, d = spec.groups, spec.ndim
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    batch, pixels = x.shape[0], math.prod(spec.output_size)
    shape = (
        (batch, *spec.output_size, spec.out_channels)
        if channels_last
        else (batch, spec.out_channels, *spec.output_size)
    )
    if batch == 0 or pixels == 0:  # nothing to compute (the operations answer such calls before the engine)
        return np.empty(shape, dtype=x.dtype)
    steps = (1,) * d if spec.transposed else tuple(spec.stride)
    spatial = tuple(slice(None, None, s) for s in steps)
    key = (slice(None), *spatial) if channels_last else (slice(None), slice(None), *spatial)
    sub = np.ascontiguousarray(x[key])  # x itself where it is contiguous and nothing is skipped
    w = np.ascontiguousarray(_matrices(weight, spec), dtype=x.dtype)
    b = None if bias is None else np.asarray(bias, dtype=x.dtype).reshape(groups, cg_out)
    # one input channel a group: each product is an outer product, a broadcast multiply (BLAS runs an inner
    # dimension of 1 far below its rate)
    product = np.multiply if cg_in == 1 else np.matmul
    out = np.empty(shape, dtype=x.dtype)
    threads = team.size() if out.nbytes >= _tuning.TEAM_MIN_BYTES else 1  # the team for a large output
    if channels_last:
        # rows of pixels: (G, rows, C/G) views of (rows, G, C/G), each group's rows read with the stride C
        rows_in = sub.reshape(batch * pixels, groups, cg_in).transpose(1, 0, 2)
        rows_out = out.reshape(batch * pixels, groups, cg_out).transpose(1, 0, 2)
        w_t = w.transpose(0, 2, 1)  # (G, C_in/G, C_out/G)
        bias_rows = None if b is None else b[:, None, :]
        step = _step(batch * pixels, spec, x.dtype.itemsize, threads)

        def rows(start: int) -> None:
            target = rows_out[:, start : start + step]
            product(rows_in[:, start : start + step], w_t, out=target)
            if bias_rows is not None:
                target += bias_rows

        team.run(rows, range(0, batch * pixels, step), threads)
        return out
    planes_in = sub.reshape(batch, groups, cg_in, pixels)
    planes_out = out.reshape(batch, groups, cg_out, pixels)
    bias_planes = None if b is None else b[:, :, None]
    # a batch smaller than the team is cut into enough blocks of pixels for every thread
    step = _step(pixels, spec, x.dtype.itemsize, -(-threads // batch) if batch < threads else 1)

    if threads == 1 and step >= pixels:  # whole samples in this thread: one stacked product for the batch
        product(w, planes_in, out=planes_out)
        if bias_planes is not None:
            planes_out += bias_planes
        return out

    def columns(block: tuple[int, int]) -> None:
        n, start = block
        target = planes_out[n, :, :, start : start + step]
        product(w, planes_in[n, :, :, start : start + step], out=target)
        if bias_planes is not None:
            target += bias_planes

    team.run(columns, [(n, start) for n in range(batch) for start in range(0, pixels, step)], threads)
    return out


def weight_grad(x: np.ndarray, gy: np.ndarray, spec: ConvSpec, channels_last: bool) -> np.ndarray | None:
    """The weight gradient ``(C_out, C_in, 1...)`` of a convolution whose im2col is x itself (:func:`fits`, stride
    1, one group: ``dW = sum over samples and pixels of gy[:, p] x[:, p]^T``), from x and the output gradient where
    they lie, in the caller's layout; None for any other call (the im2col route runs it).

    Channels-last, one product ``gy^T @ x`` over the batch's pixels (both arrays are already those matrices).
    Channels-first, one product a sample, ``gy[n] @ x[n]^T``, a stack of them at a time (``CHUNK_BYTES`` of
    products): only where a sample's pixels are at least ``C_in C_out / (C_in + C_out)``,
    where the products' outputs, written and summed once a sample, are no larger than the im2col route's copies of
    x and the output gradient (which (32, 512, 7, 7) -> 2048 ran 2.2 times slower without). Each stack's products
    are summed (NumPy's sum over its samples) and added to the gradient in the stacks' order: the same bits on
    every call. The im2col route copies both arrays into matrices of the batch's pixels first: ``conv_grad`` of
    U-Net's head, (8, 16, 64, 64) -> 1, 0.72 ms that way against 0.12; (8, 64, 56, 56) -> 256 channels-last 15.8
    against 7.1, channels-first 9.3 against 6.8 (docs/design.md, "1x1 weight gradients where they lie")."""
    if spec.transposed or spec.groups != 1 or not fits(spec) or any(s != 1 for s in spec.stride):
        return None
    batch, pixels = x.shape[0], math.prod(spec.input_size)
    c_in, c_out = spec.in_channels, spec.out_channels
    if batch == 0 or pixels == 0:
        return None
    if channels_last:
        grad = team.matmul(gy.reshape(batch * pixels, c_out).T, x.reshape(batch * pixels, c_in))
        return grad.reshape(c_out, c_in, *spec.kernel_size)
    if pixels * (c_in + c_out) < c_in * c_out:
        return None
    planes_gy = gy.reshape(batch, c_out, pixels)
    planes_x = x.reshape(batch, c_in, pixels).swapaxes(1, 2)  # (N, pixels, C_in): each sample's x^T
    chunk = max(1, int(_tuning.CHUNK_BYTES // (c_in * c_out * x.dtype.itemsize)))
    grad = np.zeros((c_out, c_in), dtype=np.result_type(x.dtype, gy.dtype))
    for first in range(0, batch, chunk):
        products = team.matmul(planes_gy[first : first + chunk], planes_x[first : first + chunk])
        np.add(grad, products.sum(axis=0), out=grad)
    return grad.reshape(c_out, c_in, *spec.kernel_size)


def _scattered(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """A strided transposed call (or one with output padding): output pixel ``i * s`` along each axis is the
    stride-1 call's pixel ``i`` (:func:`_dense`), every other pixel the bias (zero without one)."""
    dense = conv(x, weight, bias, _dense(spec), channels_last)
    batch, c_out = x.shape[0], spec.out_channels
    size = tuple(spec.output_size)
    out = np.empty((batch, *size, c_out) if channels_last else (batch, c_out, *size), dtype=dense.dtype)
    if bias is None:
        out.fill(0)
    elif channels_last:  # a row of pixels at a time: NumPy's loop over C alone costs ~10 ns a pixel
        row = np.tile(np.asarray(bias, dtype=out.dtype), size[-1])
        if out.size:
            out.reshape(-1, row.size)[...] = row
    else:
        out[...] = np.asarray(bias, dtype=out.dtype).reshape(c_out, *(1,) * spec.ndim)
    pixels = tuple(slice(0, (n - 1) * s + 1, s) for n, s in zip(spec.input_size, spec.stride))
    out[(slice(None), *pixels) if channels_last else (slice(None), slice(None), *pixels)] = dense
    return out


def _step(pixels: int, spec: ConvSpec, itemsize: int, least: int) -> int:
    """Pixels a block, of ``pixels`` split evenly: blocks whose input and output take at most
    ``POINTWISE_BLOCK_BYTES``, at least ``least`` of them, none narrower than ``POINTWISE_MIN_BLOCK`` pixels (a
    product that narrow runs below BLAS's rate) unless the call has fewer."""
    per_pixel = itemsize * (spec.in_channels + spec.out_channels)
    blocks = max(least, -(-pixels * per_pixel // _tuning.POINTWISE_BLOCK_BYTES))
    return max(min(pixels, _tuning.POINTWISE_MIN_BLOCK), -(-pixels // blocks))
