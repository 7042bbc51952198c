"""Channels-last depthwise convolutions and transposed convolutions by rows of vectors of channels (part of
``jit_depthwise``, :mod:`.depthwise`).

A convolution, or a transposed one at stride 1 (its flipped kernel's convolution,
:func:`.depthwise_tile.staged_axes`), of at least a vector's lanes of channels (the machine's widest vectors,
:func:`.simd.widest`) runs by rows of outputs (:func:`run_rows`): a job is a block of ``DEPTHWISE_JOB_PIXELS``
outputs along the last axis of one (sample, row); for each vector of channels (the last one overlapping the one
before, its channels written again with the same sums), eight (else four) outputs along the row are summed at once
in registers over their taps, each weight vector loaded once for the eight, x read where it lies; the outputs at the
padding one at a time over the taps that meet x, four vectors of channels at a time. A strided transposed one runs
by rows of its output's phases (:func:`run_phases`): a job is again a block of a row's outputs along the last axis,
and along it each phase's outputs (a stride apart) in turn, eight at a time where they receive the same taps and all
eight are the job's. Every output is the bias plus its taps' products in order, whichever way it is summed, so the
numbers do not depend on the blocks or the thread count. The module is long because the two kernels' blocks of eight
are written out (numba keeps each sum in a register only as a variable of its own).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import depthwise_tile, geometry, kernels, machine, team


def rows_fit(spec: ConvSpec, itemsize: int = _tuning.COST_ITEMSIZE) -> bool:
    """Whether a channels-last depthwise call runs by rows of vectors (:func:`run_rows`): a convolution, or a
    stride-1 transposed one as its flipped kernel's convolution (:func:`.depthwise_tile.staged_axes`), of rank 3
    or less and at least a vector's lanes of channels of ``itemsize`` bytes and of ``COST_ITEMSIZE`` (so that the
    planner prices the kernel that runs)."""
    lanes = machine.vector_bytes() // min(itemsize, _tuning.COST_ITEMSIZE)
    depthwise = spec.groups == spec.in_channels == spec.out_channels
    return depthwise and spec.ndim <= 3 and spec.in_channels >= lanes and _rows_axes(spec) is not None


def phases_fit(spec: ConvSpec, itemsize: int = _tuning.COST_ITEMSIZE) -> bool:
    """Whether a channels-last depthwise call can run by rows of its output's phases (:func:`run_phases`): a strided
    transposed one of rank 3 or less, at least a vector's lanes of channels (as :func:`rows_fit` counts them);
    :mod:`.depthwise` runs it so where its tables fit (``depthwise.tables_fit``)."""
    lanes = machine.vector_bytes() // min(itemsize, _tuning.COST_ITEMSIZE)
    depthwise = spec.groups == spec.in_channels == spec.out_channels
    strided = spec.transposed and any(st != 1 for st in spec.stride)
    return depthwise and strided and spec.ndim <= 3 and spec.in_channels >= lanes


def phases_cost(spec: ConvSpec) -> float:
    """Seconds per sample of :func:`run_phases`: its (output pixel, tap) pairs (:func:`.geometry.pair_count`)
    times the vectors of channels at ``DEPTHWISE_ROWS_RATE`` (as :func:`rows_cost` prices them), x and the output
    at ``DEPTHWISE_ROWS_STREAM``, and ``DEPTHWISE_ROWS_ROW`` a row of outputs."""
    lanes = machine.priced_vector_bytes() // _tuning.COST_ITEMSIZE
    vectors = -(-spec.in_channels // lanes)
    pixels = math.prod(spec.output_size)
    streamed = float(_tuning.COST_ITEMSIZE) * spec.in_channels * (pixels + math.prod(spec.input_size))
    last = geometry.axes3(spec).size_out[2]
    rows = pixels / last if last else 0.0
    return (
        vectors * geometry.pair_count(spec) / machine.vector_rate(_tuning.DEPTHWISE_ROWS_RATE)
        + streamed / _tuning.DEPTHWISE_ROWS_STREAM
        + rows * _tuning.DEPTHWISE_ROWS_ROW
    )


def _rows_axes(spec: ConvSpec) -> geometry.Axes3 | None:
    """The convolution's axes the rows kernel sums (a stride-1 transposed call's flipped twin); None where strided
    and transposed."""
    return depthwise_tile.staged_axes(spec)


def rows_cost(spec: ConvSpec) -> float:
    """Seconds per sample of :func:`run_rows`: every output pixel's taps that meet x (per axis, their mean) times
    the vectors of channels at the priced width (the last one overlapping the one before) at
    ``DEPTHWISE_ROWS_RATE`` vector multiply-adds a second (:func:`.machine.vector_rate`), x and the output each
    read or written once at ``DEPTHWISE_ROWS_STREAM`` bytes a second, and ``DEPTHWISE_ROWS_ROW`` a row of
    outputs."""
    axes = _rows_axes(spec)
    assert axes is not None  # the callers ask rows_fit first
    lanes = machine.priced_vector_bytes() // _tuning.COST_ITEMSIZE
    vectors = -(-spec.in_channels // lanes)
    meet1, meet2, meet3 = geometry.mean_taps(axes)
    pixels = math.prod(spec.output_size)
    streamed = float(_tuning.COST_ITEMSIZE) * spec.in_channels * (pixels + math.prod(spec.input_size))
    rows = pixels / axes.size_out[2] if axes.size_out[2] else 0.0
    return (
        vectors * pixels * meet1 * meet2 * meet3 / machine.vector_rate(_tuning.DEPTHWISE_ROWS_RATE)
        + streamed / _tuning.DEPTHWISE_ROWS_STREAM
        + rows * _tuning.DEPTHWISE_ROWS_ROW
    )


def tap_major(
    weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, dtype: Any, flipped: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A depthwise weight ``(C, 1, *k)`` as ``(K, C)`` tap-major, flat (its taps reversed where ``flipped``), and the
    bias (zeros without one), both of ``dtype``: what every depthwise kernel multiplies, made once a call."""
    channels, taps = spec.in_channels, math.prod(spec.kernel_size)
    w = np.asarray(weight, dtype=dtype)
    if flipped:
        w = np.flip(w, axis=tuple(range(2, w.ndim)))
    w_taps = np.ascontiguousarray(w.reshape(channels, taps).T).reshape(-1)
    b = np.zeros(channels, dtype=dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype).reshape(-1)
    return w_taps, b


