"""What the layers share: parameter creation, argument checks, the channel layout, the per-axis linear maps
of pooling and resizing, and :class:`KernelLayer`, the base of the convolution and dense layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import numpy as np

from .. import constraints as constraints_module
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from ..module import Module, Parameter, generator
from .activations import activate, activation_function, times_slope

__all__ = [
    "FUSED_SLOPE",
    "KernelLayer",
    "KernelOptions",
    "apply_per_axis",
    "channel_axis",
    "check_spatial_rank",
    "from_channels_first",
    "make_parameter",
    "positive_int",
    "to_channels_first",
]


def make_parameter(
    layer: Module,
    user_shape: tuple[int, ...],
    initializer: Any,
    *,
    regularizer: Any = None,
    constraint: Any = None,
    to_user: Callable[[np.ndarray], np.ndarray] | None = None,
    from_user: Callable[[np.ndarray], np.ndarray] | None = None,
    trainable: bool = True,
    buffer: bool = False,
) -> Parameter:
    values = initializers_module.get(initializer)(user_shape, generator())
    value = from_user(values) if from_user is not None else values
    return Parameter(
        np.ascontiguousarray(value, dtype=layer.dtype),
        trainable=trainable,
        buffer=buffer,
        regularizer=regularizer,
        constraint=constraint,
        to_user=to_user,
        from_user=from_user,
    )


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {value!r}")
    return int(value)


def channel_axis(channels_last: bool) -> int:
    return -1 if channels_last else 1


# Keras's fused ``activation='leaky_relu'`` is keras.activations.leaky_relu, slope 0.2.
FUSED_SLOPE = 0.2


class KernelOptions(TypedDict, total=False):
    """The keyword options of every :class:`KernelLayer`: ``style`` (``'torch'``, the default, or ``'keras'``:
    whose argument names and defaults apply), the bias, a fused activation, the kernel's and bias's
    initializers, regularizers and constraints, and one sample's ``input_shape`` (Keras)."""

    style: str
    use_bias: bool
    activation: str | None
    kernel_initializer: Any
    bias_initializer: Any
    kernel_regularizer: Any
    bias_regularizer: Any
    activity_regularizer: Any
    kernel_constraint: Any
    bias_constraint: Any
    input_shape: Sequence[int] | None


class KernelLayer(Module):
    """What convolutions and dense layers share: kernel and bias with their initializers, regularizers and
    constraints, an optional input shape, and a fused activation (:class:`KernelOptions`)."""

    bias: Any  # a Parameter, or None without a bias (PyTorch's ``m.bias is None``)

    def _configure(self, options: KernelOptions) -> None:
        """Check and keep the :class:`KernelOptions` (an option left out takes its default)."""
        unknown = [name for name in options if name not in KernelOptions.__annotations__]
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}")
        self.style, self.use_bias = options.get("style", "torch"), bool(options.get("use_bias", True))
        self.activation = activation_function(options.get("activation"))
        self.kernel_initializer = options.get("kernel_initializer")
        self.bias_initializer = options.get("bias_initializer")
        for value in (self.kernel_initializer, self.bias_initializer):
            if value is not None:
                initializers_module.get(value)  # check now, fail early
        self.kernel_regularizer = regularizers_module.get(options.get("kernel_regularizer"))
        self.bias_regularizer = regularizers_module.get(options.get("bias_regularizer"))
        self.activity_regularizer = regularizers_module.get(options.get("activity_regularizer"))
        self.kernel_constraint = constraints_module.get(options.get("kernel_constraint"))
        self.bias_constraint = constraints_module.get(options.get("bias_constraint"))
        input_shape = options.get("input_shape")
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
        self.weight = make_parameter(
            self,
            user_shape,
            self.kernel_initializer or default or "glorot_uniform",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            to_user=to_user,
            from_user=from_user,
        )
        if self.use_bias:
            self.bias = make_parameter(
                self,
                (bias_size,),
                self.bias_initializer or default or "zeros",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None  # PyTorch's ``m.bias is None``
        self.built = True

    def _activate(self, z: np.ndarray) -> np.ndarray:
        return activate(self.activation, z, FUSED_SLOPE)

    def _activation_grad(self, grad: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.activation == "linear" and grad.dtype == z.dtype:  # the product with ones would copy grad
            return grad
        return times_slope(self.activation, grad, z, y, FUSED_SLOPE)


def to_channels_first(x: np.ndarray, channels_last: bool) -> np.ndarray:
    return np.moveaxis(x, -1, 1) if channels_last else x


def from_channels_first(x: np.ndarray, channels_last: bool) -> np.ndarray:
    return np.moveaxis(x, 1, -1) if channels_last else x


def apply_per_axis(x: np.ndarray, matrices: Sequence[np.ndarray], first_axis: int) -> np.ndarray:
    for i, matrix in enumerate(matrices):
        axis = first_axis + i
        x = np.moveaxis(np.tensordot(matrix.astype(x.dtype), np.moveaxis(x, axis, 0), axes=(1, 0)), 0, axis)
    return x


def check_spatial_rank(layer: Module, x: np.ndarray, rank: int) -> None:
    """``ValueError`` unless ``x`` has a batch axis, a channel axis and ``rank`` spatial axes."""
    if x.ndim != rank + 2:
        raise ValueError(f"{type(layer).__name__} expects inputs with {rank + 2} axes; received shape {x.shape}")
