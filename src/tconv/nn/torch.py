"""PyTorch-flavoured layers (channels first), thin over :mod:`tconv.nn.layers`: ``tconv.nn.torch`` is to tconv
what ``torch.nn`` is to PyTorch.

Arguments, defaults and checks are PyTorch's (``LeakyReLU``'s slope 0.01, ``Dropout(p=0.5)``, ``inplace``
accepted), parameter names and layouts are ``torch.nn``'s so that a ``state_dict`` loads either way, and the
batch norms' running statistics are buffers, which :meth:`~tconv.nn.Module.count_params` does not count. With
``Module``, ``Sequential``, ``init`` and the losses here too, PyTorch code runs with its import line changed:
``import torch.nn as nn`` becomes ``from tconv.nn import torch as nn``.

This module is long because each layer's docstring is a real one (what it computes, its arguments and
PyTorch's defaults, its shapes, a doctested example), while the code is a few lines per layer.

Examples
--------
>>> import numpy as np
>>> from tconv.nn import torch as nn
>>> up = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
>>> up(np.zeros((2, 16, 7, 7))).shape
(2, 8, 14, 14)
>>> up(np.zeros((2, 16, 7, 7)), output_size=(15, 15)).shape
(2, 8, 15, 15)
"""

from __future__ import annotations

from typing import Any

from . import init
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
    Resize,
)
from .losses import BCELoss, BCEWithLogitsLoss, MSELoss
from .module import Module, Parameter, manual_seed

__all__ = [
    "AdaptiveAvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dropout",
    "Flatten",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "Upsample",
    "init",
    "manual_seed",
]


def _check_inplace(inplace: Any, layer: str) -> None:
    """``inplace`` is accepted for PyTorch code; tconv never changes its input, so the result is the same."""
    if not isinstance(inplace, bool):
        raise TypeError(
            f"{layer}'s inplace must be True or False; received {inplace!r}"
            + (" (Keras's ReLU(max_value) is not PyTorch's ReLU(inplace))" if layer == "ReLU" else "")
        )


class _ConvNd(Convolution):
    _rank = 0
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__(
            rank=self._rank,
            transposed=False,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            use_bias=bias,
            padding_mode=padding_mode,
        )


class _ConvTransposeNd(Convolution):
    _rank = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__(
            rank=self._rank,
            transposed=True,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
            use_bias=bias,
            padding_mode=padding_mode,
        )


class Conv1d(_ConvNd):
    """``torch.nn.Conv1d``: 1-D convolution (cross-correlation, as PyTorch computes it), channels first.

    Arguments, defaults and length rule as :class:`Conv2d`, over one spatial axis.

    Notes
    -----
    Shapes: input ``(N, C_in, L)`` (or unbatched ``(C_in, L)``), output ``(N, C_out, L_out)``; ``weight``
    ``(C_out, C_in / groups, k)``, ``bias`` ``(C_out,)``, drawn as PyTorch draws them.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.Conv1d(4, 8, 3, stride=2, padding=1)(np.zeros((2, 4, 9))).shape
    (2, 8, 5)
    """

    _rank = 1


class Conv2d(_ConvNd):
    """``torch.nn.Conv2d``: 2-D convolution (cross-correlation, as PyTorch computes it), channels first.

    ``y[n, o] = bias[o] + sum over c, k of weight[o, c, k] * x_padded[n, c, stride * i + dilation * k]``, per group.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output; both divisible by ``groups``.
    kernel_size : int or tuple of int
    stride : int or tuple, default 1
    padding : int, tuple, 'valid' or 'same', default 0
        Zeros added on both sides of every spatial axis (``'same'``: stride 1 only, the odd extra at the end).
    dilation : int or tuple, default 1
    groups : int, default 1
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'

    Notes
    -----
    Shapes: input ``(N, C_in, H, W)`` (or unbatched ``(C_in, H, W)``), output ``(N, C_out, ...)`` with
    ``out = floor((n + 2 * padding - dilation * (k - 1) - 1) / stride) + 1`` per axis; ``weight``
    ``(C_out, C_in / groups, kh, kw)``, ``bias`` ``(C_out,)``, both drawn from ``U(-b, b)``, ``b = 1 / sqrt(fan_in)``
    (PyTorch's default).

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.Conv2d(4, 8, 3, stride=2, padding=1)(np.zeros((2, 4, 9, 9))).shape
    (2, 8, 5, 5)
    """

    _rank = 2


