"""Winograd's F(4x4, 3x3): the kernel, input and output transforms of ``jit_winograd4`` (:mod:`.winograd` runs
the call: its phases, chunks and products are F(2x2, 3x3)'s with ``m = 4``).

F(4x4, 3x3) (``m = 4``; :data:`G4`, :data:`B4T`, :data:`A4T`) cuts the output into 4x4 tiles, each read from a
6x6 patch at rows and columns ``4i .. 4i+5``: 36 products over a quarter of the tiles, 4 times fewer
multiply-adds than the im2col's, with transforms whose coefficients (up to 8 and 1/24) round more: float32
results within 4e-6 to 1.3e-5 of the output's largest value at 48-256 input channels, against 3-7e-7 for
F(2x2, 3x3) and the im2col. Its kernels (:func:`kernels`) split each padded input row by column modulo 4, so that a
tile's six columns lie along the row of tiles in four contiguous arrays, and apply each transform in two
passes (down the columns, then along the rows), each a loop of six loads: as one pass of 36 loads a tile, the
output transform ran 9 times slower (2.1 ms against 0.22 for 64 channels over 56x56, one thread) and the input
transform 1.3-2.5 times.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import kernels as compiled
from . import team

#: F(4x4, 3x3)'s kernel transform ``U = G4 g G4^T`` (6 x 3; Lavin and Gray's points 0, 1, -1, 2, -2 and infinity).
G4 = np.array(
    [
        [1 / 4, 0.0, 0.0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0.0, 0.0, 1.0],
    ]
)

#: F(4x4, 3x3)'s input transform ``B4^T`` (6 x 6) and output transform ``A4^T`` (4 x 6), as the kernels write them.
B4T = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=float,
)
A4T = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=float)


def transformed_kernel(weight: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``U (36, C_out, C_in)`` in ``u``: ``G4 g G4^T`` for each channel pair's 3x3 kernel ``g``, position ``6a + b``
    of the 6x6 result at ``U[6a + b]``, in ``u``'s dtype; on the team as
    :func:`.winograd.transformed_kernel`."""
    c_out, c_in = weight.shape[:2]
    w = np.ascontiguousarray(weight, dtype=u.dtype).reshape(c_out * c_in, 9)
    rows, kernel = u.reshape(36, -1), kernels()[2]
    team.ranges(lambda start, stop: kernel(w, rows, start, stop), c_out * c_in, 45.0 * c_out * c_in)
    return u