def _pixels(x: np.ndarray, axes: geometry.Axes3) -> np.ndarray:
    """A channels-last x as ``(N, n1, n2, n3, C)`` (the axes padded to three): a view, copied only where its
    channels are not contiguous (the kernels load them as vectors)."""
    x5 = x.reshape(x.shape[0], *axes.size_in, x.shape[-1])
    return x5 if x5.strides[-1] == x.itemsize else np.ascontiguousarray(x5)


def run_rows(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """A channels-last depthwise call by rows of vectors (:func:`_rows_kernel`); x read in place where its channels
    are contiguous (else copied)."""
    batch, channels = x.shape[0], spec.in_channels
    out = geometry.empty_out(batch, channels, spec.output_size, x.dtype, True)
    if out.size == 0:
        return out
    axes = _rows_axes(spec)
    assert axes is not None  # rows_fit
    x5 = _pixels(x, axes)
    x_steps = tuple(st // x.itemsize for st in x5.strides[:4])
    # a transposed call: the flipped kernel's convolution (_rows_axes)
    w_taps, b = tap_major(weight, bias, spec, x.dtype, flipped=spec.transposed)
    geo, spans, numbers, offsets, jobs = _rows_numbers(axes, channels, batch, x_steps)
    kernel = _rows_kernel()
    x_flat, out_flat = kernels.flat(x5), out.reshape(-1)
    team.ranges(
        lambda start, stop: kernel(x_flat, w_taps, b, out_flat, offsets, geo, spans, numbers, start, stop),
        jobs,
        batch * rows_cost(spec) / _tuning.KERNEL_ELEMENT_SECONDS,
    )
    return out


@functools.lru_cache(maxsize=256)
def _rows_numbers(
    axes: geometry.Axes3, channels: int, batch: int, x_steps: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`_rows_kernel`'s numbers for one geometry and x's element steps ``(N, n1, n2, n3)``: the axes and each
    output's taps that meet x (:func:`.geometry.span_tables`); the channels, the outputs a job along the last axis
    (``DEPTHWISE_JOB_PIXELS``), the outputs along it whose every tap meets x ``[first, stop)`` and x's steps; each
    tap's offset in x from its window's first pixel; and the jobs. Arrays no caller writes."""
    geo, spans = geometry.span_tables(axes)
    k1, k2, k3 = axes.kernel
    d1, d2, d3 = axes.dilation
    o3n = axes.size_out[2]
    whole = [o for o in range(o3n) if spans[4, o] == 0 and spans[5, o] == k3]
    first, stop = (whole[0], whole[-1] + 1) if whole else (0, 0)  # contiguous: a convolution's inner outputs
    block = _tuning.DEPTHWISE_JOB_PIXELS
    numbers = np.array([channels, block, first, stop, *x_steps], dtype=np.int64)
    _, s1, s2, s3 = x_steps
    offsets = np.array(
        [t1 * d1 * s1 + t2 * d2 * s2 + t3 * d3 * s3 for t1 in range(k1) for t2 in range(k2) for t3 in range(k3)],
        dtype=np.int64,
    )
    jobs = batch * axes.size_out[0] * axes.size_out[1] * -(-o3n // block)
    return geo, spans, numbers, offsets, jobs


# Both kernels call the SIMD operations as module globals (numba's disk cache keys a function by its pickled
# closure, :mod:`.window_dots` explains), bound by :func:`_bind_simd` before either is made.
_lanes: Any = None
_vload: Any = None
_vstore: Any = None
_vfma: Any = None


@functools.cache
def _bind_simd() -> int:
    """Set the SIMD operations' module globals at the machine's widest vectors (:func:`.simd.widest`, whose import
    needs numba), and return their bytes."""
    from . import simd

    global _lanes, _vload, _vstore, _vfma
    wide = simd.widest()
    _lanes, _vload, _vstore, _vfma = wide.lanes, wide.vload, simd.vstore, simd.vfma
    return wide.vector_bytes


@functools.cache
def _rows_kernel() -> Any:
    vector_bytes = _bind_simd()  # in the closure, as .simd.width says

    def rows(x, w, bias, out, offsets, geo, spans, numbers, start, stop):  # type: ignore[no-untyped-def]
        # x flat, pixel (n, j1, j2, j3) channel c at n*numbers[4] + j1*numbers[5] + j2*numbers[6] + j3*numbers[7]
        # + c; w flat (K1, K2, K3, C) tap-major; bias (C,); out flat (N, O1, O2, O3, C); offsets: each tap's
        # place in x from its window's first pixel. geo, spans: geometry.span_tables; numbers: C, the outputs a
        # job along the last axis, the last axis' outputs whose every tap meets x [i0, i1), x's steps. A job is
        # (sample, o1, o2, block of outputs along the last axis): eight outputs at a time where all their taps
        # along the last axis meet x, each weight vector loaded once for the eight, else one output over its
        # taps that meet x, four vectors of channels at a time; each vector of channels (the last one
        # overlapping the one before, its channels written again with the same sums) in turn. Every output is
        # the bias plus its taps' products in the taps' order, whichever way it is summed.
        lane = _lanes(x)
        if lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("jit_depthwise's rows were compiled for another vector width")
        k2, k3 = geo[1], geo[2]
        s1, s2, s3 = geo[3], geo[4], geo[5]
        lo1, lo2, lo3 = geo[9], geo[10], geo[11]
        o1n, o2n, o3n = geo[12], geo[13], geo[14]
        channels, block, i0, i1 = numbers[0], numbers[1], numbers[2], numbers[3]
        xs0, xs1, xs2, xs3 = numbers[4], numbers[5], numbers[6], numbers[7]
        last = channels - lane
        blocks = (o3n + block - 1) // block
        step = s3 * xs3
        for job in range(start, stop):
            first = (job % blocks) * block
            row = job // blocks
            o2 = row % o2n
            o1 = (row // o2n) % o1n
            n = row // (o2n * o1n)
            end = min(o3n, first + block)
            inner = min(end, i1)
            t1a, t1b = spans[0, o1], spans[1, o1]
            ja, jb = spans[2, o2] * k3, spans[3, o2] * k3  # the taps (t2, t3) of a row of the kernel, flattened
            room = inner - max(first, i0)  # the job's outputs whose every tap meets x
            x_row = n * xs0 + (o1 * s1 - lo1) * xs1 + (o2 * s2 - lo2) * xs2
            out_row = ((n * o1n + o1) * o2n + o2) * o3n * channels
            o3 = first
            while o3 < end:
                if o3 >= i0 and o3 < inner and room >= 8:
                    o3 = min(o3, inner - 8)  # the last block overlapping the one before: the same sums again
                    base = x_row + (o3 * s3 - lo3) * xs3
                    at = out_row + o3 * channels
                    c0 = 0
                    while c0 < channels:
                        c = min(c0, last)
                        acc0 = _vload(bias, c)
                        acc1 = acc0
                        acc2 = acc0
                        acc3 = acc0
                        acc4 = acc0
                        acc5 = acc0
                        acc6 = acc0
                        acc7 = acc0
                        for t1 in range(t1a, t1b):
                            row_taps = t1 * k2 * k3
                            for j in range(row_taps + ja, row_taps + jb):
                                wv = _vload(w, j * channels + c)
                                i = base + offsets[j] + c
                                acc0 = _vfma(acc0, wv, _vload(x, i))
                                acc1 = _vfma(acc1, wv, _vload(x, i + step))
                                acc2 = _vfma(acc2, wv, _vload(x, i + 2 * step))
                                acc3 = _vfma(acc3, wv, _vload(x, i + 3 * step))
                                acc4 = _vfma(acc4, wv, _vload(x, i + 4 * step))
                                acc5 = _vfma(acc5, wv, _vload(x, i + 5 * step))
                                acc6 = _vfma(acc6, wv, _vload(x, i + 6 * step))
                                acc7 = _vfma(acc7, wv, _vload(x, i + 7 * step))
                        _vstore(out, at + c, acc0)
                        _vstore(out, at + channels + c, acc1)
                        _vstore(out, at + 2 * channels + c, acc2)
                        _vstore(out, at + 3 * channels + c, acc3)
                        _vstore(out, at + 4 * channels + c, acc4)
                        _vstore(out, at + 5 * channels + c, acc5)
                        _vstore(out, at + 6 * channels + c, acc6)
                        _vstore(out, at + 7 * channels + c, acc7)
                        c0 += lane
                    o3 += 8
                    continue
                if o3 >= i0 and o3 < inner and room >= 4:
                    o3 = min(o3, inner - 4)
                    base = x_row + (o3 * s3 - lo3) * xs3
                    at = out_row + o3 * channels
                    c0 = 0
                    while c0 < channels:
                        c = min(c0, last)
                        acc0 = _vload(bias, c)
                        acc1 = acc0
                        acc2 = acc0
                        acc3 = acc0
                        for t1 in range(t1a, t1b):
                            row_taps = t1 * k2 * k3
                            for j in range(row_taps + ja, row_taps + jb):
                                wv = _vload(w, j * channels + c)
                                i = base + offsets[j] + c
                                acc0 = _vfma(acc0, wv, _vload(x, i))
                                acc1 = _vfma(acc1, wv, _vload(x, i + step))
                                acc2 = _vfma(acc2, wv, _vload(x, i + 2 * step))
                                acc3 = _vfma(acc3, wv, _vload(x, i + 3 * step))
                        _vstore(out, at + c, acc0)
                        _vstore(out, at + channels + c, acc1)
                        _vstore(out, at + 2 * channels + c, acc2)
                        _vstore(out, at + 3 * channels + c, acc3)
                        c0 += lane
                    o3 += 4
                    continue
                base = x_row + (o3 * s3 - lo3) * xs3
                at = out_row + o3 * channels
                t3a, t3b = spans[4, o3], spans[5, o3]
                c0 = 0
                while c0 < channels:  # four vectors of channels at a time (the last ones overlapping)
                    ca, cb = min(c0, last), min(c0 + lane, last)
                    cc, cd = min(c0 + 2 * lane, last), min(c0 + 3 * lane, last)
                    acc0 = _vload(bias, ca)
                    acc1 = _vload(bias, cb)
                    acc2 = _vload(bias, cc)
                    acc3 = _vload(bias, cd)
                    for t1 in range(t1a, t1b):
                        row_taps = t1 * k2 * k3
                        for j2 in range(row_taps + ja, row_taps + jb, k3):
                            for j in range(j2 + t3a, j2 + t3b):
                                wj, i = j * channels, base + offsets[j]
                                acc0 = _vfma(acc0, _vload(w, wj + ca), _vload(x, i + ca))
                                acc1 = _vfma(acc1, _vload(w, wj + cb), _vload(x, i + cb))
                                acc2 = _vfma(acc2, _vload(w, wj + cc), _vload(x, i + cc))
                                acc3 = _vfma(acc3, _vload(w, wj + cd), _vload(x, i + cd))
                    _vstore(out, at + ca, acc0)
                    _vstore(out, at + cb, acc1)
                    _vstore(out, at + cc, acc2)
                    _vstore(out, at + cd, acc3)
                    c0 += 4 * lane
                o3 += 1

    # in order: each output's sum must not depend on how the compiler splits it (nor on the thread that runs it)
    return kernels.compile_kernel(rows, kernels.FASTMATH_IN_ORDER)


def run_phases(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """A channels-last strided transposed depthwise call by rows of its output's phases (:func:`_phases_kernel`);
    x read in place where its channels are contiguous (else copied)."""
    batch, channels = x.shape[0], spec.in_channels
    out = geometry.empty_out(batch, channels, spec.output_size, x.dtype, True)
    if out.size == 0:
        return out
    axes = geometry.axes3(spec)
    x5 = _pixels(x, axes)
    steps = np.array([st // x.itemsize for st in x5.strides[:4]], dtype=np.int64)
    w_taps, b = tap_major(weight, bias, spec, x.dtype)
    tables = geometry.pair_tables(axes, True)
    sizes, eights, jobs = _phase_numbers(axes, channels, _tuning.DEPTHWISE_JOB_PIXELS)
    kernel = _phases_kernel()
    x_flat, out_flat = kernels.flat(x5), out.reshape(-1)
    team.ranges(
        lambda start, stop: kernel(x_flat, steps, w_taps, b, out_flat, sizes, eights, *tables, start, stop),
        batch * jobs,
        batch * phases_cost(spec) / _tuning.KERNEL_ELEMENT_SECONDS,
    )
    return out


@functools.lru_cache(maxsize=64)
def _phase_numbers(axes: geometry.Axes3, channels: int, block: int) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_phases_kernel`'s sizes (O1, O2, O3, C, k2, k3, the last axis' stride, the outputs a job along it:
    ``block``, ``DEPTHWISE_JOB_PIXELS``), its blocks of eight (:func:`_phase_blocks`) and the jobs a sample, made
    once per geometry (the job's size in the key: a test sets it)."""
    o1, o2, o3 = axes.size_out
    sizes = np.array([o1, o2, o3, channels, axes.kernel[1], axes.kernel[2], axes.stride[2], block], dtype=np.int64)
    return sizes, _phase_blocks(axes), o1 * o2 * -(-o3 // block)


@functools.lru_cache(maxsize=64)
def _phase_blocks(axes: geometry.Axes3) -> np.ndarray:
    """For each output along the last axis, whether it and the seven outputs of its phase after it (a stride
    apart) receive the same taps (the transposed tables' rows alike), so that :func:`_phases_kernel` sums the eight
    at once: outputs a stride apart receive a tap from inputs one apart (``o + lo = j*s + t*d``), so the eight read
    consecutive inputs. Made once per geometry, left writeable as the tables are."""
    count, taps, _ = geometry.pair_tables(axes, True)[6:]  # a row's unused taps are zero in every row
    o3n, s3 = axes.size_out[2], axes.stride[2]
    eights = np.zeros(o3n, dtype=np.int64)
    heads = o3n - 7 * s3  # the outputs with seven of their phase after them
    if heads > 0:
        same = count[:heads] > 0
        for m in range(1, 8):
            later = slice(m * s3, m * s3 + heads)
            same &= (count[later] == count[:heads]) & (taps[later] == taps[:heads]).all(axis=1)
        eights[:heads] = same
    return eights


@functools.cache
def _phases_kernel() -> Any:
    vector_bytes = _bind_simd()  # in the closure, as .simd.width says

    def phases(x, xs, w, bias, out, sizes, eights, c1, t1, j1, c2, t2, j2, c3, t3, j3, start, stop):  # type: ignore[no-untyped-def]
        # x flat, pixel (n, j1, j2, j3) channel c at n*xs[0] + j1*xs[1] + j2*xs[2] + j3*xs[3] + c; w flat (K1,
        # K2, K3, C) tap-major; out flat (N, O1, O2, O3, C); sizes: O1, O2, O3, C, k2, k3, the last axis'
        # stride, the outputs a job along it; the transposed tables (count, taps, inputs) of each axis. A job is
        # a block of a row's outputs along the last axis (sample, o1, o2, block); along it each phase's outputs
        # (a stride apart) in turn: eight at a time where they receive the same taps from consecutive inputs
        # (``eights``) and all eight are the job's, each weight vector loaded once for the eight, else one at a
        # time, four vectors of channels at a time; each vector of channels (the last one overlapping the one
        # before) in turn. Every output is the bias plus its (tap, input) pairs in the tables' order, whichever
        # way.
        lane = _lanes(x)
        if lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("jit_depthwise's phase rows were compiled for another vector width")
        o1n, o2n, o3n, channels = sizes[0], sizes[1], sizes[2], sizes[3]
        k2, k3, s3, block = sizes[4], sizes[5], sizes[6], sizes[7]
        blocks = (o3n + block - 1) // block
        last = channels - lane
        step = xs[3]
        for job in range(start, stop):
            first = (job % blocks) * block
            end = min(o3n, first + block)
            row = job // blocks
            o2 = row % o2n
            o1 = (row // o2n) % o1n
            n = row // (o2n * o1n)
            out_row = ((n * o1n + o1) * o2n + o2) * o3n * channels
            for r in range(first, min(first + s3, end)):
                o3 = r
                while o3 < end:
                    at = out_row + o3 * channels
                    count = c3[o3]
                    if eights[o3] != 0 and o3 + 7 * s3 < end:
                        c0 = 0
                        while c0 < channels:
                            c = min(c0, last)
                            acc0 = _vload(bias, c)
                            acc1 = acc0
                            acc2 = acc0
                            acc3 = acc0
                            acc4 = acc0
                            acc5 = acc0
                            acc6 = acc0
                            acc7 = acc0
                            for m1 in range(c1[o1]):
                                xa = n * xs[0] + j1[o1, m1] * xs[1] + c
                                wa = t1[o1, m1] * k2
                                for m2 in range(c2[o2]):
                                    xb = xa + j2[o2, m2] * xs[2]
                                    wb = (wa + t2[o2, m2]) * k3
                                    for m3 in range(count):
                                        wv = _vload(w, (wb + t3[o3, m3]) * channels + c)
                                        i = xb + j3[o3, m3] * step
                                        acc0 = _vfma(acc0, wv, _vload(x, i))
                                        acc1 = _vfma(acc1, wv, _vload(x, i + step))
                                        acc2 = _vfma(acc2, wv, _vload(x, i + 2 * step))
                                        acc3 = _vfma(acc3, wv, _vload(x, i + 3 * step))
                                        acc4 = _vfma(acc4, wv, _vload(x, i + 4 * step))
                                        acc5 = _vfma(acc5, wv, _vload(x, i + 5 * step))
                                        acc6 = _vfma(acc6, wv, _vload(x, i + 6 * step))
                                        acc7 = _vfma(acc7, wv, _vload(x, i + 7 * step))
                            stride = s3 * channels
                            _vstore(out, at + c, acc0)
                            _vstore(out, at + stride + c, acc1)
                            _vstore(out, at + 2 * stride + c, acc2)
                            _vstore(out, at + 3 * stride + c, acc3)
                            _vstore(out, at + 4 * stride + c, acc4)
                            _vstore(out, at + 5 * stride + c, acc5)
                            _vstore(out, at + 6 * stride + c, acc6)
                            _vstore(out, at + 7 * stride + c, acc7)
                            c0 += lane
                        o3 += 8 * s3
                        continue
                    c0 = 0
                    while c0 < channels:  # four vectors of channels at a time (the last ones overlapping)
                        ca, cb = min(c0, last), min(c0 + lane, last)
                        cc, cd = min(c0 + 2 * lane, last), min(c0 + 3 * lane, last)
                        acc0 = _vload(bias, ca)
                        acc1 = _vload(bias, cb)
                        acc2 = _vload(bias, cc)
                        acc3 = _vload(bias, cd)
                        for m1 in range(c1[o1]):
                            xa = n * xs[0] + j1[o1, m1] * xs[1]
                            wa = t1[o1, m1] * k2
                            for m2 in range(c2[o2]):
                                xb = xa + j2[o2, m2] * xs[2]
                                wb = (wa + t2[o2, m2]) * k3
                                for m3 in range(count):
                                    wj = (wb + t3[o3, m3]) * channels
                                    i = xb + j3[o3, m3] * step
                                    acc0 = _vfma(acc0, _vload(w, wj + ca), _vload(x, i + ca))
                                    acc1 = _vfma(acc1, _vload(w, wj + cb), _vload(x, i + cb))
                                    acc2 = _vfma(acc2, _vload(w, wj + cc), _vload(x, i + cc))
                                    acc3 = _vfma(acc3, _vload(w, wj + cd), _vload(x, i + cd))
                        _vstore(out, at + ca, acc0)
                        _vstore(out, at + cb, acc1)
                        _vstore(out, at + cc, acc2)
                        _vstore(out, at + cd, acc3)
                        c0 += 4 * lane
                    o3 += s3

    # in order: each output's sum must not depend on how the compiler splits it (nor on the thread that runs it)
    return kernels.compile_kernel(phases, kernels.FASTMATH_IN_ORDER)


__all__ = ["phases_cost", "phases_fit", "rows_cost", "rows_fit", "run_phases", "run_rows", "tap_major"]
