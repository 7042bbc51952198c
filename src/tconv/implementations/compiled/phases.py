"""``jit_phases``: a strided transposed convolution as one stride-1 convolution per output phase.

Along an axis of stride ``s``, the outputs ``o = q*s + r`` of one phase ``r`` receive only the taps ``t`` with
``t*d = r + lo (mod s)``, from the inputs ``j = q + (r + lo - t*d) / s``: a stride-1 correlation of x with that
phase's sub-kernel (about ``k / s`` taps). Over ``D`` axes there are ``prod(s)`` phases (XNNPACK's
subconvolutions, the sub-pixel view of a transposed convolution). Each phase is an im2col of x for its taps
(``C_in`` times its tap count per output: the product's inner dimension, against ``C_in`` for the column
products of ``jit_gemm`` and ``jit_pixels``) and one BLAS product written straight into the phase's outputs, a
strided view of the channels-last output (every ``s``-th pixel; the rows of the last axis ``s * C_out`` apart).
No column buffer of ``C_out * K`` per input pixel, no overlap-add, and none of the zeros a stride inserts between
inputs multiplied (only the padded border's, where a tap reaches past x): for few input channels
and kernels longer than their stride (sweep 43's (2, 2, 66, 66) -> 13 k5 s2 channels-last).

A phase that no tap reaches (a kernel shorter than its stride) is the bias. x is copied once into a zero-padded
channels-last buffer; channels-first x and output go through channels-last copies (a forced call only: the
planner ranks ``jit_phases`` channels-last). The im2col and product run in pieces of about ``PHASES_PIECE_BYTES``
of im2col, whole samples where one fits, else rows of one sample along the first axis, on the thread team where
the call is large enough.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, NamedTuple

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, machine, schedule, team, transpose
from .workspace import scratch


class AxisPhase(NamedTuple):
    """One axis's phase: its first output ``start``, its ``length`` in outputs (``start``, ``start + s``, ...), its
    live taps (those reaching an input for some output) and each tap's input offset (output ``q`` of the phase
    reads input ``q + offset``)."""

    start: int
    length: int
    taps: tuple[int, ...]
    offsets: tuple[int, ...]


class Plan(NamedTuple):
    """Every axis's phases, and the zero padding of x (low, high per axis) that puts every tap's rows inside it."""

    axes: tuple[tuple[AxisPhase, ...], ...]
    pad_low: tuple[int, ...]
    pad_high: tuple[int, ...]


def _axis_phases(n: int, k: int, s: int, d: int, lo: int, out: int) -> tuple[AxisPhase, ...]:
    phases = []
    for r in range(min(s, out)):
        count = -(-(out - r) // s)
        taps, offsets = [], []
        for t in range(k):
            if (r + lo - t * d) % s:
                continue
            offset = (r + lo - t * d) // s
            if offset + count - 1 >= 0 and offset <= n - 1:  # some output of the phase reads an input
                taps.append(t)
                offsets.append(offset)
        phases.append(AxisPhase(r, count, tuple(taps), tuple(offsets)))
    return tuple(phases)


@functools.lru_cache(maxsize=1024)
def plan(spec: ConvSpec) -> Plan:
    """The phases of a transposed call, per axis, and the padding of x they need."""
    axes, low, high = [], [], []
    for n, k, s, d, (lo, _), out in zip(
        spec.input_size, spec.kernel_size, spec.stride, spec.dilation, spec.padding, spec.output_size
    ):
        phases = _axis_phases(n, k, s, d, lo, out)
        axes.append(phases)
        reads = [(o, o + p.length - 1) for p in phases for o in p.offsets]
        low.append(max([0] + [-first for first, _ in reads]))
        high.append(max([0] + [last - (n - 1) for _, last in reads]))
    return Plan(tuple(axes), tuple(low), tuple(high))


def _taps_slice(phase: AxisPhase) -> slice:
    """A phase's live taps as a slice of the kernel axis: they step by ``s / gcd(s, d)``, and those reaching an
    input are a run of them (their offsets fall by ``d / gcd(s, d)`` a tap, so the live ones are contiguous)."""
    taps = phase.taps
    step = taps[1] - taps[0] if len(taps) > 1 else 1
    return slice(taps[0], taps[-1] + 1, step)


def im2col_elements(spec: ConvSpec) -> int:
    """The im2col's elements per sample, over every phase: each output pixel's live taps times ``C_in``."""
    phases = plan(spec).axes
    per_axis = [sum(p.length * len(p.taps) for p in axis) for axis in phases]
    return math.prod(per_axis) * spec.in_channels


def cost(spec: ConvSpec) -> float:
    """The cost model's seconds per sample: each phase's product at ``gemm_rate()``, slower in proportion where its
    inner dimension (``C_in`` times the phase's taps, and the bias's row) is below ``GEMM_FULL_RATE_INNER`` (not
    for few output channels too: with both factors the thin products of sweep 43's (2, 2, 66, 66) -> 13 k5 s2,
    0.2 ms measured, were estimated at 1.5); the im2col written and read, x's padded copy and the output written
    once, at ``COLUMN_STREAM``, and a ``ROW_COST`` for each of the im2col's runs along the last axis (one per tap,
    channel and row of the other axes); where a phase's rows along the last axis reach
    ``PHASES_IN_PLACE_MIN_ROWS``, each of its products (one per row) at ``BLOCKS_PRODUCT_COST`` with its weight
    packed at ``BLOCKS_PACK_STREAM``, else its outputs written and read once more (the buffer);
    ``PHASES_CALL_COST`` per phase for each ``PHASES_PIECE_BYTES`` of im2col (one piece a call:
    :func:`setup_cost`)."""
    c_in, c_out = spec.in_channels, spec.out_channels
    full, item = _tuning.GEMM_FULL_RATE_INNER, float(_tuning.COST_ITEMSIZE)
    product = packed = 0.0
    buffered = runs = 0
    combos = list(itertools.product(*plan(spec).axes))
    for combo in combos:
        taps = math.prod(len(p.taps) for p in combo)
        if not taps:
            continue
        outputs = math.prod(p.length for p in combo)
        width = taps * c_in + 1  # and the bias's row
        rate = machine.gemm_rate() * min(1.0, width / full)
        product += 2.0 * outputs * width * c_out / rate
        runs += taps * c_in * math.prod(p.length for p in combo[:-1])  # the im2col's inner loops
        if combo[-1].length >= _tuning.PHASES_IN_PLACE_MIN_ROWS:
            block = item * width * c_out / _tuning.BLOCKS_PACK_STREAM + _tuning.BLOCKS_PRODUCT_COST
            packed += math.prod(p.length for p in combo[:-1]) * block
        else:
            buffered += outputs * c_out
    columns = im2col_elements(spec)
    streamed = 2 * columns + 2 * c_in * math.prod(spec.input_size) + c_out * math.prod(spec.output_size)
    calls = len(combos) * _tuning.PHASES_CALL_COST * columns * item / _tuning.PHASES_PIECE_BYTES
    gathered = runs * _tuning.ROW_COST
    return product + packed + gathered + item * (streamed + 2 * buffered) / _tuning.COLUMN_STREAM + calls


def setup_cost(spec: ConvSpec) -> float:
    """One piece's Python per phase, once a call (the weight's rearrangement is the caller's to add)."""
    return math.prod(len(axis) for axis in plan(spec).axes) * _tuning.PHASES_CALL_COST


