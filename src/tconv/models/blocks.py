"""Seed 002's Inception block and ResNet bottleneck, and the plain variants it compares them with.

The seed counts the convolution weights without biases:

=====================================  ===========
block                                  weights
=====================================  ===========
naive Inception (1x1, 3x3, 5x5, pool)  387,072
Inception with 1x1 reductions          163,328
two 3x3 convolutions, 256 channels     1,179,648
bottleneck 256 -> 64 -> 64 -> 256      69,632
=====================================  ===========

Examples
--------
>>> from tconv.models import inception_block
>>> block = inception_block(192, 64, (96, 128), (16, 32), 32, bias=False)
>>> block.build_from_shape((None, 192, 8, 8)).count_params()
163328
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import nn

__all__ = ["bottleneck_block", "inception_block", "naive_inception_block", "plain_residual_block"]


def _conv(c_in: int, c_out: int, k: int, *, bias: bool, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2, bias=bias)


def naive_inception_block(c0: int, c1: int, c2: int, c3: int, *, bias: bool = True) -> nn.Parallel:
    """Seed 002's figure 2(a): 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool side by side (channels-first)."""
    return nn.Parallel(
        {
            "p1": nn.Sequential([_conv(c0, c1, 1, bias=bias), nn.ReLU()]),
            "p2": nn.Sequential([_conv(c0, c2, 3, bias=bias), nn.ReLU()]),
            "p3": nn.Sequential([_conv(c0, c3, 5, bias=bias), nn.ReLU()]),
            "p4": nn.MaxPool2d(3, stride=1, padding=1),
        },
        axis=1,
    )


def inception_block(
    c0: int, c1: int, c2: Sequence[int], c3: Sequence[int], c4: int, *, bias: bool = True
) -> nn.Parallel:
    """Seed 002's Inception block (figure 2(b)), with its argument names: 1x1 reductions before the 3x3 and
    5x5 convolutions and after the pool; ReLU after every convolution; branches concatenated on the channels."""
    return nn.Parallel(
        {
            "p1": nn.Sequential([_conv(c0, c1, 1, bias=bias), nn.ReLU()]),
            "p2": nn.Sequential(
                [_conv(c0, c2[0], 1, bias=bias), nn.ReLU(), _conv(c2[0], c2[1], 3, bias=bias), nn.ReLU()]
            ),
            "p3": nn.Sequential(
                [_conv(c0, c3[0], 1, bias=bias), nn.ReLU(), _conv(c3[0], c3[1], 5, bias=bias), nn.ReLU()]
            ),
            "p4": nn.Sequential([nn.MaxPool2d(3, stride=1, padding=1), _conv(c0, c4, 1, bias=bias), nn.ReLU()]),
        },
        axis=1,
    )


def _conv_bn(c_in: int, c_out: int, k: int, *, stride: int, batch_norm: bool, relu: bool) -> nn.Sequential:
    """Seed 002's ConvBNLayer: a convolution without bias, batch norm, optional ReLU."""
    layers: list[nn.Module] = [_conv(c_in, c_out, k, bias=False, stride=stride)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(layers)


def bottleneck_block(
    num_channels: int, num_filters: int, *, stride: int = 1, shortcut: bool = True, batch_norm: bool = True
) -> nn.Residual:
    """Seed 002's BottleneckBlock: 1x1 down to ``num_filters``, 3x3, 1x1 up to ``4 * num_filters``, plus the
    input (or a 1x1 projection of it when ``shortcut`` is False), then ReLU. Convolutions have no bias."""
    body = nn.Sequential(
        [
            _conv_bn(num_channels, num_filters, 1, stride=1, batch_norm=batch_norm, relu=True),
            _conv_bn(num_filters, num_filters, 3, stride=stride, batch_norm=batch_norm, relu=True),
            _conv_bn(num_filters, num_filters * 4, 1, stride=1, batch_norm=batch_norm, relu=False),
        ]
    )
    projection = None
    if not shortcut:
        projection = _conv_bn(num_channels, num_filters * 4, 1, stride=stride, batch_norm=batch_norm, relu=False)
    return nn.Residual(body, shortcut=projection, activation=nn.ReLU())


def plain_residual_block(channels: int, *, batch_norm: bool = True) -> nn.Residual:
    """The residual block of seed 002's figure 3(a): two 3x3 convolutions at full width, no bias."""
    body = nn.Sequential(
        [
            _conv_bn(channels, channels, 3, stride=1, batch_norm=batch_norm, relu=True),
            _conv_bn(channels, channels, 3, stride=1, batch_norm=batch_norm, relu=False),
        ]
    )
    return nn.Residual(body, activation=nn.ReLU())
