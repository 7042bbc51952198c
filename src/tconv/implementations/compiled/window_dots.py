"""A convolution as dot products of windows and weight rows, in one compiled call (``jit_dots``).

Each output is the dot product of its window of x (``C_in/G * K`` elements: the group's input channels times the
taps) with its output channel's row of the weight, which the PyTorch/ONNX layout ``(C_out, C_in/G, *k)`` already
holds contiguous. The kernel gathers four pixels' windows into a small buffer (zeros where a tap falls in the
padding), then runs the dot products two weight rows at a time, eight SIMD accumulators (four pixels times two
rows; each window vector and each weight vector loaded once for the block), and sums each accumulator's lanes at
the end (:func:`.simd.vsum`).

Where it pays: small calls. Along the windows nothing is packed, copied or planned again on a call: the weight is
read where it is, x in place in either layout, the output written in place in either layout, and the call's numbers
are made once per call description (:func:`_plan`). The other paths spend tens of microseconds around their
kernels on such calls (an im2col's buffers, a product through BLAS, a packed weight), which is most of the call
there (x (4, 1, 3, 3, 3) with 210 5x5x5 filters: 47 us, of which the product and the gather took 6). Every output
ends in a sum of lanes, so a window shorter than a few vectors costs more here than where the vectors run along the
output channels (:mod:`.blocked`); the cost model (:func:`cost`) counts it.

Such calls run the other way round where the cost model prices it lower (:func:`along_channels`): the weight
packed once a call into blocks of two vectors of output channels (:func:`_pack_kernel`), and for each block of
four pixels and of channels eight accumulators that take one multiply-add a window element, with no sum of lanes
(:func:`_channels_kernel`); a channels-last x's windows are then gathered in runs along its channels. On the 69
small layers of forward sweeps 56 and 57 (under 20 MFLOP, one thread) the way the cost model chose ran 0.79 of the
time along the windows, and within 1.008 of the faster way (docs/design.md, "Output channels in jit_dots"). Both
ways are priced at ``COST_ITEMSIZE`` (float32's blocks of two vectors), as the planner prices every path, whatever
the call's dtype.

Either way, a window whose taps all meet x is copied through a table of its elements' offsets in one loop where its
runs are many (:func:`_offsets`, :func:`_table_pays`), and the kernels are compiled without the table elsewhere.

The module is long because it holds both ways, each a kernel that keeps its eight accumulators as separate values
(a loop over them in an array would keep them in memory), their gathers, the weight's packing and the cost model
that chooses between them.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, team

__all__ = ["conv", "cost", "fits"]

#: pixels a block: the windows gathered together, each weight vector multiplied into all four
PIXELS = 4


def fits(spec: ConvSpec) -> bool:
    """A convolution (not transposed), rank 1-3."""
    return not spec.transposed and 1 <= spec.ndim <= 3


@functools.lru_cache(maxsize=1024)
def cost(spec: ConvSpec) -> float:
    """Seconds per sample by the cost model: every pixel's window gathered once a group, the elements that meet x at
    ``DOTS_GATHER_RATE`` a second and each run of them along the last axis a ``DOTS_RUN_COST``, the vector multiply-adds
    of its dot products (``DOTS_VECTOR_RATE``; the weight rows run in pairs, so a group's odd last row costs a pair),
    the window's last elements short of a vector one by one (``DOTS_SCALAR_RATE``), each output's sum of lanes and store
    (``DOTS_OUTPUT_COST``), and, where a group's weight rows pass ``DOTS_WEIGHT_CACHE_BYTES``, those rows streamed again
    for every block of four pixels (at ``DOTS_WEIGHT_STREAM``: every block reads them all). The tuning constants it
    reads are fixed in a user's process; the tests that change them clear this cache (``tests/conftest.py``)."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    window = cg_in * math.prod(spec.kernel_size)
    lanes = _tuning.VECTOR_BYTES // _tuning.COST_ITEMSIZE  # its vectors are 256 bits on every machine (.simd)
    pixels = math.prod(spec.output_size)
    outputs = pixels * groups * -(-cg_out // 2) * 2
    rows = float(_tuning.COST_ITEMSIZE) * cg_out * window  # a group's weight rows, read once a block of pixels
    weight = 0.0
    if rows > _tuning.DOTS_WEIGHT_CACHE_BYTES:
        weight = groups * (pixels / PIXELS) * rows / _tuning.DOTS_WEIGHT_STREAM
    return (
        _gather_cost(spec, False)
        + outputs * (window // lanes) / _tuning.DOTS_VECTOR_RATE
        + outputs * (window % lanes) / _tuning.DOTS_SCALAR_RATE
        + outputs * _tuning.DOTS_OUTPUT_COST
        + weight
    )


@functools.lru_cache(maxsize=1024)
def channels_cost(spec: ConvSpec, channels_last: bool) -> float:
    """Seconds per sample by the cost model with the vectors along the output channels (:func:`_channels_kernel`):
    the windows' gather (a channels-last x's in runs along its channels, one a tap that meets x; a channels-first
    x's along the last axis, as :func:`cost` counts it), each pixel's two vector multiply-adds a window element and
    block of ``2 * lanes`` output channels (a group's channels padded to whole blocks) at ``DOTS_VECTOR_RATE``, the
    outputs that go through the block's buffer (all of a channels-first output's, a channels-last one's last partial
    block) at ``DOTS_CHANNEL_STORE_COST`` each, and the packed weight streamed for every block of four pixels where
    it passes ``DOTS_WEIGHT_CACHE_BYTES``. The weight's packing, once a call, is :func:`packing_cost`."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    window = cg_in * taps
    block = 2 * (_tuning.VECTOR_BYTES // _tuning.COST_ITEMSIZE)
    blocks = -(-cg_out // block)
    pixels = math.prod(spec.output_size)
    packed = float(_tuning.COST_ITEMSIZE) * groups * blocks * block * window
    weight = 0.0
    if packed > _tuning.DOTS_WEIGHT_CACHE_BYTES:
        weight = (pixels / PIXELS) * packed / _tuning.DOTS_WEIGHT_STREAM
    staged = groups * blocks * block if not channels_last else (groups * block if cg_out % block else 0)
    return (
        _gather_cost(spec, channels_last)
        + pixels * groups * blocks * window * 2 / _tuning.DOTS_VECTOR_RATE
        + pixels * staged * _tuning.DOTS_CHANNEL_STORE_COST
        + weight
    )


def _gather_cost(spec: ConvSpec, taps_first: bool) -> float:
    """Seconds per sample to gather the windows: the elements that meet x at ``DOTS_GATHER_RATE`` and each run of them
    (along the last axis; along the channels where ``taps_first``: :func:`_gather_last`) a ``DOTS_RUN_COST``. The
    windows a table copies (:func:`_table_pays`) are priced so too, above their time: rule 3's margin for
    ``jit_dots`` was set on estimates that run high, and with the table priced at its measured cost
    (0.65 ns an element) the planner took ``jit_dots`` at up to 3 times ``jit_direct``'s time
    (docs/design.md, "Output channels in jit_dots")."""
    axes = geometry.axes3(spec)
    groups, cg_in = spec.groups, spec.in_channels // spec.groups
    pixels = math.prod(spec.output_size)
    meet1, meet2, meet3 = geometry.mean_taps(axes)  # the taps that meet x, a mean per axis
    if taps_first:
        runs = pixels * groups * meet1 * meet2 * meet3
        elements = runs * cg_in
    else:
        runs = pixels * groups * cg_in * meet1 * meet2
        elements = runs * meet3
    return elements / _tuning.DOTS_GATHER_RATE + runs * _tuning.DOTS_RUN_COST


def _table_pays(spec: ConvSpec, taps_first: bool) -> bool:
    """Whether the kernels copy the windows whose taps all meet x through a table of offsets (:func:`_offsets`):
    where a window has at least ``DOTS_TABLE_MIN_RUNS`` runs (along the last axis, or along the channels where
    ``taps_first``) and at least ``DOTS_TABLE_MIN_SHARE`` of the outputs meet x with every tap. Elsewhere a
    compiled version without the table runs: depthwise and other windows of a few runs, and small maps mostly
    border, ran up to twice as long in the kernel with it (docs/design.md, "Output channels in jit_dots")."""
    axes = geometry.axes3(spec)
    cg_in = spec.in_channels // spec.groups
    runs = math.prod(axes.kernel) if taps_first else cg_in * axes.kernel[0] * axes.kernel[1]
    return runs >= _tuning.DOTS_TABLE_MIN_RUNS and geometry.whole_share(axes) >= _tuning.DOTS_TABLE_MIN_SHARE


def packing_cost(spec: ConvSpec) -> float:
    """Seconds to pack the weight for :func:`channels_cost`'s kernel, once a call: its padded blocks written at
    ``DOTS_PACK_RATE`` elements a second, and the compiled call's own ``DOTS_PACK_CALL_COST``."""
    groups = spec.groups
    block = 2 * (_tuning.VECTOR_BYTES // _tuning.COST_ITEMSIZE)
    padded = groups * -(-(spec.out_channels // groups) // block) * block * spec.in_channels // groups
    return padded * math.prod(spec.kernel_size) / _tuning.DOTS_PACK_RATE + _tuning.DOTS_PACK_CALL_COST


def along_channels(spec: ConvSpec, batch: int, channels_last: bool) -> bool:
    """Whether a call of ``batch`` samples runs with its vectors along the output channels (:func:`_channels_kernel`,
    the weight packed first) rather than along the windows (:func:`_kernel`): the cheaper by the cost model."""
    return channels_cost(spec, channels_last) * batch + packing_cost(spec) < cost(spec) * batch


def batch_cost(spec: ConvSpec, batch: int, channels_last: bool) -> float:
    """Seconds for a call of ``batch`` samples by the cost model, in the way :func:`along_channels` runs it."""
    if along_channels(spec, batch, channels_last):
        return channels_cost(spec, channels_last) * batch + packing_cost(spec)
    return cost(spec) * batch


class _Plan(NamedTuple):
    """What a call's kernel needs beyond its arrays (:func:`_plan`)."""

    xs: np.ndarray  # x's element strides (N, axis 1, 2, 3, channels)
    os: np.ndarray  # the output's, alike
    geo: np.ndarray  # geometry.span_tables
    spans: np.ndarray
    dims: np.ndarray  # groups, C_in/G, C_out/G, the batch's output pixels
    jobs: int  # blocks of four pixels
    work: float  # elements of work, for the team's hand-off (team.ranges)
    channels: bool  # the vectors along the output channels (:func:`along_channels`)
    offsets: (
        np.ndarray | None
    )  # each window element's offset in x, where the gathers copy through it (:func:`_offsets`)


@functools.lru_cache(maxsize=1024)
def _plan(
    spec: ConvSpec, batch: int, x_strides: tuple[int, ...], out_strides: tuple[int, ...], channels_last: bool,
    itemsize: int,
) -> _Plan:  # fmt: skip
    """A call's :class:`_Plan`, made once per call description, batch, byte strides of x and of the output, layout
    and itemsize. A job is a block of four of the batch's output pixels, in order across rows and samples (a
    small output, one pixel a sample, still fills whole blocks)."""
    groups = spec.groups
    geo, spans = geometry.span_tables(geometry.axes3(spec))
    pixels = batch * math.prod(spec.output_size)
    x_elements = geometry.element_strides(x_strides, itemsize, spec.ndim, channels_last)
    out_elements = geometry.element_strides(out_strides, itemsize, spec.ndim, channels_last)
    dims = (groups, spec.in_channels // groups, spec.out_channels // groups, pixels)
    xs, os_, dims_array = kernels.index_arrays(x_elements, out_elements, dims)
    channels = along_channels(spec, batch, channels_last)
    seconds = channels_cost(spec, channels_last) if channels else cost(spec)
    work = seconds * batch / _tuning.KERNEL_ELEMENT_SECONDS
    offsets = _offsets(spec, x_elements, channels and channels_last)
    return _Plan(xs, os_, geo, spans, dims_array, -(-pixels // PIXELS), work, channels, offsets)


def _offsets(spec: ConvSpec, x_elements: tuple[int, ...], taps_first: bool) -> np.ndarray | None:
    """Each window element's offset in x (element strides ``(N, axis 1, 2, 3, channels)``) from the element its
    first tap of its first channel reads, in the window's order: (channel, tap 1, 2, 3), or (tap 1, 2, 3, channel)
    where ``taps_first`` (:func:`_gather_last`'s): the kernels copy a window whose taps all meet x through it in
    one loop. None where that does not pay (:func:`_table_pays`): the gathers' loops over the runs, in a compiled
    version without the table."""
    if not _table_pays(spec, taps_first):
        return None
    axes = geometry.axes3(spec)
    return geometry.window_offsets(axes.kernel, axes.dilation, x_elements, spec.in_channels // spec.groups, taps_first)


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The convolution of a batched x in the caller's layout (any non-negative strides), into a fresh output in the
    same layout; the weight ``(C_out, C_in/G, *k)`` read as it is where it is C-contiguous."""
    batch = x.shape[0]
    out = geometry.empty_out(batch, spec.out_channels, spec.output_size, x.dtype, channels_last)
    if out.size == 0:
        return out
    w = np.ascontiguousarray(weight, dtype=x.dtype).reshape(-1)
    b = geometry.bias_by_group(bias, spec, x.dtype).reshape(-1)
    plan = _plan(spec, batch, x.strides, out.strides, channels_last, x.itemsize)
    x_flat, out_flat = kernels.flat(x), kernels.flat(out)
    xs, os_, geo, spans, dims, offsets = plan.xs, plan.os, plan.geo, plan.spans, plan.dims, plan.offsets
    if plan.channels:
        across = _channels_kernel()
        packed, blocks_bias = _pack_kernel()(w, b, dims, channels_last)

        def run(start: int, stop: int) -> None:
            across(
                x_flat, packed, blocks_bias, out_flat, xs, os_, geo, spans, offsets, dims, channels_last, start, stop
            )

    else:
        kernel = _kernel()

        def run(start: int, stop: int) -> None:
            kernel(x_flat, w, b, out_flat, xs, os_, geo, spans, offsets, dims, start, stop)

    team.ranges(run, plan.jobs, plan.work)
    return out


#: the kernel's callees, set by :func:`_kernel` (module globals: numba's disk cache keys a function by its pickled
#: closure, and an intrinsic pickles with an id new in every process; :mod:`.blocked` does the same)
_lanes_of: Any = None
_vfma: Any = None
_vload: Any = None
_vsplat: Any = None
_vsum: Any = None
_gather: Any = None
_gather_last: Any = None
_gather_table: Any = None


@functools.cache
def _kernel() -> Any:
    from . import simd

    global _lanes_of, _vfma, _vload, _vsplat, _vsum, _gather, _gather_last, _gather_table
    _lanes_of, _vfma, _vload, _vsplat, _vsum = simd.lanes, simd.vfma, simd.vload, simd.vsplat, simd.vsum
    vector_bytes = _tuning.VECTOR_BYTES  # 256 bits everywhere; in the closure, as .simd.width says

    def gather(x, col, base, xg, xs, geo, spans, o1, o2, o3, cg_in):  # type: ignore[no-untyped-def]
        # Output (o1, o2, o3)'s window of one group's channels (x from ``xg``) into ``col`` from ``base``, in the
        # weight row's order (channel, tap 1, 2, 3); zeros at the taps that fall in the padding.
        k1, k2, k3 = geo[0], geo[1], geo[2]
        t1a, t1b = spans[0, o1], spans[1, o1]
        t2a, t2b = spans[2, o2], spans[3, o2]
        t3a, t3b = spans[4, o3], spans[5, o3]
        taps = k1 * k2 * k3
        if t1b - t1a < k1 or t2b - t2a < k2 or t3b - t3a < k3:
            for i in range(cg_in * taps):
                col[base + i] = 0.0
        i1 = o1 * geo[3] - geo[9]
        i2 = o2 * geo[4] - geo[10]
        i3 = o3 * geo[5] - geo[11]
        step3 = geo[8] * xs[3]
        for ci in range(cg_in):
            xc = xg + ci * xs[4] + i1 * xs[1] + i2 * xs[2] + i3 * xs[3]
            cb = base + ci * taps
            for t1 in range(t1a, t1b):
                for t2 in range(t2a, t2b):
                    xr = xc + t1 * geo[6] * xs[1] + t2 * geo[7] * xs[2]
                    cr = cb + (t1 * k2 + t2) * k3
                    for t3 in range(t3a, t3b):
                        col[cr + t3] = x[xr + t3 * step3]

    _gather = kernels.numba_module().njit(inline="always", fastmath=True, nogil=True)(gather)

    def gather_table(x, col, base, xg, xs, geo, spans, offsets, o1, o2, o3):  # type: ignore[no-untyped-def]
        # Output (o1, o2, o3)'s window through its offsets' table (_offsets) where every tap meets x, one loop;
        # False (nothing copied) elsewhere.
        if spans[1, o1] - spans[0, o1] < geo[0] or spans[3, o2] - spans[2, o2] < geo[1]:
            return False
        if spans[5, o3] - spans[4, o3] < geo[2]:
            return False
        x0 = xg + (o1 * geo[3] - geo[9]) * xs[1] + (o2 * geo[4] - geo[10]) * xs[2] + (o3 * geo[5] - geo[11]) * xs[3]
        for i in range(offsets.size):
            col[base + i] = x[x0 + offsets[i]]
        return True

    _gather_table = kernels.numba_module().njit(inline="always", fastmath=True, nogil=True)(gather_table)

    def gather_last(x, col, base, xg, xs, geo, spans, o1, o2, o3, cg_in):  # type: ignore[no-untyped-def]
        # As gather, in the order (tap 1, 2, 3, channel): runs along x's channels.
        k1, k2, k3 = geo[0], geo[1], geo[2]
        t1a, t1b = spans[0, o1], spans[1, o1]
        t2a, t2b = spans[2, o2], spans[3, o2]
        t3a, t3b = spans[4, o3], spans[5, o3]
        taps = k1 * k2 * k3
        if t1b - t1a < k1 or t2b - t2a < k2 or t3b - t3a < k3:
            for i in range(cg_in * taps):
                col[base + i] = 0.0
        i1 = o1 * geo[3] - geo[9]
        i2 = o2 * geo[4] - geo[10]
        i3 = o3 * geo[5] - geo[11]
        xc = xs[4]
        for t1 in range(t1a, t1b):
            for t2 in range(t2a, t2b):
                xr = xg + (i1 + t1 * geo[6]) * xs[1] + (i2 + t2 * geo[7]) * xs[2] + i3 * xs[3]
                cr = base + (t1 * k2 + t2) * k3 * cg_in
                for t3 in range(t3a, t3b):
                    xt = xr + t3 * geo[8] * xs[3]
                    ct = cr + t3 * cg_in
                    for ci in range(cg_in):
                        col[ct + ci] = x[xt + ci * xc]

    _gather_last = kernels.numba_module().njit(inline="always", fastmath=True, nogil=True)(gather_last)

    def dots(x, w, bias, out, xs, os, geo, spans, offsets, dims, start, stop):  # type: ignore[no-untyped-def]
        # x flat from its first element, element strides xs (N, axis 1, 2, 3, channel); out alike (os); w flat
        # (C_out, C_in/G, k1, k2, k3); bias (C_out,). geo and spans: geometry.span_tables; dims as _Plan's. Job =
        # a block of four of the batch's output pixels in order (sample, o1, o2, o3), across rows and samples.
        groups, cg_in, cg_out = dims[0], dims[1], dims[2]
        o1n, o2n, o3n = geo[12], geo[13], geo[14]
        pixels = dims[3]  # the batch's output pixels, N * O1 * O2 * O3
        window = cg_in * geo[0] * geo[1] * geo[2]
        lane = _lanes_of(x)
        if lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("jit_dots' kernel was compiled for another vector width")
        vectors = window - window % lane
        row = -(-window // lane) * lane  # a pixel's window in the buffer, whole vectors apart
        col = np.zeros(4 * row, dtype=x.dtype)
        zero = np.zeros(1, dtype=x.dtype)
        bases = np.zeros(4, dtype=np.int64)  # the block's pixels' first elements in out
        for job in range(start, stop):
            count = min(4, pixels - 4 * job)
            for g in range(groups):
                for p in range(count):
                    rest = 4 * job + p
                    o3 = rest % o3n
                    rest = rest // o3n
                    o2 = rest % o2n
                    rest = rest // o2n
                    o1 = rest % o1n
                    n = rest // o1n
                    bases[p] = n * os[0] + o1 * os[1] + o2 * os[2] + o3 * os[3]
                    xg = n * xs[0] + g * cg_in * xs[4]
                    if offsets is None:  # a compiled version of its own (numba prunes the other branch)
                        _gather(x, col, p * row, xg, xs, geo, spans, o1, o2, o3, cg_in)
                    elif not _gather_table(x, col, p * row, xg, xs, geo, spans, offsets, o1, o2, o3):
                        _gather(x, col, p * row, xg, xs, geo, spans, o1, o2, o3, cg_in)
                c = g * cg_out
                while c < (g + 1) * cg_out:
                    pair = c + 1 < (g + 1) * cg_out
                    r0 = c * window
                    r1 = r0 + window if pair else r0  # one row left: the same row twice
                    a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = _vsplat(zero, 0)
                    for k in range(0, vectors, lane):
                        w0 = _vload(w, r0 + k)
                        w1 = _vload(w, r1 + k)
                        v = _vload(col, k)
                        a00 = _vfma(a00, v, w0)
                        a01 = _vfma(a01, v, w1)
                        v = _vload(col, row + k)
                        a10 = _vfma(a10, v, w0)
                        a11 = _vfma(a11, v, w1)
                        v = _vload(col, 2 * row + k)
                        a20 = _vfma(a20, v, w0)
                        a21 = _vfma(a21, v, w1)
                        v = _vload(col, 3 * row + k)
                        a30 = _vfma(a30, v, w0)
                        a31 = _vfma(a31, v, w1)
                    s00, s01, s10, s11 = _vsum(a00), _vsum(a01), _vsum(a10), _vsum(a11)
                    s20, s21, s30, s31 = _vsum(a20), _vsum(a21), _vsum(a30), _vsum(a31)
                    for k in range(vectors, window):
                        u0, u1 = w[r0 + k], w[r1 + k]
                        e = col[k]
                        s00 += e * u0
                        s01 += e * u1
                        e = col[row + k]
                        s10 += e * u0
                        s11 += e * u1
                        e = col[2 * row + k]
                        s20 += e * u0
                        s21 += e * u1
                        e = col[3 * row + k]
                        s30 += e * u0
                        s31 += e * u1
                    b0, b1, oc = bias[c], bias[c + 1] if pair else bias[c], os[4]
                    out[bases[0] + c * oc] = s00 + b0
                    if count > 1:
                        out[bases[1] + c * oc] = s10 + b0
                    if count > 2:
                        out[bases[2] + c * oc] = s20 + b0
                    if count > 3:
                        out[bases[3] + c * oc] = s30 + b0
                    if pair:
                        out[bases[0] + (c + 1) * oc] = s01 + b1
                        if count > 1:
                            out[bases[1] + (c + 1) * oc] = s11 + b1
                        if count > 2:
                            out[bases[2] + (c + 1) * oc] = s21 + b1
                        if count > 3:
                            out[bases[3] + (c + 1) * oc] = s31 + b1
                    c += 2

    return kernels.compile_kernel(dots)


@functools.cache
def _pack_kernel() -> Any:
    """The compiled packing of the weight for :func:`_channels_kernel`: ``(G, blocks, window, 2 * lanes)`` and the
    bias ``(G, blocks * 2 * lanes)``, zeros past a group's output channels; the window in the weight's order
    (channel, taps) for a channels-first x, (taps, channel) for a channels-last one (:func:`_gather_last`'s)."""
    _kernel()  # binds the intrinsics
    vector_bytes = _tuning.VECTOR_BYTES

    def pack(w, bias, dims, last):  # type: ignore[no-untyped-def]
        groups, cg_in, cg_out = dims[0], dims[1], dims[2]
        window = w.size // (groups * cg_out)
        taps = window // cg_in
        lane = _lanes_of(w)
        if lane * w.itemsize != vector_bytes:
            raise ValueError("jit_dots' kernel was compiled for another vector width")
        width = 2 * lane
        blocks = -(-cg_out // width)
        packed = np.zeros(groups * blocks * window * width, dtype=w.dtype)
        b = np.zeros(groups * blocks * width, dtype=w.dtype)
        for g in range(groups):
            for c in range(cg_out):
                cb, i = c // width, c % width
                at = (g * blocks + cb) * window * width + i
                row = (g * cg_out + c) * window
                if last:  # the window in the order (tap, channel): a channels-last x's runs along its channels
                    for ci in range(cg_in):
                        for t in range(taps):
                            packed[at + (t * cg_in + ci) * width] = w[row + ci * taps + t]
                else:
                    for k in range(window):
                        packed[at + k * width] = w[row + k]
                b[(g * blocks + cb) * width + i] = bias[g * cg_out + c]
        return packed, b

    return kernels.compile_kernel(pack)


_vstore: Any = None


@functools.cache
def _channels_kernel() -> Any:
    """The kernel with its vectors along the output channels: for each block of four pixels, their windows gathered
    as :func:`_kernel` gathers them (a channels-last x's in runs along its channels, :func:`_gather_last`), then for
    each block of ``2 * lanes`` output channels eight accumulators (four pixels times two vectors) start at the
    bias and take one multiply-add a window element each, with that element broadcast and the packed weight's two
    vectors (:func:`_pack_kernel`) loaded once for the four pixels. No sum of lanes: each output is summed in the
    window's order. A channels-last output's whole blocks of four pixels and whole blocks of channels are stored
    as vectors in place, the others through a small buffer."""
    from . import simd

    global _vstore
    _kernel()  # binds the intrinsics and the gathers
    _vstore = simd.vstore
    vector_bytes = _tuning.VECTOR_BYTES

    def channels(x, wt, bias, out, xs, os, geo, spans, offsets, dims, last, start, stop):  # type: ignore[no-untyped-def]
        # As _kernel's dots, with wt and bias packed (_pack_kernel) and last: x channels-last, its windows gathered
        # (tap, channel).
        groups, cg_in, cg_out = dims[0], dims[1], dims[2]
        o1n, o2n, o3n = geo[12], geo[13], geo[14]
        pixels = dims[3]
        window = cg_in * geo[0] * geo[1] * geo[2]
        lane = _lanes_of(x)
        if lane * x.itemsize != vector_bytes:
            raise ValueError("jit_dots' kernel was compiled for another vector width")
        width = 2 * lane
        blocks = -(-cg_out // width)
        col = np.zeros(4 * window, dtype=x.dtype)
        spare = np.empty(4 * width, dtype=x.dtype)
        bases = np.zeros(4, dtype=np.int64)
        oc = os[4]
        for job in range(start, stop):
            count = min(4, pixels - 4 * job)
            for g in range(groups):
                for p in range(count):
                    rest = 4 * job + p
                    o3 = rest % o3n
                    rest = rest // o3n
                    o2 = rest % o2n
                    rest = rest // o2n
                    o1 = rest % o1n
                    n = rest // o1n
                    bases[p] = n * os[0] + o1 * os[1] + o2 * os[2] + o3 * os[3]
                    xg = n * xs[0] + g * cg_in * xs[4]
                    if offsets is not None:  # a compiled version of its own (numba prunes this branch without)
                        if _gather_table(x, col, p * window, xg, xs, geo, spans, offsets, o1, o2, o3):
                            continue
                    if last:
                        _gather_last(x, col, p * window, xg, xs, geo, spans, o1, o2, o3, cg_in)
                    else:
                        _gather(x, col, p * window, xg, xs, geo, spans, o1, o2, o3, cg_in)
                for cb in range(blocks):
                    wb = (g * blocks + cb) * window * width
                    bb = (g * blocks + cb) * width
                    a01 = a11 = a21 = a31 = _vload(bias, bb + lane)
                    a00 = a10 = a20 = a30 = _vload(bias, bb)
                    for k in range(window):
                        w0 = _vload(wt, wb + k * width)
                        w1 = _vload(wt, wb + k * width + lane)
                        v = _vsplat(col, k)
                        a00 = _vfma(a00, v, w0)
                        a01 = _vfma(a01, v, w1)
                        v = _vsplat(col, window + k)
                        a10 = _vfma(a10, v, w0)
                        a11 = _vfma(a11, v, w1)
                        v = _vsplat(col, 2 * window + k)
                        a20 = _vfma(a20, v, w0)
                        a21 = _vfma(a21, v, w1)
                        v = _vsplat(col, 3 * window + k)
                        a30 = _vfma(a30, v, w0)
                        a31 = _vfma(a31, v, w1)
                    c0 = g * cg_out + cb * width
                    valid = min(width, cg_out - cb * width)
                    if oc == 1 and valid == width and count == 4:
                        _vstore(out, bases[0] + c0, a00)
                        _vstore(out, bases[0] + c0 + lane, a01)
                        _vstore(out, bases[1] + c0, a10)
                        _vstore(out, bases[1] + c0 + lane, a11)
                        _vstore(out, bases[2] + c0, a20)
                        _vstore(out, bases[2] + c0 + lane, a21)
                        _vstore(out, bases[3] + c0, a30)
                        _vstore(out, bases[3] + c0 + lane, a31)
                    else:
                        _vstore(spare, 0, a00)
                        _vstore(spare, lane, a01)
                        _vstore(spare, width, a10)
                        _vstore(spare, width + lane, a11)
                        _vstore(spare, 2 * width, a20)
                        _vstore(spare, 2 * width + lane, a21)
                        _vstore(spare, 3 * width, a30)
                        _vstore(spare, 3 * width + lane, a31)
                        for p in range(count):
                            ob = bases[p] + c0 * oc
                            for i in range(valid):
                                out[ob + i * oc] = spare[p * width + i]

    return kernels.compile_kernel(channels)
