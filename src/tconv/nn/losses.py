"""Losses: ``value = loss(prediction, target)``, then ``loss.backward()`` is d value / d prediction.

Both are means over every entry, as ``torch.nn.MSELoss`` /
``BCEWithLogitsLoss`` and Keras's losses compute them by default.

Examples
--------
>>> import numpy as np
>>> from tconv import nn
>>> loss = nn.MSELoss()
>>> loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
5.0
>>> loss.backward()
array([1., 3.])
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BCELoss", "BCEWithLogitsLoss", "Loss", "MSELoss", "get"]


class Loss:
    """Base: subclasses define ``_value_and_grad(prediction, target)``."""

    name = "loss"

    def __init__(self) -> None:
        self._grad: np.ndarray | None = None

    def __call__(self, prediction: Any, target: Any) -> float:
        prediction = np.asarray(prediction)
        target = np.asarray(target, dtype=prediction.dtype)
        if prediction.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: prediction and target must have the same shape; received "
                f"{prediction.shape} and {target.shape}"
            )
        value, grad = self._value_and_grad(prediction, target)
        self._grad = grad.astype(prediction.dtype, copy=False)
        return float(value)

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError("call the loss on a prediction before backward()")
        return self._grad

    def _value_and_grad(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError


class MSELoss(Loss):
    """Mean squared error."""

    name = "mse"

    def _value_and_grad(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        diff = prediction - target
        return float(np.mean(diff * diff)), 2.0 * diff / diff.size


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, computed stably: ``max(z, 0) - z t + log(1 + exp(-|z|))``."""

    name = "binary_crossentropy_from_logits"

    def _value_and_grad(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        z = prediction
        e = np.exp(-np.abs(z))  # in (0, 1]: no overflow on either side
        value = np.maximum(z, 0) - z * target + np.log1p(e)
        sigmoid = np.where(z >= 0, 1, e) / (1 + e)
        return float(np.mean(value)), (sigmoid - target) / z.size


class BCELoss(Loss):
    """Binary cross-entropy on probabilities, clipped to ``[eps, 1 - eps]`` (Keras's 1e-7)."""

    name = "binary_crossentropy"

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = eps

    def _value_and_grad(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.clip(prediction, self.eps, 1 - self.eps)
        value = -(target * np.log(p) + (1 - target) * np.log(1 - p))
        grad = (p - target) / (p * (1 - p)) / p.size
        grad = np.where((prediction > self.eps) & (prediction < 1 - self.eps), grad, 0.0)
        return float(np.mean(value)), grad


_NAMED = {
    "mse": MSELoss,
    "mean_squared_error": MSELoss,
    "binary_crossentropy": BCELoss,
    "bce": BCELoss,
    "binary_crossentropy_from_logits": BCEWithLogitsLoss,
    "bce_with_logits": BCEWithLogitsLoss,
}


def get(identifier: Any) -> Loss:
    """A loss from a name (``'mse'``, ``'binary_crossentropy'``, ``'bce_with_logits'``) or a :class:`Loss`."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _NAMED:
        return _NAMED[identifier]()
    raise ValueError(f"loss must be a Loss or one of {sorted(_NAMED)}; received {identifier!r}")
