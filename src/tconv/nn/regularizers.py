"""Weight and activity penalties, by Keras's names and values.

A regularizer is called on an array and returns its penalty;
``.gradient(array)`` is the penalty's gradient. Layers add both to the loss
(:meth:`tconv.nn.Module.regularization_loss`) and to the parameters' gradients
(in ``backward``).

Examples
--------
>>> import numpy as np
>>> from tconv.nn import regularizers
>>> reg = regularizers.l1_l2(l1=0.5, l2=0.25)
>>> w = np.array([1.0, -2.0])
>>> reg(w), reg.gradient(w)
(2.75, array([ 1. , -1.5]))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._identifiers import resolve

__all__ = ["L1L2", "get", "l1", "l1_l2", "l2"]


class L1L2:
    """``l1 * sum(|w|) + l2 * sum(w**2)`` (no factor 1/2, as Keras)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        for name, value in (("l1", l1), ("l2", l2)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative number; received {value!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: np.ndarray) -> float:
        return float(self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum())

    def gradient(self, w: np.ndarray) -> np.ndarray:
        return self.l1 * np.sign(w) + 2.0 * self.l2 * w

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1}, l2={self.l2})"


def l1(l1: float = 0.01) -> L1L2:
    """Keras's ``l1``: ``l1 * sum(|w|)``."""
    return L1L2(l1=l1)


def l2(l2: float = 0.01) -> L1L2:
    """Keras's ``l2``: ``l2 * sum(w**2)``."""
    return L1L2(l2=l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Both penalties (defaults as the name ``'l1_l2'`` gives in Keras)."""
    return L1L2(l1=l1, l2=l2)


def get(identifier: Any) -> Any:
    """``None``, a name (``'l1'``, ``'l2'``, ``'l1_l2'``) or a regularizer object."""
    named = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
    return resolve(identifier, named, "regularizer", _is_regularizer, "an object with __call__ and gradient")


def _is_regularizer(candidate: Any) -> bool:
    return callable(candidate) and hasattr(candidate, "gradient")
