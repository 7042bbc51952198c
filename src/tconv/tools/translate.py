"""Translate a convolution or transposed convolution from one framework's terms into every other's.

:func:`translate` reads a layer in one framework's own arguments, resolves it into
tconv's single description (:class:`tconv.ConvSpec`, through the front ends in
:mod:`tconv.compat`), and writes it back out for each framework: the function and
its arguments, the weight conversion, and, where the target cannot say it, the
extra step the user must add (a crop or zero-pad of the output, a pad of the input,
a split over groups). Each :class:`Layer` can :meth:`Layer.run` itself on any
module with the framework's function names: the real framework, or tconv's front
end, which is how the tests check that every translated form computes the same
array. ``str(translation)`` is the code to paste.

Examples
--------
>>> t = translate("tensorflow", input_size=(7, 7), kernel_size=(5, 5), in_channels=128,
...               out_channels=64, strides=2, padding="SAME", output_shape=(14, 14))
>>> t.spec.padding, t.spec.output_size
(((1, 2), (1, 2)), (14, 14))
>>> print(t.layers["torch"].code)
import torch.nn.functional as F
w = weight  # (in, out/groups, *k): PyTorch's own layout
y = F.conv_transpose2d(x, w, b, stride=(2, 2), padding=(1, 1), output_padding=(0, 0), groups=1, dilation=(1, 1))
y = y[:, :, 0:-1, 0:-1]         # PyTorch pads symmetrically: crop (0, 1) more on each axis
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import shapes
from ..frameworks import jax as cjax
from ..frameworks import keras as ckeras
from ..frameworks import onnx as connx
from ..frameworks import paddle as cpaddle
from ..frameworks import tensorflow as ctf
from ..frameworks import torch as ctorch
from ..frameworks._common import FRAMEWORKS, convert_weight
from ..spec import ConvSpec

__all__ = ["Layer", "Translation", "translate"]

Pairs = tuple[tuple[int, int], ...]

_SPATIAL = {1: "L", 2: "HW", 3: "DHW"}


def _tuple(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class Layer:
    """One framework's way of writing the layer, and how to run it.

    ``post`` holds, per spatial axis, ``(before, after)`` elements to remove from the
    framework's output (negative: zeros to add); ``pre_pad`` zeros to add to the input
    first; ``split_groups`` how many separate calls (one per group) to concatenate.
    """

    framework: str
    module: str
    function: str
    kwargs: dict[str, Any]
    channels_last: bool
    transposed: bool
    weight_layout: str
    bias_argument: str | None
    output_size: tuple[int, ...]
    pre_pad: Pairs | None = None
    post: Pairs = ()
    subsample: tuple[int, ...] = ()
    split_groups: int = 1
    notes: tuple[str, ...] = ()
    code: str = field(default="", compare=False)

    @property
    def exact(self) -> bool:
        """Whether the framework says the layer in one call, with no extra step."""
        return (
            self.pre_pad is None
            and not any(b or a for b, a in self.post)
            and not any(s != 1 for s in self.subsample)
            and self.split_groups == 1
        )

    @property
    def bias_in_call(self) -> bool:
        """Whether the bias goes into the call; otherwise it is added at the end (after any zero-extension)."""
        return self.bias_argument is not None and not any(b < 0 or a < 0 for b, a in self.post)

    def convert_weight(self, w: Any) -> Any:
        """tconv's weight (PyTorch layout) in the layout this call wants."""
        if self.weight_layout == "oihw-flipped":  # lax.conv_general_dilated with lhs_dilation
            d = w.ndim - 2
            g = self.split_groups if self.split_groups > 1 else int(self.kwargs.get("feature_group_count", 1))
            c_in, c_out_g = w.shape[0], w.shape[1]
            v = np.reshape(w, (g, c_in // g, c_out_g, *w.shape[2:])).swapaxes(1, 2)
            v = np.reshape(v, (g * c_out_g, c_in // g, *w.shape[2:]))
            return np.ascontiguousarray(np.flip(v, axis=tuple(range(2, d + 2))))
        return np.ascontiguousarray(
            convert_weight(np.asarray(w), "torch", self.weight_layout, transposed=self.transposed)
        )

    def run(
        self,
        module: Any,
        x: Any,
        w: Any,
        b: Any = None,
        *,
        to_framework: Callable[[np.ndarray], Any] = lambda a: a,
    ) -> np.ndarray:
        """Run the translated call with ``module``'s function on tconv-layout NumPy arrays.

        ``x`` is ``(N, C_in, *spatial)``, ``w`` in tconv's (PyTorch's) layout, ``b``
        ``(C_out,)``; the result is ``(N, C_out, *out)`` as NumPy. ``module`` is the
        framework's namespace (``torch.nn.functional``, ``tf.nn``, ``keras.ops``,
        ``jax.lax``, ``paddle.nn.functional``) or the matching :mod:`tconv.compat` module.
        """
        x, w = np.asarray(x), np.asarray(w)
        b = None if b is None else np.asarray(b)
        d = w.ndim - 2
        if self.pre_pad is not None:
            x = np.pad(x, [(0, 0), (0, 0), *self.pre_pad])
        groups = self.split_groups
        c_in_g = x.shape[1] // groups
        rows = w.shape[0] // groups
        outs = []
        for g in range(groups):
            xg = x[:, g * c_in_g : (g + 1) * c_in_g]
            wg = w[g * rows : (g + 1) * rows]
            c_out_g = wg.shape[1] if self.transposed else wg.shape[0]
            bg = None if b is None else (b if groups == 1 else b[g * c_out_g : (g + 1) * c_out_g])
            if self.channels_last:
                xg = np.moveaxis(xg, 1, -1)
            kwargs = dict(self.kwargs)
            if "output_shape" in kwargs:
                kwargs["output_shape"] = (x.shape[0], *self.output_size, c_out_g)
            if self.bias_in_call and bg is not None:
                kwargs[self.bias_argument] = to_framework(np.ascontiguousarray(bg))  # type: ignore[index]
            fn = getattr(module, self.function)
            out = _to_numpy(fn(to_framework(np.ascontiguousarray(xg)), to_framework(self.convert_weight(wg)), **kwargs))
            if self.channels_last:
                out = np.moveaxis(out, -1, 1)
            outs.append(out)
        out = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
        for axis, (before, after) in enumerate(self.post):
            out = _adjust(out, axis + 2, before, after)
        if not self.bias_in_call and b is not None:
            out = out + b.reshape(1, -1, *(1,) * d)
        if any(s != 1 for s in self.subsample):
            steps = [slice(None, None, s) for s in self.subsample]
            out = out[tuple([slice(None), slice(None), *steps])]
        return np.ascontiguousarray(out)


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu()
    if hasattr(a, "numpy"):
        return np.asarray(a.numpy())
    return np.asarray(a)


def _adjust(a: np.ndarray, axis: int, before: int, after: int) -> np.ndarray:
    """Remove ``before``/``after`` elements along ``axis`` (negative: add zeros)."""
    n = a.shape[axis]
    index = [slice(None)] * a.ndim
    index[axis] = slice(max(before, 0), n - max(after, 0))
    a = a[tuple(index)]
    widths = [(0, 0)] * a.ndim
    widths[axis] = (max(-before, 0), max(-after, 0))
    return np.pad(a, widths) if any(widths[axis]) else a


@dataclass(frozen=True)
class Translation:
    """A layer in every framework's terms: ``layers[framework]`` is a :class:`Layer`."""

    source: str
    spec: ConvSpec
    layers: dict[str, Layer]

    def __str__(self) -> str:
        spec = self.spec
        kind = "transposed convolution" if spec.transposed else "convolution"
        size = "x".join(map(str, spec.input_size))
        out = "x".join(map(str, spec.output_size))
        lines = [
            f"{kind} from {self.source}: input {size} -> output {out}, {spec.in_channels} -> "
            f"{spec.out_channels} channels, kernel {'x'.join(map(str, spec.kernel_size))}, stride {spec.stride}, "
            f"dilation {spec.dilation}, crop/padding {spec.padding}"
            + (f", output padding {spec.output_padding}" if spec.transposed else "")
            + f", groups {spec.groups}",
            "",
        ]
        for name, layer in self.layers.items():
            status = "exact" if layer.exact else "needs an extra step"
            lines.append(f"# {name} ({status})")
            lines.append(layer.code)
            lines.extend(f"# note: {note}" for note in layer.notes)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


# --- reading a framework's arguments -------------------------------------------------------------


def _source_arguments(
    framework: str,
    transposed: bool,
    input_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    arguments: dict[str, Any],
) -> dict[str, Any]:
    """A framework's arguments as core keyword arguments (stride, padding pairs, ...)."""
    a = dict(arguments)
    ndim = len(kernel_size)

    def take(*names: str, default: Any = None) -> Any:
        for name in names:
            if name in a:
                return a.pop(name)
        return default

    if framework == "torch":
        core = ctorch.core_arguments(
            transposed,
            input_size,
            kernel_size,
            stride=take("stride", default=1),
            padding=take("padding", default=0),
            dilation=take("dilation", default=1),
            groups=take("groups", default=1),
            **(
                {"output_padding": take("output_padding", default=0), "output_size": take("output_size")}
                if transposed
                else {}
            ),
        )
    elif framework in ("tensorflow", "keras"):
        groups = take("groups", default=1)
        if framework == "keras":
            strides, padding = take("strides", default=1), take("padding", default="valid")
            dilation = take("dilation_rate", default=1)
            if transposed:
                core = ckeras.conv_transpose_arguments(
                    input_size,
                    kernel_size,
                    strides=strides,
                    padding=padding,
                    output_padding=take("output_padding"),
                    dilation_rate=dilation,
                )
            else:
                core = ckeras.conv_arguments(
                    input_size, kernel_size, strides=strides, padding=padding, dilation_rate=dilation
                )
        else:
            stride = ctf._spatial_values(take("strides", default=1), ndim, True, "strides")
            dilation = ctf._spatial_values(take("dilations"), ndim, True, "dilations")
            padding = take("padding", default="SAME" if transposed else "VALID")
            if not isinstance(padding, str):
                padding = [tuple(p) for p in padding]
                if len(padding) == ndim + 2:
                    padding = padding[1:-1]
            if transposed:
                output_shape = take("output_shape")
                if output_shape is None:
                    raise ValueError("a TensorFlow transposed convolution needs output_shape (spatial or full)")
                out = _tuple(output_shape)
                out = out[1:-1] if len(out) == ndim + 2 else out
                pairs, op = ctf.resolve_conv_transpose(input_size, out, kernel_size, stride, padding, dilation)
                core = {"stride": stride, "padding": pairs, "output_padding": op, "dilation": dilation}
            else:
                core = {
                    "stride": stride,
                    "padding": padding.lower() if isinstance(padding, str) else padding,
                    "dilation": dilation,
                }
        core["groups"] = groups
    elif framework == "onnx":
        stride = connx._attribute(take("strides"), ndim, "strides", 1)
        dilation = connx._attribute(take("dilations"), ndim, "dilations", 1)
        auto_pad, pads, group = take("auto_pad", default="NOTSET"), take("pads"), take("group", default=1)
        if transposed:
            op = connx._attribute(take("output_padding"), ndim, "output_padding", 0)
            onnx_pairs = connx.conv_transpose_pads(
                input_size,
                kernel_size,
                auto_pad=auto_pad,
                dilations=dilation,
                output_padding=op,
                output_shape=take("output_shape"),
                pads=pads,
                strides=stride,
            )
            if any(b < 0 or e < 0 for b, e in onnx_pairs):
                raise ValueError(f"this ONNX ConvTranspose pads its output with zeros ({onnx_pairs}); not translatable")
            core = {"stride": stride, "padding": tuple(onnx_pairs), "output_padding": op, "dilation": dilation}
        else:
            padding = (
                connx._pads_pairs(pads, ndim)
                if auto_pad == "NOTSET"
                else {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}[auto_pad]
            )
            core = {"stride": stride, "padding": padding, "dilation": dilation}
        core["groups"] = group
    elif framework == "jax":
        dilation = tuple(take("rhs_dilation", default=None) or (1,) * ndim)
        if transposed:
            stride = _tuple(take("strides"))
            pads = cjax.transpose_pads(
                kernel_size, stride, take("padding"), dilation, take("use_consistent_padding", default=False)
            )
            take("transpose_kernel")
            crops, jax_op, extra = cjax.dilated_to_core(kernel_size, stride, dilation, pads)
            if any(b or e for b, e in extra):
                raise ValueError(f"this lax.conv_transpose pads its output with zeros ({extra}); not translatable")
            core = {"stride": stride, "padding": tuple(crops), "output_padding": tuple(jax_op), "dilation": dilation}
            core["groups"] = 1
        else:
            padding = take("padding")
            if isinstance(padding, str):
                padding = {"SAME": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}[padding.upper()]
            core = {"stride": _tuple(take("window_strides")), "padding": padding, "dilation": dilation}
            core["groups"] = take("feature_group_count", default=1)
    elif framework == "paddle":
        extra_kwargs: dict[str, Any] = (
            {"output_padding": take("output_padding", default=0), "output_size": take("output_size")}
            if transposed
            else {}
        )
        core = cpaddle.core_arguments(
            input_size,
            kernel_size,
            transposed=transposed,
            stride=take("stride", default=1),
            padding=take("padding", default=0),
            dilation=take("dilation", default=1),
            **extra_kwargs,
        )
        core["groups"] = take("groups", default=1)
    else:
        raise ValueError(f"framework must be one of {', '.join(map(repr, FRAMEWORKS))}; received {framework!r}")
    if a:
        raise TypeError(f"unknown {framework} argument(s) for translate: {', '.join(sorted(a))}")
    return core


# --- writing it for each framework ---------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value)


def _post_from(spec: ConvSpec, framework_pairs: Pairs, framework_op: Sequence[int]) -> Pairs:
    """The crop that turns a framework's (lo, hi, op) output into the spec's."""
    post = []
    for (lo, hi), op, (lo_f, hi_f), op_f in zip(spec.padding, spec.output_padding, framework_pairs, framework_op):
        post.append((lo - lo_f, (op_f - hi_f) - (op - hi)))
    return tuple(post)


def _extends(post: Pairs) -> bool:
    return any(b < 0 or a < 0 for b, a in post)


def _crop_code(post: Pairs, channels_last: bool) -> str | None:
    if not any(b or a for b, a in post):
        return None
    parts = []
    for before, after in post:
        if before >= 0 and after >= 0:
            parts.append(f"{before}:{-after if after else ''}")
        else:
            parts.append(":")
    index = ", ".join(parts)
    lead = ":, " if channels_last else ":, :, "
    tail = ", :" if channels_last else ""
    if all(b >= 0 and a >= 0 for b, a in post):
        return f"y = y[{lead}{index}{tail}]"
    return f"y = pad_or_crop(y, {list(post)})  # negative: zeros to add"


def _weight_line(layout: str, transposed: bool, groups_note: str = "") -> str:
    from ..frameworks._common import FORWARD_LAYOUTS, TRANSPOSED_LAYOUTS

    described = (TRANSPOSED_LAYOUTS if transposed else FORWARD_LAYOUTS)[layout]
    if layout in ("torch", "onnx", "paddle"):
        return f"w = weight  # {described}: {_OWN[layout]}{groups_note}"
    call = f'tconv.compat.convert_weight(weight, "torch", "{layout}"' + ("" if transposed else ", transposed=False")
    return f"w = {call})  # -> {described}{groups_note}"


_OWN = {"torch": "PyTorch's own layout", "onnx": "ONNX's own layout", "paddle": "Paddle's own layout"}


def _emit_torch(spec: ConvSpec) -> Layer:
    d = spec.ndim
    notes: list[str] = []
    if spec.transposed:
        pads = tuple(min(lo, hi) for lo, hi in spec.padding)
        ops = []
        for (_, hi), op, p, s, dil in zip(spec.padding, spec.output_padding, pads, spec.stride, spec.dilation):
            want = op - (hi - p)
            ops.append(min(max(want, 0), max(s, dil) - 1))
        post = _post_from(spec, tuple((p, p) for p in pads), ops)
        kwargs = {
            "stride": spec.stride,
            "padding": pads,
            "output_padding": tuple(ops),
            "groups": spec.groups,
            "dilation": spec.dilation,
        }
        function = f"conv_transpose{d}d"
        if any(b or a for b, a in post):
            notes.append("PyTorch pads symmetrically, so the asymmetric crop needs a slice after the call")
        pre_pad = None
    else:
        post = ((0, 0),) * d
        symmetric = all(lo == hi for lo, hi in spec.padding)
        same = all(s == 1 for s in spec.stride) and spec.padding == tuple(
            shapes.conv_same_padding(n, k, dilation=dil)
            for n, k, dil in zip(spec.input_size, spec.kernel_size, spec.dilation)
        )
        if symmetric:
            padding: Any = tuple(lo for lo, _ in spec.padding)
            pre_pad = None
        elif same:
            padding, pre_pad = "same", None
        else:
            padding, pre_pad = 0, spec.padding
            notes.append("PyTorch pads symmetrically: pad the input with F.pad first")
        kwargs = {"stride": spec.stride, "padding": padding, "dilation": spec.dilation, "groups": spec.groups}
        function = f"conv{d}d"
    layer = Layer(
        "torch",
        "torch.nn.functional",
        function,
        kwargs,
        False,
        spec.transposed,
        "torch",
        "bias",
        _framework_size(spec, post),
        pre_pad,
        post,
        notes=tuple(notes),
    )
    lines = ["import torch.nn.functional as F", _weight_line("torch", spec.transposed)]
    if pre_pad is not None:
        flat = [v for pair in reversed(pre_pad) for v in pair]
        lines.append(f"x = F.pad(x, {tuple(flat)})")
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())
    lines.append(f"y = F.{function}(x, w, b, {args})")
    crop = _crop_code(post, False)
    if crop:
        extra = tuple((b, a) for b, a in post)
        lines.append(
            f"{crop:<31} # PyTorch pads symmetrically: crop {extra[0] if len(set(extra)) == 1 else extra} "
            "more on each axis"
        )
    return _with_code(layer, lines)


def _framework_size(spec: ConvSpec, post: Pairs) -> tuple[int, ...]:
    return tuple(o + b + a for o, (b, a) in zip(spec.output_size, post))


def _with_code(layer: Layer, lines: list[str]) -> Layer:
    return Layer(**{**layer.__dict__, "code": "\n".join(lines)})


def _split_note(spec: ConvSpec, name: str) -> tuple[int, list[str]]:
    if spec.transposed and spec.groups > 1:
        return spec.groups, [f"{name} transposed convolutions have no groups: run one per group and concatenate"]
    if spec.ndim == 3 and spec.groups > 1:
        return spec.groups, [f"{name}'s CPU Conv3D has no groups: run one per group and concatenate"]
    return 1, []


def _emit_tensorflow(spec: ConvSpec) -> Layer:
    d = spec.ndim
    split, notes = _split_note(spec, "TensorFlow")
    if spec.transposed:
        candidates: list[tuple[Any, Pairs, tuple[int, ...]]] = []
        for mode in ("SAME", "VALID"):
            try:
                pairs, op = ctf.resolve_conv_transpose(
                    spec.input_size, spec.output_size, spec.kernel_size, spec.stride, mode, spec.dilation
                )
                candidates.append((mode, pairs, op))
            except ValueError:
                pass
        if d == 2:
            try:
                pairs, op = ctf.resolve_conv_transpose(
                    spec.input_size, spec.output_size, spec.kernel_size, spec.stride, spec.padding, spec.dilation
                )
                candidates.append(([[0, 0], *(list(p) for p in spec.padding), [0, 0]], pairs, op))
            except ValueError:
                pass
        chosen = next(((m, p, o) for m, p, o in candidates if p == spec.padding and o == spec.output_padding), None)
        if chosen is None:
            full = tuple(
                (n - 1) * s + shapes.dilated_kernel_size(k, dil)
                for n, k, s, dil in zip(spec.input_size, spec.kernel_size, spec.stride, spec.dilation)
            )
            chosen = ("VALID", ((0, 0),) * d, (0,) * d)
            notes.append("TensorFlow cannot place this crop: compute the full output with VALID and slice it")
            size = full
        else:
            size = spec.output_size
        mode, pairs, op = chosen
        post = _post_from(spec, pairs, op)
        if any(dil > 1 for dil in spec.dilation):
            notes.append("TensorFlow's CPU kernels refuse dilations > 1 in conv*_transpose (they run on GPU)")
        kwargs = {"output_shape": None, "strides": spec.stride, "padding": mode, "dilations": spec.dilation}
        function = f"conv{d}d_transpose"
        pre_pad = None
        subsample: tuple[int, ...] = ()
    else:
        size = spec.output_size
        post = ((0, 0),) * d
        same = tuple(
            shapes.conv_same_padding(n, k, stride=s, dilation=dil)
            for n, k, s, dil in zip(spec.input_size, spec.kernel_size, spec.stride, spec.dilation)
        )
        pre_pad = None
        if spec.padding == same:
            padding: Any = "SAME"
        elif all(p == (0, 0) for p in spec.padding):
            padding = "VALID"
        else:
            padding, pre_pad = "VALID", spec.padding
            notes.append("pad the input with tf.pad first (tf.nn.convolution takes only SAME or VALID)")
        subsample = ()
        stride = spec.stride
        if any(s > 1 for s in spec.stride) and any(dil > 1 for dil in spec.dilation):
            if padding == "SAME":
                padding, pre_pad = "VALID", spec.padding
            stride, subsample = (1,) * d, spec.stride
            notes.append("TensorFlow does not combine strides with dilations: run at stride 1 and subsample")
        kwargs = {"strides": stride, "padding": padding, "dilations": spec.dilation}
        function = "convolution"
    layer = Layer(
        "tensorflow",
        "tf.nn",
        function,
        kwargs,
        True,
        spec.transposed,
        "tensorflow",
        None,
        size,
        pre_pad,
        post,
        subsample,
        split,
        tuple(notes),
    )
    lines = ["import tensorflow as tf", _weight_line("tensorflow", spec.transposed)]
    if pre_pad is not None:
        lines.append(f"x = tf.pad(x, {[[0, 0], *[list(p) for p in pre_pad], [0, 0]]})")
    shown = {k: (("N", *size, spec.out_channels // split) if k == "output_shape" else v) for k, v in kwargs.items()}
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()).replace("'N'", "N")
    lines.append(f"y = tf.nn.{function}(x, w, {args})" + ("" if _extends(post) else " + b"))
    crop = _crop_code(post, True)
    if crop:
        lines.append(crop)
    if _extends(post):
        lines.append("y = y + b  # after the zeros, so they get the bias too")
    if subsample and any(s > 1 for s in subsample):
        lines.append(f"y = y[:, {', '.join(f'::{s}' for s in subsample)}, :]")
    return _with_code(layer, lines)


def _emit_keras(spec: ConvSpec) -> Layer:
    d = spec.ndim
    split, notes = _split_note(spec, "Keras")
    pre_pad = None
    if spec.transposed:
        chosen: tuple[str, Any, Pairs, tuple[int, ...]] | None = None
        for mode in ("same", "valid"):
            try:
                a = ckeras.conv_transpose_arguments(
                    spec.input_size,
                    spec.kernel_size,
                    strides=spec.stride,
                    padding=mode,
                    output_padding=None,
                    dilation_rate=spec.dilation,
                )
                if a["padding"] == spec.padding and a["output_padding"] == spec.output_padding:
                    chosen = (mode, None, a["padding"], a["output_padding"])
                    break
                per_axis = []
                for axis in range(d):
                    found = None
                    for keras_op in range(spec.stride[axis]):
                        one = ckeras.conv_transpose_arguments(
                            spec.input_size[axis : axis + 1],
                            spec.kernel_size[axis : axis + 1],
                            strides=spec.stride[axis],
                            padding=mode,
                            output_padding=keras_op,
                            dilation_rate=spec.dilation[axis],
                        )
                        if (
                            one["padding"][0] == spec.padding[axis]
                            and one["output_padding"][0] == spec.output_padding[axis]
                        ):
                            found = keras_op
                            break
                    per_axis.append(found)
                if all(op is not None for op in per_axis):
                    chosen = (mode, tuple(per_axis), spec.padding, spec.output_padding)
                    break
            except ValueError:
                continue
        if chosen is None:
            a = ckeras.conv_transpose_arguments(
                spec.input_size,
                spec.kernel_size,
                strides=spec.stride,
                padding="valid",
                output_padding=None,
                dilation_rate=spec.dilation,
            )
            chosen = ("valid", None, a["padding"], a["output_padding"])
            notes.append("Keras's 'same'/'valid' cannot place this crop: use 'valid' and slice the output")
        mode, output_padding, pairs, op = chosen
        post = _post_from(spec, pairs, op)
        kwargs: dict[str, Any] = {
            "strides": spec.stride,
            "padding": mode,
            "output_padding": output_padding,
            "data_format": "channels_last",
            "dilation_rate": spec.dilation,
        }
        function = "conv_transpose"
        layer_code = (
            f"keras.layers.Conv{d}DTranspose({spec.out_channels // split}, {_fmt(spec.kernel_size)}, "
            f"strides={_fmt(spec.stride)}, padding={mode!r}, output_padding={_fmt(output_padding)}, "
            f"dilation_rate={_fmt(spec.dilation)})"
        )
    else:
        post = ((0, 0),) * d
        mode = ""
        subsample: tuple[int, ...] = ()
        stride = spec.stride
        if any(st > 1 for st in spec.stride) and any(dil > 1 for dil in spec.dilation):
            stride, subsample = (1,) * d, tuple(spec.stride)
            notes.append("Keras does not combine strides with dilation_rate: run at stride 1 and subsample")
        for candidate in ("same", "valid", "causal") if not subsample else ():
            try:
                a = ckeras.conv_arguments(
                    spec.input_size,
                    spec.kernel_size,
                    strides=spec.stride,
                    padding=candidate,
                    dilation_rate=spec.dilation,
                )
            except ValueError:
                continue
            if a["padding"] == spec.padding:
                mode = candidate
                break
        if not mode:
            mode, pre_pad = "valid", spec.padding
            notes.append("Keras pads only 'same'/'valid'/'causal': add a ZeroPadding layer (or pad the input) first")
        kwargs = {
            "strides": stride,
            "padding": mode,
            "data_format": "channels_last",
            "dilation_rate": spec.dilation,
        }
        function = "conv"
        layer_code = (
            f"keras.layers.Conv{d}D({spec.out_channels}, {_fmt(spec.kernel_size)}, "
            f"strides={_fmt(stride)}, padding={mode!r}, dilation_rate={_fmt(spec.dilation)}, "
            f"groups={spec.groups})"
        )
    layer = Layer(
        "keras",
        "keras.ops",
        function,
        kwargs,
        True,
        spec.transposed,
        "keras",
        None,
        _framework_size(spec, post),
        pre_pad,
        post,
        () if spec.transposed else subsample,
        split,
        tuple(notes),
    )
    lines = ["import keras", _weight_line("keras", spec.transposed)]
    if pre_pad is not None:
        lines.append(f"x = keras.ops.pad(x, {[[0, 0], *[list(p) for p in pre_pad], [0, 0]]})")
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())
    lines.append(f"y = keras.ops.{function}(x, w, {args})" + ("" if _extends(post) else " + b"))
    lines.append(f"# as a layer: {layer_code}, then layer.set_weights([w, b])")
    crop = _crop_code(post, True)
    if crop:
        lines.append(crop)
    if _extends(post):
        lines.append("y = y + b  # after the zeros, so they get the bias too")
    if layer.subsample:
        lines.append(f"y = y[:, {', '.join(f'::{st}' for st in layer.subsample)}, :]")
    return _with_code(layer, lines)


def _output_padding_below_stride(spec: ConvSpec) -> tuple[list[int], list[int], Pairs]:
    """End crops, output paddings below the stride, and the zeros still to append.

    ONNX Runtime and Paddle's kernels refuse ``output_padding >= stride`` (possible when
    dilation > stride). Trading it against the end crop gives the same output; past the
    full output no tap reaches, so any rest is zeros appended afterwards.
    """
    his, ops, post = [], [], []
    for (_, hi), op, st in zip(spec.padding, spec.output_padding, spec.stride):
        trade = min(hi, max(op - (st - 1), 0))
        rest = max(op - trade - (st - 1), 0)
        his.append(hi - trade)
        ops.append(op - trade - rest)
        post.append((0, -rest))
    return his, ops, tuple(post)


def _emit_onnx(spec: ConvSpec) -> Layer:
    his, ops, post = _output_padding_below_stride(spec)
    notes = ["ONNX Runtime refuses output_padding >= stride: append the rest as zeros"] if _extends(post) else []
    pads = [lo for lo, _ in spec.padding] + his
    kwargs: dict[str, Any] = {
        "strides": list(spec.stride),
        "pads": pads,
        "dilations": list(spec.dilation),
        "group": spec.groups,
    }
    if spec.transposed:
        kwargs["output_padding"] = ops
    function = "conv_transpose" if spec.transposed else "conv"
    layer = Layer(
        "onnx",
        "onnx",
        function,
        kwargs,
        False,
        spec.transposed,
        "onnx",
        "B",
        _framework_size(spec, tuple(post)),
        post=tuple(post),
        notes=tuple(notes),
    )
    op_type = "ConvTranspose" if spec.transposed else "Conv"
    attrs = ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())
    lines = [
        "from onnx import helper",
        _weight_line("onnx", spec.transposed),
        f'node = helper.make_node("{op_type}", ["X", "W", "B"], ["Y"], {attrs})',
    ]
    crop = _crop_code(tuple(post), False)
    if crop:
        lines.append(crop + "  (then add B)")
    return _with_code(layer, lines)


def _emit_jax(spec: ConvSpec) -> Layer:
    d = spec.ndim
    if spec.transposed:
        pads = [
            (shapes.dilated_kernel_size(k, dil) - 1 - lo, shapes.dilated_kernel_size(k, dil) - 1 - hi + op)
            for k, dil, (lo, hi), op in zip(spec.kernel_size, spec.dilation, spec.padding, spec.output_padding)
        ]
        if spec.groups == 1:
            kwargs: dict[str, Any] = {
                "strides": spec.stride,
                "padding": pads,
                "rhs_dilation": spec.dilation,
                "transpose_kernel": True,
            }
            layer = Layer(
                "jax",
                "jax.lax",
                "conv_transpose",
                kwargs,
                True,
                True,
                "keras",
                None,
                spec.output_size,
                post=((0, 0),) * d,
                notes=(
                    "explicit pairs here are lax's legacy meaning: the padding of the zero-inserted "
                    "input, d*(k-1) - crop",
                ),
            )
            lines = ["from jax import lax", _weight_line("keras", True) + "  (transpose_kernel=True)"]
            args = ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())
            lines.append(f"y = lax.conv_transpose(x, w, {args}) + b")
            return _with_code(layer, lines)
        kwargs = {
            "window_strides": (1,) * d,
            "padding": pads,
            "lhs_dilation": spec.stride,
            "rhs_dilation": spec.dilation,
            "feature_group_count": spec.groups,
        }
        layer = Layer(
            "jax",
            "jax.lax",
            "conv_general_dilated",
            kwargs,
            False,
            True,
            "oihw-flipped",
            None,
            spec.output_size,
            post=((0, 0),) * d,
            notes=(
                "lax.conv_transpose has no groups: conv_general_dilated with lhs_dilation=stride "
                "and the flipped, per-group channel-swapped kernel",
            ),
        )
        lines = [
            "from jax import lax",
            "w = flip(weight per group (in, out/g, *k) -> (out, in/g, *k), spatial axes)  # OIHW",
        ]
    else:
        kwargs = {
            "window_strides": spec.stride,
            "padding": list(spec.padding),
            "rhs_dilation": spec.dilation,
            "feature_group_count": spec.groups,
        }
        layer = Layer(
            "jax",
            "jax.lax",
            "conv_general_dilated",
            kwargs,
            False,
            False,
            "torch",
            None,
            spec.output_size,
            post=((0, 0),) * d,
        )
        lines = ["from jax import lax", "w = weight  # (out, in/groups, *k): OIHW"]
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())
    lines.append(f"y = lax.conv_general_dilated(x, w, {args}) + b[:, None, ...]  # NCHW")
    return _with_code(layer, lines)


def _emit_paddle(spec: ConvSpec) -> Layer:
    d = spec.ndim
    his, ops, post = _output_padding_below_stride(spec)
    padding = [[0, 0], [0, 0], *[[lo, hi] for (lo, _), hi in zip(spec.padding, his)]]
    kwargs: dict[str, Any] = {
        "stride": spec.stride,
        "padding": padding,
        "dilation": spec.dilation,
        "groups": spec.groups,
    }
    if spec.transposed:
        kwargs["output_padding"] = tuple(ops)
    notes = ["Paddle refuses output_padding >= stride: append the rest as zeros"] if _extends(post) else []
    function = f"conv{d}d_transpose" if spec.transposed else f"conv{d}d"
    layer = Layer(
        "paddle",
        "paddle.nn.functional",
        function,
        kwargs,
        False,
        spec.transposed,
        "paddle",
        "bias",
        _framework_size(spec, post),
        post=post,
        notes=tuple(notes),
    )
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())
    bias = "None" if _extends(post) else "b"
    lines = [
        "import paddle.nn.functional as F",
        _weight_line("paddle", spec.transposed),
        f"y = F.{function}(x, w, {bias}, {args})",
    ]
    crop = _crop_code(post, False)
    if crop:
        lines.extend([crop, "y = y + b.reshape([1, -1] + [1] * (y.ndim - 2))"])
    return _with_code(layer, lines)


