"""Batch normalization, with PyTorch's and Keras's conventions for the running averages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .. import regularizers as regularizers_module
from ..module import Module
from .base import make_parameter, positive_int

__all__ = ["BatchNorm"]


class BatchNorm(Module):
    """Batch normalization over every axis but ``axis``.

    ``momentum`` is the weight of the new batch in the running averages
    (PyTorch's convention; Keras's ``momentum`` m is ``1 - m`` here), and
    ``unbiased_running_var`` says whether the running variance takes the
    unbiased batch variance (PyTorch) or the biased one (Keras). A subclass with
    ``statistics_are_buffers`` keeps the running statistics as PyTorch's buffers (not
    counted as parameters); otherwise they are Keras's non-trainable weights.
    """

    statistics_are_buffers: ClassVar[bool] = False
    weight: Any  # a Parameter, or None without scale (PyTorch's affine=False)
    bias: Any  # a Parameter, or None without center

    def __init__(
        self,
        num_features: int | None = None,
        *,
        axis: int = 1,
        eps: float = 1e-5,
        momentum: float = 0.1,
        unbiased_running_var: bool = True,
        center: bool = True,
        scale: bool = True,
        expected_rank: Sequence[int] | None = None,
        gamma_regularizer: Any = None,
        beta_regularizer: Any = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1]; received {momentum}")
        if eps <= 0:
            raise ValueError(f"eps must be positive; received {eps}")
        self.axis, self.eps, self.momentum = axis, float(eps), float(momentum)
        self.unbiased_running_var, self.center, self.scale = unbiased_running_var, center, scale
        self.expected_rank = None if expected_rank is None else tuple(expected_rank)
        self.gamma_regularizer = regularizers_module.get(gamma_regularizer)
        self.beta_regularizer = regularizers_module.get(beta_regularizer)
        self.declared_input_shape = None if input_shape is None else tuple(input_shape)
        self.num_features: int | None = None
        self._cache: tuple[Any, ...] | None = None
        self.built = False
        if num_features is not None:
            self._create(positive_int(num_features, "num_features"))

    def build(self, input_shape: Sequence[int | None]) -> None:
        self._check_rank(len(input_shape))
        channels = input_shape[self.axis]
        assert channels is not None
        self._create(int(channels))

    def _check_rank(self, ndim: int) -> None:
        if self.expected_rank is not None and ndim not in self.expected_rank:
            raise ValueError(
                f"{type(self).__name__} expects inputs with {' or '.join(map(str, self.expected_rank))} axes; "
                f"received {ndim}"
            )

    def _create(self, num_features: int) -> None:
        self.num_features = num_features
        c = (num_features,)
        # Without scale or center, weight or bias is None, as in PyTorch's BatchNorm2d(affine=False).
        self.weight = make_parameter(self, c, "ones", regularizer=self.gamma_regularizer) if self.scale else None
        self.bias = make_parameter(self, c, "zeros", regularizer=self.beta_regularizer) if self.center else None
        buffer = self.statistics_are_buffers
        self.running_mean = make_parameter(self, c, "zeros", trainable=False, buffer=buffer)
        self.running_var = make_parameter(self, c, "ones", trainable=False, buffer=buffer)
        self.built = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_rank(x.ndim)
        axis = self.axis % x.ndim
        if x.shape[axis] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_features} channels on axis {self.axis}; received shape "
                f"{x.shape}"
            )
        reduce = tuple(a for a in range(x.ndim) if a != axis)
        view = [1] * x.ndim
        view[axis] = -1
        count = x.size // x.shape[axis]
        if self.training:
            mean = x.mean(axis=reduce)
            var = x.var(axis=reduce)
            m = self.momentum
            unbiased = var * count / max(1, count - 1) if self.unbiased_running_var else var
            self.running_mean.value = ((1 - m) * self.running_mean.value + m * mean).astype(self.dtype)
            self.running_var.value = ((1 - m) * self.running_var.value + m * unbiased).astype(self.dtype)
        else:
            mean, var = self.running_mean.value, self.running_var.value
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat = (x - mean.reshape(view)) * inv_std.reshape(view)
        gamma = self.weight.value if self.scale else np.ones(x.shape[axis], x.dtype)
        y = x_hat * gamma.reshape(view)
        if self.center:
            y = y + self.bias.value.reshape(view)
        self._cache = (x_hat, inv_std, gamma, reduce, view, count, self.training)
        return y.astype(x.dtype, copy=False)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._cache is not None, "backward called before forward"
        x_hat, inv_std, gamma, reduce, view, _, training = self._cache
        if self.scale:
            self.weight.accumulate((grad * x_hat).sum(axis=reduce))
        if self.center:
            self.bias.accumulate(grad.sum(axis=reduce))
        g_hat = grad * gamma.reshape(view)
        if not training:
            return g_hat * inv_std.reshape(view)
        # d x = inv_std * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)), means over the reduced axes
        mean_g = g_hat.mean(axis=reduce, keepdims=True)
        mean_gx = (g_hat * x_hat).mean(axis=reduce, keepdims=True)
        return (g_hat - mean_g - x_hat * mean_gx) * inv_std.reshape(view)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
