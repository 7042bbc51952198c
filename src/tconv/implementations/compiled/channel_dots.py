"""A channels-last convolution as dot products along the channels (``jit_direct``'s channels-last route for few
output channels a group).

Channels-last, every (output pixel, tap) reads one contiguous run of x: the group's input channels at the pixel
the tap meets. So each output is the sum, over the taps that meet x (none of the padding's), of the dot product
of that run with the tap's weights, laid out ``(G, C_out/G, K, C_in/G)`` so that they are contiguous too. With
one group and no dilation along the last spatial axis, the runs of consecutive taps along that axis are
consecutive pixels, one run of ``(taps) * C_in`` elements (a 3x3 kernel over 64 channels: three runs of 192
an output, not nine of 64). Output channels go four a dot product (each element of x loaded once for four
weights), the group's last ones two or one at a time. Nothing is copied: x is read where it lies, through its
own strides (a view whose channels, or with fused runs its last axis's pixels, are not contiguous is copied
first), and each output is written once, with its bias.

The direct sum over planes (:mod:`.direct_conv`) copies a channels-last x channels-first before it sums, and
its passes run over a whole plane per (output channel, input channel, taps): with few output channels and many
input channels the copy and the passes' set-up dominate, and the dot products do not have them
(docs/design.md, "Channels-last dot products"). :func:`preferred` decides by the cost model (:func:`cost`
against :func:`.direct_conv.cost`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, team


def fused(spec: ConvSpec) -> bool:
    """Whether the taps along the last spatial axis read one run together: one group, dilation 1 there."""
    return spec.groups == 1 and spec.dilation[-1] == 1


def _widths(cg_out: int) -> tuple[int, int, int]:
    """A group's dot products of four, two and one output channels."""
    fours, rest = divmod(cg_out, 4)
    return fours, rest // 2, rest % 2


def cost(spec: ConvSpec) -> float:
    """Seconds per sample by the cost model: for every output pixel and dot product (four output channels, or the
    group's last two or one), a ``DOT_RUN_COST`` a run and its elements at ``DOT_LOAD_RATE`` vector-element
    loads a second (a dot product of ``w`` channels loads ``w + 1`` values an element: x's and each weight's),
    over the taps that meet x on average (the padding's taps are skipped); the output written once at
    ``COLUMN_STREAM``; where the runs cannot be fused, one run per tap."""
    taps = geometry.mean_taps(geometry.axes3(spec))
    cg_in, cg_out = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    runs = taps[0] * taps[1] * (1.0 if fused(spec) else taps[2])
    elements = taps[0] * taps[1] * taps[2] * cg_in
    fours, twos, ones = _widths(cg_out)
    loads = 5 * fours + 3 * twos + 2 * ones
    dots = fours + twos + ones
    pixels = math.prod(spec.output_size) * spec.groups
    output = float(_tuning.COST_ITEMSIZE) * spec.out_channels * math.prod(spec.output_size)
    return pixels * (dots * runs * _tuning.DOT_RUN_COST + loads * elements / _tuning.DOT_LOAD_RATE) + (
        output / _tuning.COLUMN_STREAM
    )


def mean_run(spec: ConvSpec) -> float:
    """The elements of a run on average: the group's input channels, times the taps along the last axis that meet
    x where they are one run (:func:`fused`)."""
    cg_in = spec.in_channels // spec.groups
    return cg_in * (geometry.mean_taps(geometry.axes3(spec))[2] if fused(spec) else 1.0)


