"""A convolution summed directly with its outputs held in registers (``jit_blocked``): blocks of four output
pixels along the last spatial axis times two SIMD vectors of output channels, the machine's widest
(:func:`.simd.widest`: sixteen float32 or eight float64 with 256-bit vectors, twice that with AVX-512's), or one
vector where a group's output channels fit one (:func:`width`: a block of two would be half zeros or more; half
the multiply-adds, 0.62-0.79 of the time on layers of 3-16 output channels, docs/design.md, "Blocks of one
vector"; a compiled kernel each, :func:`_kernel`). With
AVX-512's 32 vector registers, a row's interior goes in blocks of eight pixels (sixteen sums): the same
multiply-adds with half the weight loads and loop steps, 0.77-0.89 of the time of blocks of four on seven layers
of the suites (docs/design.md, "Blocks of eight pixels"). Each block of output channels runs over several rows
of outputs in turn (:func:`_together`), so that its weights are read from the core's own cache by all but the first
(docs/design.md, "A block's weights over several rows").

For every (tap, input channel) a block of four loads its two weight vectors once, broadcasts each pixel's input
element once, and makes eight vector multiply-adds (a block of eight: sixteen): four times as many multiply-adds as
loads of either kind, which keeps a core's two FMA units busy (oneDNN's direct convolutions and XNNPACK's
micro-kernels are built the same way; a block of one vector: a multiply-add a broadcast, bound by the loads,
``BLOCKED_SINGLE_SHARE``). The vectors are written explicitly (:mod:`.simd`). A channels-last x is read
in place through its own strides, and a channels-last output's vectors are stored in place; a channels-first x of
several channels is copied channels-last first, and a channels-first output (or a group's last partial block) goes
through a row buffer, so each channel's row is written contiguously. The weight is packed once a call, ``(G, blocks,
K, C_in/G, width)``, zero-padded to whole blocks.

Where a row's taps along the first axes all meet x, a block sums all its (tap, input channel) pairs in one loop
through a table of their offsets in x; elsewhere (the padding's rows) a loop a run of the pairs that meet x.
Pixels whose taps along the last axis do not all meet x (the padding's border), and those left over from the
blocks of four, are summed one pixel at a time over the taps that meet x. Or, where the cost model says it pays
(small maps, whose pixels are mostly border), x is first copied into a zero-padded buffer, over which every row
runs its blocks through the table and a row's last pixels run as a block of four (a whole row of five to seven
as a block of eight, with 512-bit vectors: :func:`padded_layout`). Each output
is summed with fused multiply-adds in the order of the taps, then the input channels, whichever thread computes
it.

Across samples (:func:`_across_kernel`): a batch of at least a register block of samples (eight with 512-bit
vectors, else four) may run in blocks of the same output pixel of consecutive samples instead, each block over
exactly the taps of that pixel that meet x (the same for all its samples): no border, no padding's zeros, a
block of eight wherever the batch has eight samples. Small maps, whose pixels are mostly border (the seed
generator's 7x7 layers), ran 0.55-0.75 of the time along the rows. The cost model (:func:`_across_cost`) takes it
where it puts it at most ``BLOCKED_ACROSS_MARGIN`` of the rows' (:func:`_mode`); channels-first, x is copied
channels-last (as along the rows) and the output is staged channels-last and copied across by tiles.

Where it pays: layers whose products BLAS runs below its rate, because their inner dimension ``C_in/G * K`` or
their output channels are short (a first convolution over three channels: 27 terms), and layers an im2col would
copy many times over. Its cost (:func:`cost`, :func:`_costs`) is the vector multiply-adds at ``BLOCKED_RATE``,
the border's at ``BLOCKED_EDGE_RATE``, and each block's set-up, plus the copies (x's channels-last or padded copy,
a channels-first output's writes from the row buffer); output channels padded to a whole block count in full, so
a layer of few output channels a group (depthwise) is left to the others (:func:`ranked`).

The module is long because its kernel's block sums (all taps, a row's runs, one pixel; for blocks of two vectors and of
one) keep their accumulators as separate values, passed to and returned from inlined helpers vector by vector: a helper
that looped over them in an array would keep them in memory, not in registers.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import geometry, kernels, machine, team, transpose, workspace

#: output pixels a register block holds (the kernel's code is written for four)
PIXELS = 4


def lanes(itemsize: int) -> int:
    """Elements of one SIMD vector of the compiled kernels (:func:`.machine.vector_bytes`)."""
    return machine.vector_bytes() // itemsize


def priced_lanes(itemsize: int) -> int:
    """Elements of one SIMD vector as the cost model counts them (:func:`.machine.priced_vector_bytes`: the
    kernels' own, except in a replay of another width's timings and in the test suite)."""
    return machine.priced_vector_bytes() // itemsize


def width(cg_out: int, lane: int) -> int:
    """Output channels a register block holds, with vectors of ``lane`` elements: one vector where a group's output
    channels fit it (a block of two would be at least half zeros), else two."""
    return lane if cg_out <= lane else 2 * lane


def fits(spec: ConvSpec) -> bool:
    """A forward convolution of rank 1-3 (a stride-1 transposed one runs as its forward twin:
    :class:`~.algorithms.JitBlocked`)."""
    return not spec.transposed and 1 <= spec.ndim <= 3


def ranked(spec: ConvSpec, channels_last: bool) -> bool:
    """Whether the planner ranks ``jit_blocked`` on a convolution (it runs every call :func:`fits` when forced, and a
    stride-1 transposed one through its forward twin, which the planner asks this about): channels-last (where the
    estimate held: rms error 14% on 23 layers) with ``BLOCKED_MIN_OUT`` output channels a group or more (fewer ran
    1.1-3.3x slower than the other choice in blocks of two vectors; with blocks of one, since the fortieth session, 2 or
    4 replayed within 0.005 of the regret: not changed); channels-first with ``BLOCKED_FIRST_MIN_OUT`` and a kernel of
    more than one tap (a 1x1 layer is one product at BLAS's rate: 1.5-3.4 times faster on the sweeps' 1x1 layers). The
    planner takes it channels-first on small calls only (``BLOCKED_FIRST_MAX_SECONDS``: docs/design.md, "Register-
    blocked direct convolution")."""
    if not fits(spec):
        return False
    cg_out = spec.out_channels // spec.groups
    if channels_last:
        return cg_out >= _tuning.BLOCKED_MIN_OUT
    return cg_out >= _tuning.BLOCKED_FIRST_MIN_OUT and math.prod(spec.kernel_size) > 1


@functools.lru_cache(maxsize=256)
def _interior(axes: geometry.Axes3) -> tuple[int, int]:
    """The interior of the last axis, ``[lo, hi)``: the outputs all of whose taps along it meet x (an interval:
    the span grows, then shrinks; made once per geometry)."""
    first, stop = geometry.tap_spans(*(axis[2] for axis in axes))
    full = np.flatnonzero((first == 0) & (stop == axes.kernel[2]))
    return (int(full[0]), int(full[-1]) + 1) if full.size else (0, 0)


@functools.lru_cache(maxsize=256)
def _shape(axes: geometry.Axes3) -> tuple[float, float]:
    """The mean over the output pixels of the taps that meet x (all axes), and the share of the last axis's
    outputs the blocks of four cover (the rest run a pixel at a time)."""
    taps = math.prod(geometry.mean_taps(axes))
    lo, hi = _interior(axes)
    return taps, (hi - lo) // PIXELS * PIXELS / axes.size_out[2] if axes.size_out[2] else 0.0


def _sums(spec: ConvSpec, taps: float, blocked_share: float, pixels: int) -> float:
    """Seconds per sample of the kernel's sums: the vector multiply-adds of ``pixels`` outputs (``taps`` a pixel)
    at ``BLOCKED_RATE`` in blocks of four (``blocked_share`` of them; a 512-bit kernel's blocks of eight are priced
    as blocks of four, and ``WIDE_VECTOR_SHARE`` replayed best unchanged with them) and ``BLOCKED_EDGE_RATE`` a pixel
    at a time (both at the priced width, :func:`.machine.vector_rate`), and each (pixel block, channel block) a
    ``BLOCKED_BLOCK_COST`` (its bias loaded, its outputs stored, its loops entered), the output channels a group
    rounded up to whole blocks (:func:`width`). Blocks of one vector make half the multiply-adds of blocks of two,
    at ``BLOCKED_SINGLE_SHARE`` of the rate (a broadcast each), and their border's at half ``BLOCKED_EDGE_RATE`` (one
    accumulator, each multiply-add waiting for the one before)."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    lane = priced_lanes(_tuning.COST_ITEMSIZE)
    block = width(cg_out, lane)
    blocks = groups * -(-cg_out // block)
    vector_fmas = pixels * blocks * (block // lane) * cg_in * taps
    rate, edge_rate = machine.vector_rate(_tuning.BLOCKED_RATE), machine.vector_rate(_tuning.BLOCKED_EDGE_RATE)
    if block == lane:  # one vector: an input element broadcast for each multiply-add (BLOCKED_SINGLE_SHARE), and
        # a pixel summed alone into one accumulator, each multiply-add waiting for the one before (two, two vectors)
        rate, edge_rate = rate * _tuning.BLOCKED_SINGLE_SHARE, edge_rate / 2
    seconds = vector_fmas * (blocked_share / rate + (1 - blocked_share) / edge_rate)
    pixel_blocks = pixels * (blocked_share / PIXELS + 1 - blocked_share)
    return seconds + pixel_blocks * blocks * _tuning.BLOCKED_BLOCK_COST


@functools.lru_cache(maxsize=1024)
def _costs(spec: ConvSpec, channels_last: bool) -> tuple[float, float]:
    """Seconds per sample by the cost model, x read as it is (copied channels-last where it is channels-first with
    several channels) and x copied into a zero-padded buffer (:func:`padded_layout`). As it is: the taps that meet x
    counted, the border's pixels one at a time. Padded: every tap of every output (the padding's zeros included)
    in blocks of four, the last axis's outputs rounded up to whole blocks, and the buffer filled and written (a
    transposing copy at ``TRANSPOSE_STREAM`` from a channels-first x of several channels, else ``COPY_STREAM``).
    Channels-first, the output is written from the row buffer at ``BLOCKED_SCATTER_RATE`` either way."""
    pixels = math.prod(spec.output_size)
    if pixels == 0:  # nothing to sum (tconv.conv returns such calls before any algorithm)
        return 0.0, math.inf
    axes = geometry.axes3(spec)
    taps, blocked_share = _shape(axes)
    plain = _sums(spec, taps, blocked_share, pixels)
    layout = padded_layout(spec)
    rounded = pixels // spec.output_size[-1] * -(-spec.output_size[-1] // PIXELS) * PIXELS
    padded = _sums(spec, math.prod(spec.kernel_size), 1.0, rounded)
    item = _tuning.COST_ITEMSIZE
    x_bytes = item * spec.in_channels * math.prod(spec.input_size)
    buffer_bytes = item * spec.in_channels * math.prod(layout.buffer)
    transposing = not channels_last and spec.in_channels > 1
    padded += (x_bytes + buffer_bytes) / (_tuning.TRANSPOSE_STREAM if transposing else _tuning.COPY_STREAM)
    if layout.zeros:
        padded += buffer_bytes / _tuning.COPY_STREAM  # the zeros
    if transposing:
        plain += 2 * x_bytes / _tuning.TRANSPOSE_STREAM  # the copy channels-last, read and written once
    if not channels_last:
        scatter = pixels * spec.out_channels / _tuning.BLOCKED_SCATTER_RATE
        plain, padded = plain + scatter, padded + scatter
    return plain, padded


def cost(spec: ConvSpec, channels_last: bool = True) -> float:
    """Seconds per sample by the cost model (:func:`_costs`): x read as it is or copied into a zero-padded buffer,
    whichever it puts lower."""
    return min(_costs(spec, channels_last))


def across_samples(vector_bytes: int) -> int:
    """The samples a register block holds across samples (:func:`_across_kernel`) with vectors of ``vector_bytes``:
    eight with 512-bit vectors (sixteen sums, as a row's blocks of eight), else four."""
    return 2 * PIXELS if vector_bytes >= 64 else PIXELS


@functools.lru_cache(maxsize=1024)
def _across_cost(spec: ConvSpec, channels_last: bool, batch: int) -> float:
    """Seconds for a call of ``batch`` samples across samples (:func:`_across_kernel`): every output's taps that
    meet x in blocks (``across_samples`` samples a block; four of the samples left over a block of four, the rest
    one pixel at a time, as :func:`_sums` prices a row's blocks and border); channels-first, x's copy channels-last
    and the output's staging channels-last (:func:`_run_across`), each written and read once at
    ``TRANSPOSE_STREAM``. Infinite where the mode does not run: blocks of one vector of output channels, or fewer
    samples than a register block holds (with 512-bit vectors, blocks of four samples ran 1.6-2.2 times the
    rows' blocks of eight on batches of four)."""
    groups = spec.groups
    pixels = math.prod(spec.output_size)
    lane = priced_lanes(_tuning.COST_ITEMSIZE)
    samples = across_samples(machine.priced_vector_bytes())
    if pixels == 0 or width(spec.out_channels // groups, lane) == lane or batch < samples:
        return math.inf
    in_blocks = batch // samples * samples
    in_blocks += (batch - in_blocks) // PIXELS * PIXELS
    taps = _shape(geometry.axes3(spec))[0]
    sums = in_blocks * _sums(spec, taps, 1.0, pixels) + (batch - in_blocks) * _sums(spec, taps, 0.0, pixels)
    if channels_last:
        return sums
    item = _tuning.COST_ITEMSIZE  # channels-first: x copied channels-last, the output staged channels-last
    x_bytes = item * spec.in_channels * math.prod(spec.input_size) if spec.in_channels > 1 else 0
    out_bytes = item * spec.out_channels * pixels if spec.out_channels > 1 else 0
    return sums + batch * 2 * (x_bytes + out_bytes) / _tuning.TRANSPOSE_STREAM


def batch_cost(spec: ConvSpec, channels_last: bool, batch: int) -> float:
    """Seconds for a call of ``batch`` samples by the cost model, in the way :func:`conv` runs it (:func:`_mode`)."""
    if _mode(spec, channels_last, batch) == "across":
        return _across_cost(spec, channels_last, batch)
    return cost(spec, channels_last) * batch


def runs_across(spec: ConvSpec, channels_last: bool, batch: int, itemsize: int | None = None) -> bool:
    """Whether the cost model runs a call of ``batch`` samples in blocks across the samples (:func:`_mode`); with
    ``itemsize``, whether :func:`conv` does (the kernel's own width, not the priced one)."""
    return fits(spec) and _mode(spec, channels_last, batch, itemsize) == "across"


def _mode(spec: ConvSpec, channels_last: bool, batch: int, itemsize: int | None = None) -> str:
    """How :func:`conv` runs a call of ``batch`` samples: ``"across"`` (blocks of pixels across samples,
    :func:`_across_kernel`) where the cost model puts it at most ``BLOCKED_ACROSS_MARGIN`` of the cheaper row mode,
    else ``"padded"`` (x copied into a zero-padded buffer first, plus ``BLOCKED_PADDED_CALL_COST``) or ``"plain"``
    (blocks along the rows, x as it is), the cheaper by the cost model. With ``itemsize`` (a call about to run),
    across only where the kernel's own blocks for it are two vectors wide (the cost model prices the width it is
    told, :func:`priced_lanes`)."""
    plain, padded = (seconds * batch for seconds in _costs(spec, channels_last))
    padded += _tuning.BLOCKED_PADDED_CALL_COST
    runs = itemsize is None or width(spec.out_channels // spec.groups, lanes(itemsize)) > lanes(itemsize)
    if runs and _across_cost(spec, channels_last, batch) <= _tuning.BLOCKED_ACROSS_MARGIN * min(plain, padded):
        return "across"
    return "padded" if padded < plain else "plain"


def packing_cost(spec: ConvSpec) -> float:
    """Seconds to pack the weight (once a call): the padded blocks written and read once at ``COLUMN_STREAM``
    (0.5-1.1 of the measured time on six weights of 35 KB to 2.8 MB; a layer of few outputs packs mostly zeros:
    2 output channels of an 8x8x8 kernel over 130 channels fill 4 MiB of blocks)."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    block = width(cg_out, priced_lanes(_tuning.COST_ITEMSIZE))
    padded = float(_tuning.COST_ITEMSIZE) * groups * -(-cg_out // block) * block * cg_in * math.prod(spec.kernel_size)
    return 2 * padded / _tuning.COLUMN_STREAM


def _packed(weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """The weight as ``(G, blocks, K, C_in/G, width)`` and the bias as ``(G, blocks * width)``, zero-padded to
    whole blocks of ``width`` output channels, flat: the whole blocks in one transposing copy, a partial last block
    in another and its padding zeroed (one pass over the weight; 0.7-0.8 of the time of a zeroed padded copy then
    transposed, on 512x512x3x3 and 16x64x3x3 weights)."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    block = width(cg_out, lanes(np.dtype(dtype).itemsize))
    whole, rest = divmod(cg_out, block)
    source = weight.reshape(groups, cg_out, cg_in, taps)
    w = np.empty((groups, whole + (rest > 0), taps, cg_in, block), dtype=dtype)
    if whole:
        w[:, :whole] = source[:, : whole * block].reshape(groups, whole, block, cg_in, taps).transpose(0, 1, 4, 3, 2)
    b = np.empty((groups, w.shape[1] * block), dtype=dtype)
    b[:, :cg_out] = geometry.bias_by_group(bias, spec, dtype)
    if rest:
        w[:, whole, :, :, :rest] = source[:, whole * block :].transpose(0, 3, 2, 1)
        w[:, whole, :, :, rest:] = 0
        b[:, cg_out:] = 0
    return w.reshape(-1), b.reshape(-1)


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The convolution of a batched x in the caller's layout (any non-negative strides), into a fresh output in
    the same layout. Where the cost model prices it lower (:func:`_costs`, plus ``BLOCKED_PADDED_CALL_COST``), x is
    copied into a zero-padded channels-last buffer first, ``CHUNK_BYTES`` of samples at a time (:func:`padded_layout`).
    Else a channels-last x is read in place, and a channels-first x of several channels is copied channels-last
    first, ``CHUNK_BYTES`` of samples at a time (:func:`.workspace.contiguous`, in tiles): read in place, each
    (tap, input channel) pair of a block would touch a cache line of its own. Either way the blocks run along the
    rows or across the samples (:func:`_run_across`), as :func:`_mode` prices them."""
    batch = x.shape[0]
    out = geometry.empty_out(batch, spec.out_channels, spec.output_size, x.dtype, channels_last)
    if out.size == 0:
        return out
    w, b = _packed(weight, bias, spec, x.dtype)
    mode = _mode(spec, channels_last, batch, x.itemsize)
    if mode == "padded":  # x copied into a zero-padded buffer, CHUNK_BYTES of samples at a time
        layout = padded_layout(spec)
        source = geometry.moved(x, -1, 1) if channels_last else x  # (N, C, *spatial), a view
        buffer_shape = (*layout.buffer, spec.in_channels)
        chunk = max(1, int(_tuning.CHUNK_BYTES // max(1, math.prod(buffer_shape) * x.itemsize)))
        for first in range(0, batch, chunk):
            piece = padded_copy(source[first : first + chunk], layout, buffer_shape)
            _run(piece, out[first : first + chunk], w, b, layout.spec, channels_last, True)
        return out
    run = _run_across if mode == "across" else _run
    if channels_last:
        run(x, out, w, b, spec, True)
        return out
    x_last = x.transpose(0, *range(2, x.ndim), 1)  # np.moveaxis(x, 1, -1), a view
    if spec.in_channels == 1:  # a channels-first x of one channel is channels-last
        run(x_last, out, w, b, spec, False)
        return out
    chunk = max(1, int(_tuning.CHUNK_BYTES // max(1, x.nbytes // batch)))
    if mode == "across":
        chunk = _whole_blocks(chunk)
    for first in range(0, batch, chunk):
        piece = workspace.contiguous(x_last[first : first + chunk], slot=2)
        run(piece, out[first : first + chunk], w, b, spec, False)
    return out


def _whole_blocks(chunk: int) -> int:
    """A chunk of samples cut down to whole register blocks of samples across them (:func:`across_samples`, else
    blocks of four), where one fits."""
    for unit in (across_samples(machine.vector_bytes()), PIXELS):
        if chunk >= unit:
            return chunk // unit * unit
    return chunk


class PaddedLayout(NamedTuple):
    """x copied into a zero-padded buffer (:func:`padded_layout`): the call over it, the buffer's spatial shape, the
    buffer's part x fills (``where``, an index of ``(N, *spatial, C)``), the part of x that fills it (``reads``, an
    index of ``(N, C, *spatial)``), and whether the buffer has zeros to fill."""

    spec: ConvSpec
    buffer: tuple[int, ...]
    where: tuple[slice, ...]
    reads: tuple[slice, ...]
    zeros: bool


@functools.lru_cache(maxsize=256)
def padded_layout(spec: ConvSpec) -> PaddedLayout:
    """The call over x copied into a zero-padded buffer: every output's taps all meet the buffer (no border: each
    row runs the blocks of four through the offsets' table), and along the last axis the buffer reaches four
    pixels on from every output, so that the row's last pixels run as a block of four too (the kernel's
    ``tail``). A row of five to seven pixels is thus readable eight pixels on from its first, and with AVX-512's
    blocks of eight a job that holds such a row whole runs it as one block of eight, not two of four.
    The call over the buffer pads nothing; its input is the span the outputs' taps reach (x cropped where it
    reaches further): the im2col's zero-padded plane (:func:`.geometry.im2col_geometry`), the same span and the
    same part of x in it."""
    planes = geometry.im2col_geometry(geometry.axes3(spec))
    rank, o, st = spec.ndim, spec.output_size[-1], spec.stride[-1]
    extent = planes.span[3 - rank :]
    buffer = (*extent[:-1], extent[-1] + (-(-o // PIXELS) * PIXELS - o) * st)  # four pixels on from every output
    where = (slice(None), *(slice(a, b) for a, b in planes.dst[3 - rank :]))
    reads = (slice(None), slice(None), *(slice(a, b) for a, b in planes.src[3 - rank :]))
    call = ConvSpec.build(
        transposed=False,
        input_size=tuple(extent),
        kernel_size=spec.kernel_size,
        in_channels=spec.in_channels,
        out_channels=spec.out_channels,
        stride=spec.stride,
        dilation=spec.dilation,
        groups=spec.groups,
    )
    filled = math.prod(r.stop - r.start for r in reads[2:])
    return PaddedLayout(call, buffer, where, reads, filled < math.prod(buffer))


def padded_copy(source: np.ndarray, layout: PaddedLayout, buffer_shape: tuple[int, ...]) -> np.ndarray:
    """``source (N, C, *spatial)`` (any strides) copied channels-last into this thread's zero-padded buffer
    (slot 2), ``(N, *layout.buffer, C)``: channels-first planes of ``TRANSPOSE_TILES_MIN_BYTES`` or more by tiles
    (:func:`.transpose.planes`), others by NumPy."""
    plane = workspace.scratch((source.shape[0], *buffer_shape), source.dtype, slot=2)
    inner = plane[layout.where]
    if layout.zeros:
        workspace.zero_border(plane, layout.where)
    interior = source[layout.reads]
    if interior.nbytes >= _tuning.TRANSPOSE_TILES_MIN_BYTES and interior.strides[-1] == interior.itemsize:
        missing = tuple(range(2, 5 - source.ndim + 2))  # unit axes to three spatial ones, for the tiles
        if transpose.planes(np.expand_dims(geometry.moved(inner, -1, 1), missing), np.expand_dims(interior, missing)):
            return plane
    inner[...] = geometry.moved(interior, 1, -1)
    return plane


class _Plan(NamedTuple):
    """What a call's kernel needs beyond its arrays (:func:`_plan`)."""

    xs: np.ndarray  # x's element strides (N, axis 1, 2, 3, channels)
    os: np.ndarray  # the output's, alike
    geo: np.ndarray  # geometry.span_tables
    spans: np.ndarray
    dims: np.ndarray  # groups, C_in/G, C_out/G, channel blocks, pixels a job, jobs a row, interior [lo, hi), width,
    # tail (x a padded copy: a row's last pixels a block of four), jobs a block runs over in turn (:func:`_together`);
    # across the samples (:func:`_across_plan`): groups, C_in/G, C_out/G, channel blocks, samples a block, batch, jobs
    # a block runs over in turn, width
    offsets: (
        np.ndarray
    )  # the (tap, input channel) pairs' offsets in x, the packed weight's order (geometry.window_offsets)
    jobs: int
    work: float  # elements of work, for the team's hand-off (team.ranges)


