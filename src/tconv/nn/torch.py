"""PyTorch-flavoured constructors (channels-first), thin over :mod:`tconv.nn.layers`; ``tconv.nn.torch``.

Arguments, defaults and checks are PyTorch's; parameter names and layouts are
those of ``torch.nn`` so that a ``state_dict`` loads either way.

Examples
--------
>>> import numpy as np
>>> from tconv import nn
>>> up = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
>>> up(np.zeros((2, 16, 7, 7))).shape
(2, 8, 14, 14)
>>> up(np.zeros((2, 16, 7, 7)), output_size=(15, 15)).shape
(2, 8, 15, 15)
"""

from __future__ import annotations

from typing import Any

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

__all__ = [
    "AdaptiveAvgPool2d",
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
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Upsample",
]


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
    """``torch.nn.Conv1d``."""

    _rank = 1


class Conv2d(_ConvNd):
    """``torch.nn.Conv2d``."""

    _rank = 2


class Conv3d(_ConvNd):
    """``torch.nn.Conv3d``."""

    _rank = 3


class ConvTranspose1d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose1d`` (``padding='same'``/``'valid'`` accepted too); ``forward(x, output_size=None)``."""

    _rank = 1


class ConvTranspose2d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose2d`` (``padding='same'``/``'valid'`` accepted too); ``forward(x, output_size=None)``."""

    _rank = 2


class ConvTranspose3d(_ConvTransposeNd):
    """``torch.nn.ConvTranspose3d`` (``padding='same'``/``'valid'`` accepted too); ``forward(x, output_size=None)``."""

    _rank = 3


class Linear(DenseLayer):
    """``torch.nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(out_features, in_features=in_features, use_bias=bias)


class _BatchNormNd(BatchNorm):
    _ranks: tuple[int, ...] = ()

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
    """``torch.nn.BatchNorm1d`` on ``(N, C)`` or ``(N, C, L)``."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNormNd):
    """``torch.nn.BatchNorm2d``."""

    _ranks = (4,)


class BatchNorm3d(_BatchNormNd):
    """``torch.nn.BatchNorm3d``."""

    _ranks = (5,)


class ReLU(ActivationLayer):
    """``torch.nn.ReLU`` (also what Keras's ``ReLU`` layer builds)."""

    def __init__(self) -> None:
        super().__init__("relu")


class LeakyReLU(ActivationLayer):
    """``torch.nn.LeakyReLU`` (``negative_slope=0.01``)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__("leaky_relu", negative_slope)


class Tanh(ActivationLayer):
    """``torch.nn.Tanh``."""

    def __init__(self) -> None:
        super().__init__("tanh")


class Sigmoid(ActivationLayer):
    """``torch.nn.Sigmoid``."""

    def __init__(self) -> None:
        super().__init__("sigmoid")


class Dropout(DropoutLayer):
    """``torch.nn.Dropout(p=0.5)``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)


class Flatten(FlattenLayer):
    """``torch.nn.Flatten(start_dim=1, end_dim=-1)``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__(start_dim, end_dim)


class MaxPool2d(MaxPool):
    """``torch.nn.MaxPool2d(kernel_size, stride=None, padding=0)``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__(kernel_size, stride, padding, rank=2)


class AdaptiveAvgPool2d(AveragePool):
    """``torch.nn.AdaptiveAvgPool2d(output_size)``."""

    def __init__(self, output_size: Any) -> None:
        super().__init__(output_size, rank=2)


class Upsample(Resize):
    """``torch.nn.Upsample`` on 2-D images: ``mode`` ``'nearest'`` or ``'bilinear'``."""

    def __init__(
        self, size: Any = None, scale_factor: Any = None, mode: str = "nearest", align_corners: bool | None = None
    ) -> None:
        super().__init__(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners, rank=2)
