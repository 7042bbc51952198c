"""Paddle's ``paddle.nn.functional.conv{1,2,3}d_transpose``, with Paddle's arguments and rules.

Weights ``(C_in, C_out/groups, *k)``; data ``NCL``/``NCHW``/``NCDHW`` by default
(``NLC``/``NHWC``/``NDHWC`` too). ``padding`` takes every form Paddle does: an int,
one int per axis, ``[lo1, hi1, lo2, hi2, ...]``, one ``[lo, hi]`` pair for every
dimension of the data (batch and channel pairs zero), or ``'SAME'``/``'VALID'``.

Paddle's ``'SAME'`` differs from TensorFlow's: it is the forward ``'SAME'`` padding
computed on the transposed convolution's *input* length ``n`` with the undilated
kernel, ``total = max((ceil(n/s) - 1)*s + k - n, 0)`` (extra element at the end),
and it resets the dilation to 1. So 3 -> 5 (not 6) for ``k=3, s=2``.

The positional order of ``dilation`` and ``groups`` differs between Paddle's 2-D
function and its 1-D and 3-D ones; these functions follow Paddle's.

Examples
--------
>>> import numpy as np
>>> x = np.array([[[1.0, 2.0, 3.0]]]); w = np.array([[[1.0, 10.0, 100.0]]])
>>> conv1d_transpose(x, w, stride=2, padding="SAME")[0, 0]
array([ 10., 102.,  20., 203.,  30.])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat

from .. import shapes
from .._backend import Array
from ..ops import conv as _core_conv
from ..ops import conv_transpose as _core_conv_transpose
from ..spec import ConvSpec
from ._common import as_array, ints, is_channels_last, namespace, per_axis, spatial_pairs
from ._writing import call_in, crop_code, extends, keyword_code, output_padding_below_stride, weight_line, with_code
from .base import Arguments, CallShape, Framework, FrameworkCall, Options, SizeCandidate, SizeGoal

__all__ = [
    "FRAMEWORK",
    "Paddle",
    "conv1d",
    "conv1d_transpose",
    "conv2d",
    "conv2d_transpose",
    "conv3d",
    "conv3d_transpose",
    "same_padding",
]


def same_padding(input_size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Paddle's ``'SAME'`` crop of a transposed convolution along one axis (dilation is reset to 1).

    Examples
    --------
    >>> same_padding(3, 3, 2), same_padding(5, 5, 3)
    ((1, 1), (1, 2))
    """
    return shapes.conv_same_padding(input_size, kernel_size, stride=stride)


def _padding_pairs(padding: Any, ndim: int, channels_last: bool) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, Sequence) and padding and all(isinstance(p, Sequence) for p in padding):
        pairs = [tuple(ints(p, "padding")) for p in padding]
        if len(pairs) != ndim + 2 or any(len(p) != 2 for p in pairs):
            raise ValueError(
                f"padding as pairs must have {ndim + 2} [before, after] pairs (one per dimension); received {padding!r}"
            )
        return spatial_pairs(pairs, padding, channels_last)
    values = ints(padding, "padding")
    if len(values) == 1:
        return ((values[0], values[0]),) * ndim
    if len(values) == ndim:
        return tuple((v, v) for v in values)
    if len(values) == 2 * ndim:
        return tuple((values[2 * i], values[2 * i + 1]) for i in range(ndim))
    raise ValueError(
        f"padding must be an int, {ndim} ints, {2 * ndim} ints, {ndim + 2} pairs, 'SAME' or 'VALID'; "
        f"received {padding!r}"
    )


def _spatial(x: Array, channels_last: bool) -> tuple[int, ...]:
    return tuple(int(n) for n in (x.shape[1:-1] if channels_last else x.shape[2:]))


def _read(
    transposed: bool, ndim: int, x: Array, weight: Array, given: dict[str, Any], data_format: str
) -> tuple[Array, Array, dict[str, Any]]:
    """The input and weight as arrays of one namespace, of rank ``ndim + 2``, and Paddle's ``given`` arguments read."""
    xp = namespace(x)
    x, weight = as_array(xp, x), as_array(xp, weight)
    if weight.ndim != ndim + 2 or x.ndim != ndim + 2:
        raise ValueError(
            f"conv{ndim}d{'_transpose' if transposed else ''} expects a {ndim + 2}-D input and weight; received x of "
            f"shape {tuple(x.shape)} and weight of shape {tuple(weight.shape)}"
        )
    channels_last = is_channels_last(data_format, ndim)
    kernel_size = tuple(int(k) for k in weight.shape[2:])
    arguments = FRAMEWORK.read(transposed, _spatial(x, channels_last), kernel_size, given, channels_last=channels_last)
    return x, weight, arguments