def preferred(spec: ConvSpec, planes: float) -> bool:
    """Whether a channels-last convolution runs as dot products: at most ``DOT_MAX_OUT`` output channels a group,
    runs of ``DOT_MIN_RUN`` elements on average, and the cost model's estimate below ``planes`` (the direct
    sum's, :func:`.direct_conv.cost`)."""
    return (
        spec.out_channels // spec.groups <= _tuning.DOT_MAX_OUT
        and mean_run(spec) >= _tuning.DOT_MIN_RUN
        and cost(spec) < planes
    )


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """The convolution of a batched channels-last x ``(N, *spatial, C_in)``; the output channels-last."""
    batch = x.shape[0]
    out = geometry.empty_out(batch, spec.out_channels, spec.output_size, x.dtype, True)
    if out.size == 0:
        return out
    if x.strides[-1] != x.itemsize or (fused(spec) and x.strides[-2] != x.shape[-1] * x.itemsize):
        x = np.ascontiguousarray(x)  # the runs need the channels (fused: the last axis's pixels too) contiguous
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    # (C_out, C_in/G, K) -> (C_out, K, C_in/G): each tap's weights contiguous along the input channels
    w = np.ascontiguousarray(weight.reshape(spec.out_channels, cg_in, taps).transpose(0, 2, 1), dtype=x.dtype)
    b = geometry.bias_by_group(bias, spec, x.dtype).reshape(-1)
    axes = geometry.axes3(spec)
    item = x.itemsize
    unit = (0,) * (3 - spec.ndim)  # the padded axes' strides
    x_strides = (x.strides[0] // item, *unit, *(st // item for st in x.strides[1:-1]))
    pairs = batch * axes.size_out[0] * axes.size_out[1]
    wanted = _tuning.KERNEL_RANGES_PER_THREAD * team.threads()
    blocks = min(axes.size_out[2], max(1, -(-wanted // pairs)))  # cut the last axis where the pairs are few
    step = -(-axes.size_out[2] // blocks)
    blocks = -(-axes.size_out[2] // step)
    strides, dims = kernels.index_arrays(x_strides, (groups, cg_in, cg_out, int(fused(spec)), step, blocks))
    geo, spans = geometry.span_tables(axes)
    kernel = _kernel()
    # x's memory from its first element, read through its own strides (a cropped view is not copied)
    x_flat, w_flat, out_flat = kernels.flat(x), w.reshape(-1), out.reshape(-1)
    seconds = cost(spec) * batch

    def run(start: int, stop: int) -> None:
        kernel(x_flat, w_flat, b, out_flat, strides, geo, spans, dims, start, stop)

    team.ranges(run, pairs * blocks, seconds / _tuning.KERNEL_ELEMENT_SECONDS)
    return out


@functools.cache
def _kernel() -> Any:
    def channel_dots(x, w, bias, out, xs, geo, spans, dims, start, stop):  # type: ignore[no-untyped-def]
        # x flat (N, n1, n2, n3, C) from its first element, with element strides xs (N, axis 1, 2, 3; the
        # channels contiguous, and with ``joined`` axis 3's pixels a channel count apart); w flat (C_out, K,
        # C_in/G); out flat (N, o1, o2, o3, C_out), contiguous. geo: per 3-D padded axis k, s, d, lo, o (each three
        # long); spans (6, max O): per axis two rows, each output's first and stop tap that meet x
        # (:func:`.geometry.span_tables`). Job = (sample, o1, o2, block of o3). Each output sums, over the taps
        # that meet x, the dot product of x's run of the group's channels at the tap's pixel with the tap's
        # weights (with ``joined``, the taps along axis 3 one run). Indices are unsigned, so that none is checked for
        # wrap-around (which would keep the loops scalar).
        k2, k3 = geo[1], geo[2]
        s1, s2, s3 = geo[3], geo[4], geo[5]
        d1, d2, d3 = geo[6], geo[7], geo[8]
        l1, l2, l3 = geo[9], geo[10], geo[11]
        o1n, o2n, o3n = geo[12], geo[13], geo[14]
        groups, cg_in, cg_out, joined, step, blocks = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]
        c_out = groups * cg_out
        k_all = geo[0] * k2 * k3
        channel = k_all * cg_in  # from one output channel's weights to the next's
        zero = x.dtype.type(0)
        for job in range(start, stop):
            block = job % blocks
            rest = job // blocks
            o2 = rest % o2n
            rest = rest // o2n
            o1 = rest % o1n
            n = rest // o1n
            i1 = o1 * s1 - l1
            i2 = o2 * s2 - l2
            t1a, t1b = spans[0, o1], spans[1, o1]
            t2a, t2b = spans[2, o2], spans[3, o2]
            for o3 in range(block * step, min((block + 1) * step, o3n)):
                i3 = o3 * s3 - l3
                t3a, t3b = spans[4, o3], spans[5, o3]
                if joined:
                    runs, length = min(1, t3b - t3a), (t3b - t3a) * cg_in
                else:
                    runs, length = t3b - t3a, cg_in
                ob = (((n * o1n + o1) * o2n + o2) * o3n + o3) * c_out
                for g in range(groups):
                    co = 0
                    while co < cg_out:
                        width = 4 if cg_out - co >= 4 else (2 if cg_out - co >= 2 else 1)
                        a0 = a1 = a2 = a3 = zero
                        for t1 in range(t1a, t1b):
                            for t2 in range(t2a, t2b):
                                row = n * xs[0] + (i1 + t1 * d1) * xs[1] + (i2 + t2 * d2) * xs[2] + g * cg_in
                                tap = (t1 * k2 + t2) * k3 + t3a
                                for r in range(runs):
                                    xb = np.uint64(row + (i3 + (t3a + r) * d3) * xs[3])
                                    wb = np.uint64(((g * cg_out + co) * k_all + tap + r) * cg_in)
                                    if width == 4:
                                        wb1 = wb + np.uint64(channel)
                                        wb2 = wb1 + np.uint64(channel)
                                        wb3 = wb2 + np.uint64(channel)
                                        for e in range(length):
                                            u = np.uint64(e)
                                            v = x[xb + u]
                                            a0 += v * w[wb + u]
                                            a1 += v * w[wb1 + u]
                                            a2 += v * w[wb2 + u]
                                            a3 += v * w[wb3 + u]
                                    elif width == 2:
                                        wb1 = wb + np.uint64(channel)
                                        for e in range(length):
                                            u = np.uint64(e)
                                            v = x[xb + u]
                                            a0 += v * w[wb + u]
                                            a1 += v * w[wb1 + u]
                                    else:
                                        for e in range(length):
                                            u = np.uint64(e)
                                            a0 += x[xb + u] * w[wb + u]
                        c = g * cg_out + co
                        out[ob + c] = a0 + bias[c]
                        if width > 1:
                            out[ob + c + 1] = a1 + bias[c + 1]
                        if width > 2:
                            out[ob + c + 2] = a2 + bias[c + 2]
                            out[ob + c + 3] = a3 + bias[c + 3]
                        co += width

    return kernels.compile_kernel(channel_dots)
