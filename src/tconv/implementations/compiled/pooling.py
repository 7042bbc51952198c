"""Max pooling whose windows do not overlap (the kernel at most the stride on every axis: every ``MaxPool2d(2)``),
forward and backward, each in one compiled pass run on the team (:func:`.elementwise.run_pass`), x seen as ``(N, C, D,
H, W)`` with any strides (a channels-last x in place, a lower rank with axes of one). The numbers are those of
:class:`tconv.nn.MaxPool`'s NumPy expressions, byte for byte, on x86 (where ``np.maximum`` keeps the second of two
equal values, so that a zero maximum keeps its first sign; NumPy on ARM returns +0.0 for a tie of zeros): the
running ``np.maximum(tap, y)`` over the window's taps in row-major order (a NaN is returned, so a window's last NaN
is its maximum), the index of the first tap that holds the maximum (or a NaN), and the gradient ``0 + g`` at the
winner (a -0.0 gradient gives +0.0), +0.0 elsewhere. The layer keeps its NumPy expressions for overlapping windows
(a position in several windows gets its gradient summed in the taps' order there), other dtypes, or without numba.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import elementwise, kernels

__all__ = ["max_pool", "max_pool_grad"]


def max_pool(
    padded: np.ndarray, kernel: tuple[int, int, int], stride: tuple[int, int, int], out: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(y, arg)`` of a max pooling of ``padded`` (N, C, D, H, W; any strides), windows of ``kernel`` every
    ``stride`` (each at least the kernel: no input in two windows) giving ``out`` (D, H, W) outputs a plane, in one
    pass: each output the running ``np.maximum(tap, y)`` over its window's taps in row-major order (a NaN is
    returned, so the last NaN stays; on a tie the earlier value stays, so a zero maximum keeps its first sign), and
    ``arg`` the index of the first tap that holds the maximum (or a NaN), in the smallest unsigned type that holds
    the last index: the numbers of :class:`tconv.nn.MaxPool`'s NumPy expressions."""
    batch, channels = padded.shape[:2]
    taps = kernel[0] * kernel[1] * kernel[2]
    y = np.empty((batch * channels, *out), dtype=padded.dtype)
    arg = np.empty((batch * channels, *out), dtype=np.min_scalar_type(taps - 1))
    kernel_ = _max_pool_kernel(kernel[2], stride[2])
    arrays = (padded, y, arg, _rows(kernel, stride), channels)
    elementwise.run_pass(kernel_, batch * channels, padded.size + 2 * y.size, *arrays)
    return y.reshape(batch, channels, *out), arg.reshape(batch, channels, *out)


def max_pool_grad(
    grad: np.ndarray,
    arg: np.ndarray,
    padded_shape: tuple[int, ...],
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int],
) -> np.ndarray:
    """The gradient of :func:`max_pool` over its padded input ``(N, C, D, H, W)``: in every window, ``0 + grad``
    at the tap that won it and 0 elsewhere (a -0.0 gradient gives +0.0, as NumPy's expressions; the windows apart,
    so each position is written once, and positions in no window stay 0)."""
    full = np.zeros(padded_shape, dtype=grad.dtype)
    jobs = padded_shape[0] * padded_shape[1]
    out = grad.shape[2:]
    arrays = (
        np.ascontiguousarray(grad).reshape(jobs, *out),
        arg.reshape(jobs, *out),
        full.reshape(jobs, *padded_shape[2:]),
        _rows(kernel, stride),
    )
    elementwise.run_pass(_max_pool_grad_kernel(kernel[2], stride[2]), jobs, full.size + 2 * grad.size, *arrays)
    return full


def _rows(kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> np.ndarray:
    """The window's extent and step along the first two axes, as the kernels read them (the last axis's are
    constants of their compiled code)."""
    return np.array([kernel[0], kernel[1], stride[0], stride[1]], dtype=np.int64)


@functools.lru_cache(maxsize=64)
def _max_pool_kernel(width: int, step: int) -> Any:
    """The max pooling kernel for windows ``width`` wide along the last axis every ``step``: both constants of the
    compiled code (in its closure), so that the loads along a row of outputs vectorise at their constant step and
    a window row's taps are unrolled, each output's maximum and index kept in registers across them."""

    def max_pool(planes, y, arg, rows, channels, start, stop):  # type: ignore[no-untyped-def]
        # planes (N, C, D, H, W), any strides; y and arg (N * C, outputs); a job is one plane
        k0, k1, s0, s1 = rows[0], rows[1], rows[2], rows[3]
        o0, o1, o2 = y.shape[1], y.shape[2], y.shape[3]
        for job in range(start, stop):
            plane = planes[job // channels, job % channels]
            for a in range(o0):
                for b in range(o1):
                    best, at = y[job, a, b], arg[job, a, b]
                    first = plane[a * s0, b * s1]
                    for c in range(o2):
                        best[c] = first[c * step]
                        at[c] = 0
                    for i in range(k0):
                        for j in range(k1):
                            row = plane[a * s0 + i, b * s1 + j]
                            base = (i * k1 + j) * width
                            for c in range(o2):
                                m = best[c]
                                t = np.int64(at[c])
                                for k in range(width):
                                    if base + k > 0:  # np.maximum(v, m): a NaN v is returned
                                        v = row[c * step + k]
                                        t = base + k if (v != v and m == m) or v > m else t  # first NaN, or larger
                                        m = v if v != v or v > m else m
                                best[c] = m
                                at[c] = t

    return kernels.compile_kernel(max_pool, fastmath=False, error_model="numpy")


@functools.lru_cache(maxsize=64)
def _max_pool_grad_kernel(width: int, step: int) -> Any:
    """:func:`max_pool`'s gradient kernel, for windows ``width`` wide every ``step`` (constants, as there)."""

    def max_pool_grad(grad, arg, full, rows, start, stop):  # type: ignore[no-untyped-def]
        # every position of every window written, row by row: 0 + the gradient at the window's winner, else 0
        k0, k1, s0, s1 = rows[0], rows[1], rows[2], rows[3]
        o0, o1, o2 = grad.shape[1], grad.shape[2], grad.shape[3]
        zero = grad.dtype.type(0)
        for job in range(start, stop):
            for a in range(o0):
                for b in range(o1):
                    gs, at = grad[job, a, b], arg[job, a, b]
                    for i in range(k0):
                        for j in range(k1):
                            row = full[job, a * s0 + i, b * s1 + j]
                            base = (i * k1 + j) * width
                            for c in range(o2):
                                t = np.int64(at[c])
                                for k in range(width):
                                    row[c * step + k] = zero + gs[c] if t == base + k else zero

    return kernels.compile_kernel(max_pool_grad, fastmath=False, error_model="numpy")
