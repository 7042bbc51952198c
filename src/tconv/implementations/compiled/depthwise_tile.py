"""Channels-first depthwise convolutions and transposed convolutions through a channels-last tile (part of
``jit_depthwise``, :mod:`.depthwise`).

A channels-first *convolution* of at least a vector's lanes of channels: a job (a sample's block of a vector's
lanes of channels) copies the block's planes into a channels-last tile of the padded input (zeros where the
padding is, by lanes x lanes transposes in registers), sums each output pixel as the bias plus one vector
multiply-add a tap along the block's channels, eight output pixels at a time with each weight vector loaded once
for the eight, and writes the pixels back into the planes by transposes. Any stride and dilation read the tile at
their offsets, so no phase is copied and no zero multiplied outside the padding; it is oneDNN's and XNNPACK's
layout for depthwise layers, made a job at a time in the cache. A transposed one at stride 1 is its flipped
kernel's convolution (:func:`staged_axes`); a strided one runs by its output's phases on the same tile
(:func:`_phased_kernel`). Each output is summed in the taps' order whichever thread runs it.

The module is long because its two kernels (a convolution's and a strided transposed one's) share the tile's
copies in and out, and each keeps its tables' arithmetic next to it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, team


def fits(spec: ConvSpec, itemsize: int = _tuning.COST_ITEMSIZE) -> bool:
    """Whether a channels-first depthwise call of rank 3 or less runs through the tile: a convolution or a
    transposed one at stride 1 (:func:`_staged_kernel`, :func:`staged_axes`), or a strided transposed one
    (:func:`_phased_kernel`), of at least a vector's lanes of channels of ``itemsize`` bytes and of
    ``COST_ITEMSIZE`` (fewer would fill the tile element by element, for a fraction of each vector: (8, 3, 98, 98)
    2x2 stride 2 ran 2.2x ``jit_direct``'s time; both, so that the planner prices the kernel that runs), whose
    padded input tile holds at most ``DEPTHWISE_TILE_MAX_BYTES``."""
    depthwise = spec.groups == spec.in_channels == spec.out_channels
    lanes = _tuning.VECTOR_BYTES // min(itemsize, _tuning.COST_ITEMSIZE)
    if not depthwise or spec.ndim > 3 or spec.in_channels < lanes:
        return False
    if _phased(spec):
        return _phase_numbers(geometry.axes3(spec), itemsize)[0] <= _tuning.DEPTHWISE_TILE_MAX_BYTES
    axes = staged_axes(spec)
    return axes is not None and _staged_numbers(axes, itemsize)[0] <= _tuning.DEPTHWISE_TILE_MAX_BYTES


def _phased(spec: ConvSpec) -> bool:
    """Whether a call runs through :func:`_phased_kernel`: a strided transposed one (its crop is never negative:
    :class:`~tconv.spec.ConvSpec` refuses negative padding, and the phases' arithmetic counts on it)."""
    return spec.transposed and any(s != 1 for s in spec.stride)


@functools.lru_cache(maxsize=256)
def _phase_numbers(axes: geometry.Axes3, itemsize: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_phased_kernel`'s numbers: the tile's bytes; ``n``, ``O``, ``P`` (the tile), ``L`` (where x's first
    element lies in it), ``s``, the low crop and the input rows copied, 3 each; and for each combination of the
    output's phases along the three axes (``r = (o + lo) mod s``), its taps' count, their offsets in the tile
    from the output's row ``q = (o + lo) // s`` and their places in the weight. Output ``o`` receives
    ``x[j] * w[t]`` where ``o + lo = j*s + t*d``: for phase ``r`` the taps with ``t*d = r (mod s)``, from
    ``j = q - (t*d - r) / s``, at the tile's ``j + L`` (``L = ceil((k-1)*d / s)``, so that no offset is negative)."""
    lanes = _tuning.VECTOR_BYTES // itemsize
    n, k, s, d, lo, o = axes
    low = [-(-(kk - 1) * dd // ss) for kk, dd, ss in zip(k, d, s)]
    rows = [(oo - 1 + ll) // ss for oo, ll, ss in zip(o, lo, s)]  # the last q
    padded = [max(0, q + ll + 1) for q, ll in zip(rows, low)]  # none where there is no output
    stop = [max(0, min(nn, pp - ll)) for nn, pp, ll in zip(n, padded, low)]
    steps = [padded[1] * padded[2] * lanes, padded[2] * lanes, lanes]
    per_axis = []  # for each axis and phase: (tap, offset along the axis in elements)
    for a in range(3):
        phases = []
        for r in range(s[a]):
            taps = [t for t in range(k[a]) if (t * d[a] - r) % s[a] == 0]
            phases.append([(t, (low[a] - (t * d[a] - r) // s[a]) * steps[a]) for t in taps])
        per_axis.append(phases)
    combos = [(p1, p2, p3) for p1 in per_axis[0] for p2 in per_axis[1] for p3 in per_axis[2]]
    widest = max(1, max(len(c1) * len(c2) * len(c3) for c1, c2, c3 in combos))
    counts = np.zeros(len(combos), dtype=np.int64)
    offsets = np.zeros((len(combos), widest), dtype=np.int64)
    weights = np.zeros((len(combos), widest), dtype=np.int64)
    for i, (c1, c2, c3) in enumerate(combos):
        m = 0
        for t1, f1 in c1:
            for t2, f2 in c2:
                for t3, f3 in c3:
                    offsets[i, m] = f1 + f2 + f3
                    weights[i, m] = (t1 * k[1] + t2) * k[2] + t3
                    m += 1
        counts[i] = m
    numbers = np.array([*n, *o, *padded, *low, *s, *lo, *stop], dtype=np.int64)
    return padded[0] * padded[1] * padded[2] * lanes * itemsize, numbers, counts, offsets, weights


@functools.lru_cache(maxsize=256)
def staged_axes(spec: ConvSpec) -> geometry.Axes3 | None:
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
    padded = [max(0, (o - 1) * s + (k - 1) * d + 1) if o else 0 for o, k, s, d in reach]  # none where no output
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


def cost(spec: ConvSpec) -> float:
    """Seconds per sample of :func:`_staged_kernel`: its vector multiply-adds (a vector's lanes of channels, every
    output pixel and tap) at ``DEPTHWISE_STAGED_RATE``, its copies in and out (the tile and the output, each
    element once) at ``DEPTHWISE_STAGED_STREAM`` bytes a second, and ``DEPTHWISE_STAGED_JOB`` a block of
    channels."""
    lanes = _tuning.VECTOR_BYTES // _tuning.COST_ITEMSIZE
    blocks = -(-spec.in_channels // lanes)
    pixels = math.prod(spec.output_size)
    if _phased(spec):  # a phase's taps only: about one in the stride's product
        tile_bytes = _phase_numbers(geometry.axes3(spec), _tuning.COST_ITEMSIZE)[0]
        multiply_adds = blocks * pixels * math.prod(spec.kernel_size) / math.prod(spec.stride)
    else:
        axes = staged_axes(spec)
        assert axes is not None  # the callers ask fits first
        tile_bytes = _staged_numbers(axes, _tuning.COST_ITEMSIZE)[0]
        multiply_adds = blocks * pixels * math.prod(spec.kernel_size)
    copied = blocks * tile_bytes + _tuning.COST_ITEMSIZE * spec.in_channels * pixels
    streamed = copied / _tuning.DEPTHWISE_STAGED_STREAM
    return multiply_adds / _tuning.DEPTHWISE_STAGED_RATE + streamed + blocks * _tuning.DEPTHWISE_STAGED_JOB


def run(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """A channels-first depthwise convolution or transposed convolution of a batched x: each job (sample, a
    vector's lanes of channels) copies its channels' planes into a channels-last tile with the padding as zeros,
    sums every output pixel's taps as vector multiply-adds along the channels (a strided transposed call by its
    output's phases, :func:`_phased_kernel`), and writes the pixels back into the planes."""
    batch, channels = x.shape[0], spec.in_channels
    out = geometry.empty_out(batch, channels, spec.output_size, x.dtype, False)
    if out.size == 0:
        return out
    itemsize = x.dtype.itemsize
    lanes = _tuning.VECTOR_BYTES // itemsize
    phased = _phased(spec)
    padded_channels = -(-channels // lanes) * lanes
    taps = math.prod(spec.kernel_size)
    w = np.asarray(weight, dtype=x.dtype)
    if spec.transposed and not phased:  # the flipped kernel's convolution (staged_axes)
        w = np.flip(w, axis=tuple(range(2, w.ndim)))
    w_taps = np.zeros((taps, padded_channels), dtype=x.dtype)
    w_taps[:, :channels] = w.reshape(channels, taps).T
    b = np.zeros(padded_channels, dtype=x.dtype)
    if bias is not None:
        b[:channels] = np.asarray(bias, dtype=x.dtype).reshape(-1)
    x_flat = np.ascontiguousarray(x).reshape(-1)
    out_flat = out.reshape(-1)
    jobs = batch * (padded_channels // lanes)
    work = float(batch * padded_channels * math.prod(spec.output_size) * taps)
    w_flat = w_taps.reshape(-1)
    if phased:
        _, numbers, counts, offsets, weights = _phase_numbers(geometry.axes3(spec), itemsize)
        phases = _phased_kernel()
        team.ranges(
            lambda start, stop: phases(
                x_flat, w_flat, b, out_flat, channels, numbers, counts, offsets, weights, start, stop
            ),
            jobs,
            work / math.prod(spec.stride),
        )
        return out
    axes = staged_axes(spec)
    assert axes is not None  # the callers ask fits first
    _, numbers, offsets = _staged_numbers(axes, itemsize)
    kernel = _staged_kernel()
    team.ranges(
        lambda start, stop: kernel(x_flat, w_flat, b, out_flat, channels, numbers, offsets, start, stop),
        jobs,
        work,
    )
    return out


# The compiled kernels call the SIMD operations and the row copy as module globals (numba's cache keys a kernel by
# its closure, as :mod:`.direct_conv` explains); :func:`_staged_kernel` binds them.
_lanes: Any = None
_vload: Any = None
_vstore: Any = None
_vfma: Any = None
_vtranspose: Any = None
_copy_row: Any = None


@functools.cache
def _staged_kernel() -> Any:
    from . import simd

    global _lanes, _vload, _vstore, _vfma, _vtranspose, _copy_row
    _lanes, _vload, _vstore, _vfma, _vtranspose = simd.lanes, simd.vload, simd.vstore, simd.vfma, simd.vtranspose
    vector_bytes = _tuning.VECTOR_BYTES  # 256 bits everywhere; in the closure, as .simd.width says

    def copy_row(x, tile, src, dst, a3, b3, plane_in, width, lane):  # type: ignore[no-untyped-def]
        # pixels [a3, b3) of a row of ``width`` channels a plane apart in x (from ``src``) into the tile's
        # pixel vectors (from ``dst``): by lane x lane transposes where the run has a whole block (its last block
        # overlapping the one before), else element by element
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

    # inlined (numba's IR) into both kernels' job loops, as :mod:`.blocked` does its blocks
    _copy_row = kernels.numba_module().njit(inline="always", nogil=True)(copy_row)

    def staged(x, w, bias, out, channels, numbers, offsets, start, stop):  # type: ignore[no-untyped-def]
        # x flat (N, C, n1, n2, n3); w flat (K, Cp) tap-major, its channels padded with zeros to whole vectors
        # (Cp), bias (Cp) likewise; out flat (N, C, O1, O2, O3). numbers: n (3), O (3), P (3: the tile's
        # padded input, (O-1)*s + (k-1)*d + 1 an axis), s (3), low padding (3), the input rows copied [a, b)
        # (3 + 3). offsets: each tap's place in the tile. A job is (sample, block of ``lane`` channels): the
        # block's planes go into the tile (P1, P2, P3, lane), by lane x lane transposes where a run has a whole
        # block (its last block overlapping the one before), rows shorter than that a whole slab (n2 x n3, one run
        # in x) a block of pixels at a time, each pixel's vector then stored in place; the padding is zero from
        # the tile's allocation (the rows copied are the same every job). Then each output pixel is the bias plus
        # every tap's weight vector times the tile's vector, in the taps' order, eight (else four) pixels along
        # the last axis at a time, each weight vector loaded once for all of them (a row's last one to three
        # pixels as its last four, the ones not summed before kept; one at a time only in a row shorter than
        # four); the pixels' vectors gather in ``outs`` and go
        # to the planes transposed, ``lane`` pixels at a time (the last ones of a job element by element).
        lane = _lanes(x)
        if lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("the depthwise tile was compiled for another vector width")
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
                    _copy_row(x, tile, src, dst, a3, b3, plane_in, width, lane)
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
                        elif o3n >= 4:  # the row's last one to three pixels: the last four, the new ones kept
                            first = o3n - 4
                            at = row + first * step
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
                            if q3 <= first + 1:
                                _vstore(outs, slot * lane, acc1)
                                slot += 1
                            if q3 <= first + 2:
                                _vstore(outs, slot * lane, acc2)
                                slot += 1
                            _vstore(outs, slot * lane, acc3)
                            slot += 1
                            q3 = o3n
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


@functools.cache
def _phased_kernel() -> Any:
    _staged_kernel()  # binds the SIMD operations
    vector_bytes = _tuning.VECTOR_BYTES  # 256 bits everywhere; in the closure, as .simd.width says

    def phased(x, w, bias, out, channels, numbers, counts, offsets, weights, start, stop):  # type: ignore[no-untyped-def]
        # A strided transposed convolution: x flat (N, C, n1, n2, n3), w flat (K, Cp), bias (Cp), out flat
        # (N, C, O1, O2, O3) as in the convolution's kernel. numbers: n, O, P (the tile), L (x's first element's
        # place in it), s, the low crop, the input rows copied (3 each). A job fills the tile with its block of
        # channels (x's element j at j + L an axis, the rest zero), then each output row (o1, o2): for each
        # phase r3 along the last axis, the outputs o3 = r3 - lo3 (mod s3), s3 apart, whose tile rows q3 =
        # (o3 + lo3) // s3 follow one another: eight (else four, else one) at a time, each the bias plus its
        # phases' taps (counts, offsets, weights of the combination (r1, r2, r3)); their vectors go into the
        # row's buffer at their places, and the row to the planes by transposes (its last block overlapping).
        lane = _lanes(x)
        if lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("the depthwise tile was compiled for another vector width")
        n1, n2, n3 = numbers[0], numbers[1], numbers[2]
        o1n, o2n, o3n = numbers[3], numbers[4], numbers[5]
        p2, p3 = numbers[7], numbers[8]
        l1, l2, l3 = numbers[9], numbers[10], numbers[11]
        s1, s2, s3 = numbers[12], numbers[13], numbers[14]
        lo1, lo2, lo3 = numbers[15], numbers[16], numbers[17]
        e1, e2, e3 = numbers[18], numbers[19], numbers[20]
        plane_in = n1 * n2 * n3
        plane_out = o1n * o2n * o3n
        padded_channels = bias.size
        blocks = padded_channels // lane
        tile = np.zeros(numbers[6] * p2 * p3 * lane, dtype=x.dtype)
        row = np.empty(o3n * lane, dtype=x.dtype)
        for job in range(start, stop):
            n = job // blocks
            c0 = (job % blocks) * lane
            width = min(lane, channels - c0)
            x_base = (n * channels + c0) * plane_in
            for j1 in range(e1):
                for j2 in range(e2):
                    src = x_base + (j1 * n2 + j2) * n3
                    dst = (((j1 + l1) * p2 + j2 + l2) * p3 + l3) * lane
                    _copy_row(x, tile, src, dst, 0, e3, plane_in, width, lane)
            out_base = (n * channels + c0) * plane_out
            b = _vload(bias, c0)
            for o1 in range(o1n):
                q1 = (o1 + lo1) // s1
                r1 = o1 + lo1 - q1 * s1
                for o2 in range(o2n):
                    q2 = (o2 + lo2) // s2
                    r2 = o2 + lo2 - q2 * s2
                    row_base = (q1 * p2 + q2) * p3 * lane
                    for r3 in range(s3):
                        combo = (r1 * s2 + r2) * s3 + r3
                        count = counts[combo]
                        o3 = (r3 - lo3 % s3 + s3) % s3
                        while o3 < o3n:
                            at = row_base + ((o3 + lo3) // s3) * lane
                            left = (o3n - o3 + s3 - 1) // s3  # this phase's outputs still to sum in the row
                            if left >= 8:
                                acc0 = b
                                acc1 = b
                                acc2 = b
                                acc3 = b
                                acc4 = b
                                acc5 = b
                                acc6 = b
                                acc7 = b
                                for m in range(count):
                                    wv = _vload(w, weights[combo, m] * padded_channels + c0)
                                    i = at + offsets[combo, m]
                                    acc0 = _vfma(acc0, wv, _vload(tile, i))
                                    acc1 = _vfma(acc1, wv, _vload(tile, i + lane))
                                    acc2 = _vfma(acc2, wv, _vload(tile, i + 2 * lane))
                                    acc3 = _vfma(acc3, wv, _vload(tile, i + 3 * lane))
                                    acc4 = _vfma(acc4, wv, _vload(tile, i + 4 * lane))
                                    acc5 = _vfma(acc5, wv, _vload(tile, i + 5 * lane))
                                    acc6 = _vfma(acc6, wv, _vload(tile, i + 6 * lane))
                                    acc7 = _vfma(acc7, wv, _vload(tile, i + 7 * lane))
                                _vstore(row, o3 * lane, acc0)
                                _vstore(row, (o3 + s3) * lane, acc1)
                                _vstore(row, (o3 + 2 * s3) * lane, acc2)
                                _vstore(row, (o3 + 3 * s3) * lane, acc3)
                                _vstore(row, (o3 + 4 * s3) * lane, acc4)
                                _vstore(row, (o3 + 5 * s3) * lane, acc5)
                                _vstore(row, (o3 + 6 * s3) * lane, acc6)
                                _vstore(row, (o3 + 7 * s3) * lane, acc7)
                                o3 += 8 * s3
                            elif left >= 4:
                                acc0 = b
                                acc1 = b
                                acc2 = b
                                acc3 = b
                                for m in range(count):
                                    wv = _vload(w, weights[combo, m] * padded_channels + c0)
                                    i = at + offsets[combo, m]
                                    acc0 = _vfma(acc0, wv, _vload(tile, i))
                                    acc1 = _vfma(acc1, wv, _vload(tile, i + lane))
                                    acc2 = _vfma(acc2, wv, _vload(tile, i + 2 * lane))
                                    acc3 = _vfma(acc3, wv, _vload(tile, i + 3 * lane))
                                _vstore(row, o3 * lane, acc0)
                                _vstore(row, (o3 + s3) * lane, acc1)
                                _vstore(row, (o3 + 2 * s3) * lane, acc2)
                                _vstore(row, (o3 + 3 * s3) * lane, acc3)
                                o3 += 4 * s3
                            else:
                                acc0 = b
                                for m in range(count):
                                    wv = _vload(w, weights[combo, m] * padded_channels + c0)
                                    acc0 = _vfma(acc0, wv, _vload(tile, at + offsets[combo, m]))
                                _vstore(row, o3 * lane, acc0)
                                o3 += s3
                    row_out = out_base + (o1 * o2n + o2) * o3n
                    if width == lane and o3n >= lane:
                        f = 0
                        while f < o3n:
                            f = min(f, o3n - lane)  # the row's last block overlapping the one before
                            _vtranspose(out, row_out + f, plane_out, row, f * lane, lane)
                            f += lane
                    else:
                        for f in range(o3n):
                            for c in range(width):
                                out[row_out + c * plane_out + f] = row[f * lane + c]

    return kernels.compile_kernel(phased, kernels.FASTMATH_IN_ORDER)


__all__ = ["cost", "fits", "run", "staged_axes"]
