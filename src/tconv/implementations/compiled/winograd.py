"""Winograd's minimal filtering F(2x2, 3x3) for 3x3 stride-1 convolutions (``jit_winograd``).

The output is cut into 2x2 tiles; tile ``(i, j)`` reads the 4x4 patch ``d`` of the padded input at rows
``2i .. 2i+3`` and columns ``2j .. 2j+3``, and equals ``A^T [(G g G^T) * (B^T d B)] A`` summed over the input
channels (``*`` element by element, ``g`` the 3x3 kernel), with

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]],   A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].

So per tile and pair of channels 16 multiplications replace the direct sum's 36, and per transform position
``xi`` the sum over input channels is one matrix product, ``M[xi] = U[xi] @ V[xi]`` with ``U[xi] (C_out, C_in)``
the transformed kernel and ``V[xi] (C_in, tiles)`` the transformed input: the 16 products do 2.25 times fewer
multiply-adds than the im2col's one (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016;
NNPACK and oneDNN use the same transform). The transforms of ``d`` and ``M`` are additions only, that of ``g``
additions and halvings; the results differ from the direct sum's by rounding.

A call runs in chunks of tiles (whole samples, or rows of tiles of one sample), each from the input transform
(into this thread's buffer) through the 16 products to the output transform (which adds the bias and writes the
caller's layout, dropping the half of a last row or column of tiles that lies outside an odd-sized output); on
the thread team where the transforms' work pays for the hand-off
(:func:`tconv.implementations.compiled.team.kernel_team_min_work`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, schedule, team
from .workspace import row_length, scratch

#: The kernel transform: ``U = G g G^T`` for a 3x3 kernel ``g`` (the kernel ``transform_kernel`` writes it out).
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def fits(spec: ConvSpec) -> bool:
    """Whether ``jit_winograd`` computes a call: a 2-D convolution, 3x3 kernel, stride 1, dilation 1, one group."""
    return (
        not spec.transposed
        and spec.ndim == 2
        and spec.kernel_size == (3, 3)
        and spec.stride == (1, 1)
        and spec.dilation == (1, 1)
        and spec.groups == 1
    )


def tiles(spec: ConvSpec) -> tuple[int, int]:
    """Rows and columns of 2x2 output tiles."""
    return -(-spec.output_size[0] // 2), -(-spec.output_size[1] // 2)


def cost(spec: ConvSpec) -> float:
    """Seconds per sample: the 16 products at ``GEMM_RATE`` (slower in proportion below
    ``GEMM_FULL_RATE_INNER`` input or output channels, their inner dimension and rows), and the transformed input
    and output (16 values a tile and channel) at ``COLUMN_STREAM``, and ``WINOGRAD_ROW_COST`` a row of tiles and
    channel (docs/design.md, Winograd)."""
    rows, columns = tiles(spec)
    count = rows * columns
    c_in, c_out = spec.in_channels, spec.out_channels
    full = _tuning.GEMM_FULL_RATE_INNER
    rate = _tuning.GEMM_RATE * min(1.0, c_in / full) * min(1.0, c_out / full)
    flops = 2.0 * 16 * c_in * c_out * count
    streamed = 16.0 * (c_in + c_out) * count * _tuning.COST_ITEMSIZE
    return flops / rate + streamed / _tuning.COLUMN_STREAM + (c_in + c_out) * rows * _tuning.WINOGRAD_ROW_COST


def setup_cost(spec: ConvSpec) -> float:
    """Seconds a call: the kernel's transform, 16 values a channel pair, at ``COLUMN_STREAM``."""
    return 16.0 * spec.in_channels * spec.out_channels * _tuning.COST_ITEMSIZE / _tuning.COLUMN_STREAM


def fits_memory(spec: ConvSpec) -> bool:
    """Whether one row of tiles' transformed input and output fit ``_tuning.CHUNK_BYTES`` (a chunk is at least one)."""
    per_row = 16 * (spec.in_channels + spec.out_channels) * tiles(spec)[1] * _tuning.COST_ITEMSIZE
    return per_row <= _tuning.CHUNK_BYTES


