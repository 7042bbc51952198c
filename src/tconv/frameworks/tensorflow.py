"""TensorFlow's ``tf.nn`` convolutions, with TensorFlow's arguments, layouts and rules.

Channels last by default (``NWC``/``NHWC``/``NDHWC``; ``NCW``/``NCHW``/``NCDHW``
also work). Transposed-convolution filters are ``(*k, out, in)``, forward filters
``(*k, in/groups, out)`` (groups inferred from the input's channels, as
TensorFlow does).

TensorFlow's transposed convolution is the gradient of the forward convolution
whose *input* has ``output_shape``. So ``output_shape`` is admissible when that
forward convolution, with the same padding, maps it back to the input's size,
and the crop is that forward convolution's padding computed for
``output_shape``: for ``'SAME'``, ``total = max((n-1)*s + k_eff - out, 0)`` with
the extra element at the end.

Examples
--------
>>> import numpy as np
>>> from tconv.compat import tensorflow as tfc
>>> x = np.array([[[1.0], [2.0], [3.0]]])      # (N, W, C)
>>> f = np.array([[[1.0]], [[10.0]], [[100.0]]])  # (k, out, in)
>>> tfc.conv1d_transpose(x, f, (1, 6, 1), 2, "SAME")[0, :, 0]
array([  1.,  10., 102.,  20., 203.,  30.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import shapes
from .._backend import Array
from ..ops import conv
from ..ops import conv_transpose as _core_conv_transpose
from ._common import as_array, convert_weight, ints, layout_axes, namespace

__all__ = [
    "conv1d",
    "conv1d_transpose",
    "conv2d",
    "conv2d_transpose",
    "conv3d",
    "conv3d_transpose",
    "conv_transpose",
    "convolution",
    "resolve_conv_transpose",
]

_DEFAULT_FORMATS = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def _spatial_values(value: Any, ndim: int, channels_last: bool, name: str, default: int = 1) -> tuple[int, ...]:
    """TensorFlow's strides/dilations: an int, or 1, ndim or ndim + 2 values."""
    if value is None:
        return (default,) * ndim
    values = ints(value, name)
    if len(values) == 1:
        return values * ndim
    if len(values) == ndim:
        return values
    if len(values) == ndim + 2:
        outer = (values[0], values[-1]) if channels_last else (values[0], values[1])
        if outer != (1, 1):
            raise ValueError(f"{name} must be 1 on the batch and channel dimensions; received {name}={list(values)}")
        return values[1:-1] if channels_last else values[2:]
    raise ValueError(f"{name} must have 1, {ndim} or {ndim + 2} values; received {name}={list(values)}")


def _explicit_padding(padding: Any, ndim: int, channels_last: bool) -> tuple[tuple[int, int], ...]:
    try:
        pairs = [tuple(ints(pair, "padding")) for pair in padding]
    except TypeError:
        raise TypeError(
            f"padding must be 'SAME', 'VALID' or a list of {ndim + 2} [before, after] pairs; received {padding!r}"
        ) from None
    if len(pairs) != ndim + 2 or any(len(p) != 2 for p in pairs):
        raise ValueError(
            f"explicit padding must be a list of {ndim + 2} [before, after] pairs (batch, spatial and channel "
            f"dimensions); received {padding!r}"
        )
    outer = (pairs[0], pairs[-1]) if channels_last else (pairs[0], pairs[1])
    if outer != ((0, 0), (0, 0)):
        raise ValueError(f"padding on the batch and channel dimensions must be 0; received {padding!r}")
    spatial = pairs[1:-1] if channels_last else pairs[2:]
    return tuple((p[0], p[1]) for p in spatial)


