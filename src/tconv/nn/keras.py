"""Keras-flavoured layers (channels last by default), thin over :mod:`tconv.nn.layers`: ``tconv.nn.keras`` is to
tconv what ``keras`` (``keras.layers``) is to Keras 3.

Arguments, defaults and shape rules are Keras 3's (``LeakyReLU``'s ``negative_slope=0.3``, ``Dropout(rate)``,
``padding='valid'``); ``get_weights``/``set_weights`` use Keras's layouts, the layers take Keras's names
(``dense``, ``conv2d_transpose_1``) and ``summary()`` shows them. With :class:`Sequential` and the
:data:`layers` namespace here too, Keras code runs with its import lines changed: ``from tensorflow.keras
import layers`` (or ``from keras import layers``) becomes ``from tconv.nn.keras import layers``, and
``tf.keras.Sequential`` is ``tconv.nn.keras.Sequential`` (``import tconv.nn as tf`` keeps the spelling).

This module is long because each layer's docstring is a real one (what it computes, its arguments and
Keras's defaults, its shapes, a doctested example), while the code is a few lines per layer.

Examples
--------
>>> import numpy as np
>>> from tconv.nn.keras import Sequential, layers
>>> layer = layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False)
>>> layer(np.zeros((1, 7, 7, 128))).shape
(1, 14, 14, 64)
>>> layer.get_weights()[0].shape
(5, 5, 64, 128)
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from .._arguments import ints_per_axis
from ..frameworks import is_channels_last
from .containers import Sequential
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
from .module import clear_names

_LAYERS = [
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
__all__ = [*_LAYERS, "Sequential", "clear_session", "layers"]


def _channels_last(data_format: str | None, rank: int) -> bool:
    return True if data_format is None else is_channels_last(data_format, rank)


def _check_strides_and_dilation(strides: Any, dilation_rate: Any, rank: int) -> None:
    """Keras's layers (forward and transposed alike, unlike ``keras.ops``) refuse strides > 1 with
    dilation_rate > 1."""
    stride = ints_per_axis(strides, rank, "strides", minimum=1, broadcast_one=True)
    dilation = ints_per_axis(dilation_rate, rank, "dilation_rate", minimum=1, broadcast_one=True)
    if max(stride) > 1 and max(dilation) > 1:
        raise ValueError(
            f"`strides > 1` not supported in conjunction with `dilation_rate > 1` (Keras's layers); received "
            f"strides={stride}, dilation_rate={dilation}"
        )


class _KerasConv(Convolution):
    _rank = 0
    _transposed = False
    keras_flavoured = True

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
        groups: int = 1,
    ) -> None:
        if output_padding is not None and not self._transposed:
            raise TypeError(f"{type(self).__name__} takes no output_padding")
        _check_strides_and_dilation(strides, dilation_rate, self._rank)
        super().__init__(
            rank=self._rank,
            transposed=self._transposed,
            out_channels=filters,
            kernel_size=kernel_size,
            stride=strides,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation_rate,
            groups=groups,
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
        groups: int = 1,
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
            groups=groups,
            **options,
        )


class Conv1DTranspose(_KerasConv):
    """``keras.layers.Conv1DTranspose``: 1-D transposed convolution (the gradient of ``Conv1D``).

    Arguments, defaults and length rules as :class:`Conv2DTranspose`, over one spatial axis.

    Notes
    -----
    Shapes: input ``(batch, steps, channels)`` (channels last), output ``(batch, out, filters)``. ``get_weights()``:
    the kernel ``(k, filters, in_channels)`` and the bias ``(filters,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Conv1DTranspose(8, 3, strides=2, padding="same")(np.zeros((2, 7, 4))).shape
    (2, 14, 8)
    """

    _rank, _transposed = 1, True


class Conv2DTranspose(_KerasConv):
    """``keras.layers.Conv2DTranspose``: 2-D transposed convolution (the gradient of ``Conv2D``): each input pixel
    scatters the kernel times its value into the output, ``strides`` apart, cropped as ``padding`` says.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or tuple of int
    strides : int or tuple, default 1
    padding : {'valid', 'same'}, default 'valid'
    output_padding : int or tuple, optional
        Added to the output length; below ``strides``.
    data_format : {'channels_last', 'channels_first'}, default channels last
    dilation_rate : int or tuple, default 1
        Keras refuses ``strides > 1`` with ``dilation_rate > 1``.
    activation : str, optional
        Applied to the result: ``'relu'``, ``'leaky_relu'`` (slope 0.2), ``'tanh'``, ``'sigmoid'``, ...
    use_bias : bool, default True
    kernel_initializer, bias_initializer : default 'glorot_uniform', 'zeros'
    kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint : optional
    input_shape : tuple, optional
        One sample's shape, so that a :class:`Sequential` builds at once.

    Notes
    -----
    Shapes: input ``(batch, rows, cols, channels)`` (channels last), output ``(batch, *out, filters)`` with
    ``'same'``: ``out = n * strides``; ``'valid'``: ``out = n * strides + max(k_eff - strides, 0)``; with
    ``output_padding``: ``(n - 1) * strides + k_eff - 2 * (k_eff // 2 if 'same' else 0) + output_padding``,
    ``k_eff = dilation_rate * (k - 1) + 1``. ``get_weights()``: the kernel ``(*kernel, filters, in_channels)`` (``(kh,
    kw, out, in)``) and the bias ``(filters,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Conv2DTranspose(8, 3, strides=2, padding="same")(np.zeros((2, 7, 7, 4))).shape
    (2, 14, 14, 8)
    """

    _rank, _transposed = 2, True


class Conv3DTranspose(_KerasConv):
    """``keras.layers.Conv3DTranspose``: 3-D transposed convolution (the gradient of ``Conv3D``).

    Arguments, defaults and length rules as :class:`Conv2DTranspose`, over three spatial axes.

    Notes
    -----
    Shapes: input ``(batch, d1, d2, d3, channels)`` (channels last), output ``(batch, *out, filters)``.
    ``get_weights()``: the kernel ``(kd, kh, kw, filters, in_channels)`` and the bias ``(filters,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Conv3DTranspose(8, 3, strides=2, padding="same")(np.zeros((2, 3, 3, 3, 4))).shape
    (2, 6, 6, 6, 8)
    """

    _rank, _transposed = 3, True


class Conv1D(_KerasForwardConv):
    """``keras.layers.Conv1D``: 1-D convolution (cross-correlation, as Keras computes it).

    Arguments, defaults and length rules as :class:`Conv2D`, over one spatial axis; ``padding`` may also be
    ``'causal'`` (zeros on the left only, so that step ``t`` sees no later step).

    Notes
    -----
    Shapes: input ``(batch, steps, channels)`` (channels last), output ``(batch, out, filters)``. ``get_weights()``:
    the kernel ``(k, in_channels / groups, filters)`` and the bias ``(filters,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Conv1D(8, 3, strides=2, padding="same")(np.zeros((2, 7, 4))).shape
    (2, 4, 8)
    """

    _rank = 1


class Conv2D(_KerasForwardConv):
    """``keras.layers.Conv2D``: 2-D convolution (cross-correlation, as Keras computes it).

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or tuple of int
    strides : int or tuple, default 1
    padding : {'valid', 'same'}, default 'valid'
    groups : int, default 1
    data_format : {'channels_last', 'channels_first'}, default channels last
    dilation_rate : int or tuple, default 1
        Keras refuses ``strides > 1`` with ``dilation_rate > 1``.
    activation : str, optional
        Applied to the result: ``'relu'``, ``'leaky_relu'`` (slope 0.2), ``'tanh'``, ``'sigmoid'``, ...
    use_bias : bool, default True
    kernel_initializer, bias_initializer : default 'glorot_uniform', 'zeros'
    kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint : optional
    input_shape : tuple, optional
        One sample's shape, so that a :class:`Sequential` builds at once.

    Notes
    -----
    Shapes: input ``(batch, rows, cols, channels)`` (channels last), output ``(batch, *out, filters)`` with
    ``'same'``: ``out = ceil(n / strides)``; ``'valid'``: ``out = ceil((n - k_eff + 1) / strides)``,
    ``k_eff = dilation_rate * (k - 1) + 1``. ``get_weights()``: the kernel ``(*kernel, in_channels / groups,
    filters)`` (``(kh, kw, in, out)``) and the bias ``(filters,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Conv2D(8, 3, strides=2, padding="same")(np.zeros((2, 7, 7, 4))).shape
    (2, 4, 4, 8)
    """

    _rank = 2


class Conv3D(_KerasForwardConv):
    """``keras.layers.Conv3D``: 3-D convolution (cross-correlation, as Keras computes it).

    Arguments, defaults and length rules as :class:`Conv2D`, over three spatial axes.

    Notes
    -----
    Shapes: input ``(batch, d1, d2, d3, channels)`` (channels last), output ``(batch, *out, filters)``.
    ``get_weights()``: the kernel ``(kd, kh, kw, in_channels / groups, filters)`` and the bias ``(filters,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Conv3D(8, 3, strides=2, padding="same")(np.zeros((2, 3, 3, 3, 4))).shape
    (2, 2, 2, 2, 8)
    """

    _rank = 3


class Dense(DenseLayer):
    """``keras.layers.Dense``: ``activation(x @ kernel + bias)`` on the last axis.

    Parameters
    ----------
    units : int
        Output features.
    activation : str, optional
    use_bias : bool, default True
    kernel_initializer, bias_initializer : default 'glorot_uniform', 'zeros'
    kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint : optional
    input_shape : tuple, optional
        One sample's shape (``(100,)``), so that a :class:`Sequential` builds at once.

    Notes
    -----
    Shapes: input ``(*, in_features)``, output ``(*, units)``; ``get_weights()``: the kernel ``(in_features,
    units)`` and the bias ``(units,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layer = layers.Dense(2)
    >>> layer.build((None, 3))
    >>> layer.set_weights([np.array([[1.0, 0], [0, 1], [0, 1]]), np.array([0.0, 10])])
    >>> layer(np.array([[1.0, 2.0, 3.0]]))
    array([[ 1., 15.]], dtype=float32)
    """

    keras_flavoured = True

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
    """``keras.layers.BatchNormalization``: normalize each channel (``axis``) by the batch's mean and variance in
    training (``model(x, training=True)``, ``fit``) or the moving averages in inference, then scale by
    ``gamma`` and shift by ``beta``: ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``.

    Parameters
    ----------
    axis : int, default -1
        The channel axis (channels last).
    momentum : float, default 0.99
        Keras's convention: the weight of the old moving average.
    epsilon : float, default 1e-3
    center, scale : bool, default True
        Learn ``beta`` / ``gamma``.
    beta_regularizer, gamma_regularizer : optional
    input_shape : tuple, optional

    Notes
    -----
    Shapes: input and output alike. ``get_weights()``: ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``
    (the biased batch variance, as Keras keeps it), each ``(channels,)``; the last two are non-trainable
    weights, counted by ``count_params`` as Keras counts them.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> bn = layers.BatchNormalization()
    >>> y = bn(np.arange(12.0).reshape(2, 3, 2), training=True)
    >>> np.round(y.mean(axis=(0, 1)), 6).tolist(), bn.count_params()
    ([0.0, 0.0], 8)
    """

    keras_flavoured = True

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
    """``keras.layers.LeakyReLU``: ``x`` where positive, ``negative_slope * x`` elsewhere, element-wise.

    Parameters
    ----------
    negative_slope : float, default 0.3
        Keras 3's default (PyTorch's ``LeakyReLU`` defaults to 0.01: :class:`tconv.nn.torch.LeakyReLU`).

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.LeakyReLU()(np.array([-10.0, 2.0]))
    array([-3.,  2.], dtype=float32)
    """

    keras_flavoured = True

    def __init__(self, negative_slope: float = 0.3) -> None:
        super().__init__("leaky_relu", negative_slope)


class ReLU(ActivationLayer):
    """``keras.layers.ReLU`` with its defaults: ``max(x, 0)``, element-wise.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.], dtype=float32)
    """

    keras_flavoured = True

    def __init__(self) -> None:
        super().__init__("relu")


class Activation(ActivationLayer):
    """``keras.layers.Activation``: an activation function by name, element-wise.

    Parameters
    ----------
    activation : str
        ``'relu'``, ``'leaky_relu'`` (slope 0.2, as ``keras.activations.leaky_relu``), ``'tanh'``, ``'sigmoid'``,
        ``'softplus'`` or ``'linear'``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Activation("leaky_relu")(np.array([-10.0, 2.0]))
    array([-2.,  2.], dtype=float32)
    """

    keras_flavoured = True

    def __init__(self, activation: str) -> None:
        super().__init__(activation, 0.2)


class Dropout(DropoutLayer):
    """``keras.layers.Dropout``: in training (``training=True``, ``fit``), zero each entry with probability
    ``rate`` and scale the others by ``1 / (1 - rate)``; the identity in inference. Any shape.

    Parameters
    ----------
    rate : float
        Keras's name, required (PyTorch's is ``Dropout(p=0.5)``: :class:`tconv.nn.torch.Dropout`).

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> drop = layers.Dropout(rate=0.5)
    >>> sorted(set(drop(np.ones(1000), training=True).tolist())), drop(np.ones(2), training=False)
    ([0.0, 2.0], array([1., 1.], dtype=float32))
    """

    keras_flavoured = True

    def __init__(self, rate: float) -> None:
        super().__init__(rate)


class Reshape(ReshapeLayer):
    """``keras.layers.Reshape``: every sample reshaped to ``target_shape`` (one entry may be -1).

    Parameters
    ----------
    target_shape : tuple of int
        Without the batch axis.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Reshape((7, 7, 256))(np.zeros((2, 12544))).shape
    (2, 7, 7, 256)
    """

    keras_flavoured = True


class Flatten(FlattenLayer):
    """``keras.layers.Flatten``: every sample flattened to one axis (a channels-first input is moved to channels
    last first, as Keras does).

    Parameters
    ----------
    data_format : {'channels_last', 'channels_first'}, optional

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.Flatten()(np.zeros((2, 7, 7, 128))).shape
    (2, 6272)
    """

    keras_flavoured = True

    def __init__(self, data_format: str | None = None) -> None:
        first = data_format is not None and not is_channels_last(data_format, 2)
        super().__init__(1, -1, channels_first_to_last=first)


class MaxPooling2D(MaxPool):
    """``keras.layers.MaxPooling2D``: the maximum of each ``pool_size`` window, ``strides`` apart.

    Parameters
    ----------
    pool_size : int or tuple, default (2, 2)
    strides : int or tuple, default ``pool_size``
    padding : {'valid', 'same'}, default 'valid'
    data_format : optional, default channels last

    Notes
    -----
    Shapes: ``(batch, rows, cols, channels)`` -> ``(batch, out_rows, out_cols, channels)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.MaxPooling2D()(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """

    keras_flavoured = True

    def __init__(
        self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid", data_format: str | None = None
    ) -> None:
        if not isinstance(padding, str):
            raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
        super().__init__(pool_size, strides, padding, rank=2, channels_last=_channels_last(data_format, 2))


class GlobalAveragePooling2D(AveragePool):
    """``keras.layers.GlobalAveragePooling2D``: the mean over the spatial axes.

    Parameters
    ----------
    data_format : optional, default channels last
    keepdims : bool, default False
        Keep the spatial axes with size 1.

    Notes
    -----
    Shapes: ``(batch, rows, cols, channels)`` -> ``(batch, channels)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.GlobalAveragePooling2D()(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[3., 4.]], dtype=float32)
    """

    keras_flavoured = True

    def __init__(self, data_format: str | None = None, keepdims: bool = False) -> None:
        super().__init__(None, rank=2, channels_last=_channels_last(data_format, 2), keepdims=keepdims)


class UpSampling2D(Resize):
    """``keras.layers.UpSampling2D``: fixed upsampling by nearest or bilinear interpolation.

    Parameters
    ----------
    size : int or tuple of two, default (2, 2)
        The factors for rows and columns.
    data_format : optional, default channels last
    interpolation : {'nearest', 'bilinear'}, default 'nearest'

    Notes
    -----
    Shapes: ``(batch, rows, cols, channels)`` -> ``(batch, rows * size[0], cols * size[1], channels)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn.keras import layers
    >>> layers.UpSampling2D()(np.array([[[[1.0], [2.0]]]]))[0, :, :, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]], dtype=float32)
    """

    keras_flavoured = True

    def __init__(self, size: Any = (2, 2), data_format: str | None = None, interpolation: str = "nearest") -> None:
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"interpolation must be 'nearest' or 'bilinear'; received {interpolation!r}")
        sizes = size if isinstance(size, Sequence) else (size, size)
        if len(sizes) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"size must be a positive int or two positive ints; received {size!r}")
        super().__init__(
            scale_factor=tuple(sizes), mode=interpolation, rank=2, channels_last=_channels_last(data_format, 2)
        )


def clear_session() -> None:
    """Start the layer names over (``dense``, ``dense_1``, ...), as ``keras.backend.clear_session()`` does."""
    clear_names()


#: ``keras.layers``: ``from tconv.nn.keras import layers`` stands for ``from tensorflow.keras import layers``
#: (or ``from keras import layers``), and ``layers.Dense(...)`` reads the same.
layers = SimpleNamespace(**{name: globals()[name] for name in _LAYERS})
