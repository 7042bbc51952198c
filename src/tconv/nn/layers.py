"""One implementation of each layer; :mod:`tconv.nn.torch_layers` and :mod:`tconv.nn.keras_layers` only
translate their framework's constructor arguments into these.

Parameters are stored in PyTorch's layouts (what ``state_dict`` holds); the
Keras-flavoured constructors present the Keras layouts through
``get_weights``/``set_weights``, their initializers, regularizers and
constraints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import shapes
from ..frameworks import keras as keras_rules
from ..frameworks import torch as torch_rules
from ..frameworks._common import per_axis
from ..grad import conv_grad, conv_transpose_grad
from ..ops import conv, conv_transpose
from . import constraints as constraints_module
from . import initializers as initializers_module
from . import regularizers as regularizers_module
from ._module import Module, Parameter, generator

__all__ = [
    "ActivationLayer",
    "AveragePool",
    "BatchNorm",
    "Convolution",
    "DenseLayer",
    "DropoutLayer",
    "FlattenLayer",
    "MaxPool",
    "ReshapeLayer",
    "Resize",
    "activation_function",
]


# -- activations ---------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


# name -> (f(x), f'(x, y) given the input x and output y)
_ACTIVATIONS: dict[str, tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]] = {
    "linear": (lambda x, a: x, lambda x, y, a: np.ones_like(x)),
    "relu": (lambda x, a: np.maximum(x, 0), lambda x, y, a: (x > 0).astype(x.dtype)),
    "leaky_relu": (
        lambda x, a: np.where(x > 0, x, a * x),
        lambda x, y, a: np.where(x > 0, 1.0, a).astype(x.dtype),
    ),
    "tanh": (lambda x, a: np.tanh(x), lambda x, y, a: 1 - y * y),
    "sigmoid": (lambda x, a: _sigmoid(x), lambda x, y, a: y * (1 - y)),
    "softplus": (lambda x, a: np.logaddexp(0, x), lambda x, y, a: _sigmoid(x)),
}


def activation_function(name: str | None) -> str:
    """Check an activation name (``None`` means ``'linear'``)."""
    if name is None:
        return "linear"
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)} or None; received {name!r}")
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
        f, _ = _ACTIVATIONS[self.function]
        self._x, self._y = x, f(x, self.negative_slope).astype(x.dtype, copy=False)
        return self._y

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        _, df = _ACTIVATIONS[self.function]
        return grad * df(self._x, self._y, self.negative_slope)

    def extra_repr(self) -> str:
        slope = f", negative_slope={self.negative_slope}" if self.function == "leaky_relu" else ""
        return f"{self.function!r}{slope}"


# -- parameters helpers ----------------------------------------------------------------
def _make_parameter(
    layer: Module,
    user_shape: tuple[int, ...],
    initializer: Any,
    *,
    regularizer: Any = None,
    constraint: Any = None,
    to_user: Callable[[np.ndarray], np.ndarray] | None = None,
    from_user: Callable[[np.ndarray], np.ndarray] | None = None,
    trainable: bool = True,
) -> Parameter:
    values = initializers_module.get(initializer)(user_shape, generator())
    value = from_user(values) if from_user is not None else values
    return Parameter(
        np.ascontiguousarray(value, dtype=layer.dtype),
        trainable=trainable,
        regularizer=regularizer,
        constraint=constraint,
        to_user=to_user,
        from_user=from_user,
    )


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {value!r}")
    return int(value)


def _channel_axis(channels_last: bool) -> int:
    return -1 if channels_last else 1


# Keras's fused ``activation='leaky_relu'`` is keras.activations.leaky_relu, slope 0.2.
_FUSED_SLOPE = 0.2


class _KernelLayer(Module):
    """What convolutions and dense layers share: kernel and bias with their initializers, regularizers and
    constraints, an optional input shape, and a fused activation."""

    def _configure(
        self,
        *,
        style: str,
        use_bias: bool,
        activation: str | None,
        kernel_initializer: Any,
        bias_initializer: Any,
        kernel_regularizer: Any,
        bias_regularizer: Any,
        activity_regularizer: Any,
        kernel_constraint: Any,
        bias_constraint: Any,
        input_shape: Sequence[int] | None,
    ) -> None:
        self.style, self.use_bias = style, bool(use_bias)
        self.activation = activation_function(activation)
        for value in (kernel_initializer, bias_initializer):
            if value is not None:
                initializers_module.get(value)  # check now, fail early
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer = regularizers_module.get(kernel_regularizer)
        self.bias_regularizer = regularizers_module.get(bias_regularizer)
        self.activity_regularizer = regularizers_module.get(activity_regularizer)
        self.kernel_constraint = constraints_module.get(kernel_constraint)
        self.bias_constraint = constraints_module.get(bias_constraint)
        self.declared_input_shape = None if input_shape is None else tuple(input_shape)
        self.built = False

    def _create_weights(
        self,
        user_shape: tuple[int, ...],
        bias_size: int,
        torch_fan_in: int,
        to_user: Callable[[np.ndarray], np.ndarray],
        from_user: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        """Draw the kernel (in Keras's layout ``user_shape``) and the bias; PyTorch's default for style 'torch'."""
        default = initializers_module.TorchDefault(torch_fan_in) if self.style == "torch" else None
        self.weight = _make_parameter(
            self,
            user_shape,
            self.kernel_initializer or default or "glorot_uniform",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            to_user=to_user,
            from_user=from_user,
        )
        if self.use_bias:
            self.bias = _make_parameter(
                self,
                (bias_size,),
                self.bias_initializer or default or "zeros",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.built = True

    def _activate(self, z: np.ndarray) -> np.ndarray:
        return _ACTIVATIONS[self.activation][0](z, _FUSED_SLOPE).astype(z.dtype, copy=False)

    def _activation_grad(self, grad: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return grad * _ACTIVATIONS[self.activation][1](z, y, _FUSED_SLOPE)


# -- convolutions ------------------------------------------------------------------
_PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class Convolution(_KernelLayer):
    """A convolution or transposed convolution of ``rank`` spatial axes, with either framework's rules.

    ``style='torch'`` reads ``padding``/``output_padding``/``output_size`` as
    PyTorch does (plus ``'same'`` for transposed ones, as tconv resolves it);
    ``style='keras'`` applies Keras's ``'valid'``/``'same'`` length rules. The
    weight is stored as PyTorch's ``(in, out/groups, *k)`` (transposed) or
    ``(out, in/groups, *k)``; Keras's view is ``(*k, out, in)`` / ``(*k, in, out)``.
    """

    def __init__(
        self,
        *,
        rank: int,
        transposed: bool,
        out_channels: int,
        kernel_size: Any,
        in_channels: int | None = None,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        use_bias: bool = True,
        channels_last: bool = False,
        padding_mode: str = "zeros",
        style: str = "torch",
        activation: str | None = None,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.rank, self.transposed = rank, transposed
        self.out_channels = _positive_int(out_channels, "filters" if style == "keras" else "out_channels")
        self.in_channels = None if in_channels is None else _positive_int(in_channels, "in_channels")
        self.kernel_size = per_axis(kernel_size, rank, "kernel_size")
        if any(k < 1 for k in self.kernel_size):
            raise ValueError(f"kernel_size must be positive on every axis; received {kernel_size!r}")
        names = ("strides", "dilation_rate") if style == "keras" else ("stride", "dilation")
        self.stride = per_axis(stride, rank, names[0])
        self.dilation = per_axis(dilation, rank, names[1])
        for name, values in ((names[0], self.stride), (names[1], self.dilation)):
            if any(v < 1 for v in values):
                raise ValueError(f"{name} must be positive on every axis; received {values}")
        self.groups = _positive_int(groups, "groups")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels must be divisible by groups; received {self.out_channels} and {groups}")
        if self.in_channels is not None and self.in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups; received {self.in_channels} and {groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {sorted(_PADDING_MODES)}; received {padding_mode!r}")
        if transposed and padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' for transposed convolutions; received {padding_mode!r}")
        self.padding_mode = padding_mode
        if style == "keras":
            allowed = ("valid", "same") if transposed else ("valid", "same", "causal")
            if not isinstance(padding, str) or padding.lower() not in allowed:
                raise ValueError(f"padding must be one of {allowed}; received {padding!r}")
            padding = padding.lower()
            if output_padding is not None:
                per_axis(output_padding, rank, "output_padding")
        elif isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid', 'same', an int or a tuple of ints; received {padding!r}")
        else:
            per_axis(padding, rank, "padding")
            if not transposed and any(p < 0 for p in per_axis(padding, rank, "padding")):
                raise ValueError(f"padding must be non-negative; received {padding!r}")
        self.padding, self.output_padding = padding, output_padding
        if transposed and style == "torch" and not isinstance(padding, str):
            ops = per_axis(output_padding, rank, "output_padding")
            for op, s, d in zip(ops, self.stride, self.dilation):
                if op >= max(s, d):
                    raise ValueError(
                        f"output_padding must be smaller than either stride or dilation; received "
                        f"output_padding={ops} with stride={self.stride}, dilation={self.dilation}"
                    )
        self.channels_last = bool(channels_last)
        self._configure(
            style=style,
            use_bias=use_bias,
            activation=activation,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            input_shape=input_shape,
        )
        self._cache: tuple[Any, ...] | None = None
        if self.in_channels is not None:
            self._create(self.in_channels)

    # layouts: PyTorch's (a, b, *k) <-> Keras's (*k, b, a), the same permutation both ways
    def _to_keras(self, w: np.ndarray) -> np.ndarray:
        return np.transpose(w, (*range(2, self.rank + 2), 1, 0))

    def _from_keras(self, w: np.ndarray) -> np.ndarray:
        return np.transpose(w, (self.rank + 1, self.rank, *range(self.rank)))

    def build(self, input_shape: Sequence[int | None]) -> None:
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs with {self.rank + 2} axes (batch, channels and {self.rank} "
                f"spatial); received shape {tuple(input_shape)}"
            )
        channels = input_shape[_channel_axis(self.channels_last)]
        assert channels is not None
        self._create(int(channels))
        self.built = True

    def _create(self, in_channels: int) -> None:
        if in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups; received {in_channels} and {self.groups}")
        self.in_channels = in_channels
        g = self.groups
        torch_shape = (
            (in_channels, self.out_channels // g, *self.kernel_size)
            if self.transposed
            else (self.out_channels, in_channels // g, *self.kernel_size)
        )
        user_shape = (*self.kernel_size, torch_shape[1], torch_shape[0])
        fan_in = torch_shape[1] * math.prod(self.kernel_size)  # PyTorch's: weight.shape[1] * prod(k)
        self._create_weights(user_shape, self.out_channels, fan_in, self._to_keras, self._from_keras)

    def initialize(self, kernel_initializer: Any = None, bias_initializer: Any = None) -> None:
        """Redraw the weights with the given initializers (``'bilinear'`` for FCN-style upsampling)."""
        if kernel_initializer is not None:
            self.kernel_initializer = kernel_initializer
        if bias_initializer is not None:
            self.bias_initializer = bias_initializer
        if self.in_channels is not None:
            self._create(self.in_channels)

    def _arguments(self, spatial: tuple[int, ...], output_size: Any) -> dict[str, Any]:
        if self.style == "keras":
            if self.transposed:
                args = keras_rules.conv_transpose_arguments(
                    spatial,
                    self.kernel_size,
                    strides=self.stride,
                    padding=self.padding,
                    output_padding=self.output_padding,
                    dilation_rate=self.dilation,
                )
            else:
                args = keras_rules.conv_arguments(
                    spatial, self.kernel_size, strides=self.stride, padding=self.padding, dilation_rate=self.dilation
                )
            return {**args, "groups": self.groups}
        if output_size is not None:
            if not self.transposed:
                raise TypeError("output_size is only for transposed convolutions")
            output_size = tuple(output_size)[-self.rank :]
        if self.transposed and isinstance(self.padding, str):
            args = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}
            if output_size is not None:
                args["output_size"] = output_size
            return args
        return torch_rules.core_arguments(
            self.transposed,
            spatial,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            output_padding=self.output_padding if self.transposed else 0,
            output_size=output_size,
        )

    def _explicit_padding(self, args: dict[str, Any], spatial: tuple[int, ...]) -> list[tuple[int, int]]:
        padding = args["padding"]
        if padding == "valid":
            return [(0, 0)] * self.rank
        if padding == "same":  # stride 1 (PyTorch's rule): the odd extra goes to the end, as the shape module splits
            return [
                shapes.conv_same_padding(n, k, dilation=d) for n, k, d in zip(spatial, self.kernel_size, self.dilation)
            ]
        return [(int(p), int(p)) if not isinstance(p, tuple) else (int(p[0]), int(p[1])) for p in padding]

    def forward(self, x: np.ndarray, output_size: Any = None) -> np.ndarray:
        spatial_axes = list(range(1, self.rank + 1)) if self.channels_last else list(range(2, self.rank + 2))
        spatial = tuple(x.shape[a] for a in spatial_axes)
        args = self._arguments(spatial, output_size)
        index_maps = None
        if self.padding_mode != "zeros":
            pads = self._explicit_padding(args, spatial)
            index_maps = []
            for axis, size, (lo, hi) in zip(spatial_axes, spatial, pads):
                if self.padding_mode == "reflect" and max(lo, hi) >= size:
                    raise ValueError(
                        f"padding_mode='reflect' needs padding smaller than the input ({size}) on every axis"
                    )
                if self.padding_mode == "circular" and max(lo, hi) > size:
                    raise ValueError(f"padding_mode='circular' needs padding at most the input ({size}) on every axis")
                index = np.pad(np.arange(size), (lo, hi), mode=_PADDING_MODES[self.padding_mode])  # type: ignore[call-overload]
                x = np.take(x, index, axis=axis)
                index_maps.append((axis, size, index))
            args = {**args, "padding": 0}
        bias = self.bias.value if self.use_bias else None
        op = conv_transpose if self.transposed else conv
        z = op(x, self.weight.value, bias, channels_last=self.channels_last, **args)
        y = self._activate(z)
        self._cache = (x, args, index_maps, z, y)
        return y

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        x, args, index_maps, z, y = self._cache
        grad = self._activation_grad(grad, z, y)
        gradient = conv_transpose_grad if self.transposed else conv_grad
        grad_x, grad_w, grad_b = gradient(grad, x, self.weight.value, channels_last=self.channels_last, **args)
        self.weight.accumulate(grad_w)
        if self.use_bias:
            self.bias.accumulate(grad_b)
        for axis, size, index in reversed(index_maps or []):
            shape = list(grad_x.shape)
            shape[axis] = size
            folded = np.zeros(shape, dtype=grad_x.dtype)
            np.add.at(folded, (slice(None),) * axis + (index,), grad_x)
            grad_x = folded
        return grad_x

    def extra_repr(self) -> str:
        kind = "transposed, " if self.transposed else ""
        return (
            f"{kind}{self.in_channels}->{self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding!r}"
        )


# -- dense -------------------------------------------------------------------------------------
class DenseLayer(_KernelLayer):
    """``y = x W^T + b`` on the last axis; ``W`` is ``(out, in)`` (PyTorch), Keras's kernel ``(in, out)``."""

    def __init__(
        self,
        out_features: int,
        *,
        in_features: int | None = None,
        use_bias: bool = True,
        style: str = "torch",
        activation: str | None = None,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.out_features = _positive_int(out_features, "units" if style == "keras" else "out_features")
        self._configure(
            style=style,
            use_bias=use_bias,
            activation=activation,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            input_shape=input_shape,
        )
        self.in_features: int | None = None
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if in_features is not None:
            self._create(_positive_int(in_features, "in_features"))

    def build(self, input_shape: Sequence[int | None]) -> None:
        if len(input_shape) < 2:
            raise ValueError(f"{type(self).__name__} expects inputs with a batch axis; received shape {input_shape}")
        assert input_shape[-1] is not None
        self._create(int(input_shape[-1]))

    def _create(self, in_features: int) -> None:
        self.in_features = in_features
        self._create_weights(
            (in_features, self.out_features), self.out_features, in_features, np.transpose, np.transpose
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_features} features on the last axis; received shape {x.shape}"
            )
        z = x @ self.weight.value.T
        if self.use_bias:
            z = z + self.bias.value
        y = self._activate(z)
        self._cache = (x, z, y)
        return y

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._cache is not None, "backward called before forward"
        x, z, y = self._cache
        grad = self._activation_grad(grad, z, y)
        flat_g = grad.reshape(-1, self.out_features)
        self.weight.accumulate(flat_g.T @ x.reshape(-1, x.shape[-1]))
        if self.use_bias:
            self.bias.accumulate(flat_g.sum(axis=0))
        return grad @ self.weight.value

    def extra_repr(self) -> str:
        return f"{self.in_features}->{self.out_features}, bias={self.use_bias}"


# -- batch normalization ---------------------------------------------------------------------------
class BatchNorm(Module):
    """Batch normalization over every axis but ``axis``.

    ``momentum`` is the weight of the new batch in the running averages
    (PyTorch's convention; Keras's ``momentum`` m is ``1 - m`` here), and
    ``unbiased_running_var`` says whether the running variance takes the
    unbiased batch variance (PyTorch) or the biased one (Keras).
    """

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
            self._create(_positive_int(num_features, "num_features"))

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
        if self.scale:
            self.weight = _make_parameter(self, c, "ones", regularizer=self.gamma_regularizer)
        if self.center:
            self.bias = _make_parameter(self, c, "zeros", regularizer=self.beta_regularizer)
        self.running_mean = _make_parameter(self, c, "zeros", trainable=False)
        self.running_var = _make_parameter(self, c, "ones", trainable=False)
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


# -- dropout, flatten, reshape ---------------------------------------------------------------------
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


# -- pooling -------------------------------------------------------------------------------------------
def _to_channels_first(x: np.ndarray, channels_last: bool) -> np.ndarray:
    return np.moveaxis(x, -1, 1) if channels_last else x


def _from_channels_first(x: np.ndarray, channels_last: bool) -> np.ndarray:
    return np.moveaxis(x, 1, -1) if channels_last else x


class MaxPool(Module):
    """Max pooling over ``rank`` spatial axes with explicit ``(lo, hi)`` padding (padded entries never win).

    ``padding`` is an int / per-axis ints (PyTorch: at most half the kernel), or
    ``'valid'``/``'same'`` (Keras, TensorFlow's rule for the split).
    """

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, *, rank: int = 2, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.rank = rank
        self.kernel_size = per_axis(kernel_size, rank, "kernel_size")
        self.stride = self.kernel_size if stride is None else per_axis(stride, rank, "stride")
        if any(v < 1 for v in (*self.kernel_size, *self.stride)):
            raise ValueError(f"kernel_size and stride must be positive; received {kernel_size!r}, {stride!r}")
        if isinstance(padding, str):
            if padding.lower() not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
            self.padding: Any = padding.lower()
        else:
            pads = per_axis(padding, rank, "padding")
            if any(p < 0 or 2 * p > k for p, k in zip(pads, self.kernel_size)):
                raise ValueError(
                    "padding should be at most half the kernel size; received "
                    f"padding={pads}, kernel_size={self.kernel_size}"
                )
            self.padding = pads
        self.channels_last = channels_last
        self._cache: tuple[Any, ...] | None = None

    def _pairs(self, spatial: Sequence[int]) -> list[tuple[int, int]]:
        if self.padding == "valid":
            return [(0, 0)] * self.rank
        if self.padding == "same":
            return [shapes.conv_same_padding(n, k, stride=s) for n, k, s in zip(spatial, self.kernel_size, self.stride)]
        return [(p, p) for p in self.padding]

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs with {self.rank + 2} axes; received shape {x.shape}"
            )
        x = _to_channels_first(x, self.channels_last)
        pairs = self._pairs(x.shape[2:])
        padded = np.pad(x, [(0, 0), (0, 0), *pairs], constant_values=-np.inf)
        axes = tuple(range(2, self.rank + 2))
        for a, k in zip(axes, self.kernel_size):
            if padded.shape[a] < k:
                raise ValueError(
                    f"the pooling window {self.kernel_size} is larger than the padded input {padded.shape[2:]}"
                )
        windows = sliding_window_view(padded, self.kernel_size, axis=axes)
        steps = (slice(None), slice(None), *(slice(None, None, s) for s in self.stride))
        windows = windows[steps]
        flat = windows.reshape(*windows.shape[: self.rank + 2], -1)
        arg = flat.argmax(axis=-1)
        y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        self._cache = (arg, padded.shape, pairs, x.shape)
        return _from_channels_first(np.ascontiguousarray(y), self.channels_last)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._cache is not None, "backward called before forward"
        arg, padded_shape, pairs, in_shape = self._cache
        grad = _to_channels_first(grad, self.channels_last)
        offsets = np.unravel_index(arg, self.kernel_size)
        grids = np.indices(arg.shape, sparse=True)
        index = [grids[0], grids[1]]
        for i, (s, off) in enumerate(zip(self.stride, offsets)):
            index.append(grids[2 + i] * s + off)
        full = np.zeros(padded_shape, dtype=grad.dtype)
        np.add.at(full, tuple(index), grad)
        crop = (slice(None), slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(pairs, in_shape[2:])))
        return _from_channels_first(full[crop], self.channels_last)


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
    """Rows average PyTorch's adaptive windows: ``[floor(i n / o), ceil((i + 1) n / o))``."""
    matrix = np.zeros((out, size))
    for i in range(out):
        start, stop = (i * size) // out, -((-(i + 1) * size) // out)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def _apply_per_axis(x: np.ndarray, matrices: Sequence[np.ndarray], first_axis: int) -> np.ndarray:
    for i, matrix in enumerate(matrices):
        axis = first_axis + i
        x = np.moveaxis(np.tensordot(matrix.astype(x.dtype), np.moveaxis(x, axis, 0), axes=(1, 0)), 0, axis)
    return x


