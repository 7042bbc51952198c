"""Depthwise convolutions and transposed convolutions summed along the channels (``jit_depthwise``).

A depthwise layer (one input and one output channel per group: Keras' ``DepthwiseConv2D``, MobileNet's 3x3 layers, a
depthwise upsampling) multiplies each channel by its own kernel, so there is no product to hand to BLAS, and
``jit_direct``'s planes (one channel's whole plane at a time) read and write a channels-last array with a stride of
the channel count. Here each output pixel is summed along the channels instead: for every (tap, input pixel) pair
that reaches it, one multiply-add of the tap's weights (``w (K, C)``, tap-major, made once a call) and the input
pixel's channel vector, vectorised over the channels where they are contiguous; then the pixel's vector is written
once. Which pairs reach an output comes from per-axis tables (an output ``o`` of a convolution reads input
``o*s + t*d - lo``, :func:`.geometry.forward_tables`; a transposed convolution's output ``o`` receives input ``j``
where ``o = j*s + t*d - lo``, :func:`.geometry.transposed_tables`), so the padding, the stride and the dilation cost
nothing inside the loops, and no zero is multiplied. Channels-first, the same kernel reads the channels a plane
apart: the planner ranks it there for planes of a few pixels, where ``jit_direct``'s per-plane set-up dominates.

A channels-first *convolution* (or a transposed one at stride 1, as its flipped kernel's convolution) of at least
a vector's lanes of channels goes another way (:func:`run_staged`): a
job (a sample's block of a vector's lanes of channels) copies the block's planes into a channels-last tile of
the padded input (zeros where the padding is, by lanes x lanes transposes in registers), sums each output pixel
as the bias plus one vector multiply-add a tap along the block's channels, eight output pixels at a time with
each weight vector loaded once for the eight, and writes the pixels back into the planes by transposes. Any
stride and dilation read the tile at their offsets, so no phase is copied and no zero multiplied outside the
padding; it is oneDNN's and XNNPACK's layout for depthwise layers, made a job at a time in the cache.

Each output pixel's sum runs in the same order whichever thread computes it (the bias, then the pairs in the
tables' order, two at a time where the channels are contiguous, so one layout's numbers may differ from the
other's by rounding), so the numbers do not depend on the thread count. The team takes blocks of
``DEPTHWISE_JOB_PIXELS`` output pixels along the last axis, of every (sample, first axis, second axis).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import _tuning
from ..._geometry import overlap
from ...spec import ConvSpec
from . import geometry, kernels, team


def fits(spec: ConvSpec) -> bool:
    """Whether ``jit_depthwise`` computes a call: one input and one output channel per group."""
    return spec.groups == spec.in_channels == spec.out_channels


@functools.lru_cache(maxsize=64)
def _tables(axes: geometry.Axes3, transposed: bool) -> tuple[np.ndarray, ...]:
    """The three axes' ``(count, taps, inputs)`` tables, made once per geometry (no kernel writes them; they stay
    writeable arrays, as :mod:`.kernels`' tables do, so that the kernel keeps one compiled signature)."""
    make = geometry.transposed_tables if transposed else geometry.forward_tables
    return tuple(table for n, k, s, d, lo, o in zip(*axes) for table in make(n, k, s, d, lo, o))


@functools.lru_cache(maxsize=1024)
def pairs(spec: ConvSpec) -> int:
    """The (output pixel, tap) pairs of one sample and channel: the product over the axes of each axis' pairs,
    counted per tap (:func:`tconv._geometry.overlap`) without building the tables (once per spec)."""
    total = 1
    for n, k, s, d, lo, o in zip(*geometry.axes3(spec)):
        if spec.transposed:  # tap t lands input j at j*s + t*d - lo
            total *= sum(max(0, j1 - j0) for j0, j1, _ in (overlap(t * d - lo, s, n, o) for t in range(k)))
        else:  # output o reads input o*s + t*d - lo
            total *= sum(max(0, o1 - o0) for o0, o1, _ in (overlap(t * d - lo, s, o, n) for t in range(k)))
    return total