def _conv_transpose(
    ndim: int,
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: Any,
    padding: Any,
    output_padding: Any,
    dilation: Any,
    groups: int,
    output_size: Any,
    data_format: str,
) -> Array:
    given = {"stride": stride, "padding": padding, "output_padding": output_padding}
    given.update(dilation=dilation, groups=groups, output_size=output_size)
    x, weight, arguments = _read(True, ndim, x, weight, given, data_format)
    xp, channels_last = namespace(x), is_channels_last(data_format, ndim)
    spatial = _spatial(x, channels_last)
    sizes = [
        shapes.transposed_full_size(n, k, s, d) - lo - hi + op
        for n, k, s, d, (lo, hi), op in zip(
            spatial,
            weight.shape[2:],
            arguments["stride"],
            arguments["dilation"],
            arguments["padding"],
            arguments["output_padding"],
        )
    ]
    if 0 in sizes:  # Paddle returns an empty output where the crop takes the whole of it
        c_out = int(weight.shape[1]) * int(arguments["groups"])
        empty = (int(x.shape[0]), *sizes, c_out) if channels_last else (int(x.shape[0]), c_out, *sizes)
        return xp.zeros(tuple(empty), dtype=x.dtype, device=array_api_compat.device(x))
    return _core_conv_transpose(x, weight, bias, channels_last=channels_last, **arguments)


def conv1d_transpose(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    output_size: Any = None,
    data_format: str = "NCL",
    name: str | None = None,
) -> Array:
    """``paddle.nn.functional.conv1d_transpose``."""
    return _conv_transpose(
        1, x, weight, bias, stride, padding, output_padding, dilation, groups, output_size, data_format
    )


def conv2d_transpose(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    output_size: Any = None,
    data_format: str = "NCHW",
    name: str | None = None,
) -> Array:
    """``paddle.nn.functional.conv2d_transpose`` (``dilation`` before ``groups``, as in Paddle)."""
    return _conv_transpose(
        2, x, weight, bias, stride, padding, output_padding, dilation, groups, output_size, data_format
    )


def conv3d_transpose(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    output_size: Any = None,
    data_format: str = "NCDHW",
    name: str | None = None,
) -> Array:
    """``paddle.nn.functional.conv3d_transpose``."""
    return _conv_transpose(
        3, x, weight, bias, stride, padding, output_padding, dilation, groups, output_size, data_format
    )


def _conv(
    ndim: int,
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    data_format: str,
) -> Array:
    given = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    x, weight, arguments = _read(False, ndim, x, weight, given, data_format)
    return _core_conv(x, weight, bias, channels_last=is_channels_last(data_format, ndim), **arguments)


def conv1d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    data_format: str = "NCL",
    name: str | None = None,
) -> Array:
    """``paddle.nn.functional.conv1d``."""
    return _conv(1, x, weight, bias, stride, padding, dilation, groups, data_format)


def conv2d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    data_format: str = "NCHW",
    name: str | None = None,
) -> Array:
    """``paddle.nn.functional.conv2d``."""
    return _conv(2, x, weight, bias, stride, padding, dilation, groups, data_format)


def conv3d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    data_format: str = "NCDHW",
    name: str | None = None,
) -> Array:
    """``paddle.nn.functional.conv3d``."""
    return _conv(3, x, weight, bias, stride, padding, dilation, groups, data_format)