def transformed_kernel(weight: np.ndarray, dtype: Any, slot: int | None = None) -> np.ndarray:
    """``U (16, C_out, C_in)``: ``G g G^T`` for each (output, input) channel's 3x3 kernel ``g``, position
    ``xi = 4a + b`` of the 4x4 result at ``U[xi]``, in ``dtype`` (in this thread's buffer ``slot`` if given and
    it fits ``CHUNK_BYTES``)."""
    c_out, c_in = weight.shape[:2]
    shape = (16, c_out, c_in)
    u = np.empty(shape, dtype=dtype) if slot is None else scratch(shape, dtype, slot)
    _kernels()[2](np.ascontiguousarray(weight, dtype=dtype).reshape(c_out * c_in, 9), u.reshape(16, -1))
    return u


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The convolution of a batched x in the caller's layout, by F(2x2, 3x3)."""
    batch, c_in, c_out = x.shape[0], spec.in_channels, spec.out_channels
    rows, columns = tiles(spec)
    item = x.dtype.itemsize
    out = geometry.empty_out(batch, c_out, spec.output_size, x.dtype, channels_last)
    u = transformed_kernel(weight, x.dtype, slot=6)  # read by every chunk; no chunk uses slot 6
    bias_row = np.zeros(c_out, dtype=x.dtype) if bias is None else np.asarray(bias, dtype=x.dtype).reshape(-1)
    axes_x = (0, 3, 1, 2) if channels_last else (0, 1, 2, 3)  # (n, c, h, w) in x's and out's own axes
    x_strides = np.array([x.strides[a] // item for a in axes_x], dtype=np.int64)
    out_strides = np.array([out.strides[a] // item for a in axes_x], dtype=np.int64)
    size_in = np.array([c_in, *spec.input_size], dtype=np.int64)
    size_out = np.array([c_out, *spec.output_size], dtype=np.int64)
    low = np.array([lo for lo, _ in spec.padding], dtype=np.int64)
    x_flat, out_flat = kernels.flat(x), kernels.flat(out)
    transform_input, transform_output, _ = _kernels()
    per_row = 16 * (c_in + c_out) * columns  # transformed values a row of tiles holds, in and out
    # on the team where the transforms' work pays for its hand-off (the products alone would split anyway)
    threads = team.size() if team.size() > 1 and batch * rows * per_row >= team.kernel_team_min_work() else 1
    budget = _tuning.TEAM_CHUNK_BYTES if threads > 1 else _tuning.CHUNK_BYTES

    def work(chunk: tuple[int, int, int, int]) -> None:
        n0, n1, i0, i1 = chunk
        count = (n1 - n0) * (i1 - i0) * columns
        # kept between calls only within CHUNK_BYTES; rows of row_length(count) (its last elements unused)
        v = scratch((16, c_in, row_length(count, item)), x.dtype, slot=0)
        transform_input(x_flat, x_strides, size_in, low, n0, n1, i0, i1, columns, v)
        m = team.matmul(u, v[:, :, :count], out=scratch((16, c_out, count), x.dtype, slot=4))
        transform_output(m, out_flat, out_strides, size_out, n0, n1, i0, i1, columns, bias_row)

    # whole samples, or rows of tiles of one sample, within the budget (a row of tiles as a sample's "channel")
    chunks = schedule.chunks(batch, rows, per_row * item, budget, threads)
    schedule.each(work, chunks, threads if len(chunks) > 1 else 1)
    return out


@functools.cache
def _kernels() -> tuple[Any, Any, Any]:
    def transform_input(x, xs, size, low, n0, n1, i0, i1, tw, v):  # type: ignore[no-untyped-def]
        # x flat, element (n, c, h, w) at n*xs[0] + c*xs[1] + h*xs[2] + w*xs[3]; size (C, H, W); v (16, C, R),
        # R at least the chunk's tiles, tile (n, i, j) at t = ((n - n0)*(i1 - i0) + i - i0)*tw + j. Per (sample,
        # channel): the padded rows the chunk's tiles read, each copied once, split into even and odd columns
        # (so that every later loop reads with unit stride and vectorises); per row of tiles, B^T down its four
        # rows (s = B^T d, whole rows at once), then B along each tile's four columns 2j .. 2j+3 (even j, odd j,
        # even j+1, odd j+1), into v[4a + b]. (Rows are indexed through slices and loop counters, which numba
        # knows are not negative: an index it must check for wrap-around stays scalar.)
        channels, height, width = size[0], size[1], size[2]
        lo_h, lo_w = low[0], low[1]
        half = tw + 1  # even (and odd) columns of a padded row of 2*tw + 2
        rows = 2 * (i1 - i0) + 2  # the padded rows from 2*i0 on; the padding's stay zero
        even = np.zeros((rows, half), dtype=v.dtype)
        odd = np.zeros((rows, half), dtype=v.dtype)
        se = np.empty((4, half), dtype=v.dtype)
        so = np.empty((4, half), dtype=v.dtype)
        per = i1 - i0
        # input column q sits at padded column lo_w + q: the even ones from q = first_even on, every other one
        first_even = lo_w % 2
        first_odd = 1 - first_even
        evens, odds = (width - first_even + 1) // 2, (width - first_odd + 1) // 2
        e0, o0 = (lo_w + first_even) // 2, (lo_w + first_odd) // 2
        unit = xs[3] == 1
        for n in range(n0, n1):
            for c in range(channels):
                for r in range(rows):
                    h = 2 * i0 + r - lo_h
                    if h < 0 or h >= height:
                        continue
                    base = n * xs[0] + c * xs[1] + h * xs[2]
                    re, ro = even[r], odd[r]
                    if unit:  # a contiguous row: every other element, a constant stride
                        xe = x[base + first_even : base + width]
                        xo = x[base + first_odd : base + width]
                        for q in range(evens):
                            re[e0 + q] = xe[2 * q]
                        for q in range(odds):
                            ro[o0 + q] = xo[2 * q]
                    else:
                        step = 2 * xs[3]
                        src = base + first_even * xs[3]
                        for q in range(evens):
                            re[e0 + q] = x[src + q * step]
                        src = base + first_odd * xs[3]
                        for q in range(odds):
                            ro[o0 + q] = x[src + q * step]
                for i in range(i0, i1):
                    b = 2 * (i - i0)
                    d0, d1, d2, d3 = even[b], even[b + 1], even[b + 2], even[b + 3]
                    f0, f1, f2, f3 = odd[b], odd[b + 1], odd[b + 2], odd[b + 3]
                    for q in range(half):
                        se[0, q] = d0[q] - d2[q]
                        se[1, q] = d1[q] + d2[q]
                        se[2, q] = d2[q] - d1[q]
                        se[3, q] = d1[q] - d3[q]
                        so[0, q] = f0[q] - f2[q]
                        so[1, q] = f1[q] + f2[q]
                        so[2, q] = f2[q] - f1[q]
                        so[3, q] = f1[q] - f3[q]
                    t = ((n - n0) * per + i - i0) * tw
                    for a in range(4):
                        ea, oa = se[a], so[a]
                        v0 = v[4 * a, c, t : t + tw]
                        v1 = v[4 * a + 1, c, t : t + tw]
                        v2 = v[4 * a + 2, c, t : t + tw]
                        v3 = v[4 * a + 3, c, t : t + tw]
                        for j in range(tw):
                            v0[j] = ea[j] - ea[j + 1]
                            v1[j] = oa[j] + ea[j + 1]
                            v2[j] = ea[j + 1] - oa[j]
                            v3[j] = oa[j] - oa[j + 1]

    def transform_output(m, out, os, size, n0, n1, i0, i1, tw, bias):  # type: ignore[no-untyped-def]
        # m (16, K, T) laid out as v; out flat, element (n, k, oh, ow) at n*os[0] + k*os[1] + oh*os[2] +
        # ow*os[3]; size (K, OH, OW). Per (sample, channel, row of tiles): A^T m A for each tile, plus the bias,
        # written into the output's two rows; a last row or column of tiles outside the output is dropped.
        k_all, oh_n, ow_n = size[0], size[1], size[2]
        per = i1 - i0
        pairs = ow_n // 2  # tiles whose two columns are inside
        s3 = os[3]
        for n in range(n0, n1):
            for k in range(k_all):
                b = bias[k]
                for i in range(i0, i1):
                    t = ((n - n0) * per + i - i0) * tw
                    top = n * os[0] + k * os[1] + 2 * i * os[2]
                    bottom = top + os[2]
                    two = 2 * i + 1 < oh_n
                    for j in range(tw):
                        p0 = m[0, k, t + j] + m[1, k, t + j] + m[2, k, t + j]
                        q0 = m[1, k, t + j] - m[2, k, t + j] - m[3, k, t + j]
                        p1 = m[4, k, t + j] + m[5, k, t + j] + m[6, k, t + j]
                        q1 = m[5, k, t + j] - m[6, k, t + j] - m[7, k, t + j]
                        p2 = m[8, k, t + j] + m[9, k, t + j] + m[10, k, t + j]
                        q2 = m[9, k, t + j] - m[10, k, t + j] - m[11, k, t + j]
                        p3 = m[12, k, t + j] + m[13, k, t + j] + m[14, k, t + j]
                        q3 = m[13, k, t + j] - m[14, k, t + j] - m[15, k, t + j]
                        left = 2 * j * s3
                        out[top + left] = p0 + p1 + p2 + b
                        if two:
                            out[bottom + left] = p1 - p2 - p3 + b
                        if j < pairs:
                            out[top + left + s3] = q0 + q1 + q2 + b
                            if two:
                                out[bottom + left + s3] = q1 - q2 - q3 + b

    def transform_kernel(w, u):  # type: ignore[no-untyped-def]
        # w (C_out * C_in, 9): each 3x3 kernel g in row order; u (16, C_out * C_in): G g G^T, G's rows
        # (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1) applied down the columns (t = G g), then
        # along the rows. In blocks of 64 kernels, each block's 16 values a kernel written as 16 runs of u.
        half = w.dtype.type(0.5)
        block = 64
        t = np.empty(12, dtype=w.dtype)
        done = np.empty((16, block), dtype=w.dtype)
        pairs = w.shape[0]
        for p0 in range(0, pairs, block):
            width = min(block, pairs - p0)
            for e in range(width):
                g = w[p0 + e]
                for j in range(3):
                    t[j] = g[j]
                    t[3 + j] = (g[j] + g[3 + j] + g[6 + j]) * half
                    t[6 + j] = (g[j] - g[3 + j] + g[6 + j]) * half
                    t[9 + j] = g[6 + j]
                for a in range(4):
                    r0, r1, r2 = t[3 * a], t[3 * a + 1], t[3 * a + 2]
                    done[4 * a, e] = r0
                    done[4 * a + 1, e] = (r0 + r1 + r2) * half
                    done[4 * a + 2, e] = (r0 - r1 + r2) * half
                    done[4 * a + 3, e] = r2
            for xi in range(16):
                u[xi, p0 : p0 + width] = done[xi, :width]

    return (
        kernels.compile_kernel(transform_input),
        kernels.compile_kernel(transform_output),
        kernels.compile_kernel(transform_kernel),
    )


__all__ = ["G", "conv", "cost", "fits", "fits_memory", "setup_cost", "tiles", "transformed_kernel"]
