"""Keras 3's convolution rules (TensorFlow backend), as functions the layers use.

Keras ``Conv{1,2,3}DTranspose`` computes its output length with its own rule
(:func:`conv_transpose_output_length`) and then runs TensorFlow's
``conv_transpose`` with that ``output_shape``, so the crop is TensorFlow's
(:func:`tconv.compat.tensorflow.resolve_conv_transpose`); :meth:`Keras.read` gives the core arguments:

* ``output_padding=None``: ``'same'`` gives ``n*s``; ``'valid'`` gives
  ``n*s + max(k_eff - s, 0)`` (the full output, or ``n*s`` when the kernel is
  shorter than the stride).
* ``output_padding`` given (each below the stride): ``(n-1)*s + k_eff - 2*pad + op``
  with ``pad = k_eff // 2`` for ``'same'`` and ``0`` for ``'valid'``. So ``'same'``
  with ``output_padding=0`` is *not* ``n*s`` in general (3 -> 5 for k=3, s=2).

Kernels are ``(*k, out, in)`` for the transposed layers and ``(*k, in/groups, out)``
for the forward ones; data is channels last unless ``data_format='channels_first'``.

Examples
--------
>>> conv_transpose_output_length(7, 5, "same", stride=2)
14
>>> conv_transpose_output_length(3, 3, "same", output_padding=0, stride=2)
5
>>> conv_transpose_output_length(4, 2, "valid", stride=3)
12
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import shapes
from .._backend import Array
from ..ops import conv as _core_conv
from ..ops import conv_transpose as _core_conv_transpose
from ..spec import ConvSpec
from ._common import as_array, is_channels_last, namespace, per_axis
from ._writing import (
    call_in,
    channels_last_tail,
    extends,
    fmt,
    group_split,
    keyword_code,
    post_crop,
    weight_line,
    with_code,
)
from .base import Arguments, CallShape, Framework, FrameworkCall, Options, SizeCandidate, SizeGoal, convert_weight
from .tensorflow import resolve_conv_transpose

__all__ = [
    "FRAMEWORK",
    "Keras",
    "conv",
    "conv_output_length",
    "conv_transpose",
    "conv_transpose_output_length",
]


def _padding_mode(padding: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise ValueError(f"padding must be one of {', '.join(map(repr, allowed))}; received {padding!r}")
    return padding.lower()


def conv_transpose_output_length(
    input_length: int,
    kernel_size: int,
    padding: str,
    output_padding: int | None = None,
    stride: int = 1,
    dilation: int = 1,
) -> int:
    """Keras 3's ``deconv_output_length`` for one axis (see the module docstring)."""
    mode = _padding_mode(padding, ("valid", "same"))
    k_eff = shapes.dilated_kernel_size(kernel_size, dilation)
    if output_padding is None:
        if mode == "valid":
            return input_length * stride + max(k_eff - stride, 0)
        return input_length * stride
    pad = k_eff // 2 if mode == "same" else 0
    return (input_length - 1) * stride + k_eff - 2 * pad + output_padding


