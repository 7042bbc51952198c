"""The compiled NumPy path: caller's layout in, caller's layout out, BLAS for the products.

Used by the engine's ``jit_*`` algorithms for NumPy arrays of rank <= 3 when numba is
installed (see :mod:`tconv._jit`). Unlike the array-API algorithms it
does not rearrange x and the output into the engine's internal layout: the kernels read
and write any strides, so channels-last arrays are used as they are.

Transposed convolution (``jit_gemm``)
    ``cols = W^T @ x`` (one product per group: ``(C_out/G * K, C_in/G) @ (C_in/G, N*P)``),
    then an output-stationary col2im: each output is the sum of the ``cols`` entries
    that reach it (about ``prod(k/s)`` of them), plus the bias, written once into the
    output. Chunked over output channels (and batch) so ``cols`` stays near the cache and
    within the memory budget.
Convolution (``jit_gemm``)
    im2col into ``cols (C_in * K, N * P_out)`` (zeros only where the window meets the
    padding), then ``W @ cols`` and one pass that adds the bias and writes the layout.
Gradients
    The transposed convolution's input gradient and weight gradient share one im2col of
    the output gradient ``cols_gy``: ``dx = W @ cols_gy`` and ``dW = x @ cols_gy^T``. The
    convolution's weight gradient is ``dy @ im2col(x)^T``.
Pixel-major and patch-major (``jit_pixels``, ``jit_patches``; one group)
    ``cols = x (N*P, C_in) @ W`` with x read as rows of pixels (channels-last x is that
    matrix itself), then an overlap-add along the contiguous channels (pixels) or along
    each kernel patch's rows (patches, for kernels longer than their input).
Few channels per group (``jit_direct``, depthwise)
    A matrix product with a small inner dimension runs far below the BLAS rate, so the
    transposed convolution is summed directly per output.
Threads
    A batched call with enough columns runs its chunks on a thread team (:mod:`tconv._team`):
    each thread takes whole chunks and runs each single-threaded, product and kernel, with
    BLAS on one thread meanwhile. Other calls run their chunks in order, the products on
    BLAS's threads and the kernels on numba's (:func:`_schedule`, :func:`_im2col_schedule`).
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any, NamedTuple

import numpy as np

from . import _jit, _team
from .spec import ConvSpec, overlap

#: Size of one chunk's column buffer: large enough for efficient products (measured on the 2-core
#: machine: 30 and 64 MiB chunks run equally fast, 8-16 MiB chunks up to 1.4x slower on keras-dcgan-1,
#: whose products get short), and far below the engine's memory budget, max(256 MiB, 2 x output). The
#: buffer is reused between calls (:func:`_workspace`): freshly mapped buffers of this size cost page
#: faults on every call (measured 1.5x on keras-dcgan-1 before the reuse).
CHUNK_BYTES = 30 * 2**20

#: A team thread's chunk (:mod:`tconv._team`, each thread runs its chunks single-threaded): measured on the
#: 2-core machine, 6-12 MiB chunks ran keras-dcgan-1/2 and dcgan64-3/4 fastest (2 MiB: short products;
#: 30 MiB: the columns no longer in the cache when the col2im reads them).
TEAM_CHUNK_BYTES = 8 * 2**20

#: Below this many bytes of columns a call runs without the team: keras-dcgan-3's 1.25 MiB ran 1.7x slower
#: on it (single-threaded products of 25 rows; the team's start-up).
TEAM_MIN_BYTES = 4 * 2**20

#: Nor with fewer channels (the product's rows per tap): dcgan64-5's 3 output channels ran 1.4x slower on it
#: (its single-threaded products of 48 rows).
TEAM_MIN_CHANNELS = 16


_local = threading.local()
_registry: list[dict[int, np.ndarray]] = []  # every thread's buffers, for drop_workspaces
_registry_lock = threading.Lock()


def _workspace(shape: tuple[int, ...], dtype: Any, slot: int = 0) -> np.ndarray:
    """A buffer of ``shape``, reused from call to call (per thread and slot, grown when needed, at most
    about CHUNK_BYTES): a fresh buffer of tens of MiB costs page faults on every call. Each slot holds one
    buffer at a time, and nothing returned to a caller ever lives in one."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
        with _registry_lock:
            _registry.append(buffers)
    buffer = buffers.get(slot)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[slot] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def drop_workspaces() -> None:
    """Forget every thread's reusable buffers (the memory is freed once no call is using it)."""
    with _registry_lock:
        for buffers in _registry:
            buffers.clear()


def supported(spec: ConvSpec, xp: Any) -> bool:
    """NumPy arrays, rank <= 3, numba installed."""
    return spec.ndim <= 3 and _jit.available() and _is_numpy(xp)


def pixels_supported(spec: ConvSpec, xp: Any) -> bool:
    """The pixel-major path: transposed, one group."""
    return spec.transposed and spec.groups == 1 and supported(spec, xp)


def _is_numpy(xp: Any) -> bool:
    import array_api_compat

    return bool(array_api_compat.is_numpy_namespace(xp))


