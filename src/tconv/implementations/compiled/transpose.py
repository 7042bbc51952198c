"""Transposing copies in tiles: a channels-last array as its channels-first matrix and back.

The compiled path turns channels-last arrays into ``(C, N*P)`` product operands (and channels-first planes into
pixel-major ones) with a copy that swaps two axes. NumPy's copy of such a view walks the destination in order and
reads the source a whole row apart for every element, about 1 GB/s here (a (12544, 64) float32 matrix in 3.5 ms).
:func:`copy` does the same copy in 32 x 32 tiles, whose reads and writes both stay in the cache (each tile's square
blocks of a vector's lanes transposed in registers, :func:`.simd.vtranspose`), and on the team where it is large
enough. Any view that is a stack of transposed C-contiguous matrices after merging its axes
qualifies (:func:`transposed_layout`); the numbers are copied, not computed, so the result is the same array.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ... import _tuning
from . import kernels, team

#: the side of a tile, in elements
TILE = 32


def transposed_layout(a: np.ndarray) -> tuple[int, int, int] | None:
    """``(batches, rows, cols)`` where ``a``, read in C order, is ``src[b].T`` for each ``b`` of a C-contiguous
    ``src (batches, rows, cols)`` in ``a``'s memory (so ``a``'s copy is the transposes, ``(batches, cols,
    rows)``); None for any other layout. Axes of length one are ignored and adjacent axes that step through memory
    together are merged first: a channels-last ``(N, H, W, C)`` array moved to ``(C, N, H, W)`` is one transposed
    ``(N*H*W, C)`` matrix, a channels-first ``(N, C, H, W)`` one moved to ``(N, H, W, C)`` is ``N`` of them."""
    item = a.dtype.itemsize
    axes: list[list[int]] = []
    for size, stride in zip(a.shape, a.strides):
        if size == 1:
            continue
        if axes and axes[-1][1] == stride * size:
            axes[-1] = [axes[-1][0] * size, stride]
        else:
            axes.append([size, stride])
    if len(axes) == 2:
        axes.insert(0, [1, 0])
    if len(axes) != 3:
        return None
    (batches, step), (cols, col_step), (rows, row_step) = axes
    if col_step != item or row_step != cols * item or (batches > 1 and step != rows * cols * item):
        return None
    return batches, rows, cols


def copy(dst: np.ndarray, src: np.ndarray) -> bool:
    """``dst[...] = src`` by tiles where one of them is C-contiguous and the other a stack of transposed matrices
    (:func:`transposed_layout`), of the same shape and dtype (float32 or float64), at least
    ``TRANSPOSE_TILES_MIN_BYTES`` in all, with matrices of ``TRANSPOSE_TILES_MIN_SIDE`` rows and columns or more
    and either ``TRANSPOSE_TILES_MIN_ROWS`` rows (as the C-contiguous side lays them out) or
    ``TRANSPOSE_TILES_MIN_BYTES`` each, and the compiled kernels are available; returns whether it copied (else
    the caller copies). Elsewhere NumPy's copy, whose reads then stay in the cache, measured as fast or faster
    (docs/design.md, transposing copies). ``src`` and ``dst`` must not overlap (the tiles would read what others
    wrote; every caller copies into a buffer of its own)."""
    if src.nbytes < _tuning.TRANSPOSE_TILES_MIN_BYTES or src.dtype != dst.dtype or src.dtype.char not in "fd":
        return False
    if not src.dtype.isnative or dst.shape != src.shape or not kernels.available():
        return False
    for a in (src, dst):  # the kernel reads and writes memory forwards, in whole elements
        if any(st < 0 or st % a.itemsize for st in a.strides):
            return False
    if dst.flags.c_contiguous and (layout := transposed_layout(src)) is not None:
        batches, rows, cols = layout  # src is the transposes of (batches, rows, cols) in its memory
    elif src.flags.c_contiguous and (layout := transposed_layout(dst)) is not None:
        batches, cols, rows = layout  # dst's memory is the transposes of src's, read as (batches, rows, cols)
    else:
        return False
    if min(rows, cols) < _tuning.TRANSPOSE_TILES_MIN_SIDE:
        return False
    if rows < _tuning.TRANSPOSE_TILES_MIN_ROWS and rows * cols * src.itemsize < _tuning.TRANSPOSE_TILES_MIN_BYTES:
        return False
    source, target = kernels.flat(src), kernels.flat(dst)
    kernel = _kernel()
    tiles = batches * -(-rows // TILE) * -(-cols // TILE)
    team.ranges(lambda start, stop: kernel(source, target, rows, cols, start, stop), tiles, float(src.size))
    return True


def assign(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src``: by tiles where :func:`copy` takes the pair, else NumPy's copy (at once below
    ``TRANSPOSE_TILES_MIN_BYTES``, which :func:`copy` declines first: a small copy skips its checks)."""
    if src.nbytes < _tuning.TRANSPOSE_TILES_MIN_BYTES or not copy(dst, src):
        np.copyto(dst, src)


