"""Batch normalization, with PyTorch's and Keras's conventions for the running averages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ...implementations.compiled import elementwise
from .. import regularizers as regularizers_module
from ..module import Module
from .activations import ActivationLayer
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

    def fused_activation(self, follower: Module, x: Any) -> tuple[str, float] | None:
        """The activation of ``follower`` (a ReLU, or a LeakyReLU of negative slope at least 0, called on this
        layer's output) that this layer's training forward can apply in its own pass on ``x``, with its negative
        slope, or None: where x goes through the compiled passes (:func:`.elementwise.supports`, in this layer's
        dtype), and neither layer has an activity regularizer (:class:`.Sequential` asks, then runs the two forward
        as one and tells the follower, whose backward takes the slope from the output: :meth:`.ActivationLayer.
        applied_before`)."""
        if not (
            self.training
            and isinstance(follower, ActivationLayer)
            # the layers' own methods, which the one pass stands for (a subclass's overrides run as written)
            and type(self).forward is BatchNorm.forward
            and type(follower).forward is ActivationLayer.forward
            and type(follower)._backward is ActivationLayer._backward
            and type(follower).__call__ is Module.__call__
            and follower.function in elementwise.ACTIVATION_CODES
            and (follower.function == "relu" or follower.negative_slope >= 0)
            and self.activity_regularizer is None
            and follower.activity_regularizer is None
            and isinstance(x, np.ndarray)
            and x.dtype == self.dtype == follower.dtype
            and x.ndim > 0
            and x.size > 0
            and elementwise.supports(x)
            and (not self.built or x.shape[self.axis % x.ndim] == self.num_features)
            and (not self.built or all(p is None or p.value.dtype == x.dtype for p in (self.weight, self.bias)))
        ):
            return None
        return follower.function, 0.0 if follower.function == "relu" else follower.negative_slope

    def forward(self, x: np.ndarray, activation: tuple[str, float] | None = None) -> np.ndarray:
        """Batch normalization of ``x``; with ``activation`` (a name and negative slope that
        :meth:`fused_activation` gave for this x), that activation of the result, applied in the same pass (its
        slope is then the follower's to apply in the backward, as it is unfused). In training, the compiled passes
        keep x itself for the backward, as the activation layers do: x changed in place before the backward
        changes the gradients."""
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
        gamma = self.weight.value if self.scale else np.ones(x.shape[axis], x.dtype)
        beta = self.bias.value if self.center else None
        own_dtype = all(p is None or p.dtype == x.dtype for p in (gamma, beta))
        compiled = x.size > 0 and elementwise.supports(x) and own_dtype
        if activation is not None and not (compiled and self.training):
            raise ValueError(f"{type(self).__name__}: a fused activation needs the compiled training passes")
        if self.training:
            if compiled:  # float64 sums in one pass on the team (shifted: elementwise.batch_statistics)
                mean, var = elementwise.batch_statistics(x, axis)
            else:
                mean = x.mean(axis=reduce)
                centred = x - mean.reshape(view)
                var = _mean_square(centred, reduce, count)
            m = self.momentum
            unbiased = var * count / max(1, count - 1) if self.unbiased_running_var else var
            self.running_mean.value = ((1 - m) * self.running_mean.value + m * mean).astype(self.dtype)
            self.running_var.value = ((1 - m) * self.running_var.value + m * unbiased).astype(self.dtype)
        else:
            mean, var = self.running_mean.value, self.running_var.value
            if not compiled:
                centred = x - mean.reshape(view)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        if compiled:  # y in one pass, in x's dtype; x_hat is made again from x by the backward
            mean_x, inv_std = (np.asarray(c).astype(x.dtype) for c in (mean, inv_std))
            name, slope = (None, 0.0) if activation is None else activation
            y = elementwise.normalize(x, axis, mean_x, inv_std, gamma, beta, name, slope)
            normalized: Any = (x, mean_x, inv_std)
        else:
            # In place where the arrays are this layer's own (the numbers of x.var and of the unfused expressions).
            normalized = x_hat = _times(centred, inv_std.reshape(view))
            y = x_hat * gamma.reshape(view)
            if beta is not None:
                y = _plus(y, beta.reshape(view))
        self._cache = (normalized, inv_std, gamma, reduce, view, count, self.training, axis)
        return y.astype(x.dtype, copy=False)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._cache is not None, "backward called before forward"
        normalized, inv_std, gamma, reduce, view, count, training, axis = self._cache
        scale = (gamma * inv_std).reshape(view)
        if isinstance(normalized, tuple):  # the compiled forward's (x, mean, inv_std): x_hat not kept
            x, mean_x, _ = normalized
            if training and elementwise.supports(grad, x) and scale.dtype == grad.dtype:
                # the two sums in one pass and dx in another, on the team, each making x_hat again from x
                sum_g64, sum_gx64 = elementwise.batch_norm_sums(grad, x, axis, mean_x, inv_std)
                if self.scale:
                    self.weight.accumulate(sum_gx64.astype(grad.dtype))
                if self.center:
                    self.bias.accumulate(sum_g64.astype(grad.dtype))
                a, b = (sum_gx64 / count).astype(grad.dtype), (sum_g64 / count).astype(grad.dtype)
                return elementwise.batch_norm_grad(grad, x, axis, mean_x, inv_std, a, b, scale.reshape(-1))
            x_hat = (x - mean_x.reshape(view)) * inv_std.reshape(view)  # the numbers normalize made
        else:
            x_hat = normalized
        sum_g = sum_gx = None
        if self.scale:
            sum_gx = (grad * x_hat).sum(axis=reduce)
            self.weight.accumulate(sum_gx)
        if self.center:
            sum_g = grad.sum(axis=reduce)
            self.bias.accumulate(sum_g)
        if not training:
            return grad * scale
        # d x = gamma * inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), means over the reduced axes: the
        # gradient of gamma * x_hat written with the sums of the parameters' gradients (fewer passes over x)
        sum_g = grad.sum(axis=reduce) if sum_g is None else sum_g
        sum_gx = (grad * x_hat).sum(axis=reduce) if sum_gx is None else sum_gx
        dx = x_hat * (sum_gx / count).reshape(view)
        dx = dx.astype(np.result_type(grad, dx, scale), copy=False)
        np.subtract(grad, dx, out=dx)
        dx -= (sum_g / count).reshape(view)
        dx *= scale
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def _mean_square(centred: np.ndarray, reduce: tuple[int, ...], count: int) -> np.ndarray:
    """The mean of ``centred**2`` over ``reduce``: ``x.var`` from ``x - x.mean``, without NumPy's second pass
    for the mean (the same sums, so the same numbers)."""
    return np.square(centred).sum(axis=reduce) / count


def _times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a * b``, into ``a`` (an array of the layer's own) where that keeps the product's dtype."""
    return np.multiply(a, b, out=a) if np.result_type(a, b) == a.dtype else a * b


def _plus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b``, into ``a`` (an array of the layer's own) where that keeps the sum's dtype."""
    return np.add(a, b, out=a) if np.result_type(a, b) == a.dtype else a + b
