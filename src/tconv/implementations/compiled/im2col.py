"""The compiled im2col and what is built on it: the convolution (``jit_gemm``) and the gradients.

Convolution
    im2col into ``cols (C_in * K, N * P_out)`` (x first copied into zero-padded planes, nothing copied when
    no window reaches the padding; then every column filled with no border test: one contiguous copy per
    output row at stride 1 along the last axis, else one flat gather), then
    ``W @ cols`` and one pass that adds the bias and writes the caller's layout.
Gradients
    The transposed convolution's input gradient and weight gradient share one im2col of the output gradient
    ``cols_gy``: ``dx = W @ cols_gy`` and ``dW = x @ cols_gy^T``. The convolution's weight gradient is
    ``dy @ im2col(x)^T``. On a team the weight gradient is summed a fixed bin of chunks at a time
    (:func:`.schedule.each_dealt`, :class:`.workspace.Partials`); a batch smaller
    than the team (channels-first) is cut into blocks of x's pixels (:func:`_grads_in_pixel_blocks`).

The module is long because the convolution and the gradients share the im2col, its split into boxes by the taps
(:func:`_tap_split`, :func:`_by_boxes`) and its schedules; apart, each would repeat them.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, machine, patch_conv, schedule, team, transpose
from .workspace import Partials, contiguous, row_length, scratch, workspace, zero_border


def im2col(grouped: np.ndarray, spec: ConvSpec, size_in: tuple[int, ...], size_out: tuple[int, ...]) -> np.ndarray:
    """``cols (G, C/G * K, N * P_out)`` of a forward convolution's input ``(N, G, C/G, s1, s2, s3)``, in this
    thread's buffer: x copied into zero-padded planes, then every column filled (:func:`.kernels.im2col`)."""
    batch, groups, cg = grouped.shape[:3]
    tables = geometry.im2col_geometry(geometry.axes3(spec, size_in, size_out))
    channels = groups * cg
    planes = _padded_planes(grouped, tables)
    count = batch * tables.rows.size
    cols = workspace((channels, tables.taps.size, row_length(count, grouped.dtype.itemsize)), grouped.dtype)
    kernels.im2col(planes, cols, tables.rows.size, tables)
    return cols[:, :, :count].reshape(groups, cg * tables.taps.size, count)


def _padded_planes(grouped: np.ndarray, tables: geometry.Im2colGeometry) -> np.ndarray:
    """``(N, G, C/G, s1, s2, s3)`` as zero-padded flat planes ``(N, C, L)`` for the gather (this thread's
    buffer; x itself when no window reaches the padding and x is contiguous)."""
    batch, channels = grouped.shape[0], grouped.shape[1] * grouped.shape[2]
    (a1, b1), (a2, b2), (a3, b3) = tables.dst
    (c1, e1), (c2, e2), (c3, e3) = tables.src
    x = geometry.merge_groups(grouped)[:, :, c1:e1, c2:e2, c3:e3]
    if x.shape[2:] == tables.span and x.flags.c_contiguous:
        return x.reshape(batch, channels, -1)  # no padding and nothing cropped: x's planes as they are
    plane = workspace((batch, channels, *tables.span), grouped.dtype, slot=2)
    where = (slice(None), slice(None), slice(a1, b1), slice(a2, b2), slice(a3, b3))
    inner = plane[where]
    if inner.size < plane.size:
        zero_border(plane, where)
    if not transpose.planes(inner, x):  # a channels-last x: in tiles where it is large
        inner[...] = x
    return plane.reshape(batch, channels, -1)


def _pixel_major_products(cols: np.ndarray, w: np.ndarray, bias: np.ndarray | None, rows: np.ndarray) -> None:
    """``rows[:, g] = cols[g]^T @ w[g]^T (+ bias[g])`` for each group: ``cols (G', C/G * K, P)``, ``w (G', C_out/G,
    C/G * K)``, ``rows (P, G', C_out/G)`` (a channels-last output's pixels, each group's rows a channel count
    apart): the products written pixel-major where the output is, instead of channel-major and then copied
    across (a transposing copy of the whole output, the larger the more output channels)."""
    for g in range(cols.shape[0]):
        target = rows[:, g]
        team.matmul(cols[g].T, w[g].T, out=target)
        if bias is not None:
            target += bias[g]


