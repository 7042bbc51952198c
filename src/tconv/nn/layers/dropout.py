"""Inverted dropout."""

from __future__ import annotations

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
            self._mask = np.zeros_like(x)
        else:
            self._mask = (generator().random(x.shape) >= self.rate).astype(x.dtype) / (1.0 - self.rate)
        return x * self._mask

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        return grad if self._mask is None else grad * self._mask

    def extra_repr(self) -> str:
        return f"rate={self.rate}"
