"""Max pooling (with explicit or ``'same'`` padding) and adaptive or global average pooling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import shapes
from ..._arguments import ints_per_axis
from ...implementations.compiled import kernels
from ...implementations.compiled import pooling as compiled
from ..module import Module
from .base import apply_per_axis, check_spatial_rank, from_channels_first, to_channels_first

__all__ = ["AveragePool", "MaxPool"]


class MaxPool(Module):
    """Max pooling over ``rank`` spatial axes with explicit ``(lo, hi)`` padding (padded entries never win).

    ``padding`` is an int / per-axis ints (PyTorch: at most half the kernel), or
    ``'valid'``/``'same'`` (Keras, TensorFlow's rule for the split).
    """

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, *, rank: int = 2, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.rank = rank
        self.kernel_size = ints_per_axis(kernel_size, rank, "kernel_size", minimum=1, broadcast_one=True)
        self.stride = (
            self.kernel_size if stride is None else ints_per_axis(stride, rank, "stride", minimum=1, broadcast_one=True)
        )
        if isinstance(padding, str):
            if padding.lower() not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
            self.padding: Any = padding.lower()
        else:
            pads = ints_per_axis(padding, rank, "padding", broadcast_one=True)
            if any(p < 0 or 2 * p > k for p, k in zip(pads, self.kernel_size)):
                raise ValueError(
                    "padding should be at most half the kernel size; received "
                    f"padding={pads}, kernel_size={self.kernel_size}"
                )
            self.padding = pads
        self.channels_last = channels_last
        self._cache: tuple[Any, ...] | None = None

    def _pairs(self, spatial: Sequence[int]) -> list[tuple[int, int]]:
        if self.padding == "valid":
            return [(0, 0)] * self.rank
        if self.padding == "same":
            return [shapes.conv_same_padding(n, k, stride=s) for n, k, s in zip(spatial, self.kernel_size, self.stride)]
        return [(p, p) for p in self.padding]

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_spatial_rank(self, x, self.rank)
        x = to_channels_first(x, self.channels_last)
        pairs = self._pairs(x.shape[2:])
        padded = x
        if any(lo or hi for lo, hi in pairs):  # padded entries never win: -inf, or an integer type's minimum
            low = np.iinfo(x.dtype).min if np.issubdtype(x.dtype, np.integer) else -np.inf
            padded = np.pad(x, [(0, 0), (0, 0), *pairs], constant_values=low)
        for n, k in zip(padded.shape[2:], self.kernel_size):
            if n < k:
                raise ValueError(
                    f"the pooling window {self.kernel_size} is larger than the padded input {padded.shape[2:]}"
                )
        out_shape = tuple(
            shapes.conv_output_size(n, k, stride=s) for n, k, s in zip(padded.shape[2:], self.kernel_size, self.stride)
        )
        if self._one_pass(padded):  # windows apart, float: one compiled pass (the same numbers as below)
            lift = (slice(None), slice(None)) + (None,) * (3 - self.rank)
            three = self._three
            y, arg = compiled.max_pool(padded[lift], three(self.kernel_size), three(self.stride), three(out_shape))
            y, arg = y.reshape(y.shape[:2] + out_shape), arg.reshape(y.shape[:2] + out_shape)
            self._cache = (arg, padded.shape, pairs, x.shape, out_shape)
            return from_channels_first(y, self.channels_last)
        # One strided view per window offset (row-major over the window): the maximum is a running maximum (NaN
        # propagates; np.maximum(later, y) returns y on ties, so a zero maximum keeps its first sign), its index
        # the first offset that holds it (or a NaN), as np.argmax over each window.
        # The index is kept in the smallest unsigned type that holds it (one byte for windows of up to 256).
        taps = [padded[self._offset(t, out_shape)] for t in np.ndindex(*self.kernel_size)]
        y = taps[0].copy()
        for tap in taps[1:]:
            np.maximum(tap, y, out=y)
        nan = y.dtype.kind in "fc" and bool(np.isnan(y).any())
        # Going up from the first offset, each adds its index where it holds the maximum and none before it did
        # (arithmetic on whole arrays: a masked copy ran about seven times slower).
        index_type = np.min_scalar_type(len(taps) - 1)
        arg = np.zeros(y.shape, dtype=index_type)
        found = np.zeros(y.shape, dtype=bool)
        hit = np.empty(y.shape, dtype=bool)
        for k in range(len(taps) - 1):  # the last offset holds the maximum wherever no earlier one does
            np.equal(taps[k], y, out=hit)
            if nan:
                hit |= np.isnan(taps[k])
            np.greater(hit, found, out=hit)  # and not found before
            found |= hit
            if k:
                arg += hit * index_type.type(k)
        np.logical_not(found, out=found)
        arg += found * index_type.type(len(taps) - 1)
        self._cache = (arg, padded.shape, pairs, x.shape, out_shape)
        return from_channels_first(y, self.channels_last)

    def _one_pass(self, x: np.ndarray) -> bool:
        """Whether the compiled pass takes this pooling (:func:`.compiled.pooling.max_pool`): windows apart (a kernel at
        most the stride on every axis), a float32 or float64 x, numba available."""
        return (
            all(k <= s for k, s in zip(self.kernel_size, self.stride))
            and x.dtype in (np.float32, np.float64)
            and 1 <= self.rank <= 3
            and kernels.available()
        )

    def _three(self, sizes: Sequence[int]) -> tuple[int, int, int]:
        """Per-axis sizes of this pooling's rank as three axes (ones first), as the compiled pass sees x."""
        return (1, 1, 1, *sizes)[-3:]  # type: ignore[return-value]

    def _offset(self, tap: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[slice, ...]:
        """The positions window offset ``tap`` reads in every window (a strided slice of the padded input)."""
        return (
            slice(None),
            slice(None),
            *(slice(t, t + s * (o - 1) + 1, s) for t, s, o in zip(tap, self.stride, out_shape)),
        )

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._cache is not None, "backward called before forward"
        arg, padded_shape, pairs, in_shape, out_shape = self._cache
        grad = to_channels_first(grad, self.channels_last)
        crop = (slice(None), slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(pairs, in_shape[2:])))
        if self._one_pass(grad) and grad.shape == arg.shape:  # each window: 0 + the gradient at its winner, else 0
            three = self._three
            shape = padded_shape[:2] + three(padded_shape[2:])
            windows = (three(self.kernel_size), three(self.stride))
            full = compiled.max_pool_grad(grad.reshape(grad.shape[:2] + three(out_shape)), arg, shape, *windows)
            return from_channels_first(full.reshape(padded_shape)[crop], self.channels_last)
        full = np.zeros(padded_shape, dtype=grad.dtype)
        # Each window offset in turn adds to the positions it reads (a strided view in which no position appears
        # twice) the gradient of the windows it won: the gradient times the mask of its wins, added so that a
        # negative gradient times a lost window leaves +0.0 (as the loops' untouched zeros), not -0.0. A gradient
        # holding inf or NaN (whose product with a lost window would be NaN) is added under the mask instead.
        masked = not np.isfinite(grad).all() if grad.dtype.kind in "fc" else False
        overlap = any(k > s for k, s in zip(self.kernel_size, self.stride))
        zero = grad.dtype.type(0)
        won = np.empty(arg.shape, dtype=bool)
        part = np.empty(arg.shape, dtype=grad.dtype)
        for k, tap in enumerate(np.ndindex(*self.kernel_size)):
            np.equal(arg, k, out=won)
            view = full[self._offset(tap, out_shape)]
            if masked:
                np.add(view, grad, out=view, where=won)
            else:
                np.multiply(grad, won, out=part)
                np.add(view if overlap else zero, part, out=view)  # windows apart: each position written once
        return from_channels_first(full[crop], self.channels_last)


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
    """Rows average PyTorch's adaptive windows: ``[floor(i n / o), ceil((i + 1) n / o))``."""
    matrix = np.zeros((out, size))
    for i in range(out):
        start, stop = (i * size) // out, -((-(i + 1) * size) // out)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


class AveragePool(Module):
    """Adaptive average pooling to ``output_size`` (PyTorch), or global (``output_size=None``; Keras)."""

    def __init__(
        self, output_size: Any = None, *, rank: int = 2, channels_last: bool = False, keepdims: bool = True
    ) -> None:
        super().__init__()
        self.rank, self.channels_last, self.keepdims = rank, channels_last, keepdims
        if output_size is None:
            self.output_size: tuple[int | None, ...] = (1,) * rank
        else:
            sizes = output_size if isinstance(output_size, Sequence) else (output_size,) * rank
            if len(sizes) != rank or any(s is not None and (not isinstance(s, int) or s < 1) for s in sizes):
                raise ValueError(f"output_size must be {rank} positive ints (or None); received {output_size!r}")
            self.output_size = tuple(sizes)
        self._cache: tuple[Any, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_spatial_rank(self, x, self.rank)
        x = to_channels_first(x, self.channels_last)
        matrices = [_adaptive_matrix(n, n if o is None else o) for n, o in zip(x.shape[2:], self.output_size)]
        y = apply_per_axis(x, matrices, 2)
        self._cache = (matrices, y.shape)
        y = from_channels_first(y, self.channels_last)
        return y if self.keepdims else y.reshape(y.shape[0], -1)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._cache is not None, "backward called before forward"
        matrices, shape = self._cache
        if not self.keepdims:
            grad = grad.reshape(from_channels_first(np.empty(shape, dtype=bool), self.channels_last).shape)
        grad = to_channels_first(grad, self.channels_last)
        grad = apply_per_axis(grad, [m.T for m in matrices], 2)
        return from_channels_first(grad, self.channels_last)