def _write_channels_first_matrix(y: np.ndarray, bias: np.ndarray | None, out_grouped: np.ndarray) -> None:
    """``y (G', C/G, nb * P)`` (+ ``bias (G', C/G)``) -> ``out_grouped (nb, G', C/G, s1, s2, s3)``."""
    groups, cg = y.shape[:2]
    nb = out_grouped.shape[0]
    y_planes = y.reshape(groups, cg, nb, *out_grouped.shape[3:])
    y_grouped = geometry.moved(y_planes, 2, 0)
    if bias is None:
        # channels-last out: a transposing copy, in tiles where it is large (transpose.copy)
        if not transpose.copy(geometry.moved(out_grouped, 0, 2), y_planes):
            out_grouped[...] = y_grouped
    else:
        np.add(y_grouped, bias.reshape(1, groups, cg, 1, 1, 1), out=out_grouped)


def times_transposed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b^T`` over the last two axes (a weight gradient: both operands have the pixels on their last axis),
    computed as ``(b @ a^T)^T`` where ``b`` has more rows: OpenBLAS's product with a transposed right operand
    runs up to twice as fast with the taller operand on the left (``docs/design.md``, weight gradients)."""
    if b.shape[-2] > a.shape[-2]:
        return team.matmul(b, a.swapaxes(-1, -2)).swapaxes(-1, -2)
    return team.matmul(a, b.swapaxes(-1, -2))


def _tap_split(
    spec: ConvSpec,
    size_in: tuple[int, ...],
    size_out: tuple[int, ...],
    batch: int,
    rows: int,
    inner: int,
    channels_last: bool,
    products: int,
    itemsize: int,
) -> geometry.TapClasses | None:
    """:func:`_decided_tap_split`, decided once per call description and the tuning constants it reads (part of
    its cache key, so that a changed constant is a new decision): on a call of 0.1 ms the decision took a sixth
    of the time, every call."""
    constants = (
        _tuning.CHUNK_BYTES,
        _tuning.TEAM_CHUNK_BYTES,
        machine.gemm_rate(),
        _tuning.GEMM_FULL_RATE_INNER,
        _tuning.TAP_CLASS_CALL_COST,
        _tuning.TAP_CLASS_AXIS_KEPT,
        _tuning.COPY_STREAM,
        _tuning.COLUMN_STREAM,
    )
    return _decided_tap_split(spec, size_in, size_out, batch, rows, inner, channels_last, products, itemsize, constants)


@functools.lru_cache(maxsize=1024)
def _decided_tap_split(
    spec: ConvSpec,
    size_in: tuple[int, ...],
    size_out: tuple[int, ...],
    batch: int,
    rows: int,
    inner: int,
    channels_last: bool,
    products: int,
    itemsize: int,
    constants: tuple[float, ...],
) -> geometry.TapClasses | None:
    """The im2col's outputs in boxes by the taps they read (:func:`.geometry.tap_classes`), for one group,
    where the cost model puts the boxes' ``products`` products (``rows`` rows, over ``inner`` channels a tap,
    with ``batch`` samples' columns; each of them reads or writes one array of ``rows`` channels at the
    outputs' positions) below the whole ones. The boxes save the padding's share of each product; they cost
    ``TAP_CLASS_CALL_COST`` a box, thinner products (fewer than ``GEMM_FULL_RATE_INNER`` columns run slower
    in proportion), the weight's cut per box at ``COPY_STREAM``, and, channels-first, the pixel-major copies
    of the input and of each product's array at ``COLUMN_STREAM``. None where the whole products are
    cheaper, or where the whole batch's zero-padded planes or the weight's cuts (both made once a call, of
    ``itemsize``-byte elements) would exceed ``CHUNK_BYTES``, or one sample's columns ``TEAM_CHUNK_BYTES``
    (the boxes are never cut below whole samples). ``constants`` (the values read here) only key the cache."""
    del constants
    if spec.groups != 1 or batch == 0:
        return None
    axes = geometry.axes3(spec, size_in, size_out)
    split = geometry.tap_classes(axes)
    taps, pixels, item = math.prod(spec.kernel_size), math.prod(size_out), float(itemsize)
    planes = item * batch * inner * math.prod(geometry.im2col_geometry(axes).span)
    cut = sum(c.tap_index.size for c in split.classes)
    cuts = item * rows * inner * cut
    if len(split.classes) == 1 or max(planes, cuts) > _tuning.CHUNK_BYTES:
        return None
    if item * inner * taps * pixels > _tuning.TEAM_CHUNK_BYTES:
        return None

    def product(kept_taps: int, columns: int) -> float:
        rate = machine.gemm_rate() * min(1.0, columns / _tuning.GEMM_FULL_RATE_INNER)
        return 2.0 * rows * inner * kept_taps * columns / rate

    saved = products * (
        product(taps, batch * pixels) - sum(product(c.tap_index.size, batch * c.rows.size) for c in split.classes)
    )
    cost = len(split.classes) * _tuning.TAP_CLASS_CALL_COST + cuts / _tuning.COPY_STREAM
    if not channels_last:
        cost += 2 * (planes + products * item * batch * rows * pixels) / _tuning.COLUMN_STREAM
    return split if cost < saved else None


def _by_boxes(
    split: geometry.TapClasses,
    source: np.ndarray,
    axes: geometry.Axes3,
    threads: int,
    weight: np.ndarray | None,
    out_grouped: np.ndarray | None,
    bias: np.ndarray | None,
    data: np.ndarray | None = None,
) -> np.ndarray | None:
    """An im2col and its products box by box (:func:`_tap_split`), one group, pixel-major: ``source (N, 1, C,
    s1, s2, s3)`` (either layout) is copied once into zero-padded channel-minor planes ``(N, L, C)``
    (``axes``: the im2col's 3-D padded axes); then each job, a box and a block of
    whole samples, gathers the box's columns ``(nb * P_box, K_box * C)``, each (output, tap) one run of the
    channels (:func:`.kernels.pixel_rows`), and

    * with ``weight (R, C, K)``: writes ``cols @ weight[box's taps]^T`` (tap-major weights, ``(R, K_box * C)``,
      cut once a call) into the box of the output ``out_grouped (N, 1, R, ...)``, pixel-major: straight into
      a channels-last output, else into a buffer copied into the output (with ``bias (R,)``) at the end;
    * with ``data (N, 1, R', ...)`` (at the outputs' positions: the other operand of a weight gradient): adds
      the box's rows of ``data`` (pixel-major) times ``cols`` into the box's taps of a tap-major weight
      gradient ``(R', k1, k2, k3, C)``, and returns it as ``(R', C, K)``."""
    batch, _, cg = source.shape[:3]
    item = source.dtype.itemsize
    planes = _channel_minor_planes(source, geometry.im2col_geometry(axes))  # read by all; no job touches slot 2
    bins = _box_jobs(split, batch, cg * item, threads, parts=data is not None)
    weights: list[np.ndarray] = []
    y_pixels = out_pixels = None
    if weight is not None and out_grouped is not None:
        rows = weight.shape[0]
        w_tm = contiguous(geometry.moved(weight, 2, 1), slot=5)  # (R, K, C)
        sizes = [rows * cls.tap_index.size * cg for cls in split.classes]
        buffer = scratch((sum(sizes),), weight.dtype, slot=6)  # each box's taps of the weight (read by all)
        for cls, start, size in zip(split.classes, np.cumsum([0, *sizes[:-1]]).tolist(), sizes):
            box = buffer[start : start + size].reshape(rows, cls.tap_index.size, cg)
            np.take(w_tm, cls.tap_index, axis=1, out=box, mode="clip")  # (mode "raise" buffers ``out``)
            weights.append(box.reshape(rows, -1))
        out_pixels = geometry.moved(out_grouped[:, 0], 1, -1)  # (N, O1, O2, O3, R)
        y_pixels = out_pixels
        if out_pixels.strides[-1] != out_pixels.itemsize:  # channels-first: pixel-major buffer, copied at the end
            y_pixels = scratch(out_pixels.shape, out_pixels.dtype, slot=4)
    data_rows, grads = None, None
    if data is not None:  # the weight gradient's other operand, pixel-major (N, P, R'); one sum a bin
        data_pixels = geometry.moved(data[:, 0], 1, -1)
        data_rows = contiguous(data_pixels, slot=7).reshape(batch, -1, data_pixels.shape[-1])
        grads = [np.zeros((data_pixels.shape[-1], *axes.kernel, cg), dtype=source.dtype) for _ in bins]

    def work(which: int) -> None:
        for job in bins[which]:
            run_job(job, None if grads is None else grads[which])

    def run_job(job: tuple[int, int, int], grad: np.ndarray | None) -> None:
        index, n0, n1 = job
        cls = split.classes[index]
        nb, kc, pc = n1 - n0, cls.tap_index.size, cls.rows.size
        (o1, e1), (o2, e2), (o3, e3) = cls.outputs
        if kc == 0:  # windows that read the padding only
            if y_pixels is not None:
                y_pixels[n0:n1, o1:e1, o2:e2, o3:e3] = 0
            return
        cols = workspace((nb, pc, kc, cg), source.dtype)
        kernels.pixel_rows(planes[n0:n1], cols, cls.rows, cls.tap_offsets)
        cols = cols.reshape(nb * pc, kc * cg)
        if y_pixels is not None:
            y = team.matmul(cols, weights[index].T)  # (nb * P_box, R)
            y_pixels[n0:n1, o1:e1, o2:e2, o3:e3] = y.reshape(nb, e1 - o1, e2 - o2, e3 - o3, -1)
        if grad is not None and data_rows is not None:
            r = data_rows.shape[2]
            box_rows = workspace((nb, pc, 1, r), source.dtype, slot=3)
            kernels.pixel_rows(data_rows[n0:n1], box_rows, cls.out_rows, cls.out_offset)
            part = team.matmul(box_rows.reshape(nb * pc, r).T, cols)  # (R', K_box * C)
            (a1, b1), (a2, b2), (a3, b3) = cls.taps  # the box's taps: a block of the tap-major gradient
            grad[:, a1:b1, a2:b2, a3:b3] += part.reshape(r, b1 - a1, b2 - a2, b3 - a3, cg)

    schedule.each(work, range(len(bins)), threads)
    if y_pixels is not None and out_pixels is not None:
        if y_pixels is not out_pixels:
            out_pixels[...] = y_pixels
        if bias is not None:
            out_pixels += bias
    if grads is None:
        return None
    total = grads[0]
    for other in grads[1:]:
        total += other
    return np.ascontiguousarray(geometry.moved(total.reshape(total.shape[0], -1, cg), 2, 1))


def _block_size(block: tuple[int, int, int, int, int, int]) -> int:
    """An im2col block's ``(n0, n1, g0, g1, c0, c1)`` share of the work (samples x groups x channels)."""
    n0, n1, g0, g1, c0, c1 = block
    return (n1 - n0) * (g1 - g0) * (c1 - c0)


def _box_jobs(
    split: geometry.TapClasses, batch: int, pair_bytes: int, threads: int, parts: bool = False
) -> list[list[tuple[int, int, int]]]:
    """The boxes' jobs ``(box, n0, n1)`` (each box in blocks of whole samples whose columns, ``pair_bytes`` a
    (pixel, tap) pair, fit the chunk size, in a multiple of ``threads`` blocks where the batch allows) dealt out to
    one bin a thread (:func:`.schedule.deal`). Each bin sums its own weight gradient in its jobs' order and the bins
    are added in their order: the same sums in the same order on every call, whichever thread runs which bin. More
    bins than threads measured 1.1-2x slower (a whole-gradient sum each), and the jobs' parts kept and added in
    order at the end 1.1-1.3x. Where each job's product is such a ``part``, added into its bin's gradient (an add of
    ``BOX_PART_ADD_MACS`` multiply-adds' time an element), each box in as few blocks as the chunk size allows is
    taken instead where its largest bin costs less so: the generator's first layer's weight gradient (nine boxes,
    64 samples) split each box in two, and its eighteen adds took 5.7 of its 40 thread-milliseconds."""
    budget = _tuning.TEAM_CHUNK_BYTES if threads > 1 else None

    def dealt(multiple: int) -> tuple[list[list[tuple[int, int, int]]], float]:
        """The jobs (each box's samples in a multiple of ``multiple`` blocks where the batch allows) dealt out,
        and the largest bin's cost in multiply-adds a (channel, channel) pair, with the adds of its parts."""
        jobs = []
        for index, cls in enumerate(split.classes):
            per_sample = max(1, cls.rows.size * cls.tap_index.size * pair_bytes)
            blocks = schedule.im2col_blocks(batch, 1, 1, per_sample, budget, multiple)
            jobs += [(index, n0, n1) for n0, n1, *_ in blocks]
        sizes = [(n1 - n0) * split.classes[i].rows.size * split.classes[i].tap_index.size for i, n0, n1 in jobs]
        bins = schedule.deal(sizes, threads)
        add = _tuning.BOX_PART_ADD_MACS
        costs = [sum(sizes[j] + add * split.classes[jobs[j][0]].tap_index.size for j in b) for b in bins]
        return [[jobs[j] for j in b] for b in bins], max(costs, default=0.0)

    bins, cost = dealt(threads)
    if parts and threads > 1:  # each job's part is added into its bin's gradient: fewer, larger jobs where they balance
        whole, whole_cost = dealt(1)
        if whole_cost < cost:
            return whole
    return bins


def _channel_minor_planes(source: np.ndarray, tables: geometry.Im2colGeometry) -> np.ndarray:
    """``source (N, 1, C, s1, s2, s3)`` as zero-padded channel-minor flat planes ``(N, L, C)`` (this thread's
    buffer, slot 2, where it fits ``CHUNK_BYTES``), the plane the im2col's windows span (``tables``)."""
    batch, _, cg = source.shape[:3]
    (a1, b1), (a2, b2), (a3, b3) = tables.dst
    (c1, e1), (c2, e2), (c3, e3) = tables.src
    plane = scratch((batch, *tables.span, cg), source.dtype, slot=2)
    where = (slice(None), slice(a1, b1), slice(a2, b2), slice(a3, b3))
    inner = plane[where]
    if inner.size < plane.size:
        zero_border(plane, where)
    interior = source[:, 0, :, c1:e1, c2:e2, c3:e3]
    if not transpose.planes(geometry.moved(inner, -1, 1), interior):  # a channels-first source: in tiles
        inner[...] = geometry.moved(interior, 1, -1)
    return plane.reshape(batch, -1, cg)


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The (forward) convolution of a batched x in the caller's layout: im2col, one product per group; where
    the windows are patches of a channels-last x, one gather and one product (:func:`.patch_conv.conv`)."""
    span = math.prod(o * st for o, st in zip(spec.output_size, spec.stride)) * spec.in_channels * x.shape[0]
    if (
        patch_conv.fits(spec, channels_last)
        and 0 < span * x.dtype.itemsize <= _tuning.CHUNK_BYTES
        and spec.out_channels
    ):
        return patch_conv.conv(x, weight, bias, spec)  # its padded span and columns at most CHUNK_BYTES each
    groups, batch = spec.groups, x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    out, out_grouped, x_grouped = geometry.grouped_call(x, spec, channels_last)
    taps = math.prod(spec.kernel_size)
    w_matrix = weight.reshape(groups, cg_out, cg_in * taps)
    bias_g = None if bias is None else np.asarray(bias, dtype=x.dtype).reshape(groups, cg_out)
    p_out = math.prod(spec.output_size)
    out_rows = out.reshape(batch * p_out, groups, cg_out) if channels_last else None  # (N * P_out, G, C/G)
    total = None

    def work(block: tuple[int, int, int, int, int, int]) -> None:
        nonlocal total
        n0, n1, g0, g1, c0, c1 = block
        cols = im2col(x_grouped[n0:n1, g0:g1, c0:c1], spec, spec.input_size, spec.output_size)
        w_block = w_matrix[g0:g1, :, c0 * taps : c1 * taps]
        shape = (g1 - g0, cg_out, cols.shape[2])  # (G', cg_out, nb * P_out)
        bias_block = None if bias_g is None else bias_g[g0:g1]
        # Channels-last output, all channels in one block: pixel-major products, straight into the result.
        if out_rows is not None and (c0, c1) == (0, cg_in):
            _pixel_major_products(cols, w_block, bias_block, out_rows[n0 * p_out : n1 * p_out, g0:g1])
            return
        # One sample of channels-first output in one block: the product goes straight into the result.
        if (c0, c1) == (0, cg_in) and n1 - n0 == 1 and not channels_last and out_grouped[n0].flags.c_contiguous:
            target = out_grouped[n0, g0:g1].reshape(shape)  # a view: the sample's channels are contiguous
            team.matmul(w_block, cols, out=target)
            if bias_block is not None:
                target += bias_block[:, :, None]
            return
        if c0 == 0:  # channel blocks (one thread) are summed in order, in this thread's buffers
            y = team.matmul(w_block, cols, out=scratch(shape, x.dtype, slot=4))
        else:
            assert total is not None  # the sample's first channel block ran before, in this thread
            y = total
            y += team.matmul(w_block, cols, out=scratch(shape, x.dtype, slot=5))
        if c1 < cg_in:
            total = y  # the sample's next channel block adds to it
        else:
            _write_channels_first_matrix(y, bias_block, out_grouped[n0:n1, g0:g1])

    bytes_per = geometry.im2col_bytes(spec, spec.input_size, spec.output_size, x.dtype.itemsize)
    threads = schedule.team_threads(batch, groups * cg_in, bytes_per, schedule.Cut.PIXELS)
    if threads > batch:  # a batch smaller than the team, cut into blocks of output pixels
        return _conv_in_pixel_blocks(x_grouped, w_matrix, bias_g, spec, out, channels_last, threads)
    split = _tap_split(
        spec, spec.input_size, spec.output_size, batch, cg_out, cg_in, channels_last, 1, x.dtype.itemsize
    )
    if split is not None:  # the windows at the borders reach into the padding: products box by box
        bias_1 = None if bias_g is None else bias_g[0]
        w3 = weight.reshape(cg_out, cg_in, -1)
        _by_boxes(split, x_grouped, geometry.axes3(spec), threads, w3, out_grouped, bias_1)
        return out
    schedule.each(work, *schedule.im2col_schedule(batch, groups, cg_in, bytes_per, threads))
    return out


def _conv_in_pixel_blocks(
    x_grouped: np.ndarray,
    w_matrix: np.ndarray,
    bias_g: np.ndarray | None,
    spec: ConvSpec,
    out: np.ndarray,
    channels_last: bool,
    threads: int,
) -> np.ndarray:
    """:func:`conv` of a batch smaller than the team, on the team in blocks of each sample's output pixels: x is
    padded once, then each block's columns are gathered (the im2col's table of window offsets cut to the
    block) and multiplied into the block of the output while they are in the cache, every thread with its own
    buffers and BLAS on one thread. Without it such a call would run its one sample's im2col and product
    chunk by chunk in one thread."""
    batch, groups, cg_in = x_grouped.shape[:3]
    cg_out = w_matrix.shape[1]
    tables = geometry.im2col_geometry(geometry.axes3(spec, spec.input_size, spec.output_size))
    taps, p_out = tables.taps.size, tables.rows.size
    planes = _padded_planes(x_grouped, tables)  # read by every thread; work() never touches slot 2
    per_pixel = groups * cg_in * taps * x_grouped.dtype.itemsize
    count = max(threads, -(-p_out * per_pixel // _tuning.TEAM_CHUNK_BYTES))
    step = schedule.even_step(p_out, max(1, -(-p_out // (-(-count // threads) * threads))))
    rows = out.reshape(batch, p_out, groups, cg_out) if channels_last else out.reshape(batch, groups, cg_out, p_out)
    bias_column = None if bias_g is None else bias_g[:, :, None]

    def work(block: tuple[int, int, int]) -> None:
        n, o0, o1 = block
        width = o1 - o0
        cols = workspace((groups * cg_in, taps, row_length(width, x_grouped.dtype.itemsize)), x_grouped.dtype)
        kernels.im2col(planes[n : n + 1], cols, width, tables, o0)
        gathered = cols[:, :, :width].reshape(groups, cg_in * taps, width)
        if channels_last:  # pixel-major products, straight into the result
            _pixel_major_products(gathered, w_matrix, bias_g, rows[n, o0:o1])
            return
        y = team.matmul(w_matrix, gathered, out=scratch((groups, cg_out, o1 - o0), x_grouped.dtype, slot=4))
        if bias_column is not None:
            y += bias_column
        rows[n, :, :, o0:o1] = y

    team.run(work, [(n, o0, min(o0 + step, p_out)) for n in range(batch) for o0 in range(0, p_out, step)], threads)
    return out


def conv_transpose_grads(
    x: np.ndarray, weight: np.ndarray | None, gy: np.ndarray, spec: ConvSpec, channels_last: bool
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(dx, dW)`` of a transposed convolution, both from one im2col of the output gradient; without the
    weight, only dW (dx is None). dW has the weight's shape ``(C_in, C_out/G, *k)``."""
    groups, d = spec.groups, spec.ndim
    batch = x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    weight_shape = (spec.in_channels, cg_out, *spec.kernel_size)
    x_grouped = geometry.grouped_view(x, groups, d, channels_last)
    gy_grouped = geometry.grouped_view(gy, groups, d, channels_last)
    dx = (
        None if weight is None else geometry.empty_out(batch, spec.in_channels, spec.input_size, x.dtype, channels_last)
    )
    dx_grouped = None if dx is None else geometry.grouped_view(dx, groups, d, channels_last)
    w_matrix = None if weight is None else weight.reshape(groups, cg_in, cg_out * taps)
    bytes_per = geometry.im2col_bytes(spec, spec.output_size, spec.input_size, x.dtype.itemsize)
    cut = schedule.Cut.SAMPLES if channels_last else schedule.Cut.PIXELS
    threads = schedule.team_threads(batch, groups * cg_out, bytes_per, cut)
    if threads > batch:  # a batch smaller than the team, cut into blocks of pixels
        return dx, _grads_in_pixel_blocks(x_grouped, w_matrix, gy_grouped, spec, dx, threads).reshape(weight_shape)
    blocks, threads = schedule.im2col_schedule(batch, groups, cg_out, bytes_per, threads)
    products = 1 if weight is None else 2
    split = _tap_split(
        spec, spec.output_size, spec.input_size, batch, cg_in, cg_out, channels_last, products, x.dtype.itemsize
    )
    if split is not None:  # the windows at the borders reach into the padding: products box by box
        axes = geometry.axes3(spec, spec.output_size, spec.input_size)
        w3 = None if weight is None else weight.reshape(cg_in, cg_out, -1)
        grad = _by_boxes(split, gy_grouped, axes, threads, w3, dx_grouped, None, x_grouped)
        assert grad is not None
        return dx, grad.reshape(weight_shape)
    dw = Partials(np.zeros((groups, cg_in, cg_out * taps), dtype=x.dtype))
    total = None

    def work(chunk: tuple[int, int, int, int, int, int], which: int) -> None:
        nonlocal total
        n0, n1, g0, g1, c0, c1 = chunk
        # The input gradient is the convolution of gy with the same geometry, read at x's positions.
        cols = im2col(gy_grouped[n0:n1, g0:g1, c0:c1], spec, spec.output_size, spec.input_size)  # (G', cb*K, nb*P)
        block = slice(c0 * taps, c1 * taps)
        if dx_grouped is not None and w_matrix is not None:
            part = team.matmul(w_matrix[g0:g1, :, block], cols)
            total = part if c0 == 0 else total + part  # channel blocks (one thread) are summed in order
            if c1 == cg_out:
                _write_channels_first_matrix(total if c0 else part, None, dx_grouped[n0:n1, g0:g1])
        x_matrix = geometry.grouped_matrix(x_grouped[n0:n1, g0:g1], slot=3)  # (G', cg_in, nb*P_in)
        dw.target(which)[g0:g1, :, block] += times_transposed(x_matrix, cols)

    schedule.each_dealt(work, blocks, threads, [_block_size(block) for block in blocks])
    return dx, dw.sum().reshape(weight_shape)


