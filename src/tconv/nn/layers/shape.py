"""Layers that only rearrange values: flatten and reshape."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..module import Module

__all__ = ["FlattenLayer", "ReshapeLayer"]


class FlattenLayer(Module):
    """Merge axes ``start_dim..end_dim``; ``channels_first_to_last`` moves the channels last first (Keras)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1, *, channels_first_to_last: bool = False) -> None:
        super().__init__()
        self.start_dim, self.end_dim, self.channels_first_to_last = start_dim, end_dim, channels_first_to_last
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        if self.channels_first_to_last and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        if self.channels_first_to_last and len(self._shape) > 2:
            moved = (self._shape[0], *self._shape[2:], self._shape[1])
            return np.moveaxis(grad.reshape(moved), -1, 1)
        return grad.reshape(self._shape)


class ReshapeLayer(Module):
    """Reshape every sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int]) -> None:
        super().__init__()
        target = tuple(int(t) for t in target_shape)
        if sum(t == -1 for t in target) > 1 or any(t == 0 or t < -1 for t in target):
            raise ValueError(f"target_shape must hold positive ints and at most one -1; received {target_shape!r}")
        self.target_shape = target
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        sample = math.prod(x.shape[1:])
        known = math.prod(t for t in self.target_shape if t != -1)
        if (-1 in self.target_shape and sample % known) or (-1 not in self.target_shape and known != sample):
            raise ValueError(
                f"cannot reshape samples of shape {x.shape[1:]} ({sample} values) to target_shape {self.target_shape}"
            )
        return x.reshape(x.shape[0], *self.target_shape)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(self._shape)

    def extra_repr(self) -> str:
        return f"{self.target_shape}"
