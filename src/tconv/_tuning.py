"""Every number the engine decides by: the planner's thresholds, its cost model's rates, and the sizes in
which the algorithms cut their work.

One module, below both the planner (:mod:`tconv.engine.planner`) and the algorithms
(:mod:`tconv.implementations`), so that each reads its numbers from here without importing the other.
Each value is read when a call runs (``_tuning.NAME``), so a test can change it with ``monkeypatch``.

The values were measured on the 2-core reference machine; the measurements, with their dates, are in
``docs/design.md`` under "Measurements behind the planner". Comments here say why a number exists and
which way it cuts, not how fast anything ran. One value is read from the machine at import: the last-level
cache's size, which bounds the tiled direct sum's phases (``DIRECT_TILE_CACHE_BYTES``).

The module is long because every number keeps its reason beside it, and one place for all of them is the point:
split by algorithm, the planner's margins and the rates they weigh would sit in modules apart.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path


def _shared_cache_bytes(default: int, root: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """The first CPU's largest cache of any level (the last level, which its cores share: L3 on most machines),
    as Linux lists its caches under ``root``, in bytes; a cache whose size is missing or in a form not known here
    is skipped, and ``default`` is returned where none is readable (another system, a sandbox)."""
    largest = 0
    for index in Path(root).glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
            largest = max(largest, int(text.rstrip("KMG")) * scale)
        except (OSError, ValueError):
            continue
    return largest or default


def _pinned_gemm_rate(variable: str = "TCONV_GEMM_RATE") -> float | None:
    """The product rate pinned in the environment (``TCONV_GEMM_RATE=70e9``), in flop/s; None where it is unset. A
    value that is not a positive number is reported (a warning naming the variable) and ignored."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = float("nan")
    if not 0 < rate < float("inf"):
        message = f"{variable}: expected a positive rate in flop/s such as 7e10; received {text!r} (ignored)"
        warnings.warn(message, stacklevel=2)
        return None
    return rate