def _view6(a: np.ndarray, groups: int, ndim: int, channels_last: bool) -> np.ndarray:
    """Batched ``(N, C, *sp)`` or ``(N, *sp, C)`` -> a view ``(N, G, C/G, s1, s2, s3)`` (no copy)."""
    if channels_last:
        a = np.moveaxis(a, -1, 1)
    n, c = a.shape[0], a.shape[1]
    unit = (1,) * (3 - ndim)
    shape = (n, groups, c // groups, *unit, *a.shape[2:])
    strides = (a.strides[0], a.strides[1] * (c // groups), a.strides[1], *(0,) * len(unit), *a.strides[2:])
    return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


class _Axes3(NamedTuple):
    """A call's per-axis numbers padded to three axes (unit axes first: size 1, kernel 1, stride 1, ...)."""

    size_in: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    low: tuple[int, ...]  # the low padding
    size_out: tuple[int, ...]


def _axes3(spec: ConvSpec, size_in: tuple[int, ...] | None = None, size_out: tuple[int, ...] | None = None) -> _Axes3:
    """``spec``'s axes padded to 3-D; ``size_in``/``size_out`` replace its sizes (an im2col of a gradient)."""
    return _Axes3(
        _jit.pad3(spec.input_size if size_in is None else size_in, 1),
        _jit.pad3(spec.kernel_size, 1),
        _jit.pad3(spec.stride, 1),
        _jit.pad3(spec.dilation, 1),
        _jit.pad3(tuple(lo for lo, _ in spec.padding), 0),
        _jit.pad3(spec.output_size if size_out is None else size_out, 1),
    )


def _phase_geometry(spec: ConvSpec) -> _jit.PhaseGeometry:
    return _jit.PhaseGeometry(*_axes3(spec))


class _Im2col(NamedTuple):
    """An im2col's geometry (3-D padded): the zero-padded plane ``span`` (per axis, from the low padding's first
    position to the last position any window reads), where x's readable part lies in it (``src`` of x, ``dst``
    of the plane, as (start, stop) per axis), and the flat gather tables: ``rows[o]`` the plane offset of
    output ``o``'s window, ``taps[t]`` that of tap ``t`` within the window."""

    span: tuple[int, ...]
    src: tuple[tuple[int, int], ...]
    dst: tuple[tuple[int, int], ...]
    rows: np.ndarray
    taps: np.ndarray


@functools.lru_cache(maxsize=256)
def _im2col_geometry(axes: _Axes3) -> _Im2col:
    span, src, dst = [], [], []
    for n, k, st, d, lo, o in zip(*axes):
        length = (o - 1) * st + (k - 1) * d + 1  # plane position u reads x at u - lo
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
    rows.flags.writeable = taps.flags.writeable = False  # cached: shared by every call of this geometry
    return _Im2col(tuple(span), tuple(src), tuple(dst), rows, taps)


def _im2col_bytes(spec: ConvSpec, size_in: tuple[int, ...], size_out: tuple[int, ...], itemsize: int) -> int:
    """An im2col's bytes per sample and input channel: its columns and its zero-padded plane."""
    geometry = _im2col_geometry(_axes3(spec, size_in, size_out))
    return (geometry.rows.size * geometry.taps.size + math.prod(geometry.span)) * itemsize


def _empty_out(batch: int, channels: int, size: tuple[int, ...], dtype: Any, channels_last: bool) -> np.ndarray:
    shape = (batch, *size, channels) if channels_last else (batch, channels, *size)
    return np.empty(shape, dtype=dtype)


def _bias6(bias: np.ndarray | None, spec: ConvSpec, dtype: Any) -> np.ndarray:
    cg = spec.out_channels // spec.groups
    if bias is None:
        return np.zeros((spec.groups, cg), dtype=dtype)
    return np.ascontiguousarray(bias, dtype=dtype).reshape(spec.groups, cg)


def _x_matrix(x6: np.ndarray) -> np.ndarray:
    """x as ``(G, C_in/G, N * P)`` for the products (a view when N = 1 and channels-first)."""
    batch, groups, cg = x6.shape[:3]
    p = math.prod(x6.shape[3:])
    return np.ascontiguousarray(np.moveaxis(x6, 0, 2)).reshape(groups, cg, batch * p)


def conv_transpose(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    spec: ConvSpec,
    channels_last: bool,
    direct: bool = False,
) -> np.ndarray:
    """The transposed convolution of a batched x in the caller's layout; the result in the same layout.

    ``direct``: sum per output with the direct kernel instead of a product and col2im.
    """
    groups, d = spec.groups, spec.ndim
    batch = x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    out = _empty_out(batch, spec.out_channels, spec.output_size, x.dtype, channels_last)
    out6 = _view6(out, groups, d, channels_last)
    x6 = _view6(x, groups, d, channels_last)
    axes = _axes3(spec)
    bias6 = _bias6(bias, spec, x.dtype)
    if direct:
        w6 = weight.reshape(groups, cg_in, cg_out, *axes.kernel)
        _jit.direct(x6, w6, bias6, out6, _jit.PhaseGeometry(*axes))
        return out
    if _is_single_pixel(spec):
        return _single_pixel(x, weight, bias, spec, channels_last, out)
    taps = math.prod(spec.kernel_size)
    p_in = math.prod(spec.input_size)
    item = x.dtype.itemsize
    # x as (G, cg_in, N * P) for one product per chunk: a transposing copy of x unless N = 1. Channels-first x
    # is instead read in place by one product per sample (dcgan64-5: the copy took 1.2 of 8.2 ms).
    per_sample = batch > 1 and not channels_last and p_in >= PER_SAMPLE_MIN_PIXELS
    xm = None if per_sample else _x_matrix(x6)
    wm = weight.reshape(groups, cg_in, cg_out * taps)
    # A kernel no longer than its stride: no two taps overlap, the output is read straight from cols.
    no_overlap = all(k <= st and dd == 1 for k, st, dd in zip(spec.kernel_size, spec.stride, spec.dilation))
    geometry = None if no_overlap else _jit.PhaseGeometry(*axes)

    def work(chunk: tuple[int, int, int, int]) -> None:
        n0, n1, c0, c1 = chunk
        nb = n1 - n0
        w_chunk = wm.reshape(groups, cg_in, cg_out, taps)[:, :, c0:c1].reshape(groups, cg_in, (c1 - c0) * taps)
        a = np.swapaxes(w_chunk, 1, 2)
        if xm is None:  # one product per sample, x read in place: (nb, G, cb*K, P)
            x_samples = x6[n0:n1].reshape(nb, groups, cg_in, p_in)
            cols = np.matmul(a, x_samples, out=_workspace((nb, groups, a.shape[1], p_in), x.dtype))
            cols9 = cols.reshape(nb, groups, c1 - c0, *axes.kernel, *axes.size_in)
            cols9 = cols9.transpose(1, 3, 4, 5, 2, 0, 6, 7, 8)  # (G, K1, K2, K3, cb, nb, n1, n2, n3)
        else:
            x_chunk = xm.reshape(groups, cg_in, batch, p_in)[:, :, n0:n1].reshape(groups, cg_in, nb * p_in)
            cols = np.matmul(a, x_chunk, out=_workspace((groups, a.shape[1], x_chunk.shape[2]), x.dtype))
            cols9 = cols.reshape(groups, c1 - c0, *axes.kernel, nb, *axes.size_in)
            cols9 = np.moveaxis(cols9, 1, 4)  # (G, K1, K2, K3, cb, nb, n1, n2, n3)
        if geometry is None:
            _jit.gather(cols9, bias6[:, c0:c1], out6[n0:n1, :, c0:c1], axes)
        else:
            _jit.col2im(cols9, bias6[:, c0:c1], out6[n0:n1, :, c0:c1], geometry)

    _each(work, *_schedule(batch, cg_out, groups * taps * p_in * item))
    return out


#: jit_gemm on channels-first x reads x in place by one product per sample (no copy of x) when a sample has at
#: least this many pixels (the products' short side). Measured against one product per chunk after a copy:
#: dcgan64-5 (32x32) 8.4 -> 6.0 ms, dcgan64-4 (16x16) 33.6 -> 29.2, dilated (32x32) 6.5 -> 5.6, keras-dcgan-3
#: (14x14) 0.85 -> 0.79; slower on keras-dcgan-2 (7x7) 10.4 -> 11.2 and dcgan64-2 (4x4) 28 -> 43.
PER_SAMPLE_MIN_PIXELS = 128


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
    """``out (N, C_out * K) = x (N, C_in) @ W (C_in, C_out * K)``, written straight into the caller's layout."""
    batch, taps = x.shape[0], math.prod(spec.kernel_size)
    w2 = weight.reshape(spec.in_channels, spec.out_channels, taps)
    if channels_last:  # output (N, *k, C_out): the weight's columns in (tap, channel) order
        w2 = np.ascontiguousarray(np.swapaxes(w2, 1, 2))
    out2 = out.reshape(batch, spec.out_channels * taps)
    np.matmul(x.reshape(batch, spec.in_channels), w2.reshape(spec.in_channels, -1), out=out2)
    if bias is not None:
        shape = (1, *(1,) * spec.ndim, -1) if channels_last else (1, -1, *(1,) * spec.ndim)
        out += np.asarray(bias, dtype=out.dtype).reshape(shape)
    return out


def _pixel_rows(x: np.ndarray, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """x as ``(N, P, C_in)``: channels-last x as it is, channels-first x as its per-sample transpose (a view)."""
    batch, p_in, c_in = x.shape[0], math.prod(spec.input_size), spec.in_channels
    if channels_last:
        return np.ascontiguousarray(x).reshape(batch, p_in, c_in)
    return np.swapaxes(np.ascontiguousarray(x).reshape(batch, c_in, p_in), 1, 2)


def _rows_product(rows: np.ndarray, w_block: np.ndarray) -> np.ndarray:
    """``rows (nb, P, C_in) @ w_block (C_in, M)`` into the column buffer. Rows that are a transposed view
    (channels-first x) are first copied into a second buffer, so that the product is one matrix product."""
    dtype = np.result_type(rows, w_block)
    if not rows.flags.c_contiguous:
        staged = _workspace(rows.shape, rows.dtype, slot=1)
        np.copyto(staged, rows)
        rows = staged
    flat = rows.reshape(-1, rows.shape[2])
    return np.matmul(flat, w_block, out=_workspace((flat.shape[0], w_block.shape[1]), dtype))


def conv_transpose_pixels(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """Pixel-major, one group: ``cols (N*P, K*C_out) = x (N*P, C_in) @ W (C_in, K*C_out)``, then an
    overlap-add in which each output pixel sums the channel vectors reaching it (vectorised along the
    channels), written into the caller's layout.

    Channels-last x is that matrix as it is (no copy); channels-first x is its per-sample transpose,
    which the product reads in place (one product per sample).
    """
    batch = x.shape[0]
    out = _empty_out(batch, spec.out_channels, spec.output_size, x.dtype, channels_last)
    if _is_single_pixel(spec):
        return _single_pixel(x, weight, bias, spec, channels_last, out)
    bias1 = _bias6(bias, spec, x.dtype)[0]
    taps, p_in = math.prod(spec.kernel_size), math.prod(spec.input_size)
    c_in, c_out = spec.in_channels, spec.out_channels
    wk = np.ascontiguousarray(np.moveaxis(weight.reshape(c_in, c_out, taps), 1, 2)).reshape(c_in, taps * c_out)
    axes = _axes3(spec)
    tables: list[np.ndarray] = []
    for n, k, s, dil, lo, o in zip(*axes):
        tables += _jit.transposed_tables(n, k, s, dil, lo, o)
    if channels_last:  # (N, O1, O2, O3, C_out)
        out5 = out.reshape(batch, *axes.size_out, c_out)
    else:
        out5 = np.moveaxis(out.reshape(batch, c_out, *axes.size_out), 1, -1)
    rows = _pixel_rows(x, spec, channels_last)
    split = _cropped_tap_split(axes)
    if split is not None:  # x as (N, D1, D2, D3, C_in)
        x5 = (
            x.reshape(batch, *axes.size_in, c_in)
            if channels_last
            else np.moveaxis(x.reshape(batch, c_in, *axes.size_in), 1, -1)
        )

    def work(chunk: tuple[int, int, int, int]) -> None:
        n0, n1, c0, c1 = chunk
        if (c0, c1) == (0, c_out):
            w_block = wk
        else:  # a single sample's columns exceed the chunk: a block of output channels at a time
            w_block = np.ascontiguousarray(wk.reshape(c_in, taps, c_out)[:, :, c0:c1]).reshape(c_in, -1)
        if split is None:
            cols = _rows_product(rows[n0:n1], w_block).reshape(n1 - n0, *axes.size_in, *axes.kernel, c1 - c0)
            _jit.col2im_last(cols, bias1[c0:c1], out5[n0:n1, ..., c0:c1], tuple(tables))
            return
        axis, runs = split
        others = [b for b in range(3) if b != axis]
        staged = _workspace((axes.size_in[axis], n1 - n0, *(axes.size_in[b] for b in others), c_in), x.dtype, slot=1)
        np.copyto(staged, np.moveaxis(x5[n0:n1], 1 + axis, 0))
        cols = _workspace((*staged.shape[:4], *axes.kernel, c1 - c0), np.result_type(x, w_block))
        per_index = staged[0].size // c_in  # rows per input index along the split axis
        per_tap = w_block.shape[1] // axes.kernel[axis]  # columns per tap along it (the axes before: kernel 1)
        rows_in = staged.reshape(-1, c_in)
        rows_out = cols.reshape(rows_in.shape[0], -1)
        for j0, j1, t0, t1 in runs:  # only the taps that land inside the output: the rest stays unwritten
            r, t = slice(j0 * per_index, j1 * per_index), slice(t0 * per_tap, t1 * per_tap)
            np.matmul(rows_in[r], w_block[:, t], out=rows_out[r, t])
        order = (1 + axis, 0, *(1 + b for b in others))
        _jit.col2im_last(cols, bias1[c0:c1], out5[n0:n1, ..., c0:c1], tuple(tables), order)

    _each(work, *_schedule(batch, c_out, p_in * taps * x.dtype.itemsize))
    return out


#: The pixel path splits its product by the taps that land inside the output when that skips at least this
#: share of the multiply-adds (the taps cropped away by the padding; keras-dcgan-1's 5x5 kernel with padding 2
#: on 7x7: 17% along one axis).
CROPPED_TAPS_MIN = 0.05


def _cropped_tap_split(axes: _Axes3) -> tuple[int, list[tuple[int, int, int, int]]] | None:
    """Along the first axis with a kernel longer than 1: runs ``(j0, j1, t0, t1)`` of consecutive inputs whose
    taps landing inside the output are ``t0 .. t1-1`` (input ``j``, tap ``t`` land at ``j*s + t*d - lo``), when
    the taps outside are at least :data:`CROPPED_TAPS_MIN` of the axis' pairs; else None."""
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
    inside = sum((j1 - j0) * (t1 - t0) for j0, j1, t0, t1 in runs)
    return (axis, runs) if inside <= (1 - CROPPED_TAPS_MIN) * n * k else None


def patches_geometry_ok(spec: ConvSpec) -> bool:
    """Transposed, one group, dilation 1 on the last axis, an uncropped plane of at most 4M elements."""
    uncropped = [
        (n - 1) * s + (k - 1) * d + 1
        for n, s, k, d in zip(spec.input_size, spec.stride, spec.kernel_size, spec.dilation)
    ]
    return spec.transposed and spec.groups == 1 and spec.dilation[-1] == 1 and math.prod(uncropped) <= 4 * 2**20


def patches_supported(spec: ConvSpec, xp: Any) -> bool:
    """The patch-major path: :func:`patches_geometry_ok` on NumPy with numba."""
    return patches_geometry_ok(spec) and supported(spec, xp)


def conv_transpose_patches(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """Patch-major, one group: ``cols (N*P, C_out*K) = x (N*P, C_in) @ W (C_in, C_out*K)`` (the weight as it
    is), then each input pixel's kernel patch is added into the output plane in rows of ``k`` contiguous
    elements. For kernels longer than their input (FCN-32s, iSTFT), where rows of the input are short."""
    batch, d = x.shape[0], spec.ndim
    taps, p_in = math.prod(spec.kernel_size), math.prod(spec.input_size)
    c_in, c_out = spec.in_channels, spec.out_channels
    out = _empty_out(batch, c_out, spec.output_size, x.dtype, channels_last)
    if _is_single_pixel(spec):
        return _single_pixel(x, weight, bias, spec, channels_last, out)
    out5 = _view6(out, 1, d, channels_last)[:, 0]
    bias1 = _bias6(bias, spec, x.dtype)[0]
    w2 = weight.reshape(c_in, c_out * taps)
    rows = _pixel_rows(x, spec, channels_last)
    axes = _axes3(spec)
    uncropped = tuple((n - 1) * s + (k - 1) * dd + 1 for n, k, s, dd in zip(*axes[:4]))
    geometry = (*axes.stride, *axes.dilation[:2], *axes.low, *uncropped)
    for n0, n1, c0, c1 in _chunks(batch, c_out, p_in * taps * x.dtype.itemsize):
        product = _rows_product(rows[n0:n1], w2[:, c0 * taps : c1 * taps])
        cols = product.reshape(n1 - n0, *axes.size_in, c1 - c0, *axes.kernel)
        _jit.col2im_patches(cols, bias1[c0:c1], out5[n0:n1, c0:c1], geometry)
    return out


def _even_step(batch: int, most: int, multiple: int = 1) -> int:
    """The batch step that splits ``batch`` into as few chunks of at most ``most`` samples as possible (their
    count rounded up to a multiple of ``multiple``, the team's threads), of nearly equal sizes (64 samples in
    chunks of 49 would leave one of 15)."""
    chunks = max(1, -(-batch // most))
    chunks = max(1, min(batch, -(-chunks // multiple) * multiple))
    return max(1, -(-batch // chunks))


def _chunks(
    batch: int, channels: int, bytes_per_pair: int, budget: int | None = None, threads: int = 1
) -> list[tuple[int, int, int, int]]:
    """(n0, n1, c0, c1) blocks whose buffer (``bytes_per_pair`` per sample and channel) fits ``budget``
    (CHUNK_BYTES by default), in a multiple of ``threads`` blocks where the batch allows."""
    budget = CHUNK_BYTES if budget is None else budget
    per_sample = bytes_per_pair * channels
    if per_sample <= budget and batch >= threads:
        step = _even_step(batch, max(1, budget // max(per_sample, 1)), threads)
        return [(n0, min(n0 + step, batch), 0, channels) for n0 in range(0, batch, step)]
    # One sample at a time, in blocks of channels: as many as the budget needs, and (a batch smaller than the
    # team) enough for every thread to have one.
    blocks = max(-(-per_sample // budget), -(-threads // batch))
    blocks = -(-blocks // threads) * threads if batch < threads else blocks
    cstep = min(_even_step(channels, max(1, -(-channels // blocks))), max(1, budget // max(bytes_per_pair, 1)))
    return [(n, n + 1, c0, min(c0 + cstep, channels)) for n in range(batch) for c0 in range(0, channels, cstep)]


def _schedule(batch: int, channels: int, bytes_per_pair: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """A call's chunks and the threads to run them on: a team (:mod:`tconv._team`) of TEAM_CHUNK_BYTES chunks
    when :func:`team_threads` says so (a batch smaller than the team in blocks of channels, one a thread or
    more), else CHUNK_BYTES chunks one after the other (threads 1)."""
    threads = team_threads(batch, channels, bytes_per_pair)
    if threads > 1:
        return _chunks(batch, channels, bytes_per_pair, TEAM_CHUNK_BYTES, threads), threads
    return _chunks(batch, channels, bytes_per_pair), 1


def team_threads(batch: int, channels: int, bytes_per_pair: int) -> int:
    """The team a call of ``batch`` samples and ``channels`` channels (``bytes_per_pair`` column bytes per
    sample and channel) runs on: :func:`tconv._team.size` threads when the columns are TEAM_MIN_BYTES or more
    and there are TEAM_MIN_CHANNELS channels or more per thread's share of a sample (a batch smaller than the
    team is split over channels: at batch 1 on two threads, unet-up-large 12.8 -> 10.8 ms, unet3d-up 2.5 -> 2.1,
    hifigan-1d 8.3 -> 7.1, conv3d-k3s2 58.8 -> 52.6); else 1. The planner asks the same question
    (:func:`tconv._engine.select`), so that plan and schedule agree."""
    threads = _team.size()
    # a batch smaller than the team is split over channels: each thread's block must still be wide enough
    share = max(1, -(-threads // max(batch, 1)))
    big = batch * channels * bytes_per_pair >= TEAM_MIN_BYTES and channels >= TEAM_MIN_CHANNELS * share
    return threads if threads > 1 and big else 1


def _each(work: Any, chunks: list[Any], threads: int) -> None:
    """``work(chunk)`` for every chunk: on a team of ``threads`` threads, or in order in this thread."""
    if threads > 1:
        _team.run(work, chunks, threads)
    else:
        for chunk in chunks:
            work(chunk)


def _im2col(x6: np.ndarray, spec: ConvSpec, size_in: tuple[int, ...], size_out: tuple[int, ...]) -> np.ndarray:
    """``cols (G, C/G * K, N * P_out)`` of a forward convolution's input x6 ``(N, G, C/G, s1, s2, s3)``, in
    this thread's buffer.

    x is first copied into zero-padded planes (the low padding in front, up to the last position a window
    reads), so that every column is a flat gather with no test for the border: on keras-dcgan-2's input
    gradient this ran 8x faster than testing each window's range in the gather (1.4 against 10.8 ms)."""
    batch, groups, cg = x6.shape[:3]
    geometry = _im2col_geometry(_axes3(spec, size_in, size_out))
    channels = groups * cg
    plane = _padded_planes(x6, geometry)
    shape = (channels, geometry.taps.size, batch, geometry.rows.size)
    cols = _workspace(shape, x6.dtype)
    _jit.im2col(plane, cols, geometry.rows, geometry.taps)
    return cols.reshape(groups, cg * geometry.taps.size, batch * geometry.rows.size)


def _padded_planes(x6: np.ndarray, geometry: _Im2col) -> np.ndarray:
    """x6 ``(N, G, C/G, s1, s2, s3)`` as zero-padded flat planes ``(N, C, L)`` for the gather (this thread's
    buffer; x itself when no window reaches the padding and x is contiguous)."""
    batch, channels = x6.shape[0], x6.shape[1] * x6.shape[2]
    (a1, b1), (a2, b2), (a3, b3) = geometry.dst
    (c1, e1), (c2, e2), (c3, e3) = geometry.src
    x = _merge_groups(x6)[:, :, c1:e1, c2:e2, c3:e3]
    if x.shape[2:] == geometry.span and x.flags.c_contiguous:
        return x.reshape(batch, channels, -1)  # no padding and nothing cropped: x's planes as they are
    plane = _workspace((batch, channels, *geometry.span), x6.dtype, slot=2)
    inner = plane[:, :, a1:b1, a2:b2, a3:b3]
    if inner.size < plane.size:
        plane.fill(0)
    inner[...] = x
    return plane.reshape(batch, channels, -1)


def _merge_groups(x6: np.ndarray) -> np.ndarray:
    """``(N, G, C/G, ...)`` -> ``(N, C, ...)`` as a view (the group axis is a split of the channel axis)."""
    shape = (x6.shape[0], x6.shape[1] * x6.shape[2], *x6.shape[3:])
    strides = (x6.strides[0], x6.strides[2], *x6.strides[3:])
    return np.lib.stride_tricks.as_strided(x6, shape=shape, strides=strides)


def _write_channels_first_matrix(y: np.ndarray, bias: np.ndarray | None, out6: np.ndarray) -> None:
    """``y (G', C/G, nb * P)`` (+ ``bias (G', C/G)``) -> ``out6 (nb, G', C/G, s1, s2, s3)``."""
    groups, cg = y.shape[:2]
    nb = out6.shape[0]
    y6 = np.moveaxis(y.reshape(groups, cg, nb, *out6.shape[3:]), 2, 0)
    if bias is None:
        out6[...] = y6
    else:
        np.add(y6, bias.reshape(1, groups, cg, 1, 1, 1), out=out6)


def _im2col_blocks(
    batch: int, groups: int, cg: int, bytes_per: int, budget: int | None = None, threads: int = 1
) -> list[tuple[int, int, int, int, int, int]]:
    """``(n0, n1, g0, g1, c0, c1)`` blocks of an im2col whose buffer (``bytes_per`` per sample and input
    channel) fits ``budget`` (CHUNK_BYTES by default): whole samples when one fits (in a multiple of
    ``threads`` blocks where the batch allows), else one sample, one group and a block of its channels
    at a time (the products over channel blocks are then summed)."""
    budget = CHUNK_BYTES if budget is None else budget
    per_sample = groups * cg * bytes_per
    if per_sample <= budget:
        step = _even_step(batch, max(1, budget // max(per_sample, 1)), threads)
        return [(n0, min(n0 + step, batch), 0, groups, 0, cg) for n0 in range(0, batch, step)]
    cstep = max(1, budget // max(bytes_per, 1))
    return [
        (n, n + 1, g, g + 1, c0, min(c0 + cstep, cg))
        for n in range(batch)
        for g in range(groups)
        for c0 in range(0, cg, cstep)
    ]


def _im2col_schedule(
    batch: int, groups: int, cg: int, bytes_per: int
) -> tuple[list[tuple[int, int, int, int, int, int]], int]:
    """An im2col's blocks and threads, as :func:`_schedule`: a team only when its blocks are whole samples
    (blocks over channels are summed one after the other)."""
    threads = _team.size()
    per_sample = groups * cg * bytes_per
    big = batch * per_sample >= TEAM_MIN_BYTES and groups * cg >= TEAM_MIN_CHANNELS
    if threads > 1 and batch >= threads and per_sample <= TEAM_CHUNK_BYTES and big:
        return _im2col_blocks(batch, groups, cg, bytes_per, TEAM_CHUNK_BYTES, threads), threads
    return _im2col_blocks(batch, groups, cg, bytes_per), 1


class _Partials:
    """Per-thread partial sums of an accumulated result (a weight gradient) on a team, added up at the end."""

    def __init__(self, total: np.ndarray, threads: int) -> None:
        self.total, self.threads = total, threads
        self.parts: dict[int, np.ndarray] = {}

    def target(self) -> np.ndarray:
        if self.threads == 1:
            return self.total
        ident = threading.get_ident()
        part = self.parts.get(ident)
        if part is None:
            part = self.parts[ident] = np.zeros_like(self.total)
        return part

    def sum(self) -> np.ndarray:
        for part in self.parts.values():
            self.total += part
        return self.total


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """The (forward) convolution of a batched x in the caller's layout: im2col, one product per group."""
    groups, d = spec.groups, spec.ndim
    batch = x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    out = _empty_out(batch, spec.out_channels, spec.output_size, x.dtype, channels_last)
    out6 = _view6(out, groups, d, channels_last)
    x6 = _view6(x, groups, d, channels_last)
    taps = math.prod(spec.kernel_size)
    wm = weight.reshape(groups, cg_out, cg_in * taps)
    bias_g = None if bias is None else np.asarray(bias, dtype=x.dtype).reshape(groups, cg_out)
    total = None

    def work(block: tuple[int, int, int, int, int, int]) -> None:
        nonlocal total
        n0, n1, g0, g1, c0, c1 = block
        cols = _im2col(x6[n0:n1, g0:g1, c0:c1], spec, spec.input_size, spec.output_size)
        y = np.matmul(wm[g0:g1, :, c0 * taps : c1 * taps], cols)  # (G', cg_out, nb * P_out)
        total = y if c0 == 0 else total + y  # channel blocks (one thread) are summed in order
        if c1 == cg_in:
            bias_block = None if bias_g is None else bias_g[g0:g1]
            _write_channels_first_matrix(total if c0 else y, bias_block, out6[n0:n1, g0:g1])

    _each(
        work,
        *_im2col_schedule(
            batch, groups, cg_in, _im2col_bytes(spec, spec.input_size, spec.output_size, x.dtype.itemsize)
        ),
    )
    return out


def conv_transpose_grads(
    x: np.ndarray, weight: np.ndarray, gy: np.ndarray, spec: ConvSpec, channels_last: bool, want_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(dx, dW)`` of a transposed convolution, both from one im2col of the output gradient (dx None unless wanted)."""
    groups, d = spec.groups, spec.ndim
    batch = x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    x6 = _view6(x, groups, d, channels_last)
    gy6 = _view6(gy, groups, d, channels_last)
    dx = _empty_out(batch, spec.in_channels, spec.input_size, x.dtype, channels_last) if want_dx else None
    dx6 = None if dx is None else _view6(dx, groups, d, channels_last)
    wm = weight.reshape(groups, cg_in, cg_out * taps)
    bytes_per = _im2col_bytes(spec, spec.output_size, spec.input_size, x.dtype.itemsize)
    threads = _few_samples_team(batch, groups * cg_out, bytes_per)
    if threads > 1 and not channels_last:
        return dx, _transposed_grads_in_pixel_blocks(x6, wm, gy6, spec, dx, threads).reshape(weight.shape)
    blocks, threads = _im2col_schedule(batch, groups, cg_out, bytes_per)
    dw = _Partials(np.zeros((groups, cg_in, cg_out * taps), dtype=x.dtype), threads)
    total = None

    def work(chunk: tuple[int, int, int, int, int, int]) -> None:
        nonlocal total
        n0, n1, g0, g1, c0, c1 = chunk
        # The input gradient is the convolution of gy with the same geometry, read at x's positions.
        cols = _im2col(gy6[n0:n1, g0:g1, c0:c1], spec, spec.output_size, spec.input_size)  # (G', cb*K, nb*P_in)
        block = slice(c0 * taps, c1 * taps)
        if dx6 is not None:
            part = np.matmul(wm[g0:g1, :, block], cols)
            total = part if c0 == 0 else total + part  # channel blocks (one thread) are summed in order
            if c1 == cg_out:
                _write_channels_first_matrix(total if c0 else part, None, dx6[n0:n1, g0:g1])
        xm = _x_matrix(x6[n0:n1, g0:g1])  # (G', cg_in, nb*P_in)
        dw.target()[g0:g1, :, block] += np.matmul(xm, np.swapaxes(cols, 1, 2))

    _each(work, blocks, threads)
    return dx, dw.sum().reshape(weight.shape)


def _few_samples_team(batch: int, channels: int, bytes_per: int) -> int:
    """The team for the gradients of a call whose batch is smaller than the team (which
    :func:`_im2col_schedule` runs on one thread: its products on BLAS's threads, its im2col on numba's, the
    one pool slowing the other after each hand-over): its threads when the columns of the whole batch
    (``bytes_per`` per sample and channel) are TEAM_MIN_BYTES or more and there are TEAM_MIN_CHANNELS
    channels or more; else 1."""
    threads = _team.size()
    big = batch * channels * bytes_per >= TEAM_MIN_BYTES and channels >= TEAM_MIN_CHANNELS
    return threads if threads > 1 and batch < threads and big else 1


def _transposed_grads_in_pixel_blocks(
    x6: np.ndarray, wm: np.ndarray, gy6: np.ndarray, spec: ConvSpec, dx: np.ndarray | None, threads: int
) -> np.ndarray:
    """:func:`conv_transpose_grads` of a batch smaller than the team (channels-first), on the team in blocks
    of x's pixels: gy is padded once, then each block's columns are gathered (the im2col's table of window
    offsets cut to the block), multiplied into the block of ``dx = W @ cols`` and into the thread's partial
    ``dW += x_block @ cols^T``, while they are in the cache (unet-up-large's gradients at batch 1 on two
    threads: 27 -> 20 ms). Returns dW ``(G, C_in/G, C_out/G * K)``."""
    batch, groups, cg_out = gy6.shape[:3]
    cg_in = x6.shape[2]
    geometry = _im2col_geometry(_axes3(spec, spec.output_size, spec.input_size))
    taps, p_in = geometry.taps.size, geometry.rows.size
    plane = _padded_planes(gy6, geometry)  # read by every thread; work() never touches slot 2
    x4 = np.ascontiguousarray(_merge_groups(x6)).reshape(batch, groups, cg_in, p_in)
    dx4 = None if dx is None else dx.reshape(batch, groups, cg_in, p_in)
    per_pixel = groups * cg_out * taps * batch * x6.dtype.itemsize
    count = max(threads, -(-p_in * per_pixel // TEAM_CHUNK_BYTES))
    step = _even_step(p_in, max(1, -(-p_in // (-(-count // threads) * threads))))
    dw = _Partials(np.zeros((groups, cg_in, cg_out * taps), dtype=x6.dtype), threads)

    def work(block: tuple[int, int]) -> None:
        o0, o1 = block
        cols = _workspace((groups * cg_out, taps, batch, o1 - o0), x6.dtype)
        _jit.im2col(plane, cols, geometry.rows[o0:o1], geometry.taps)
        cols_g = cols.reshape(groups, cg_out * taps, batch * (o1 - o0))
        xb = np.moveaxis(x4[:, :, :, o0:o1], 0, 2).reshape(groups, cg_in, -1)  # (G, cg_in, N * ob)
        target = dw.target()
        for g in range(groups):
            if dx4 is not None:
                part = np.matmul(wm[g], cols_g[g]).reshape(cg_in, batch, o1 - o0)
                dx4[:, g, :, o0:o1] = np.moveaxis(part, 1, 0)
            target[g] += np.matmul(xb[g], cols_g[g].T)

    _team.run(work, [(o0, min(o0 + step, p_in)) for o0 in range(0, p_in, step)], threads)
    return dw.sum()


def conv_weight_grad(
    x: np.ndarray, gy: np.ndarray, weight_shape: tuple[int, ...], spec: ConvSpec, channels_last: bool
) -> np.ndarray:
    """The weight gradient of a (forward) convolution: ``dy @ im2col(x)^T`` per group."""
    groups, d = spec.groups, spec.ndim
    batch = x.shape[0]
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    x6 = _view6(x, groups, d, channels_last)
    gy6 = _view6(gy, groups, d, channels_last)
    blocks, threads = _im2col_schedule(
        batch, groups, cg_in, _im2col_bytes(spec, spec.input_size, spec.output_size, x.dtype.itemsize)
    )
    dw = _Partials(np.zeros((groups, cg_out, cg_in * taps), dtype=x.dtype), threads)

    def work(chunk: tuple[int, int, int, int, int, int]) -> None:
        n0, n1, g0, g1, c0, c1 = chunk
        cols = _im2col(x6[n0:n1, g0:g1, c0:c1], spec, spec.input_size, spec.output_size)
        gym = _x_matrix(gy6[n0:n1, g0:g1])  # (G', cg_out, nb*P_out)
        dw.target()[g0:g1, :, c0 * taps : c1 * taps] += np.matmul(gym, np.swapaxes(cols, 1, 2))

    _each(work, blocks, threads)
    return dw.sum().reshape(weight_shape)
