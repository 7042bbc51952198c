"""Constraints applied to a weight after each optimizer step, by Keras's names and rules.

They see the weight in the layer's Keras layout, so ``axis`` means what it
means in Keras (``axis=[0, 1, 2]`` for a channels-last ``Conv2D`` kernel: one
norm per output filter).

Examples
--------
>>> import numpy as np
>>> from tconv.nn import constraints
>>> w = np.array([[3.0, 0.0], [4.0, 1.0]])
>>> constraints.max_norm(1.0)(w).round(3)
array([[0.6, 0. ],
       [0.8, 1. ]])
>>> constraints.non_neg()(np.array([-1.0, 2.0]))
array([0., 2.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._identifiers import resolve

__all__ = ["MaxNorm", "NonNeg", "UnitNorm", "get", "max_norm", "non_neg", "unit_norm"]

_EPSILON = 1e-7  # Keras's backend epsilon


def _axis(axis: int | Sequence[int]) -> int | tuple[int, ...]:
    return axis if isinstance(axis, int) else tuple(axis)


class MaxNorm:
    """Rescale so that the norm along ``axis`` is at most ``max_value``."""

    def __init__(self, max_value: float = 2.0, axis: int | Sequence[int] = 0) -> None:
        if max_value <= 0:
            raise ValueError(f"max_value must be positive; received {max_value}")
        self.max_value, self.axis = float(max_value), _axis(axis)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        norms = np.sqrt(np.sum(np.square(w), axis=self.axis, keepdims=True))
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (_EPSILON + norms))


class UnitNorm:
    """Rescale to unit norm along ``axis``."""

    def __init__(self, axis: int | Sequence[int] = 0) -> None:
        self.axis = _axis(axis)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return w / (_EPSILON + np.sqrt(np.sum(np.square(w), axis=self.axis, keepdims=True)))


class NonNeg:
    """Zero the negative entries."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return np.where(w >= 0, w, 0.0).astype(w.dtype, copy=False)


def max_norm(max_value: float = 2.0, axis: int | Sequence[int] = 0) -> MaxNorm:
    return MaxNorm(max_value, axis)


def unit_norm(axis: int | Sequence[int] = 0) -> UnitNorm:
    return UnitNorm(axis)


def non_neg() -> NonNeg:
    return NonNeg()


def get(identifier: Any) -> Any:
    """``None``, a name (``'max_norm'``, ``'non_neg'``, ``'unit_norm'``) or a callable."""
    named = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm}
    return resolve(identifier, named, "constraint", callable, "a callable")
