"""Inverted dropout."""

from __future__ import annotations

import math

import numpy as np

from ...implementations.compiled import elementwise
from ..module import Module, generator

__all__ = ["DropoutLayer"]

#: bit generators whose raw draws are 64 bits (two uniform 32-bit halves each)
_SIXTY_FOUR_BITS = (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64)


class DropoutLayer(Module):
    """Inverted dropout: zero each entry with probability ``rate`` in training, scale the rest by ``1/(1-rate)``."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"the dropout probability must lie in [0, 1]; received {rate!r}")
        self.rate = float(rate)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.rate == 0.0:
            self._mask = None
            return x
        if self.rate == 1.0:
            self._mask = np.zeros(x.shape, dtype=bool)
            return np.zeros_like(x)
        # Each entry is kept where a uniform 32-bit draw is at least rate * 2**32 (the probability to 2**-32,
        # finer than a float32 draw's 2**-24): raw draws of the generator's bit generator, two 32-bit halves
        # each, are half the time of uniform floats, which dominated the layer.
        rng = generator()
        if isinstance(rng.bit_generator, _SIXTY_FOUR_BITS):
            bits = rng.bit_generator.random_raw(-(-x.size // 2))
            draws = np.asarray(bits, dtype=np.uint64).view(np.uint32)[: x.size].reshape(x.shape)
        else:  # a bit generator of 32-bit raw draws (MT19937): whole 32-bit integers
            draws = rng.integers(0, 2**32, size=x.shape, dtype=np.uint32)
        threshold = min(2**32 - 1, math.ceil(self.rate * 2**32))
        scale = self._scale(x.dtype)
        if np.isfinite(scale) and elementwise.supports(x):  # the mask and the product in one pass on the team
            out, self._mask = elementwise.dropout(x, draws, threshold, scale)
            return out
        self._mask = draws >= np.uint32(threshold)
        return self._scaled(x)

    def _scale(self, dtype: np.dtype) -> np.generic:
        """``1/(1-rate)`` in the result's dtype (inf past its range)."""
        with np.errstate(over="ignore"):
            return np.dtype(dtype).type(1.0 / (1.0 - self.rate))

    def _scaled(self, a: np.ndarray) -> np.ndarray:
        """``a`` where the mask keeps it, times ``1/(1-rate)``; zero elsewhere (``(a * mask) * scale``)."""
        assert self._mask is not None
        scale = self._scale(np.result_type(a, self._mask))
        if np.isfinite(scale) and elementwise.supports(a) and self._mask.shape == a.shape:
            return elementwise.masked_scale(a, self._mask, scale)
        out = np.multiply(a, self._mask)
        if np.isfinite(scale):
            out *= scale
        else:  # a scale past the dtype's range (float16, rate within 2e-5 of 1): the dropped entries stay zero
            np.multiply(out, scale, out=out, where=self._mask)
        return out

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        if self._mask is None:
            return grad
        if self.rate == 1.0:
            return np.zeros_like(grad)
        return self._scaled(grad)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