def planes(dst: np.ndarray, src: np.ndarray) -> bool:
    """``dst[...] = src`` for ``(N, C, s1, s2, s3)`` views of which one has its channels contiguous and the other
    its rows (a channels-last array into an im2col's zero-padded channels-first planes, or channels-first planes
    into channel-minor ones): by tiles of ``TILE`` channels by ``TILE`` pixels of a row, on the team where it is
    large enough; float32/float64, at least ``TRANSPOSE_TILES_MIN_BYTES`` and ``TRANSPOSE_TILES_MIN_SIDE``
    channels, else False (the caller copies). NumPy's copy of such a view reads the source a channel count or a
    plane apart for every element it writes. ``src`` and ``dst`` must not overlap."""
    if src.ndim != 5 or dst.shape != src.shape or src.dtype != dst.dtype or src.dtype.char not in "fd":
        return False
    if not src.dtype.isnative or not kernels.available() or src.nbytes < _tuning.TRANSPOSE_TILES_MIN_BYTES:
        return False
    batch, channels, n1, n2, n3 = src.shape
    item = src.itemsize
    if channels < _tuning.TRANSPOSE_TILES_MIN_SIDE or n3 < 2:
        return False
    if any(st < 0 or st % item for a in (src, dst) for st in a.strides):
        return False
    if src.strides[1] == item and dst.strides[4] == item:
        along_rows = True  # the tiles' writes run along dst's rows
    elif src.strides[4] == item and dst.strides[1] == item:
        along_rows = False  # along dst's channels
    else:
        return False
    s_n, s_c, s_1, s_2, s_3 = (st // item for st in src.strides)
    d_n, d_c, d_1, d_2, d_3 = (st // item for st in dst.strides)
    source, target = kernels.flat(src), kernels.flat(dst)
    kernel = _planes_kernel()
    jobs = batch * n1 * n2 * -(-channels // TILE)
    shape, steps = (n1, n2, n3, channels), (s_n, s_c, s_1, s_2, s_3, d_n, d_c, d_1, d_2, d_3)

    def run(start: int, stop: int) -> None:
        kernel(source, target, *shape, *steps, along_rows, start, stop)

    team.ranges(run, jobs, float(src.size))
    return True


#: the SIMD operations the transposing kernel calls, set by :func:`_kernel` (module globals: numba's disk cache
#: keys a kernel by its closure, as :mod:`.direct_conv` explains)
_lanes: Any = None
_vtranspose: Any = None


@functools.cache
def _kernel() -> Any:
    from . import simd

    global _lanes, _vtranspose
    _lanes, _vtranspose = simd.lanes, simd.vtranspose
    tile = TILE
    vector_bytes = _tuning.VECTOR_BYTES  # 256 bits everywhere; in the closure, as .simd.width says

    def transpose(src, dst, rows, cols, start, stop):  # type: ignore[no-untyped-def]
        # src: batches of (rows, cols), C-contiguous; dst: the same batches transposed, (cols, rows). A job is one
        # tile: (batch, block of ``tile`` columns, block of ``tile`` rows), the rows' blocks fastest, so that a
        # range of jobs writes one stretch of dst; each tile's reads (rows of the source) and writes (its
        # columns, rows of the destination) stay in the cache. Within a tile, square blocks of a vector's lanes
        # go by vector loads, shuffles and stores (``simd.vtranspose``), the tile's last rows and columns
        # short of a block element by element.
        lane = _lanes(src)
        if lane * src.itemsize != vector_bytes:  # never: the width keys the cache
            raise ValueError("the tiled transpose was compiled for another vector width")
        row_blocks = (rows + tile - 1) // tile
        col_blocks = (cols + tile - 1) // tile
        size = rows * cols
        for job in range(start, stop):
            r0 = (job % row_blocks) * tile
            c0 = ((job // row_blocks) % col_blocks) * tile
            base = (job // (row_blocks * col_blocks)) * size
            r1 = min(rows, r0 + tile)
            c1 = min(cols, c0 + tile)
            rv = r0 + (r1 - r0) // lane * lane  # the rows and columns in whole blocks end here
            cv = c0 + (c1 - c0) // lane * lane
            for c in range(c0, cv, lane):
                for r in range(r0, rv, lane):
                    _vtranspose(dst, base + c * rows + r, rows, src, base + r * cols + c, cols)
            for c in range(c0, c1):
                d = base + c * rows
                s = base + c
                for r in range(r0 if c >= cv else rv, r1):
                    dst[d + r] = src[s + r * cols]

    return kernels.compile_kernel(transpose)


@functools.cache
def _planes_kernel() -> Any:
    tile = TILE

    def planes(  # type: ignore[no-untyped-def]
        src, dst, n1, n2, n3, channels, s_n, s_c, s_1, s_2, s_3, d_n, d_c, d_1, d_2, d_3, along_rows, start, stop
    ):
        # src, dst: the flat memory of (N, C, s1, s2, s3) views (strides in elements). A job is one row
        # (n, i1, i2) and a block of ``tile`` channels, the blocks fastest; each tile of ``tile`` pixels of the
        # row is read into the cache once, its writes run along dst's contiguous axis.
        blocks = (channels + tile - 1) // tile
        for job in range(start, stop):
            c0 = (job % blocks) * tile
            row = job // blocks
            i2 = row % n2
            i1 = (row // n2) % n1
            n = row // (n1 * n2)
            s_row = n * s_n + i1 * s_1 + i2 * s_2
            d_row = n * d_n + i1 * d_1 + i2 * d_2
            c1 = min(channels, c0 + tile)
            for p0 in range(0, n3, tile):
                p1 = min(n3, p0 + tile)
                if along_rows:
                    for c in range(c0, c1):
                        d = d_row + c * d_c
                        s = s_row + c * s_c
                        for p in range(p0, p1):
                            dst[d + p] = src[s + p * s_3]
                else:
                    for p in range(p0, p1):
                        d = d_row + p * d_3
                        s = s_row + p * s_3
                        for c in range(c0, c1):
                            dst[d + c] = src[s + c * s_c]

    return kernels.compile_kernel(planes)


__all__ = ["TILE", "copy", "planes", "transposed_layout"]
