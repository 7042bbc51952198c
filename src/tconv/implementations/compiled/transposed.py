"""The compiled transposed convolutions: caller's layout in, caller's layout out, BLAS for the products.

``jit_gemm`` (:func:`conv_transpose`)
    ``cols = W^T @ x`` (one product per group: ``(C_out/G * K, C_in/G) @ (C_in/G, N*P)``), then an
    output-stationary col2im: each output is the sum of the ``cols`` entries that reach it (about
    ``prod(k/s)`` of them), plus the bias, written once into the output. Chunked over output channels (and
    batch) so ``cols`` stays near the cache and within the memory budget.
``jit_direct`` (:func:`conv_transpose` with ``direct``)
    For few channels per group (depthwise): a product with a small inner dimension runs far below the BLAS
    rate, so the transposed convolution is summed directly per output.
``jit_pixels``, ``jit_patches`` (:func:`conv_transpose_pixels`, :func:`conv_transpose_patches`; one group, and
groups for the pixel path's block writes)
    ``cols = x (N*P, C_in) @ W`` with x read as rows of pixels (channels-last x is that matrix itself), then
    an overlap-add along the contiguous channels (pixels) or along each kernel patch's rows (patches, for
    kernels longer than their input). With at most ``PIXELS_DIRECT_MAX_IN`` input channels the pixel path folds
    the product into its overlap-add (:func:`.kernels.pixels_direct`, no column buffer). Channels-last output
    made of whole blocks of the stride (a 2x2 stride-2 upsampling) takes each tap's product straight from BLAS
    (:func:`_blocks`): no column buffer and no overlap-add.

A 1x1 input whose kernel copy is the whole output is one product written straight into the output
(:func:`_single_pixel`), on every path.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ... import _tuning
from ...shapes import transposed_full_size
from ...spec import ConvSpec
from . import geometry, kernels, schedule, team, transpose
from .workspace import channels_first, contiguous, scratch, staged, workspace


def conv_transpose(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    spec: ConvSpec,
    channels_last: bool,
    direct: bool = False,
) -> np.ndarray:
    """The transposed convolution of a batched x in the caller's layout; the result in the same layout.

    ``direct``: sum per output with the direct kernel instead of a product and col2im (:func:`_direct`).
    """
    if direct:
        return _direct(x, weight, bias, spec, channels_last)
    groups, batch = spec.groups, x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    out, out_grouped, x_grouped = geometry.grouped_call(x, spec, channels_last)
    axes = geometry.axes3(spec)
    bias_grouped = geometry.bias_by_group(bias, spec, x.dtype)
    if _is_single_pixel(spec):
        return _single_pixel(x, weight, bias, spec, channels_last, out)
    # A large channels-last output is written channels-first and copied across in tiles: the kernels write each
    # output channel's plane, a channel count apart in channels-last (as the direct sum does, :func:`_direct`).
    # Not where the copy would be a fresh array (above CHUNK_BYTES) of few channels, whose strided writes share
    # cache lines ((3, 8, 27, 27, 27) -> 3 k6 s4, 45 MB of output, took 1.6x the time staged), nor a fresh one
    # above STAGED_MAX_FRESH_BYTES (a second output-sized array would break the memory bound of twice the output).
    fits = out.nbytes <= _tuning.CHUNK_BYTES or (
        spec.out_channels >= _tuning.STAGED_MIN_CHANNELS and out.nbytes <= _tuning.STAGED_MAX_FRESH_BYTES
    )
    summed = (
        scratch((batch, spec.out_channels, *spec.output_size), x.dtype, slot=4)
        if channels_last and staged(out) and fits
        else None
    )
    if summed is not None:
        out_grouped = geometry.grouped_view(summed, groups, spec.ndim, False)
    taps = math.prod(spec.kernel_size)
    p_in = math.prod(spec.input_size)
    item = x.dtype.itemsize
    # x as (G, cg_in, N * P) for one product per chunk: a transposing copy of x unless N = 1. x is instead read in
    # place by one product per sample where the products are short (few taps x output channels: the copy would
    # cost more than the products), and channels-first x where its samples are large enough.
    narrow = cg_out * taps <= _tuning.PER_SAMPLE_MAX_ROWS
    per_sample = batch > 1 and (narrow or (not channels_last and p_in >= _tuning.PER_SAMPLE_MIN_PIXELS))
    x_matrix = None if per_sample else geometry.grouped_matrix(x_grouped, slot=3)
    w_matrix = weight.reshape(groups, cg_in, cg_out * taps)
    # A kernel no longer than its stride: no two taps overlap, the output is read straight from cols.
    phases = None if _gathers(spec) else kernels.phase_geometry(axes)
    # one input channel a group: each product is an outer product, a broadcast multiply (BLAS runs an inner
    # dimension of 1 far below its rate; jit_pointwise does the same)
    product = np.multiply if cg_in == 1 else team.matmul

    def work(chunk: tuple[int, int, int, int]) -> None:
        n0, n1, c0, c1 = chunk
        nb = n1 - n0
        if (c0, c1) == (0, cg_out):
            w_chunk = w_matrix
        else:
            w_chunk = w_matrix.reshape(groups, cg_in, cg_out, taps)[:, :, c0:c1].reshape(
                groups, cg_in, (c1 - c0) * taps
            )
        a = w_chunk.swapaxes(1, 2)
        if x_matrix is None:  # one product per sample, x read in place: (nb, G, cb*K, P)
            x_samples = x_grouped[n0:n1].reshape(nb, groups, cg_in, p_in)
            cols = product(a, x_samples, out=workspace((nb, groups, a.shape[1], p_in), x.dtype))
            cols_by_tap = cols.reshape(nb, groups, c1 - c0, *axes.kernel, *axes.size_in)
            cols_by_tap = cols_by_tap.transpose(1, 3, 4, 5, 2, 0, 6, 7, 8)  # (G, K1, K2, K3, cb, nb, n1, n2, n3)
        else:
            x_chunk = x_matrix.reshape(groups, cg_in, batch, p_in)[:, :, n0:n1].reshape(groups, cg_in, nb * p_in)
            cols = product(a, x_chunk, out=workspace((groups, a.shape[1], x_chunk.shape[2]), x.dtype))
            cols_by_tap = cols.reshape(groups, c1 - c0, *axes.kernel, nb, *axes.size_in)
            cols_by_tap = geometry.moved(cols_by_tap, 1, 4)  # (G, K1, K2, K3, cb, nb, n1, n2, n3)
        if phases is None:
            kernels.gather(cols_by_tap, bias_grouped[:, c0:c1], out_grouped[n0:n1, :, c0:c1], axes)
        else:
            kernels.col2im(cols_by_tap, bias_grouped[:, c0:c1], out_grouped[n0:n1, :, c0:c1], phases)

    schedule.each(work, *schedule.schedule(batch, cg_out, groups * taps * p_in * item))
    if summed is not None:
        target = geometry.moved(out, -1, 1)
        transpose.assign(target, summed)
    return out


@functools.lru_cache(maxsize=1024)
def _gathers(spec: ConvSpec) -> bool:
    """Whether every axis's kernel is no longer than its stride, undilated: no two taps overlap, and ``jit_gemm``
    reads each output straight from its columns (:func:`.kernels.gather`)."""
    return all(k <= st and dd == 1 for k, st, dd in zip(spec.kernel_size, spec.stride, spec.dilation))


def _direct(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """The transposed convolution summed per output plane (:func:`.kernels.direct`). Channels-last, a large x and
    a large output (:func:`.workspace.staged`) are copied channels-first and back: the kernel reads each input
    channel's rows and writes each output channel's plane, a channel count apart in channels-last, and on a
    large sample each channel then streams the whole sample through the cache ((3, 10, 10, 10, 32) -> 32 k2
    s4 d3 depthwise, 8 MiB of output a sample: 35.6 ms, against 5.5 channels-first)."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    axes = geometry.axes3(spec)
    out = geometry.empty_out(x.shape[0], spec.out_channels, spec.output_size, x.dtype, channels_last)
    target = geometry.moved(out, -1, 1) if channels_last else out
    summed = scratch(target.shape, x.dtype, slot=4) if channels_last and staged(out) else target
    x_first = channels_first(x, slot=3) if channels_last else x
    w_grouped = weight.reshape(groups, cg_in, cg_out, *axes.kernel)
    kernels.direct(
        geometry.grouped_view(x_first, groups, spec.ndim, False),
        w_grouped,
        geometry.bias_by_group(bias, spec, x.dtype),
        geometry.grouped_view(summed, groups, spec.ndim, False),
        kernels.phase_geometry(axes),
    )
    if summed is not target and not transpose.copy(target, summed):
        np.copyto(target, summed)
    return out