def tables_fit(spec: ConvSpec) -> bool:
    """Whether the call's tables (two of at most ``O x K`` entries an axis) stay within ``DEPTHWISE_TABLE_MAX``
    entries: a long 1-D call's would outgrow its own output; the planner does not rank such calls."""
    axes = geometry.axes3(spec)
    return sum(o * k for o, k in zip(axes.size_out, axes.kernel)) <= _tuning.DEPTHWISE_TABLE_MAX


def cost(spec: ConvSpec, channels_last: bool = False) -> float | None:
    """Seconds per sample: ``DEPTHWISE_PAIR_COST`` a (output pixel, tap) pair (the loop's set-up) plus its
    channels at ``DEPTHWISE_RATE`` multiply-adds a second, and the output written once at ``COLUMN_STREAM``.
    Channels-first, the channels are a plane apart: the estimate grows by one for every
    ``DEPTHWISE_FIRST_PIXELS`` pixels of the larger plane (each channel's element then a cache line of its own;
    on planes of a few pixels the sum along the channels still beats ``jit_direct``'s planes, whose set-up is
    per plane). None (not ranked) where the tables outgrow ``DEPTHWISE_TABLE_MAX`` (:func:`tables_fit`)."""
    if not fits(spec):
        return None
    if not channels_last and staged_fits(spec):
        return staged_cost(spec)
    if not tables_fit(spec):
        return None
    channels = spec.in_channels
    output = float(_tuning.COST_ITEMSIZE) * channels * math.prod(spec.output_size)
    estimate = pairs(spec) * (_tuning.DEPTHWISE_PAIR_COST + channels / _tuning.DEPTHWISE_RATE)
    estimate += output / _tuning.COLUMN_STREAM
    if not channels_last:
        plane = max(math.prod(spec.input_size), math.prod(spec.output_size))
        estimate *= 1.0 + plane / _tuning.DEPTHWISE_FIRST_PIXELS
    return estimate