class Conv3d(_ConvNd):
    """``torch.nn.Conv3d``: 3-D convolution (cross-correlation, as PyTorch computes it), channels first.

    Arguments, defaults and length rule as :class:`Conv2d`, over three spatial axes.

    Notes
    -----
    Shapes: input ``(N, C_in, D, H, W)`` (or unbatched ``(C_in, D, H, W)``), output ``(N, C_out, ...)``;
    ``weight`` ``(C_out, C_in / groups, kd, kh, kw)``, ``bias`` ``(C_out,)``, drawn as PyTorch draws them.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.Conv3d(4, 8, 3, stride=2, padding=1)(np.zeros((2, 4, 5, 5, 5))).shape
    (2, 8, 3, 3, 3)
    """

    _rank = 3


class ConvTranspose1d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose1d``: 1-D transposed convolution, the gradient (adjoint) of ``Conv1d``.

    Arguments, defaults, ``forward(x, output_size=None)`` and length rule as :class:`ConvTranspose2d`, over one
    spatial axis.

    Notes
    -----
    Shapes: input ``(N, C_in, L)`` (or unbatched ``(C_in, L)``), output ``(N, C_out, L_out)``; ``weight``
    ``(C_in, C_out / groups, k)``, ``bias`` ``(C_out,)``, drawn as PyTorch draws them.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.ConvTranspose1d(4, 8, 4, stride=2, padding=1)(np.zeros((2, 4, 7))).shape
    (2, 8, 14)
    """

    _rank = 1


class ConvTranspose2d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose2d``: 2-D transposed convolution, the gradient (adjoint) of ``Conv2d``.

    Each input pixel scatters ``weight[c]`` times its value into the output, ``stride`` apart; the full result
    is cropped by ``padding`` at both ends and extended by ``output_padding`` at the end. ``forward(x,
    output_size=None)``: PyTorch's ``output_size`` picks the ``output_padding`` that gives that size.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output; both divisible by ``groups``.
    kernel_size : int or tuple of int
    stride : int or tuple, default 1
    padding : int or tuple, default 0
        The padding of the matching forward convolution, cropped from both ends of the full output
        (``'same'``/``'valid'`` accepted too, as :func:`tconv.conv_transpose` reads them).
    output_padding : int or tuple, default 0
        Added at the high end of every axis; each below ``max(stride, dilation)``.
    groups : int, default 1
    bias : bool, default True
    dilation : int or tuple, default 1
    padding_mode : 'zeros'

    Notes
    -----
    Shapes: input ``(N, C_in, H, W)`` (or unbatched ``(C_in, H, W)``), output ``(N, C_out, ...)`` with
    ``out = (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1`` per axis; ``weight``
    ``(C_in, C_out / groups, kh, kw)``, ``bias`` ``(C_out,)``, drawn as PyTorch draws them.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1)(np.zeros((2, 4, 7, 7))).shape
    (2, 8, 14, 14)
    """

    _rank = 2


class ConvTranspose3d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose3d``: 3-D transposed convolution, the gradient (adjoint) of ``Conv3d``.

    Arguments, defaults, ``forward(x, output_size=None)`` and length rule as :class:`ConvTranspose2d`, over three
    spatial axes.

    Notes
    -----
    Shapes: input ``(N, C_in, D, H, W)`` (or unbatched ``(C_in, D, H, W)``), output ``(N, C_out, ...)``;
    ``weight`` ``(C_in, C_out / groups, kd, kh, kw)``, ``bias`` ``(C_out,)``, drawn as PyTorch draws them.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.ConvTranspose3d(4, 8, 4, stride=2, padding=1)(np.zeros((2, 4, 3, 3, 3))).shape
    (2, 8, 6, 6, 6)
    """

    _rank = 3


class Linear(DenseLayer):
    """``torch.nn.Linear``: ``y = x @ weight.T + bias`` on the last axis.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True

    Notes
    -----
    Shapes: input ``(*, in_features)``, output ``(*, out_features)``; ``weight`` ``(out_features,
    in_features)``, ``bias`` ``(out_features,)``, both from ``U(-b, b)``, ``b = 1 / sqrt(in_features)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> layer = nn.Linear(3, 2)
    >>> layer.weight.data[...] = [[1, 0, 0], [0, 1, 1]]; layer.bias.data[...] = [0, 10]
    >>> layer(np.array([[1.0, 2.0, 3.0]]))
    array([[ 1., 15.]], dtype=float32)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(out_features, in_features=in_features, use_bias=bias)


