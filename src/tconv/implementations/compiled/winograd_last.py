"""Winograd's input and output transforms for channels-last arrays, F(2x2, 3x3) and F(4x4, 3x3): each transform
runs along the contiguous channels.

Channels-first, a channel's plane is contiguous and the transforms of :mod:`.winograd` and :mod:`.winograd4` run
along a row of tiles. Channels-last, the same kernels would read every value of a channel's row a channel count
apart: a cache line for each value, whatever the tile size. Here the transformed input is laid out by tile and
channel instead, ``V[xi] (tiles, C_in)``, so that every loop runs along the channels, which are contiguous in the
input, in ``V`` and, for the output, in ``M[xi] = V[xi] @ U[xi]^T (tiles, C_out)`` and in the output.

The input transform copies the ``m + 2`` input rows a row of tiles reads into a zero-padded strip (its padding
stays zero), applies ``B^T`` down every column of the strip once (the columns two adjacent tiles share are
transformed once), then ``B`` along each tile's ``m + 2`` columns, into ``V``. The output transform applies ``A^T``
down each tile's columns of ``M`` and ``A`` along its rows plus the bias, a block of output channels at a time (so
that its intermediate stays in the first-level cache), into the tile's output pixels; the part of a last row or
column of tiles outside the output is not computed. Each transformed value is computed as the channels-first
kernels compute it (the same formulas in the same order, without reassociation), so the layouts' results differ
only by the products', which sum over the channels in BLAS's order.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import kernels as compiled

#: Output channels a pass of the output transform (its ``(m + 2) * m`` rows of intermediate values: 12 KiB of
#: float32 for F(4x4, 3x3)).
CHANNEL_BLOCK = 128


def kernels(m: int) -> tuple[Any, Any]:
    """The channels-last ``(transform_input, transform_output)`` of F(m x m, 3x3), ``m`` 2 or 4, compiled."""
    return _kernels()[m]


@functools.cache
def _kernels() -> dict[int, tuple[Any, Any]]:
    def strip_rows(x, xs, size, low, n, i, m, strip, width):  # type: ignore[no-untyped-def]
        # the m + 2 padded input rows tile row i of sample n reads (rows m*i .. m*i + m + 1) into strip (rows, width,
        # C) contiguous: each pixel's channels from x (element (n, c, h, w) at n*xs[0] + c*xs[1] + h*xs[2] +
        # w*xs[3]), zeros where the padding is (the strip is written whole, so no earlier row stays in it)
        channels, height, span = size[0], size[1], size[2]
        lo_h, lo_w = low[0], low[1]
        unit = xs[1] == 1
        step = np.uint64(xs[1])
        zero = strip.dtype.type(0)
        for r in range(m + 2):
            h = m * i + r - lo_h
            for col in range(width):
                dst = np.uint64((r * width + col) * channels)
                q = col - lo_w
                if h < 0 or h >= height or q < 0 or q >= span:
                    for c in range(np.uint64(channels)):
                        strip[dst + c] = zero
                    continue
                src = np.uint64(n * xs[0] + h * xs[2] + q * xs[3])
                if unit:
                    for c in range(np.uint64(channels)):
                        strip[dst + c] = x[src + c]
                else:
                    for c in range(np.uint64(channels)):
                        strip[dst + c] = x[src + c * step]

    compiled_strip_rows = compiled.compile_kernel(strip_rows)

    def transform_input_last2(x, xs, size, low, n0, n1, i0, i1, tw, v, row):  # type: ignore[no-untyped-def]
        # V[xi, t, c] at v[xi, t*row + c], tile (n, i, j) at t = ((n - n0)*(i1 - i0) + i - i0)*tw + j; per row of
        # tiles: the strip of 4 rows, B^T down its columns into s (4, width, C), then B along each tile's four
        # columns 2j .. 2j + 3 of s into v[4a + b]
        channels = size[0]
        width = 2 * tw + 2
        c_n = np.uint64(channels)
        strip = np.empty(4 * width * channels, dtype=v.dtype)
        s = np.empty(4 * width * channels, dtype=v.dtype)
        flat = v.reshape(-1)
        plane = np.uint64(v.shape[1])
        down = np.uint64(width * channels)  # from one row of the strip (or of s) to the next
        per = i1 - i0
        for n in range(n0, n1):
            for i in range(i0, i1):
                _strip_rows(x, xs, size, low, n, i, 2, strip, width)
                for col in range(width):
                    at = np.uint64(col * channels)
                    for c in range(c_n):
                        a = at + c
                        d0, d1, d2, d3 = (
                            strip[a],
                            strip[a + down],
                            strip[a + np.uint64(2) * down],
                            strip[a + np.uint64(3) * down],
                        )
                        s[a] = d0 - d2
                        s[a + down] = d1 + d2
                        s[a + np.uint64(2) * down] = d2 - d1
                        s[a + np.uint64(3) * down] = d1 - d3
                t0 = ((n - n0) * per + i - i0) * tw
                for j in range(tw):
                    dst0 = np.uint64((t0 + j) * row)
                    for a4 in range(4):
                        at = np.uint64(a4) * down + np.uint64(2 * j * channels)
                        out0 = dst0 + np.uint64(4 * a4) * plane
                        for c in range(c_n):
                            e = at + c
                            e0, e1, e2, e3 = s[e], s[e + c_n], s[e + np.uint64(2) * c_n], s[e + np.uint64(3) * c_n]
                            dst = out0 + c
                            flat[dst] = e0 - e2
                            flat[dst + plane] = e1 + e2
                            flat[dst + np.uint64(2) * plane] = e2 - e1
                            flat[dst + np.uint64(3) * plane] = e1 - e3

    def transform_input_last4(x, xs, size, low, n0, n1, i0, i1, tw, v, row):  # type: ignore[no-untyped-def]
        # as transform_input_last2 with 6 rows, B4^T and B4 (the formulas of winograd4's transform_input4)
        channels = size[0]
        width = 4 * tw + 2
        c_n = np.uint64(channels)
        strip = np.empty(6 * width * channels, dtype=v.dtype)
        s = np.empty(6 * width * channels, dtype=v.dtype)
        flat = v.reshape(-1)
        plane = np.uint64(v.shape[1])
        down = np.uint64(width * channels)
        two, three, four, five = np.uint64(2), np.uint64(3), np.uint64(4), np.uint64(5)
        c2, c4, c5 = v.dtype.type(2), v.dtype.type(4), v.dtype.type(5)
        per = i1 - i0
        for n in range(n0, n1):
            for i in range(i0, i1):
                _strip_rows(x, xs, size, low, n, i, 4, strip, width)
                for col in range(width):
                    at = np.uint64(col * channels)
                    for c in range(c_n):
                        a = at + c
                        d0, d1, d2 = strip[a], strip[a + down], strip[a + two * down]
                        d3, d4, d5 = strip[a + three * down], strip[a + four * down], strip[a + five * down]
                        s[a] = c4 * d0 - c5 * d2 + d4
                        s[a + down] = d3 + d4 - c4 * (d1 + d2)
                        s[a + two * down] = c4 * (d1 - d2) - d3 + d4
                        s[a + three * down] = c2 * (d3 - d1) - d2 + d4
                        s[a + four * down] = c2 * (d1 - d3) - d2 + d4
                        s[a + five * down] = c4 * d1 - c5 * d3 + d5
                t0 = ((n - n0) * per + i - i0) * tw
                for j in range(tw):
                    dst0 = np.uint64((t0 + j) * row)
                    for a6 in range(6):
                        at = np.uint64(a6) * down + np.uint64(4 * j * channels)
                        out0 = dst0 + np.uint64(6 * a6) * plane
                        for c in range(c_n):
                            e = at + c
                            e0, e1, e2 = s[e], s[e + c_n], s[e + two * c_n]
                            e3, e4, e5 = s[e + three * c_n], s[e + four * c_n], s[e + five * c_n]
                            dst = out0 + c
                            flat[dst] = c4 * e0 - c5 * e2 + e4
                            flat[dst + plane] = e3 + e4 - c4 * (e1 + e2)
                            flat[dst + two * plane] = c4 * (e1 - e2) - e3 + e4
                            flat[dst + three * plane] = c2 * (e3 - e1) - e2 + e4
                            flat[dst + four * plane] = c2 * (e1 - e3) - e2 + e4
                            flat[dst + five * plane] = c4 * e1 - c5 * e3 + e5

    def transform_output_last2(mm, row, out, os, size, n0, n1, i0, i1, tw, bias):  # type: ignore[no-untyped-def]
        # M[xi, t, k] at mm[xi, t*row + k]; out flat, element (n, k, oh, ow) at n*os[0] + k + oh*os[2] + ow*os[3]
        # (a channels-last output is contiguous along its channels); size (K, OH, OW). Per tile and block of
        # output channels: A along each of the tile's four rows of M into p and q (row a at 2a and 2a + 1 of
        # pq), then A^T down them plus the bias, into the tile's output pixels inside the output: the order of
        # winograd's channels-first transform_output, so that each value rounds as there
        k_all, oh_n, ow_n = size[0], size[1], size[2]
        block = min(k_all, CHANNEL_BLOCK)
        flat = mm.reshape(-1)
        plane = np.uint64(mm.shape[1])
        pq = np.empty(8 * block, dtype=mm.dtype)
        per = i1 - i0
        bq = np.uint64(block)
        two, three = np.uint64(2), np.uint64(3)
        for n in range(n0, n1):
            for i in range(i0, i1):
                for j in range(tw):
                    t = np.uint64((((n - n0) * per + i - i0) * tw + j) * row)
                    rows_in = min(2, oh_n - 2 * i)
                    cols_in = min(2, ow_n - 2 * j)
                    for k0 in range(0, k_all, block):
                        kb = np.uint64(min(block, k_all - k0))
                        for a4 in range(4):
                            src = t + np.uint64(k0) + np.uint64(4 * a4) * plane
                            dst = np.uint64(2 * a4) * bq
                            for k in range(kb):
                                a = src + k
                                m0, m1, m2, m3 = (
                                    flat[a],
                                    flat[a + plane],
                                    flat[a + two * plane],
                                    flat[a + three * plane],
                                )
                                pq[dst + k] = m0 + m1 + m2
                                pq[dst + bq + k] = m1 - m2 - m3
                        for r in range(rows_in):
                            base = n * os[0] + (2 * i + r) * os[2] + 2 * j * os[3] + k0
                            o0 = np.uint64(base)
                            o1 = np.uint64(base + os[3])
                            for k in range(kb):
                                p0, q0 = pq[k], pq[bq + k]
                                p1, q1 = pq[two * bq + k], pq[three * bq + k]
                                p2, q2 = pq[np.uint64(4) * bq + k], pq[np.uint64(5) * bq + k]
                                p3, q3 = pq[np.uint64(6) * bq + k], pq[np.uint64(7) * bq + k]
                                b = bias[np.uint64(k0) + k]
                                if r == 0:
                                    even, odd = p0 + p1 + p2 + b, q0 + q1 + q2 + b
                                else:
                                    even, odd = p1 - p2 - p3 + b, q1 - q2 - q3 + b
                                out[o0 + k] = even
                                if cols_in == 2:
                                    out[o1 + k] = odd

    def transform_output_last4(mm, row, out, os, size, n0, n1, i0, i1, tw, bias):  # type: ignore[no-untyped-def]
        # as transform_output_last2 with A4^T and A4 (the formulas of winograd4's transform_output4): q (4, 6,
        # block), four output rows and columns a tile
        k_all, oh_n, ow_n = size[0], size[1], size[2]
        block = min(k_all, CHANNEL_BLOCK)
        flat = mm.reshape(-1)
        plane = np.uint64(mm.shape[1])
        q = np.empty(24 * block, dtype=mm.dtype)
        per = i1 - i0
        bq = np.uint64(block)
        c2, c4, c8 = mm.dtype.type(2), mm.dtype.type(4), mm.dtype.type(8)
        p6, p12, p18 = np.uint64(6) * plane, np.uint64(12) * plane, np.uint64(18) * plane
        p24, p30 = np.uint64(24) * plane, np.uint64(30) * plane
        six = np.uint64(6) * bq
        for n in range(n0, n1):
            for i in range(i0, i1):
                for j in range(tw):
                    t = np.uint64((((n - n0) * per + i - i0) * tw + j) * row)
                    rows_in = min(4, oh_n - 4 * i)
                    cols_in = min(4, ow_n - 4 * j)
                    for k0 in range(0, k_all, block):
                        kb = np.uint64(min(block, k_all - k0))
                        for col in range(6):
                            src = t + np.uint64(k0) + np.uint64(col) * plane
                            dst = np.uint64(col) * bq
                            for k in range(kb):
                                a = src + k
                                m0, m1, m2 = flat[a], flat[a + p6], flat[a + p12]
                                m3, m4, m5 = flat[a + p18], flat[a + p24], flat[a + p30]
                                q[dst + k] = m0 + m1 + m2 + m3 + m4
                                q[dst + six + k] = m1 - m2 + c2 * (m3 - m4)
                                q[dst + np.uint64(2) * six + k] = m1 + m2 + c4 * (m3 + m4)
                                q[dst + np.uint64(3) * six + k] = m1 - m2 + c8 * (m3 - m4) + m5
                        for r in range(rows_in):
                            qr = np.uint64(r) * six
                            base = n * os[0] + (4 * i + r) * os[2] + 4 * j * os[3] + k0
                            o0 = np.uint64(base)
                            o1, o2, o3 = o0 + np.uint64(os[3]), o0 + np.uint64(2 * os[3]), o0 + np.uint64(3 * os[3])
                            for k in range(kb):  # the columns of a last tile outside the output not written
                                e = qr + k
                                e0, e1, e2 = q[e], q[e + bq], q[e + np.uint64(2) * bq]
                                e3, e4, e5 = (
                                    q[e + np.uint64(3) * bq],
                                    q[e + np.uint64(4) * bq],
                                    q[e + np.uint64(5) * bq],
                                )
                                b = bias[np.uint64(k0) + k]
                                out[o0 + k] = e0 + e1 + e2 + e3 + e4 + b
                                if cols_in > 1:
                                    out[o1 + k] = e1 - e2 + c2 * (e3 - e4) + b
                                if cols_in > 2:
                                    out[o2 + k] = e1 + e2 + c4 * (e3 + e4) + b
                                if cols_in > 3:
                                    out[o3 + k] = e1 - e2 + c8 * (e3 - e4) + e5 + b

    global _strip_rows
    _strip_rows = compiled_strip_rows
    order = compiled.FASTMATH_IN_ORDER  # each value's arithmetic as written: the same numbers for every chunking
    return {
        2: (
            compiled.compile_kernel(transform_input_last2, order),
            compiled.compile_kernel(transform_output_last2, order),
        ),
        4: (
            compiled.compile_kernel(transform_input_last4, order),
            compiled.compile_kernel(transform_output_last4, order),
        ),
    }


_strip_rows: Any = None  # the compiled strip_rows once _kernels() has run (the transforms call it by this name)

__all__ = ["CHANNEL_BLOCK", "kernels"]
