"""A convolution's weight gradient summed in register blocks along the channels, with no im2col.

``dW[co, ci, t] = sum over samples and output pixels o of gy[o, co] * x[o * s + t * d, ci]`` (x zero-padded).
Each job holds a block of the gradient in registers: one or two SIMD vectors of output channels (``width``, as
:mod:`.blocked` sizes its blocks) times ``pairs`` (tap, input channel) pairs (eight with AVX-512's 32 registers,
four with 256-bit vectors; twice as many pairs for blocks of one vector). For every output pixel it loads the
output gradient's vectors once, broadcasts each pair's element of x once and makes ``pairs`` (times two)
multiply-adds: the gradient's product ``gy^T @ im2col(x)`` with the im2col's columns read where they lie in x instead
of gathered first (the way oneDNN's backward-weights kernels run it). The (tap, input channel) pairs go in the
order (taps, then channels), so that a block's broadcasts read a few adjacent elements of one pixel of x.

x is copied once into a zero-padded channels-last buffer (:func:`.blocked.padded_layout`: every output's taps meet it),
and the output gradient is read channels-last in place where its channel blocks are whole, else copied
channels-last with each group's channels padded with zeros to whole blocks; either way a tile's worth of it is then
packed into the job's panel (below). Samples go ``CHUNK_BYTES`` of those copies at a time.

The rows of output pixels (sample, o1, o2) are cut into one bin a thread of the team (:func:`bins`), each summing
into a partial of its own, added in the bins' order at the end: the same sums in the same order on every call,
whichever thread runs which bin and whether the bins run on a team or one after the other. Within a bin, rows go a
tile at a time (``WEIGHT_BLOCKS_TILE_BYTES`` of x and output gradient), each block of the gradient loaded from its
partial and stored back once a tile: a tile's data stays in the core's cache while every block runs over it.

Each tile's output gradient is first packed, group by group, into a panel of the job's own: a block of output
channels' vectors for one pixel after another, so that the block's loads run through consecutive memory. Read in
place, one pixel's vectors lie ``C_out`` elements after the last one's; at 256 output channels (1 KiB) the tile's
pixels fall into a few of the first-level cache's sets and evict each other: in cache, the register block's loop ran
137 GFLOP/s at that step against 170-174 at one of 32 or 128 elements. Packed, the seed generator's first layer's
weight gradient (adjoint (64, 7, 7, 128) -> 256 5x5) took 19.3-20.7 ms against 21.7-22.3 (three processes each,
alternated); layers of 64-128 output channels (its second layer's among them) were level within the noise
(docs/design.md, "The weight gradient's panel"). The pack copies each element of the output gradient once a tile;
its time is within ``WEIGHT_BLOCKS_RATE`` (a tile's blocks make ``pair blocks * pairs`` multiply-adds for each
element it copies).

Where it pays (:func:`cost`): layers whose im2col would be copied many times over (kernels of many taps over small
maps, where the im2col is the call's largest array) and whose output channels fill the vectors. The engine takes it
instead of the im2col and product (:mod:`.im2col`) where the cost model prices it lower
(:func:`.algorithms.blocks_weight_grad`); ``jit_direct``'s direct sums (:mod:`.direct_conv`) keep their own rule.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import blocked, geometry, kernels, machine, team, transpose, workspace

__all__ = ["bins", "cost", "fits", "weight_grad"]


def fits(spec: ConvSpec) -> bool:
    """A convolution (not transposed), rank 1-3."""
    return not spec.transposed and 1 <= spec.ndim <= 3


def _pairs(single: bool, vector_bytes: int) -> int:
    """(tap, input channel) pairs a block holds: sixteen accumulators with 512-bit vectors (32 registers), eight
    with 256-bit ones (16): eight pairs of two vectors or sixteen of one, else four or eight."""
    base = 8 if vector_bytes >= 64 else 4
    return 2 * base if single else base


class _Blocks(NamedTuple):
    """A call's blocks: the output channels a block holds (``width``), the vectors in it, pairs a block, blocks of
    output channels and of pairs a group, and the output gradient's channels a group once padded to whole blocks."""

    width: int
    vectors: int
    pairs: int
    channel_blocks: int
    pair_blocks: int
    padded: int