def _pinned_vector_bytes(variable: str = "TCONV_PRICED_VECTOR_BYTES") -> int:
    """The vector width the cost model counts, pinned in the environment (``TCONV_PRICED_VECTOR_BYTES=32``), in
    bytes; 0 where it is unset. A value other than 32 or 64 is reported (a warning naming the variable) and
    ignored."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return 0
    if text not in ("32", "64"):
        warnings.warn(f"{variable}: expected 32 or 64 (bytes); received {text!r} (ignored)", stacklevel=2)
        return 0
    return int(text)


# --- the planner's rules (tconv.engine.planner.plan) ----------------------------------------------------

#: A channels-last transposed convolution with one group takes ``jit_pixels`` from this many output channels
#: on: its overlap-add runs along the contiguous channels and x needs no copy; with fewer channels the
#: vectorised channel loop is too short to pay.
PIXELS_MIN_CHANNELS = 8

#: ``jit_pixels`` folds its products into the overlap-add (no column buffer) for this many input channels or
#: fewer: a product of inner dimension 1-3 runs far below BLAS's rate, and its columns are written and read again.
PIXELS_DIRECT_MAX_IN = 3

#: Channels-last, where the output is whole blocks of the stride (kernels no longer than their strides, nothing
#: cropped: :func:`tconv.implementations.compiled.transposed.writes_blocks`), ``jit_pixels`` writes each tap's
#: product straight into the output for this many input channels or fewer (any count in 1-D, one product):
#: one BLAS product per input row and tap, each packing the weight's ``C_in x k * C_out`` block again, which
#: is cheap against the copy of the output it saves only while the inner dimension is short. 2-D k2 s2,
#: products against the column path: 0.49-1.07 for 16-128 input channels, 0.66-1.92 for 256-1024 (docs/design.md).
PIXELS_BLOCKS_MAX_IN = 128

#: bytes/s at which BLAS packs the weight's block for each of ``jit_pixels``' block-write products (the cost
#: model's term for them, :func:`tconv.implementations.compiled.algorithms._blocks_cost`).
BLOCKS_PACK_STREAM = 40e9

#: seconds each of those products costs besides its multiply-adds and packing (NumPy's loop over the stack and
#: BLAS's call): (4, 13, 13, 13, 64) -> 4 k2 s2, 2704 products of 13 rows, took 2.0 ms.
BLOCKS_PRODUCT_COST = 0.6e-6

#: ``jit_pixels``' block writes run in pieces of about this many bytes of output, so that each piece's bias is
#: added while it is still in the cache.
PIXELS_BLOCKS_PIECE_BYTES = 2**20

#: ``jit_phases`` (:mod:`tconv.implementations.compiled.phases`) runs its im2col and products in pieces of about
#: this many bytes of im2col (one sample's rows along the first axis), which stay in the cache for the product.
PHASES_PIECE_BYTES = 2**20

#: The planner ranks ``jit_phases`` only where its estimate is at most this share of every other algorithm's:
#: on the sweep layers of seeds 11-16 and 41-43 where it would otherwise be chosen, it ran 0.18-0.89 of the former
#: choice's time at estimate ratios up to 0.54 (one loss, 1.5-2.1x, at 0.56) and 0.8-3.0x at 0.69-0.79; its fixed
#: costs on small layers run above the model's. Held out (seeds 17-40): 25 choices changed, 0.584 of the former
#: choices' time (docs/design.md).
PHASES_MARGIN = 0.6

#: ``jit_phases`` writes a phase's products in place (a product per row of outputs along the last axis) where
#: those rows are at least this long; shorter ones go through one product into a buffer and a copy, since each
#: product packs the phase's weight again.
PHASES_IN_PLACE_MIN_ROWS = 32

#: seconds each (piece, phase) of ``jit_phases`` costs besides its bytes and multiply-adds: the slices, the
#: im2col kernel's call and the product's, in Python.
PHASES_CALL_COST = 8e-6

#: ... unless the cost model puts ``jit_pixels`` above this many times the cheapest estimate still ranked: the rule
#: stands for the layers it was made for (many channels over short rows), and yields on those where the model
#: sees the pixel path's rows dominate (few input channels, a batch of one with large kernels). Fitted on the
#: planner's regret over two transposed sweeps, checked on two others (docs/design.md).
PIXELS_MARGIN = 1.25

#: Channels-first, ``jit_pixels`` pays only for the batched 2-D generator layers on a thread team: at least
#: this many output channels ...
PIXELS_TEAM_MIN_CHANNELS = 32

#: ... and input rows of at most this many pixels (longer rows let ``jit_gemm`` read x in place, one
#: product per sample, which the pixel path cannot).
PIXELS_TEAM_MAX_ROW = 8

#: ... unless the cost model puts ``jit_pixels`` above this many times the cheapest estimate (twins included):
#: a layer of few input channels beyond ``PIXELS_DIRECT_MAX_IN``, whose pixel products have a short inner
#: dimension (with one, before the products were folded in: (14, 1, 4, 4) -> 387 k4, 3.0 ms against 0.63 for the
#: forward twin). Replayed on transposed sweeps 11-16 (360 layers):
#: the planner's regret 1.080 -> 1.072, four choices changed, each to a faster one; 1.5 to 5 all alike; sweeps
#: 17-19 (180 layers): no choice changed (docs/design.md).
PIXELS_TEAM_MARGIN = 3.0

#: ... and unless ``jit_blocked`` runs the layer's forward twin (stride 1) in blocks across the samples at most this
#: many times ``jit_pixels``' estimate (which runs pessimistic on these layers: 51 ms for 24 measured on (64, 256,
#: 7, 7) -> 128 5x5). Across the samples ran 0.50-0.78 of ``jit_pixels``' time on three 2-D layers of transposed
#: sweeps 74-75 and the suite whose estimates were 0.07-0.37 of its, and 1.08-1.51 on two at 0.50-0.54
#: (docs/design.md, "Blocks across samples").
PIXELS_ACROSS_MARGIN = 0.45

# --- the cost model (tconv.engine.planner.plan_costs; the algorithms' cost()) --------------------------
# Every cost is per sample, plus an algorithm's setup_cost once per call (a weight rearranged on every call), so
# a plan is made per batch.

#: float32 rate of NumPy's BLAS on the column products, in flop/s, when the inner dimension is at least
#: GEMM_FULL_RATE_INNER (below): the rate the model was first fitted with. The cost model
#: prices products at GEMM_PROBE_SHARE times the rate measured on this machine, at most this
#: (tconv.implementations.compiled.machine.gemm_rate), and at this where MEASURED_GEMM_RATE is off or this process
#: could not measure. ``TCONV_GEMM_RATE`` in the environment replaces it and turns the measurement off.
_PINNED_GEMM_RATE = _pinned_gemm_rate()
GEMM_RATE = _PINNED_GEMM_RATE or 120e9

#: Whether the cost model prices products by this machine's own rate (1) or by GEMM_RATE (0: where
#: ``TCONV_GEMM_RATE`` is set, in the test suite, whose planner pins were written against GEMM_RATE, and for
#: replays of another machine's timings).
MEASURED_GEMM_RATE = 0 if _PINNED_GEMM_RATE else 1

#: The cost model's rate as a multiple of the probe's: one float32 product of (128, 576) x (576, 1024) (a 3x3
#: layer of 64 -> 128 channels over 32x32 pixels) on one BLAS thread (the compiled path's products never run on
#: BLAS's threads: each team thread runs its own). On the AMD EPYC without AVX-512 (31-33 GFLOP/s a thread)
#: replays of 420 forward and 120 transposed layers timed there met the least regret at 65e9-80e9 (forward 1.099
#: at 120e9, 1.081-1.084 from 30e9 to 80e9; transposed 1.057 at 120e9, 1.056-1.062 from 60e9 up, 1.087 at 30e9);
#: 2.2 puts it at about 70e9 (docs/design.md, "The machine's GEMM rate"). Capped at GEMM_RATE: on an Intel Xeon
#: with AVX-512 (150 GFLOP/s a thread) 2.2 would give 331e9, and replays of its 600 transposed and 540 forward sweep
#: layers did best at 90e9-120e9 (1.086 and 1.102 at the cap, 1.098 and 1.113 at 330e9: docs/design.md, "the GEMM
#: rate's cap on an AVX-512 machine").
GEMM_PROBE_SHARE = 2.2

#: The inner dimension (``C_in / groups``) below which a product runs proportionally slower than the rate above.
GEMM_FULL_RATE_INNER = 64

#: bytes/s at which the compiled kernels write or read the column buffer (one pass each way).
COLUMN_STREAM = 5e9

#: multiply-adds/s of the direct kernel (``jit_direct``).
DIRECT_RATE = 3e9

#: ``jit_depthwise`` (channels-last depthwise layers, :mod:`tconv.implementations.compiled.depthwise`): seconds
#: per (output pixel, tap) pair, the set-up of its loop along the channels, and the multiply-adds a second
#: along them (vectorised). Fitted on single-thread timings of 2-D layers of 64-256 channels (docs/design.md).
DEPTHWISE_PAIR_COST = 8e-9
DEPTHWISE_RATE = 8e9

#: ... and channels-first, its estimate grows by one for every this many pixels of the larger of the input and
#: output planes (the channels a plane apart): on 16 samples of 3x3 layers over HxH planes it beat jit_direct up
#: to H = 4-6 (2.5-7x at 1x1 and 2x2 planes of 256 channels) and lost from there on (1.2-2.7x at H = 8-12).
DEPTHWISE_FIRST_PIXELS = 32

#: ... its team jobs are blocks of this many output pixels along the last axis (so that a batch of one sample,
#: or a 1-D call, still splits), and the planner ranks it only where its per-axis tables hold at most this many
#: (output, tap) entries (a long 1-D call's tables would outgrow its output).
DEPTHWISE_JOB_PIXELS = 64
DEPTHWISE_TABLE_MAX = 2**20

#: ``jit_depthwise`` channels-first, a convolution or a transposed one through a channels-last tile of a vector's
#: lanes of channels (:func:`tconv.implementations.compiled.depthwise_tile.run`): where the tile holds at most this many
#: bytes; vector multiply-adds a second, bytes a second copied into the tile and out to the planes, and seconds a
#: job (a sample's block of channels). Fitted on one thread's timings of 39 random layers (1-D to 3-D, 8-512
#: channels, kernels 1-7, strides 1-4): within 0.7-1.4 of the time where a call takes over 30 us
DEPTHWISE_TILE_MAX_BYTES = 2 * 2**20
DEPTHWISE_STAGED_RATE = 2.3e9
DEPTHWISE_STAGED_STREAM = 1.8e10
DEPTHWISE_STAGED_JOB = 1.3e-7

#: ``jit_depthwise`` channels-last, a convolution or a stride-1 transposed one by rows of vectors of channels
#: (:func:`tconv.implementations.compiled.depthwise_rows.rows_cost`): vector multiply-adds a second (at VECTOR_BYTES, as
#: :func:`tconv.implementations.compiled.machine.vector_rate` counts them), bytes of x and of the output a second,
#: and seconds a row of outputs. Fitted on one thread's times of 40 random layers (1-D to 3-D, 16-512 channels,
#: kernels 1-7, strides 1-3, batches 1-8), weighted by 1/time, on the Intel Xeon with 512-bit vectors.
DEPTHWISE_ROWS_RATE = 1.5e9
DEPTHWISE_ROWS_STREAM = 7.6e10
DEPTHWISE_ROWS_ROW = 5.4e-8

#: a transposing copy (a channels-last array as its channels-first matrix, channels-first planes as pixel-major
#: ones, and back; :mod:`tconv.implementations.compiled.transpose`) runs in tiles from this many bytes, where its
#: matrices have at least TRANSPOSE_TILES_MIN_SIDE rows and columns and either TRANSPOSE_TILES_MIN_ROWS rows (the
#: contiguous side's) or this many bytes each; other copies stay NumPy's (whose reads then stay in the cache).
#: Measured on 16 stacks of matrices, 2026-12-01: tiles 1.8-7.6x faster on every copy these rules admit, NumPy's
#: 1.1-2.3x faster on (64, 49, 128), (8, 64, 3136) and (4, 1024, 48) stacks and with 16 or fewer columns.
TRANSPOSE_TILES_MIN_BYTES = 2**20
TRANSPOSE_TILES_MIN_SIDE = 32
TRANSPOSE_TILES_MIN_ROWS = 128

#: ``jit_gemm``'s transposed call stages a large channels-last output channels-first where the staging buffer is
#: reused (at most CHUNK_BYTES) or the output has at least this many channels (a 64-byte cache line of float32
#: channels: with fewer, the strided writes of each channel's plane share lines, and a fresh buffer's page faults
#: and the copy cost more: (3, 8, 27, 27, 27) -> 3 k6 s4 channels-last, 45 MB, 1.61x the time staged;
#: docs/design.md).
STAGED_MIN_CHANNELS = 16
#: ... and never where the staging buffer would be a fresh array above this many bytes: with the output, the
#: column chunks and x's copy it must stay within the memory bound, max(256 MiB, twice the output).
STAGED_MAX_FRESH_BYTES = 64 * 2**20

#: multiply-adds/s of the direct convolution (``jit_direct`` on a forward call), one tap added to a whole wide
#: plane per pass (:mod:`tconv.implementations.compiled.direct_conv`), and elements/s at which it copies
#: its input planes into their phases (the copy reads x with the stride; it dominates a strided depthwise
#: layer). Fitted on one thread on 3x3 depthwise layers at stride 1 and 2 (docs/design.md).
DIRECT_CONV_RATE = 12e9
PHASE_FILL_RATE = 1.2e9

#: The direct convolution's multiply-adds where it sums four output channels a pass (each phase element loaded
#: once for four). Below the kernel's own rate in isolation: in place, on the forward suite's layers, that rate
#: overstated the direct sum's share of the call; set by the planner's regret over forward sweeps, new seeds
#: included (docs/design.md).
DIRECT_CONV_BLOCK_RATE = 35e9

#: The compiled path's products never run on BLAS's own threads (team.matmul): OpenBLAS threads a product once
#: m * n * k reaches 4 * 65536 (its GEMM_MULTITHREAD_THRESHOLD times SMP_THRESHOLD_MIN), after which its workers
#: spin for a while, and a team run meanwhile shares the cores with them (docs/design.md). A product of at least
#: BLAS_ONE_THREAD_MIN_WORK multiply-adds runs with BLAS limited to one thread (below it BLAS would not thread it
#: anyway, and the limit has a cost); one of at least TEAM_PRODUCT_MIN_FLOPS is cut into blocks run by the team
#: (a few times the team's hand-off of work on one thread; from KERNEL_TEAM_PROBE_FROM times it to KERNEL_TEAM_TRUST
#: times it the same blocks run on the team or in the caller, whichever measured faster: team.matmul).
BLAS_ONE_THREAD_MIN_WORK = 4 * 65536
#: a product of at most BLAS_SPLIT_MAX_PIECES blocks below BLAS_ONE_THREAD_MIN_WORK, each of at least
#: BLAS_SPLIT_MIN_BLOCK rows (or columns, the side it is cut along), runs as those blocks rather than with BLAS
#: limited (team._one_thread_product; docs/design.md): blocks of 4-20 columns ran 1.0-1.9 times the limited
#: product's time, blocks of 30-95 0.6-0.9 times it, up to ten of them (a product below TEAM_PRODUCT_MIN_FLOPS
#: times KERNEL_TEAM_PROBE_FROM needs at most ten; with no team, every product comes here, and more blocks than ten
#: were not measured)
BLAS_SPLIT_MAX_PIECES = 10
BLAS_SPLIT_MIN_BLOCK = 24
TEAM_PRODUCT_MIN_FLOPS = 2e7

#: (m, k, n) of the float32 product each thread runs once, with BLAS on one thread, before its first product for
#: tconv where it can (team._warm_blas). On the AMD EPYC (AVX2) virtual machine of 2026-12-04, NumPy's OpenBLAS
#: 0.3.31 ran narrow single-threaded float32 products (196 columns: 3.4-3.8x; 49: 1.6-2x) slower in each thread
#: until a product such as this one had run there ((384, 1) x (1, 384), (16, 384) x (384, 384) and (384, 384) x
#: (384, 200) did not change it); cause not found. One suite layer a fresh process ran 0.897 of its time with it
#: against none (dcgan64-4 175 -> 71 ms; python benchmarks/blas_cold_products.py layers; docs/design.md).
BLAS_WARM_UP_SHAPE = (384, 16, 384)

#: seconds a pass of the direct weight gradient costs beyond the direct convolution's terms: the sums of a pass
#: end in horizontal additions of vector accumulators. Set, with DIRECT_CONV_BLOCK_RATE, so that with
#: DIRECT_CONV_MARGIN the model picks the direct sum on none of the measured layers where the im2col was faster
#: (docs/design.md); counted for passes of three taps (and four one channel at a time), as the kernel ran before
#: its six-tap passes on AVX-512 (forty-first session), which make a layer's passes fewer: not refitted.
DIRECT_GRAD_PASS_COST = 100e-9

#: ``jit_direct`` sums a convolution's weight gradient directly (``algorithms.direct_weight_grad``) only where the cost
#: model puts the direct sum at or below this share of the im2col and product: where the two are close, the product
#: (BLAS) is the better-known estimate (as TWIN_MARGIN); on depthwise and few-channel layers the direct sum wins by
#: far more than the margin (docs/design.md). Until the forty-fifth session rule 4 read it too (TWIN_DIRECT_MARGIN).
DIRECT_CONV_MARGIN = 0.8

#: The planner takes ``jit_direct`` for a stride-1 transposed convolution it runs through its twin (rule 4) where its
#: estimate is at most this share of every other's: 1, the cheaper estimate. It was DIRECT_CONV_MARGIN (0.8) until
#: the forty-fifth session: replayed on every compiled algorithm's time on transposed sweeps 56-59 (240 layers,
#: that session's kernels) the planner's regret went 1.0633 -> 1.0555 (56: 1.083 -> 1.068, 57: 1.065 -> 1.049,
#: 58 and 59 unchanged; 0.9: 1.057, 1.2: 1.055, 1.5: 1.057), and on the kept records of earlier kernels 1.0684 ->
#: 1.0681 (session 37), 1.0718 -> 1.0711 (36), 1.0796 -> 1.0783 (35), 1.0443 unchanged (33) (docs/design.md).
TWIN_DIRECT_MARGIN = 1.0

#: A convolution itself runs the direct sum where the cost model puts it at or below this share of the im2col and
#: product: 1, the cheaper estimate. It was DIRECT_CONV_MARGIN (0.8) until the planner's regret over four forward
#: sweeps measured 1 as good or better on each, and the layers whose choice it changes ran faster on the direct
#: sum (docs/design.md).
FORWARD_DIRECT_MARGIN = 1.0

#: The direct convolution's job sums this many bytes of wide output planes at most (its block of output
#: channels; within a core's L2 cache, so that each input channel's phases are copied once per block).
DIRECT_CONV_BLOCK_BYTES = 256 * 2**10

#: The forward direct sum runs in tiles of the wide plane of this many bytes (four output channels' sums of a
#: tile stay in the L1 cache while every input channel and tap is added), where one group's phases, which each
#: thread of the team holds whole (filled once and read a tile at a time, from L2 or beyond), take at most
#: DIRECT_TILE_PHASE_BYTES over the whole team (a bound on memory) and DIRECT_TILE_CACHE_BYTES over a team of at
#: least two threads (a bound on the cache).
DIRECT_TILE_BYTES = 4096
DIRECT_TILE_PHASE_BYTES = 64 * 2**20
#: Every four output channels read a tile's phase rows again: phases that spill from the last-level cache come
#: from memory each time. So the team's phases are held to two thirds of that cache (64 MiB at most), counted for
#: two threads where the team is smaller, so that the cost model, which asks for one thread, prices what a team of
#: two runs (10.7 MiB a thread on a 32 MiB L3, where two threads holding 11.6-19.5 MiB each ran 1.3-1.6x slower in
#: tiles than in whole planes; docs/design.md, "The tiled direct sum").
DIRECT_TILE_CACHE_BYTES = min(64 * 2**20, _shared_cache_bytes(96 * 2**20) * 2 // 3)
#: The tiled sum's multiply-adds/s where it sums four output channels in register blocks (DIRECT_CONV_BLOCK_RATE's
#: counterpart, set like it by the planner's regret): replayed on forced timings of forward sweeps 51-56 (fitted)
#: and 57-58 (held out) with the blocks in registers, 50e9-75e9 gave 1.132-1.141 and 1.149-1.187, 55e9 1.136 and
#: 1.149 (docs/design.md, "Register blocks along the pixels"; 65e9 before, for sums kept in the L1 cache).
DIRECT_TILE_RATE = 55e9
#: The tiled sum's multiply-adds/s for the channels it sums one at a time (a group's last channels that are not
#: four, every channel of a depthwise layer), eight vectors of one channel's sums in registers, each term's phase
#: vectors loaded once for one multiply-add each (DIRECT_CONV_RATE's counterpart in the whole planes).
DIRECT_TILE_SINGLE_RATE = 13.5e9

#: A transposed convolution's direct estimate (its own kernel's, or its stride-1 twin's) is multiplied by this
#: for channels-last calls, whose loops then read and write with a stride of the channel count (that estimate has
#: no other term for layout). Fitted like PIXEL_ROW_COST, on the planner's regret (docs/design.md).
DIRECT_CHANNELS_LAST = 2.0

#: A (forward) convolution's direct sum, channels-last: its phase fills and output write (which stride by the
#: channel count) cost this many times as much; its sums run on the same wide planes in either layout. Not where
#: a sample of x or of the output is TRANSPOSE_TILES_MIN_BYTES or more: that array is copied channels-first first.
DIRECT_CONV_LAST_MEMORY = 2.0

#: seconds per row of an overlap-add (loop set-up; a row is vectorised along its length).
ROW_COST = 5e-9

#: seconds per row of ``jit_pixels``' overlap-add (a row: one output pixel's channels from one (input, tap)),
#: which carries its tile's bookkeeping too. Fitted on the planner's regret (benchmarks/planner_regret.py:
#: the geometric mean over random layers of the planner's choice against the fastest of tconv's algorithms),
#: on sweeps other than those it was then checked on (docs/design.md).
PIXEL_ROW_COST = 20e-9

#: A stride-1 transposed convolution runs as its forward twin (``jit_im2col``) only where the model puts the
#: twin at most this fraction of every other algorithm's cost: on equal estimates the column product measured
#: faster (docs/design.md).
TWIN_MARGIN = 0.8

#: ``jit_winograd`` is counted only where the cost model puts it at most this share of the other algorithms'
#: (``jit_gemm``, or a twin's rivals): its 16 products are thinner than the im2col's one, and the model's im2col
#: terms overstate that path's time on two threads more than Winograd's. Refitted with WINOGRAD_ROW_COST after
#: the transforms' rewrite on 30 random 3x3 layers, checked on 30 others (docs/design.md).
WINOGRAD_MARGIN = 0.85

#: seconds per row of tiles and channel in ``jit_winograd``'s input and output transforms (four input rows
#: copied into their even and odd columns, a row of tiles' set-up).
WINOGRAD_ROW_COST = 5e-9

#: A dilated 3x3 convolution runs by Winograd phase by phase (one undilated convolution per residue of the
#: outputs); the planner ranks it only where every phase has at least this many outputs along each axis.
WINOGRAD_MIN_PHASE = 6

#: ``jit_winograd4`` (F(4x4, 3x3)) is ranked only where every phase of the call has at least this many outputs
#: along each axis (four rows and columns of tiles): below, its partly empty tiles and its transforms' set-up a
#: row of tiles outweigh its products on most layers (docs/design.md, F(4x4, 3x3)).
WINOGRAD4_MIN_SIDE = 16

#: What the cost model counts for each of F(4x4, 3x3)'s transformed input values, as a share of one of
#: F(2x2, 3x3)'s (each comes from a 6x6 patch, in two passes; timed apart, 1.7-2.5 times as long a value).
#: Chosen among 1, 1.5, 2 and 3 on 160 random 3x3 layers (benchmarks/winograd_tiles.py and a draft of it, four
#: seeds): the planner's choice took 1.047 and 1.052 of the fastest measured time on the two halves, against
#: 1.048 and 1.066 at 1.0 and 1.112 and 1.070 without F(4x4, 3x3). Checked on two new seeds (5, 6; 80 layers):
#: 1.062 and 1.089, against 1.123 and 1.101 with F(4x4, 3x3) never ranked (docs/design.md).
WINOGRAD4_INPUT_COST = 1.5

#: What the cost model counts for each value of F(4x4, 3x3)'s transformed kernel (made on every call), as a share
#: of one of F(2x2, 3x3)'s: 512 x 512 channels took 9.9 ms for 9.4 M values against 2.1 ms for 4.2 M on the team
#: (its buffer, over CHUNK_BYTES, is mapped afresh each call; F(2x2, 3x3)'s is kept). Without it the planner ran
#: batch-1 layers of 512 channels over 28x28 and 32x32 by F(4x4, 3x3) at 1.5-1.6 times F(2x2, 3x3)'s time.
WINOGRAD4_KERNEL_COST = 2.0

#: ``jit_direct``'s channels-last dot products (:mod:`~tconv.implementations.compiled.channel_dots`): a run's
#: set-up (its loop's entry and the sum of its vector accumulators at the end, the output's write shared among
#: its runs), in seconds ...
DOT_RUN_COST = 14e-9

#: ... and its elements, as loads of x's and the weights' values a second (a dot product of four output channels
#: loads five values an element), vectorised. Both fitted on 23 channels-last layers of 1-16 output channels, one
#: thread (rms error of the estimate 30%; docs/design.md, "Channels-last dot products").
DOT_LOAD_RATE = 20e9

#: The most output channels a group that ``jit_direct`` sums as dot products along the channels: beyond, a
#: product (``jit_gemm``) or the sum over planes reuses each element of x for more of them.
DOT_MAX_OUT = 16

#: ... and the shortest run (elements, on average) it takes: shorter runs are mostly the vector loop's scalar
#: remainder, and ran 1.5-2.3x the estimate (runs of 24-60 elements).
DOT_MIN_RUN = 64

#: The bytes of the SIMD vectors the register-blocked kernels are written with
#: (:mod:`~tconv.implementations.compiled.simd`): 256 bits, AVX2's registers, which LLVM splits in two on a
#: machine with 128-bit vectors only, ...
VECTOR_BYTES = 32

#: ... and, for the register blocks bound by their multiply-adds (``jit_blocked``, the direct sum's tiles), on a
#: CPU with AVX-512 (F) where numba compiles for one, 512 bits, one of its registers
#: (:func:`tconv.implementations.compiled.machine.vector_bytes`). Their rates (``BLOCKED_*``, ``DIRECT_TILE_*``)
#: were fitted with ``VECTOR_BYTES``; ...
WIDE_VECTOR_BYTES = 64

#: ... a wide vector's multiply-add runs at this share of their rate (a vector of twice the lanes: 2 x the share
#: of the elements a second). Fitted by the planner's regret on forced timings of the wide kernels on an Intel
#: Xeon (docs/design.md, "512-bit vectors where the machine has them"); not measured on a CPU that splits
#: 512-bit operations in two (AMD's Zen 4).
WIDE_VECTOR_SHARE = 0.6

#: The vector width the cost model counts, in bytes: 0 for the kernels' own (the machine's); another value for a
#: replay of timings taken at that width, and in the test suite (``VECTOR_BYTES``), whose planner pins were
#: written against it. ``TCONV_PRICED_VECTOR_BYTES`` in the environment sets it (with ``TCONV_GEMM_RATE``: plans
#: that do not depend on the machine, the test suite's subprocesses).
PRICED_VECTOR_BYTES = _pinned_vector_bytes()

#: ``jit_blocked`` (:mod:`~tconv.implementations.compiled.blocked`): vector multiply-adds a second over the whole
#: team in its blocks of four pixels, ...
BLOCKED_RATE = 12e9

#: ... a block of one vector of output channels (a group's output channels fit one) in this share of that rate:
#: every multiply-add then needs a broadcast input element of its own, and the loads, not the multiply-adds, bound
#: it. Forced on 512-bit vectors, blocks of one vector ran 0.62-0.79 of the time of blocks of two on seven
#: channels-last layers of 3-16 output channels, whose multiply-adds they halve (docs/design.md, "Blocks of one
#: vector").
BLOCKED_SINGLE_SHARE = 0.7

#: ... one pixel at a time (the border along the last axis, and the pixels left over from the blocks: a weight
#: load for every multiply-add), ...
BLOCKED_EDGE_RATE = 3e9

#: ... and each (pixel block, channel block)'s bias loads, stores and loop set-up, in seconds. The three fitted on
#: the 23 channels-last layers of forward sweep 52 and the forward suite, two threads (rms error 14%; the weight's
#: packing, ``blocked.packing_cost``, taken off first; docs/design.md, "Register-blocked direct convolution").
BLOCKED_BLOCK_COST = 30e-9

#: The planner takes ``jit_blocked`` only where its estimate is at most this fraction of every other's (rule 3; and
#: rule 4 for a stride-1 transposed call's forward twin, not fitted there: docs/design.md, thirty-fifth session):
#: on the 34 channels-last layers of forward sweeps 52-54 and the forward suite it was ranked first on, it ran
#: 0.44-0.96 of the other choice's time where its estimate was at most 0.52 of it, and 1.2-1.5 times on three
#: layers of 36-64 input channels where it was 0.60-0.76 (those products run at BLAS's full rate, and the model's
#: ``jit_gemm`` estimate was the one off; docs/design.md, "Register-blocked direct convolution"). 0.65 since the
#: thirty-seventh session, whose blocks of eight pixels run 512-bit layers at 0.77-0.89 of their time: replayed on
#: those kernels' forward sweeps 47-50, 1.095 -> 1.086; on the earlier timings 1.090 -> 1.088 (session 36), 1.091
#: -> 1.092 (35), 1.075 and 1.080 -> 1.078 (the AMD EPYC's, sessions 33 and 31); the transposed replays unchanged.
BLOCKED_MARGIN = 0.65

#: ... and ranks it only with this many output channels a group or more: half a block of 16 lanes (a block is
#: summed whole, padded with zero weights); with 1-7 it ran 1.1-3.3x slower than the other choice on nine layers.
#: Since the fortieth session such layers run in blocks of one vector (``BLOCKED_SINGLE_SHARE``); 2 or 4 here then
#: changed 1-6 layers of forward sweeps 61-66 within 0.005 of the planner's regret: not changed.
BLOCKED_MIN_OUT = 8

#: ``jit_blocked`` runs each block of output channels over several jobs (rows of outputs) in turn, as many as read
#: at most this many bytes of x between them, ...
BLOCKED_TOGETHER_BYTES = 512 * 2**10

#: ... and at most this many (docs/design.md, "A block's weights over several rows").
BLOCKED_TOGETHER_JOBS = 32

#: ``jit_blocked`` across samples (blocks of the same output pixel of consecutive samples) runs each block of
#: output channels over this many jobs (a block of samples at one output pixel) in turn. Measured 1 to 64 on four
#: layers (batch 8-64, 64-512 channels, two threads): (64, 7, 7, 256) -> 128 5x5 21.3 ms at 1, 15.0 at 8, 13.3 at
#: 64; (32, 8, 8, 512) -> 512 3x3 59.3, 39.9, 37.9; two layers of 64 channels flat within 8%.
BLOCKED_ACROSS_TOGETHER = 64

#: ``jit_blocked`` runs a call across samples where the cost model puts that at most this fraction of the cheaper
#: way along the rows. On 82 layers of forward and transposed sweeps 71-73 and the suites where it put it lower,
#: across samples ran 0.33-2.2 times the rows' time (geometric mean 0.88); the ones it ran slower had estimates
#: within 0.85 of the rows' (long rows of few input channels, whose border is a small share, and partial blocks
#: of output channels) or batches of four (docs/design.md, "Blocks across samples").
BLOCKED_ACROSS_MARGIN = 0.85

#: ``jit_blocked`` copies x into a zero-padded buffer (no border, a row's last pixels a block of four) where its
#: estimate with the copy, plus this fixed cost of the copy's steps in seconds, is below the estimate without
#: (measured 5 us on (3, 6, 6, 6, 2) -> 12 k4, where both ran 52-57 us).
BLOCKED_PADDED_CALL_COST = 5e-6

#: A convolution's weight gradient in register blocks along the channels
#: (:mod:`~tconv.implementations.compiled.weight_blocks`): vector multiply-adds a second over the whole team
#: (blocks of one vector at ``BLOCKED_SINGLE_SHARE`` of it), fitted at ``VECTOR_BYTES`` as ``BLOCKED_RATE``
#: (docs/design.md, "The weight gradient in register blocks"), ...
WEIGHT_BLOCKS_RATE = 10e9

#: ... rows of output pixels a tile holds: as many as hold this many bytes of x and the output gradient (each
#: block of the gradient loaded and stored once a tile), ...
WEIGHT_BLOCKS_TILE_BYTES = 192 * 2**10

#: ... the route is taken where the cost model puts it at most this fraction of the im2col and product's estimate
#: (the cheaper: set on forward sweeps 56-57 and the seed models' layers, 0.8-1.5 within 0.02 of each other there;
#: checked on sweeps 58-61), ...
WEIGHT_BLOCKS_MARGIN = 1.0

#: ... and only where at least this share of the outputs' taps meet x (not the padding), as
#: ``geometry.mean_taps`` counts them (docs/design.md, "The weight gradient in register blocks").
WEIGHT_BLOCKS_MIN_TAP_SHARE = 0.5

#: ``jit_dots`` (:mod:`~tconv.implementations.compiled.window_dots`): window elements gathered a second (those that
#: meet x), each run of them along the last axis, vector multiply-adds a second (two weight rows times four pixels
#: a block, six loads a step of eight), the window's last elements short of a vector a second, and each output's
#: sum of lanes and store (docs/design.md, "Windows and weight rows": fitted on the forced timings of forward
#: sweeps 51-58 under 3 ms, weighted by 1/time; the run's term was missing before, and a window of two-tap runs
#: gathered at 7 ns an element against the 1.5 priced).
DOTS_GATHER_RATE = 1.37e9
DOTS_RUN_COST = 8.1e-9
DOTS_VECTOR_RATE = 5.95e9
DOTS_SCALAR_RATE = 1.56e9
DOTS_OUTPUT_COST = 1.8e-9
#: ``jit_dots`` with its vectors along the output channels (:func:`~tconv.implementations.compiled.window_dots.
#: channels_cost`): each output that goes through the block's buffer (a channels-first output's, a channels-last
#: one's partial block), and the weight's packing, elements a second and the compiled call's own seconds
#: (docs/design.md, "Output channels in jit_dots": set from one split timing of four small layers, not fitted).
DOTS_CHANNEL_STORE_COST = 1.0e-9
DOTS_PACK_RATE = 2e9
DOTS_PACK_CALL_COST = 1e-6
#: ``jit_dots`` copies a window whose taps all meet x through a table of its elements' offsets where the window has
#: at least this many runs and at least this share of the outputs meet x with every tap (``window_dots._offsets``):
#: forced on the small layers of forward sweeps 56-57, 8-16 runs replayed alike (docs/design.md, "Output channels
#: in jit_dots").
DOTS_TABLE_MIN_RUNS = 8
DOTS_TABLE_MIN_SHARE = 0.5
#: Where a group's weight rows pass this many bytes, ``jit_dots``' cost adds their stream for every block of pixels:
#: every block reads all of them, and from about the second-level cache on they come from further out.
DOTS_WEIGHT_CACHE_BYTES = 512 * 2**10
#: That stream, ``jit_dots``' weight rows read again for every block of four pixels, in bytes a second over the team
#: (both threads stream their blocks' rows at once). 80e9 since the fortieth session, when it was ``COLUMN_STREAM``
#: (5e9, a copy's write and read): on layers of large kernels over small maps, (9, 53, 6, 6, 6) -> 43 k8x8x8 say, the
#: weight term put ``jit_dots`` at 4.6-9x its time, and the planner took ``jit_gemm`` at 1.7-6.7x ``jit_dots``' time.
#: Replayed on every kept forward timing, the planner's regret 1.151 -> 1.093 and 1.126 -> 1.099 (sweeps 61-63 and
#: 64-66, this session's kernels), 1.130 -> 1.095 (61-66 and 101, the kernels before), 1.103 -> 1.063 (session 31's,
#: the AMD EPYC), 1.107 -> 1.071 (33's), 1.105 -> 1.089 (35's), 1.097 -> 1.078 (36's), 1.087 -> 1.066 (37's), 1.094
#: -> 1.072 (38's); 160e9 within 0.003 of it, 40e9 worse, no weight term at all worse on sessions 35 and 36
#: (docs/design.md, "The weight's stream in jit_dots").
DOTS_WEIGHT_STREAM = 80e9
#: ``jit_dots`` is taken only on calls it estimates under this: its rates were fitted on calls under 3 ms, and on
#: larger ones its estimate ran up to 4-7 times short of its time (a 54 MB weight read once a block of pixels),
#: before the weight's stream was counted (``DOTS_WEIGHT_CACHE_BYTES``). 1 ms until the thirty-seventh session;
#: 10 ms replayed at least as well on every kept forward timing: the planner's regret 1.096 -> 1.095 (sweeps 47-50,
#: this session's kernels), 1.094 -> 1.090 and 1.097 -> 1.091 (sessions 36 and 35, AVX-512), 1.117 -> 1.075
#: (session 33, the AMD EPYC), 1.080 unchanged (session 31's) (docs/design.md, "Windows and weight rows").
DOTS_MAX_SECONDS = 1e-2
#: The Python around each path's kernels on a forward call, which the cost model's per-sample estimates leave out:
#: ``jit_dots`` is taken where its estimate plus its own is at most ``DOTS_MARGIN`` of every other's plus theirs
#: (planner rule 3; measured on layers of a few microseconds' work, docs/design.md, "Windows and weight rows").
#: The margin is above 1 because ``jit_dots``' estimate runs high against the others': on forward sweeps 47-53 (an
#: AVX2 machine) its time was a median 0.81 of its estimate, the others' 1.3-1.9. Replayed, 0.8 -> 1.6 took the
#: planner's regret from 1.140 to 1.099 over those 420 layers, lower on each sweep, and on the twenty-seventh
#: session's AVX-512 timings of sweeps 51 and 52 the chosen time over the former choice's went 0.979 -> 0.946 and
#: 0.948 -> 0.956; 2.0 lost there (0.991 on sweep 52). DOTS_MAX_SECONDS bounds a wrong take's estimate.
FORWARD_CALL_COST = {"jit_dots": 18e-6, "jit_gemm": 70e-6, "jit_direct": 30e-6, "jit_blocked": 50e-6}
FORWARD_CALL_COST_OTHERS = 30e-6
DOTS_MARGIN = 1.6

#: ``jit_blocked`` channels-first: the output's elements a second its row buffer writes a channel at a time
#: (each output channel's row contiguous, the buffer read across its lanes; x's copy channels-last counts at
#: ``TRANSPOSE_STREAM``), ...
BLOCKED_SCATTER_RATE = 1e9

#: ... taken only on calls its estimate (the whole call's) puts under this many seconds (on larger ones the copy
#: of x and the scatter, not the multiply-adds, decided: 0.97-3.6 times the other choice on 43 layers;
#: (8, 64, 56, 56) -> 64 3x3 stride 2 ran 1.13 times ``jit_gemm``'s 4.3 ms), ...
BLOCKED_FIRST_MAX_SECONDS = 3e-3

#: ... where its estimate is at most this fraction of every other's (``BLOCKED_MARGIN``'s role, in rules 3 and 4), ...
BLOCKED_FIRST_MARGIN = 0.7

#: ... and ranked there with this many output channels a group or more (one is depthwise: ``jit_depthwise`` and
#: ``jit_direct`` run along the channels). The four fitted by replaying the planner on forced timings of every
#: algorithm on forward sweeps 51-54 (``benchmarks/planner_regret.py --json``): the planner's regret 1.075 -> 1.073
#: (51, 52) and 1.140 -> 1.093 (53, 54); on sweeps 55 and 56, measured after the fit, 1.131 -> 1.100
#: (docs/design.md, "Register-blocked direct convolution").
BLOCKED_FIRST_MIN_OUT = 2

#: ``jit_pointwise`` (1x1 kernels) multiplies blocks of pixels whose input and output take at most this many
#: bytes (a whole sample where it fits: BLAS's rate on wide products outweighs adding the bias while the block
#: is in the cache; docs/design.md), and never fewer pixels than POINTWISE_MIN_BLOCK.
POINTWISE_BLOCK_BYTES = 8 * 2**20
POINTWISE_MIN_BLOCK = 256

#: The planner runs a channels-first strided transposed 1x1 call on ``jit_pointwise`` (its products scattered into
#: an output filled with the bias, single-threaded passes) only where the whole output takes at most this many
#: bytes: 0.48-0.85 of the planner's former choice's time up to 1.8 MB, 1.02-1.04 at 2.4 MB, 1.4-1.7 from 10 MB,
#: where ``jit_gemm`` writes its products straight into the output on the team (sweeps 11, 12, 20, 31;
#: docs/design.md). Channels-last ones at any size: 0.31-0.80 of the next algorithm's time on 7 of 9 such layers
#: of 2.4-29 MiB in sweeps 17-40, 1.22 and 2.18 on two of 10 and 2 output channels.
POINTWISE_SCATTER_MAX_BYTES = 2 * 2**20

#: Seconds a transposed call costs on each compiled algorithm beyond its per-sample and setup terms: the Python
#: and hand-off of its steps (a product and an overlap-add, each through the team's wrappers), which decide small
#: calls. Half the lower quartile of the measured excess over the model on calls the model puts under 0.1 ms
#: (transposed sweeps 1, 2, 3, 5); the planner's regret on sweeps 7 and 13, not used to fit, went 1.100 -> 1.075
#: (docs/design.md). Not for convolutions: there the same fit left the regret level or worse.
TRANSPOSED_CALL_COST = {
    "jit_gemm": 37e-6,
    "jit_patches": 27e-6,
    "jit_im2col": 28e-6,
    "jit_winograd": 28e-6,
    "jit_winograd4": 28e-6,  # as jit_winograd: the same steps
    "jit_pixels": 10e-6,
    "jit_direct": 10e-6,
    "jit_pointwise": 17e-6,  # two calls only in the fit (excess 34 and 40 us): half the lower of them
}

#: Bytes per element the cost model counts. Plans are cached per call description, not per dtype; the
#: rates above are float32 rates, and a float64 call scales every term alike, so the ranking holds.
COST_ITEMSIZE = 4

# --- memory ----------------------------------------------------------------------------------------------

#: Temporaries an algorithm may hold besides the output: they stay within max(MEMORY_BUDGET, 2 x output).
#: The array-API ``gemm`` chunks its batch within it (and within GEMM_CHUNK_BYTES); a call of which one
#: sample's columns alone exceed it runs tap by tap (``taps``: one tap's product at a time). The compiled
#: path's chunks (CHUNK_BYTES, TEAM_CHUNK_BYTES) are far below it.
MEMORY_BUDGET = 256 * 2**20

#: The array-API ``gemm`` path's column buffer per batch chunk: near the cache, which beat both one big
#: buffer and per-tap products.
GEMM_CHUNK_BYTES = 8 * 2**20

#: The array-API ``gemm`` path's blocked overlap-add (``ceil(k/s)`` blocks per axis instead of ``k`` taps)
#: pays when a block gathers at least this many taps on average; with fewer its permuted reads cost more
#: than the per-tap additions they replace.
BLOCKED_COL2IM_MIN_TAPS_PER_BLOCK = 8

#: The compiled path's column buffer per chunk: large enough for efficient products, far below
#: MEMORY_BUDGET. The buffer is reused between calls (freshly mapped buffers of this size cost page faults
#: on every call).
CHUNK_BYTES = 30 * 2**20

#: ``jit_patches`` adds into an uncropped output plane per (sample, channel): at most this many elements.
PATCHES_MAX_PLANE = 4 * 2**20

#: ``jit_gemm`` reads channels-first x in place, one product per sample (no copy of x), when a sample has
#: at least this many pixels (the products' short side); on smaller samples the per-sample products are
#: too narrow and one product per chunk after a copy of x is faster.
PER_SAMPLE_MIN_PIXELS = 128
#: ... or, in either layout, where a group's product has at most this many rows (taps x output channels)
PER_SAMPLE_MAX_ROWS = 64

#: ``jit_pixels`` and ``jit_patches`` multiply channels-first x's pixel rows in place, one product per sample
#: with BLAS reading each sample transposed, where a chunk's product has at most this many columns (taps x
#: output channels); with more, one product after a transposing copy of x is faster. Measured on one BLAS
#: thread, per-sample over copy-and-product: (7, 437, 14) x 5 columns 0.42, (64, 256, 16) x 64 0.57, (8, 128,
#: 1024) x 400 0.81, (8, 64, 128) x 1000 0.97, (8, 512, 128) x 900 1.13, (1, 64, 4096) x 500 1.12, (64, 256,
#: 64) x 2048 1.14 (docs/design.md).
PIXEL_ROWS_IN_PLACE_MAX_COLUMNS = 400

#: ``jit_patches`` is not ranked for a kernel no longer than its stride with this many output channels or more.
#: Chosen on 9 such layers of transposed sweeps 11-16 and 41 it took 1.06-5.3x the fastest algorithm's time; the 8
#: with 139-508 output channels and one of 43 (where ``jit_patches`` stayed the better of the two): the bound lies
#: between them. Replayed: the planner's regret over those 420 layers 1.0720 -> 1.0626. Sweeps 17-40, not used to
#: choose it: 7 choices changed, 0.58-1.29 of the time, geometric mean 0.81 (docs/design.md).
PATCHES_NO_OVERLAP_MAX_CHANNELS = 64

#: ``jit_pixels`` splits its product by the taps that land inside the output when that skips at least this
#: share of the (input, tap) pairs along the split axis (the taps cropped away by the padding).
CROPPED_TAPS_MIN = 0.05
#: What one more matrix product costs beyond its multiply-adds (NumPy's matmul call, BLAS's set-up, the slices):
#: ``jit_pixels`` splits its product only where the taps it skips save more than this per added product.
PRODUCT_CALL_COST = 5e-6
#: An im2col (the convolution's ``jit_gemm``, the gradients) splits an axis' outputs into runs that read the same
#: taps (the windows at the borders reach into the padding) only where the runs keep at most this share of the
#: axis' (output, tap) pairs: each run is a product of its own (docs/design.md).
TAP_CLASS_AXIS_KEPT = 0.97
#: What one box of such a split costs beyond its product (its im2col call, product and write: Python and NumPy).
TAP_CLASS_CALL_COST = 15e-6
#: bytes/s of a copy in runs of many contiguous elements (a weight cut to some taps, tap-major: 14-18 GB/s measured)
COPY_STREAM = 15e9

#: bytes a second of a transposing copy (channels-last x into jit_gemm's (C_in, N*P) operand), read and written
TRANSPOSE_STREAM = 10e9

#: A matrix tconv writes for BLAS to read as the right-hand operand (im2col's columns, Winograd's transformed
#: input) gets a row stride that is not a multiple of this many bytes: OpenBLAS packs that operand a few rows at a
#: time down its columns, and rows a multiple of 4 KiB apart (1 KiB measured too) fall into the same sets of the
#: L1 cache. Products with such rows measured 1.2-1.8x slower (M = 16-64 rows, one thread and two; docs/design.md).
ROW_ALIAS_BYTES = 1024
#: the bytes added to such a row (two cache lines: one measured 1.6x, two 1.8x faster on 4 KiB rows at M = 32)
ROW_ALIAS_PAD = 128

# --- the thread team (tconv.implementations.compiled.schedule.team_threads) ----------------------------

#: A team thread's chunk: each thread runs its chunks single-threaded, so a chunk must be large enough
#: for its products and small enough that its columns are still in the cache when its kernel reads them.
TEAM_CHUNK_BYTES = 8 * 2**20

#: A weight gradient's box products (:func:`tconv.implementations.compiled.im2col._by_boxes`) each add their part
#: into their thread's gradient; an element of that add costs about this many of the products' multiply-adds on
#: one thread (the DCGAN generator's first layer: 0.39 ns an element of a strided add, 0.0143 ns a multiply-add).
BOX_PART_ADD_MACS = 27.0

#: Below this many bytes of columns a call runs without the team (single-threaded products of a few rows
#: and the team's start-up cost more than the team saves).
TEAM_MIN_BYTES = 4 * 2**20

#: Nor with fewer channels (the rows of each thread's products) than this per thread's share of a sample.
TEAM_MIN_CHANNELS = 16

#: A kernel call runs on the team (in ranges of its jobs, :func:`tconv.implementations.compiled.team.ranges`)
#: when the time its threads save pays for waking them, by the machine's cost model: one thread's time for the
#: work, ``work * KERNEL_ELEMENT_SECONDS``, must be at least ``KERNEL_TEAM_PAYBACK`` times the team's hand-off
#: (:func:`tconv.implementations.compiled.team.handoff_seconds`, measured once per process: it differs by an
#: order of magnitude between machines). Two threads halve the work, so a payback of 4 leaves the saving at
#: least twice the hand-off. The element time is the kernels' (col2im, gather, direct, im2col) single-thread
#: time per element they touch, for float32 (docs/design.md); never fewer than KERNEL_TEAM_MIN_WORK elements.
KERNEL_ELEMENT_SECONDS = 0.5e-9
KERNEL_TEAM_PAYBACK = 4.0
KERNEL_TEAM_MIN_WORK = 2**14

#: The rule decides by itself only from KERNEL_TEAM_TRUST times that threshold up; a call whose work is from
#: KERNEL_TEAM_PROBE_FROM times the threshold to there is measured: after KERNEL_TEAM_PROBE_SKIP runs the way the
#: rule says (not counted: the first calls after a pause run 2-3 times slower), it runs alone and on the team in turn,
#: KERNEL_TEAM_PROBES times each, and stays on the team only where the median there was below
#: KERNEL_TEAM_MEASURED_SHARE of the median alone (:func:`tconv.implementations.compiled.team.ranges`; the same
#: band around TEAM_PRODUCT_MIN_FLOPS for products, :func:`tconv.implementations.compiled.team.matmul`); below, it
#: runs alone. On the 2-vCPU virtual machine calls of 0.1-0.5 ms ran 1.4-2.6 times slower on the team than alone
#: (a team thread woken after its CPU idled shares a physical core with its caller), while the kernels' estimates
#: ran 0.6-10 times their measured time and the hand-off measured once per process 44-340 us
#: (docs/design.md, "The team measured").
KERNEL_TEAM_TRUST = 16.0
KERNEL_TEAM_PROBE_FROM = 0.25
KERNEL_TEAM_PROBES = 3
KERNEL_TEAM_PROBE_SKIP = 4
KERNEL_TEAM_MEASURED_SHARE = 0.9

#: A decided call is watched (:func:`tconv.implementations.compiled.team._watch`): every KERNEL_TEAM_WATCH runs
#: (doubled after each new measurement) the median of its way's runs is set against the other way's measured median,
#: and where the decision no longer holds by a margin (a team run slower than alone; a run alone that the team's
#: median beats by KERNEL_TEAM_MEASURED_SHARE squared) the call is measured again, at most KERNEL_TEAM_REMEASURES
#: times. Three probes a way decided on noise at times: fsweep-12 of forward sweep 56 (0.23 ms alone) went to the
#: team in two processes of five, whose turns then took 0.21-0.49 ms (docs/design.md, "Team decisions watched").
KERNEL_TEAM_WATCH = 8
KERNEL_TEAM_REMEASURES = 4

#: One thread's time per element read or written by the element-wise passes of :mod:`tconv.nn`'s layers
#: (:mod:`tconv.implementations.compiled.elementwise`), which stream through memory with a compare or a multiply
#: an element: a ReLU over 524288 float32 ran in 0.106 ms on one thread (1M elements touched, arrays past the
#: L2 cache). The team's rule reads their work in these units: on the 2-vCPU machine (hand-off 80 us) the team ran
#: that ReLU in 0.20-0.24 ms and one of 1.6M elements in 0.37 against 0.41 ms, so only much larger passes go to it.
ELEMENTWISE_ELEMENT_SECONDS = 0.1e-9

#: A kernel call on the team is cut into this many ranges a thread (handed out as threads become free), so that
#: a thread slowed by other work leaves its share to the others.
KERNEL_RANGES_PER_THREAD = 4
