"""Element-wise activations, by name, with their derivatives: the :class:`ActivationLayer` and the fused
``activation=`` of the convolution and dense layers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..module import Module

__all__ = ["ACTIVATIONS", "ActivationLayer", "activation_function", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def _leaky_relu(x: np.ndarray, a: float) -> np.ndarray:
    """``x`` where ``x > 0``, else ``a * x``. For ``0 < a <= 1`` that is ``max(x, a*x)`` (the same numbers):
    ``np.where`` on a mask of random signs runs about twenty times slower, its loop branching per element."""
    if 0.0 < a <= 1.0:  # (a = 0 would turn an infinite x into NaN: 0 * inf)
        return np.maximum(x, a * x)
    return np.where(x > 0, x, a * x)


def _leaky_relu_slope(x: np.ndarray, y: np.ndarray, a: float) -> np.ndarray:
    """1 where ``x > 0``, else ``a`` (in ``x``'s dtype): for ``0 <= a <= 1``, ``max(x > 0, a)`` (no branching)."""
    if 0.0 <= a <= 1.0:
        return np.maximum(x > 0, np.asarray(a, dtype=x.dtype), dtype=x.dtype)
    return np.where(x > 0, 1.0, a).astype(x.dtype)


# name -> (f(x), f'(x, y) given the input x and output y)
ACTIVATIONS: dict[str, tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]] = {
    "linear": (lambda x, a: x, lambda x, y, a: np.ones_like(x)),
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, y, a: (x > 0).astype(x.dtype)),
    "leaky_relu": (_leaky_relu, _leaky_relu_slope),
    "tanh": (lambda x, a: np.tanh(x), lambda x, y, a: 1 - y * y),
    "sigmoid": (lambda x, a: sigmoid(x), lambda x, y, a: y * (1 - y)),
    "softplus": (lambda x, a: np.logaddexp(0, x), lambda x, y, a: sigmoid(x)),
}


def activation_function(name: str | None) -> str:
    """Check an activation name (``None`` means ``'linear'``)."""
    if name is None:
        return "linear"
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} or None; received {name!r}")
    return name


class ActivationLayer(Module):
    """An element-wise activation (``negative_slope`` for ``leaky_relu``)."""

    def __init__(self, name: str, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.function = activation_function(name)
        if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
            raise TypeError(f"negative_slope must be a number; received {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        f, _ = ACTIVATIONS[self.function]
        self._x, self._y = x, f(x, self.negative_slope).astype(x.dtype, copy=False)
        return self._y

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        _, df = ACTIVATIONS[self.function]
        return grad * df(self._x, self._y, self.negative_slope)

    def extra_repr(self) -> str:
        slope = f", negative_slope={self.negative_slope}" if self.function == "leaky_relu" else ""
        return f"{self.function!r}{slope}"
