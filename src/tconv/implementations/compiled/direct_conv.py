"""The direct convolution (``jit_direct`` for a forward call, any stride): few channels per group, depthwise.

A product whose inner dimension is ``C_in/G * K`` (9 for a 3x3 depthwise layer) runs far below the BLAS rate,
so each output plane is summed directly, one tap at a time, as long contiguous multiply-adds.

Along an axis (input ``n``, kernel ``k``, stride ``s``, dilation ``d``, low padding ``lo``, output ``O``) output
``o`` reads the padded input at ``o*s + t*d``: phase ``r = t*d mod s``, row ``o + a`` with ``a = t*d // s``.
So the input plane is first copied into its phases (``Q = O + max(a)`` rows each, zeros where the padding
is; only the phases some tap reads), and then tap ``t`` adds ``w[t]`` times one phase, shifted by ``a``, to every
output at once. On a flattened plane that is a single run of contiguous elements: the output is computed
*wide*, ``O1 x Q2 x Q3`` (its rows as long as the phases' rows), so that the shift by ``a`` is one offset, and
the extra columns, which read the next row's start, are dropped when the plane is written into the caller's
layout with the bias. No zero is multiplied except in the padding (and, in tiles, past the plane's end up to a
whole register block); the wide columns cost ``Q3 / O3``.

A job is one (sample, group, block of output channels); in the whole-plane kernel each input channel's phases
are filled once per job.
Output channels go four a pass (three taps a pass: each phase element is loaded once for four channels), the
block's last ones one a pass (four taps a pass). The weight gradient (``grad``) sums in SIMD vectors of the
machine's widest (:func:`.simd.widest`) over whole vectors of the wide plane, four output channels and six taps
a pass (24 sums in registers, each output-gradient vector loaded once for six multiply-adds; with AVX-512's 32
vector registers only), then three.

Where the cost model prices them lower (:func:`tiles_cheaper`) and the phases fit the cache and memory bounds
(:func:`_tiles_fit`), the forward sum runs in tiles (:func:`_tiled_kernel`): a job fills the phases of all its
group's input channels first, then for each tile of the wide plane sums every (input channel, tap) for four output
channels at a time in register blocks of two SIMD vectors of wide elements (:mod:`.simd`: eight sums in registers,
each term's two phase vectors and four weights loaded once for eight multiply-adds; with AVX-512's 32 registers,
eight channels at a time first, in blocks of three vectors: 24 sums, each term's three phase vectors and eight
weights loaded once for 24 multiply-adds, a tile's last one or two vectors a vector a block), and a group's channels
short of four (all of a depthwise layer's) one at a time in blocks of eight vectors (a tile's last blocks two), the
terms in chunks (``CHUNK_TERMS``) whose phase rows stay in the cache while every four channels read them, the sums
carried between chunks in a tile's rows for as many channels as ``SUB_BYTES`` hold, and writes the tile's valid
columns straight into the output with the bias (as 256-bit vectors where a run is at least one long, as every kernel
that moves data: 512-bit ones left a 14-column row to be written one element at a time). A batch with fewer (sample,
group) pairs than the team has ranges is cut into blocks of output channels (in fours; up to as many a pair as make
the jobs a multiple of the threads), so that a thread fills a pair's phases about once (docs/design.md, "The tiled
direct sum" and "Register blocks along the pixels"). Each output is summed by one thread, in the same order
whichever thread that is.

The module is long because its two kernels (whole planes, which the weight gradient runs too, and tiles) share
the phase geometry and its cost model, and each is one compiled function whose loops are written out in full.

The weight gradient (:func:`weight_grad`) runs the same kernel the other way round: the job's output gradients
are copied into wide planes (their wide columns stay zero), and each (output channel, input channel, tap) is
the sum over the plane of the gradient times the shifted phase, into the partial of the job's range.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import blocked, channel_dots, geometry, kernels, machine, team, transpose
from .workspace import Partials, channels_first, scratch, staged, stages

#: (input channel, tap) terms the tiled kernel sums a chunk, its sums in registers (:func:`_tiled_kernel`)
CHUNK_TERMS = 128
#: bytes of a tile's sums the tiled kernel keeps for as many output channels as fit (:func:`_tiled_kernel`)
SUB_BYTES = 128 * 2**10


class DirectConvGeometry:
    """The phases of one call's 3-D padded axes (:func:`direct_conv_geometry`), as the kernel reads them."""

    def __init__(self, axes: geometry.Axes3) -> None:
        n, k, s, d, lo, out = axes
        reach = [(kk - 1) * dd // ss for kk, ss, dd in zip(k, s, d)]
        rows = [oo + rr for oo, rr in zip(out, reach)]  # Q per axis
        tap_phases, tap_rows, phases = [], [], []
        for axis in range(3):
            a, r = np.divmod(np.arange(k[axis], dtype=np.int64) * d[axis], s[axis])
            used = np.unique(r)  # the phases some tap reads, stored in this order
            phases.append(used)
            tap_phases.append(np.searchsorted(used, r))
            tap_rows.append(a)
        count = [p.size for p in phases]
        widest = max(count)
        self.phase = np.zeros((3, widest), dtype=np.int64)  # each stored phase's r
        self.first = np.zeros((3, widest), dtype=np.int64)  # its rows [first, stop) that hold input
        self.stop = np.zeros((3, widest), dtype=np.int64)
        for axis in range(3):
            for i, r in enumerate(phases[axis]):
                first = max(0, -(-(lo[axis] - r) // s[axis]))
                stop = min(rows[axis], (n[axis] - 1 + lo[axis] - r) // s[axis] + 1)
                self.phase[axis, i], self.first[axis, i], self.stop[axis, i] = r, first, max(first, stop)
        self.plane = rows[0] * rows[1] * rows[2]
        phase_strides = [count[1] * count[2] * self.plane, count[2] * self.plane, self.plane]
        row_strides = [rows[1] * rows[2], rows[2], 1]
        offsets = [tap_phases[i] * phase_strides[i] + tap_rows[i] * row_strides[i] for i in range(3)]
        #: each tap's offset in the phase buffer (taps in the weight's order)
        self.taps = (offsets[0][:, None, None] + offsets[1][None, :, None] + offsets[2][None, None, :]).ravel()
        #: the wide output's length: up to the last output's place in a plane of the phases' row lengths
        self.wide = (out[0] - 1) * row_strides[0] + (out[1] - 1) * row_strides[1] + out[2]
        self.counts = np.array(count, dtype=np.int64)
        self.rows = np.array(rows, dtype=np.int64)
        self.size_out = np.array(out, dtype=np.int64)
        self.stride = np.array(s, dtype=np.int64)
        self.low = np.array(lo, dtype=np.int64)
        #: elements copied into the phases per input channel, and the buffer's length
        self.filled = int(
            np.prod([(self.stop[i, : count[i]] - self.first[i, : count[i]]).sum() for i in range(3)], dtype=np.int64)
        )
        self.size = count[0] * count[1] * count[2] * self.plane
        #: contiguous runs copied per input channel (one per stored phase of each row that holds input)
        self.fill_rows = int(
            (self.stop[0, : count[0]] - self.first[0, : count[0]]).sum()
            * (self.stop[1, : count[1]] - self.first[1, : count[1]]).sum()
            * count[2]
        )

    def arguments(self) -> tuple[Any, ...]:
        return (
            self.counts, self.rows, self.size_out, self.stride, self.low,
            self.phase, self.first, self.stop, self.taps, self.size, self.wide,
        )  # fmt: skip


@functools.lru_cache(maxsize=256)
def direct_conv_geometry(axes: geometry.Axes3) -> DirectConvGeometry:
    """The :class:`DirectConvGeometry` of a call's 3-D padded axes, made once per geometry (read-only to the
    kernel)."""
    return DirectConvGeometry(axes)


def _channel_passes(spec: ConvSpec, wide: int) -> tuple[int, int, int]:
    """How the kernel goes through a call's output channels: ``(block, fours, singles)``, the channels of a job,
    and the passes of four channels and the channels summed one at a time, over all groups."""
    cg_out = spec.out_channels // spec.groups
    block = _block(cg_out, wide, _tuning.COST_ITEMSIZE)
    fours = spec.groups * ((cg_out // block) * (block // 4) + (cg_out % block) // 4)
    return block, fours, spec.out_channels - 4 * fours


def cost(spec: ConvSpec, channels_last: bool = False, tiles: bool | None = None) -> float:
    """Seconds per sample by the cost model of the route :func:`conv` takes: channels-last where
    :func:`dots_preferred`, the dot products along the channels (:func:`.channel_dots.cost`); else the sum over
    planes (:func:`_planes_cost`, in tiles where ``tiles``, by default where they run)."""
    if channels_last and dots_preferred(spec):
        return channel_dots.cost(spec)
    return _planes_cost(spec, channels_last, tiles)


@functools.lru_cache(maxsize=1024)
def dots_preferred(spec: ConvSpec) -> bool:
    """Whether :func:`conv` runs a channels-last call as dot products along the channels
    (:func:`.channel_dots.preferred` against the sum over planes, :func:`_planes_cost`), decided once per call
    description (the tuning constants are fixed in a user's process; the tests that change them clear this
    cache, as they clear the engine's routes)."""
    return channel_dots.preferred(spec, _planes_cost(spec, channels_last=True))


def _block_width() -> int:
    """Wide elements a register block of the tiled kernel sums, as the cost model counts them: two vectors of float32
    (:func:`.blocked.priced_lanes`; a float64 block is half as wide, which the cost model, asking for float32, does
    not price)."""
    return 2 * blocked.priced_lanes(_tuning.COST_ITEMSIZE)


@functools.lru_cache(maxsize=1024)
def _planes_cost(
    spec: ConvSpec, channels_last: bool = False, tiles: bool | None = None, registers: bool = False
) -> float:
    """Seconds per sample of the sum over planes by the cost model: every (output channel, input channel of its
    group, tap) adds one wide plane, at ``DIRECT_CONV_BLOCK_RATE`` for the channels summed four a pass (three
    taps a pass) and at ``DIRECT_CONV_RATE`` for the rest (four taps a pass), each pass a ``ROW_COST`` a channel;
    each job fills the phases of its group's input channels at ``PHASE_FILL_RATE`` (elements a second) plus a
    ``ROW_COST`` a run; the output is written once at ``COLUMN_STREAM``. Channels-last, the fills and the
    output's write, which then stride by the channel count, cost ``DIRECT_CONV_LAST_MEMORY`` times as much (the
    sums run on the same wide planes in either layout), except where x or the output is copied channels-first
    (:func:`.workspace.staged`): that copy, read and written at ``TRANSPOSE_STREAM``, instead.

    In tiles (``tiles``; by default where :func:`_tiles_fit` runs them), the channels summed four at a time run at
    ``DIRECT_TILE_RATE`` (times :func:`.machine.vector_speed`) over the wide plane rounded up to whole register
    blocks (:func:`_block_width`), each written run a ``ROW_COST``, and a sample's phases are filled once a group.
    The rest, one at a time: with ``registers`` (as :func:`tiles_cheaper` weighs the tiles against the whole
    planes), or where they are a group's remainder past its fours, at ``DIRECT_TILE_SINGLE_RATE`` over the same
    rounded plane (their blocks of eight vectors, which may sum up to four vectors past a tile's end, priced as
    blocks of two), a ``ROW_COST`` a chunk of terms, channel
    and tile; else (the estimate the planner ranks for groups of one to three output channels) as the whole planes
    price them, one a pass, four terms a pass, each pass made once a tile: an upper bound, since the tiles run only
    where they cost less. Priced lower for the planner there too, they moved two choices on recorded forced
    timings of forward sweeps 51-59 ((53, 420, 20) -> 2 and (12, 368, 14) -> 3, channels-first) from
    ``jit_blocked`` at 0.19-0.89 ms to the direct sum at 0.80-1.8 ms in whole planes (docs/design.md, "One
    channel's sums in registers"). Made once per call description and arguments (a forward call reads it for the
    team's hand-off); the tuning constants it reads are fixed in a user's process, and the tests that change them
    clear this cache (``tests/conftest.py``)."""
    phases = direct_conv_geometry(geometry.axes3(spec))
    cg_in, cg_out = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    taps = math.prod(spec.kernel_size)
    if tiles is None:
        tiles = _tiles_fit(spec, phases, _tuning.COST_ITEMSIZE, threads=1)
    plane = cg_in * taps * phases.wide  # one output channel's multiply-adds
    # a pass over four channels' rows costs four ROW_COSTs (its set-up: twelve weights, three phase rows and
    # four output rows, about three times a one-channel pass's; docs/design.md)
    fours_plane = single_plane = plane
    single_rate = _tuning.DIRECT_CONV_RATE
    if tiles:  # four channels' sums, or one channel's, in registers over blocks of _block_width() wide elements
        # (or more), summed whole, the terms a chunk at a time
        fours, rate = spec.groups * (cg_out // 4), _tuning.DIRECT_TILE_RATE * machine.vector_speed()
        single = spec.out_channels - 4 * fours
        fills, count = spec.groups * cg_in, -(-phases.wide // _tile(_tuning.COST_ITEMSIZE))
        block_wide = _block_width()
        fours_plane = cg_in * taps * -(-phases.wide // block_wide) * block_wide
        # each run of valid columns the writer copies a ROW_COST (the whole planes' writer, alike, is left out of
        # their estimate: with the term the planner's regret replayed 1.130, without it 1.136, on sweeps 51-56)
        runs = spec.out_channels * (math.prod(spec.output_size[:-1]) + count - 1)  # a tile's end cuts a row
        if registers or cg_out >= 4:  # the planner's estimate too where the single channels are a remainder
            single_plane, single_rate = fours_plane, _tuning.DIRECT_TILE_SINGLE_RATE * machine.vector_speed()
            passes = count * single * -(-cg_in * taps // CHUNK_TERMS) + runs
        else:
            passes = count * single * -(-cg_in * taps // 4) + runs
    else:
        block, fours, single = _channel_passes(spec, phases.wide)
        fills, rate = spec.groups * -(-cg_out // block) * cg_in, _tuning.DIRECT_CONV_BLOCK_RATE
        passes = 4 * fours * cg_in * -(-taps // 3) + single * cg_in * -(-taps // 4)
    output = _tuning.COST_ITEMSIZE * spec.out_channels * math.prod(spec.output_size)
    x_bytes = _tuning.COST_ITEMSIZE * spec.in_channels * math.prod(spec.input_size)
    fill = write = 1.0
    copies = 0.0
    if channels_last:  # a staged array is copied channels-first and back; the others are read a channel apart
        fill, write = (1.0 if stages(size) else _tuning.DIRECT_CONV_LAST_MEMORY for size in (x_bytes, output))
        copies = sum(2 * size / _tuning.TRANSPOSE_STREAM for size in (x_bytes, output) if stages(size))
    return (
        4 * fours * fours_plane / rate
        + single * single_plane / single_rate
        + fill * fills * phases.filled / _tuning.PHASE_FILL_RATE
        + passes * _tuning.ROW_COST
        + fill * fills * phases.fill_rows * _tuning.ROW_COST
        + write * output / _tuning.COLUMN_STREAM
        + copies
    )


def weight_grad_cost(spec: ConvSpec) -> float:
    """Seconds per sample of :func:`weight_grad` by the cost model: :func:`cost`'s terms plus a
    ``DIRECT_GRAD_PASS_COST`` a pass (each pass ends in horizontal sums of its vector accumulators, which
    dominate on short planes); the gradient sums whole planes, never tiles."""
    cg_in, taps = spec.in_channels // spec.groups, math.prod(spec.kernel_size)
    _, fours, single = _channel_passes(spec, direct_conv_geometry(geometry.axes3(spec)).wide)
    passes = cg_in * (fours * -(-taps // 3) + single * -(-taps // 4))
    return cost(spec, tiles=False) + passes * _tuning.DIRECT_GRAD_PASS_COST


def _block(cg_out: int, wide: int, itemsize: int) -> int:
    """Output channels per job: as many as keep their wide planes within ``DIRECT_CONV_BLOCK_BYTES``, in
    multiples of four (the kernel sums four channels a pass; four even where their planes are larger)."""
    block = max(1, min(cg_out, _tuning.DIRECT_CONV_BLOCK_BYTES // max(1, wide * itemsize)))
    if block < cg_out:
        block = max(block - block % 4, min(4, cg_out))
    return block


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The (forward) convolution of a batched x in the caller's layout, summed directly (any strides).
    Channels-last, as dot products along the channels where the cost model prefers them (:func:`dots_preferred`:
    few output channels a group over many input channels); else a large x is copied channels-first and a large
    output summed channels-first and copied back (:func:`.workspace.staged`): the kernel's phase fills and output
    writes would otherwise read and write a channel count apart, each input channel's fill streaming the whole of
    x through the cache ((2, 96, 96, 128) -> 8: 16.1 against 9.3 ms; (4, 128, 128, 64) -> 128: 512 against 173
    ms)."""
    if not channels_last:
        out = geometry.empty_out(x.shape[0], spec.out_channels, spec.output_size, x.dtype, False)
        _conv_into(x, weight, bias, spec, out)
        return out
    if dots_preferred(spec):
        return channel_dots.conv(x, weight, bias, spec)
    result = geometry.empty_out(x.shape[0], spec.out_channels, spec.output_size, x.dtype, True)
    target = geometry.moved(result, -1, 1)
    out = scratch(target.shape, x.dtype, slot=4) if staged(result) else target
    _conv_into(channels_first(x, slot=3), weight, bias, spec, out)
    if out is not target and not transpose.copy(target, out):
        np.copyto(target, out)
    return result


def _conv_into(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, out: np.ndarray) -> None:
    """:func:`conv` of a channels-first x (any strides) into ``out``, channels-first (any strides)."""
    out_grouped = geometry.grouped_view(out, spec.groups, spec.ndim, False)
    x_grouped = geometry.grouped_view(x, spec.groups, spec.ndim, False)
    if out.size == 0:
        return
    w_flat = np.ascontiguousarray(weight, dtype=x.dtype).reshape(-1)
    b_flat = geometry.bias_by_group(bias, spec, x.dtype).reshape(-1)
    out_flat, seconds = kernels.flat(out_grouped), cost(spec) * x.shape[0]
    phases = direct_conv_geometry(geometry.axes3(spec))
    if _tiles_fit(spec, phases, x.dtype.itemsize):
        _run_tiles(x_grouped, out_grouped, spec, phases, w_flat, b_flat, out_flat, seconds)
        return
    unused = np.zeros(1, dtype=x.dtype)
    _run(x_grouped, out_grouped, spec, lambda start: (w_flat, b_flat, out_flat, unused, unused, False), seconds)


def _tiles_fit(spec: ConvSpec, phases: DirectConvGeometry, itemsize: int, threads: int | None = None) -> bool:
    """Whether the forward sum runs in tiles (:func:`_tiled_kernel`): where the cost model prices the tiles at most the
    whole planes (:func:`tiles_cheaper`; the register blocks ran 0.67 of the whole-plane kernel's time over the 77
    layers of sweeps 51 and 52 where it ran before, the slowest 1.27: docs/design.md, "Register blocks along the
    pixels"; a group of fewer than four output channels sums them one at a time, "One channel's sums in
    registers"), and where one group's phases, which each thread of the team
    then holds whole, stay in the last-level cache (``DIRECT_TILE_CACHE_BYTES`` for the team, counted for two threads
    at least) and fit ``DIRECT_TILE_PHASE_BYTES`` for the whole team (of ``threads``, by default the team's size now).
    The cost model asks for one thread, so that its estimates, which the planner caches, do not depend on the team's
    size: it prices what a team of two runs, and tiles that a larger team may then run whole. It also asks for float32
    (``COST_ITEMSIZE``): a float64 call near the bounds may run whole planes priced as tiles."""
    cg_in = spec.in_channels // spec.groups
    held = cg_in * phases.size * itemsize  # one thread's phases
    team_size = team.threads() if threads is None else threads
    return (
        held * max(2, team_size) <= _tuning.DIRECT_TILE_CACHE_BYTES
        and held * team_size <= _tuning.DIRECT_TILE_PHASE_BYTES
        and tiles_cheaper(spec)
    )


@functools.lru_cache(maxsize=1024)
def tiles_cheaper(spec: ConvSpec) -> bool:
    """Whether the cost model puts the tiles (their single channels priced in registers) at most the whole planes'
    cost (:func:`_planes_cost`, channels-first:
    channels-last multiplies the fills of both by the same factor, and the whole planes fill more of them, so the
    comparison leans towards the whole planes there), decided once per call description (the tests that change the
    tuning constants clear this cache, as they clear the engine's routes). On a wide plane shorter than a
    register block (``_block_width()``) the tiles sum mostly past its end, and the whole planes pay a pass a tap and
    channel; which costs more depends on the channels and terms."""
    return _planes_cost(spec, tiles=True, registers=True) <= _planes_cost(spec, tiles=False)


def _tile(itemsize: int) -> int:
    """The tiled kernel's tile: ``DIRECT_TILE_BYTES`` of ``itemsize``-byte elements, 16 at least."""
    return max(16, _tuning.DIRECT_TILE_BYTES // itemsize)


def _run_tiles(
    x_grouped: np.ndarray,
    out_grouped: np.ndarray,
    spec: ConvSpec,
    phases: DirectConvGeometry,
    w_flat: np.ndarray,
    b_flat: np.ndarray,
    out_flat: np.ndarray,
    seconds: float,
) -> None:
    """The tiled kernel over every (sample, group, block of output channels). A block is all of a group's
    output channels where there are enough (sample, group) pairs for the team; else each pair is cut into
    blocks of output channels (in fours), up to as many as make the jobs a multiple of the team's threads
    (fewer where the fours run out), so that a thread fills a pair's phases about once."""
    item = x_grouped.dtype.itemsize
    plan = _tiles_plan(spec, x_grouped.shape[0], x_grouped.strides, out_grouped.strides, item, team.threads())
    x_flat, tables = kernels.flat(x_grouped), phases.arguments()
    kernel = _tiled_kernel()
    x_strides, out_strides, dims, tile, sub = plan.x_strides, plan.out_strides, plan.dims, plan.tile, plan.sub
    chunk = CHUNK_TERMS

    def run(start: int, stop: int) -> None:
        kernel(x_flat, w_flat, b_flat, out_flat, x_strides, out_strides, dims, *tables, tile, chunk, sub, start, stop)

    team.ranges(run, plan.jobs, seconds / _tuning.KERNEL_ELEMENT_SECONDS)


class _TilesPlan(NamedTuple):
    """What :func:`_run_tiles`' kernel needs beyond its arrays and the geometry's tables (:func:`_tiles_plan`)."""

    x_strides: np.ndarray  # x's element strides (N, G, C_in/G, axes 1-3)
    out_strides: np.ndarray  # the output's, alike
    dims: np.ndarray  # batch, groups, C_in/G, C_out/G, output channels a block
    tile: int  # wide elements a tile
    sub: int  # output channels the sums hold at once
    jobs: int  # (sample, group, block of output channels)


@functools.lru_cache(maxsize=1024)
def _tiles_plan(
    spec: ConvSpec, batch: int, x_strides: tuple[int, ...], out_strides: tuple[int, ...], item: int, threads: int
) -> _TilesPlan:
    """:func:`_run_tiles`' blocks of output channels, tile and share of channels for a call, made once per call
    description, batch, byte strides of x and of the output (channels-first, grouped), itemsize and team size (on
    a call of 50 us their making took a tenth); the tuning constants it reads are fixed in a user's process, and
    the tests that change them clear this cache (``tests/conftest.py``)."""
    phases = direct_conv_geometry(geometry.axes3(spec))
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    pairs = batch * groups
    cuts = 1 if pairs >= _tuning.KERNEL_RANGES_PER_THREAD * threads else threads // math.gcd(pairs, threads)
    block = min(cg_out, 4 * -(-cg_out // (4 * cuts)))
    x_array, out_array, dims = kernels.index_arrays(
        tuple(st // item for st in x_strides), tuple(st // item for st in out_strides),
        (batch, groups, cg_in, cg_out, block),
    )  # fmt: skip
    tiles = -(-phases.wide // _tile(item))
    whole = max(16, 2 * blocked.lanes(item))  # tiles of whole register blocks (not 1024 and 31)
    tile = whole * -(-phases.wide // (whole * tiles))
    pitch = tile + 8 * blocked.lanes(item)  # a channel's row of sums in the kernel (its pitch)
    fold = 8 if machine.vector_bytes() >= 64 else 4  # the kernel's blocks of channels: eight with AVX-512
    sub = max(4, min(SUB_BYTES // (pitch * item) // fold * fold, fold * -(-block // fold)))  # channels the sums hold
    return _TilesPlan(x_array, out_array, dims, tile, sub, pairs * -(-cg_out // block))


def weight_grad(x: np.ndarray, gy: np.ndarray, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The weight gradient ``(C_out, C_in/G, *k)`` of a convolution of a batched x, from its output gradient
    ``gy`` (both in the caller's layout), summed directly: each (output channel, input channel, tap) is the
    sum over the sample's wide plane of the output gradient times the shifted phase, in SIMD vectors, four output
    channels and six taps a pass (AVX-512), then three. On a team each range of jobs sums into its own partial, and the
    partials are added in the ranges' order (:class:`.workspace.Partials`): the same result on every call."""
    groups, d = spec.groups, spec.ndim
    cg_in = spec.in_channels // groups
    total = np.zeros(spec.out_channels * cg_in * math.prod(spec.kernel_size), dtype=x.dtype)
    if x.shape[0] > 0 and total.size > 0:
        if channels_last:  # both read channels-first (see conv)
            x, gy = channels_first(x, slot=3), channels_first(gy, slot=4)
        x_grouped = geometry.grouped_view(x, groups, d, False)
        gy_grouped = geometry.grouped_view(gy, groups, d, False)
        gy_flat, unused = kernels.flat(gy_grouped), np.zeros(1, dtype=x.dtype)
        partials = Partials(total)  # one a range of jobs, keyed by its start
        seconds = weight_grad_cost(spec) * x.shape[0]

        def arrays(start: int) -> tuple[Any, ...]:
            return unused, unused, unused, gy_flat, partials.target(start), True

        _run(x_grouped, gy_grouped, spec, arrays, seconds)
        total = partials.sum()
    return total.reshape(spec.out_channels, cg_in, *spec.kernel_size)


def _run(
    x_grouped: np.ndarray,
    out_grouped: np.ndarray,
    spec: ConvSpec,
    arrays: Callable[[int], tuple[Any, ...]],
    seconds: float,
) -> None:
    """The kernel over every (sample, group, block of output channels), on the team where the work pays.
    ``out_grouped`` is the output, or the output gradient, whose layout the kernel reads; ``arrays(start)``,
    asked in the thread that runs the range from ``start``, gives the kernel's ``(w, bias, out, gy, dw, grad)``
    (a weight gradient's ``dw`` is that range's partial). ``seconds`` is the call's one-thread time by the cost
    model (:func:`cost`, :func:`weight_grad_cost`), which the team's rule reads as that many seconds of
    ``KERNEL_ELEMENT_SECONDS`` elements: the kernel's multiply-adds are vectorised, so counting them as elements
    would put calls of a tenth of a millisecond on the team, whose hand-off then doubles their time."""
    phases = direct_conv_geometry(geometry.axes3(spec))
    batch, groups = x_grouped.shape[0], spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    item = x_grouped.dtype.itemsize
    block = _block(cg_out, phases.wide, item)
    x_strides, out_strides, dims = kernels.index_arrays(
        tuple(st // item for st in x_grouped.strides),
        tuple(st // item for st in out_grouped.strides),
        (batch, groups, cg_in, cg_out, block),
    )
    x_flat = kernels.flat(x_grouped)
    tables = phases.arguments()
    kernel = _kernel()
    jobs = batch * groups * -(-cg_out // block)
    work = seconds / _tuning.KERNEL_ELEMENT_SECONDS

    def run(start: int, stop: int) -> None:
        w, bias, out, gy, dw, grad = arrays(start)
        kernel(x_flat, w, bias, out, gy, dw, x_strides, out_strides, dims, *tables, grad, start, stop)

    team.ranges(run, jobs, work)


#: the compiled fill_phases once _fill_kernel() has run: the direct kernels call it by this module global, not
#: through their closure (numba's disk cache keys a function by its pickled closure, and a dispatcher pickles
#: with an id new in every process, so a kernel holding it there would be compiled again in every process)
_fill_phases: Any = None


@functools.cache
def _bind_simd() -> int:
    """Set the module globals through which both direct kernels call the SIMD operations (:mod:`.simd`, whose
    import needs numba: made at the first kernel's build): the phase copies' at 256 bits (they move data), the
    tiles' sums at the machine's widest (:func:`.simd.widest`), whose bytes it returns."""
    from . import simd

    global _fill_lanes, _vload_every, _lanes, _vadd, _vfma, _vload, _vsplat, _vstore, _vzero, _vsum
    global _vload_narrow, _vsplat_narrow
    _fill_lanes, _vload_every = simd.lanes, simd.vload_every
    _vload_narrow, _vsplat_narrow = simd.vload, simd.vsplat
    wide = simd.widest()
    _lanes, _vload, _vsplat, _vzero = wide.lanes, wide.vload, wide.vsplat, wide.vzero
    _vadd, _vfma, _vstore, _vsum = simd.vadd, simd.vfma, simd.vstore, simd.vsum
    return wide.vector_bytes


@functools.cache
def _fill_kernel() -> Any:
    _bind_simd()
    vector_bytes = _tuning.VECTOR_BYTES  # 256 bits everywhere; in the closure, as .simd.width says

    def fill_phases(x, ph, xb, pb, xs, counts, rows, stride, low, phase, first, stop_row):  # type: ignore[no-untyped-def]
        # One input channel of x (flat, from element xb, strides xs) copied into its phases in ph from element pb:
        # each stored phase's rows that hold input (``first`` to ``stop_row``), the rest left as they are (the
        # padding's zeros). The indices are unsigned, so that none is checked for wrap-around (which would keep
        # the copies scalar). Called by both direct kernels.
        p1n, p2n, p3n = counts[0], counts[1], counts[2]
        q2n, q3n = rows[1], rows[2]
        plane = rows[0] * q2n * q3n
        s1, s2, s3 = stride[0], stride[1], stride[2]
        x3 = xs[5]
        lane = _fill_lanes(x)
        if lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("the direct sum's phase copy was compiled for another vector width")
        step = s3 * x3
        ustep = np.uint64(step)
        for p1 in range(p1n):
            for q1 in range(first[0, p1], stop_row[0, p1]):
                i1 = q1 * s1 + phase[0, p1] - low[0]
                for p2 in range(p2n):
                    for q2 in range(first[1, p2], stop_row[1, p2]):
                        i2 = q2 * s2 + phase[1, p2] - low[1]
                        x_row = xb + i1 * xs[3] + i2 * xs[4]
                        ph_row = pb + (p1 * p2n + p2) * p3n * plane + (q1 * q2n + q2) * q3n
                        for p3 in range(p3n):
                            a = first[2, p3]
                            count = stop_row[2, p3] - a
                            dst = np.uint64(ph_row + p3 * plane + a)
                            src = np.uint64(x_row + (a * s3 + phase[2, p3] - low[2]) * x3)
                            if step == 1:
                                for j in range(count):
                                    ph[dst + np.uint64(j)] = x[src + np.uint64(j)]
                            elif 2 <= step <= 4:  # whole vectors, every step-th element kept by a shuffle
                                # (LLVM leaves the loop below scalar); each vector reads step - 1 elements
                                # past its last, so a vector runs only while a vector and one more element remain
                                # (it then never reads past the run's last element)
                                j = 0
                                while j + lane < count:
                                    at = src + np.uint64(j) * ustep
                                    if step == 2:
                                        _vstore(ph, dst + np.uint64(j), _vload_every(x, at, 2))
                                    elif step == 3:
                                        _vstore(ph, dst + np.uint64(j), _vload_every(x, at, 3))
                                    else:
                                        _vstore(ph, dst + np.uint64(j), _vload_every(x, at, 4))
                                    j += lane
                                for i in range(j, count):
                                    ph[dst + np.uint64(i)] = x[src + np.uint64(i) * ustep]
                            else:
                                for j in range(count):
                                    ph[dst + np.uint64(j)] = x[src + np.uint64(j) * ustep]

    global _fill_phases
    _fill_phases = kernels.compile_kernel(fill_phases)
    return _fill_phases


@functools.cache
def _kernel() -> Any:
    _fill_kernel()  # sets _fill_phases, which the kernel calls
    vector_bytes = _bind_simd()  # the weight gradient's sums' width, in the closure, as .simd.width says
    # six taps a pass keep 29 vectors live: only where the machine has 32 vector registers (AVX-512); with 16
    # (AVX2) the pass would spill them, and the three-tap pass runs throughout
    six = vector_bytes >= 64

    def conv_direct(  # type: ignore[no-untyped-def]
        x, w, bias, out, gy, dw, xs, out_s, dims, counts, rows, size_out, stride, low,
        phase, first, stop_row, taps, size, wide, grad, start, stop,
    ):  # fmt: skip
        # x (N, G, Cin_g, n1, n2, n3) and out (N, G, Cout_g, O1, O2, O3) flat, with the element strides xs,
        # out_s; w flat (G, Cout_g, Cin_g, K). Job = (sample, group, block of output channels). The copies'
        # indices are unsigned, so that none is checked for wrap-around (which would keep them scalar).
        # With ``grad`` the kernel runs the other way round: it reads the output gradient ``gy`` (laid out as
        # out, with out_s) into the wide planes, whose wide columns stay zero, and adds to ``dw`` (laid out as
        # w) the weight gradient, each (channel, tap) the sum over the wide plane of the output gradient times
        # the shifted phase. The arrays a direction does not use are placeholders of one element.
        groups, cg_in, cg_out, block = dims[1], dims[2], dims[3], dims[4]
        blocks = (cg_out + block - 1) // block
        q2n, q3n = rows[1], rows[2]
        o1n, o2n, o3n = size_out[0], size_out[1], size_out[2]
        k_all = taps.shape[0]
        lane = _lanes(x)
        if grad and lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("the direct sum's weight gradient was compiled for another vector width")
        # the weight gradient's sums run over whole vectors: a vector past the wide plane's end reads the zeros
        # of acc's rows, padded to whole vectors, times what lies past a tap's window in ph (one vector more)
        ph = np.zeros(size + lane, dtype=x.dtype)  # the padding's zeros are never overwritten
        acc = np.zeros((block, (wide + lane - 1) // lane * lane), dtype=x.dtype)
        for job in range(start, stop):
            n = job // (groups * blocks)
            g = (job // blocks) % groups
            c0 = (job % blocks) * block
            c1 = min(c0 + block, cg_out)
            if grad:  # the block's output gradients as wide planes
                for co in range(c0, c1):
                    row = acc[co - c0]
                    ob = n * out_s[0] + g * out_s[1] + co * out_s[2]
                    for o1 in range(o1n):
                        for o2 in range(o2n):
                            src_row = ob + o1 * out_s[3] + o2 * out_s[4]
                            wide_row = (o1 * q2n + o2) * q3n
                            if out_s[5] == 1:  # a contiguous row (channels-first): unit-stride loads
                                wrow = row[wide_row : wide_row + o3n]
                                grow = gy[src_row : src_row + o3n]
                                for o3 in range(o3n):
                                    wrow[o3] = grow[o3]
                                continue
                            for o3 in range(o3n):
                                row[wide_row + o3] = gy[src_row + o3 * out_s[5]]
            else:
                acc[:] = 0
            for ci in range(cg_in):
                _fill_phases(
                    x, ph, n * xs[0] + g * xs[1] + ci * xs[2], 0, xs, counts, rows, stride, low, phase, first, stop_row
                )
                fours = c0  # the channels summed four a pass end here
                wc_step = cg_in * k_all  # from one output channel's weights to the next's
                while grad and fours + 4 <= c1:  # the weight gradient: 24 or 12 sums a pass, in vectors
                    w0 = ((g * cg_out + fours) * cg_in + ci) * k_all
                    r0, r1, r2 = acc[fours - c0], acc[fours - c0 + 1], acc[fours - c0 + 2]
                    r3 = acc[fours - c0 + 3]
                    t = 0
                    while six and t + 6 <= k_all:  # six taps a pass: 24 sums, each output gradient vector for six
                        t0, t1, t2 = taps[t], taps[t + 1], taps[t + 2]
                        t3, t4, t5 = taps[t + 3], taps[t + 4], taps[t + 5]
                        s00 = s01 = s02 = s03 = s04 = s05 = s10 = s11 = s12 = s13 = s14 = s15 = _vzero(ph)
                        s20 = s21 = s22 = s23 = s24 = s25 = s30 = s31 = s32 = s33 = s34 = s35 = _vzero(ph)
                        for f in range(0, wide, lane):
                            y0, y1, y2, y3 = _vload(r0, f), _vload(r1, f), _vload(r2, f), _vload(r3, f)
                            p = _vload(ph, t0 + f)
                            s00, s10 = _vfma(s00, y0, p), _vfma(s10, y1, p)
                            s20, s30 = _vfma(s20, y2, p), _vfma(s30, y3, p)
                            p = _vload(ph, t1 + f)
                            s01, s11 = _vfma(s01, y0, p), _vfma(s11, y1, p)
                            s21, s31 = _vfma(s21, y2, p), _vfma(s31, y3, p)
                            p = _vload(ph, t2 + f)
                            s02, s12 = _vfma(s02, y0, p), _vfma(s12, y1, p)
                            s22, s32 = _vfma(s22, y2, p), _vfma(s32, y3, p)
                            p = _vload(ph, t3 + f)
                            s03, s13 = _vfma(s03, y0, p), _vfma(s13, y1, p)
                            s23, s33 = _vfma(s23, y2, p), _vfma(s33, y3, p)
                            p = _vload(ph, t4 + f)
                            s04, s14 = _vfma(s04, y0, p), _vfma(s14, y1, p)
                            s24, s34 = _vfma(s24, y2, p), _vfma(s34, y3, p)
                            p = _vload(ph, t5 + f)
                            s05, s15 = _vfma(s05, y0, p), _vfma(s15, y1, p)
                            s25, s35 = _vfma(s25, y2, p), _vfma(s35, y3, p)
                        sums = (
                            (s00, s01, s02, s03, s04, s05), (s10, s11, s12, s13, s14, s15),
                            (s20, s21, s22, s23, s24, s25), (s30, s31, s32, s33, s34, s35),
                        )  # fmt: skip
                        for b in range(4):
                            wt = w0 + b * wc_step + t
                            for j in range(6):
                                dw[wt + j] += _vsum(sums[b][j])
                        t += 6
                    while t < k_all:  # three taps a pass (the last repeated where fewer are left)
                        ta, tb, tc = taps[t], taps[min(t + 1, k_all - 1)], taps[min(t + 2, k_all - 1)]
                        va0 = vb0 = vc0 = va1 = vb1 = vc1 = va2 = vb2 = vc2 = va3 = vb3 = vc3 = _vzero(ph)
                        for f in range(0, wide, lane):
                            pa, pb, pc = _vload(ph, ta + f), _vload(ph, tb + f), _vload(ph, tc + f)
                            y = _vload(r0, f)
                            va0, vb0, vc0 = _vfma(va0, y, pa), _vfma(vb0, y, pb), _vfma(vc0, y, pc)
                            y = _vload(r1, f)
                            va1, vb1, vc1 = _vfma(va1, y, pa), _vfma(vb1, y, pb), _vfma(vc1, y, pc)
                            y = _vload(r2, f)
                            va2, vb2, vc2 = _vfma(va2, y, pa), _vfma(vb2, y, pb), _vfma(vc2, y, pc)
                            y = _vload(r3, f)
                            va3, vb3, vc3 = _vfma(va3, y, pa), _vfma(vb3, y, pb), _vfma(vc3, y, pc)
                        a0, b0, c0w = _vsum(va0), _vsum(vb0), _vsum(vc0)
                        a1, b1, c1w = _vsum(va1), _vsum(vb1), _vsum(vc1)
                        a2, b2, c2w = _vsum(va2), _vsum(vb2), _vsum(vc2)
                        a3, b3, c3w = _vsum(va3), _vsum(vb3), _vsum(vc3)
                        for b, (u, v, q) in enumerate(((a0, b0, c0w), (a1, b1, c1w), (a2, b2, c2w), (a3, b3, c3w))):
                            wt = w0 + b * wc_step + t
                            dw[wt] += u
                            if t + 1 < k_all:  # a last pass of fewer than three taps repeats the last one
                                dw[wt + 1] += v
                            if t + 2 < k_all:
                                dw[wt + 2] += q
                        t += 3
                    fours += 4
                while not grad and fours + 4 <= c1:  # four output channels a pass: each phase element loaded once
                    w0 = ((g * cg_out + fours) * cg_in + ci) * k_all
                    w1, w2, w3 = w0 + wc_step, w0 + 2 * wc_step, w0 + 3 * wc_step
                    r0, r1, r2 = acc[fours - c0], acc[fours - c0 + 1], acc[fours - c0 + 2]
                    r3 = acc[fours - c0 + 3]
                    t = 0
                    while t + 3 <= k_all:  # three taps a pass (twelve weights, seven rows in registers)
                        a0, b0, c0w = w[w0 + t], w[w0 + t + 1], w[w0 + t + 2]
                        a1, b1, c1w = w[w1 + t], w[w1 + t + 1], w[w1 + t + 2]
                        a2, b2, c2w = w[w2 + t], w[w2 + t + 1], w[w2 + t + 2]
                        a3, b3, c3w = w[w3 + t], w[w3 + t + 1], w[w3 + t + 2]
                        sa = ph[taps[t] : taps[t] + wide]
                        sb = ph[taps[t + 1] : taps[t + 1] + wide]
                        sc = ph[taps[t + 2] : taps[t + 2] + wide]
                        for f in range(wide):
                            va, vb, vc = sa[f], sb[f], sc[f]
                            r0[f] += a0 * va + b0 * vb + c0w * vc
                            r1[f] += a1 * va + b1 * vb + c1w * vc
                            r2[f] += a2 * va + b2 * vb + c2w * vc
                            r3[f] += a3 * va + b3 * vb + c3w * vc
                        t += 3
                    while t < k_all:
                        a0, a1, a2, a3 = w[w0 + t], w[w1 + t], w[w2 + t], w[w3 + t]
                        sa = ph[taps[t] : taps[t] + wide]
                        for f in range(wide):
                            va = sa[f]
                            r0[f] += a0 * va
                            r1[f] += a1 * va
                            r2[f] += a2 * va
                            r3[f] += a3 * va
                        t += 1
                    fours += 4
                for co in range(fours, c1):  # the block's last channels, one at a time
                    wb = ((g * cg_out + co) * cg_in + ci) * k_all
                    row = acc[co - c0]
                    t = 0
                    while grad and t < k_all:  # the weight gradient: four sums a pass, in vectors
                        ta, tb = taps[t], taps[min(t + 1, k_all - 1)]
                        tc, td = taps[min(t + 2, k_all - 1)], taps[min(t + 3, k_all - 1)]
                        va0 = vb0 = vc0 = vd0 = _vzero(ph)
                        for f in range(0, wide, lane):
                            y = _vload(row, f)
                            va0, vb0 = _vfma(va0, y, _vload(ph, ta + f)), _vfma(vb0, y, _vload(ph, tb + f))
                            vc0, vd0 = _vfma(vc0, y, _vload(ph, tc + f)), _vfma(vd0, y, _vload(ph, td + f))
                        a0, b0, c0w, d0 = _vsum(va0), _vsum(vb0), _vsum(vc0), _vsum(vd0)
                        dw[wb + t] += a0
                        if t + 1 < k_all:  # a last pass of fewer than four taps repeats the last one
                            dw[wb + t + 1] += b0
                        if t + 2 < k_all:
                            dw[wb + t + 2] += c0w
                        if t + 3 < k_all:
                            dw[wb + t + 3] += d0
                        t += 4
                    while t + 4 <= k_all:  # four taps a pass: a quarter of the passes over the wide plane
                        wa, wb1, wc, wd = w[wb + t], w[wb + t + 1], w[wb + t + 2], w[wb + t + 3]
                        sa = ph[taps[t] : taps[t] + wide]
                        sb = ph[taps[t + 1] : taps[t + 1] + wide]
                        sc = ph[taps[t + 2] : taps[t + 2] + wide]
                        sd = ph[taps[t + 3] : taps[t + 3] + wide]
                        for f in range(wide):
                            row[f] += wa * sa[f] + wb1 * sb[f] + wc * sc[f] + wd * sd[f]
                        t += 4
                    while t < k_all:
                        wa = w[wb + t]
                        sa = ph[taps[t] : taps[t] + wide]
                        for f in range(wide):
                            row[f] += wa * sa[f]
                        t += 1
            if grad:
                continue  # the weight gradient went into dw pass by pass
            for co in range(c0, c1):
                row = acc[co - c0]
                ob = n * out_s[0] + g * out_s[1] + co * out_s[2]
                bj = bias[g * cg_out + co]
                for o1 in range(o1n):
                    for o2 in range(o2n):
                        dst_row = ob + o1 * out_s[3] + o2 * out_s[4]
                        wide_row = (o1 * q2n + o2) * q3n
                        if out_s[5] == 1:  # a contiguous row (channels-first): unit-stride stores
                            orow = out[dst_row : dst_row + o3n]
                            wrow = row[wide_row : wide_row + o3n]
                            for o3 in range(o3n):
                                orow[o3] = wrow[o3] + bj
                            continue
                        for o3 in range(o3n):
                            out[dst_row + o3 * out_s[5]] = row[wide_row + o3] + bj

    return kernels.compile_kernel(conv_direct)


#: the SIMD operations the direct kernels call, set by :func:`_bind_simd` (module globals, as ``_fill_phases``)
_fill_lanes: Any = None
_lanes: Any = None
_vfma: Any = None
_vload: Any = None
_vsplat: Any = None
_vstore: Any = None
_vzero: Any = None
_vadd: Any = None
_vsum: Any = None
_vload_every: Any = None
_vload_narrow: Any = None
_vsplat_narrow: Any = None
_four: Any = None
_three: Any = None
_eight: Any = None
_eight_one: Any = None
_load3: Any = None
_store3: Any = None


@functools.cache
def _tiled_kernel() -> Any:
    vector_bytes = _bind_simd()  # the tiles' width, in the closure, as .simd.width says
    _fill_kernel()  # sets _fill_phases, which the kernel calls

    def four(ph, w, flat, offsets, wc, terms, rb, pitch, f0, fa, width, t0, t1):  # type: ignore[no-untyped-def]
        # Four channels (weights from ``wc * terms``, sums in rows ``rb + i * pitch`` of flat) over the terms
        # [t0, t1) of the wide elements [f0 + fa, f0 + width): blocks of two vectors, eight sums in registers, each
        # term's two phase vectors and four weights loaded once for eight multiply-adds.
        lane = _lanes(flat)
        w0 = wc * terms
        w1, w2, w3 = w0 + terms, w0 + 2 * terms, w0 + 3 * terms
        for f in range(fa, width, 2 * lane):
            base = f0 + f
            r = rb + f
            if t0 == 0:
                s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = _vzero(ph)
            else:
                s00, s01 = _vload(flat, r), _vload(flat, r + lane)
                s10, s11 = _vload(flat, r + pitch), _vload(flat, r + pitch + lane)
                s20, s21 = _vload(flat, r + 2 * pitch), _vload(flat, r + 2 * pitch + lane)
                s30, s31 = _vload(flat, r + 3 * pitch), _vload(flat, r + 3 * pitch + lane)
            for t in range(t0, t1):
                at = offsets[t] + base
                v0 = _vload(ph, at)
                v1 = _vload(ph, at + lane)
                c = _vsplat(w, w0 + t)
                s00 = _vfma(s00, v0, c)
                s01 = _vfma(s01, v1, c)
                c = _vsplat(w, w1 + t)
                s10 = _vfma(s10, v0, c)
                s11 = _vfma(s11, v1, c)
                c = _vsplat(w, w2 + t)
                s20 = _vfma(s20, v0, c)
                s21 = _vfma(s21, v1, c)
                c = _vsplat(w, w3 + t)
                s30 = _vfma(s30, v0, c)
                s31 = _vfma(s31, v1, c)
            _vstore(flat, r, s00)
            _vstore(flat, r + lane, s01)
            _vstore(flat, r + pitch, s10)
            _vstore(flat, r + pitch + lane, s11)
            _vstore(flat, r + 2 * pitch, s20)
            _vstore(flat, r + 2 * pitch + lane, s21)
            _vstore(flat, r + 3 * pitch, s30)
            _vstore(flat, r + 3 * pitch + lane, s31)

    def three(a0, a1, a2, v0, v1, v2, c):  # type: ignore[no-untyped-def]
        # One channel's three sums, each a multiply-add of one phase vector by the channel's weight ``c``.
        return _vfma(a0, v0, c), _vfma(a1, v1, c), _vfma(a2, v2, c)

    def load3(flat, q, lane):  # type: ignore[no-untyped-def]
        # One channel's three sums from its row in flat, from ``q``.
        return _vload(flat, q), _vload(flat, q + lane), _vload(flat, q + 2 * lane)

    def store3(flat, q, lane, a0, a1, a2):  # type: ignore[no-untyped-def]
        # One channel's three sums into its row in flat, from ``q``.
        _vstore(flat, q, a0)
        _vstore(flat, q + lane, a1)
        _vstore(flat, q + 2 * lane, a2)

    def eight(ph, w, flat, offsets, wc, terms, rb, pitch, f0, fb, t0, t1):  # type: ignore[no-untyped-def]
        # Eight channels (weights from ``wc * terms``, sums in rows ``rb + i * pitch`` of flat) over the terms
        # [t0, t1) of the wide elements [f0, f0 + fb), ``fb`` a multiple of three vectors: blocks of three vectors,
        # 24 sums in registers (with three phase vectors and a weight, 28 of the 32), each term's three phase
        # vectors and eight weights loaded once for 24 multiply-adds (:func:`four`'s blocks: 8 for six loads).
        lane = _lanes(flat)
        w0 = wc * terms
        for f in range(0, fb, 3 * lane):
            base = f0 + f
            r = rb + f
            if t0 == 0:
                a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = a30 = a31 = a32 = _vzero(ph)
                a40 = a41 = a42 = a50 = a51 = a52 = a60 = a61 = a62 = a70 = a71 = a72 = _vzero(ph)
            else:
                a00, a01, a02 = _load3(flat, r, lane)
                a10, a11, a12 = _load3(flat, r + pitch, lane)
                a20, a21, a22 = _load3(flat, r + 2 * pitch, lane)
                a30, a31, a32 = _load3(flat, r + 3 * pitch, lane)
                a40, a41, a42 = _load3(flat, r + 4 * pitch, lane)
                a50, a51, a52 = _load3(flat, r + 5 * pitch, lane)
                a60, a61, a62 = _load3(flat, r + 6 * pitch, lane)
                a70, a71, a72 = _load3(flat, r + 7 * pitch, lane)
            for t in range(t0, t1):
                at = offsets[t] + base
                v0, v1, v2 = _vload(ph, at), _vload(ph, at + lane), _vload(ph, at + 2 * lane)
                a00, a01, a02 = _three(a00, a01, a02, v0, v1, v2, _vsplat(w, w0 + t))
                a10, a11, a12 = _three(a10, a11, a12, v0, v1, v2, _vsplat(w, w0 + terms + t))
                a20, a21, a22 = _three(a20, a21, a22, v0, v1, v2, _vsplat(w, w0 + 2 * terms + t))
                a30, a31, a32 = _three(a30, a31, a32, v0, v1, v2, _vsplat(w, w0 + 3 * terms + t))
                a40, a41, a42 = _three(a40, a41, a42, v0, v1, v2, _vsplat(w, w0 + 4 * terms + t))
                a50, a51, a52 = _three(a50, a51, a52, v0, v1, v2, _vsplat(w, w0 + 5 * terms + t))
                a60, a61, a62 = _three(a60, a61, a62, v0, v1, v2, _vsplat(w, w0 + 6 * terms + t))
                a70, a71, a72 = _three(a70, a71, a72, v0, v1, v2, _vsplat(w, w0 + 7 * terms + t))
            _store3(flat, r, lane, a00, a01, a02)
            _store3(flat, r + pitch, lane, a10, a11, a12)
            _store3(flat, r + 2 * pitch, lane, a20, a21, a22)
            _store3(flat, r + 3 * pitch, lane, a30, a31, a32)
            _store3(flat, r + 4 * pitch, lane, a40, a41, a42)
            _store3(flat, r + 5 * pitch, lane, a50, a51, a52)
            _store3(flat, r + 6 * pitch, lane, a60, a61, a62)
            _store3(flat, r + 7 * pitch, lane, a70, a71, a72)

    def eight_one(ph, w, flat, offsets, wc, terms, rb, pitch, f0, fa, width, t0, t1):  # type: ignore[no-untyped-def]
        # :func:`eight` a vector a block, over the wide elements [f0 + fa, f0 + width): a tile's last one or two
        # vectors (eight sums, each term's phase vector and eight weights loaded once for eight multiply-adds).
        lane = _lanes(flat)
        w0 = wc * terms
        for f in range(fa, width, lane):
            base = f0 + f
            r = rb + f
            if t0 == 0:
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _vzero(ph)
            else:
                a0, a1, a2, a3 = (
                    _vload(flat, r),
                    _vload(flat, r + pitch),
                    _vload(flat, r + 2 * pitch),
                    _vload(flat, r + 3 * pitch),
                )
                q = r + 4 * pitch
                a4, a5, a6, a7 = (
                    _vload(flat, q),
                    _vload(flat, q + pitch),
                    _vload(flat, q + 2 * pitch),
                    _vload(flat, q + 3 * pitch),
                )
            for t in range(t0, t1):
                v = _vload(ph, offsets[t] + base)
                a0 = _vfma(a0, v, _vsplat(w, w0 + t))
                a1 = _vfma(a1, v, _vsplat(w, w0 + terms + t))
                a2 = _vfma(a2, v, _vsplat(w, w0 + 2 * terms + t))
                a3 = _vfma(a3, v, _vsplat(w, w0 + 3 * terms + t))
                a4 = _vfma(a4, v, _vsplat(w, w0 + 4 * terms + t))
                a5 = _vfma(a5, v, _vsplat(w, w0 + 5 * terms + t))
                a6 = _vfma(a6, v, _vsplat(w, w0 + 6 * terms + t))
                a7 = _vfma(a7, v, _vsplat(w, w0 + 7 * terms + t))
            _vstore(flat, r, a0)
            _vstore(flat, r + pitch, a1)
            _vstore(flat, r + 2 * pitch, a2)
            _vstore(flat, r + 3 * pitch, a3)
            q = r + 4 * pitch
            _vstore(flat, q, a4)
            _vstore(flat, q + pitch, a5)
            _vstore(flat, q + 2 * pitch, a6)
            _vstore(flat, q + 3 * pitch, a7)

    global _four, _three, _eight, _eight_one, _load3, _store3
    # inlined (numba's IR) into the job loop: a call passes every array as seven arguments, most on the stack
    inline = kernels.numba_module().njit(inline="always", fastmath=True, nogil=True)
    _four, _three = inline(four), inline(three)  # before the functions that call them are compiled
    _load3, _store3 = inline(load3), inline(store3)
    _eight, _eight_one = inline(eight), inline(eight_one)
    eights = vector_bytes >= 64  # AVX-512's 32 vector registers: blocks of eight channels times three vectors

    def conv_tiles(  # type: ignore[no-untyped-def]
        x, w, bias, out, xs, out_s, dims, counts, rows, size_out, stride, low,
        phase, first, stop_row, taps, size, wide, tile, chunk, sub, start, stop,
    ):  # fmt: skip
        # The forward sum in tiles of the wide plane. x (N, G, Cin_g, n1, n2, n3) and out (N, G, Cout_g, O1, O2,
        # O3) flat, with the element strides xs, out_s; w flat (G, Cout_g, Cin_g, K); bias flat (G * Cout_g).
        # Job = (sample, group, block of output channels): the phases of all the group's input channels are
        # filled once (``size`` elements a channel, zeros where the padding is); then for each tile of ``tile``
        # wide elements and each ``sub`` of the block's channels (a multiple of four; of eight with AVX-512), the
        # (input channel, tap) terms in chunks of ``chunk``: with AVX-512 each eight channels sum a chunk in
        # blocks of three vectors (:func:`eight`: 24 sums in registers, the tile's last one or two vectors a
        # vector a block), then each four channels in blocks of two vectors of wide elements (:func:`four`: the
        # block's eight sums in registers, each term's two phase vectors and four weights loaded once for eight
        # multiply-adds), the sums kept between chunks in the channels' rows of ``flat`` (within the L2 cache), so
        # that a chunk's phase rows, read by every block of channels, stay in the cache too. The last channels
        # that are not four go one at a time, eight vectors of one channel's sums a block in registers (the tile's
        # last blocks, of four vectors or fewer, two vectors each), the terms in the same chunks. Then the tile's
        # valid columns are written to out with the bias.
        groups, cg_in, cg_out, block = dims[1], dims[2], dims[3], dims[4]
        blocks = (cg_out + block - 1) // block
        q2n, q3n = rows[1], rows[2]
        o2n, o3n = size_out[1], size_out[2]
        k_all = taps.shape[0]
        lane = _lanes(x)
        narrow = _fill_lanes(x)  # the writer's vectors: 256 bits, as every kernel's that moves data
        if lane * x.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("the direct sum's compiled tiles disagree with their vector width")
        # the padding's zeros are never overwritten; a block's vectors read up to 4 * lane - 1 elements past the
        # last wide element (an eight-vector block starts where more than four vectors are left; sums of no
        # output's, never written), so ph has more than that (eight vectors) past its end
        ph = np.zeros(cg_in * size + 8 * lane, dtype=x.dtype)
        pitch = tile + 8 * lane  # a channel's row of a tile in flat, room for the last block past the tile's end
        flat = np.empty(sub * pitch, dtype=x.dtype)  # each row's sums written before they are read
        runs = np.empty((3, tile // q3n + 2), dtype=np.int64)  # a tile's runs of valid columns (a row's at most)
        filled = -1  # the (sample, group) whose phases ph holds
        terms = cg_in * k_all  # (input channel, tap) pairs, in the weight's order
        offsets = np.empty(terms, dtype=np.int64)  # each pair's phase row in ph
        for ci in range(cg_in):
            for t in range(k_all):
                offsets[ci * k_all + t] = ci * size + taps[t]
        for job in range(start, stop):
            n = job // (groups * blocks)
            g = (job // blocks) % groups
            c0 = (job % blocks) * block
            c1 = min(c0 + block, cg_out)
            if filled != n * groups + g:
                filled = n * groups + g
                for ci in range(cg_in):
                    xb = n * xs[0] + g * xs[1] + ci * xs[2]
                    _fill_phases(x, ph, xb, ci * size, xs, counts, rows, stride, low, phase, first, stop_row)
            for f0 in range(0, wide, tile):
                width = min(tile, wide - f0)
                # the eight channels' blocks of three vectors cover the tile to here (one past its end where more
                # than two vectors would be left, else the rest a vector a block)
                triples = width // (3 * lane) * (3 * lane)
                if width - triples > 2 * lane:
                    triples += 3 * lane
                # the tile's valid columns: a run of o3 < O3 of each wide row with o2 < O2, the same for every
                # channel (where it starts in a channel's plane of out and in the tile, and its length)
                count = 0
                first_row = f0 // q3n
                o1 = first_row // q2n
                o2 = first_row - o1 * q2n
                for wide_row in range(first_row, (f0 + width - 1) // q3n + 1):
                    if o2 < o2n:
                        row_start = wide_row * q3n
                        lo = max(row_start, f0)
                        hi = min(row_start + o3n, f0 + width)
                        if lo < hi:
                            runs[0, count] = o1 * out_s[3] + o2 * out_s[4] + (lo - row_start) * out_s[5]
                            runs[1, count] = lo - f0
                            runs[2, count] = hi - lo
                            count += 1
                    o2 += 1
                    if o2 == q2n:
                        o2 = 0
                        o1 += 1
                for s0 in range(c0, c1, sub):
                    s1 = min(s0 + sub, c1)
                    eights_end = s0 + (s1 - s0) // 8 * 8 if eights else s0  # eight channels at a time end here
                    fours = eights_end + (s1 - eights_end) // 4 * 4  # the channels summed four at a time end here
                    for t0 in range(0, terms, chunk):
                        t1 = min(t0 + chunk, terms)
                        for co in range(s0, eights_end, 8):  # blocks of three vectors, the tile's last two or one
                            rb, wc = (co - s0) * pitch, g * cg_out + co
                            _eight(ph, w, flat, offsets, wc, terms, rb, pitch, f0, triples, t0, t1)
                            if triples < width:
                                _eight_one(ph, w, flat, offsets, wc, terms, rb, pitch, f0, triples, width, t0, t1)
                        for co in range(eights_end, fours, 4):
                            rb, wc = (co - s0) * pitch, g * cg_out + co
                            _four(ph, w, flat, offsets, wc, terms, rb, pitch, f0, 0, width, t0, t1)
                    for co in range(fours, s1):  # one channel: eight vectors of sums a block in registers
                        rb = (co - s0) * pitch
                        w0 = (g * cg_out + co) * terms
                        for t0 in range(0, terms, chunk):
                            t1 = min(t0 + chunk, terms)
                            f = 0
                            while width - f > 4 * lane:  # eight sums, each term's weight splat once for them
                                base = f0 + f
                                r = rb + f
                                if t0 == 0:
                                    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = _vzero(ph)
                                else:
                                    s00, s01 = _vload(flat, r), _vload(flat, r + lane)
                                    s10, s11 = _vload(flat, r + 2 * lane), _vload(flat, r + 3 * lane)
                                    s20, s21 = _vload(flat, r + 4 * lane), _vload(flat, r + 5 * lane)
                                    s30, s31 = _vload(flat, r + 6 * lane), _vload(flat, r + 7 * lane)
                                for t in range(t0, t1):
                                    at = offsets[t] + base
                                    c = _vsplat(w, w0 + t)
                                    s00 = _vfma(s00, _vload(ph, at), c)
                                    s01 = _vfma(s01, _vload(ph, at + lane), c)
                                    s10 = _vfma(s10, _vload(ph, at + 2 * lane), c)
                                    s11 = _vfma(s11, _vload(ph, at + 3 * lane), c)
                                    s20 = _vfma(s20, _vload(ph, at + 4 * lane), c)
                                    s21 = _vfma(s21, _vload(ph, at + 5 * lane), c)
                                    s30 = _vfma(s30, _vload(ph, at + 6 * lane), c)
                                    s31 = _vfma(s31, _vload(ph, at + 7 * lane), c)
                                _vstore(flat, r, s00)
                                _vstore(flat, r + lane, s01)
                                _vstore(flat, r + 2 * lane, s10)
                                _vstore(flat, r + 3 * lane, s11)
                                _vstore(flat, r + 4 * lane, s20)
                                _vstore(flat, r + 5 * lane, s21)
                                _vstore(flat, r + 6 * lane, s30)
                                _vstore(flat, r + 7 * lane, s31)
                                f += 8 * lane
                            while f < width:  # the tile's last blocks, four vectors or fewer: two vectors each
                                base = f0 + f
                                r = rb + f
                                if t0 == 0:
                                    s00 = s01 = _vzero(ph)
                                else:
                                    s00, s01 = _vload(flat, r), _vload(flat, r + lane)
                                for t in range(t0, t1):
                                    at = offsets[t] + base
                                    c = _vsplat(w, w0 + t)
                                    s00 = _vfma(s00, _vload(ph, at), c)
                                    s01 = _vfma(s01, _vload(ph, at + lane), c)
                                _vstore(flat, r, s00)
                                _vstore(flat, r + lane, s01)
                                f += 2 * lane
                    # the tile's valid columns with the bias, channel by channel, a run at a time (one slice of the
                    # channel's row in flat and one of out)
                    for co in range(s0, s1):
                        bj = bias[g * cg_out + co]
                        bias_vector = _vsplat_narrow(bias, g * cg_out + co)
                        ob = n * out_s[0] + g * out_s[1] + co * out_s[2]
                        rb = (co - s0) * pitch
                        for k in range(count):
                            dst = ob + runs[0, k]
                            src = rb + runs[1, k]
                            length = runs[2, k]
                            if out_s[5] == 1 and length >= narrow:  # vectors, the last one ending the run
                                j = 0
                                while j + narrow < length:
                                    _vstore(out, dst + j, _vadd(_vload_narrow(flat, src + j), bias_vector))
                                    j += narrow
                                j = length - narrow
                                _vstore(out, dst + j, _vadd(_vload_narrow(flat, src + j), bias_vector))
                            elif out_s[5] == 1:
                                for j in range(length):
                                    out[dst + j] = flat[src + j] + bj
                            else:
                                for j in range(length):
                                    out[dst + j * out_s[5]] = flat[src + j] + bj

    return kernels.compile_kernel(conv_tiles)


__all__ = ["DirectConvGeometry", "conv", "cost", "direct_conv_geometry", "weight_grad", "weight_grad_cost"]
