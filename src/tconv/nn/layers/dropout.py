"""Inverted dropout."""

from __future__ import annotations

import math

import numpy as np

from ..module import Module, generator

__all__ = ["DropoutLayer"]


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
        bits = generator().bit_generator.random_raw(-(-x.size // 2))
        draws = np.asarray(bits, dtype=np.uint64).view(np.uint32)[: x.size].reshape(x.shape)
        self._mask = draws >= np.uint32(min(2**32 - 1, math.ceil(self.rate * 2**32)))
        return self._scaled(x)

    def _scaled(self, a: np.ndarray) -> np.ndarray:
        """``a`` where the mask keeps it, times ``1/(1-rate)``; zero elsewhere."""
        assert self._mask is not None
        out = np.multiply(a, self._mask)
        out *= out.dtype.type(1.0 / (1.0 - self.rate))
        return out

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        if self._mask is None:
            return grad
        if self.rate == 1.0:
            return np.zeros_like(grad)
        return self._scaled(grad)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