@functools.cache
def kernels() -> tuple[Any, Any, Any]:
    def transform_input4(x, xs, size, low, n0, n1, i0, i1, tw, v, row):  # type: ignore[no-untyped-def]
        # As transform_input, for F(4x4, 3x3): tile (n, i, j) reads the 6x6 padded patch at rows 4i .. 4i+5 and
        # columns 4j .. 4j+5. Per (sample, channel): the padded rows the chunk's tiles read, each copied once,
        # split by column modulo 4 (phase ``ph`` at ``p[ph * span:]``, ``quarter`` a row), so that tile j's six
        # columns are phases 0, 1, 2, 3 at j and 0, 1 at j + 1: contiguous along j. Then per tile its 36 values,
        # B4^T down the six columns and B4 along the six rows, into v[6a + b] at t: one loop along a row of
        # tiles, unsigned indices, constants of the data's type (an integer constant would make it float64).
        channels, height, width = size[0], size[1], size[2]
        lo_h, lo_w = low[0], low[1]
        quarter = tw + 1  # each phase's columns of a padded row of 4*tw + 2
        rows = 4 * (i1 - i0) + 2  # the padded rows from 4*i0 on; the padding's stay zero
        span = rows * quarter
        p = np.zeros(4 * span, dtype=v.dtype)
        per = i1 - i0
        c2, c4, c5 = v.dtype.type(2), v.dtype.type(4), v.dtype.type(5)
        firsts = np.empty(4, dtype=np.int64)  # each phase's first input column, count of columns and slot
        counts = np.empty(4, dtype=np.int64)
        starts = np.empty(4, dtype=np.int64)
        for ph in range(4):
            first = (ph - lo_w) % 4
            firsts[ph] = first
            counts[ph] = max(0, (width - first + 3) // 4)
            starts[ph] = ph * span + (lo_w + first) // 4
        step = np.uint64(4 * xs[3])
        flat = v.reshape(-1)
        plane = np.uint64(v.shape[1])  # from V[xi] to V[xi + 1]
        one, two, three, four, five = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4), np.uint64(5)
        wide = np.uint64(quarter)
        across = np.uint64(4 * quarter)  # from one row of s (B4^T d's row a, every column by phase) to the next
        s = np.empty(6 * 4 * quarter, dtype=v.dtype)
        for n in range(n0, n1):
            for c in range(channels):
                for r in range(rows):
                    h = 4 * i0 + r - lo_h
                    if h < 0 or h >= height:
                        continue
                    base = n * xs[0] + c * xs[1] + h * xs[2]
                    for ph in range(4):
                        dst = np.uint64(r * quarter + starts[ph])
                        src = np.uint64(base + firsts[ph] * xs[3])
                        for q in range(np.uint64(counts[ph])):
                            p[dst + q] = x[src + q * step]
                row_of_c = np.uint64(c * row)
                for i in range(i0, i1):
                    r0 = np.uint64(4 * (i - i0) * quarter)
                    t = row_of_c + np.uint64(((n - n0) * per + i - i0) * tw)
                    for ph in range(4):  # B4^T down each padded column of the tiles' six rows, by phase
                        base = np.uint64(ph * span)
                        to = np.uint64(ph * quarter)
                        for idx in range(wide):
                            a = base + r0 + idx
                            d0, d1, d2 = p[a], p[a + wide], p[a + two * wide]
                            d3, d4, d5 = p[a + three * wide], p[a + four * wide], p[a + five * wide]
                            at = to + idx
                            s[at] = c4 * d0 - c5 * d2 + d4
                            s[at + across] = d3 + d4 - c4 * (d1 + d2)
                            s[at + two * across] = c4 * (d1 - d2) - d3 + d4
                            s[at + three * across] = c2 * (d3 - d1) - d2 + d4
                            s[at + four * across] = c2 * (d1 - d3) - d2 + d4
                            s[at + five * across] = c4 * d1 - c5 * d3 + d5
                    for a6 in range(6):  # B4 along each tile's row a6 of B4^T d: columns 4j .. 4j + 5
                        row_a = np.uint64(a6) * across
                        out0 = t + np.uint64(6 * a6) * plane
                        for j in range(np.uint64(tw)):
                            at = row_a + j
                            e0, e1, e2 = s[at], s[at + wide], s[at + two * wide]
                            e3, e4, e5 = s[at + three * wide], s[at + one], s[at + wide + one]
                            dst = out0 + j
                            flat[dst] = c4 * e0 - c5 * e2 + e4
                            flat[dst + plane] = e3 + e4 - c4 * (e1 + e2)
                            flat[dst + two * plane] = c4 * (e1 - e2) - e3 + e4
                            flat[dst + three * plane] = c2 * (e3 - e1) - e2 + e4
                            flat[dst + four * plane] = c2 * (e1 - e3) - e2 + e4
                            flat[dst + five * plane] = c4 * e1 - c5 * e3 + e5

    def transform_output4(m, row, out, os, size, n0, n1, i0, i1, tw, bias):  # type: ignore[no-untyped-def]
        # As transform_output, for F(4x4, 3x3): per channel and tile, A4^T down the six columns of M and A4
        # along the rows, plus the bias, into ``values`` (row 4c + e: output row c, column e of each tile), one
        # loop over the chunk's tiles; then each row of tiles into its four output rows, the part of a last row
        # or column of tiles outside the output dropped.
        k_all, oh_n, ow_n = size[0], size[1], size[2]
        per = i1 - i0
        count = (n1 - n0) * per * tw
        full = ow_n // 4  # tiles whose four columns are inside
        rest = ow_n - 4 * full  # columns of the last tile inside, if it is cut
        s3 = os[3]
        flat = m.reshape(-1)
        plane = np.uint64(m.shape[1])
        values = np.empty((16, count), dtype=m.dtype)
        q = np.empty((24, count), dtype=m.dtype)
        c2, c4, c8 = m.dtype.type(2), m.dtype.type(4), m.dtype.type(8)
        p6, p12, p18 = np.uint64(6) * plane, np.uint64(12) * plane, np.uint64(18) * plane
        p24, p30 = np.uint64(24) * plane, np.uint64(30) * plane
        for k in range(k_all):
            b = bias[k]
            for col in range(6):  # A4^T down column col of every tile's M
                first = np.uint64(k * row) + np.uint64(col) * plane
                for f in range(np.uint64(count)):
                    at = first + f
                    m0, m1, m2 = flat[at], flat[at + p6], flat[at + p12]
                    m3, m4, m5 = flat[at + p18], flat[at + p24], flat[at + p30]
                    q[col, f] = m0 + m1 + m2 + m3 + m4
                    q[6 + col, f] = m1 - m2 + c2 * (m3 - m4)
                    q[12 + col, f] = m1 + m2 + c4 * (m3 + m4)
                    q[18 + col, f] = m1 - m2 + c8 * (m3 - m4) + m5
            for c in range(4):  # A4 along row c of every tile's A4^T M, plus the bias
                c6, c4_ = 6 * c, 4 * c
                for f in range(np.uint64(count)):
                    e0, e1, e2 = q[c6, f], q[c6 + 1, f], q[c6 + 2, f]
                    e3, e4, e5 = q[c6 + 3, f], q[c6 + 4, f], q[c6 + 5, f]
                    values[c4_, f] = e0 + e1 + e2 + e3 + e4 + b
                    values[c4_ + 1, f] = e1 - e2 + c2 * (e3 - e4) + b
                    values[c4_ + 2, f] = e1 + e2 + c4 * (e3 + e4) + b
                    values[c4_ + 3, f] = e1 - e2 + c8 * (e3 - e4) + e5 + b
            for n in range(n0, n1):
                for i in range(i0, i1):
                    t = np.uint64(((n - n0) * per + i - i0) * tw)
                    top = n * os[0] + k * os[1] + 4 * i * os[2]
                    for c in range(4):
                        if 4 * i + c >= oh_n:
                            break
                        line = top + c * os[2]
                        e0, e1, e2, e3 = 4 * c, 4 * c + 1, 4 * c + 2, 4 * c + 3
                        if s3 == 1:  # a contiguous row: the four columns of each tile interleaved
                            dst = np.uint64(line)
                            for j in range(np.uint64(full)):
                                at = dst + np.uint64(4) * j
                                out[at] = values[e0, t + j]
                                out[at + np.uint64(1)] = values[e1, t + j]
                                out[at + np.uint64(2)] = values[e2, t + j]
                                out[at + np.uint64(3)] = values[e3, t + j]
                        else:
                            for j in range(full):
                                at = line + 4 * j * s3
                                out[at] = values[e0, t + np.uint64(j)]
                                out[at + s3] = values[e1, t + np.uint64(j)]
                                out[at + 2 * s3] = values[e2, t + np.uint64(j)]
                                out[at + 3 * s3] = values[e3, t + np.uint64(j)]
                        for e in range(rest):
                            out[line + (4 * full + e) * s3] = values[4 * c + e, t + np.uint64(full)]

    def transform_kernel4(w, u, start, stop):  # type: ignore[no-untyped-def]
        # w (C_out * C_in, 9): each 3x3 kernel g in row order; u (36, C_out * C_in): G4 g G4^T, G4's rows
        # (1/4, 0, 0), -(1, 1, 1)/6, -(1, -1, 1)/6, (1/24, 1/12, 1/6), (1/24, -1/12, 1/6), (0, 0, 1) applied
        # down the columns (t = G4 g, row 3a + j), then along the rows; the kernels start to stop, in blocks of
        # 512 transposed into nine rows, each row of t and u one loop over the block (as transform_kernel).
        block = 512
        g = np.empty((9, block), dtype=w.dtype)
        t = np.empty((18, block), dtype=w.dtype)
        quarter, sixth = w.dtype.type(1 / 4), w.dtype.type(1 / 6)
        twelfth, twenty_fourth = w.dtype.type(1 / 12), w.dtype.type(1 / 24)
        for p0 in range(start, stop, block):
            width = min(block, stop - p0)
            for e in range(width):
                src = w[p0 + e]
                for j in range(9):
                    g[j, e] = src[j]
            for j in range(3):
                for e in range(width):
                    g0, g1, g2 = g[j, e], g[3 + j, e], g[6 + j, e]
                    t[j, e] = g0 * quarter
                    t[3 + j, e] = -(g0 + g1 + g2) * sixth
                    t[6 + j, e] = -(g0 - g1 + g2) * sixth
                    t[9 + j, e] = g0 * twenty_fourth + g1 * twelfth + g2 * sixth
                    t[12 + j, e] = g0 * twenty_fourth - g1 * twelfth + g2 * sixth
                    t[15 + j, e] = g2
            for a in range(6):
                for e in range(width):
                    g0, g1, g2 = t[3 * a, e], t[3 * a + 1, e], t[3 * a + 2, e]
                    at = p0 + e
                    u[6 * a, at] = g0 * quarter
                    u[6 * a + 1, at] = -(g0 + g1 + g2) * sixth
                    u[6 * a + 2, at] = -(g0 - g1 + g2) * sixth
                    u[6 * a + 3, at] = g0 * twenty_fourth + g1 * twelfth + g2 * sixth
                    u[6 * a + 4, at] = g0 * twenty_fourth - g1 * twelfth + g2 * sixth
                    u[6 * a + 5, at] = g2

    return (
        compiled.compile_kernel(transform_input4, compiled.FASTMATH_IN_ORDER),
        compiled.compile_kernel(transform_output4, compiled.FASTMATH_IN_ORDER),
        compiled.compile_kernel(transform_kernel4),
    )


__all__ = ["A4T", "B4T", "G4", "kernels", "transformed_kernel"]