@functools.lru_cache(maxsize=1024)
def _is_single_pixel(spec: ConvSpec) -> bool:
    """A 1x1 input whose kernel copy is the whole output (DCGAN's first layer): a plain matrix product."""
    return (
        spec.groups == 1
        and all(n == 1 for n in spec.input_size)
        and all(p == (0, 0) for p in spec.padding)
        and all(d == 1 for d in spec.dilation)
        and spec.output_size == spec.kernel_size
    )


def _single_pixel(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool, out: np.ndarray
) -> np.ndarray:
    """``out (N, C_out * K) = x (N, C_in) @ W (C_in, C_out * K)``, written straight into the caller's layout.
    Channels-last the output is ``(N, K, C_out)``: with fewer samples than input channels the product is made in
    the weight's ``(C_out, K)`` order and its ``N * C_out * K`` values transposed into place, else the weight's
    ``C_in * C_out * K`` are: the smaller copy (docs/design.md, the twenty-first session's smaller steps)."""
    batch, taps, c_in, c_out = x.shape[0], math.prod(spec.kernel_size), spec.in_channels, spec.out_channels
    w2 = weight.reshape(c_in, c_out, taps)
    x2 = x.reshape(batch, c_in)
    if channels_last and batch < c_in:
        product = scratch((batch, c_out, taps), x.dtype, slot=4)
        team.matmul(x2, w2.reshape(c_in, -1), out=product.reshape(batch, -1))
        target = out.reshape(batch, taps, c_out).swapaxes(1, 2)
        transpose.assign(target, product)
    else:
        if channels_last:  # output (N, *k, C_out): the weight's columns in (tap, channel) order
            w2 = np.ascontiguousarray(w2.swapaxes(1, 2))
        team.matmul(x2, w2.reshape(c_in, -1), out=out.reshape(batch, c_out * taps))
    if bias is not None:
        shape = (1, *(1,) * spec.ndim, -1) if channels_last else (1, -1, *(1,) * spec.ndim)
        out += np.asarray(bias, dtype=out.dtype).reshape(shape)
    return out