def _blocks(spec: ConvSpec, lane: int, vector_bytes: int) -> _Blocks:
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    width = blocked.width(cg_out, lane)
    pairs = _pairs(width == lane, vector_bytes)
    channel_blocks = -(-cg_out // width)
    pair_blocks = -(-(cg_in * math.prod(spec.kernel_size)) // pairs)
    return _Blocks(width, width // lane, pairs, channel_blocks, pair_blocks, channel_blocks * width)


def bins() -> int:
    """The partial sums a call keeps: one a thread of the team, whether it runs on the team or not (so that its sums
    are the same either way)."""
    return max(1, team.threads())


@functools.lru_cache(maxsize=1024)
def tile_rows(spec: ConvSpec, padded: int) -> int:
    """Rows of output pixels (sample, o1, o2) a tile holds: as many as hold ``WEIGHT_BLOCKS_TILE_BYTES`` of the data
    a row reads (its output gradient, ``padded`` channels a group, and the rows of x's zero-padded buffer its taps
    span: along the first two of three axes, the dilated kernel's extent, each a row of the buffer's last axis), at
    least one."""
    axes = geometry.axes3(spec)
    buffer = geometry.pad3(tuple(blocked.padded_layout(spec).buffer), 1)
    spans = math.prod(d * (k - 1) + 1 for k, d in zip(axes.kernel[:2], axes.dilation[:2]))
    row = axes.size_out[2] * spec.groups * padded + spans * buffer[2] * spec.in_channels
    return max(1, int(_tuning.WEIGHT_BLOCKS_TILE_BYTES // max(1, row * _tuning.COST_ITEMSIZE)))


def cost(spec: ConvSpec, batch: int, channels_last: bool, count: int | None = None) -> float:
    """Seconds for a call of ``batch`` samples by the cost model (:func:`_cost`), in ``count`` bins (the team's size
    now by default)."""
    return _cost(spec, batch, channels_last, bins() if count is None else count)


@functools.lru_cache(maxsize=1024)
def _cost(spec: ConvSpec, batch: int, channels_last: bool, count: int) -> float:
    """Seconds for a call of ``batch`` samples in ``count`` bins by the cost model: the vector multiply-adds (output
    channels rounded up to whole blocks, pairs to whole blocks) at ``WEIGHT_BLOCKS_RATE`` (blocks of one vector at
    ``BLOCKED_SINGLE_SHARE`` of it: a broadcast a multiply-add), a ``BLOCKED_BLOCK_COST`` for each block of the
    gradient a tile and bin loads and stores, x's zero-padded copy (a transposing one at ``TRANSPOSE_STREAM`` from
    a channels-first x of several channels, else ``COPY_STREAM``), the output gradient's copy where it is made,
    and the partials added up."""
    if batch == 0 or math.prod(spec.output_size) == 0:
        return 0.0
    lane = blocked.priced_lanes(_tuning.COST_ITEMSIZE)
    blocks = _blocks(spec, lane, machine.priced_vector_bytes())
    groups, item = spec.groups, float(_tuning.COST_ITEMSIZE)
    pixels = batch * math.prod(spec.output_size)
    gradient_blocks = groups * blocks.channel_blocks * blocks.pair_blocks
    vector_fmas = pixels * gradient_blocks * blocks.vectors * blocks.pairs
    rate = machine.vector_rate(_tuning.WEIGHT_BLOCKS_RATE)
    if blocks.vectors == 1:
        rate *= _tuning.BLOCKED_SINGLE_SHARE
    layout = blocked.padded_layout(spec)
    rows = batch * math.prod(spec.output_size[:-1])
    tiles = rows // tile_rows(spec, blocks.padded) + count
    seconds = vector_fmas / rate + tiles * gradient_blocks * _tuning.BLOCKED_BLOCK_COST
    x_bytes = item * batch * spec.in_channels * math.prod(spec.input_size)
    buffer_bytes = item * batch * spec.in_channels * math.prod(layout.buffer)
    transposing = not channels_last and spec.in_channels > 1
    seconds += (x_bytes + buffer_bytes) / (_tuning.TRANSPOSE_STREAM if transposing else _tuning.COPY_STREAM)
    if layout.zeros:
        seconds += buffer_bytes / _tuning.COPY_STREAM
    if not channels_last or blocks.padded != spec.out_channels // groups:
        gy_bytes = item * pixels * spec.out_channels
        stream = _tuning.TRANSPOSE_STREAM if not channels_last and spec.out_channels > 1 else _tuning.COPY_STREAM
        seconds += (gy_bytes + item * pixels * groups * blocks.padded) / stream
    gradient = item * gradient_blocks * blocks.pairs * blocks.width
    return seconds + count * 2 * gradient / _tuning.COPY_STREAM


def weight_grad(x: np.ndarray, gy: np.ndarray, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The weight gradient ``(C_out, C_in/G, *k)`` of a convolution of a batched x (any non-negative strides) from
    its output gradient ``gy``, both in the caller's layout, summed in register blocks."""
    groups, batch = spec.groups, x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    if batch == 0 or math.prod(spec.output_size) == 0 or cg_out == 0 or cg_in == 0:
        return np.zeros((spec.out_channels, cg_in, *spec.kernel_size), dtype=x.dtype)
    lane = blocked.lanes(x.itemsize)
    blocks = _blocks(spec, lane, machine.vector_bytes())
    count = bins()
    shape = (count, groups, blocks.channel_blocks, blocks.pair_blocks * blocks.pairs, blocks.width)
    partials = np.zeros(shape, dtype=x.dtype)
    layout = blocked.padded_layout(spec)
    buffer_shape = (*layout.buffer, spec.in_channels)
    pixels = math.prod(spec.output_size)
    in_place = channels_last and blocks.padded == cg_out and gy.strides[-1] == gy.itemsize
    per_sample = math.prod(buffer_shape) + (0 if in_place else pixels * groups * blocks.padded)
    chunk = max(1, int(_tuning.CHUNK_BYTES // max(1, per_sample * x.itemsize)))
    source = geometry.moved(x, -1, 1) if channels_last else x  # (N, C, *spatial), a view
    kernel = _kernel(blocks.vectors == 1)
    flat_partials = partials.reshape(-1)
    for first in range(0, batch, chunk):
        piece = slice(first, first + chunk)
        plane = blocked.padded_copy(source[piece], layout, buffer_shape)
        grad = gy[piece] if in_place else _gradient_copy(gy[piece], spec, blocks.padded, channels_last)
        plan = _plan(
            spec, plane.shape[0], plane.strides, grad.strides, x.itemsize, machine.vector_bytes(), count,
        )  # fmt: skip
        x_flat, g_flat = kernels.flat(plane), kernels.flat(grad)

        def run(start: int, stop: int, x_flat: Any = x_flat, g_flat: Any = g_flat, plan: _Plan = plan) -> None:
            kernel(x_flat, g_flat, flat_partials, plan.offsets, plan.rows, plan.bounds, plan.dims, start, stop)

        team.ranges(run, count, plan.work)
    total = partials[0]
    for which in range(1, count):
        total += partials[which]
    # (G, channel blocks, pairs, width) -> (G, channel blocks * width, taps, C_in/G) -> (C_out, C_in/G, *k)
    pairs = total[:, :, : cg_in * taps].reshape(groups, blocks.channel_blocks, taps, cg_in, blocks.width)
    ordered = pairs.transpose(0, 1, 4, 3, 2).reshape(groups, blocks.padded, cg_in, taps)[:, :cg_out]
    return np.ascontiguousarray(ordered).reshape(spec.out_channels, cg_in, *spec.kernel_size)


def _gradient_copy(gy: np.ndarray, spec: ConvSpec, padded: int, channels_last: bool) -> np.ndarray:
    """The output gradient channels-last, each group's channels padded with zeros to ``padded`` (whole blocks), in
    this thread's buffer (slot 3): ``(N, *spatial, G * padded)``."""
    groups, d = spec.groups, spec.ndim
    cg_out = spec.out_channels // groups
    batch = gy.shape[0]
    copy = workspace.scratch((batch, *geometry.pad3(spec.output_size, 1), groups, padded), gy.dtype, slot=3)
    if padded > cg_out:
        copy[..., cg_out:] = 0
    grouped = geometry.grouped_view(gy, groups, d, channels_last)  # (N, G, C/G, s1, s2, s3)
    transpose.assign(copy[..., :cg_out], grouped.transpose(0, 3, 4, 5, 1, 2))
    return copy.reshape(batch, *spec.output_size, groups * padded)


class _Plan(NamedTuple):
    """What a chunk's kernel needs beyond its arrays (:func:`_plan`)."""

    offsets: np.ndarray  # (G, pair blocks * pairs): each pair's offset in x from a pixel's first tap, channel 0
    rows: np.ndarray  # (rows, 2): each row's first element in x and in the output gradient
    bounds: np.ndarray  # (bins + 1,): the bins' first rows
    dims: np.ndarray  # outputs a row, x's and the gradient's step a pixel, groups, channel blocks, pair blocks,
    # rows a tile, the gradient's channels a group (padded), the partials' elements a bin, pairs a block, width
    work: float  # elements of work, for the team's hand-off (team.ranges)


@functools.lru_cache(maxsize=1024)
def _plan(
    spec: ConvSpec, batch: int, x_strides: tuple[int, ...], g_strides: tuple[int, ...], itemsize: int,
    vector_bytes: int, count: int,
) -> _Plan:  # fmt: skip
    """A chunk's :class:`_Plan`, made once per call description, chunk of samples, byte strides of the padded x
    (channels-last) and of the output gradient (channels-last), itemsize, vector width and bins."""
    groups = spec.groups
    cg_in = spec.in_channels // groups
    lane = vector_bytes // itemsize
    blocks = _blocks(spec, lane, vector_bytes)
    axes = geometry.axes3(spec)
    x_el = geometry.element_strides(x_strides, itemsize, spec.ndim, True)
    g_el = geometry.element_strides(g_strides, itemsize, spec.ndim, True)
    window = geometry.window_offsets(axes.kernel, axes.dilation, x_el, cg_in, True)  # (taps, channels) order
    offsets = np.zeros((groups, blocks.pair_blocks * blocks.pairs), dtype=np.int64)
    offsets[:, : window.size] = window[None, :] + (np.arange(groups, dtype=np.int64) * cg_in * x_el[4])[:, None]
    o1n, o2n, o3n = axes.size_out
    n, o1, o2 = np.meshgrid(np.arange(batch), np.arange(o1n), np.arange(o2n), indexing="ij")
    rows = np.empty((n.size, 2), dtype=np.int64)
    rows[:, 0] = (n * x_el[0] + o1 * axes.stride[0] * x_el[1] + o2 * axes.stride[1] * x_el[2]).reshape(-1)
    rows[:, 1] = (n * g_el[0] + o1 * g_el[1] + o2 * g_el[2]).reshape(-1)
    bounds = np.linspace(0, rows.shape[0], count + 1).round().astype(np.int64)
    per_bin = groups * blocks.channel_blocks * blocks.pair_blocks * blocks.pairs * blocks.width
    dims = (
        o3n, axes.stride[2] * x_el[3], g_el[3], groups, blocks.channel_blocks, blocks.pair_blocks,
        tile_rows(spec, blocks.padded), blocks.padded, per_bin, blocks.pairs, blocks.width,
    )  # fmt: skip
    dims_array = np.array(dims, dtype=np.int64)
    for table in (offsets, rows, bounds, dims_array):
        table.flags.writeable = False
    work = _cost(spec, batch, True, count) / _tuning.KERNEL_ELEMENT_SECONDS
    return _Plan(offsets, rows, bounds, dims_array, work)


#: the kernels' callees, set by :func:`_bind` (module globals: numba's disk cache keys a function by its pickled
#: closure, and an intrinsic pickles with an id new in every process; :mod:`.blocked` does the same)
_lanes: Any = None
_vfma: Any = None
_vload: Any = None
_vsplat: Any = None
_vstore: Any = None
_quad: Any = None
_quad1: Any = None


@functools.cache
def _bind() -> int:
    """Set the kernels' callees (the SIMD operations at the machine's widest vectors and the inlined four pairs'
    multiply-adds) as module globals, once; return the vectors' bytes."""
    from . import simd

    global _lanes, _vfma, _vload, _vsplat, _vstore, _quad, _quad1
    wide = simd.widest()
    _lanes, _vload, _vsplat, _vfma, _vstore = wide.lanes, wide.vload, wide.vsplat, simd.vfma, simd.vstore

    def quad(x, xb, e0, e1, e2, e3, g0, g1, a00, a01, a10, a11, a20, a21, a30, a31):  # type: ignore[no-untyped-def]
        # Four pairs' elements of x (at ``xb`` plus each offset) broadcast once each, times the output gradient's
        # two vectors: eight multiply-adds into accumulators passed in and returned as values (inlined: they stay
        # in registers).
        v = _vsplat(x, xb + e0)
        a00 = _vfma(a00, v, g0)
        a01 = _vfma(a01, v, g1)
        v = _vsplat(x, xb + e1)
        a10 = _vfma(a10, v, g0)
        a11 = _vfma(a11, v, g1)
        v = _vsplat(x, xb + e2)
        a20 = _vfma(a20, v, g0)
        a21 = _vfma(a21, v, g1)
        v = _vsplat(x, xb + e3)
        a30 = _vfma(a30, v, g0)
        a31 = _vfma(a31, v, g1)
        return a00, a01, a10, a11, a20, a21, a30, a31

    def quad1(x, xb, e0, e1, e2, e3, g0, a0, a1, a2, a3):  # type: ignore[no-untyped-def]
        # As quad for blocks of one vector: four multiply-adds.
        a0 = _vfma(a0, _vsplat(x, xb + e0), g0)
        a1 = _vfma(a1, _vsplat(x, xb + e1), g0)
        a2 = _vfma(a2, _vsplat(x, xb + e2), g0)
        a3 = _vfma(a3, _vsplat(x, xb + e3), g0)
        return a0, a1, a2, a3

    numba = kernels.numba_module()
    _quad = numba.njit(inline="always", fastmath=True, nogil=True)(quad)
    _quad1 = numba.njit(inline="always", fastmath=True, nogil=True)(quad1)
    return int(wide.vector_bytes)


@functools.cache
def _kernel(single: bool) -> Any:
    """The kernel for blocks of one vector of output channels (``single``) or of two."""
    vector_bytes = _bind()  # in the closure, as .simd.width says
    eights = vector_bytes >= 64  # eight pairs of two vectors (sixteen of one), else four (eight)

    def sums(x, g, dw, offsets, rows, bounds, dims, start, stop):  # type: ignore[no-untyped-def]
        # x flat: the zero-padded channels-last buffer; g flat: the output gradient channels-last; dw flat: the
        # partials (bins, G, channel blocks, pair blocks * pairs, width). Job = a bin: its rows (bounds), a tile of
        # rows at a time; for each tile and group, the tile's output gradient packed into ``panel`` (a block of
        # output channels' vectors for one pixel after another), then for each block of output channels and block
        # of pairs, the block's sums loaded from the bin's partial, summed over the tile's pixels in order, stored
        # back.
        o3n, xstep, gstep, groups, n_cb, n_pb = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
        tile, padded, per_bin, pairs = dims[6], dims[7], dims[8], dims[9]
        lane = _lanes(x)
        width = lane if single else 2 * lane  # a constant of the compiled code
        planned = (8 if eights else 4) * (2 if single else 1)
        if lane * x.itemsize != vector_bytes or width != dims[10] or pairs != planned:
            # never: the plan's blocks are sized for the machine's widest vectors, as the kernel is compiled
            raise ValueError("the weight gradient's blocks were planned for another vector width than compiled")
        panel = np.empty(n_cb * tile * o3n * width, dtype=g.dtype)  # (channel blocks, the tile's pixels, width)
        for b in range(start, stop):
            first, last = bounds[b], bounds[b + 1]
            for r0 in range(first, last, tile):
                r1 = min(r0 + tile, last)
                npix = (r1 - r0) * o3n
                for grp in range(groups):
                    pixel = 0
                    for r in range(r0, r1):
                        gb = rows[r, 1] + grp * padded
                        for _o in range(o3n):
                            for cb in range(n_cb):
                                to = (cb * npix + pixel) * width
                                _vstore(panel, to, _vload(g, gb + cb * width))
                                if not single:
                                    _vstore(panel, to + lane, _vload(g, gb + cb * width + lane))
                            gb += gstep
                            pixel += 1
                    for cb in range(n_cb):
                        gc = cb * npix * width
                        for pb in range(n_pb):
                            db = b * per_bin + (((grp * n_cb + cb) * n_pb + pb) * pairs) * width
                            q = pb * pairs
                            e0, e1 = offsets[grp, q], offsets[grp, q + 1]
                            e2, e3 = offsets[grp, q + 2], offsets[grp, q + 3]
                            if single:
                                e4, e5 = offsets[grp, q + 4], offsets[grp, q + 5]
                                e6, e7 = offsets[grp, q + 6], offsets[grp, q + 7]
                                a0 = _vload(dw, db)
                                a1 = _vload(dw, db + width)
                                a2 = _vload(dw, db + 2 * width)
                                a3 = _vload(dw, db + 3 * width)
                                a4 = _vload(dw, db + 4 * width)
                                a5 = _vload(dw, db + 5 * width)
                                a6 = _vload(dw, db + 6 * width)
                                a7 = _vload(dw, db + 7 * width)
                                if eights:
                                    f0, f1 = offsets[grp, q + 8], offsets[grp, q + 9]
                                    f2, f3 = offsets[grp, q + 10], offsets[grp, q + 11]
                                    f4, f5 = offsets[grp, q + 12], offsets[grp, q + 13]
                                    f6, f7 = offsets[grp, q + 14], offsets[grp, q + 15]
                                    c0 = _vload(dw, db + 8 * width)
                                    c1 = _vload(dw, db + 9 * width)
                                    c2 = _vload(dw, db + 10 * width)
                                    c3 = _vload(dw, db + 11 * width)
                                    c4 = _vload(dw, db + 12 * width)
                                    c5 = _vload(dw, db + 13 * width)
                                    c6 = _vload(dw, db + 14 * width)
                                    c7 = _vload(dw, db + 15 * width)
                                else:  # never read (numba prunes the branches on the constant)
                                    f0 = f1 = f2 = f3 = f4 = f5 = f6 = f7 = e0
                                    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = a0
                                gb = gc
                                for r in range(r0, r1):
                                    xb = rows[r, 0]
                                    for _o in range(o3n):
                                        g0 = _vload(panel, gb)
                                        a0, a1, a2, a3 = _quad1(x, xb, e0, e1, e2, e3, g0, a0, a1, a2, a3)
                                        a4, a5, a6, a7 = _quad1(x, xb, e4, e5, e6, e7, g0, a4, a5, a6, a7)
                                        if eights:
                                            c0, c1, c2, c3 = _quad1(x, xb, f0, f1, f2, f3, g0, c0, c1, c2, c3)
                                            c4, c5, c6, c7 = _quad1(x, xb, f4, f5, f6, f7, g0, c4, c5, c6, c7)
                                        xb += xstep
                                        gb += width
                                _vstore(dw, db, a0)
                                _vstore(dw, db + width, a1)
                                _vstore(dw, db + 2 * width, a2)
                                _vstore(dw, db + 3 * width, a3)
                                _vstore(dw, db + 4 * width, a4)
                                _vstore(dw, db + 5 * width, a5)
                                _vstore(dw, db + 6 * width, a6)
                                _vstore(dw, db + 7 * width, a7)
                                if eights:
                                    _vstore(dw, db + 8 * width, c0)
                                    _vstore(dw, db + 9 * width, c1)
                                    _vstore(dw, db + 10 * width, c2)
                                    _vstore(dw, db + 11 * width, c3)
                                    _vstore(dw, db + 12 * width, c4)
                                    _vstore(dw, db + 13 * width, c5)
                                    _vstore(dw, db + 14 * width, c6)
                                    _vstore(dw, db + 15 * width, c7)
                            else:
                                a00 = _vload(dw, db)
                                a01 = _vload(dw, db + lane)
                                a10 = _vload(dw, db + width)
                                a11 = _vload(dw, db + width + lane)
                                a20 = _vload(dw, db + 2 * width)
                                a21 = _vload(dw, db + 2 * width + lane)
                                a30 = _vload(dw, db + 3 * width)
                                a31 = _vload(dw, db + 3 * width + lane)
                                if eights:
                                    e4, e5 = offsets[grp, q + 4], offsets[grp, q + 5]
                                    e6, e7 = offsets[grp, q + 6], offsets[grp, q + 7]
                                    a40 = _vload(dw, db + 4 * width)
                                    a41 = _vload(dw, db + 4 * width + lane)
                                    a50 = _vload(dw, db + 5 * width)
                                    a51 = _vload(dw, db + 5 * width + lane)
                                    a60 = _vload(dw, db + 6 * width)
                                    a61 = _vload(dw, db + 6 * width + lane)
                                    a70 = _vload(dw, db + 7 * width)
                                    a71 = _vload(dw, db + 7 * width + lane)
                                else:  # never read (numba prunes the branches on the constant)
                                    e4 = e5 = e6 = e7 = e0
                                    a40 = a41 = a50 = a51 = a60 = a61 = a70 = a71 = a00
                                gb = gc
                                for r in range(r0, r1):
                                    xb = rows[r, 0]
                                    for _o in range(o3n):
                                        g0 = _vload(panel, gb)
                                        g1 = _vload(panel, gb + lane)
                                        a00, a01, a10, a11, a20, a21, a30, a31 = _quad(
                                            x, xb, e0, e1, e2, e3, g0, g1, a00, a01, a10, a11, a20, a21, a30, a31
                                        )
                                        if eights:
                                            a40, a41, a50, a51, a60, a61, a70, a71 = _quad(
                                                x, xb, e4, e5, e6, e7, g0, g1, a40, a41, a50, a51, a60, a61, a70, a71
                                            )
                                        xb += xstep
                                        gb += width
                                _vstore(dw, db, a00)
                                _vstore(dw, db + lane, a01)
                                _vstore(dw, db + width, a10)
                                _vstore(dw, db + width + lane, a11)
                                _vstore(dw, db + 2 * width, a20)
                                _vstore(dw, db + 2 * width + lane, a21)
                                _vstore(dw, db + 3 * width, a30)
                                _vstore(dw, db + 3 * width + lane, a31)
                                if eights:
                                    _vstore(dw, db + 4 * width, a40)
                                    _vstore(dw, db + 4 * width + lane, a41)
                                    _vstore(dw, db + 5 * width, a50)
                                    _vstore(dw, db + 5 * width + lane, a51)
                                    _vstore(dw, db + 6 * width, a60)
                                    _vstore(dw, db + 6 * width + lane, a61)
                                    _vstore(dw, db + 7 * width, a70)
                                    _vstore(dw, db + 7 * width + lane, a71)

    return kernels.compile_kernel(sums)
