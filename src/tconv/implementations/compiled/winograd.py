"""Winograd's minimal filtering F(2x2, 3x3) and F(4x4, 3x3) for 3x3 stride-1 convolutions, dilated ones too
(``jit_winograd`` and ``jit_winograd4``).

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

A dilated call is ``d1 * d2`` undilated ones, one per phase of the outputs (:func:`phases`): the outputs of one
residue read only the inputs of that residue, so each phase runs the same kernels on its inputs and outputs seen
with the dilation folded into their strides; all the phases' chunks go to the team in one run.

F(4x4, 3x3) (``m = 4``, ``jit_winograd4``) cuts the output into 4x4 tiles read from 6x6 patches: 36 products
over a quarter of the tiles, 4 times fewer multiply-adds than the im2col's; its transforms are in
:mod:`.winograd4`, and everything else (phases, chunks, products) is shared. Channels-last, both tile sizes lay
the transformed input out by tile, ``V[xi] (tiles, C_in)``, and multiply ``M[xi] = V[xi] @ U[xi]^T``, so that the
transforms of :mod:`.winograd_last` run along the contiguous channels.

A call runs in chunks of tiles (whole samples, or rows of tiles of one sample), each from the input transform
(into this thread's buffer) through the ``(m + 2)^2`` products to the output transform (which adds the bias and
writes the caller's layout, dropping the part of a last row or column of tiles that lies outside the output); on
the thread team where the transforms' work pays for the hand-off
(:func:`tconv.implementations.compiled.team.kernel_team_min_work`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, machine, schedule, team, winograd4, winograd_last
from .workspace import row_length, scratch

#: The kernel transform: ``U = G g G^T`` for a 3x3 kernel ``g`` (the kernel ``transform_kernel`` writes it out).
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def fits(spec: ConvSpec) -> bool:
    """Whether ``jit_winograd`` computes a call: a 2-D convolution, 3x3 kernel, stride 1, any dilation, one group."""
    return (
        not spec.transposed
        and spec.ndim == 2
        and spec.kernel_size == (3, 3)
        and spec.stride == (1, 1)
        and spec.groups == 1
        and all(lo >= 0 and hi >= 0 for lo, hi in spec.padding)
    )


class Phase(NamedTuple):
    """One undilated 3x3 convolution of a call (the whole call at dilation 1; at dilation ``(d1, d2)`` each of
    the ``d1 * d2`` phases): the outputs ``(a + d1*q1, b + d2*q2)`` read only the inputs of the same residues, at
    rows and columns of the same stride, so each phase is a stride-1 3x3 convolution of every ``d``-th input
    (the space-to-batch rewriting of a dilated convolution; TensorFlow's ``atrous_conv2d`` does the same). Along
    each axis: the phase's first input ``first`` (of ``size_in`` inputs ``dilation`` apart), its low padding
    ``low``, its first output ``start`` (of ``size_out``, ``dilation`` apart)."""

    first: tuple[int, int]
    size_in: tuple[int, int]
    low: tuple[int, int]
    start: tuple[int, int]
    size_out: tuple[int, int]

    def tiles(self, m: int = 2) -> tuple[int, int]:
        """Rows and columns of ``m x m`` output tiles."""
        return -(-self.size_out[0] // m), -(-self.size_out[1] // m)


def phases(spec: ConvSpec) -> list[Phase]:
    """The call's undilated 3x3 convolutions (:class:`Phase`), those with at least one output. Output ``o = a +
    d*q`` reads the padded inputs ``a + d*(q + t)``, ``t < 3``: input ``i = a + d*m - lo`` is row ``m`` of phase
    ``a``, the phase's inputs start at ``(a - lo) mod d`` and its padding holds the rows ``m`` before that one."""
    per_axis = []
    for n, o, d, (lo, _) in zip(spec.input_size, spec.output_size, spec.dilation, spec.padding):
        axis = []
        for a in range(min(d, o)):
            first = (a - lo) % d
            axis.append((first, max(0, -(-(n - first) // d)), (first + lo - a) // d, a, -(-(o - a) // d)))
        per_axis.append(axis)
    return [
        Phase((f1, f2), (n1, n2), (m1, m2), (a1, a2), (q1, q2))
        for f1, n1, m1, a1, q1 in per_axis[0]
        for f2, n2, m2, a2, q2 in per_axis[1]
    ]


def phases_pay(spec: ConvSpec, m: int = 2) -> bool:
    """Whether a call's phases are large enough for the planner to rank Winograd with ``m x m`` tiles. F(2x2,
    3x3): at dilation 1 always; a dilated call's phases need ``WINOGRAD_MIN_PHASE`` outputs along each axis (each
    phase's chunks cost 16 products and two transforms of their own, and its last tiles are half empty: with
    dilation 8 over 17x17 outputs Winograd took 3.9 times jit_gemm's time, at 12 over 33x33 2.1 times). F(4x4,
    3x3): every phase ``WINOGRAD4_MIN_SIDE`` outputs along each axis, dilated or not (below, its partly empty
    tiles and its transforms' set-up a row of tiles outweigh its smaller products: docs/design.md)."""
    if m == 4:
        return all(o // d >= _tuning.WINOGRAD4_MIN_SIDE for o, d in zip(spec.output_size, spec.dilation))
    return all(d == 1 or o // d >= _tuning.WINOGRAD_MIN_PHASE for o, d in zip(spec.output_size, spec.dilation))


def cost(spec: ConvSpec, m: int = 2) -> float:
    """Seconds per sample with ``m x m`` tiles: the ``(m + 2)^2`` products at ``gemm_rate()`` (slower in proportion
    below ``GEMM_FULL_RATE_INNER`` input or output channels, their inner dimension and rows), the transformed
    input and output (``(m + 2)^2`` values a tile and channel; F(4x4, 3x3)'s input values at
    ``WINOGRAD4_INPUT_COST`` times the rest) at ``COLUMN_STREAM``, and ``WINOGRAD_ROW_COST`` a row of tiles and
    channel (docs/design.md, Winograd), over every phase of a dilated call."""
    counts = [p.tiles(m) for p in phases(spec)]
    positions = (m + 2) ** 2
    count = sum(rows * columns for rows, columns in counts)
    rows = sum(rows for rows, _ in counts)
    c_in, c_out = spec.in_channels, spec.out_channels
    full = _tuning.GEMM_FULL_RATE_INNER
    rate = machine.gemm_rate() * min(1.0, c_in / full) * min(1.0, c_out / full)
    flops = 2.0 * positions * c_in * c_out * count
    per_input = 1.0 if m == 2 else _tuning.WINOGRAD4_INPUT_COST  # F(4x4, 3x3)'s values from a 6x6 patch, two passes
    streamed = positions * (per_input * c_in + c_out) * count * _tuning.COST_ITEMSIZE
    return flops / rate + streamed / _tuning.COLUMN_STREAM + (c_in + c_out) * rows * _tuning.WINOGRAD_ROW_COST


def setup_cost(spec: ConvSpec, m: int = 2) -> float:
    """Seconds a call: the kernel's transform, ``(m + 2)^2`` values a channel pair, at ``COLUMN_STREAM`` (F(4x4,
    3x3)'s at ``WINOGRAD4_KERNEL_COST`` times as long a value)."""
    per_value = 1.0 if m == 2 else _tuning.WINOGRAD4_KERNEL_COST
    return (
        per_value * (m + 2) ** 2 * spec.in_channels * spec.out_channels * _tuning.COST_ITEMSIZE / _tuning.COLUMN_STREAM
    )


def fits_memory(spec: ConvSpec, m: int = 2) -> bool:
    """Whether one row of tiles' transformed input and output fit ``_tuning.CHUNK_BYTES`` (a chunk is at least one)."""
    columns = max((p.tiles(m)[1] for p in phases(spec)), default=0)
    per_row = (m + 2) ** 2 * (spec.in_channels + spec.out_channels) * columns * _tuning.COST_ITEMSIZE
    return per_row <= _tuning.CHUNK_BYTES


def transformed_kernel(weight: np.ndarray, dtype: Any, slot: int | None = None, m: int = 2) -> np.ndarray:
    """``U ((m + 2)^2, C_out, C_in)``: for ``m = 4`` :func:`.winograd4.transformed_kernel`; for ``m = 2``
    ``U (16, C_out, C_in)``: ``G g G^T`` for each (output, input) channel's 3x3 kernel ``g``, position
    ``xi = 4a + b`` of the 4x4 result at ``U[xi]``, in ``dtype`` (in this thread's buffer ``slot`` if given and
    it fits ``CHUNK_BYTES``)."""
    c_out, c_in = weight.shape[:2]
    shape = ((m + 2) ** 2, c_out, c_in)
    u = np.empty(shape, dtype=dtype) if slot is None else scratch(shape, dtype, slot)
    if m == 4:
        return winograd4.transformed_kernel(weight, u)
    w, rows, kernel = (
        np.ascontiguousarray(weight, dtype=dtype).reshape(c_out * c_in, 9),
        u.reshape(16, -1),
        _kernels()[2],
    )
    # on the team where the 25 values a kernel reads and writes pay for the hand-off (512 x 512 channels: 16 MiB)
    team.ranges(lambda start, stop: kernel(w, rows, start, stop), c_out * c_in, 25.0 * c_out * c_in)
    return u


def conv(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool, m: int = 2
) -> np.ndarray:
    """The convolution of a batched x in the caller's layout, by F(m x m, 3x3), phase by phase where it is
    dilated (:func:`phases`); all phases' chunks in one run of the team."""
    batch, c_in, c_out = x.shape[0], spec.in_channels, spec.out_channels
    item = x.dtype.itemsize
    out = geometry.empty_out(batch, c_out, spec.output_size, x.dtype, channels_last)
    positions = (m + 2) ** 2
    u = transformed_kernel(weight, x.dtype, slot=6, m=m)  # read by every chunk; no chunk uses slot 6
    bias_row = np.zeros(c_out, dtype=x.dtype) if bias is None else np.asarray(bias, dtype=x.dtype).reshape(-1)
    axes_x = (0, 3, 1, 2) if channels_last else (0, 1, 2, 3)  # (n, c, h, w) in x's and out's own axes
    x_steps = [x.strides[a] // item for a in axes_x]
    out_steps = [out.strides[a] // item for a in axes_x]
    d1, d2 = spec.dilation
    # each phase reads every d-th input and writes every d-th output: its arrays start at its first element
    x_strides = np.array([x_steps[0], x_steps[1], d1 * x_steps[2], d2 * x_steps[3]], dtype=np.int64)
    out_strides = np.array([out_steps[0], out_steps[1], d1 * out_steps[2], d2 * out_steps[3]], dtype=np.int64)
    x_flat, out_flat = kernels.flat(x), kernels.flat(out)
    if channels_last:  # V[xi] (tiles, C_in) and M[xi] (tiles, C_out): the transforms run along the channels
        assert out_steps[1] == 1  # the output is made here, contiguous
        transform_input, transform_output = winograd_last.kernels(m)
        u_t = u.transpose(0, 2, 1)  # U[xi]^T (C_in, C_out), a view
    else:
        transform_input, transform_output = (_kernels() if m == 2 else winograd4.kernels())[:2]
    all_phases = phases(spec)
    # transformed values a row of tiles holds, in and out, and the rows of tiles, per phase
    per_row = [positions * (c_in + c_out) * phase.tiles(m)[1] for phase in all_phases]
    total = sum(batch * phase.tiles(m)[0] * values for phase, values in zip(all_phases, per_row))
    # on the team where the transforms' work pays for its hand-off (the products alone would split anyway)
    threads = team.size() if team.size() > 1 and total >= team.kernel_team_min_work() else 1
    budget = _tuning.TEAM_CHUNK_BYTES if threads > 1 else _tuning.CHUNK_BYTES
    # whole samples, or rows of tiles of one sample, within the budget (a row of tiles as a sample's "channel")
    work_items = [
        (phase, *chunk)
        for phase, values in zip(all_phases, per_row)
        for chunk in schedule.chunks(batch, phase.tiles(m)[0], values * item, budget, threads)
    ]

    def work(item_: tuple[Phase, int, int, int, int]) -> None:
        phase, n0, n1, i0, i1 = item_
        columns = phase.tiles(m)[1]
        count = (n1 - n0) * (i1 - i0) * columns
        (f1, f2), (a1, a2) = phase.first, phase.start
        # the phase's inputs (none: a phase all padding reads nothing) and outputs, from their first element
        x_from = f1 * x_steps[2] + f2 * x_steps[3] if min(phase.size_in) > 0 else 0
        size_in = np.array([c_in, *phase.size_in], dtype=np.int64)
        size_out = np.array([c_out, *phase.size_out], dtype=np.int64)
        low = np.array(phase.low, dtype=np.int64)
        out_from = a1 * out_steps[2] + a2 * out_steps[3]
        # the buffers are kept between calls only within CHUNK_BYTES
        if channels_last:
            # V[xi, t, c] at v[xi, t*row + c] ((m + 2)^2 planes), M[xi, t, k] at products[xi, t*c_out + k]; V's
            # rows (the product's left operand here) and planes off the aliasing strides too
            row = row_length(c_in, item)
            v_buffer = scratch((positions, row_length(count * row, item)), x.dtype, slot=0)
            transform_input(x_flat[x_from:], x_strides, size_in, low, n0, n1, i0, i1, columns, v_buffer, row)
            v = v_buffer[:, : count * row].reshape(positions, count, row)[:, :, :c_in]
            products = scratch((positions, row_length(count * c_out, item)), x.dtype, slot=4)
            team.matmul(v, u_t, out=products[:, : count * c_out].reshape(positions, count, c_out))
            transform_output(
                products, c_out, out_flat[out_from:], out_strides, size_out, n0, n1, i0, i1, columns, bias_row
            )
            return
        # V ((m + 2)^2, C_in, count) in rows of row_length(count) and planes of row_length(C_in * row) elements
        # (both off the aliasing strides: the kernel writes the planes at once, BLAS reads the rows)
        row = row_length(count, item)
        v_buffer = scratch((positions, row_length(c_in * row, item)), x.dtype, slot=0)
        transform_input(x_flat[x_from:], x_strides, size_in, low, n0, n1, i0, i1, columns, v_buffer, row)
        v = v_buffer[:, : c_in * row].reshape(positions, c_in, row)[:, :, :count]
        products = scratch((positions, row_length(c_out * count, item)), x.dtype, slot=4)  # M's planes off them too
        team.matmul(u, v, out=products[:, : c_out * count].reshape(positions, c_out, count))
        transform_output(products, count, out_flat[out_from:], out_strides, size_out, n0, n1, i0, i1, columns, bias_row)

    schedule.each(work, work_items, threads if len(work_items) > 1 else 1)
    return out


_apply_g: Any = None  # the compiled apply_g once _kernels() has run (transform_kernel calls it by this name)


@functools.cache
def _kernels() -> tuple[Any, Any, Any]:
    def apply_g(g0, g1, g2, r0, r1, r2, r3, width):  # type: ignore[no-untyped-def]
        # G's four rows (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1) applied to three rows of values
        # (the first ``width`` of each) into four, one loop and one store a row (so that each vectorises).
        half = g0.dtype.type(0.5)
        for e in range(width):
            r0[e] = g0[e]
        for e in range(width):
            r1[e] = (g0[e] + g1[e] + g2[e]) * half
        for e in range(width):
            r2[e] = (g0[e] - g1[e] + g2[e]) * half
        for e in range(width):
            r3[e] = g2[e]

    # transform_kernel calls it as a module global, not through its closure, which numba's cache would key by the
    # dispatcher's id, new in every process (kernels._compiled, write_phases)
    global _apply_g
    _apply_g = kernels.compile_kernel(apply_g)

    def transform_input(x, xs, size, low, n0, n1, i0, i1, tw, v, row):  # type: ignore[no-untyped-def]
        # x flat, element (n, c, h, w) at n*xs[0] + c*xs[1] + h*xs[2] + w*xs[3]; size (C, H, W); v (16, L)
        # contiguous, V[xi, c, t] at v[xi, c*row + t] (row at least the chunk's tiles, L at least C*row),
        # tile (n, i, j) at t = ((n - n0)*(i1 - i0) + i - i0)*tw + j.
        # Per (sample, channel): the padded rows the chunk's tiles read, each copied once, split into even and
        # odd columns (flat, ``half`` a row); then per tile its 4x4 values (rows b .. b+3 at even j, odd j,
        # even j+1, odd j+1), B^T down the columns and B along the rows, into v[4a + b] at t. Indices are
        # unsigned (no wrap-around test) and no slice is made per row of tiles: on small maps (8 tiles a row)
        # the slices' set-up, not the arithmetic, took the time (docs/design.md).
        channels, height, width = size[0], size[1], size[2]
        lo_h, lo_w = low[0], low[1]
        half = tw + 1  # even (and odd) columns of a padded row of 2*tw + 2
        rows = 2 * (i1 - i0) + 2  # the padded rows from 2*i0 on; the padding's stay zero
        even = np.zeros(rows * half, dtype=v.dtype)
        odd = np.zeros(rows * half, dtype=v.dtype)
        per = i1 - i0
        # input column q sits at padded column lo_w + q: the even ones from q = first_even on, every other one
        first_even = lo_w % 2
        first_odd = 1 - first_even
        evens, odds = (width - first_even + 1) // 2, (width - first_odd + 1) // 2
        e0, o0 = (lo_w + first_even) // 2, (lo_w + first_odd) // 2
        unit, step, two = xs[3] == 1, np.uint64(2 * xs[3]), np.uint64(2)  # every other element of a row
        flat = v.reshape(-1)
        plane = np.uint64(v.shape[1])  # from V[xi] to V[xi + 1]
        one, wide = np.uint64(1), np.uint64(half)
        for n in range(n0, n1):
            for c in range(channels):
                for r in range(rows):
                    h = 2 * i0 + r - lo_h
                    if h < 0 or h >= height:
                        continue
                    base = n * xs[0] + c * xs[1] + h * xs[2]
                    dst_e, dst_o = np.uint64(r * half + e0), np.uint64(r * half + o0)
                    src_e = np.uint64(base + first_even * xs[3])
                    src_o = np.uint64(base + first_odd * xs[3])
                    if unit:  # a contiguous row: every other element, a stride the compiler knows
                        for q in range(np.uint64(evens)):
                            even[dst_e + q] = x[src_e + two * q]
                        for q in range(np.uint64(odds)):
                            odd[dst_o + q] = x[src_o + two * q]
                        continue
                    for q in range(np.uint64(evens)):
                        even[dst_e + q] = x[src_e + q * step]
                    for q in range(np.uint64(odds)):
                        odd[dst_o + q] = x[src_o + q * step]
                row_of_c = np.uint64(c * row)
                for i in range(i0, i1):
                    top = np.uint64(2 * (i - i0) * half)
                    t = row_of_c + np.uint64(((n - n0) * per + i - i0) * tw)
                    for j in range(np.uint64(tw)):
                        r0 = top + j
                        r1 = r0 + wide
                        r2 = r1 + wide
                        r3 = r2 + wide
                        a0, b0, c0, d0 = even[r0], odd[r0], even[r0 + one], odd[r0 + one]
                        a1, b1, c1, d1 = even[r1], odd[r1], even[r1 + one], odd[r1 + one]
                        a2, b2, c2, d2 = even[r2], odd[r2], even[r2 + one], odd[r2 + one]
                        a3, b3, c3, d3 = even[r3], odd[r3], even[r3 + one], odd[r3 + one]
                        # B^T down the tile's four columns (each s row holds columns a, b, c, d)
                        s0a, s0b, s0c, s0d = a0 - a2, b0 - b2, c0 - c2, d0 - d2
                        s1a, s1b, s1c, s1d = a1 + a2, b1 + b2, c1 + c2, d1 + d2
                        s2a, s2b, s2c, s2d = a2 - a1, b2 - b1, c2 - c1, d2 - d1
                        s3a, s3b, s3c, s3d = a1 - a3, b1 - b3, c1 - c3, d1 - d3
                        at = t + j
                        flat[at] = s0a - s0c
                        flat[at + plane] = s0b + s0c
                        flat[at + np.uint64(2) * plane] = s0c - s0b
                        flat[at + np.uint64(3) * plane] = s0b - s0d
                        flat[at + np.uint64(4) * plane] = s1a - s1c
                        flat[at + np.uint64(5) * plane] = s1b + s1c
                        flat[at + np.uint64(6) * plane] = s1c - s1b
                        flat[at + np.uint64(7) * plane] = s1b - s1d
                        flat[at + np.uint64(8) * plane] = s2a - s2c
                        flat[at + np.uint64(9) * plane] = s2b + s2c
                        flat[at + np.uint64(10) * plane] = s2c - s2b
                        flat[at + np.uint64(11) * plane] = s2b - s2d
                        flat[at + np.uint64(12) * plane] = s3a - s3c
                        flat[at + np.uint64(13) * plane] = s3b + s3c
                        flat[at + np.uint64(14) * plane] = s3c - s3b
                        flat[at + np.uint64(15) * plane] = s3b - s3d

    def transform_output(m, row, out, os, size, n0, n1, i0, i1, tw, bias):  # type: ignore[no-untyped-def]
        # m (16, L) contiguous, M[xi, k, t] at m[xi, k*row + t], tiles laid out as V's; out flat, element
        # (n, k, oh, ow) at n*os[0] + k*os[1] + oh*os[2] + ow*os[3]; size (K, OH, OW). Per channel: A^T m A
        # plus the bias for every tile of the chunk in one loop (unsigned indices), into four rows of values
        # (the tiles' top and bottom output rows, even and odd columns); then each row of tiles interleaved
        # into its two output rows, a last row or column of tiles outside the output dropped.
        k_all, oh_n, ow_n = size[0], size[1], size[2]
        per = i1 - i0
        count = (n1 - n0) * per * tw
        pairs = ow_n // 2  # tiles whose two columns are inside
        s3 = os[3]
        flat = m.reshape(-1)
        plane = np.uint64(m.shape[1])
        values = np.empty((4, count), dtype=m.dtype)
        top_even, top_odd, bottom_even, bottom_odd = values[0], values[1], values[2], values[3]
        two = np.uint64(2)
        for k in range(k_all):
            b = bias[k]
            row_of_k = np.uint64(k * row)
            for f in range(np.uint64(count)):
                at = row_of_k + f
                m0, m1 = flat[at], flat[at + plane]
                m2, m3 = flat[at + two * plane], flat[at + np.uint64(3) * plane]
                m4, m5 = flat[at + np.uint64(4) * plane], flat[at + np.uint64(5) * plane]
                m6, m7 = flat[at + np.uint64(6) * plane], flat[at + np.uint64(7) * plane]
                m8, m9 = flat[at + np.uint64(8) * plane], flat[at + np.uint64(9) * plane]
                m10, m11 = flat[at + np.uint64(10) * plane], flat[at + np.uint64(11) * plane]
                m12, m13 = flat[at + np.uint64(12) * plane], flat[at + np.uint64(13) * plane]
                m14, m15 = flat[at + np.uint64(14) * plane], flat[at + np.uint64(15) * plane]
                p0, q0 = m0 + m1 + m2, m1 - m2 - m3
                p1, q1 = m4 + m5 + m6, m5 - m6 - m7
                p2, q2 = m8 + m9 + m10, m9 - m10 - m11
                p3, q3 = m12 + m13 + m14, m13 - m14 - m15
                top_even[f] = p0 + p1 + p2 + b
                top_odd[f] = q0 + q1 + q2 + b
                bottom_even[f] = p1 - p2 - p3 + b
                bottom_odd[f] = q1 - q2 - q3 + b
            for n in range(n0, n1):
                for i in range(i0, i1):
                    t = np.uint64(((n - n0) * per + i - i0) * tw)
                    top = n * os[0] + k * os[1] + 2 * i * os[2]
                    for lower in range(2):
                        if lower == 1 and 2 * i + 1 >= oh_n:
                            break
                        evens = top_even if lower == 0 else bottom_even
                        odds = top_odd if lower == 0 else bottom_odd
                        line = top + lower * os[2]
                        if s3 == 1:  # a contiguous row: the even and odd columns interleaved
                            dst = np.uint64(line)
                            for j in range(np.uint64(pairs)):
                                out[dst + two * j] = evens[t + j]
                                out[dst + two * j + np.uint64(1)] = odds[t + j]
                        else:
                            for j in range(pairs):
                                out[line + 2 * j * s3] = evens[t + np.uint64(j)]
                                out[line + (2 * j + 1) * s3] = odds[t + np.uint64(j)]
                        if ow_n % 2 == 1:
                            out[line + 2 * pairs * s3] = evens[t + np.uint64(pairs)]

    def transform_kernel(w, u, start, stop):  # type: ignore[no-untyped-def]
        # w (C_out * C_in, 9): each 3x3 kernel g in row order; u (16, C_out * C_in): G g G^T, G's rows
        # (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1) applied down the columns (t = G g), then
        # along the rows; the kernels start to stop. In blocks of 512 kernels: the block's kernels transposed
        # into nine rows g, then each row of t (12) and of u (16) one loop over the block, one store a loop (so
        # that each vectorises; a kernel at a time ran 1.6-2.8x slower: docs/design.md).
        block = 512
        g = np.empty((9, block), dtype=w.dtype)
        t = np.empty((12, block), dtype=w.dtype)
        for p0 in range(start, stop, block):
            width = min(block, stop - p0)
            for e in range(width):
                src = w[p0 + e]
                for j in range(9):
                    g[j, e] = src[j]
            for j in range(3):  # down the columns: t[3a + j] = (G g)[a, j]
                _apply_g(g[j], g[3 + j], g[6 + j], t[j], t[3 + j], t[6 + j], t[9 + j], width)
            for a in range(4):  # along the rows: U[4a + b] = (G g G^T)[a, b]
                u0, u1 = u[4 * a, p0 : p0 + width], u[4 * a + 1, p0 : p0 + width]  # contiguous rows
                u2, u3 = u[4 * a + 2, p0 : p0 + width], u[4 * a + 3, p0 : p0 + width]
                _apply_g(t[3 * a], t[3 * a + 1], t[3 * a + 2], u0, u1, u2, u3, width)

    return (
        # in order: each runs over a chunk's tiles in one loop, and its numbers must not depend on the chunks
        kernels.compile_kernel(transform_input, kernels.FASTMATH_IN_ORDER),
        kernels.compile_kernel(transform_output, kernels.FASTMATH_IN_ORDER),
        kernels.compile_kernel(transform_kernel),
    )


__all__ = [
    "G",
    "Phase",
    "conv",
    "cost",
    "fits",
    "fits_memory",
    "phases",
    "phases_pay",
    "setup_cost",
    "transformed_kernel",
]