@functools.lru_cache(maxsize=1024)
def writes_blocks(spec: ConvSpec) -> bool:
    """Whether a channels-last output is whole blocks of the stride, each the taps of one input pixel: every
    kernel no longer than its stride and undilated (no two taps overlap), nothing cropped at the start and each
    output size ``n * s``, as a 2x2 stride-2 U-Net upsampling (:func:`_blocks`)."""
    return (
        _gathers(spec)
        and all(lo == 0 for lo, _ in spec.padding)
        and all(o == n * st for o, n, st in zip(spec.output_size, spec.input_size, spec.stride))
    )


def blocks_fit(spec: ConvSpec) -> bool:
    """Whether ``jit_pixels`` runs a channels-last call as :func:`_blocks`: its output is whole blocks of the stride
    (:func:`writes_blocks`), with more than one input channel a group (a product of inner dimension 1 runs far
    below BLAS's rate: the folded overlap-add, :func:`.kernels.pixels_direct`, measured 1.8-2.7x faster; a
    depthwise call is ``jit_depthwise``'s) and at most ``PIXELS_BLOCKS_MAX_IN`` in 2-D and 3-D (one product per
    input row and tap, each packing the weight's block again)."""
    per_group = spec.in_channels // spec.groups
    return writes_blocks(spec) and 1 < per_group and (spec.ndim == 1 or per_group <= _tuning.PIXELS_BLOCKS_MAX_IN)