def resolve_conv_transpose(
    input_size: Sequence[int],
    output_size: Sequence[int],
    kernel_size: Sequence[int],
    strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    dilations: Sequence[int],
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """TensorFlow's crop ``(lo, hi)`` and output padding for a wanted ``output_shape``.

    Raises ``ValueError`` with the admissible sizes when TensorFlow would reject
    ``output_size``.

    Examples
    --------
    >>> resolve_conv_transpose((3,), (6,), (3,), (2,), "SAME", (1,))
    (((0, 1),), (0,))
    >>> resolve_conv_transpose((3,), (5,), (3,), (2,), "SAME", (1,))
    (((1, 1),), (0,))
    >>> resolve_conv_transpose((2, 2), (5, 5), (3, 3), (2, 2), "VALID", (1, 1))
    (((0, 0), (0, 0)), (0, 0))
    """
    pairs, output_paddings = [], []
    for axis, (n, out, k, s, d) in enumerate(zip(input_size, output_size, kernel_size, strides, dilations)):
        k_eff = shapes.dilated_kernel_size(k, d)
        if isinstance(padding, str):
            mode = padding.upper()
            if mode == "SAME":
                pair = shapes.conv_same_padding(out, k, stride=s, dilation=d)
                admissible = range((n - 1) * s + 1, n * s + 1)
            elif mode == "VALID":
                pair = (0, 0)
                admissible = shapes.conv_input_sizes(n, k, stride=s, padding=0, dilation=d)
            else:
                raise ValueError(f"padding must be 'SAME', 'VALID' or explicit pairs; received {padding!r}")
        else:
            pair = tuple(padding[axis])  # type: ignore[assignment]
            admissible = shapes.conv_input_sizes(n, k, stride=s, padding=pair, dilation=d)
        if out not in admissible:
            raise ValueError(
                f"output_shape is not admissible on spatial axis {axis}: TensorFlow needs the forward "
                f"convolution of the output (padding {padding!r}) to give the input size {n}; "
                f"received {out}, admissible sizes are {admissible.start} to {admissible.stop - 1}"
            )
        full = (n - 1) * s + k_eff
        pairs.append(pair)
        output_paddings.append(out - (full - pair[0] - pair[1]))
    return tuple(pairs), tuple(output_paddings)


def conv_transpose(
    input: Array,
    filters: Array,
    output_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]] = "SAME",
    data_format: str | None = None,
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv_transpose``: the rank comes from ``filters`` ``(*k, out, in)``."""
    xp = namespace(input)
    filters = as_array(xp, filters)
    ndim = filters.ndim - 2
    if ndim not in (1, 2, 3):
        raise ValueError(f"filters must have 3, 4 or 5 dimensions; received shape {tuple(filters.shape)}")
    channels_last = layout_axes(data_format or _DEFAULT_FORMATS[ndim], ndim)
    input = as_array(xp, input)
    if input.ndim != ndim + 2:
        raise ValueError(
            f"input must have {ndim + 2} dimensions (batch, {ndim} spatial, channels) for filters of shape "
            f"{tuple(filters.shape)}; received input of shape {tuple(input.shape)}"
        )
    stride = _spatial_values(strides, ndim, channels_last, "strides")
    dilation = _spatial_values(dilations, ndim, channels_last, "dilations")
    shape = ints(output_shape, "output_shape")
    if len(shape) != ndim + 2:
        raise ValueError(f"output_shape must have {ndim + 2} entries; received {list(shape)}")
    spatial_out = shape[1:-1] if channels_last else shape[2:]
    channels_out = shape[-1] if channels_last else shape[1]
    spatial_in = tuple(int(n) for n in (input.shape[1:-1] if channels_last else input.shape[2:]))
    if shape[0] != input.shape[0]:
        raise ValueError(f"output_shape's batch {shape[0]} must equal the input's {input.shape[0]}")
    if channels_out != filters.shape[-2]:
        raise ValueError(
            f"output_shape's channels ({channels_out}) must equal filters.shape[-2] ({filters.shape[-2]}); "
            f"filters are (*k, out, in)"
        )
    if isinstance(padding, str):
        tf_padding: Any = padding
    else:
        tf_padding = _explicit_padding(padding, ndim, channels_last)
    pairs, output_padding = resolve_conv_transpose(
        spatial_in, spatial_out, tuple(filters.shape[:ndim]), stride, tf_padding, dilation
    )
    weight = convert_weight(filters, "tensorflow", "torch")
    return _core_conv_transpose(
        input,
        weight,
        stride=stride,
        padding=pairs,
        output_padding=output_padding,
        dilation=dilation,
        channels_last=channels_last,
    )


def conv1d_transpose(
    input: Array,
    filters: Array,
    output_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]] = "SAME",
    data_format: str = "NWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv1d_transpose``."""
    _check_rank(filters, 1)
    return conv_transpose(input, filters, output_shape, strides, padding, data_format, dilations)


