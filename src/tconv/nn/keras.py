"""Keras-flavoured constructors (channels-last by default), thin over :mod:`tconv.nn.layers`.

Where a name is in both frameworks (``LeakyReLU``, ``ReLU``, ``Dropout``, ``Flatten``),
``tconv.nn`` holds PyTorch's and ``tconv.nn.keras`` this module's (Keras's ``LeakyReLU``
slope is 0.3, PyTorch's 0.01).

Arguments, defaults and shape rules are Keras 3's (seed 000 lists them for
``Conv2DTranspose``); ``get_weights``/``set_weights`` use Keras's layouts.

Examples
--------
>>> import numpy as np
>>> from tconv import nn
>>> layer = nn.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False)
>>> layer(np.zeros((1, 7, 7, 128))).shape
(1, 14, 14, 64)
>>> layer.get_weights()[0].shape
(5, 5, 64, 128)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..frameworks import is_channels_last
from .layers import (
    ActivationLayer,
    AveragePool,
    BatchNorm,
    Convolution,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    MaxPool,
    ReshapeLayer,
    Resize,
)

__all__ = [
    "Activation",
    "BatchNormalization",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "LeakyReLU",
    "MaxPooling2D",
    "ReLU",
    "Reshape",
    "UpSampling2D",
]


def _channels_last(data_format: str | None, rank: int) -> bool:
    return True if data_format is None else is_channels_last(data_format, rank)


class _KerasConv(Convolution):
    _rank = 0
    _transposed = False

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        if output_padding is not None and not self._transposed:
            raise TypeError(f"{type(self).__name__} takes no output_padding")
        super().__init__(
            rank=self._rank,
            transposed=self._transposed,
            out_channels=filters,
            kernel_size=kernel_size,
            stride=strides,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation_rate,
            use_bias=use_bias,
            channels_last=_channels_last(data_format, self._rank),
            style="keras",
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


class _KerasForwardConv(_KerasConv):
    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: str | None = None,
        use_bias: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(
            filters,
            kernel_size,
            strides,
            padding,
            None,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            **options,
        )


class Conv1DTranspose(_KerasConv):
    """``keras.layers.Conv1DTranspose``."""

    _rank, _transposed = 1, True


class Conv2DTranspose(_KerasConv):
    """``keras.layers.Conv2DTranspose`` with exactly seed 000's arguments."""

    _rank, _transposed = 2, True


class Conv3DTranspose(_KerasConv):
    """``keras.layers.Conv3DTranspose``."""

    _rank, _transposed = 3, True


class Conv1D(_KerasForwardConv):
    """``keras.layers.Conv1D`` (``padding='causal'`` too)."""

    _rank = 1


class Conv2D(_KerasForwardConv):
    """``keras.layers.Conv2D``."""

    _rank = 2


class Conv3D(_KerasForwardConv):
    """``keras.layers.Conv3D``."""

    _rank = 3


class Dense(DenseLayer):
    """``keras.layers.Dense``; ``input_shape`` (one sample's) lets a ``Sequential`` build at once."""

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            units,
            use_bias=use_bias,
            style="keras",
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


class BatchNormalization(BatchNorm):
    """``keras.layers.BatchNormalization`` (``momentum=0.99``: Keras's, the weight of the old average)."""

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1]; received {momentum}")
        super().__init__(
            axis=axis,
            eps=epsilon,
            momentum=1.0 - momentum,
            unbiased_running_var=False,
            center=center,
            scale=scale,
            gamma_regularizer=gamma_regularizer,
            beta_regularizer=beta_regularizer,
            input_shape=input_shape,
        )


class LeakyReLU(ActivationLayer):
    """``keras.layers.LeakyReLU`` (``negative_slope=0.3``)."""

    def __init__(self, negative_slope: float = 0.3) -> None:
        super().__init__("leaky_relu", negative_slope)


class ReLU(ActivationLayer):
    """``keras.layers.ReLU``."""

    def __init__(self) -> None:
        super().__init__("relu")


class Activation(ActivationLayer):
    """``keras.layers.Activation(name)``: ``'relu'``, ``'leaky_relu'`` (slope 0.2), ``'tanh'``, ``'sigmoid'``,
    ``'softplus'``, ``'linear'``."""

    def __init__(self, activation: str) -> None:
        super().__init__(activation, 0.2)


class Dropout(DropoutLayer):
    """``keras.layers.Dropout(rate)``."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)


class Reshape(ReshapeLayer):
    """``keras.layers.Reshape(target_shape)``."""


class Flatten(FlattenLayer):
    """``keras.layers.Flatten``: channels-first inputs are moved to channels-last first, as Keras does."""

    def __init__(self, data_format: str | None = None) -> None:
        first = data_format is not None and not is_channels_last(data_format, 2)
        super().__init__(1, -1, channels_first_to_last=first)


class MaxPooling2D(MaxPool):
    """``keras.layers.MaxPooling2D(pool_size=(2, 2), strides=None, padding='valid', data_format=None)``."""

    def __init__(
        self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid", data_format: str | None = None
    ) -> None:
        if not isinstance(padding, str):
            raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
        super().__init__(pool_size, strides, padding, rank=2, channels_last=_channels_last(data_format, 2))


class GlobalAveragePooling2D(AveragePool):
    """``keras.layers.GlobalAveragePooling2D(data_format=None, keepdims=False)``."""

    def __init__(self, data_format: str | None = None, keepdims: bool = False) -> None:
        super().__init__(None, rank=2, channels_last=_channels_last(data_format, 2), keepdims=keepdims)


class UpSampling2D(Resize):
    """``keras.layers.UpSampling2D(size=(2, 2), data_format=None, interpolation='nearest')``."""

    def __init__(self, size: Any = (2, 2), data_format: str | None = None, interpolation: str = "nearest") -> None:
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"interpolation must be 'nearest' or 'bilinear'; received {interpolation!r}")
        sizes = size if isinstance(size, Sequence) else (size, size)
        if len(sizes) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"size must be a positive int or two positive ints; received {size!r}")
        super().__init__(
            scale_factor=tuple(sizes), mode=interpolation, rank=2, channels_last=_channels_last(data_format, 2)
        )