class _BatchNormNd(BatchNorm):
    _ranks: tuple[int, ...] = ()
    statistics_are_buffers = True

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
    ) -> None:
        super().__init__(
            num_features,
            axis=1,
            eps=eps,
            momentum=momentum,
            unbiased_running_var=True,
            center=affine,
            scale=affine,
            expected_rank=self._ranks,
        )


class BatchNorm1d(_BatchNormNd):
    """``torch.nn.BatchNorm1d``: :class:`BatchNorm2d` over ``(N, C)`` or ``(N, C, L)`` inputs.

    Arguments, defaults, statistics and buffers as :class:`BatchNorm2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> bn = nn.BatchNorm1d(2)
    >>> y = bn(np.arange(12, dtype=float).reshape((2, 2, 3)))
    >>> np.round(y.mean(axis=(0, 2)), 6).tolist(), bn.count_params()
    ([0.0, 0.0], 4)
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNormNd):
    """``torch.nn.BatchNorm2d``: normalize each channel by the batch's mean and variance (training) or the
    running averages (``eval()``), then scale and shift: ``y = (x - mean) / sqrt(var + eps) * weight + bias``.

    Parameters
    ----------
    num_features : int
        ``C``, the channels (axis 1).
    eps : float, default 1e-5
        Added to the variance.
    momentum : float, default 0.1
        The weight of the new batch in the running averages (PyTorch's convention).
    affine : bool, default True
        Learn ``weight`` (scale, initially 1) and ``bias`` (shift, initially 0); else they are ``None``.

    Notes
    -----
    Shapes: input and output ``(N, C, H, W)``. ``running_mean`` and ``running_var`` (the unbiased variance, as PyTorch
    keeps it) are buffers: in the ``state_dict``, not counted by ``count_params``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> bn = nn.BatchNorm2d(2)
    >>> y = bn(np.arange(16, dtype=float).reshape((2, 2, 2, 2)))
    >>> np.round(y.mean(axis=(0, 2, 3)), 6).tolist(), bn.count_params()
    ([0.0, 0.0], 4)
    """

    _ranks = (4,)


class BatchNorm3d(_BatchNormNd):
    """``torch.nn.BatchNorm3d``: :class:`BatchNorm2d` over ``(N, C, D, H, W)`` inputs.

    Arguments, defaults, statistics and buffers as :class:`BatchNorm2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> bn = nn.BatchNorm3d(2)
    >>> y = bn(np.arange(16, dtype=float).reshape((2, 2, 2, 2, 1)))
    >>> np.round(y.mean(axis=(0, 2, 3, 4)), 6).tolist(), bn.count_params()
    ([0.0, 0.0], 4)
    """

    _ranks = (5,)


class ReLU(ActivationLayer):
    """``torch.nn.ReLU``: ``max(x, 0)``, element-wise, any shape.

    Parameters
    ----------
    inplace : bool, default False
        Accepted for PyTorch code (``nn.ReLU(True)``); tconv never changes its input, and the result is the same.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.ReLU(True)(np.array([-1.0, 2.0]))
    array([0., 2.], dtype=float32)
    """

    def __init__(self, inplace: bool = False) -> None:
        _check_inplace(inplace, "ReLU")
        super().__init__("relu")
        self.inplace = inplace


class LeakyReLU(ActivationLayer):
    """``torch.nn.LeakyReLU``: ``x`` where positive, ``negative_slope * x`` elsewhere, element-wise.

    Parameters
    ----------
    negative_slope : float, default 0.01
        PyTorch's default (Keras's ``LeakyReLU`` defaults to 0.3: :class:`tconv.nn.keras.LeakyReLU`).
    inplace : bool, default False
        Accepted for PyTorch code; the result is the same.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.LeakyReLU()(np.array([-100.0, 2.0])), nn.LeakyReLU(0.2, inplace=True)(np.array([-100.0, 2.0]))
    (array([-1.,  2.], dtype=float32), array([-20.,   2.], dtype=float32))
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        _check_inplace(inplace, "LeakyReLU")
        super().__init__("leaky_relu", negative_slope)
        self.inplace = inplace


class Tanh(ActivationLayer):
    """``torch.nn.Tanh``: ``tanh(x)``, element-wise, any shape.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.Tanh()(np.array([0.0, 100.0]))
    array([0., 1.], dtype=float32)
    """

    def __init__(self) -> None:
        super().__init__("tanh")


class Sigmoid(ActivationLayer):
    """``torch.nn.Sigmoid``: ``1 / (1 + exp(-x))``, element-wise, any shape.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.Sigmoid()(np.array([0.0]))
    array([0.5], dtype=float32)
    """

    def __init__(self) -> None:
        super().__init__("sigmoid")


class Dropout(DropoutLayer):
    """``torch.nn.Dropout``: in training, zero each entry with probability ``p`` and scale the others by
    ``1 / (1 - p)``; the identity in ``eval()`` mode. Any shape.

    Parameters
    ----------
    p : float, default 0.5
        PyTorch's name and default (Keras's is ``Dropout(rate)``: :class:`tconv.nn.keras.Dropout`).
    inplace : bool, default False
        Accepted for PyTorch code; the result is the same.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> drop = nn.Dropout(p=0.25)
    >>> sorted(set(drop(np.ones(1000)).tolist()))
    [0.0, 1.3333333730697632]
    >>> drop.eval()(np.ones(3))
    array([1., 1., 1.], dtype=float32)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        _check_inplace(inplace, "Dropout")
        super().__init__(p)
        self.inplace = inplace


class Flatten(FlattenLayer):
    """``torch.nn.Flatten``: merge the axes ``start_dim`` to ``end_dim`` into one.

    Parameters
    ----------
    start_dim : int, default 1
    end_dim : int, default -1

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__(start_dim, end_dim)


class MaxPool2d(MaxPool):
    """``torch.nn.MaxPool2d``: the maximum of each ``kernel_size`` window, ``stride`` apart (padded entries
    never win).

    Parameters
    ----------
    kernel_size : int or tuple
    stride : int or tuple, default ``kernel_size``
    padding : int or tuple, default 0
        At most half the kernel.

    Notes
    -----
    Shapes: ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``, ``out = floor((n + 2 * padding - k) / stride) + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__(kernel_size, stride, padding, rank=2)


class AdaptiveAvgPool2d(AveragePool):
    """``torch.nn.AdaptiveAvgPool2d``: average over PyTorch's adaptive windows to ``output_size``.

    Parameters
    ----------
    output_size : int or tuple of two (an entry ``None`` keeps that axis)

    Notes
    -----
    Shapes: ``(N, C, H, W)`` -> ``(N, C, *output_size)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.AdaptiveAvgPool2d(1)(np.arange(8.0).reshape(1, 2, 2, 2)).ravel()
    array([1.5, 5.5], dtype=float32)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__(output_size, rank=2)


class Upsample(Resize):
    """``torch.nn.Upsample`` on 2-D images: fixed nearest or bilinear interpolation.

    Parameters
    ----------
    size : int or tuple, optional
        The output's spatial size; or
    scale_factor : float or tuple, optional
        The factor per axis (exactly one of ``size`` and ``scale_factor``).
    mode : {'nearest', 'bilinear'}, default 'nearest'
    align_corners : bool, optional
        For ``'bilinear'``: corner pixels aligned (True) or half-pixel centres (False, the default).

    Notes
    -----
    Shapes: ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.

    Examples
    --------
    >>> import numpy as np
    >>> from tconv.nn import torch as nn
    >>> nn.Upsample(scale_factor=2)(np.array([[[[1.0, 2.0]]]]))
    array([[[[1., 1., 2., 2.],
             [1., 1., 2., 2.]]]], dtype=float32)
    """

    def __init__(
        self, size: Any = None, scale_factor: Any = None, mode: str = "nearest", align_corners: bool | None = None
    ) -> None:
        super().__init__(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners, rank=2)