def _grads_in_pixel_blocks(
    x_grouped: np.ndarray,
    w_matrix: np.ndarray | None,
    gy_grouped: np.ndarray,
    spec: ConvSpec,
    dx: np.ndarray | None,
    threads: int,
) -> np.ndarray:
    """:func:`conv_transpose_grads` of a batch smaller than the team (channels-first), on the team in blocks
    of x's pixels: gy is padded once, then each block's columns are gathered (the im2col's table of window
    offsets cut to the block), multiplied into the block of ``dx = W @ cols`` and into the thread's partial
    ``dW += x_block @ cols^T``, while they are in the cache. Returns dW ``(G, C_in/G, C_out/G * K)``."""
    batch, groups, cg_out = gy_grouped.shape[:3]
    cg_in = x_grouped.shape[2]
    tables = geometry.im2col_geometry(geometry.axes3(spec, spec.output_size, spec.input_size))
    taps, p_in = tables.taps.size, tables.rows.size
    planes = _padded_planes(gy_grouped, tables)  # read by every thread; work() never touches slot 2
    x_flat = np.ascontiguousarray(geometry.merge_groups(x_grouped)).reshape(batch, groups, cg_in, p_in)
    dx_flat = None if dx is None else dx.reshape(batch, groups, cg_in, p_in)
    per_pixel = groups * cg_out * taps * batch * x_grouped.dtype.itemsize
    count = max(threads, -(-p_in * per_pixel // _tuning.TEAM_CHUNK_BYTES))
    step = schedule.even_step(p_in, max(1, -(-p_in // (-(-count // threads) * threads))))
    dw = Partials(np.zeros((groups, cg_in, cg_out * taps), dtype=x_grouped.dtype))

    def work(block: tuple[int, int], which: int) -> None:
        o0, o1 = block
        columns = batch * (o1 - o0)
        cols = workspace((groups * cg_out, taps, row_length(columns, x_grouped.dtype.itemsize)), x_grouped.dtype)
        kernels.im2col(planes, cols, o1 - o0, tables, o0)
        cols_g = cols[:, :, :columns].reshape(groups, cg_out * taps, columns)
        xb = geometry.moved(x_flat[:, :, :, o0:o1], 0, 2).reshape(groups, cg_in, -1)  # (G, cg_in, N * ob)
        target = dw.target(which)
        for g in range(groups):
            if dx_flat is not None and w_matrix is not None:
                part = team.matmul(w_matrix[g], cols_g[g]).reshape(cg_in, batch, o1 - o0)
                dx_flat[:, g, :, o0:o1] = geometry.moved(part, 1, 0)
            target[g] += times_transposed(xb[g], cols_g[g])

    blocks = [(o0, min(o0 + step, p_in)) for o0 in range(0, p_in, step)]
    schedule.each_dealt(work, blocks, threads, [o1 - o0 for o0, o1 in blocks])
    return dw.sum()


def conv_weight_grad(x: np.ndarray, gy: np.ndarray, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The weight gradient of a (forward) convolution, ``dy @ im2col(x)^T`` per group, in the weight's shape
    ``(C_out, C_in/G, *k)``."""
    groups, d = spec.groups, spec.ndim
    batch = x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    x_grouped = geometry.grouped_view(x, groups, d, channels_last)
    gy_grouped = geometry.grouped_view(gy, groups, d, channels_last)
    bytes_per = geometry.im2col_bytes(spec, spec.input_size, spec.output_size, x.dtype.itemsize)
    blocks, threads = schedule.im2col_schedule(batch, groups, cg_in, bytes_per)
    split = _tap_split(
        spec, spec.input_size, spec.output_size, batch, cg_out, cg_in, channels_last, 1, x.dtype.itemsize
    )
    if split is not None:  # the windows at the borders reach into the padding: products box by box
        grad = _by_boxes(split, x_grouped, geometry.axes3(spec), threads, None, None, None, gy_grouped)
        assert grad is not None
        return grad.reshape(spec.out_channels, cg_in, *spec.kernel_size)
    dw = Partials(np.zeros((groups, cg_out, cg_in * taps), dtype=x.dtype))

    def work(chunk: tuple[int, int, int, int, int, int], which: int) -> None:
        n0, n1, g0, g1, c0, c1 = chunk
        cols = im2col(x_grouped[n0:n1, g0:g1, c0:c1], spec, spec.input_size, spec.output_size)
        gy_matrix = geometry.grouped_matrix(gy_grouped[n0:n1, g0:g1], slot=3)  # (G', cg_out, nb*P_out)
        dw.target(which)[g0:g1, :, c0 * taps : c1 * taps] += times_transposed(gy_matrix, cols)

    schedule.each_dealt(work, blocks, threads, [_block_size(block) for block in blocks])
    return dw.sum().reshape(spec.out_channels, cg_in, *spec.kernel_size)