class Paddle(Framework):
    """Paddle's rules: ``paddle.nn.functional``'s arguments, every padding form, its own ``'SAME'``."""

    name = "paddle"
    display_name = "Paddle"

    def parse(self, given: Arguments, call: CallShape) -> dict[str, Any]:
        """Paddle's ``stride``, ``padding``, ``dilation``, ``groups`` (and ``output_padding``, ``output_size``).

        ``'SAME'`` resets the dilation to 1 in both directions, as Paddle does; padding pairs for
        every dimension are read in the data layout (channels first by default).

        Examples
        --------
        >>> FRAMEWORK.read(True, (3,), (3,), {"stride": 2, "padding": "SAME", "dilation": 2})
        {'stride': (2,), 'padding': ((1, 1),), 'output_padding': (0,), 'dilation': (1,), 'groups': 1}
        """
        transposed, input_size, kernel_size, channels_last = call
        stride, padding = given.take("stride", default=1), given.take("padding", default=0)
        dilation = given.take("dilation", default=1)
        if transposed:
            output_padding, output_size = given.take("output_padding", default=0), given.take("output_size")
        ndim = len(kernel_size)
        strides = per_axis(stride, ndim, "stride")
        dilations = per_axis(dilation, ndim, "dilation")
        if isinstance(padding, str):
            mode = padding.upper()
            if mode not in ("SAME", "VALID"):
                raise ValueError(f"padding must be 'SAME' or 'VALID' when a string; received {padding!r}")
            if mode == "SAME":
                pairs = tuple(same_padding(n, k, s) for n, k, s in zip(input_size, kernel_size, strides))
                dilations = (1,) * ndim
            else:
                pairs = ((0, 0),) * ndim
        else:
            pairs = _padding_pairs(padding, ndim, bool(channels_last))
        core: dict[str, Any] = {"stride": strides, "padding": pairs}
        if transposed:
            core["output_padding"] = _output_padding(
                input_size, kernel_size, strides, pairs, dilations, output_padding, output_size
            )
        core.update(dilation=dilations, groups=given.take("groups", default=1))
        return core

    def write(self, spec: ConvSpec) -> FrameworkCall:
        d = spec.ndim
        his, ops, post = output_padding_below_stride(spec)
        kwargs: dict[str, Any] = {
            "stride": spec.stride,
            "padding": [[0, 0], [0, 0], *[[lo, hi] for (lo, _), hi in zip(spec.padding, his)]],
            "dilation": spec.dilation,
            "groups": spec.groups,
        }
        if spec.transposed:
            kwargs["output_padding"] = tuple(ops)
        notes = ["Paddle refuses output_padding >= stride: append the rest as zeros"] if extends(post) else []
        function = f"conv{d}d_transpose" if spec.transposed else f"conv{d}d"
        call = call_in(self.name, spec, ("paddle.nn.functional", function, kwargs), False, "bias", post, notes)
        bias = "None" if extends(post) else "b"
        lines = ["import paddle.nn.functional as F", weight_line(self.name, spec.transposed)]
        lines.append(f"y = F.{function}(x, w, {bias}, {keyword_code(kwargs)})")
        crop = crop_code(post, False)
        if crop:
            lines.extend([crop, "y = y + b.reshape([1, -1] + [1] * (y.ndim - 2))"])
        return with_code(call, lines)

    def options_as_arguments(self, options: Options) -> dict[str, Any]:
        mode = options.mode
        arguments: dict[str, Any] = dict(
            stride=options.stride,
            dilation=options.dilation,
            groups=options.groups,
            padding=mode.upper() if mode else [v for p in options.pairs or () for v in p],
        )
        if options.transposed:
            arguments.update(output_padding=options.output_padding or 0, output_size=options.output_size)
        return arguments

    def size_candidates(self, goal: SizeGoal) -> list[SizeCandidate]:
        """Symmetric ``padding`` with ``output_padding`` (or ``output_size``), ``'SAME'``/``'VALID'`` (with
        ``output_size`` where it is needed), or explicit ``[lo, hi]`` pairs."""
        fixed = {"stride": goal.stride, "dilation": goal.dilation}
        candidates = [
            SizeCandidate(f"padding={p}, output_padding={op}", {**fixed, "padding": p, "output_padding": op})
            for p, op in goal.solutions
        ]
        for mode in ("SAME", "VALID"):
            candidates.append(SizeCandidate(f"padding={mode!r}", {**fixed, "padding": mode}))
            text = f"padding={mode!r}, output_size={goal.want}"
            candidates.append(SizeCandidate(text, {**fixed, "padding": mode, "output_size": goal.want}))
        for lo, hi, op in goal.crops:
            if lo != hi:
                text = f"padding=[{lo}, {hi}]" + (f", output_padding={op}" if op else "")
                arguments = {**fixed, "padding": [lo, hi], "output_padding": op}
                candidates.append(SizeCandidate(text, arguments, explicit=True))
        return candidates


def _output_padding(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    strides: tuple[int, ...],
    pairs: tuple[tuple[int, int], ...],
    dilations: tuple[int, ...],
    output_padding: Any,
    output_size: Any,
) -> tuple[int, ...]:
    """Paddle's output padding: ``output_padding``, or the one that gives ``output_size`` (not both)."""
    ndim = len(kernel_size)
    op = per_axis(output_padding, ndim, "output_padding")
    if output_size is None:
        return op
    if any(op):
        raise ValueError("output_padding option is mutually exclusive with output_size")
    if isinstance(output_size, Sequence) and len(output_size) != ndim:
        raise ValueError(
            f"output_size must be an int or a list of {ndim} ints (Paddle: its length must be {ndim}); received "
            f"{list(output_size)!r}"
        )
    size = per_axis(output_size, ndim, "output_size")
    derived = []
    for n, k, s, p, d, want in zip(input_size, kernel_size, strides, pairs, dilations, size):
        smallest = shapes.transposed_full_size(n, k, s, d) - p[0] - p[1]
        if not smallest <= want < smallest + s:
            raise ValueError(
                f"output_size {list(size)} is out of range: Paddle admits {smallest} to {smallest + s - 1} "
                f"on an axis with input size {n}"
            )
        derived.append(want - smallest)
    return tuple(derived)


FRAMEWORK = Paddle()
