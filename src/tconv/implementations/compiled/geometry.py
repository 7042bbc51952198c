"""The compiled path's geometry: a call's axes padded to three, views of the caller's arrays by group, the
im2col's gather tables, the pixel path's per-axis tables (shared with the depthwise kernels, which count their
pairs here too) and its cropped-tap runs. The module is long because it is the one place for every compiled
path's index arithmetic: a table made twice would be made twice per call."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ... import _tuning
from ..._geometry import overlap
from ...shapes import transposed_full_size
from ...spec import ConvSpec
from . import kernels, machine
from .workspace import contiguous


def runs_compiled(spec: ConvSpec, xp: Any) -> bool:
    """Whether the compiled kernels can run a call: NumPy arrays, rank <= 3, numba installed."""
    import array_api_compat

    return spec.ndim <= 3 and kernels.available() and bool(array_api_compat.is_numpy_namespace(xp))


def kernel_ready(a: np.ndarray) -> np.ndarray:
    """``a`` as the kernels can read it: itself when its strides are non-negative whole elements and it is
    aligned (Fortran order, zero strides and read-only arrays included), else a contiguous copy (negative
    strides: a flipped view; unaligned or byte-offset views of a buffer). Only then is anything copied."""
    item = a.dtype.itemsize
    if a.flags.aligned:
        for st in a.strides:
            if st < 0 or st % item:
                return np.ascontiguousarray(a)
        return a
    return np.ascontiguousarray(a)


def pad3(values: tuple[int, ...], fill: int) -> tuple[int, ...]:
    """Left-pad a per-axis tuple to three axes."""
    return (fill,) * (3 - len(values)) + tuple(values)


class Axes3(NamedTuple):
    """A call's per-axis numbers padded to three axes (unit axes first: size 1, kernel 1, stride 1, ...)."""

    size_in: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    low: tuple[int, ...]  # the low padding
    size_out: tuple[int, ...]


def axes3(spec: ConvSpec, size_in: tuple[int, ...] | None = None, size_out: tuple[int, ...] | None = None) -> Axes3:
    """``spec``'s axes padded to 3-D; ``size_in``/``size_out`` replace its sizes (an im2col of a gradient)."""
    if (size_in is None or size_in == spec.input_size) and (size_out is None or size_out == spec.output_size):
        return _spec_axes3(spec)
    return _axes3(spec, size_in, size_out)


@functools.lru_cache(maxsize=256)
def _spec_axes3(spec: ConvSpec) -> Axes3:
    """A call's own axes padded to 3-D, made once per spec (a layer called again reuses them)."""
    return _axes3(spec, None, None)


def _axes3(spec: ConvSpec, size_in: tuple[int, ...] | None, size_out: tuple[int, ...] | None) -> Axes3:
    return Axes3(
        pad3(spec.input_size if size_in is None else size_in, 1),
        pad3(spec.kernel_size, 1),
        pad3(spec.stride, 1),
        pad3(spec.dilation, 1),
        pad3(tuple(lo for lo, _ in spec.padding), 0),
        pad3(spec.output_size if size_out is None else size_out, 1),
    )


def moved(a: np.ndarray, source: int, destination: int) -> np.ndarray:
    """``np.moveaxis(a, source, destination)`` for one axis given as an int (negative counts from the end),
    without NumPy's argument normalisation, which costs more than the view on a call's hot path."""
    rank = a.ndim
    order = [axis for axis in range(rank) if axis != source % rank]
    order.insert(destination % rank, source % rank)
    return a.transpose(order)


def strided(
    a: np.ndarray, shape: tuple[int, ...], strides: tuple[int, ...], memory: np.ndarray | None = None
) -> np.ndarray:
    """A view with ``shape`` and ``strides`` (bytes) of the memory from ``a``'s first element, as
    ``np.lib.stride_tricks.as_strided`` makes it. Where ``memory`` (an array starting at the same element,
    ``a`` itself by default) is writeable and C-contiguous, the view is made through its buffer, about ten
    times faster (this is on every call's path; docs/design.md)."""
    memory = a if memory is None else memory
    if memory.flags.c_contiguous and memory.flags.writeable:
        return np.ndarray(shape, a.dtype, memory, 0, strides)
    return kernels.view(a, shape, strides)  # through the memory's owner, where it can