def conv2d_transpose(
    input: Array,
    filters: Array,
    output_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]] = "SAME",
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv2d_transpose`` (seed 004)."""
    _check_rank(filters, 2)
    return conv_transpose(input, filters, output_shape, strides, padding, data_format, dilations)


def conv3d_transpose(
    input: Array,
    filters: Array,
    output_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]] = "SAME",
    data_format: str = "NDHWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv3d_transpose``."""
    _check_rank(filters, 3)
    return conv_transpose(input, filters, output_shape, strides, padding, data_format, dilations)


def _check_rank(filters: Any, ndim: int) -> None:
    rank = as_array(namespace(filters), filters).ndim
    if rank != ndim + 2:
        raise ValueError(f"filters must have {ndim + 2} dimensions for a {ndim}-D convolution; received rank {rank}")


def convolution(
    input: Array,
    filters: Array,
    strides: int | Sequence[int] | None = None,
    padding: str | Sequence[Sequence[int]] = "VALID",
    data_format: str | None = None,
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.convolution``: filters ``(*k, in/groups, out)``; groups = input channels / ``filters.shape[-2]``."""
    xp = namespace(input)
    filters = as_array(xp, filters)
    input = as_array(xp, input)
    ndim = filters.ndim - 2
    if ndim not in (1, 2, 3):
        raise ValueError(f"filters must have 3, 4 or 5 dimensions; received shape {tuple(filters.shape)}")
    channels_last = layout_axes(data_format or _DEFAULT_FORMATS[ndim], ndim)
    stride = _spatial_values(strides, ndim, channels_last, "strides")
    dilation = _spatial_values(dilations, ndim, channels_last, "dilations")
    if any(s > 1 for s in stride) and any(d > 1 for d in dilation):
        raise ValueError(
            f"TensorFlow does not combine strides > 1 with dilations > 1; received strides={list(stride)}, "
            f"dilations={list(dilation)}"
        )
    channels_in = int(input.shape[-1] if channels_last else input.shape[1])
    per_group = int(filters.shape[-2])
    if per_group < 1 or channels_in % per_group:
        raise ValueError(
            f"the input's {channels_in} channels must be a multiple of filters.shape[-2] = {per_group} "
            f"(filters are (*k, in/groups, out))"
        )
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID' or explicit pairs; received {padding!r}")
        core_padding: Any = padding.lower()
    else:
        core_padding = _explicit_padding(padding, ndim, channels_last)
    return conv(
        input,
        convert_weight(filters, "tensorflow", "torch", transposed=False),
        stride=stride,
        padding=core_padding,
        dilation=dilation,
        groups=channels_in // per_group,
        channels_last=channels_last,
    )


def conv1d(
    input: Array,
    filters: Array,
    stride: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv1d``."""
    _check_rank(filters, 1)
    return convolution(input, filters, stride, padding, data_format, dilations)


def conv2d(
    input: Array,
    filters: Array,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv2d``."""
    _check_rank(filters, 2)
    return convolution(input, filters, strides, padding, data_format, dilations)


def conv3d(
    input: Array,
    filters: Array,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NDHWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv3d``."""
    _check_rank(filters, 3)
    return convolution(input, filters, strides, padding, data_format, dilations)