class AveragePool(Module):
    """Adaptive average pooling to ``output_size`` (PyTorch), or global (``output_size=None``; Keras)."""

    def __init__(
        self, output_size: Any = None, *, rank: int = 2, channels_last: bool = False, keepdims: bool = True
    ) -> None:
        super().__init__()
        self.rank, self.channels_last, self.keepdims = rank, channels_last, keepdims
        if output_size is None:
            self.output_size: tuple[int | None, ...] = (1,) * rank
        else:
            sizes = output_size if isinstance(output_size, Sequence) else (output_size,) * rank
            if len(sizes) != rank or any(s is not None and (not isinstance(s, int) or s < 1) for s in sizes):
                raise ValueError(f"output_size must be {rank} positive ints (or None); received {output_size!r}")
            self.output_size = tuple(sizes)
        self._cache: tuple[Any, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs with {self.rank + 2} axes; received shape {x.shape}"
            )
        x = _to_channels_first(x, self.channels_last)
        matrices = [_adaptive_matrix(n, n if o is None else o) for n, o in zip(x.shape[2:], self.output_size)]
        y = _apply_per_axis(x, matrices, 2)
        self._cache = (matrices, y.shape)
        y = _from_channels_first(y, self.channels_last)
        return y if self.keepdims else y.reshape(y.shape[0], -1)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        assert self._cache is not None, "backward called before forward"
        matrices, shape = self._cache
        if not self.keepdims:
            grad = grad.reshape(_from_channels_first(np.empty(shape, dtype=bool), self.channels_last).shape)
        grad = _to_channels_first(grad, self.channels_last)
        grad = _apply_per_axis(grad, [m.T for m in matrices], 2)
        return _from_channels_first(grad, self.channels_last)