def grouped_view(a: np.ndarray, groups: int, ndim: int, channels_last: bool) -> np.ndarray:
    """Batched ``(N, C, *sp)`` or ``(N, *sp, C)`` -> a view ``(N, G, C/G, s1, s2, s3)`` (no copy), with every
    stride set: the kernels and :func:`merge_groups` read the group and channel axes' strides even where
    those axes have length 1 (where a reshape would leave any stride), and the unit axes' are 0."""
    shape, strides = _grouped_layout(a.shape, a.strides, groups, ndim, channels_last)
    return strided(a, shape, strides)


@functools.lru_cache(maxsize=1024)
def _grouped_layout(
    shape: tuple[int, ...], strides: tuple[int, ...], groups: int, ndim: int, channels_last: bool
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """:func:`grouped_view`'s shape and strides (bytes) for an array of ``shape`` and ``strides``, made once per
    layout (this is on every call's path)."""
    if channels_last:  # the channel axis moved to follow the batch axis
        shape = (shape[0], shape[-1], *shape[1:-1])
        strides = (strides[0], strides[-1], *strides[1:-1])
    n, c = shape[0], shape[1]
    unit = (1,) * (3 - ndim)
    grouped = (n, groups, c // groups, *unit, *shape[2:])
    steps = (strides[0], strides[1] * (c // groups), strides[1], *(0,) * len(unit), *strides[2:])
    return grouped, steps


def merge_groups(grouped: np.ndarray) -> np.ndarray:
    """``(N, G, C/G, ...)`` -> ``(N, C, ...)`` as a view (the group axis is a split of the channel axis)."""
    shape = (grouped.shape[0], grouped.shape[1] * grouped.shape[2], *grouped.shape[3:])
    strides = (grouped.strides[0], grouped.strides[2], *grouped.strides[3:])
    return strided(grouped, shape, strides)


class Im2colGeometry(NamedTuple):
    """An im2col's geometry (3-D padded): the zero-padded plane ``span`` (per axis, from the low padding's first
    position to the last position any window reads), where x's readable part lies in it (``src`` of x, ``dst``
    of the plane, as (start, stop) per axis), and the flat gather tables: ``rows[o]`` the plane offset of
    output ``o``'s window, ``taps[t]`` that of tap ``t`` within the window; ``runs`` the same windows as rows
    of outputs, ``(O2, O3, plane step of output axis 1, of axis 2, stride of axis 3)``."""

    span: tuple[int, ...]
    src: tuple[tuple[int, int], ...]
    dst: tuple[tuple[int, int], ...]
    rows: np.ndarray
    taps: np.ndarray
    runs: np.ndarray


@functools.lru_cache(maxsize=256)
def im2col_geometry(axes: Axes3) -> Im2colGeometry:
    """The im2col tables of one geometry (cached: their arrays are read-only and shared by every call)."""
    span, src, dst = [], [], []
    for n, k, st, d, lo, o in zip(*axes):
        # the windows of o outputs span what a transposed convolution's full output spans; plane position u
        # reads x at u - lo
        length = transposed_full_size(o, k, st, d)
        first, last = max(0, -lo), min(n, length - lo)  # x's part that some window reads
        span.append(length)
        src.append((first, max(first, last)))
        dst.append((first + lo, max(first, last) + lo))
    _, l2, l3 = span
    o1, o2, o3 = axes.size_out
    s1, s2, s3 = axes.stride
    k1, k2, k3 = axes.kernel
    d1, d2, d3 = axes.dilation
    rows = (
        np.arange(o1)[:, None, None] * (s1 * l2 * l3) + np.arange(o2)[:, None] * (s2 * l3) + np.arange(o3) * s3
    ).ravel()
    taps = (
        np.arange(k1)[:, None, None] * (d1 * l2 * l3) + np.arange(k2)[:, None] * (d2 * l3) + np.arange(k3) * d3
    ).ravel()
    rows, taps = rows.astype(np.int64), taps.astype(np.int64)
    runs = np.array([o2, o3, s1 * l2 * l3, s2 * l3, s3], dtype=np.int64)
    rows.flags.writeable = taps.flags.writeable = runs.flags.writeable = False  # cached: shared by every call
    return Im2colGeometry(tuple(span), tuple(src), tuple(dst), rows, taps, runs)


class TapClass(NamedTuple):
    """A box of outputs whose windows read input at no tap outside one box of taps (:func:`tap_classes`): the
    outputs ``(start, stop)`` and taps ``(start, stop)`` per 3-D padded axis, the taps' flat indices into the
    kernel, and the gather tables cut to them: ``rows[o]`` the plane offset of the box's output ``o``'s window
    from the box's first output's, ``tap_offsets[t]`` that first window's plane offset plus tap ``t``'s;
    ``out_rows`` and ``out_offset`` the same for the box's outputs themselves in flat unpadded output planes
    (one "tap": the other operand of a weight gradient, cut to the box)."""

    outputs: tuple[tuple[int, int], ...]
    taps: tuple[tuple[int, int], ...]
    tap_index: np.ndarray
    rows: np.ndarray
    tap_offsets: np.ndarray
    out_rows: np.ndarray
    out_offset: np.ndarray


class TapClasses(NamedTuple):
    """An im2col's outputs split into :class:`TapClass` boxes, and the share of its (output, tap) pairs they
    keep (the rest read the zero padding only)."""

    classes: tuple[TapClass, ...]
    kept: float


def _valid_taps(n: int, k: int, s: int, d: int, lo: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output ``o`` of an axis: the taps ``[a, b)`` whose input ``o*s + t*d - lo`` lies in ``[0, n)``
    (consecutive; ``a == b`` where none does)."""
    start = np.arange(out, dtype=np.int64) * s - lo  # input read by tap 0
    a = np.clip(-(start // d), 0, k)  # the first t with start + t*d >= 0 (ceil(-start / d))
    b = np.clip((n - 1 - start) // d + 1, 0, k)
    return a, np.maximum(a, b)


def _axis_segments(
    n: int, k: int, s: int, d: int, lo: int, out: int, split_at: float
) -> list[tuple[int, int, int, int]]:
    """An axis' outputs as at most three runs ``(o0, o1, a, b)`` reading no tap outside ``[a, b)``: the longest
    run of outputs that read the most taps, and the outputs before and after it, each with the union of their
    taps. One run of every tap where the runs would keep more than ``split_at`` of the axis' (output, tap)
    pairs."""
    a, b = _valid_taps(n, k, s, d, lo, out)
    if out == 0 or (b - a).sum() > split_at * out * k:
        return [(0, out, 0, k)]
    change = np.flatnonzero((np.diff(a) != 0) | (np.diff(b) != 0)) + 1
    edges = [0, *change.tolist(), out]
    runs = list(itertools.pairwise(edges))
    widest = max(int(b[o0] - a[o0]) for o0, _ in runs)
    middle = max((r for r in runs if b[r[0]] - a[r[0]] == widest), key=lambda r: r[1] - r[0])
    segments = [(o0, o1) for o0, o1 in ((0, middle[0]), middle, (middle[1], out)) if o1 > o0]
    merged: list[tuple[int, int, int, int]] = []
    for o0, o1 in segments:
        lo_tap, hi_tap = int(a[o0:o1].min()), int(b[o0:o1].max())
        merged.append((o0, o1, lo_tap, max(lo_tap, hi_tap)))
    return merged


def _box_offsets(ranges: Sequence[np.ndarray], steps: Sequence[int]) -> np.ndarray:
    """The flat offsets ``i1*steps[0] + i2*steps[1] + i3*steps[2]`` of a 3-D box of indices (``ranges``, one
    array an axis), in row-major order, read-only."""
    r1, r2, r3 = ranges
    flat = (r1[:, None, None] * steps[0] + r2[:, None] * steps[1] + r3 * steps[2]).ravel().astype(np.int64)
    flat.flags.writeable = False
    return flat


def tap_classes(axes: Axes3) -> TapClasses:
    """:func:`_tap_classes` at ``_tuning.TAP_CLASS_AXIS_KEPT`` (part of its cache key)."""
    return _tap_classes(axes, _tuning.TAP_CLASS_AXIS_KEPT)


@functools.lru_cache(maxsize=256)
def _tap_classes(axes: Axes3, split_at: float) -> TapClasses:
    """An im2col's outputs in boxes by the taps they read: along each axis whose windows reach into the padding
    for at least ``1 - split_at`` of its (output, tap) pairs, the outputs at each border apart from the rest
    (:func:`_axis_segments`), and their products over the axes. A box's product needs only its taps' columns
    and weights: the padding's zeros outside its taps are neither gathered nor multiplied. Made once per
    geometry."""
    whole = im2col_geometry(axes)
    _, l2, l3 = whole.span
    s1, s2, s3 = axes.stride
    d1, d2, d3 = axes.dilation
    _, k2, k3 = axes.kernel
    _, o2n, o3n = axes.size_out
    step = (s1 * l2 * l3, s2 * l3, s3)  # plane offset of one output along each axis
    tap_step = (d1 * l2 * l3, d2 * l3, d3)
    segments = []
    for axis in range(3):
        n, k, s, d, lo, out = (field[axis] for field in axes)
        segments.append(_axis_segments(n, k, s, d, lo, out, split_at))
    classes = []
    kept = 0
    out_step = (o2n * o3n, o3n, 1)
    for seg in itertools.product(*segments):
        first = [np.array([o0]) for o0, _, _, _ in seg]  # the box's first output, for the origins
        counts = [np.arange(o1 - o0) for o0, o1, _, _ in seg]
        tap_range = [np.arange(a, b) for _, _, a, b in seg]
        rows = _box_offsets(counts, step)
        taps = _box_offsets(tap_range, tap_step) + _box_offsets(first, step)[0]
        taps.flags.writeable = False
        tap_index = _box_offsets(tap_range, (k2 * k3, k3, 1))
        out_rows = _box_offsets(counts, out_step)
        out_offset = _box_offsets(first, out_step)
        outputs = tuple((o0, o1) for o0, o1, _, _ in seg)
        classes.append(
            TapClass(outputs, tuple((a, b) for _, _, a, b in seg), tap_index, rows, taps, out_rows, out_offset)
        )
        kept += rows.size * taps.size
    total = whole.rows.size * whole.taps.size
    return TapClasses(tuple(classes), kept / total if total else 1.0)


def im2col_bytes(spec: ConvSpec, size_in: tuple[int, ...], size_out: tuple[int, ...], itemsize: int) -> int:
    """An im2col's bytes per sample and input channel: its columns and its zero-padded plane."""
    geometry = im2col_geometry(axes3(spec, size_in, size_out))
    return (geometry.rows.size * geometry.taps.size + math.prod(geometry.span)) * itemsize


@functools.lru_cache(maxsize=1024)
def transposed_tables(n: int, k: int, s: int, d: int, lo: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output ``o``: the taps ``t`` and inputs ``j`` with ``o = j*s + t*d - lo`` (``count[o]`` of them);
    made once per axis geometry and shared by every call (no kernel writes them)."""
    pairs: list[list[tuple[int, int]]] = [[] for _ in range(out)]
    for t in range(k):
        offset = t * d - lo
        j0, j1, _ = overlap(offset, s, n, out)
        for j in range(j0, j1):
            pairs[j * s + offset].append((t, j))
    return _pair_tables(pairs)


def forward_tables(n: int, k: int, s: int, d: int, lo: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output ``o`` of a convolution: the taps ``t`` and inputs ``j = o*s + t*d - lo`` inside ``[0, n)``
    (``count[o]`` of them, in tap order), as :func:`transposed_tables` gives them for a transposed one."""
    pairs: list[list[tuple[int, int]]] = [[] for _ in range(out)]
    for t in range(k):
        offset = t * d - lo
        o0, o1, _ = overlap(offset, s, out, n)
        for o in range(o0, o1):
            pairs[o].append((t, o * s + offset))
    return _pair_tables(pairs)


@functools.lru_cache(maxsize=64)
def pair_tables(axes: Axes3, transposed: bool) -> tuple[np.ndarray, ...]:
    """The three axes' ``(count, taps, inputs)`` tables (:func:`transposed_tables`, :func:`forward_tables`), made
    once per geometry (no kernel writes them; they stay writeable arrays, as :mod:`.kernels`' tables do, so that a
    kernel keeps one compiled signature)."""
    make = transposed_tables if transposed else forward_tables
    return tuple(table for n, k, s, d, lo, o in zip(*axes) for table in make(n, k, s, d, lo, o))


@functools.lru_cache(maxsize=1024)
def pair_count(spec: ConvSpec) -> int:
    """The (output pixel, tap) pairs of one sample and channel: the product over the axes of each axis' pairs,
    counted per tap (:func:`tconv._geometry.overlap`) without building the tables (once per spec)."""
    total = 1
    for n, k, s, d, lo, o in zip(*axes3(spec)):
        if spec.transposed:  # tap t lands input j at j*s + t*d - lo
            total *= sum(max(0, j1 - j0) for j0, j1, _ in (overlap(t * d - lo, s, n, o) for t in range(k)))
        else:  # output o reads input o*s + t*d - lo
            total *= sum(max(0, o1 - o0) for o0, o1, _ in (overlap(t * d - lo, s, o, n) for t in range(k)))
    return total


def _pair_tables(pairs: list[list[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each output's ``(tap, input)`` pairs as ``(count (O,), taps (O, W), inputs (O, W))``, ``W`` the most pairs
    of any output (at least one column), unused entries zero."""
    out = len(pairs)
    width = max(1, max((len(p) for p in pairs), default=0))
    taps = np.zeros((out, width), dtype=np.int64)
    inputs = np.zeros((out, width), dtype=np.int64)
    count = np.array([len(p) for p in pairs], dtype=np.int64)
    for o, p in enumerate(pairs):
        for m, (t, j) in enumerate(p):
            taps[o, m], inputs[o, m] = t, j
    return count, taps, inputs


def cropped_tap_split(axes: Axes3) -> tuple[int, tuple[tuple[int, int, int, int], ...]] | None:
    """:func:`_cropped_tap_split` at ``_tuning.CROPPED_TAPS_MIN`` (part of its cache key)."""
    return _cropped_tap_split(axes, _tuning.CROPPED_TAPS_MIN)


@functools.lru_cache(maxsize=1024)
def _cropped_tap_split(axes: Axes3, cropped_min: float) -> tuple[int, tuple[tuple[int, int, int, int], ...]] | None:
    """Along the first axis with a kernel longer than 1: runs ``(j0, j1, t0, t1)`` of consecutive inputs whose
    taps landing inside the output are ``t0 .. t1-1`` (input ``j``, tap ``t`` land at ``j*s + t*d - lo``), when
    the taps outside are at least ``cropped_min`` of the axis' pairs; else None. Made once per geometry."""
    axis = next((a for a in range(3) if axes.kernel[a] > 1), None)
    if axis is None:
        return None
    n, k, s, d, lo, out = (field[axis] for field in axes)
    reach = [overlap(t * d - lo, s, n, out)[:2] for t in range(k)]  # per tap: the inputs landing inside
    runs: list[tuple[int, int, int, int]] = []
    for j in range(n):
        landing = [t for t, (j0, j1) in enumerate(reach) if j0 <= j < j1]  # consecutive taps
        t0, t1 = (landing[0], landing[-1] + 1) if landing else (0, 0)
        if runs and runs[-1][1] == j and runs[-1][2:] == (t0, t1):
            runs[-1] = (runs[-1][0], j + 1, t0, t1)
        else:
            runs.append((j, j + 1, t0, t1))
    return (axis, tuple(runs)) if pairs_inside(runs) <= (1 - cropped_min) * n * k else None


def pixel_split(spec: ConvSpec) -> tuple[int, tuple[tuple[int, int, int, int], ...]] | None:
    """:func:`cropped_tap_split` where skipping the cropped taps pays for the products it adds: the multiply-adds
    skipped per sample (at ``gemm_rate()``) against ``PRODUCT_CALL_COST`` for each run's product beyond the first.
    On a small call the split's products cost more than the taps they skip."""
    return _pixel_split(spec, _tuning.CROPPED_TAPS_MIN, _tuning.PRODUCT_CALL_COST, machine.gemm_rate())


@functools.lru_cache(maxsize=1024)
def _pixel_split(
    spec: ConvSpec, cropped_min: float, call_cost: float, rate: float
) -> tuple[int, tuple[tuple[int, int, int, int], ...]] | None:
    """:func:`pixel_split` at these constants (part of its cache key)."""
    axes = axes3(spec)
    split = _cropped_tap_split(axes, cropped_min)
    if split is None:
        return None
    axis, runs = split
    others = math.prod(axes.size_in) * math.prod(axes.kernel) // (axes.size_in[axis] * axes.kernel[axis])
    skipped = (axes.size_in[axis] * axes.kernel[axis] - pairs_inside(runs)) * others
    seconds = 2.0 * skipped * spec.in_channels * spec.out_channels / rate
    return split if seconds >= (len(runs) - 1) * call_cost else None


def pairs_inside(runs: Sequence[tuple[int, int, int, int]]) -> int:
    """How many (input, tap) pairs the runs ``(j0, j1, t0, t1)`` of :func:`cropped_tap_split` keep."""
    return sum((j1 - j0) * (t1 - t0) for j0, j1, t0, t1 in runs)


def taps_overlap(spec: ConvSpec) -> bool:
    """Whether some axis's dilated kernel is longer than its stride, so that taps of neighbouring inputs land on
    the same output (a transposed call's overlap-add has work to do)."""
    return any(k * d > s for k, s, d in zip(spec.kernel_size, spec.stride, spec.dilation))


def patches_fit(spec: ConvSpec) -> bool:
    """``jit_patches``' geometry: transposed, one group, dilation 1 on the last axis, an uncropped plane of at
    most ``_tuning.PATCHES_MAX_PLANE`` elements."""
    uncropped = [
        transposed_full_size(n, k, s, d)
        for n, s, k, d in zip(spec.input_size, spec.stride, spec.kernel_size, spec.dilation)
    ]
    return (
        spec.transposed
        and spec.groups == 1
        and spec.dilation[-1] == 1
        and math.prod(uncropped) <= _tuning.PATCHES_MAX_PLANE
    )


def element_strides(strides: tuple[int, ...], itemsize: int, ndim: int, channels_last: bool) -> tuple[int, ...]:
    """``(N, axis 1, axis 2, axis 3, channels)`` strides in elements of a batched array of byte ``strides``,
    padded to 3-D (the register-blocked kernels' index arithmetic)."""
    elements = [st // itemsize for st in strides]
    channel = elements.pop(-1 if channels_last else 1)
    return (elements[0], *((0,) * (3 - ndim)), *elements[1:], channel)


def empty_out(batch: int, channels: int, size: tuple[int, ...], dtype: Any, channels_last: bool) -> np.ndarray:
    """An uninitialised batched result in the caller's layout."""
    shape = (batch, *size, channels) if channels_last else (batch, channels, *size)
    return np.empty(shape, dtype=dtype)


def grouped_call(x: np.ndarray, spec: ConvSpec, channels_last: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A call's result (uninitialised, in the caller's layout), and grouped views of it and of x."""
    out = empty_out(x.shape[0], spec.out_channels, spec.output_size, x.dtype, channels_last)
    return (
        out,
        grouped_view(out, spec.groups, spec.ndim, channels_last),
        grouped_view(x, spec.groups, spec.ndim, channels_last),
    )


def grouped_matrix(grouped: np.ndarray, slot: int) -> np.ndarray:
    """A grouped view ``(N, G, C/G, s1, s2, s3)`` as ``(G, C/G, N * P)`` for the products: a view when N = 1
    and channels-first, else a copy in this thread's workspace ``slot`` (:func:`workspace.contiguous`)."""
    batch, groups, cg = grouped.shape[:3]
    p = math.prod(grouped.shape[3:])
    return contiguous(moved(grouped, 0, 2), slot).reshape(groups, cg, batch * p)


def bias_by_group(bias: np.ndarray | None, spec: ConvSpec, dtype: np.dtype) -> np.ndarray:
    """The bias as ``(G, C_out/G)`` in ``dtype`` (zeros when there is none)."""
    cg = spec.out_channels // spec.groups
    if bias is None:
        return np.zeros((spec.groups, cg), dtype=dtype)
    return np.ascontiguousarray(bias, dtype=dtype).reshape(spec.groups, cg)


def tap_spans(n: int, k: int, s: int, d: int, lo: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis (size ``n``, kernel ``k``, stride ``s``, dilation ``d``, low padding ``lo``, ``out``
    outputs), each output's first and stop tap that meet x (``0 <= o*s + t*d - lo < n``; an empty span where none
    does)."""
    start = np.arange(out, dtype=np.int64) * s - lo  # where tap 0 of each output reads
    first = np.minimum(np.where(start < 0, -(start // d), 0), k)
    last = n - 1 - start  # how far the taps may reach
    stop = np.where(last >= 0, np.minimum(k, last // d + 1), 0)
    return first, np.maximum(stop, first)


@functools.lru_cache(maxsize=256)
def span_tables(axes: Axes3) -> tuple[np.ndarray, np.ndarray]:
    """A direct kernel's geometry (per 3-D padded axis: kernel, stride, dilation, low padding, outputs) and its
    spans ``(6, max O)``: per axis two rows, each output's first and stop tap that meet x (:func:`tap_spans`;
    made once per geometry, read-only, shared by every call)."""
    geo = np.array([*axes.kernel, *axes.stride, *axes.dilation, *axes.low, *axes.size_out], dtype=np.int64)
    spans = np.zeros((6, max(axes.size_out)), dtype=np.int64)
    for a, axis in enumerate(zip(*axes)):
        first, stop = tap_spans(*axis)
        spans[2 * a, : first.size], spans[2 * a + 1, : stop.size] = first, stop
    geo.flags.writeable = spans.flags.writeable = False
    return geo, spans


@functools.lru_cache(maxsize=256)
def window_offsets(
    kernel: tuple[int, ...], dilation: tuple[int, ...], x_strides: tuple[int, ...], cg_in: int, taps_first: bool
) -> np.ndarray:
    """Every (tap, input channel) pair's offset in x from the element tap 0 of channel 0 reads, for x's element
    strides ``(N, axis 1, 2, 3, channels)`` and a 3-D padded kernel and dilation: in the order (tap 1, 2, 3,
    channel) where ``taps_first``, else (channel, tap 1, 2, 3); made once per geometry and strides, read-only."""
    grid = np.zeros((1, 1, 1), dtype=np.int64)
    for a, (k, d) in enumerate(zip(kernel, dilation)):
        shape = [1, 1, 1]
        shape[a] = k
        grid = grid + (np.arange(k, dtype=np.int64) * d * x_strides[1 + a]).reshape(shape)
    taps = grid.reshape(-1)
    channels = np.arange(cg_in, dtype=np.int64) * x_strides[4]
    table = taps[:, None] + channels[None, :] if taps_first else channels[:, None] + taps[None, :]
    offsets = np.ascontiguousarray(table.reshape(-1))
    offsets.flags.writeable = False
    return offsets


@functools.lru_cache(maxsize=256)
def whole_share(axes: Axes3) -> float:
    """The share of the outputs whose taps all meet x (along every axis: :func:`tap_spans`)."""
    share = 1.0
    for axis in zip(*axes):
        first, stop = tap_spans(*axis)
        share *= float((stop - first == axis[1]).mean()) if first.size else 0.0
    return share


@functools.lru_cache(maxsize=256)
def mean_taps(axes: Axes3) -> tuple[float, ...]:
    """Per 3-D padded axis, the mean over its outputs of the taps that meet x (:func:`tap_spans`; made once per
    geometry): the direct kernels' cost models count the taps they sum with it."""
    means = []
    for axis in zip(*axes):
        first, stop = tap_spans(*axis)
        means.append(float((stop - first).mean()) if first.size else 0.0)
    return tuple(means)
