"""ONNX ``Conv`` and ``ConvTranspose`` (opset 22), with ONNX's attributes as ONNX gives them.

Data is channels first; weights ``(M, C/group, *k)`` for ``Conv`` and
``(C, M/group, *k)`` for ``ConvTranspose``. ``pads`` is ``[b1, ..., bn, e1, ..., en]``.

ConvTranspose output, per axis:
``out = s*(n-1) + output_padding + d*(k-1) + 1 - b - e``.
With ``output_shape`` given, the pads are derived from it (``pads`` is ignored):
``total = s*(n-1) + output_padding + d*(k-1) + 1 - output_shape``, split
``b = total // 2, e = total - b`` for ``SAME_UPPER`` and ``b = total - total // 2,
e = total // 2`` otherwise. ``SAME_UPPER``/``SAME_LOWER`` without ``output_shape``
aim at ``out = n*s`` the same way (where ``total`` would be negative, the missing
elements become output padding, so the output is still ``n*s``).

Examples
--------
>>> import numpy as np
>>> x = np.array([[[1.0, 2.0, 3.0]]]); w = np.array([[[1.0, 10.0, 100.0]]])
>>> conv_transpose(x, w, auto_pad="SAME_UPPER", strides=[2])[0, 0]
array([  1.,  10., 102.,  20., 203.,  30.])
>>> conv_transpose(x, w, auto_pad="SAME_LOWER", strides=[2])[0, 0]
array([ 10., 102.,  20., 203.,  30., 300.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import shapes
from .._backend import Array, extend
from ..ops import conv as _core_conv
from ..ops import conv_transpose as _core_conv_transpose
from ..spec import ConvSpec
from ._common import as_array, ints, namespace
from ._writing import call_in, crop_code, extends, keyword_code, output_padding_below_stride, weight_line, with_code
from .base import Arguments, BenchmarkCase, CallShape, Framework, FrameworkCall, Options, SizeCandidate, SizeGoal

__all__ = ["FRAMEWORK", "Onnx", "conv", "conv_transpose", "conv_transpose_pads"]

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _attribute(value: Any, ndim: int, name: str, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * ndim
    values = ints(value, name)
    if len(values) != ndim:
        raise ValueError(f"{name} must list one int per spatial axis ({ndim}); received {list(values)}")
    return values


def _common(X: Any, W: Any, kernel_shape: Any, auto_pad: str) -> tuple[Any, Array, Array, int]:
    xp = namespace(X)
    X, W = as_array(xp, X), as_array(xp, W)
    ndim = W.ndim - 2
    if ndim < 1 or X.ndim != ndim + 2:
        raise ValueError(
            f"X must be (N, C, *spatial) with one spatial axis per kernel axis; received X of shape "
            f"{tuple(X.shape)} and W of shape {tuple(W.shape)}"
        )
    if kernel_shape is not None and ints(kernel_shape, "kernel_shape") != tuple(int(k) for k in W.shape[2:]):
        raise ValueError(
            f"kernel_shape {list(ints(kernel_shape, 'kernel_shape'))} does not match W's spatial shape "
            f"{list(W.shape[2:])}"
        )
    if auto_pad not in _AUTO_PADS:
        raise ValueError(f"auto_pad must be one of {', '.join(_AUTO_PADS)}; received {auto_pad!r}")
    return xp, X, W, ndim


def _pads_pairs(pads: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    values = (0,) * (2 * ndim) if pads is None else ints(pads, "pads")
    if len(values) != 2 * ndim:
        raise ValueError(f"pads must be [b1..b{ndim}, e1..e{ndim}] ({2 * ndim} ints); received {list(values)}")
    return tuple((values[i], values[i + ndim]) for i in range(ndim))


def conv(
    X: Array,
    W: Array,
    B: Array | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> Array:
    """ONNX ``Conv``."""
    _, X, W, ndim = _common(X, W, kernel_shape, auto_pad)
    return _core_conv(
        X,
        W,
        B,
        stride=_attribute(strides, ndim, "strides", 1),
        padding=_forward_padding(auto_pad, pads, ndim),
        dilation=_attribute(dilations, ndim, "dilations", 1),
        groups=group,
    )


def _forward_padding(auto_pad: str, pads: Any, ndim: int) -> Any:
    """``Conv``'s padding as core padding: ``pads`` as pairs, or ``auto_pad`` as tconv's string."""
    if auto_pad == "NOTSET":
        return _pads_pairs(pads, ndim)
    return {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}[auto_pad]


def conv_transpose_pads(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int],
    output_padding: Sequence[int],
    output_shape: Sequence[int] | None,
    pads: Sequence[int] | None,
    strides: Sequence[int],
) -> list[tuple[int, int]]:
    """The ``(b, e)`` pads ONNX's ``ConvTranspose`` uses on each axis (may be negative).

    Examples
    --------
    >>> conv_transpose_pads((3,), (3,), auto_pad="SAME_UPPER", dilations=(1,), output_padding=(0,),
    ...                     output_shape=None, pads=None, strides=(2,))
    [(0, 1)]
    >>> conv_transpose_pads((3,), (3,), dilations=(1,), output_padding=(0,), output_shape=(6,),
    ...                     pads=None, strides=(2,))
    [(1, 0)]
    """
    ndim = len(kernel_size)
    if output_shape is None and auto_pad in ("NOTSET", "VALID"):
        return list(_pads_pairs(pads if auto_pad == "NOTSET" else None, ndim))
    if output_shape is not None:
        targets = ints(output_shape, "output_shape")
        if len(targets) == ndim + 2:
            targets = targets[2:]
        if len(targets) != ndim:
            raise ValueError(f"output_shape must list the {ndim} spatial sizes; received {list(targets)}")
    else:
        targets = tuple(n * s for n, s in zip(input_size, strides))
    result = []
    for n, k, s, d, op, out in zip(input_size, kernel_size, strides, dilations, output_padding, targets):
        total = s * (n - 1) + op + shapes.dilated_kernel_size(k, d) - out
        if auto_pad == "SAME_UPPER":
            result.append((total // 2, total - total // 2))
        else:
            result.append((total - total // 2, total // 2))
    return result


def conv_transpose(
    X: Array,
    W: Array,
    B: Array | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    output_padding: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> Array:
    """ONNX ``ConvTranspose``."""
    xp, X, W, ndim = _common(X, W, kernel_shape, auto_pad)
    stride = _attribute(strides, ndim, "strides", 1)
    dilation = _attribute(dilations, ndim, "dilations", 1)
    op = _attribute(output_padding, ndim, "output_padding", 0)
    spatial = tuple(int(n) for n in X.shape[2:])
    pairs = conv_transpose_pads(
        spatial,
        tuple(int(k) for k in W.shape[2:]),
        auto_pad=auto_pad,
        dilations=dilation,
        output_padding=op,
        output_shape=output_shape,
        pads=pads,
        strides=stride,
    )
    # The core crops non-negative amounts and appends output padding below max(s, d); a
    # negative pad (an output larger than the full one) becomes zeros added afterwards.
    core_pairs = [(max(b, 0), max(e, 0)) for b, e in pairs]
    core_op = [min(o, max(s, d) - 1) for o, s, d in zip(op, stride, dilation)]
    out = _core_conv_transpose(
        X,
        W,
        None,
        stride=stride,
        padding=core_pairs,
        output_padding=core_op,
        dilation=dilation,
        groups=group,
    )
    for axis, ((b, e), o, co) in enumerate(zip(pairs, op, core_op)):
        before, after = -min(b, 0), -min(e, 0) + (o - co)
        if before or after:
            out = extend(xp, out, axis + 2, before, after)
    if B is not None:
        B = as_array(xp, B)
        if tuple(B.shape) != (int(out.shape[1]),):
            raise ValueError(f"B must have shape ({out.shape[1]},); received {tuple(B.shape)}")
        out = out + xp.reshape(B, (1, -1, *(1,) * ndim))
    return out


class Onnx(Framework):
    """ONNX's rules: ``Conv``/``ConvTranspose`` attributes, ``pads`` as begins then ends, ``auto_pad``."""

    name = "onnx"
    display_name = "ONNX"
    runtime = "onnxruntime"

    def parse(self, given: Arguments, call: CallShape) -> dict[str, Any]:
        """ONNX's ``strides``, ``dilations``, ``auto_pad``, ``pads``, ``group`` (and ``output_padding``,
        ``output_shape``); a ``ConvTranspose`` whose output ONNX pads with zeros is refused.

        Examples
        --------
        >>> FRAMEWORK.read(True, (3,), (3,), {"strides": [2], "auto_pad": "SAME_LOWER"})["padding"]
        ((1, 0),)
        """
        transposed, input_size, kernel_size, _ = call
        ndim = len(kernel_size)
        stride = _attribute(given.take("strides"), ndim, "strides", 1)
        dilation = _attribute(given.take("dilations"), ndim, "dilations", 1)
        auto_pad, pads = given.take("auto_pad", default="NOTSET"), given.take("pads")
        core: dict[str, Any] = {"stride": stride, "dilation": dilation, "groups": given.take("group", default=1)}
        if transposed:
            op = _attribute(given.take("output_padding"), ndim, "output_padding", 0)
            pairs = conv_transpose_pads(
                input_size,
                kernel_size,
                auto_pad=auto_pad,
                dilations=dilation,
                output_padding=op,
                output_shape=given.take("output_shape"),
                pads=pads,
                strides=stride,
            )
            if any(b < 0 or e < 0 for b, e in pairs):
                raise ValueError(f"this ONNX ConvTranspose pads its output with zeros ({pairs}); not translatable")
            core.update(padding=tuple(pairs), output_padding=op)
        else:
            core["padding"] = _forward_padding(auto_pad, pads, ndim)
        return core

    def write(self, spec: ConvSpec) -> FrameworkCall:
        his, ops, post = output_padding_below_stride(spec)
        notes = ["ONNX Runtime refuses output_padding >= stride: append the rest as zeros"] if extends(post) else []
        kwargs: dict[str, Any] = {
            "strides": list(spec.stride),
            "pads": [lo for lo, _ in spec.padding] + his,
            "dilations": list(spec.dilation),
            "group": spec.groups,
        }
        if spec.transposed:
            kwargs["output_padding"] = ops
        function = "conv_transpose" if spec.transposed else "conv"
        call = call_in(self.name, spec, ("onnx", function, kwargs), False, "B", post, notes)
        op_type = "ConvTranspose" if spec.transposed else "Conv"
        lines = ["from onnx import helper", weight_line(self.name, spec.transposed)]
        lines.append(f'node = helper.make_node("{op_type}", ["X", "W", "B"], ["Y"], {keyword_code(kwargs)})')
        crop = crop_code(post, False)
        if crop:
            lines.append(crop + "  (then add B)")
        return with_code(call, lines)

    def options_as_arguments(self, options: Options) -> dict[str, Any]:
        arguments: dict[str, Any] = dict(strides=options.stride, dilations=options.dilation, group=options.groups)
        if options.mode:
            arguments["auto_pad"] = {"same": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}[options.mode]
        else:
            pairs = options.pairs or ()
            arguments["pads"] = [lo for lo, _ in pairs] + [hi for _, hi in pairs]
        if options.transposed:
            arguments["output_padding"] = options.output_padding or (0,) * options.ndim
            if options.output_size is not None:
                arguments["output_shape"] = options.output_size
        return arguments

    def size_candidates(self, goal: SizeGoal) -> list[SizeCandidate]:
        """``output_shape`` (ONNX then computes the pads, the odd one at the start unless
        ``auto_pad='SAME_UPPER'``), ``auto_pad`` alone, or explicit ``pads`` (begin, end) with
        ``output_padding``."""
        fixed = {"strides": [goal.stride], "dilations": [goal.dilation]}
        shape = {"output_shape": [goal.want]}
        candidates = [SizeCandidate(f"output_shape=[{goal.want}] (auto_pad NOTSET)", {**fixed, **shape})]
        for auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            arguments = {**fixed, "auto_pad": auto_pad}
            candidates.append(SizeCandidate(f"auto_pad={auto_pad!r}", arguments))
            text = f"auto_pad={auto_pad!r}, output_shape=[{goal.want}]"
            candidates.append(SizeCandidate(text, {**arguments, **shape}))
        for lo, hi, op in goal.crops:
            text = f"pads=[{lo}, {hi}] (begin, end)" + (f", output_padding=[{op}]" if op else "")
            arguments = {**fixed, "pads": [lo, hi], "output_padding": [op]}
            candidates.append(SizeCandidate(text, arguments, explicit=True))
        return candidates

    def benchmark(self, case: BenchmarkCase) -> Callable[[], Any] | None:
        spec, x, w, b = case.spec, case.x, case.w, case.b
        if case.grad:
            return None
        import onnxruntime as ort
        from onnx import TensorProto, helper

        inputs = ["X", "W"] + (["B"] if b is not None else [])
        attributes: dict[str, Any] = dict(
            strides=list(spec.stride),
            pads=[lo for lo, _ in spec.padding] + [hi for _, hi in spec.padding],
            dilations=list(spec.dilation),
            group=spec.groups,
        )
        if spec.transposed:
            attributes["output_padding"] = list(spec.output_padding)
        node = helper.make_node("ConvTranspose" if spec.transposed else "Conv", inputs, ["Y"], **attributes)
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
            [
                helper.make_tensor(n, TensorProto.FLOAT, list(a.shape), a.ravel())
                for n, a in zip(inputs[1:], [w, b])
                if a is not None
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
        model.ir_version = 10
        options = ort.SessionOptions()
        # the thread count alone: ONNX Runtime's own defaults otherwise, spinning included, as a user has them
        # (the benchmark rests between the frameworks' turns, so the spinning does not reach the next one)
        options.intra_op_num_threads = case.threads
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"X": x})


FRAMEWORK = Onnx()