@functools.lru_cache(maxsize=1024)
def _plan(
    spec: ConvSpec, batch: int, x_strides: tuple[int, ...], out_strides: tuple[int, ...], out_last: bool,
    itemsize: int, threads: int, tail: bool,
) -> _Plan:  # fmt: skip
    """A call's :class:`_Plan`, made once per call description, batch, byte strides of x (channels-last) and of
    the output, output layout, itemsize, team size and ``tail`` (x a padded copy, readable four pixels on from
    every output: :func:`padded_layout`): on a call of 0.07 ms its making took a tenth."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    block = width(cg_out, lanes(itemsize))
    axes = geometry.axes3(spec)
    geo, spans = geometry.span_tables(axes)
    lo, hi = _interior(axes)
    pairs = batch * axes.size_out[0] * axes.size_out[1]
    wanted = _tuning.KERNEL_RANGES_PER_THREAD * threads
    blocks = min(-(-axes.size_out[2] // PIXELS), max(1, -(-wanted // pairs)))  # cut the last axis where pairs are few
    step = -(-axes.size_out[2] // blocks)
    step = -(-step // PIXELS) * PIXELS  # whole blocks of pixels a job
    blocks = -(-axes.size_out[2] // step)
    x_elements = geometry.element_strides(x_strides, itemsize, spec.ndim, True)
    out_elements = geometry.element_strides(out_strides, itemsize, spec.ndim, out_last)
    together = _together(axes, step, spec.in_channels * itemsize)
    dims = (groups, cg_in, cg_out, -(-cg_out // block), step, blocks, lo, hi, block, int(tail), together)
    xs, os_, dims_array = kernels.index_arrays(x_elements, out_elements, dims)  # shared by the plan's calls, read only
    offsets = geometry.window_offsets(axes.kernel, axes.dilation, x_elements, cg_in, True)
    work = min(_costs(spec, out_last)) * batch / _tuning.KERNEL_ELEMENT_SECONDS
    return _Plan(xs, os_, geo, spans, dims_array, offsets, pairs * blocks, work)


def _together(axes: geometry.Axes3, step: int, pixel_bytes: int) -> int:
    """The jobs (rows of ``step`` outputs) each block of output channels runs over in turn: as many as read at most
    ``BLOCKED_TOGETHER_BYTES`` of x between them (each job's taps' rows, the columns its outputs' taps span, a
    pixel's input channels: all of them, a bound for a grouped layer, whose blocks read their group's), at most
    ``BLOCKED_TOGETHER_JOBS``, at least one. A block's weights are then read from memory or a shared cache once
    for them all, and from the core's own cache by the rest: a layer of 512 input and output channels and 3x3 taps
    has 590 KB of weights a block of 32 output channels and 9.4 MB in all, more than a core's L2 cache holds, so
    that a row run through every block read each block's weights from beyond it."""
    rows = axes.dilation[0] * (axes.kernel[0] - 1) + 1
    rows *= axes.dilation[1] * (axes.kernel[1] - 1) + 1
    columns = (step - 1) * axes.stride[2] + axes.dilation[2] * (axes.kernel[2] - 1) + 1
    return max(1, min(_tuning.BLOCKED_TOGETHER_JOBS, _tuning.BLOCKED_TOGETHER_BYTES // (rows * columns * pixel_bytes)))


def _run(
    x: np.ndarray, out: np.ndarray, w: np.ndarray, b: np.ndarray, spec: ConvSpec, out_last: bool, tail: bool = False
) -> None:
    """The kernel on a channels-last x (any non-negative strides) into ``out`` (channels-last where
    ``out_last``, else channels-first), on the team; ``tail``: x is a padded copy (:func:`padded_layout`)."""
    plan = _plan(spec, x.shape[0], x.strides, out.strides, out_last, x.itemsize, team.threads(), tail)
    _launch(_kernel(int(plan.dims[8]) == lanes(x.itemsize)), x, out, w, b, plan, plan.offsets)


def _launch(
    kernel: Any, x: np.ndarray, out: np.ndarray, w: np.ndarray, b: np.ndarray, plan: _Plan, *extra: Any
) -> None:
    """``kernel`` (along the rows, ``extra`` its table of offsets, or across the samples) over ``plan``'s jobs on
    the team."""
    x_flat, out_flat = kernels.flat(x), kernels.flat(out)
    xs, os_, geo, spans, dims = plan.xs, plan.os, plan.geo, plan.spans, plan.dims

    def run(start: int, stop: int) -> None:
        kernel(x_flat, w, b, out_flat, xs, os_, geo, spans, dims, *extra, start, stop)

    team.ranges(run, plan.jobs, plan.work)


#: the kernel's callees, set by :func:`_bind` (module globals: see :func:`_kernel`)
_lanes: Any = None
_vfma: Any = None
_vload: Any = None
_vsplat: Any = None
_vstore: Any = None
_pair: Any = None
_store: Any = None
_four: Any = None
_four_all: Any = None
_one: Any = None
_eight_all: Any = None
_eight: Any = None
_pair1: Any = None
_store1: Any = None
_four1: Any = None
_four_all1: Any = None
_one1: Any = None
_eight_all1: Any = None


@functools.cache
def _bind() -> tuple[int, bool]:
    """Set the kernel's callees (the SIMD operations at the machine's widest vectors and the inlined block sums)
    as module globals, once; return the vectors' bytes and whether a row's interior goes in blocks of eight."""
    from . import simd

    # Everything the kernel calls is a module global, not a closure variable: numba's disk cache keys a function
    # by its pickled closure, and a dispatcher or an intrinsic pickles with an id new in every process, so a
    # kernel holding one in its closure would be compiled again in every new process (kernels.py does the same).
    global _lanes, _vfma, _vload, _vsplat, _vstore, _pair, _store, _four, _four_all, _one, _eight_all, _eight
    global _pair1, _store1, _four1, _four_all1, _one1, _eight_all1
    wide = simd.widest()  # the machine's widest vectors: the sums are bound by their multiply-adds
    _lanes, _vload, _vsplat, _vfma, _vstore = wide.lanes, wide.vload, wide.vsplat, simd.vfma, simd.vstore
    vector_bytes = wide.vector_bytes  # in the closure, as .simd.width says
    eights = vector_bytes >= 64  # AVX-512's 32 vector registers: a row's interior in blocks of eight pixels

    def pair(x, w, xe, wi, pixel, lane, a00, a01, a10, a11, a20, a21, a30, a31):  # type: ignore[no-untyped-def]
        # One (tap, input channel) pair into a block's accumulators: its two weight vectors from ``wi``, each of
        # the four pixels' input element (``pixel`` apart from ``xe``) broadcast once, eight multiply-adds. The
        # accumulators go in and come back as values (inlined: they stay in registers).
        w0 = _vload(w, wi)
        w1 = _vload(w, wi + lane)
        v = _vsplat(x, xe)
        a00 = _vfma(a00, v, w0)
        a01 = _vfma(a01, v, w1)
        v = _vsplat(x, xe + pixel)
        a10 = _vfma(a10, v, w0)
        a11 = _vfma(a11, v, w1)
        v = _vsplat(x, xe + 2 * pixel)
        a20 = _vfma(a20, v, w0)
        a21 = _vfma(a21, v, w1)
        v = _vsplat(x, xe + 3 * pixel)
        a30 = _vfma(a30, v, w0)
        a31 = _vfma(a31, v, w1)
        return a00, a01, a10, a11, a20, a21, a30, a31

    def store(dst, db, dstep, lane, a00, a01, a10, a11, a20, a21, a30, a31):  # type: ignore[no-untyped-def]
        # A block's four pixels (``dstep`` apart from ``db``), two vectors each, into ``dst``.
        _vstore(dst, db, a00)
        _vstore(dst, db + lane, a01)
        _vstore(dst, db + dstep, a10)
        _vstore(dst, db + dstep + lane, a11)
        _vstore(dst, db + 2 * dstep, a20)
        _vstore(dst, db + 2 * dstep + lane, a21)
        _vstore(dst, db + 3 * dstep, a30)
        _vstore(dst, db + 3 * dstep + lane, a31)

    def four(  # type: ignore[no-untyped-def]
        x,
        w,
        bias,
        dst,
        xb,
        wb,
        bb,
        db,
        dstep,
        t1a,
        t1b,
        t2a,
        t2b,
        k2,
        k3,
        cg_in,
        tap1,
        tap2,
        tap3,
        xc,
        pixel,
        runs,
        run,
    ):
        # Four pixels ``pixel`` apart in x from ``xb``, every tap along the last axis, the rows of taps
        # [t1a, t1b) x [t2a, t2b); one block of output channels (weights from ``wb``, bias from ``bb``) into
        # ``dst`` from ``db``, ``dstep`` a pixel. Each row of taps is ``runs`` runs of ``run`` (tap, input
        # channel) pairs ``xc`` apart in x: one run of all the taps along the last axis where they are
        # contiguous (x's pixels a group's channels apart: channels-last with one group, dilation 1 there), else
        # one run a tap.
        lane = _lanes(x)  # a constant of the compiled code, as the offsets from it
        width = 2 * lane
        a00 = a10 = a20 = a30 = _vload(bias, bb)
        a01 = a11 = a21 = a31 = _vload(bias, bb + lane)
        for t1 in range(t1a, t1b):
            for t2 in range(t2a, t2b):
                xi = xb + t1 * tap1 + t2 * tap2
                wi = wb + (t1 * k2 + t2) * k3 * cg_in * width
                for _r in range(runs):
                    xe = xi
                    for _e in range(run):
                        a00, a01, a10, a11, a20, a21, a30, a31 = _pair(
                            x, w, xe, wi, pixel, lane, a00, a01, a10, a11, a20, a21, a30, a31
                        )
                        wi += width
                        xe += xc
                    xi += tap3
        _store(dst, db, dstep, lane, a00, a01, a10, a11, a20, a21, a30, a31)

    def four_all(x, w, bias, dst, xb, wb, bb, db, dstep, offsets, pixel):  # type: ignore[no-untyped-def]
        # :func:`four` where every tap meets x (the interior): one loop over the (tap, input channel) pairs,
        # each read at its offset from ``xb`` (``offsets``), the weights in the same order.
        lane = _lanes(x)
        width = 2 * lane
        a00 = a10 = a20 = a30 = _vload(bias, bb)
        a01 = a11 = a21 = a31 = _vload(bias, bb + lane)
        wi = wb
        for e in range(offsets.size):
            xe = xb + offsets[e]
            a00, a01, a10, a11, a20, a21, a30, a31 = _pair(
                x, w, xe, wi, pixel, lane, a00, a01, a10, a11, a20, a21, a30, a31
            )
            wi += width
        _store(dst, db, dstep, lane, a00, a01, a10, a11, a20, a21, a30, a31)

    def one(x, w, bias, dst, xb, wb, bb, db, t1a, t1b, t2a, t2b, t3a, t3b, k2, k3, cg_in, tap1, tap2, tap3, xc):  # type: ignore[no-untyped-def]
        # One pixel from ``xb``, the taps [t1a, t1b) x [t2a, t2b) x [t3a, t3b); as :func:`four` otherwise.
        lane = _lanes(x)
        width = 2 * lane
        a0 = _vload(bias, bb)
        a1 = _vload(bias, bb + lane)
        for t1 in range(t1a, t1b):
            for t2 in range(t2a, t2b):
                xi = xb + t1 * tap1 + t2 * tap2 + t3a * tap3
                wi = wb + ((t1 * k2 + t2) * k3 + t3a) * cg_in * width
                for _t3 in range(t3a, t3b):
                    xe = xi
                    for _ci in range(cg_in):
                        v = _vsplat(x, xe)
                        a0 = _vfma(a0, v, _vload(w, wi))
                        a1 = _vfma(a1, v, _vload(w, wi + lane))
                        wi += width
                        xe += xc
                    xi += tap3
        _vstore(dst, db, a0)
        _vstore(dst, db + lane, a1)

    def eight_all(x, w, bias, dst, xb, wb, bb, db, dstep, offsets, pixel):  # type: ignore[no-untyped-def]
        # :func:`four_all` for eight pixels (512-bit vectors only: sixteen sums, two weight vectors and a broadcast
        # fill 19 of the 32 registers; 256-bit code has 16): each pair's weights loaded once for sixteen
        # multiply-adds, half the loads and loop steps a multiply-add of a block of four.
        lane = _lanes(x)
        width = 2 * lane
        a00 = a10 = a20 = a30 = a40 = a50 = a60 = a70 = _vload(bias, bb)
        a01 = a11 = a21 = a31 = a41 = a51 = a61 = a71 = _vload(bias, bb + lane)
        wi = wb
        for e in range(offsets.size):
            xe = xb + offsets[e]
            # two blocks of four with the same weight vectors (loaded once: the second loads are the first's)
            a00, a01, a10, a11, a20, a21, a30, a31 = _pair(
                x, w, xe, wi, pixel, lane, a00, a01, a10, a11, a20, a21, a30, a31
            )
            a40, a41, a50, a51, a60, a61, a70, a71 = _pair(
                x, w, xe + 4 * pixel, wi, pixel, lane, a40, a41, a50, a51, a60, a61, a70, a71
            )
            wi += width
        _store(dst, db, dstep, lane, a00, a01, a10, a11, a20, a21, a30, a31)
        _store(dst, db + 4 * dstep, dstep, lane, a40, a41, a50, a51, a60, a61, a70, a71)

    def eight(  # type: ignore[no-untyped-def]
        x,
        w,
        bias,
        dst,
        xb,
        wb,
        bb,
        db,
        dstep,
        t1a,
        t1b,
        t2a,
        t2b,
        k2,
        k3,
        cg_in,
        tap1,
        tap2,
        tap3,
        xc,
        pixel,
        runs,
        run,
    ):
        # :func:`four` for eight pixels (512-bit vectors only, as :func:`eight_all`): each pair's two weight vectors
        # loaded once for sixteen multiply-adds.
        lane = _lanes(x)
        width = 2 * lane
        a00 = a10 = a20 = a30 = a40 = a50 = a60 = a70 = _vload(bias, bb)
        a01 = a11 = a21 = a31 = a41 = a51 = a61 = a71 = _vload(bias, bb + lane)
        for t1 in range(t1a, t1b):
            for t2 in range(t2a, t2b):
                xi = xb + t1 * tap1 + t2 * tap2
                wi = wb + (t1 * k2 + t2) * k3 * cg_in * width
                for _r in range(runs):
                    xe = xi
                    for _e in range(run):
                        a00, a01, a10, a11, a20, a21, a30, a31 = _pair(
                            x, w, xe, wi, pixel, lane, a00, a01, a10, a11, a20, a21, a30, a31
                        )
                        a40, a41, a50, a51, a60, a61, a70, a71 = _pair(
                            x, w, xe + 4 * pixel, wi, pixel, lane, a40, a41, a50, a51, a60, a61, a70, a71
                        )
                        wi += width
                        xe += xc
                    xi += tap3
        _store(dst, db, dstep, lane, a00, a01, a10, a11, a20, a21, a30, a31)
        _store(dst, db + 4 * dstep, dstep, lane, a40, a41, a50, a51, a60, a61, a70, a71)

    # Blocks of one vector of output channels (a group's output channels fit one): the same sums with one weight
    # vector a pair and one accumulator a pixel.
    def pair1(x, w, xe, wi, pixel, a0, a1, a2, a3):  # type: ignore[no-untyped-def]
        w0 = _vload(w, wi)
        a0 = _vfma(a0, _vsplat(x, xe), w0)
        a1 = _vfma(a1, _vsplat(x, xe + pixel), w0)
        a2 = _vfma(a2, _vsplat(x, xe + 2 * pixel), w0)
        a3 = _vfma(a3, _vsplat(x, xe + 3 * pixel), w0)
        return a0, a1, a2, a3

    def store1(dst, db, dstep, a0, a1, a2, a3):  # type: ignore[no-untyped-def]
        _vstore(dst, db, a0)
        _vstore(dst, db + dstep, a1)
        _vstore(dst, db + 2 * dstep, a2)
        _vstore(dst, db + 3 * dstep, a3)

    def four1(  # type: ignore[no-untyped-def]
        x,
        w,
        bias,
        dst,
        xb,
        wb,
        bb,
        db,
        dstep,
        t1a,
        t1b,
        t2a,
        t2b,
        k2,
        k3,
        cg_in,
        tap1,
        tap2,
        tap3,
        xc,
        pixel,
        runs,
        run,
    ):
        lane = _lanes(x)
        a0 = a1 = a2 = a3 = _vload(bias, bb)
        for t1 in range(t1a, t1b):
            for t2 in range(t2a, t2b):
                xi = xb + t1 * tap1 + t2 * tap2
                wi = wb + (t1 * k2 + t2) * k3 * cg_in * lane
                for _r in range(runs):
                    xe = xi
                    for _e in range(run):
                        a0, a1, a2, a3 = _pair1(x, w, xe, wi, pixel, a0, a1, a2, a3)
                        wi += lane
                        xe += xc
                    xi += tap3
        _store1(dst, db, dstep, a0, a1, a2, a3)

    def four_all1(x, w, bias, dst, xb, wb, bb, db, dstep, offsets, pixel):  # type: ignore[no-untyped-def]
        lane = _lanes(x)
        a0 = a1 = a2 = a3 = _vload(bias, bb)
        wi = wb
        for e in range(offsets.size):
            a0, a1, a2, a3 = _pair1(x, w, xb + offsets[e], wi, pixel, a0, a1, a2, a3)
            wi += lane
        _store1(dst, db, dstep, a0, a1, a2, a3)

    def one1(x, w, bias, dst, xb, wb, bb, db, t1a, t1b, t2a, t2b, t3a, t3b, k2, k3, cg_in, tap1, tap2, tap3, xc):  # type: ignore[no-untyped-def]
        lane = _lanes(x)
        a0 = _vload(bias, bb)
        for t1 in range(t1a, t1b):
            for t2 in range(t2a, t2b):
                xi = xb + t1 * tap1 + t2 * tap2 + t3a * tap3
                wi = wb + ((t1 * k2 + t2) * k3 + t3a) * cg_in * lane
                for _t3 in range(t3a, t3b):
                    xe = xi
                    for _ci in range(cg_in):
                        a0 = _vfma(a0, _vsplat(x, xe), _vload(w, wi))
                        wi += lane
                        xe += xc
                    xi += tap3
        _vstore(dst, db, a0)

    def eight_all1(x, w, bias, dst, xb, wb, bb, db, dstep, offsets, pixel):  # type: ignore[no-untyped-def]
        lane = _lanes(x)
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _vload(bias, bb)
        wi = wb
        for e in range(offsets.size):
            xe = xb + offsets[e]
            a0, a1, a2, a3 = _pair1(x, w, xe, wi, pixel, a0, a1, a2, a3)
            a4, a5, a6, a7 = _pair1(x, w, xe + 4 * pixel, wi, pixel, a4, a5, a6, a7)
            wi += lane
        _store1(dst, db, dstep, a0, a1, a2, a3)
        _store1(dst, db + 4 * dstep, dstep, a4, a5, a6, a7)

    # inlined (numba's IR) into the job loop: a call passes every array as seven arguments, most on the stack
    inline = kernels.numba_module().njit(inline="always", fastmath=True, nogil=True)
    _pair, _store = inline(pair), inline(store)  # before the functions that call them are compiled
    _four, _four_all, _one = inline(four), inline(four_all), inline(one)
    _eight_all, _eight = inline(eight_all), inline(eight)
    _pair1, _store1 = inline(pair1), inline(store1)
    _four1, _four_all1, _one1, _eight_all1 = inline(four1), inline(four_all1), inline(one1), inline(eight_all1)
    return vector_bytes, eights


@functools.cache
def _kernel(single: bool) -> Any:
    """The kernel for blocks of one vector of output channels (``single``) or of two: two compiled functions, each
    without the other's branches (a kernel holding both ran the blocks of two up to 1.8 times slower, 1.05 in the
    geometric mean over 188 layers)."""
    vector_bytes, eights = _bind()  # in the closure, as .simd.width says

    def blocked(x, w, bias, out, xs, os, geo, spans, dims, offsets, start, stop):  # type: ignore[no-untyped-def]
        # x flat from its first element, element strides xs (N, axis 1, 2, 3, channel); out flat from its first element,
        # strides os alike; w flat (G, blocks, K, C_in/G, width), bias (G, blocks * width), both zero-padded to whole
        # blocks of width = 2 * lanes output channels (``single``: lanes). geo: per 3-D padded axis k, s, d, lo, o;
        # spans (6, max O): per axis each output's first and stop tap that meet x; [lo3, hi3) the last axis's outputs
        # whose taps along it all meet x; dims as _Plan's (dims[9], ``tail``: x readable four pixels on from every
        # output, a padded copy). Job = (sample, o1, o2, block of ``step`` o3).
        k2, k3 = geo[1], geo[2]
        s1, s2, s3 = geo[3], geo[4], geo[5]
        d1, d2, d3 = geo[6], geo[7], geo[8]
        l1, l2, l3 = geo[9], geo[10], geo[11]
        o1n, o2n, o3n = geo[12], geo[13], geo[14]
        groups, cg_in, cg_out, n_blocks = dims[0], dims[1], dims[2], dims[3]
        step, blocks, lo3, hi3 = dims[4], dims[5], dims[6], dims[7]
        tail = dims[9] != 0  # x readable four pixels on from every output (a padded copy): a last partial block
        lane = _lanes(x)
        width = lane if single else 2 * lane  # a constant of the compiled code
        if width != dims[8] or lane * x.itemsize != vector_bytes:  # never: the width keys the cache and the kernel
            raise ValueError("jit_blocked's compiled kernel disagrees with its packed weight's block width")
        block_weights = geo[0] * k2 * k3 * cg_in * width
        xc, oc, o3s = xs[4], os[4], os[3]
        tap1, tap2, tap3 = d1 * xs[1], d2 * xs[2], d3 * xs[3]
        pixel = s3 * xs[3]
        fused = tap3 == cg_in * xc  # the taps along the last axis one run of x (else one run a tap)
        runs, run = (1, k3 * cg_in) if fused else (k3, cg_in)
        together = dims[10]
        row = np.empty(step * width, dtype=x.dtype)  # a job's outputs of one block, where not stored in place
        spare = np.empty(2 * PIXELS * width, dtype=x.dtype)  # a partial last block's pixels (``tail``)
        for j0 in range(start, stop, together):  # a block's weights over ``together`` jobs in turn
            j1 = min(j0 + together, stop)
            for g in range(groups):
                for cb in range(n_blocks):
                    for job in range(j0, j1):
                        block = job % blocks
                        rest = job // blocks
                        o2 = rest % o2n
                        rest = rest // o2n
                        o1 = rest % o1n
                        n = rest // o1n
                        first = block * step
                        last = min(first + step, o3n)
                        t1a, t1b = spans[0, o1], spans[1, o1]
                        t2a, t2b = spans[2, o2], spans[3, o2]
                        x_row = n * xs[0] + (o1 * s1 - l1) * xs[1] + (o2 * s2 - l2) * xs[2]
                        out_row = n * os[0] + o1 * os[1] + o2 * os[2]
                        every_row = t1a == 0 and t1b == geo[0] and t2a == 0 and t2b == k2  # the row's taps all meet x
                        x_group = x_row + g * cg_in * xc
                        c0 = g * cg_out + cb * width
                        valid = min(width, cg_out - cb * width)
                        wb = (g * n_blocks + cb) * block_weights
                        bb = (g * n_blocks + cb) * width
                        in_place = oc == 1 and valid == width  # else through the row buffer
                        dst = out if in_place else row
                        dstep = o3s if in_place else width
                        d0 = out_row + c0 if in_place else -first * width
                        o3 = first
                        while o3 < last:
                            xb = x_group + (o3 * s3 - l3) * xs[3]
                            if eights and every_row and lo3 <= o3 and o3 + 8 <= min(hi3, last):
                                if single:
                                    _eight_all1(x, w, bias, dst, xb, wb, bb, d0 + o3 * dstep, dstep, offsets, pixel)
                                else:
                                    _eight_all(x, w, bias, dst, xb, wb, bb, d0 + o3 * dstep, dstep, offsets, pixel)
                                o3 += 8
                            elif (
                                eights and tail and every_row and PIXELS < o3n < 2 * PIXELS and o3 == 0 and last == o3n
                            ):
                                # a whole row of five to seven pixels, as eight (the buffer reaches eight on: whole
                                # blocks of four; a row cut between jobs runs as fours)
                                if single:
                                    _eight_all1(x, w, bias, spare, xb, wb, bb, 0, width, offsets, pixel)
                                else:
                                    _eight_all(x, w, bias, spare, xb, wb, bb, 0, width, offsets, pixel)
                                for p in range(last - o3):
                                    for i in range(width):
                                        dst[d0 + (o3 + p) * dstep + i] = spare[p * width + i]
                                o3 = last
                            elif every_row and lo3 <= o3 and o3 + 4 <= min(hi3, last):
                                if single:
                                    _four_all1(x, w, bias, dst, xb, wb, bb, d0 + o3 * dstep, dstep, offsets, pixel)
                                else:
                                    _four_all(x, w, bias, dst, xb, wb, bb, d0 + o3 * dstep, dstep, offsets, pixel)
                                o3 += 4
                            elif tail and every_row and lo3 <= o3 and hi3 == o3n:  # the row's last pixels, as four
                                if single:
                                    _four_all1(x, w, bias, spare, xb, wb, bb, 0, width, offsets, pixel)
                                else:
                                    _four_all(x, w, bias, spare, xb, wb, bb, 0, width, offsets, pixel)
                                for p in range(last - o3):
                                    for i in range(width):
                                        dst[d0 + (o3 + p) * dstep + i] = spare[p * width + i]
                                o3 = last
                            elif lo3 <= o3 and o3 + 4 <= min(hi3, last):
                                if single:
                                    _four1(
                                        x,
                                        w,
                                        bias,
                                        dst,
                                        xb,
                                        wb,
                                        bb,
                                        d0 + o3 * dstep,
                                        dstep,
                                        t1a,
                                        t1b,
                                        t2a,
                                        t2b,
                                        k2,
                                        k3,
                                        cg_in,
                                        tap1,
                                        tap2,
                                        tap3,
                                        xc,
                                        pixel,
                                        runs,
                                        run,
                                    )
                                else:
                                    _four(
                                        x,
                                        w,
                                        bias,
                                        dst,
                                        xb,
                                        wb,
                                        bb,
                                        d0 + o3 * dstep,
                                        dstep,
                                        t1a,
                                        t1b,
                                        t2a,
                                        t2b,
                                        k2,
                                        k3,
                                        cg_in,
                                        tap1,
                                        tap2,
                                        tap3,
                                        xc,
                                        pixel,
                                        runs,
                                        run,
                                    )
                                o3 += 4
                            else:
                                t3a, t3b = spans[4, o3], spans[5, o3]
                                if single:
                                    _one1(
                                        x,
                                        w,
                                        bias,
                                        dst,
                                        xb,
                                        wb,
                                        bb,
                                        d0 + o3 * dstep,
                                        t1a,
                                        t1b,
                                        t2a,
                                        t2b,
                                        t3a,
                                        t3b,
                                        k2,
                                        k3,
                                        cg_in,
                                        tap1,
                                        tap2,
                                        tap3,
                                        xc,
                                    )
                                else:
                                    _one(
                                        x,
                                        w,
                                        bias,
                                        dst,
                                        xb,
                                        wb,
                                        bb,
                                        d0 + o3 * dstep,
                                        t1a,
                                        t1b,
                                        t2a,
                                        t2b,
                                        t3a,
                                        t3b,
                                        k2,
                                        k3,
                                        cg_in,
                                        tap1,
                                        tap2,
                                        tap3,
                                        xc,
                                    )
                                o3 += 1
                        if not in_place:  # the row buffer into the output, each channel's row contiguous where it is
                            if oc == 1:
                                for o in range(first, last):
                                    ob = out_row + o * o3s + c0
                                    rb = (o - first) * width
                                    for i in range(valid):
                                        out[ob + i] = row[rb + i]
                            else:
                                for i in range(valid):
                                    ob = out_row + (c0 + i) * oc
                                    for o in range(first, last):
                                        out[ob + o * o3s] = row[(o - first) * width + i]

    return kernels.compile_kernel(blocked)


@functools.cache
def _across_kernel() -> Any:
    """The kernel that blocks pixels across samples (blocks of two vectors of output channels)."""
    vector_bytes, eights = _bind()

    def across(x, w, bias, out, xs, os, geo, spans, dims, start, stop):  # type: ignore[no-untyped-def]
        # As :func:`_kernel`'s, but a job is (block of ``dims[4]`` samples, output pixel): the block's pixels are the
        # same output position in consecutive samples, so they share its taps that meet x (all sums of live taps,
        # none of the padding's); eight samples (512-bit vectors) or four a register block, the rest one at a time.
        k2, k3 = geo[1], geo[2]
        s1, s2, s3 = geo[3], geo[4], geo[5]
        d1, d2, d3 = geo[6], geo[7], geo[8]
        l1, l2, l3 = geo[9], geo[10], geo[11]
        o1n, o2n, o3n = geo[12], geo[13], geo[14]
        groups, cg_in, cg_out, n_blocks = dims[0], dims[1], dims[2], dims[3]
        samples, batch, together = dims[4], dims[5], dims[6]
        lane = _lanes(x)
        width = 2 * lane
        if width != dims[7] or lane * x.itemsize != vector_bytes:
            raise ValueError("jit_blocked's compiled kernel disagrees with its packed weight's block width")
        block_weights = geo[0] * k2 * k3 * cg_in * width
        xc = xs[4]  # the output's channels contiguous (os[4] == 1: a channels-first one is staged)
        tap1, tap2, tap3 = d1 * xs[1], d2 * xs[2], d3 * xs[3]
        fused = tap3 == cg_in * xc
        positions = o1n * o2n * o3n
        spare = np.empty(8 * width, dtype=x.dtype)
        for j0 in range(start, stop, together):
            j1 = min(j0 + together, stop)
            for g in range(groups):
                for cb in range(n_blocks):
                    for job in range(j0, j1):
                        position = job % positions
                        n0 = (job // positions) * samples
                        n1 = min(n0 + samples, batch)
                        o3 = position % o3n
                        rest = position // o3n
                        o2 = rest % o2n
                        o1 = rest // o2n
                        t1a, t1b = spans[0, o1], spans[1, o1]
                        t2a, t2b = spans[2, o2], spans[3, o2]
                        t3a, t3b = spans[4, o3], spans[5, o3]
                        x_at = (o1 * s1 - l1) * xs[1] + (o2 * s2 - l2) * xs[2] + (o3 * s3 - l3) * xs[3] + g * cg_in * xc
                        out_at = o1 * os[1] + o2 * os[2] + o3 * os[3]
                        c0 = g * cg_out + cb * width
                        valid = min(width, cg_out - cb * width)
                        wb = (g * n_blocks + cb) * block_weights
                        bb = (g * n_blocks + cb) * width
                        in_place = valid == width  # else through the spare block
                        runs, run = (1, (t3b - t3a) * cg_in) if fused else (t3b - t3a, cg_in)
                        x_first = x_at + t3a * tap3  # the first live tap along the last axis
                        w_first = wb + t3a * cg_in * width
                        n = n0
                        while n < n1:
                            count = 8 if eights and n + 8 <= n1 else (4 if n + 4 <= n1 else 1)
                            dst = out if in_place else spare
                            db = n * os[0] + out_at + c0 if in_place else 0
                            dstep = os[0] if in_place else width
                            xb = n * xs[0] + x_first
                            if count == 8:
                                _eight(
                                    x, w, bias, dst, xb, w_first, bb, db, dstep, t1a, t1b, t2a, t2b, k2, k3, cg_in,
                                    tap1, tap2, tap3, xc, xs[0], runs, run,
                                )  # fmt: skip
                            elif count == 4:
                                _four(
                                    x, w, bias, dst, xb, w_first, bb, db, dstep, t1a, t1b, t2a, t2b, k2, k3, cg_in,
                                    tap1, tap2, tap3, xc, xs[0], runs, run,
                                )  # fmt: skip
                            else:
                                _one(
                                    x, w, bias, dst, n * xs[0] + x_at, wb, bb, db, t1a, t1b, t2a, t2b, t3a, t3b, k2,
                                    k3, cg_in, tap1, tap2, tap3, xc,
                                )  # fmt: skip
                            if not in_place:
                                for j in range(count):
                                    ob = (n + j) * os[0] + out_at + c0
                                    for i in range(valid):
                                        out[ob + i] = spare[j * width + i]
                            n += count

    return kernels.compile_kernel(across)


def _run_across(x: np.ndarray, out: np.ndarray, w: np.ndarray, b: np.ndarray, spec: ConvSpec, out_last: bool) -> None:
    """The across-samples kernel (:func:`_across_kernel`) on a channels-last x (any non-negative strides) into
    ``out`` (channels-last where ``out_last``, else channels-first: staged channels-last (the kernel stores a pixel's
    channels contiguous), ``CHUNK_BYTES`` of samples
    at a time in whole register blocks of samples where one fits, and copied across by tiles,
    :func:`.transpose.assign`; its blocks' stores a plane apart each measured slower), on the team. Fewer samples
    than a block of four (a chunk's last few) run along the rows (:func:`_run`): one at a time here."""
    batch = x.shape[0]
    if batch < PIXELS:
        _run(x, out, w, b, spec, out_last)
        return
    if not out_last:  # staged: a register block of samples at least (no more than the output)
        per_sample = spec.out_channels * math.prod(spec.output_size) * x.itemsize
        least = across_samples(machine.vector_bytes())
        chunk = _whole_blocks(max(least, int(_tuning.CHUNK_BYTES // max(1, per_sample))))
        for first in range(0, batch, chunk):
            piece = slice(first, first + chunk)
            staged = workspace.scratch((x[piece].shape[0], *spec.output_size, spec.out_channels), x.dtype, slot=4)
            _run_across(x[piece], staged, w, b, spec, True)
            transpose.assign(geometry.moved(out[piece], 1, -1), staged)
        return
    plan = _across_plan(spec, x.shape[0], x.strides, out.strides, x.itemsize, team.threads())
    _launch(_across_kernel(), x, out, w, b, plan)


@functools.lru_cache(maxsize=1024)
def _across_plan(
    spec: ConvSpec, batch: int, x_strides: tuple[int, ...], out_strides: tuple[int, ...], itemsize: int, threads: int
) -> _Plan:
    """The across-samples kernel's :class:`_Plan` (its ``offsets`` unused; the output channels-last), made once per
    call description, batch, byte strides, itemsize and team size. Jobs: (block of :func:`across_samples` samples,
    output pixel), the pixels of a block of samples consecutive, each block of output channels over
    ``BLOCKED_ACROSS_TOGETHER`` jobs in turn."""
    del threads  # a key of the cache only (the team's size may change between calls)
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    block = width(cg_out, lanes(itemsize))
    axes = geometry.axes3(spec)
    geo, spans = geometry.span_tables(axes)
    samples = across_samples(machine.vector_bytes())
    jobs = -(-batch // samples) * math.prod(axes.size_out)
    x_elements = geometry.element_strides(x_strides, itemsize, spec.ndim, True)
    out_elements = geometry.element_strides(out_strides, itemsize, spec.ndim, True)
    dims = (groups, cg_in, cg_out, -(-cg_out // block), samples, batch, _tuning.BLOCKED_ACROSS_TOGETHER, block)
    xs, os_, dims_array = kernels.index_arrays(x_elements, out_elements, dims)
    seconds = _across_cost(spec, True, batch)  # infinite for fewer samples than the priced block: priced
    if math.isinf(seconds):  # one pixel at a time then
        seconds = batch * _sums(spec, _shape(axes)[0], 0.0, math.prod(axes.size_out))
    work = seconds / _tuning.KERNEL_ELEMENT_SECONDS
    return _Plan(xs, os_, geo, spans, dims_array, np.zeros(0, dtype=np.int64), jobs, work)
