"""Element-wise activations, by name, with their derivatives: the :class:`ActivationLayer` and the fused
``activation=`` of the convolution and dense layers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...implementations.compiled import elementwise
from ..module import Module

__all__ = ["ACTIVATIONS", "ActivationLayer", "activate", "activation_function", "sigmoid", "times_slope"]


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


def activate(name: str, x: np.ndarray, a: float) -> np.ndarray:
    """The activation ``name`` of ``x`` in ``x``'s dtype: ReLU and LeakyReLU in one compiled pass on the team
    where :func:`.elementwise.supports` the array (NumPy's numbers to the bit), else :data:`ACTIVATIONS`'s."""
    if name in elementwise.ACTIVATION_CODES and elementwise.supports(x):
        return elementwise.activation(name, x, a)
    return ACTIVATIONS[name][0](x, a).astype(x.dtype, copy=False)


def times_slope(name: str, grad: np.ndarray, x: np.ndarray, y: np.ndarray, a: float) -> np.ndarray:
    """``grad`` times the activation's derivative at ``x`` (``y`` its output), as :func:`activate` computes."""
    if name in elementwise.ACTIVATION_CODES and elementwise.supports(grad, x):
        return elementwise.activation_grad(name, grad, x, a)
    return grad * ACTIVATIONS[name][1](x, y, a)


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
        self._x, self._y = x, activate(self.function, x, self.negative_slope)
        return self._y

    def applied_before(self, y: np.ndarray) -> None:
        """This call's activation was applied by the layer before it, in that layer's pass, with ``y`` the result
        (:class:`.Sequential`, after :meth:`.BatchNorm.fused_activation`): the layer takes its shapes from y, and
        its backward the slope at y, which for ReLU, and LeakyReLU of a negative slope at least 0, is the slope at
        its input (``y > 0`` exactly where the input is; a NaN stays one), so the same numbers as unfused."""
        self._x = self._y = y
        self.input_shape = self.output_shape = (None, *y.shape[1:])

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._x is not None and self._y is not None, "backward called before forward"
        return times_slope(self.function, grad, self._x, self._y, self.negative_slope)

    def extra_repr(self) -> str:
        slope = f", negative_slope={self.negative_slope}" if self.function == "leaky_relu" else ""
        return f"{self.function!r}{slope}"