class _Phase(NamedTuple):
    """One phase of a call, as :func:`conv_transpose_phases` runs it: its axes' phases, its outputs (a strided view's
    index into the channels-last output), its live taps as a view's index into the weight's ``(C_in, *k, C_out)``
    (None: no tap reaches the phase, whose outputs are the bias), each tap's offsets into padded x per 3-D axis,
    and its outputs past the first axis. Indexes start with the batch's (or the weight's input channels')."""

    axes: tuple[AxisPhase, ...]
    outputs: tuple[slice, ...]
    taps: tuple[slice, ...] | None
    offsets: np.ndarray | None
    rest: tuple[int, ...]


class _Layout(NamedTuple):
    """What :func:`conv_transpose_phases` reads of a call description alone, made once per description."""

    phases: tuple[_Phase, ...]
    padded: tuple[int, ...]  # padded x's shape past the batch, channels-last
    inside: tuple[slice, ...]  # x's place in padded x
    borders: tuple[tuple[slice, ...], ...]  # the padding's slabs of padded x, zeroed on every call
    first: int  # the first axis's outputs per phase, at most
    largest: int  # the largest phase's im2col of one sample, in elements


@functools.lru_cache(maxsize=1024)
def _layout(spec: ConvSpec) -> _Layout:
    phases = plan(spec)
    sizes, low, high = spec.input_size, phases.pad_low, phases.pad_high
    padded = (*(n + lo + hi for n, lo, hi in zip(sizes, low, high)), spec.in_channels)
    every = slice(None)
    inside = (every, *(slice(lo, lo + n) for lo, n in zip(low, sizes)))
    borders = []
    for axis, (lo, n) in enumerate(zip(low, sizes)):
        before = (every,) * (axis + 1)
        if lo:
            borders.append((*before, slice(0, lo)))
        if padded[axis] > lo + n:
            borders.append((*before, slice(lo + n, None)))
    runs = []
    for combo in itertools.product(*phases.axes):
        outputs = (every, *(slice(p.start, None, s) for p, s in zip(combo, spec.stride)))
        rest = tuple(p.length for p in combo[1:])
        if any(not p.taps for p in combo):
            runs.append(_Phase(combo, outputs, None, None, rest))
            continue
        # each tap's offsets into the padded x, per axis (3-D: unit axes before the call's own)
        shifts = [[0]] * (3 - spec.ndim) + [[o + lo for o in p.offsets] for p, lo in zip(combo, low)]
        offsets = np.array(list(itertools.product(*shifts)), dtype=np.int64).reshape(-1, 3)
        runs.append(_Phase(combo, outputs, (every, *map(_taps_slice, combo)), offsets, rest))
    live = [run.axes for run in runs if run.taps is not None]
    largest = spec.in_channels * max(
        (math.prod(p.length for p in c) * math.prod(len(p.taps) for p in c) for c in live), default=1
    )
    first = max(p.length for p in phases.axes[0])
    return _Layout(tuple(runs), padded, inside, tuple(borders), first, largest)


