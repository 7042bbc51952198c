"""TensorFlow's ``tf.nn`` convolutions, with TensorFlow's arguments, layouts and rules.

This module is long because a framework is one module: the eight ``tf.nn`` functions with TensorFlow's signatures,
its ``output_shape`` rule, and :class:`TensorFlow` (reading its call, writing a layer as its call,
running it for ``tconv bench``).

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

from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat
import numpy as np

from .. import shapes
from .._backend import Array
from ..ops import conv
from ..ops import conv_transpose as _core_conv_transpose
from ..spec import ConvSpec
from ._common import as_array, ints, is_channels_last, namespace, refuse_integers, spatial_pairs
from ._writing import call_in, channels_last_tail, extends, group_split, keyword_code, post_crop, weight_line, with_code
from .base import (
    Arguments,
    BenchmarkCase,
    CallShape,
    Framework,
    FrameworkCall,
    Options,
    Pairs,
    SizeCandidate,
    SizeGoal,
    convert_weight,
)

__all__ = [
    "FRAMEWORK",
    "TensorFlow",
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
    return spatial_pairs(pairs, padding, channels_last)


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
        full = shapes.transposed_full_size(n, k, s, d)
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
    refuse_integers("tf.nn.conv2d_transpose computes int32 on the CPU (wrapping on overflow)", input)
    xp = namespace(input)
    filters = as_array(xp, filters)
    ndim = filters.ndim - 2
    if ndim not in (1, 2, 3):
        raise ValueError(f"filters must have 3, 4 or 5 dimensions; received shape {tuple(filters.shape)}")
    channels_last = is_channels_last(data_format or _DEFAULT_FORMATS[ndim], ndim)
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
    if 0 in tuple(int(n) for n in input.shape):
        # No input element reaches the output: TensorFlow returns zeros of output_shape unchecked.
        return xp.zeros(shape, dtype=input.dtype, device=array_api_compat.device(input))
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
    """``tf.nn.conv2d_transpose`` (seed 004); ``output_shape`` may be the two spatial sizes alone (only this
    function takes them: ``conv1d_transpose`` and ``conv_transpose`` refuse them, ``conv3d_transpose`` aborts)."""
    _check_rank(filters, 2)
    shape = ints(output_shape, "output_shape")
    if len(shape) == 2:  # the batch and the channels come from the arrays
        x, f = as_array(namespace(input), input), as_array(namespace(input), filters)
        channels_last = is_channels_last(data_format, 2)
        batch, channels = int(x.shape[0]), int(f.shape[-2])
        output_shape = (batch, *shape, channels) if channels_last else (batch, channels, *shape)
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
    """``tf.nn.convolution``: filters ``(*k, in/groups, out)``; groups = input channels / ``filters.shape[-2]``.

    Unlike ``tf.nn.conv1d``/``conv2d``/``conv3d``, it refuses strides > 1 with dilations > 1.
    """
    return _convolution(input, filters, strides, padding, data_format, dilations, combine=False)


def _tf_output_size(n: int, k: int, s: int, d: int, pair: tuple[int, int]) -> int:
    """TensorFlow's windowed output size, ``(n + lo + hi - k_eff + s) / s`` truncated toward zero (its C++
    division): 0 where the padded input is a little short of the kernel, refused where it is negative."""
    k_eff = shapes.dilated_kernel_size(k, d)
    numerator = n + pair[0] + pair[1] - k_eff + s
    size = numerator // s if numerator >= 0 else -(-numerator // s)
    if size < 0:
        raise ValueError(
            f"Computed output size would be negative: {size} [input_size: {n}, effective_filter_size: {k_eff}, "
            f"stride: {s}] (TensorFlow's refusal)"
        )
    return size


def _convolution(
    input: Array,
    filters: Array,
    strides: int | Sequence[int] | None,
    padding: str | Sequence[Sequence[int]],
    data_format: str | None,
    dilations: int | Sequence[int] | None,
    *,
    combine: bool,
) -> Array:
    """The forward convolutions; ``combine``: whether strides > 1 may come with dilations > 1 (``tf.nn.conv1d``,
    ``conv2d`` and ``conv3d`` allow it on the CPU, ``tf.nn.convolution`` and Keras refuse it)."""
    refuse_integers("tf.nn.conv1d, conv2d and convolution compute int32 on the CPU (wrapping on overflow)", input)
    xp = namespace(input)
    filters = as_array(xp, filters)
    input = as_array(xp, input)
    ndim = filters.ndim - 2
    if ndim not in (1, 2, 3):
        raise ValueError(f"filters must have 3, 4 or 5 dimensions; received shape {tuple(filters.shape)}")
    channels_last = is_channels_last(data_format or _DEFAULT_FORMATS[ndim], ndim)
    stride = _spatial_values(strides, ndim, channels_last, "strides")
    dilation = _spatial_values(dilations, ndim, channels_last, "dilations")
    if not combine and any(s > 1 for s in stride) and any(d > 1 for d in dilation):
        raise ValueError(
            f"tf.nn.convolution does not combine strides > 1 with dilations > 1; received strides={list(stride)}, "
            f"dilations={list(dilation)} (tf.nn.conv1d, conv2d and conv3d do)"
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
    if not isinstance(core_padding, str) or core_padding == "valid":
        pairs = ((0, 0),) * ndim if isinstance(core_padding, str) else core_padding
        spatial = tuple(int(n) for n in (input.shape[1:-1] if channels_last else input.shape[2:]))
        kernel = tuple(int(k) for k in filters.shape[:ndim])
        sizes = tuple(_tf_output_size(*a) for a in zip(spatial, kernel, stride, dilation, pairs))
        if 0 in sizes:  # TensorFlow's empty output, where tconv's core would say the input is too short
            out = int(filters.shape[-1])
            batch = int(input.shape[0])
            empty = (batch, *sizes, out) if channels_last else (batch, out, *sizes)
            return xp.zeros(empty, dtype=input.dtype, device=array_api_compat.device(input))
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
    return _convolution(input, filters, stride, padding, data_format, dilations, combine=True)


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
    return _convolution(input, filters, strides, padding, data_format, dilations, combine=True)


def conv3d(
    input: Array,
    filters: Array,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NDHWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> Array:
    """``tf.nn.conv3d``: ``strides`` (and ``dilations``, when given) are lists of 5, as TensorFlow requires."""
    _check_rank(filters, 3)
    for name, value in (("strides", strides), ("dilations", dilations)):
        if value is not None and (isinstance(value, int) or len(ints(value, name)) != 5):
            raise TypeError(f"tf.nn.conv3d expects a list of 5 ints for '{name}'; received {value!r}")
    return _convolution(input, filters, strides, padding, data_format, dilations, combine=True)


class TensorFlow(Framework):
    """TensorFlow's rules: ``tf.nn``'s arguments, ``output_shape`` deciding the crop, channels last."""

    name = "tensorflow"
    display_name = "TensorFlow"
    transposed_layout = "(*k, out, in)"
    forward_layout = "(*k, in/groups, out)"
    kernel_first = True
    transposed_groups = False
    runtime = "tensorflow"

    def parse(self, given: Arguments, call: CallShape) -> dict[str, Any]:
        """TensorFlow's ``strides``, ``padding``, ``dilations``, ``groups`` (and ``output_shape``, required).

        ``output_shape`` is the spatial sizes or the whole shape; full-rank ``strides``,
        ``dilations`` and padding pairs are read in the data layout (channels last by default).

        Examples
        --------
        >>> FRAMEWORK.read(True, (3,), (3,), {"strides": 2, "output_shape": (6,)})["padding"]
        ((0, 1),)
        """
        transposed, input_size, kernel_size, channels_last = call
        ndim = len(kernel_size)
        last = True if channels_last is None else channels_last
        groups = given.take("groups", default=1)
        stride = _spatial_values(given.take("strides", default=1), ndim, last, "strides")
        dilation = _spatial_values(given.take("dilations"), ndim, last, "dilations")
        padding = given.take("padding", default="SAME" if transposed else "VALID")
        if not isinstance(padding, str):
            padding = [tuple(p) for p in padding]
            if len(padding) == ndim + 2:
                padding = padding[1:-1] if last else padding[2:]
        core: dict[str, Any] = {"stride": stride, "dilation": dilation, "groups": groups}
        if transposed:
            output_shape = given.take("output_shape")
            if output_shape is None:
                raise ValueError("a TensorFlow transposed convolution needs output_shape (spatial or full)")
            out = tuple(int(v) for v in output_shape)
            if len(out) == ndim + 2:
                out = out[1:-1] if last else out[2:]
            core["padding"], core["output_padding"] = resolve_conv_transpose(
                input_size, out, kernel_size, stride, padding, dilation
            )
        else:
            core["padding"] = padding.lower() if isinstance(padding, str) else padding
        return core

    def write(self, spec: ConvSpec) -> FrameworkCall:
        d = spec.ndim
        split, notes = group_split(spec, self.display_name)
        pre_pad: Pairs | None = None
        subsample: tuple[int, ...] = ()
        if spec.transposed:
            mode, pairs, op, size = self._transposed_padding(spec, notes)
            post = post_crop(spec, pairs, op)
            if any(dil > 1 for dil in spec.dilation):
                notes.append("TensorFlow's CPU kernels refuse dilations > 1 in conv*_transpose (they run on GPU)")
            kwargs: dict[str, Any] = {
                "output_shape": None,
                "strides": spec.stride,
                "padding": mode,
                "dilations": spec.dilation,
            }
            function = f"conv{d}d_transpose"
        else:
            size = spec.output_size
            post = ((0, 0),) * d
            same = tuple(
                shapes.conv_same_padding(n, k, stride=s, dilation=dil)
                for n, k, s, dil in zip(spec.input_size, spec.kernel_size, spec.stride, spec.dilation)
            )
            if spec.padding == same:
                padding: Any = "SAME"
            elif all(p == (0, 0) for p in spec.padding):
                padding = "VALID"
            else:
                padding, pre_pad = "VALID", spec.padding
                notes.append("pad the input with tf.pad first (tf.nn.convolution takes only SAME or VALID)")
            stride = spec.stride
            if any(s > 1 for s in spec.stride) and any(dil > 1 for dil in spec.dilation):
                if padding == "SAME":
                    padding, pre_pad = "VALID", spec.padding
                stride, subsample = (1,) * d, spec.stride
                notes.append("TensorFlow does not combine strides with dilations: run at stride 1 and subsample")
            kwargs = {"strides": stride, "padding": padding, "dilations": spec.dilation}
            function = "convolution"
        steps = {"pre_pad": pre_pad, "subsample": subsample, "split_groups": split, "output_size": size}
        call = call_in(self.name, spec, ("tf.nn", function, kwargs), True, None, post, notes, **steps)
        lines = ["import tensorflow as tf", weight_line(self.name, spec.transposed)]
        if pre_pad is not None:
            lines.append(f"x = tf.pad(x, {[[0, 0], *[list(p) for p in pre_pad], [0, 0]]})")
        shown = {k: (("N", *size, spec.out_channels // split) if k == "output_shape" else v) for k, v in kwargs.items()}
        args = keyword_code(shown).replace("'N'", "N")
        lines.append(f"y = tf.nn.{function}(x, w, {args})" + ("" if extends(post) else " + b"))
        channels_last_tail(lines, post, subsample)
        return with_code(call, lines)

    @staticmethod
    def _transposed_padding(spec: ConvSpec, notes: list[str]) -> tuple[Any, Pairs, tuple[int, ...], tuple[int, ...]]:
        """TensorFlow's ``padding`` for a transposed ``spec``, the crop and output padding it gives, and the
        size of its output (the full output, to slice, where no padding of TensorFlow's gives the crop)."""
        given: list[str | Pairs] = ["SAME", "VALID", *([spec.padding] if spec.ndim == 2 else [])]
        for padding in given:
            try:
                pairs, op = resolve_conv_transpose(
                    spec.input_size, spec.output_size, spec.kernel_size, spec.stride, padding, spec.dilation
                )
            except ValueError:
                continue
            if pairs == spec.padding and op == spec.output_padding:
                mode = padding if isinstance(padding, str) else [[0, 0], *(list(p) for p in padding), [0, 0]]
                return mode, pairs, op, spec.output_size
        notes.append("TensorFlow cannot place this crop: compute the full output with VALID and slice it")
        full = tuple(
            shapes.transposed_full_size(n, k, s, dil)
            for n, k, s, dil in zip(spec.input_size, spec.kernel_size, spec.stride, spec.dilation)
        )
        return "VALID", ((0, 0),) * spec.ndim, (0,) * spec.ndim, full

    def options_as_arguments(self, options: Options) -> dict[str, Any]:
        mode, pairs = options.mode, options.pairs
        padding: Any = mode.upper() if mode else [list(p) for p in pairs or ()]
        arguments: dict[str, Any] = dict(strides=options.stride, padding=padding, dilations=options.dilation)
        if options.transposed:
            want = options.output_size
            if want is None:
                if mode == "same":
                    want = tuple(n * s for n, s in zip(options.input_size, options.stride))
                else:
                    ops = options.output_padding or (0,) * options.ndim
                    full = [
                        shapes.transposed_full_size(n, k, s, d)
                        for n, k, s, d in zip(options.input_size, options.kernel_size, options.stride, options.dilation)
                    ]
                    want = tuple(
                        f - lo - hi + op for f, (lo, hi), op in zip(full, pairs or ((0, 0),) * options.ndim, ops)
                    )
            arguments["output_shape"] = want
            if options.groups > 1:
                raise ValueError(
                    f"{self.name} transposed convolutions have no groups; received groups={options.groups}"
                )
        elif options.groups > 1:
            arguments["groups"] = options.groups
        return arguments

    def default_padding(self, transposed: bool) -> Any:
        return "same" if transposed else "valid"  # conv*_transpose: 'SAME'; convolution: 'VALID'

    def size_candidates(self, goal: SizeGoal) -> list[SizeCandidate]:
        """``output_shape`` decides the size; ``'SAME'``, ``'VALID'`` (where TensorFlow admits the size)
        or, for ``conv2d_transpose``, explicit pairs decide the crop."""
        fixed = {"strides": goal.stride, "dilations": goal.dilation, "output_shape": (goal.want,)}
        shape = f"output_shape with {goal.want} on this axis"
        candidates = [
            SizeCandidate(f"padding={mode!r}, {shape}", {**fixed, "padding": mode}) for mode in ("SAME", "VALID")
        ]
        if goal.ndim == 2:  # conv2d_transpose alone takes explicit pairs
            for lo, hi, op in goal.crops:
                if op == 0:
                    text = f"padding=[[0, 0], [{lo}, {hi}], ..., [0, 0]], {shape}"
                    candidates.append(SizeCandidate(text, {**fixed, "padding": [(lo, hi)]}, explicit=True))
        return candidates

    def set_threads(self, threads: int) -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    def benchmark(self, case: BenchmarkCase) -> Callable[[], Any] | None:
        spec, x, w = case.spec, case.x, case.w
        if not spec.transposed:
            return None if case.grad else _benchmark_forward(case)
        if case.grad or spec.groups != 1 or any(dil != 1 for dil in spec.dilation):
            return None  # tf.nn.conv*_transpose has no groups, and its CPU kernels refuse dilation
        d = spec.ndim
        pairs, _ = resolve_conv_transpose(
            spec.input_size, spec.output_size, spec.kernel_size, spec.stride, spec.padding, spec.dilation
        )
        if pairs != spec.padding or (d != 2 and any(p != (0, 0) for p in spec.padding)):
            return None
        import tensorflow as tf

        xt = tf.constant(np.moveaxis(x, 1, -1))
        ft = tf.constant(np.ascontiguousarray(np.transpose(w, (*range(2, d + 2), 1, 0))))
        shape = (x.shape[0], *spec.output_size, spec.out_channels)
        padding = [[0, 0], *(list(p) for p in spec.padding), [0, 0]] if d == 2 else "VALID"
        fn = tf.function(lambda: tf.nn.conv_transpose(xt, ft, shape, list(spec.stride), padding=padding))
        return lambda: fn().numpy()


def _benchmark_forward(case: BenchmarkCase) -> Callable[[], Any] | None:
    """``tconv bench``'s forward convolution in TensorFlow, channels-last (its layout): ``tf.nn.conv2d`` with
    explicit padding, ``tf.nn.depthwise_conv2d`` for depthwise 2-D layers, else ``tf.nn.convolution`` after a
    ``tf.pad``; ``None`` for grouped layers other than depthwise 2-D and for dilation with a stride (TensorFlow
    refuses both)."""
    spec, x, w, b = case.spec, case.x, case.w, case.b
    d, groups = spec.ndim, spec.groups
    dilated = any(dil != 1 for dil in spec.dilation)
    depthwise = d == 2 and groups > 1 and groups == spec.in_channels == spec.out_channels
    if (groups != 1 and not depthwise) or (dilated and any(s != 1 for s in spec.stride)):
        return None
    import tensorflow as tf

    xt = tf.constant(np.ascontiguousarray(np.moveaxis(x, 1, -1)))
    bt = None if b is None else tf.constant(b)
    pads = [[0, 0], *(list(p) for p in spec.padding), [0, 0]]
    if depthwise:  # (k, k, C_in, 1) from (C_in, 1, k, k)
        ft = tf.constant(np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1))))

        def run() -> Any:  # explicit padding aborts TensorFlow's CPU depthwise kernel: pad first
            padded = tf.pad(xt, pads) if any(lo or hi for lo, hi in spec.padding) else xt
            y = tf.nn.depthwise_conv2d(padded, ft, [1, *spec.stride, 1], padding="VALID", dilations=list(spec.dilation))
            return y if bt is None else tf.nn.bias_add(y, bt)
    else:
        ft = tf.constant(np.ascontiguousarray(np.transpose(w, (*range(2, d + 2), 1, 0))))

        def run() -> Any:
            if d == 2:
                y = tf.nn.conv2d(xt, ft, list(spec.stride), padding=pads, dilations=list(spec.dilation))
            else:
                padded = tf.pad(xt, pads) if any(lo or hi for lo, hi in spec.padding) else xt
                y = tf.nn.convolution(
                    padded, ft, strides=list(spec.stride), padding="VALID", dilations=list(spec.dilation)
                )
            return y if bt is None else tf.nn.bias_add(y, bt)

    fn = tf.function(run)
    return lambda: fn().numpy()


FRAMEWORK = TensorFlow()