def run(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The call (a convolution or a transposed convolution, as ``spec`` says) of a batched x in the caller's layout,
    its result in the same layout. The weight is ``(C, 1, *k)`` either way."""
    if not channels_last and staged_fits(spec, x.dtype.itemsize):
        return run_staged(x, weight, bias, spec)
    batch, channels = x.shape[0], spec.in_channels
    out = geometry.empty_out(batch, channels, spec.output_size, x.dtype, channels_last)
    if out.size == 0:
        return out
    block = _tuning.DEPTHWISE_JOB_PIXELS
    x_steps, out_steps, kernel_size, sizes, jobs, work = _layout(spec, channels_last, batch, block)
    if x.flags.c_contiguous:
        x_flat = x.reshape(-1)
    else:  # a strided view (geometry.kernel_ready keeps such views): as (N, n1, n2, n3, C), its steps and span
        size_in = geometry.axes3(spec).size_in
        if channels_last:
            x5 = x.reshape(batch, *size_in, channels)
        else:
            x5 = geometry.moved(x.reshape(batch, channels, *size_in), 1, -1)
        x_steps = np.array([st // x.dtype.itemsize for st in x5.strides], dtype=np.int64)
        x_flat = kernels.flat(x5)
    taps = math.prod(spec.kernel_size)
    w_taps = np.ascontiguousarray(np.asarray(weight, dtype=x.dtype).reshape(channels, taps).T).reshape(-1)
    b = np.zeros(channels, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype).reshape(-1)
    tables = _tables(geometry.axes3(spec), spec.transposed)
    kernel = _kernel()
    out_flat = out.reshape(-1)
    team.ranges(
        lambda start, stop: kernel(
            x_flat, x_steps, w_taps, b, out_flat, out_steps, kernel_size, sizes, block, *tables, start, stop
        ),
        jobs,
        work,
    )
    return out


@functools.lru_cache(maxsize=256)
def _layout(
    spec: ConvSpec, channels_last: bool, batch: int, block: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The kernel's numbers for one call description, made once: the element steps of a contiguous input and of
    the output along (sample, n1, n2, n3, channel), the kernel's size, the sizes ``(O1, O2, O3, C)``, the jobs
    (blocks of ``block`` outputs along the last axis) and the work (elements multiplied, one thread's time by
    ``KERNEL_ELEMENT_SECONDS``). Arrays no caller writes."""
    axes = geometry.axes3(spec)
    channels = spec.in_channels
    o1, o2, o3 = axes.size_out
    x_steps = _pixel_steps((batch, *axes.size_in), channels, channels_last)
    out_steps = _pixel_steps((batch, *axes.size_out), channels, channels_last)
    kernel_size = np.array(axes.kernel, dtype=np.int64)
    sizes = np.array([o1, o2, o3, channels], dtype=np.int64)
    jobs = batch * o1 * o2 * -(-o3 // block)
    return x_steps, out_steps, kernel_size, sizes, jobs, batch * pairs(spec) * channels


def _pixel_steps(pixels: tuple[int, ...], channels: int, channels_last: bool) -> np.ndarray:
    """Element steps along ``(n, p1, p2, p3, c)`` of a contiguous ``(n, p1, p2, p3, c)`` array (channels last) or
    ``(n, c, p1, p2, p3)`` array (channels first)."""
    _, p1, p2, p3 = pixels
    if channels_last:
        return np.array([p1 * p2 * p3 * channels, p2 * p3 * channels, p3 * channels, channels, 1], dtype=np.int64)
    plane = p1 * p2 * p3
    return np.array([channels * plane, p2 * p3, p3, 1, plane], dtype=np.int64)


@functools.cache
def _kernel() -> Any:
    def depthwise(x, xs, w, bias, out, os, kernel, sizes, block, c1, t1, j1, c2, t2, j2, c3, t3, j3, start, stop):  # type: ignore[no-untyped-def]
        # x flat, pixel (n, j1, j2, j3) channel c at n*xs[0] + j1*xs[1] + j2*xs[2] + j3*xs[3] + c*xs[4]; w flat
        # (K1, K2, K3, C) tap-major; out flat, laid out by os like x; sizes (O1, O2, O3, C). Job = (sample, first
        # output index, second, block of ``block`` outputs along the last axis). Per output pixel: the bias, then
        # for every (tap, input) pair the tables give one multiply-add along the channels (unsigned indices, so
        # that the loop vectorises with no wrap-around test), then the pixel written. Every offset is a sum of
        # non-negative terms (the tables' inputs lie in [0, n)), so the unsigned casts never wrap.
        o1n, o2n, o3n, channels = sizes[0], sizes[1], sizes[2], sizes[3]
        blocks = (o3n + block - 1) // block
        k2, k3 = kernel[1], kernel[2]
        width = np.uint64(channels)
        x_unit, out_unit = xs[4] == 1, os[4] == 1
        x_c, out_c = np.uint64(xs[4]), np.uint64(os[4])
        acc = np.empty(channels, dtype=out.dtype)
        for job in range(start, stop):
            first = (job % blocks) * block
            row = job // blocks
            o2 = row % o2n
            o1 = (row // o2n) % o1n
            n = row // (o2n * o1n)
            for o3 in range(first, min(o3n, first + block)):
                for c in range(width):
                    acc[c] = bias[c]
                for m1 in range(c1[o1]):
                    ta = t1[o1, m1]
                    xa = n * xs[0] + j1[o1, m1] * xs[1]
                    for m2 in range(c2[o2]):
                        tb = ta * k2 + t2[o2, m2]
                        xb = xa + j2[o2, m2] * xs[2]
                        count = c3[o3]
                        m3 = 0
                        while x_unit and m3 + 2 <= count:  # two pairs a pass: half the passes over acc
                            w0 = np.uint64((tb * k3 + t3[o3, m3]) * channels)
                            x0 = np.uint64(xb + j3[o3, m3] * xs[3])
                            w1 = np.uint64((tb * k3 + t3[o3, m3 + 1]) * channels)
                            x1 = np.uint64(xb + j3[o3, m3 + 1] * xs[3])
                            for c in range(width):
                                acc[c] += w[w0 + c] * x[x0 + c] + w[w1 + c] * x[x1 + c]
                            m3 += 2
                        while m3 < count:
                            w0 = np.uint64((tb * k3 + t3[o3, m3]) * channels)
                            x0 = np.uint64(xb + j3[o3, m3] * xs[3])
                            if x_unit:
                                for c in range(width):
                                    acc[c] += w[w0 + c] * x[x0 + c]
                            else:
                                for c in range(width):
                                    acc[c] += w[w0 + c] * x[x0 + c * x_c]
                            m3 += 1
                o0 = np.uint64(n * os[0] + o1 * os[1] + o2 * os[2] + o3 * os[3])
                if out_unit:
                    for c in range(width):
                        out[o0 + c] = acc[c]
                else:
                    for c in range(width):
                        out[o0 + c * out_c] = acc[c]

    # in order: each output's sum must not depend on how the compiler splits it (nor on the thread that runs it)
    return kernels.compile_kernel(depthwise, kernels.FASTMATH_IN_ORDER)


# --- channels-first convolutions through a channels-last tile -----------------------------------------------


def staged_fits(spec: ConvSpec, itemsize: int = _tuning.COST_ITEMSIZE) -> bool:
    """Whether a channels-first call runs through :func:`_staged_kernel`: a forward convolution, or a transposed
    one at stride 1 (:func:`_staged_axes`), of at least a vector's lanes of channels (fewer would fill the tile
    element by element, for a fraction of each vector: (8, 3, 98, 98) 2x2 stride 2 ran 2.2x ``jit_direct``'s
    time) whose padded input tile holds at most ``DEPTHWISE_TILE_MAX_BYTES``."""
    if not fits(spec) or spec.in_channels < _tuning.VECTOR_BYTES // itemsize:
        return False
    axes = _staged_axes(spec)
    return axes is not None and _staged_numbers(axes, itemsize)[0] <= _tuning.DEPTHWISE_TILE_MAX_BYTES


@functools.lru_cache(maxsize=256)
def _staged_axes(spec: ConvSpec) -> geometry.Axes3 | None:
    """The forward convolution the tile kernel computes for ``spec``: its own axes, or for a transposed call at
    stride 1 (``o = j + t*d - lo``) the convolution of x with the flipped kernel (``o`` reads ``j = o + u*d -
    ((k-1)*d - lo)``, ``u = k-1-t``), its low padding ``(k-1)*d - lo`` (negative where the crop is wider: the tile
    then starts inside x); None for a strided transposed call."""
    axes = geometry.axes3(spec)
    if not spec.transposed:
        return axes
    if any(s != 1 for s in axes.stride):
        return None
    low = tuple((k - 1) * d - lo for k, d, lo in zip(axes.kernel, axes.dilation, axes.low))
    return axes._replace(low=low)


@functools.lru_cache(maxsize=256)
def _staged_numbers(axes: geometry.Axes3, itemsize: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The tile's bytes, the kernel's sizes (``n``, ``O``, ``P`` the tile's padded input, stride, low padding,
    3 each, and the first and last input element copied along each axis) and each tap's offset in the tile."""
    lanes = _tuning.VECTOR_BYTES // itemsize
    reach = zip(axes.size_out, axes.kernel, axes.stride, axes.dilation)
    padded = [(o - 1) * s + (k - 1) * d + 1 for o, k, s, d in reach]
    first = [max(0, -lo) for lo in axes.low]
    stop = [max(f, min(n, p - lo)) for f, n, p, lo in zip(first, axes.size_in, padded, axes.low)]
    numbers = np.array([*axes.size_in, *axes.size_out, *padded, *axes.stride, *axes.low, *first, *stop], dtype=np.int64)
    p1, p2, p3 = padded
    d1, d2, d3 = axes.dilation
    k1, k2, k3 = axes.kernel
    offsets = np.array(
        [((t1 * d1 * p2 + t2 * d2) * p3 + t3 * d3) * lanes for t1 in range(k1) for t2 in range(k2) for t3 in range(k3)],
        dtype=np.int64,
    )
    return p1 * p2 * p3 * lanes * itemsize, numbers, offsets


def staged_cost(spec: ConvSpec) -> float:
    """Seconds per sample of :func:`_staged_kernel`: its vector multiply-adds (a vector's lanes of channels, every
    output pixel and tap) at ``DEPTHWISE_STAGED_RATE``, its copies in and out (the tile and the output, each
    element once) at ``DEPTHWISE_STAGED_STREAM`` bytes a second, and ``DEPTHWISE_STAGED_JOB`` a block of
    channels."""
    lanes = _tuning.VECTOR_BYTES // _tuning.COST_ITEMSIZE
    blocks = -(-spec.in_channels // lanes)
    axes = _staged_axes(spec)
    assert axes is not None  # the callers ask staged_fits first
    tile_bytes = _staged_numbers(axes, _tuning.COST_ITEMSIZE)[0]
    pixels = math.prod(spec.output_size)
    multiply_adds = blocks * pixels * math.prod(spec.kernel_size)
    copied = blocks * tile_bytes + _tuning.COST_ITEMSIZE * spec.in_channels * pixels
    streamed = copied / _tuning.DEPTHWISE_STAGED_STREAM
    return multiply_adds / _tuning.DEPTHWISE_STAGED_RATE + streamed + blocks * _tuning.DEPTHWISE_STAGED_JOB


def run_staged(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """A channels-first depthwise convolution (or transposed convolution at stride 1) of a batched x: each job
    (sample, a vector's lanes of channels)
    copies its channels' planes into a channels-last tile with the padding as zeros, sums every output pixel's
    taps as vector multiply-adds along the channels, and writes the pixels back into the planes."""
    batch, channels = x.shape[0], spec.in_channels
    out = geometry.empty_out(batch, channels, spec.output_size, x.dtype, False)
    if out.size == 0:
        return out
    itemsize = x.dtype.itemsize
    lanes = _tuning.VECTOR_BYTES // itemsize
    axes = _staged_axes(spec)
    assert axes is not None  # the callers ask staged_fits first
    _, numbers, offsets = _staged_numbers(axes, itemsize)
    padded_channels = -(-channels // lanes) * lanes
    taps = math.prod(spec.kernel_size)
    w = np.asarray(weight, dtype=x.dtype)
    if spec.transposed:  # the flipped kernel's convolution (_staged_axes)
        w = np.flip(w, axis=tuple(range(2, w.ndim)))
    w_taps = np.zeros((taps, padded_channels), dtype=x.dtype)
    w_taps[:, :channels] = w.reshape(channels, taps).T
    b = np.zeros(padded_channels, dtype=x.dtype)
    if bias is not None:
        b[:channels] = np.asarray(bias, dtype=x.dtype).reshape(-1)
    x_flat = np.ascontiguousarray(x).reshape(-1)
    out_flat = out.reshape(-1)
    kernel = _staged_kernel()
    jobs = batch * (padded_channels // lanes)
    work = float(batch * padded_channels * math.prod(spec.output_size) * taps)
    team.ranges(
        lambda start, stop: kernel(x_flat, w_taps.reshape(-1), b, out_flat, channels, numbers, offsets, start, stop),
        jobs,
        work,
    )
    return out


# The compiled kernel calls the SIMD operations as module globals (numba's cache keys a kernel by its closure, as
# :mod:`.direct_conv` explains); :func:`_staged_kernel` binds them.
_lanes: Any = None
_vload: Any = None
_vstore: Any = None
_vfma: Any = None
_vtranspose: Any = None


@functools.cache
def _staged_kernel() -> Any:
    from . import simd

    global _lanes, _vload, _vstore, _vfma, _vtranspose
    _lanes, _vload, _vstore, _vfma, _vtranspose = simd.lanes, simd.vload, simd.vstore, simd.vfma, simd.vtranspose

    def staged(x, w, bias, out, channels, numbers, offsets, start, stop):  # type: ignore[no-untyped-def]
        # x flat (N, C, n1, n2, n3); w flat (K, Cp) tap-major, its channels padded with zeros to whole vectors
        # (Cp), bias (Cp) likewise; out flat (N, C, O1, O2, O3). numbers: n (3), O (3), P (3: the tile's
        # padded input, (O-1)*s + (k-1)*d + 1 an axis), s (3), low padding (3), the input rows copied [a, b)
        # (3 + 3). offsets: each tap's place in the tile. A job is (sample, block of ``lane`` channels): the
        # block's planes go into the tile (P1, P2, P3, lane), by lane x lane transposes where a run has a whole
        # block (its last block overlapping the one before), rows shorter than that a whole slab (n2 x n3, one run
        # in x) a block of pixels at a time, each pixel's vector then stored in place; the padding is zero from
        # the tile's allocation (the
        # rows copied are the same every job). Then each output pixel is the bias plus every tap's weight vector
        # times the tile's vector, in the taps' order, eight (else four, else one) pixels along the last axis at
        # a time, each weight vector loaded once for all of them; the pixels' vectors gather in ``outs`` and go
        # to the planes transposed, ``lane`` pixels at a time (the last ones of a job element by element).
        lane = _lanes(x)
        n1, n2, n3 = numbers[0], numbers[1], numbers[2]
        o1n, o2n, o3n = numbers[3], numbers[4], numbers[5]
        p2, p3 = numbers[7], numbers[8]
        s1, s2, s3 = numbers[9], numbers[10], numbers[11]
        lo1, lo2, lo3 = numbers[12], numbers[13], numbers[14]
        a1, a2, a3 = numbers[15], numbers[16], numbers[17]
        b1, b2, b3 = numbers[18], numbers[19], numbers[20]
        plane_in = n1 * n2 * n3
        plane_out = o1n * o2n * o3n
        padded_channels = bias.size
        blocks = padded_channels // lane
        taps = offsets.size
        step = s3 * lane
        tile = np.zeros(numbers[6] * p2 * p3 * lane, dtype=x.dtype)
        outs = np.empty((lane + 8) * lane, dtype=x.dtype)
        pixels = np.empty(lane * lane, dtype=x.dtype)
        for job in range(start, stop):
            n = job // blocks
            c0 = (job % blocks) * lane
            width = min(lane, channels - c0)
            x_base = (n * channels + c0) * plane_in
            short = width == lane and b3 - a3 < lane and n2 * n3 >= lane  # rows shorter than a block
            for j1 in range(a1, b1):
                if short:  # the slab's pixels (all its rows, one run) a block at a time, each pixel then placed
                    slab = n2 * n3
                    src = x_base + j1 * slab
                    f0 = 0
                    while f0 < slab:
                        f0 = min(f0, slab - lane)  # the last block overlapping the one before
                        _vtranspose(pixels, 0, lane, x, src + f0, plane_in)
                        for f in range(f0, f0 + lane):
                            j2 = f // n3
                            j3 = f - j2 * n3
                            if a2 <= j2 < b2 and a3 <= j3 < b3:
                                at = (((j1 + lo1) * p2 + j2 + lo2) * p3 + lo3 + j3) * lane
                                _vstore(tile, at, _vload(pixels, (f - f0) * lane))
                        f0 += lane
                    continue
                for j2 in range(a2, b2):
                    src = x_base + (j1 * n2 + j2) * n3
                    dst = (((j1 + lo1) * p2 + j2 + lo2) * p3 + lo3) * lane
                    j3 = a3
                    if width == lane and b3 - a3 >= lane:
                        while j3 + lane <= b3:
                            _vtranspose(tile, dst + j3 * lane, lane, x, src + j3, plane_in)
                            j3 += lane
                        if j3 < b3:  # the run's last pixels: the last whole block, overlapping the one before
                            _vtranspose(tile, dst + (b3 - lane) * lane, lane, x, src + b3 - lane, plane_in)
                            j3 = b3
                    while j3 < b3:
                        for c in range(width):
                            tile[dst + j3 * lane + c] = x[src + c * plane_in + j3]
                        j3 += 1
            out_base = (n * channels + c0) * plane_out
            slot = 0  # pixels waiting in outs
            written = 0  # pixels of the planes written
            for q1 in range(o1n):
                for q2 in range(o2n):
                    row = ((q1 * s1 * p2) + q2 * s2) * p3 * lane
                    q3 = 0
                    while q3 < o3n:
                        at = row + q3 * step
                        if q3 + 8 <= o3n:
                            acc0 = _vload(bias, c0)
                            acc1 = acc0
                            acc2 = acc0
                            acc3 = acc0
                            acc4 = acc0
                            acc5 = acc0
                            acc6 = acc0
                            acc7 = acc0
                            for t in range(taps):
                                wv = _vload(w, t * padded_channels + c0)
                                i = at + offsets[t]
                                acc0 = _vfma(acc0, wv, _vload(tile, i))
                                acc1 = _vfma(acc1, wv, _vload(tile, i + step))
                                acc2 = _vfma(acc2, wv, _vload(tile, i + 2 * step))
                                acc3 = _vfma(acc3, wv, _vload(tile, i + 3 * step))
                                acc4 = _vfma(acc4, wv, _vload(tile, i + 4 * step))
                                acc5 = _vfma(acc5, wv, _vload(tile, i + 5 * step))
                                acc6 = _vfma(acc6, wv, _vload(tile, i + 6 * step))
                                acc7 = _vfma(acc7, wv, _vload(tile, i + 7 * step))
                            _vstore(outs, slot * lane, acc0)
                            _vstore(outs, (slot + 1) * lane, acc1)
                            _vstore(outs, (slot + 2) * lane, acc2)
                            _vstore(outs, (slot + 3) * lane, acc3)
                            _vstore(outs, (slot + 4) * lane, acc4)
                            _vstore(outs, (slot + 5) * lane, acc5)
                            _vstore(outs, (slot + 6) * lane, acc6)
                            _vstore(outs, (slot + 7) * lane, acc7)
                            slot += 8
                            q3 += 8
                        elif q3 + 4 <= o3n:
                            acc0 = _vload(bias, c0)
                            acc1 = acc0
                            acc2 = acc0
                            acc3 = acc0
                            for t in range(taps):
                                wv = _vload(w, t * padded_channels + c0)
                                i = at + offsets[t]
                                acc0 = _vfma(acc0, wv, _vload(tile, i))
                                acc1 = _vfma(acc1, wv, _vload(tile, i + step))
                                acc2 = _vfma(acc2, wv, _vload(tile, i + 2 * step))
                                acc3 = _vfma(acc3, wv, _vload(tile, i + 3 * step))
                            _vstore(outs, slot * lane, acc0)
                            _vstore(outs, (slot + 1) * lane, acc1)
                            _vstore(outs, (slot + 2) * lane, acc2)
                            _vstore(outs, (slot + 3) * lane, acc3)
                            slot += 4
                            q3 += 4
                        else:
                            acc0 = _vload(bias, c0)
                            for t in range(taps):
                                acc0 = _vfma(acc0, _vload(w, t * padded_channels + c0), _vload(tile, at + offsets[t]))
                            _vstore(outs, slot * lane, acc0)
                            slot += 1
                            q3 += 1
                        while slot >= lane:  # whole blocks of pixels: into the planes, the rest moved up
                            if width == lane:
                                _vtranspose(out, out_base + written, plane_out, outs, 0, lane)
                            else:
                                for r in range(lane):
                                    for c in range(width):
                                        out[out_base + c * plane_out + written + r] = outs[r * lane + c]
                            written += lane
                            slot -= lane
                            for r in range(slot):
                                _vstore(outs, r * lane, _vload(outs, (lane + r) * lane))
            for r in range(slot):
                for c in range(width):
                    out[out_base + c * plane_out + written + r] = outs[r * lane + c]

    return kernels.compile_kernel(staged, kernels.FASTMATH_IN_ORDER)


__all__ = ["cost", "fits", "pairs", "run", "run_staged", "staged_cost", "staged_fits", "tables_fit"]