def _resize_matrix(size: int, out: int, mode: str, align_corners: bool, scale: float | None) -> np.ndarray:
    """Interpolation weights ``(out, size)``; ``scale`` is PyTorch's 1/scale_factor when one was given."""
    ratio = scale if scale is not None else size / out
    matrix = np.zeros((out, size))
    dst = np.arange(out)
    if mode == "nearest":
        src = np.minimum(np.floor(dst * ratio).astype(int), size - 1)
        matrix[dst, src] = 1.0
        return matrix
    if align_corners:
        position = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        position = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(int), size - 1)
    high = np.minimum(low + 1, size - 1)
    frac = position - low
    np.add.at(matrix, (dst, low), 1.0 - frac)
    np.add.at(matrix, (dst, high), frac)
    return matrix


class Resize(Module):
    """Fixed upsampling by nearest or (bi/tri)linear interpolation: the alternatives to a learned upsampler.

    ``bilinear`` with ``align_corners=False`` uses half-pixel centres and clamps
    at the border (PyTorch's ``Upsample``, Keras's ``UpSampling2D``).
    """

    def __init__(
        self,
        *,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        rank: int = 2,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("give exactly one of size and scale_factor")
        if mode not in ("nearest", "bilinear", "linear", "trilinear"):
            raise ValueError(f"mode must be 'nearest', 'linear', 'bilinear' or 'trilinear'; received {mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("align_corners only applies to the linear modes; received align_corners with 'nearest'")
        self.rank, self.mode, self.align_corners, self.channels_last = rank, mode, bool(align_corners), channels_last
        self.size = None if size is None else per_axis(size, rank, "size")
        if scale_factor is None:
            self.scale_factor = None
        else:
            factors = scale_factor if isinstance(scale_factor, Sequence) else (scale_factor,) * rank
            if len(factors) != rank or any(not isinstance(f, (int, float)) or f <= 0 for f in factors):
                raise ValueError(f"scale_factor must be {rank} positive numbers; received {scale_factor!r}")
            self.scale_factor = tuple(float(f) for f in factors)
        self._matrices: list[np.ndarray] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs with {self.rank + 2} axes; received shape {x.shape}"
            )
        x = _to_channels_first(x, self.channels_last)
        spatial = x.shape[2:]
        scales: list[float | None]
        if self.size is not None:
            outs, scales = self.size, [None] * self.rank
        else:
            assert self.scale_factor is not None
            outs = tuple(math.floor(n * f) for n, f in zip(spatial, self.scale_factor))
            scales = [1.0 / f for f in self.scale_factor]
        mode = "nearest" if self.mode == "nearest" else "linear"
        self._matrices = [_resize_matrix(n, o, mode, self.align_corners, s) for n, o, s in zip(spatial, outs, scales)]
        return _from_channels_first(_apply_per_axis(x, self._matrices, 2), self.channels_last)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        grad = _to_channels_first(grad, self.channels_last)
        grad = _apply_per_axis(grad, [m.T for m in self._matrices], 2)
        return _from_channels_first(grad, self.channels_last)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale_factor={self.scale_factor}, mode={self.mode!r}"