def conv_output_length(input_length: int, kernel_size: int, padding: str, stride: int = 1, dilation: int = 1) -> int:
    """Keras's forward output length: ``'valid'``, ``'same'`` (``ceil(n/s)``) or ``'causal'``.

    Examples
    --------
    >>> conv_output_length(7, 3, "valid", stride=2), conv_output_length(7, 3, "same", stride=2)
    (3, 4)
    """
    mode = _padding_mode(padding, ("valid", "same", "causal"))
    if mode == "same":
        return -(-input_length // stride)
    k_eff = shapes.dilated_kernel_size(kernel_size, dilation)
    pad = (k_eff - 1, 0) if mode == "causal" else (0, 0)
    return shapes.conv_output_size(input_length, kernel_size, stride=stride, padding=pad, dilation=dilation)


def _transposed_arguments(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    strides: int | Sequence[int],
    padding: str,
    output_padding: int | Sequence[int] | None,
    dilation_rate: int | Sequence[int],
) -> dict[str, Any]:
    """``stride``, ``padding`` (pairs), ``output_padding`` and ``dilation`` of a Keras transposed convolution."""
    ndim = len(kernel_size)
    mode = _padding_mode(padding, ("valid", "same"))
    stride = per_axis(strides, ndim, "strides")
    dilation = per_axis(dilation_rate, ndim, "dilation_rate")
    ops: tuple[int | None, ...]
    if output_padding is None:
        ops = (None,) * ndim
    else:
        ops = per_axis(output_padding, ndim, "output_padding")
        for op, s in zip(ops, stride):
            if op >= s:
                raise ValueError(f"strides {stride} must be greater than output padding {tuple(ops)} (Keras's rule)")
    lengths = tuple(
        conv_transpose_output_length(n, k, mode, op, s, d)
        for n, k, op, s, d in zip(input_size, kernel_size, ops, stride, dilation)
    )
    pairs, core_ops = resolve_conv_transpose(input_size, lengths, kernel_size, stride, mode.upper(), dilation)
    return {"stride": stride, "padding": pairs, "output_padding": core_ops, "dilation": dilation}


def _forward_arguments(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    strides: int | Sequence[int],
    padding: str,
    dilation_rate: int | Sequence[int],
) -> dict[str, Any]:
    """``stride``, ``padding`` (pairs) and ``dilation`` of a Keras convolution (``'causal'`` included)."""
    ndim = len(kernel_size)
    mode = _padding_mode(padding, ("valid", "same", "causal"))
    stride = per_axis(strides, ndim, "strides")
    dilation = per_axis(dilation_rate, ndim, "dilation_rate")
    if any(s > 1 for s in stride) and any(d > 1 for d in dilation):
        raise ValueError(
            f"Keras does not combine strides > 1 with dilation_rate > 1; received strides={stride}, "
            f"dilation_rate={dilation}"
        )
    if mode == "causal":
        if ndim != 1:
            raise ValueError(f"padding='causal' is only for 1-D convolutions; received {ndim} spatial axes")
        pairs: Any = ((shapes.dilated_kernel_size(kernel_size[0], dilation[0]) - 1, 0),)
    else:
        pairs = tuple(
            shapes.conv_same_padding(n, k, stride=s, dilation=d) if mode == "same" else (0, 0)
            for n, k, s, d in zip(input_size, kernel_size, stride, dilation)
        )
    return {"stride": stride, "padding": pairs, "dilation": dilation}


def _layout(inputs: Any, kernel: Any, data_format: str | None) -> tuple[Any, Array, Array, int, bool]:
    xp = namespace(inputs)
    kernel = as_array(xp, kernel)
    inputs = as_array(xp, inputs)
    ndim = kernel.ndim - 2
    if ndim < 1:
        raise ValueError(f"kernel must have at least 3 dimensions; received shape {tuple(kernel.shape)}")
    channels_last = is_channels_last(data_format or "channels_last", ndim)
    if inputs.ndim != ndim + 2:
        raise ValueError(
            f"inputs must have {ndim + 2} dimensions for a kernel of shape {tuple(kernel.shape)}; "
            f"received {tuple(inputs.shape)}"
        )
    return xp, inputs, kernel, ndim, channels_last


def conv_transpose(
    inputs: Array,
    kernel: Array,
    strides: int | Sequence[int] = 1,
    padding: str = "valid",
    output_padding: int | Sequence[int] | None = None,
    data_format: str | None = None,
    dilation_rate: int | Sequence[int] = 1,
) -> Array:
    """``keras.ops.conv_transpose``: kernel ``(*k, out, in)``, channels last by default.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1.0], [2.0], [3.0]]]); k = np.array([[[1.0]], [[10.0]], [[100.0]]])
    >>> conv_transpose(x, k, 2, "same")[0, :, 0]
    array([  1.,  10., 102.,  20., 203.,  30.])
    >>> conv_transpose(x, k, 2, "same", output_padding=0)[0, :, 0]
    array([ 10., 102.,  20., 203.,  30.])
    """
    _, inputs, kernel, ndim, channels_last = _layout(inputs, kernel, data_format)
    spatial = tuple(int(n) for n in (inputs.shape[1:-1] if channels_last else inputs.shape[2:]))
    arguments = FRAMEWORK.read(
        True,
        spatial,
        tuple(int(k) for k in kernel.shape[:ndim]),
        {"strides": strides, "padding": padding, "output_padding": output_padding, "dilation_rate": dilation_rate},
    )
    return _core_conv_transpose(
        inputs, convert_weight(kernel, "keras", "torch"), channels_last=channels_last, **arguments
    )


def conv(
    inputs: Array,
    kernel: Array,
    strides: int | Sequence[int] = 1,
    padding: str = "valid",
    data_format: str | None = None,
    dilation_rate: int | Sequence[int] = 1,
) -> Array:
    """``keras.ops.conv``: kernel ``(*k, in/groups, out)``, groups inferred, channels last by default."""
    _, inputs, kernel, ndim, channels_last = _layout(inputs, kernel, data_format)
    spatial = tuple(int(n) for n in (inputs.shape[1:-1] if channels_last else inputs.shape[2:]))
    channels_in = int(inputs.shape[-1] if channels_last else inputs.shape[1])
    per_group = int(kernel.shape[-2])
    if channels_in % per_group:
        raise ValueError(f"the inputs' {channels_in} channels must be a multiple of kernel.shape[-2] = {per_group}")
    arguments = FRAMEWORK.read(
        False,
        spatial,
        tuple(int(k) for k in kernel.shape[:ndim]),
        {"strides": strides, "padding": padding, "dilation_rate": dilation_rate, "groups": channels_in // per_group},
    )
    return _core_conv(
        inputs, convert_weight(kernel, "keras", "torch", transposed=False), channels_last=channels_last, **arguments
    )


class Keras(Framework):
    """Keras 3's rules: its output-length rule, ``'same'``/``'valid'``/``'causal'`` padding, channels last."""

    name = "keras"
    display_name = "Keras"
    transposed_layout = "(*k, out, in)"
    forward_layout = "(*k, in/groups, out)"
    kernel_first = True
    transposed_groups = False

    def parse(self, given: Arguments, call: CallShape) -> dict[str, Any]:
        """Keras's ``strides``, ``padding``, ``dilation_rate``, ``groups`` (and ``output_padding``).

        Keras's checks apply: ``output_padding`` must be below the stride on every axis.

        Examples
        --------
        Seed 000's generator layers:

        >>> FRAMEWORK.read(True, (7, 7), (5, 5), {"strides": 2, "padding": "same"})["padding"]
        ((1, 2), (1, 2))
        >>> FRAMEWORK.read(True, (3,), (3,), {"strides": 2, "padding": "same", "output_padding": 0})["padding"]
        ((1, 1),)
        >>> FRAMEWORK.read(False, (10,), (3,), {"padding": "causal", "dilation_rate": 2})["padding"]
        ((4, 0),)
        """
        transposed, input_size, kernel_size, _ = call
        groups = given.take("groups", default=1)
        strides, padding = given.take("strides", default=1), given.take("padding", default="valid")
        dilation_rate = given.take("dilation_rate", default=1)
        if transposed:
            output_padding = given.take("output_padding")
            core = _transposed_arguments(input_size, kernel_size, strides, padding, output_padding, dilation_rate)
        else:
            core = _forward_arguments(input_size, kernel_size, strides, padding, dilation_rate)
        return {**core, "groups": groups}

    def write(self, spec: ConvSpec) -> FrameworkCall:
        d = spec.ndim
        split, notes = group_split(spec, self.display_name)
        pre_pad = None
        subsample: tuple[int, ...] = ()
        if spec.transposed:
            mode, output_padding, post = self._transposed_mode(spec, notes)
            kwargs: dict[str, Any] = {
                "strides": spec.stride,
                "padding": mode,
                "output_padding": output_padding,
                "data_format": "channels_last",
                "dilation_rate": spec.dilation,
            }
            function = "conv_transpose"
            layer_code = (
                f"keras.layers.Conv{d}DTranspose({spec.out_channels // split}, {fmt(spec.kernel_size)}, "
                f"strides={fmt(spec.stride)}, padding={mode!r}, output_padding={fmt(output_padding)}, "
                f"dilation_rate={fmt(spec.dilation)})"
            )
        else:
            post = ((0, 0),) * d
            mode = ""
            stride = spec.stride
            if any(st > 1 for st in spec.stride) and any(dil > 1 for dil in spec.dilation):
                stride, subsample = (1,) * d, tuple(spec.stride)
                notes.append("Keras does not combine strides with dilation_rate: run at stride 1 and subsample")
            for candidate in ("same", "valid", "causal") if not subsample else ():
                try:
                    a = _forward_arguments(spec.input_size, spec.kernel_size, spec.stride, candidate, spec.dilation)
                except ValueError:
                    continue
                if a["padding"] == spec.padding:
                    mode = candidate
                    break
            if not mode:
                mode, pre_pad = "valid", spec.padding
                notes.append(
                    "Keras pads only 'same'/'valid'/'causal': add a ZeroPadding layer (or pad the input) first"
                )
            kwargs = dict(strides=stride, padding=mode, data_format="channels_last", dilation_rate=spec.dilation)
            function = "conv"
            layer_code = (
                f"keras.layers.Conv{d}D({spec.out_channels}, {fmt(spec.kernel_size)}, "
                f"strides={fmt(stride)}, padding={mode!r}, dilation_rate={fmt(spec.dilation)}, "
                f"groups={spec.groups})"
            )
        steps = {"pre_pad": pre_pad, "subsample": subsample, "split_groups": split}
        call = call_in(self.name, spec, ("keras.ops", function, kwargs), True, None, post, notes, **steps)
        lines = ["import keras", weight_line(self.name, spec.transposed)]
        if pre_pad is not None:
            lines.append(f"x = keras.ops.pad(x, {[[0, 0], *[list(p) for p in pre_pad], [0, 0]]})")
        lines.append(f"y = keras.ops.{function}(x, w, {keyword_code(kwargs)})" + ("" if extends(post) else " + b"))
        lines.append(f"# as a layer: {layer_code}, then layer.set_weights([w, b])")
        channels_last_tail(lines, post, subsample)
        return with_code(call, lines)

    @staticmethod
    def _transposed_mode(
        spec: ConvSpec, notes: list[str]
    ) -> tuple[str, tuple[int, ...] | None, tuple[tuple[int, int], ...]]:
        """Keras's ``padding`` and ``output_padding`` for a transposed ``spec``, and the crop still to make."""
        d = spec.ndim
        for mode in ("same", "valid"):
            try:
                a = _transposed_arguments(spec.input_size, spec.kernel_size, spec.stride, mode, None, spec.dilation)
                if a["padding"] == spec.padding and a["output_padding"] == spec.output_padding:
                    return mode, None, post_crop(spec, a["padding"], a["output_padding"])
                per_axis_op = []
                for axis in range(d):
                    found = None
                    for keras_op in range(spec.stride[axis]):
                        one = _transposed_arguments(
                            spec.input_size[axis : axis + 1],
                            spec.kernel_size[axis : axis + 1],
                            spec.stride[axis],
                            mode,
                            keras_op,
                            spec.dilation[axis],
                        )
                        if (
                            one["padding"][0] == spec.padding[axis]
                            and one["output_padding"][0] == spec.output_padding[axis]
                        ):
                            found = keras_op
                            break
                    per_axis_op.append(found)
                if all(op is not None for op in per_axis_op):
                    return mode, tuple(per_axis_op), post_crop(spec, spec.padding, spec.output_padding)  # type: ignore[arg-type]
            except ValueError:
                continue
        a = _transposed_arguments(spec.input_size, spec.kernel_size, spec.stride, "valid", None, spec.dilation)
        notes.append("Keras's 'same'/'valid' cannot place this crop: use 'valid' and slice the output")
        return "valid", None, post_crop(spec, a["padding"], a["output_padding"])

    def options_as_arguments(self, options: Options) -> dict[str, Any]:
        mode = options.mode
        if mode not in ("same", "valid") and not (mode == "causal" and not options.transposed):
            raise ValueError(f"Keras takes padding 'same' or 'valid'; received padding={options.padding!r}")
        arguments: dict[str, Any] = dict(strides=options.stride, padding=mode, dilation_rate=options.dilation)
        if options.transposed:
            arguments["output_padding"] = options.output_padding
            if options.output_size is not None:
                raise ValueError(
                    f"Keras's Conv{options.ndim}DTranspose has no output size argument (its length follows from "
                    f"padding and output_padding); received output_size={options.output_size}: --want lists "
                    "Keras's paddings that give it"
                )
            if options.groups > 1:
                raise ValueError(
                    f"Keras's Conv{options.ndim}DTranspose has no groups argument; received groups={options.groups}. "
                    "Describe the layer in a framework with groups (--framework torch): translate writes Keras's "
                    "form as one call per group"
                )
        elif options.groups > 1:
            arguments["groups"] = options.groups
        return arguments

    def default_padding(self, transposed: bool) -> Any:
        return "valid"

    def size_candidates(self, goal: SizeGoal) -> list[SizeCandidate]:
        """``'same'`` or ``'valid'``, with or without ``output_padding`` (below the stride): Keras's rule
        decides the length, and TensorFlow's the crop."""
        fixed = {"strides": goal.stride, "dilation_rate": goal.dilation}
        candidates = []
        for mode in ("same", "valid"):
            candidates.append(SizeCandidate(f"padding={mode!r}", {**fixed, "padding": mode}))
            for op in range(goal.stride):
                text = f"padding={mode!r}, output_padding={op}"
                candidates.append(SizeCandidate(text, {**fixed, "padding": mode, "output_padding": op}))
        return candidates


FRAMEWORK = Keras()