_EMITTERS = {
    "torch": _emit_torch,
    "tensorflow": _emit_tensorflow,
    "keras": _emit_keras,
    "onnx": _emit_onnx,
    "jax": _emit_jax,
    "paddle": _emit_paddle,
}


def translate(
    framework: str,
    *,
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    in_channels: int = 1,
    out_channels: int = 1,
    transposed: bool = True,
    **arguments: Any,
) -> Translation:
    """Translate a layer given in ``framework``'s own arguments into every framework.

    Parameters
    ----------
    framework : str
        ``'torch'``, ``'tensorflow'``, ``'keras'``, ``'onnx'``, ``'jax'`` or ``'paddle'``.
    input_size, kernel_size : int or sequence of int
        Spatial sizes (an int for 1-D).
    in_channels, out_channels : int
    transposed : bool
        A transposed convolution (default) or a forward one.
    **arguments
        The layer's arguments with ``framework``'s names: e.g. PyTorch's ``stride``,
        ``padding``, ``output_padding``, ``groups``, ``dilation``, ``output_size``;
        TensorFlow's ``strides``, ``padding``, ``output_shape``, ``dilations``; Keras's
        ``strides``, ``padding``, ``output_padding``, ``dilation_rate``; ONNX's
        attributes; JAX's ``strides``/``window_strides``, ``padding``, ``rhs_dilation``,
        ``use_consistent_padding``, ``feature_group_count``; Paddle's ``stride``,
        ``padding``, ``output_padding``, ``dilation``, ``groups``, ``output_size``.

    Returns
    -------
    Translation
        ``.spec`` (the resolved layer), ``.layers[framework]`` for each framework,
        and ``str()`` the code to paste.

    Examples
    --------
    >>> t = translate("torch", input_size=3, kernel_size=3, stride=2, padding=1, output_padding=1)
    >>> t.layers["onnx"].kwargs
    {'strides': [2], 'pads': [1, 1], 'dilations': [1], 'group': 1, 'output_padding': [1]}
    >>> t.layers["keras"].exact
    False
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(map(repr, FRAMEWORKS))}; received {framework!r}")
    kernel = (kernel_size,) if isinstance(kernel_size, int) else _tuple(kernel_size)
    size = (input_size,) * len(kernel) if isinstance(input_size, int) else _tuple(input_size)
    core = _source_arguments(framework, transposed, size, kernel, arguments)
    spec = ConvSpec.build(
        transposed=transposed,
        input_size=size,
        kernel_size=kernel,
        in_channels=in_channels,
        out_channels=out_channels,
        **core,
    )
    return Translation(framework, spec, {name: emit(spec) for name, emit in _EMITTERS.items()})