def _pieces(spec: ConvSpec, batch: int, itemsize: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """A call's pieces ``(n0, n1, q0, q1)`` (samples ``n0:n1``, rows ``q0:q1`` of the first axis) and its threads:
    whole samples a piece where one sample's largest im2col fits ``PHASES_PIECE_BYTES``, else rows of one sample,
    two pieces a thread at least on a team."""
    layout = _layout(spec)
    first, sample_bytes = layout.first, itemsize * layout.largest
    threads = schedule.team_threads(
        batch, spec.out_channels, max(1, im2col_elements(spec) // spec.out_channels) * itemsize
    )
    samples = _tuning.PHASES_PIECE_BYTES // sample_bytes
    if threads > 1:  # two pieces a thread at least
        samples = min(samples, batch // (2 * threads))
    if samples >= 1:  # whole samples a piece
        return [(n0, min(n0 + samples, batch), 0, first) for n0 in range(0, batch, samples)], threads
    # a sample's rows along the first axis a piece
    step = max(1, min(first, first * _tuning.PHASES_PIECE_BYTES // sample_bytes))
    if threads > 1:
        step = max(1, min(step, -(-first * batch // (2 * threads))))
    return [(n, n + 1, q0, min(q0 + step, first)) for n in range(batch) for q0 in range(0, first, step)], threads


def conv_transpose_phases(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """The transposed convolution of a batched x (one group) phase by phase, in the caller's layout."""
    batch = x.shape[0]
    c_in, c_out = spec.in_channels, spec.out_channels
    layout = _layout(spec)
    padded = scratch((batch, *layout.padded), x.dtype, slot=2)
    for border in layout.borders:  # the padding's zeros (x fills the rest)
        padded[border] = 0
    inside = padded[layout.inside]
    source = x if channels_last else geometry.moved(x, 1, -1)
    transpose.assign(inside, source)
    result = geometry.empty_out(batch, c_out, spec.output_size, x.dtype, channels_last)
    # channels-first, the phases write a channels-last copy (this thread's buffer), transposed into the result
    out = result if channels_last else scratch((batch, *spec.output_size, c_out), x.dtype, slot=4)
    bias_row = None if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    ones = 0 if bias_row is None else 1  # a row of ones in the im2col, the bias a row of the weight's
    d = spec.ndim
    w_taps = weight.transpose(0, *range(2, d + 2), 1)  # (C_in, k1, ..., kD, C_out)
    tap_major = (*range(1, d + 1), 0, d + 1)  # (T1, ..., TD, C_in, C_out) of a phase's taps
    rows_last = (*range(1, d + 2), 0)  # a piece's im2col (width, *counts) as (*counts, width)
    # per phase: its outputs, a strided view of the output, and the weight's rows (taps, C_in) x C_out, then the
    # bias's (one copy)
    jobs: list[tuple[_Phase, np.ndarray, np.ndarray | None]] = []
    for phase in layout.phases:
        view = out[phase.outputs]
        if phase.taps is None:
            jobs.append((phase, view, None))
            continue
        taps = w_taps[phase.taps]  # (C_in, T1, ..., TD, C_out), a view
        count = math.prod(taps.shape[1:-1]) * c_in
        rows = np.empty((count + ones, c_out), dtype=x.dtype)
        rows[:count].reshape(*taps.shape[1:-1], c_in, c_out)[...] = taps.transpose(tap_major)
        if bias_row is not None:
            rows[count] = bias_row
        jobs.append((phase, view, rows))
    pieces, threads = _pieces(spec, batch, x.dtype.itemsize)

    units = (1,) * (3 - spec.ndim)  # unit axes before the call's own, as the kernels pad to 3-D
    padded3 = padded.reshape(batch, *units, *layout.padded)
    flat = padded3.reshape(-1)  # a view: the buffer is contiguous
    s0, s1, s2, s3 = (stride // x.dtype.itemsize for stride in padded3.strides[:4])
    s_first = (s1, s2, s3)[3 - spec.ndim]  # along the first axis, which the pieces cut
    gather = _gather()

    def work(piece: tuple[int, int, int, int]) -> None:
        n0, n1, q0, q_stop = piece
        for phase, view, rows in jobs:
            q1 = min(q_stop, phase.axes[0].length)
            if q0 >= q1:
                continue
            target = view[n0:n1, q0:q1]
            if rows is None:
                target[...] = 0 if bias_row is None else bias_row
                continue
            counts = (n1 - n0, q1 - q0, *phase.rest)
            width, count = rows.shape[0], math.prod(counts)
            columns = scratch((width, count), x.dtype, slot=0)  # tap-major: the product's operand transposed
            base = n0 * s0 + q0 * s_first
            gather(
                flat,
                columns.reshape(-1),
                phase.offsets,
                base,
                s0,
                s1,
                s2,
                s3,
                counts[0],
                *units,
                *counts[1:],
                c_in,
                ones,
            )
            if counts[-1] >= _tuning.PHASES_IN_PLACE_MIN_ROWS:  # a product per row of outputs, written in place
                team.matmul(columns.reshape(width, *counts).transpose(rows_last), rows, out=target)
            else:  # one product into a buffer, copied into the phase's outputs
                product = scratch((count, c_out), x.dtype, slot=1)
                team.matmul(columns.T, rows, out=product)
                target[...] = product.reshape(*counts, c_out)

    schedule.each(work, pieces, threads)
    if not channels_last:
        target = geometry.moved(result, 1, -1)
        transpose.assign(target, out)
    return result


@functools.cache
def _gather() -> Any:
    """The compiled im2col of one piece of one phase, tap-major on flat arrays: for each tap ``t`` (offsets
    ``offsets[t]``, strides ``s0`` to ``s3`` of padded x from ``base``: the piece's first sample and row) and
    channel ``c``, the row ``t * C + c`` of ``dst`` holds that channel at ``(n, i1 + o1, i2 + o2, i3 + o3)`` for
    each sample ``n`` and output ``(i1, i2, i3)`` of the piece, in that order: its inner loop runs along
    the last axis's outputs (a product's rows), not along the channels, which are few where this path pays; then a
    row of ones where ``ones`` (the bias's)."""

    def gather(src, dst, offsets, base, s0, s1, s2, s3, rn, r1, r2, r3, channels, ones):  # type: ignore[no-untyped-def]
        rows = rn * r1 * r2 * r3
        for t in range(offsets.shape[0]):
            first = base + offsets[t, 0] * s1 + offsets[t, 1] * s2 + offsets[t, 2] * s3
            for c in range(channels):
                write = (t * channels + c) * rows
                for n in range(rn):
                    for i1 in range(r1):
                        for i2 in range(r2):
                            read = first + n * s0 + i1 * s1 + i2 * s2 + c
                            for i3 in range(r3):
                                dst[write + i3] = src[read + i3 * s3]
                            write += r3
        if ones:
            start = offsets.shape[0] * channels * rows
            for row in range(rows):
                dst[start + row] = 1.0

    return kernels.compile_kernel(gather)