def _blocks(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, out: np.ndarray) -> np.ndarray:
    """A channels-last call whose output is whole blocks of the stride (:func:`writes_blocks`), each tap's
    product written by BLAS straight into the output: no column buffer and no copy.

    With ``D`` axes, the output ``(N, n1*s1, ..., nD*sD, C_out)`` is ``(N*n1, s1, n2, s2, ..., nD, sD*C_out)``:
    for the taps ``(t1, ..., t_{D-1})`` of the axes before the last, the rows ``[:, t1, :, t2, ..., :, :kD*C_out]``
    are ``x (N*n1, n2, ..., nD, C_in) @ W[t1, ..., t_{D-1}] (C_in, kD*C_out)``, a stack of products of ``nD``
    rows each (one product of ``N*n1`` rows in 1-D), their output rows ``sD*C_out`` apart. A kernel shorter than
    its stride leaves outputs no tap reaches: those are the bias. With groups, the taps of the last axis and the
    groups interleave in each row of outputs (``(kD, G, C_out/G)``): a product per group and tap of the last axis,
    ``x[..., group's channels] (nD, C_in/G) @ W (C_in/G, C_out/G)``, all of them one stacked product (measured in
    docs/design.md, "Grouped block writes"). Run in pieces of the rows ``N*n1`` of about
    ``PIXELS_BLOCKS_PIECE_BYTES`` of output (the bias added in the cache), on the team where the call is large
    enough (:func:`.schedule.team_threads`)."""
    batch, d = x.shape[0], spec.ndim
    sizes, kernel, stride = spec.input_size, spec.kernel_size, spec.stride
    c_in, c_out = spec.in_channels, spec.out_channels
    rows = batch * sizes[0]
    # x (N*n1, 1, n2, 1, ..., nD, C_in); the weight (k1, 1, k2, ..., 1, k_{D-1}, C_in, kD * C_out); the output
    # (N*n1, s1, n2, s2, ..., nD, sD * C_out) and its rows the taps reach; in 1-D, rows of x and of the output
    shape_x, shape_w, shape_out = [rows], [], [rows]
    reached: list[slice] = [slice(None)]
    for i in range(d - 1):
        shape_x += [1, sizes[i + 1]]
        shape_w += [1, kernel[i]]
        shape_out += [stride[i], sizes[i + 1]]
        reached += [slice(0, kernel[i]), slice(None)]
    shape_w = shape_w[1:]  # the stack's first axis is the rows' own
    out_blocks = out.reshape(*shape_out, stride[-1] * c_out)
    reached.append(slice(0, kernel[-1] * c_out))
    target = out_blocks[tuple(reached)]
    groups = spec.groups
    if groups == 1:
        x_rows = x.reshape(*shape_x, c_in)
        w_taps = contiguous(weight.transpose(*range(2, d + 1), 0, d + 1, 1), slot=6)  # (k1, ..., C_in, kD, C_out)
        w_blocks = w_taps.reshape(*shape_w, c_in, kernel[-1] * c_out)
        products = target
    else:
        # a product per group and tap of the last axis: x (..., G, 1, nD, cg_in) @ W (..., G, kD, cg_in, cg_out)
        # into the outputs (..., G, kD, nD, cg_out), whose rows are sD * C_out apart; in 1-D the rows N*n1 are
        # each product's own (axis -2), after the stack's (G, kD)
        cg_in, cg_out = c_in // groups, c_out // groups
        x_rows = np.moveaxis(x.reshape(*shape_x, groups, cg_in), -2, -3)[..., None, :, :]
        w_grouped = weight.reshape(groups, cg_in, cg_out, *kernel)
        w_taps = contiguous(w_grouped.transpose(*range(3, d + 2), 0, d + 2, 1, 2), slot=6)
        w_blocks = w_taps.reshape(*shape_w, groups, kernel[-1], cg_in, cg_out)
        split = target.reshape(*target.shape[:-1], kernel[-1], groups, cg_out)  # (..., nD, kD, G, cg_out)
        products = np.moveaxis(split, -4, -2).swapaxes(-4, -3)  # (..., G, kD, nD, cg_out)
    gaps = any(k < st for k, st in zip(kernel, stride))  # outputs no tap reaches: the bias alone
    bias_row = None if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    fill = np.tile(bias_row, stride[-1]) if bias_row is not None else np.zeros((), x.dtype)
    added = None if bias_row is None else np.tile(bias_row, kernel[-1])
    row_bytes = out.nbytes // max(rows, 1)
    stacked_rows = d == 1 and groups > 1
    threads = schedule.team_threads(batch, c_out, math.prod(sizes) * math.prod(kernel) * x.dtype.itemsize)
    share = -(-rows // (2 * threads)) if threads > 1 else rows  # two pieces a thread at least, on a team
    step = max(1, min(share, _tuning.PIXELS_BLOCKS_PIECE_BYTES // row_bytes))

    def work(start: int) -> None:
        stop = min(start + step, rows)
        if gaps:
            out_blocks[start:stop] = fill
        rows_of = (Ellipsis, slice(start, stop), slice(None)) if stacked_rows else slice(start, stop)
        team.matmul(x_rows[rows_of], w_blocks, out=products[rows_of])
        if added is not None:
            target[start:stop] += added

    schedule.each(work, range(0, rows, step), threads)
    return out


def _pixel_rows(x: np.ndarray, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """x as ``(N, P, C_in)``: channels-last x as it is, channels-first x as its per-sample transpose (a view)."""
    batch, p_in, c_in = x.shape[0], math.prod(spec.input_size), spec.in_channels
    if channels_last:
        return np.ascontiguousarray(x).reshape(batch, p_in, c_in)
    return np.ascontiguousarray(x).reshape(batch, c_in, p_in).swapaxes(1, 2)


def _rows_product(rows: np.ndarray, w_block: np.ndarray) -> np.ndarray:
    """``rows (nb, P, C_in) @ w_block (C_in, M)`` into the column buffer, as ``(nb * P, M)``. Rows that are a
    transposed view (channels-first x) are read in place by one product per sample where ``M`` is at most
    ``PIXEL_ROWS_IN_PLACE_MAX_COLUMNS``, else first copied into a second buffer, so that the product is one
    matrix product."""
    dtype = np.result_type(rows, w_block)
    if not rows.flags.c_contiguous and w_block.shape[1] <= _tuning.PIXEL_ROWS_IN_PLACE_MAX_COLUMNS:
        out = workspace((rows.shape[0] * rows.shape[1], w_block.shape[1]), dtype)
        team.matmul(rows, w_block, out=out.reshape(rows.shape[0], rows.shape[1], -1))
        return out
    if not rows.flags.c_contiguous:
        staged = workspace(rows.shape, rows.dtype, slot=1)
        np.copyto(staged, rows)
        rows = staged
    flat = rows.reshape(-1, rows.shape[2])
    return team.matmul(flat, w_block, out=workspace((flat.shape[0], w_block.shape[1]), dtype))


def conv_transpose_pixels(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """Pixel-major, one group (groups for the block writes only, below): ``cols (N*P, K*C_out) = x (N*P, C_in) @
    W (C_in, K*C_out)``, then an overlap-add in which each output pixel sums the channel vectors reaching it
    (vectorised along the channels), written into the caller's layout.

    Channels-last x is that matrix as it is (no copy); channels-first x is its per-sample transpose,
    copied per chunk into a second buffer. Where the padding crops enough of the taps
    (:func:`tconv.implementations.compiled.geometry.pixel_split`), x's rows are staged with the split
    axis first and the product is one product per run of inputs whose taps inside the output are the same,
    so the cropped taps are never multiplied. Channels-last output of whole stride blocks (:func:`blocks_fit`)
    is written by the products themselves (:func:`_blocks`); with at most ``PIXELS_DIRECT_MAX_IN`` input
    channels otherwise, the products are folded into the overlap-add. A grouped call is the block writes' only
    (:func:`blocks_fit`), channels-first through channels-last copies.
    """
    batch = x.shape[0]
    out = geometry.empty_out(batch, spec.out_channels, spec.output_size, x.dtype, channels_last)
    if _is_single_pixel(spec):
        return _single_pixel(x, weight, bias, spec, channels_last, out)
    if channels_last and blocks_fit(spec):
        return _blocks(x, weight, bias, spec, out)
    if spec.groups > 1:  # only the block writes take groups (blocks_fit); channels-first (a forced call, ranked
        # channels-last only) through channels-last copies of x and the output
        if not blocks_fit(spec):  # JitPixels.supports refuses these; never a wrong answer if one came here
            raise ValueError(f"jit_pixels runs a grouped call only as block writes (transposed.blocks_fit): {spec}")
        staged_out = scratch((batch, *spec.output_size, spec.out_channels), x.dtype, slot=4)
        _blocks(contiguous(geometry.moved(x, 1, -1), slot=1), weight, bias, spec, staged_out)
        target = geometry.moved(out, 1, -1)
        transpose.assign(target, staged_out)
        return out
    bias_row = geometry.bias_by_group(bias, spec, x.dtype)[0]
    taps, p_in = math.prod(spec.kernel_size), math.prod(spec.input_size)
    c_in, c_out = spec.in_channels, spec.out_channels
    # (C_in, *k, C_out) in one copy: a weight cut to its live taps (a strided view) is not reshaped first, which
    # would copy it once more
    wk = contiguous(geometry.moved(weight, 1, -1), slot=6).reshape(c_in, taps * c_out)
    axes = geometry.axes3(spec)
    tables: list[np.ndarray] = []
    for n, k, s, dil, lo, o in zip(*axes):
        tables += geometry.transposed_tables(n, k, s, dil, lo, o)
    if channels_last:  # (N, O1, O2, O3, C_out)
        out_pixels = out.reshape(batch, *axes.size_out, c_out)
    else:
        out_pixels = geometry.moved(out.reshape(batch, c_out, *axes.size_out), 1, -1)
    if c_in <= _tuning.PIXELS_DIRECT_MAX_IN:  # few input channels: the products folded into the overlap-add
        # (N, *sp, C_in), contiguous and writeable (a read-only x would compile the kernel again): channels-first x
        # copied across in this thread's buffer
        x_pixels = contiguous(x if channels_last else geometry.moved(x, 1, -1), slot=1)
        if not x_pixels.flags.writeable:
            x_pixels = x_pixels.copy()
        w_taps = wk.reshape(c_in, *axes.kernel, c_out)
        kernels.pixels_direct(x_pixels.reshape(batch, *axes.size_in, c_in), w_taps, bias_row, out_pixels, tuple(tables))
        return out
    rows = _pixel_rows(x, spec, channels_last)
    split = geometry.pixel_split(spec)
    if split is not None:  # x as (N, D1, D2, D3, C_in)
        x_pixels = (
            x.reshape(batch, *axes.size_in, c_in)
            if channels_last
            else geometry.moved(x.reshape(batch, c_in, *axes.size_in), 1, -1)
        )

    def work(chunk: tuple[int, int, int, int]) -> None:
        n0, n1, c0, c1 = chunk
        if (c0, c1) == (0, c_out):
            w_block = wk
        else:  # a single sample's columns exceed the chunk: a block of output channels at a time
            w_block = np.ascontiguousarray(wk.reshape(c_in, taps, c_out)[:, :, c0:c1]).reshape(c_in, -1)
        if split is None:
            cols = _rows_product(rows[n0:n1], w_block).reshape(n1 - n0, *axes.size_in, *axes.kernel, c1 - c0)
            kernels.col2im_last(cols, bias_row[c0:c1], out_pixels[n0:n1, ..., c0:c1], tuple(tables))
            return
        axis, runs = split
        others = [b for b in range(3) if b != axis]
        staged = workspace((axes.size_in[axis], n1 - n0, *(axes.size_in[b] for b in others), c_in), x.dtype, slot=1)
        np.copyto(staged, geometry.moved(x_pixels[n0:n1], 1 + axis, 0))
        cols = workspace((*staged.shape[:4], *axes.kernel, c1 - c0), np.result_type(x, w_block))
        per_index = staged[0].size // c_in  # rows per input index along the split axis
        per_tap = w_block.shape[1] // axes.kernel[axis]  # columns per tap along it (the axes before: kernel 1)
        rows_in = staged.reshape(-1, c_in)
        rows_out = cols.reshape(rows_in.shape[0], -1)
        for j0, j1, t0, t1 in runs:  # only the taps that land inside the output: the rest stays unwritten
            r, t = slice(j0 * per_index, j1 * per_index), slice(t0 * per_tap, t1 * per_tap)
            team.matmul(rows_in[r], w_block[:, t], out=rows_out[r, t])
        order = (1 + axis, 0, *(1 + b for b in others))
        kernels.col2im_last(cols, bias_row[c0:c1], out_pixels[n0:n1, ..., c0:c1], tuple(tables), order)

    schedule.each(work, *schedule.schedule(batch, c_out, p_in * taps * x.dtype.itemsize))
    return out


def conv_transpose_patches(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """Patch-major, one group: ``cols (N*P, C_out*K) = x (N*P, C_in) @ W (C_in, C_out*K)`` (the weight as it
    is), then each input pixel's kernel patch is added into the output plane in rows of ``k`` contiguous
    elements. For kernels longer than their input (FCN-32s, iSTFT), where rows of the input are short."""
    batch, d = x.shape[0], spec.ndim
    taps, p_in = math.prod(spec.kernel_size), math.prod(spec.input_size)
    c_in, c_out = spec.in_channels, spec.out_channels
    out = geometry.empty_out(batch, c_out, spec.output_size, x.dtype, channels_last)
    if _is_single_pixel(spec):
        return _single_pixel(x, weight, bias, spec, channels_last, out)
    out_planes = geometry.grouped_view(out, 1, d, channels_last)[:, 0]  # (N, C_out, O1, O2, O3)
    bias_row = geometry.bias_by_group(bias, spec, x.dtype)[0]
    w2 = weight.reshape(c_in, c_out * taps)
    rows = _pixel_rows(x, spec, channels_last)
    axes = geometry.axes3(spec)
    plane = _patch_plane(spec)
    for n0, n1, c0, c1 in schedule.chunks(batch, c_out, p_in * taps * x.dtype.itemsize):
        product = _rows_product(rows[n0:n1], w2[:, c0 * taps : c1 * taps])
        cols = product.reshape(n1 - n0, *axes.size_in, c1 - c0, *axes.kernel)
        kernels.col2im_patches(cols, bias_row[c0:c1], out_planes[n0:n1, c0:c1], plane)
    return out


@functools.lru_cache(maxsize=1024)
def _patch_plane(spec: ConvSpec) -> tuple[int, ...]:
    """``col2im_patches``' plane geometry, made once per call description: the strides, the first two axes'
    dilations, the crops at the start and the uncropped output sizes (three shape computations a call, 56 of the
    199 Python calls cProfile counted in one call of a 0.08 ms layer)."""
    axes = geometry.axes3(spec)
    uncropped = tuple(transposed_full_size(n, k, s, dd) for n, k, s, dd in zip(*axes[:4]))
    return (*axes.stride, *axes.dilation[:2], *axes.low, *uncropped)
