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

A channels-first depthwise convolution or transposed convolution of at least a vector's lanes of channels runs
through a channels-last tile instead (:mod:`.depthwise_tile`). A channels-last convolution, or transposed one at
stride 1 (its flipped kernel's convolution), of at least a vector's lanes of channels (the machine's widest
vectors, :func:`.simd.widest`) runs by rows of vectors (:mod:`.depthwise_rows`): eight (else four) outputs along a
row at a time for each vector of channels, their sums held in registers over the taps, each weight vector loaded
once for the eight and x read where it is, in place; the outputs at the padding one at a time over the taps that
meet x, four vectors of channels at a time; a strided transposed one by rows of its output's phases, eight outputs
of a phase at a time (:mod:`.depthwise_rows`). The generic kernel above summed into a vector of the channels in
memory, loaded and stored again for every pair: 1.1-3.3x slower on twelve MobileNet- and sweep-like layers.

Each output pixel's sum runs in the same order whichever thread computes it (the bias, then the pairs in the
tables' order; in the kernel of pairs two at a time where the channels are contiguous, so one layout's numbers may
differ from the other's by rounding), so the numbers do not depend on the thread count. Every kernel's team jobs
are blocks of
``DEPTHWISE_JOB_PIXELS`` output pixels along the last axis, of every (sample, first axis, second axis).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import depthwise_rows, depthwise_tile, geometry, kernels, team


def fits(spec: ConvSpec) -> bool:
    """Whether ``jit_depthwise`` computes a call: one input and one output channel per group."""
    return spec.groups == spec.in_channels == spec.out_channels


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
    per plane). Channels-first through the tile, and channels-last by rows or by phases, their own estimates
    (:func:`.depthwise_tile.cost`, :func:`.depthwise_rows.rows_cost`, :func:`.depthwise_rows.phases_cost`). None
    (not ranked) where the pair kernel's or the phases' tables outgrow ``DEPTHWISE_TABLE_MAX`` (:func:`tables_fit`;
    the tile and the rows make none)."""
    if not fits(spec):
        return None
    if not channels_last and depthwise_tile.fits(spec):
        return depthwise_tile.cost(spec)
    if channels_last and depthwise_rows.rows_fit(spec):
        return depthwise_rows.rows_cost(spec)
    if channels_last and depthwise_rows.phases_fit(spec) and tables_fit(spec):
        return depthwise_rows.phases_cost(spec)
    if not tables_fit(spec):
        return None
    channels = spec.in_channels
    output = float(_tuning.COST_ITEMSIZE) * channels * math.prod(spec.output_size)
    estimate = geometry.pair_count(spec) * (_tuning.DEPTHWISE_PAIR_COST + channels / _tuning.DEPTHWISE_RATE)
    estimate += output / _tuning.COLUMN_STREAM
    if not channels_last:
        plane = max(math.prod(spec.input_size), math.prod(spec.output_size))
        estimate *= 1.0 + plane / _tuning.DEPTHWISE_FIRST_PIXELS
    return estimate


def run(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The call (a convolution or a transposed convolution, as ``spec`` says) of a batched x in the caller's layout,
    its result in the same layout. The weight is ``(C, 1, *k)`` either way."""
    if not channels_last and depthwise_tile.fits(spec, x.dtype.itemsize):
        return depthwise_tile.run(x, weight, bias, spec)
    if channels_last and depthwise_rows.rows_fit(spec, x.dtype.itemsize):
        return depthwise_rows.run_rows(x, weight, bias, spec)
    if channels_last and depthwise_rows.phases_fit(spec, x.dtype.itemsize) and tables_fit(spec):
        return depthwise_rows.run_phases(x, weight, bias, spec)
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
    w_taps, b = depthwise_rows.tap_major(weight, bias, spec, x.dtype)
    tables = geometry.pair_tables(geometry.axes3(spec), spec.transposed)
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
    return x_steps, out_steps, kernel_size, sizes, jobs, batch * geometry.pair_count(spec) * channels


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


__all__ = ["cost", "fits", "run", "tables_fit"]
