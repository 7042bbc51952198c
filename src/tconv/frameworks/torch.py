"""PyTorch's ``torch.nn.functional`` convolutions, with PyTorch's arguments and rules.

Signatures and positional order follow ``torch.nn.functional``; ``output_size`` is
accepted as ``nn.ConvTranspose*d.forward`` takes it (the spatial sizes, or the
whole shape). PyTorch padding is symmetric; ``'same'``/``'valid'`` exist only for
the forward convolution, and ``'same'`` only at stride 1 (PyTorch puts an odd
total's extra element at the end, as TensorFlow does). These functions take any
array library, like the rest of tconv.

Examples
--------
>>> import numpy as np
>>> from tconv.compat import torch as tF
>>> x = np.array([[[1.0, 2.0, 3.0]]]); w = np.array([[[1.0, 10.0, 100.0]]])
>>> tF.conv_transpose1d(x, w, None, 2, 1, 1)   # stride 2, padding 1, output_padding 1
array([[[ 10., 102.,  20., 203.,  30., 300.]]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import shapes
from .._backend import Array
from ..ops import conv, conv_transpose
from ..spec import ConvSpec
from ._common import ints, per_axis, refuse_integers
from ._writing import call_in, crop_code, keyword_code, post_crop, weight_line, with_code
from .base import Arguments, BenchmarkCase, CallShape, Framework, FrameworkCall, Options, SizeCandidate, SizeGoal

__all__ = [
    "FRAMEWORK",
    "Torch",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "output_padding_for",
]

IntOrSeq = int | Sequence[int]


def output_padding_for(
    input_size: Sequence[int],
    output_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: IntOrSeq,
    padding: IntOrSeq,
    dilation: IntOrSeq,
) -> tuple[int, ...]:
    """PyTorch's ``_output_padding``: the output padding that gives ``output_size``.

    ``output_size`` may be the spatial sizes or the whole shape (its last ``d``
    entries are used). PyTorch admits sizes from the smallest output up to
    ``stride - 1`` more, and raises otherwise.

    Examples
    --------
    >>> output_padding_for((3, 3), (8, 8), (3, 3), 2, 0, 1)
    (1, 1)
    """
    d = len(kernel_size)
    sizes = ints(output_size, "output_size")
    if len(sizes) == d + 2:
        sizes = sizes[2:]
    if len(sizes) != d:
        raise ValueError(f"output_size must have {d} or {d + 2} elements (got {len(sizes)}); received {tuple(sizes)}")
    strides = per_axis(stride, d, "stride")
    pads = per_axis(padding, d, "padding")
    dilations = per_axis(dilation, d, "dilation")
    result = []
    for n, size, k, s, p, dil in zip(input_size, sizes, kernel_size, strides, pads, dilations):
        smallest = shapes.conv_transpose_output_size(n, k, stride=s, padding=p, dilation=dil)
        if not smallest <= size <= smallest + s - 1:
            raise ValueError(
                f"requested an output size of {tuple(sizes)}, but valid sizes range from "
                f"{smallest} to {smallest + s - 1} on an axis with input size {n} "
                f"(PyTorch admits the smallest output size up to stride - 1 more)"
            )
        result.append(size - smallest)
    return tuple(result)


def _conv(
    ndim: int,
    input: Array,
    weight: Array,
    bias: Array | None,
    stride: IntOrSeq,
    padding: str | IntOrSeq,
    dilation: IntOrSeq,
    groups: int,
) -> Array:
    given = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return _call(False, ndim, input, weight, bias, given)


def _call(transposed: bool, ndim: int, input: Array, weight: Array, bias: Array | None, given: dict[str, Any]) -> Array:
    """``torch.nn.functional``'s ``conv{ndim}d`` (or ``conv_transpose{ndim}d``) with PyTorch's ``given`` arguments."""
    _check_rank(input, weight, ndim, "conv_transpose" if transposed else "conv")
    arguments = FRAMEWORK.read(
        transposed, tuple(int(n) for n in input.shape[-ndim:]), tuple(int(k) for k in weight.shape[2:]), given
    )
    return (conv_transpose if transposed else conv)(input, weight, bias, **arguments)


def _check_rank(input: Any, weight: Any, ndim: int, name: str) -> None:
    refuse_integers("PyTorch computes integer convolutions on the CPU (int64 wrapping on overflow)", input, weight)
    w_ndim = getattr(weight, "ndim", None)
    if w_ndim is not None and w_ndim != ndim + 2:
        raise ValueError(
            f"{name}{ndim}d expects a weight with {ndim + 2} dimensions; received weight of shape {tuple(weight.shape)}"
        )
    x_ndim = getattr(input, "ndim", None)
    if x_ndim is not None and x_ndim not in (ndim + 1, ndim + 2):
        raise ValueError(
            f"{name}{ndim}d expects a {ndim + 1}-D (unbatched) or {ndim + 2}-D (batched) input; received "
            f"input of shape {tuple(input.shape)}"
        )
    if x_ndim is not None and 0 in tuple(int(n) for n in input.shape[x_ndim - ndim :]):
        raise ValueError(
            f"Only zero batch or zero channel inputs are supported, but got input shape: {list(input.shape)} "
            "(PyTorch refuses empty spatial axes)"
        )


def _conv_transpose(
    ndim: int,
    input: Array,
    weight: Array,
    bias: Array | None,
    stride: IntOrSeq,
    padding: IntOrSeq,
    output_padding: IntOrSeq,
    groups: int,
    dilation: IntOrSeq,
    output_size: Sequence[int] | None,
) -> Array:
    given = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return _call(
        True, ndim, input, weight, bias, {**given, "output_padding": output_padding, "output_size": output_size}
    )


def conv1d(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntOrSeq = 1,
    padding: str | IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Array:
    """``torch.nn.functional.conv1d``: input ``(N, C_in, L)``, weight ``(C_out, C_in/groups, k)``."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntOrSeq = 1,
    padding: str | IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Array:
    """``torch.nn.functional.conv2d``: input ``(N, C_in, H, W)``, weight ``(C_out, C_in/groups, kh, kw)``."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntOrSeq = 1,
    padding: str | IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Array:
    """``torch.nn.functional.conv3d``: input ``(N, C_in, D, H, W)``, weight ``(C_out, C_in/groups, *k)``."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    dilation: IntOrSeq = 1,
    output_size: Sequence[int] | None = None,
) -> Array:
    """``torch.nn.functional.conv_transpose1d`` (``output_size`` as ``nn.ConvTranspose1d.forward``)."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size)


def conv_transpose2d(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    dilation: IntOrSeq = 1,
    output_size: Sequence[int] | None = None,
) -> Array:
    """``torch.nn.functional.conv_transpose2d`` (``output_size`` as ``nn.ConvTranspose2d.forward``).

    Input ``(N, C_in, H, W)``, weight ``(C_in, C_out/groups, kh, kw)``.
    """
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size)


def conv_transpose3d(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    dilation: IntOrSeq = 1,
    output_size: Sequence[int] | None = None,
) -> Array:
    """``torch.nn.functional.conv_transpose3d`` (``output_size`` as ``nn.ConvTranspose3d.forward``)."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation, output_size)


class Torch(Framework):
    """PyTorch's rules: ``torch.nn.functional``'s arguments, symmetric integer padding, ``'same'`` only forward."""

    name = "torch"
    display_name = "PyTorch"
    runtime = "torch"

    def parse(self, given: Arguments, call: CallShape) -> dict[str, Any]:
        """PyTorch's ``stride``, ``padding``, ``dilation``, ``groups`` (and ``output_padding``, ``output_size``).

        Examples
        --------
        >>> FRAMEWORK.read(True, (3, 3), (3, 3), {"stride": 2, "padding": 1, "output_size": (6, 6)})["output_padding"]
        (1, 1)
        """
        transposed, input_size, kernel_size, _ = call
        stride = given.take("stride", default=1)
        padding = given.take("padding", default=0)
        dilation = given.take("dilation", default=1)
        groups = given.take("groups", default=1)
        if transposed:
            output_padding, output_size = given.take("output_padding", default=0), given.take("output_size")
        ndim = len(kernel_size)
        strides = per_axis(stride, ndim, "stride")
        dilations = per_axis(dilation, ndim, "dilation")
        core_padding: Any
        if isinstance(padding, str):
            if transposed:
                raise ValueError(
                    f"conv_transpose{ndim}d takes padding as an int or a tuple of ints (PyTorch has no string "
                    f"padding for transposed convolutions); received {padding!r}. Use "
                    "tconv.conv_transpose(..., padding='same')."
                )
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid', an int or a tuple of ints; received {padding!r}")
            if padding == "same" and any(s != 1 for s in strides):
                raise ValueError(
                    f"padding='same' is not supported for strided convolutions in PyTorch; received stride={stride!r}"
                )
            core_padding = padding
        else:
            core_padding = per_axis(padding, ndim, "padding")
        core: dict[str, Any] = {"stride": strides, "padding": core_padding, "dilation": dilations, "groups": groups}
        if transposed:
            core["output_padding"] = per_axis(output_padding, ndim, "output_padding")
            if output_size is not None:
                core["output_padding"] = output_padding_for(
                    input_size, output_size, kernel_size, strides, core_padding, dilations
                )
        return core

    def write(self, spec: ConvSpec) -> FrameworkCall:
        d = spec.ndim
        notes: list[str] = []
        pre_pad = None
        if spec.transposed:
            pads = tuple(min(lo, hi) for lo, hi in spec.padding)
            ops = []
            for (_, hi), op, p, s, dil in zip(spec.padding, spec.output_padding, pads, spec.stride, spec.dilation):
                ops.append(min(max(op - (hi - p), 0), max(s, dil) - 1))
            post = post_crop(spec, tuple((p, p) for p in pads), ops)
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
        else:
            post = ((0, 0),) * d
            same = all(s == 1 for s in spec.stride) and spec.padding == tuple(
                shapes.conv_same_padding(n, k, dilation=dil)
                for n, k, dil in zip(spec.input_size, spec.kernel_size, spec.dilation)
            )
            padding: Any
            if all(lo == hi for lo, hi in spec.padding):
                padding = tuple(lo for lo, _ in spec.padding)
            elif same:
                padding = "same"
            else:
                padding, pre_pad = 0, spec.padding
                notes.append("PyTorch pads symmetrically: pad the input with F.pad first")
            kwargs = {"stride": spec.stride, "padding": padding, "dilation": spec.dilation, "groups": spec.groups}
            function = f"conv{d}d"
        functional = ("torch.nn.functional", function, kwargs)
        call = call_in(self.name, spec, functional, False, "bias", post, notes, pre_pad=pre_pad)
        lines = ["import torch.nn.functional as F", weight_line(self.name, spec.transposed)]
        if pre_pad is not None:
            flat = [v for pair in reversed(pre_pad) for v in pair]
            lines.append(f"x = F.pad(x, {tuple(flat)})")
        lines.append(f"y = F.{function}(x, w, b, {keyword_code(kwargs)})")
        crop = crop_code(post, False)
        if crop:
            extra = tuple((b, a) for b, a in post)
            lines.append(
                f"{crop:<31} # PyTorch pads symmetrically: crop {extra[0] if len(set(extra)) == 1 else extra} "
                "more on each axis"
            )
        return with_code(call, lines)

    def options_as_arguments(self, options: Options) -> dict[str, Any]:
        mode, pairs = options.mode, options.pairs
        if mode in ("same_lower",) or (mode and options.transposed):
            raise ValueError(
                f"PyTorch takes integer padding for transposed convolutions; received padding={options.padding!r}"
            )
        if pairs is not None and any(lo != hi for lo, hi in pairs):
            raise ValueError(f"PyTorch padding is symmetric; received padding={options.padding!r}")
        arguments: dict[str, Any] = dict(
            stride=options.stride,
            padding=mode or tuple(lo for lo, _ in pairs or ()),
            dilation=options.dilation,
            groups=options.groups,
        )
        if options.transposed:
            arguments.update(output_padding=options.output_padding or 0, output_size=options.output_size)
        return arguments

    def size_candidates(self, goal: SizeGoal) -> list[SizeCandidate]:
        """PyTorch reaches a size only with symmetric ``padding`` and ``output_padding`` (or the same
        ``padding`` and ``output_size`` in ``forward``)."""
        fixed = {"stride": goal.stride, "dilation": goal.dilation}
        return [
            SizeCandidate(f"padding={p}, output_padding={op}", {**fixed, "padding": p, "output_padding": op})
            for p, op in goal.solutions
        ]

    def set_threads(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)

    def benchmark(self, case: BenchmarkCase) -> Callable[[], Any] | None:
        spec, x, w, b = case.spec, case.x, case.w, case.b
        import torch

        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        bt = None if b is None else torch.from_numpy(b)
        layout = {2: torch.channels_last, 3: torch.channels_last_3d}.get(spec.ndim)
        if case.channels_last and layout is not None:  # 1-D has no channels-last memory format in PyTorch
            xt = xt.contiguous(memory_format=layout)
            wt = wt.contiguous(memory_format=layout)
        pads = [lo for lo, _ in spec.padding]
        if not spec.transposed:
            if any(lo != hi for lo, hi in spec.padding):
                return None
            conv = getattr(torch.nn.functional, f"conv{spec.ndim}d")
            options = dict(stride=spec.stride, padding=tuple(pads), dilation=spec.dilation, groups=spec.groups)

            def convolution() -> Any:
                with torch.no_grad():
                    return conv(xt, wt, bt, **options)

            return convolution
        fn = getattr(torch.nn.functional, f"conv_transpose{spec.ndim}d")
        args = dict(
            stride=spec.stride,
            padding=tuple(pads),
            output_padding=spec.output_padding,
            groups=spec.groups,
            dilation=spec.dilation,
        )
        if not case.grad:

            def forward() -> Any:
                with torch.no_grad():
                    return fn(xt, wt, bt, **args)

            return forward
        gy = torch.ones_like(fn(xt, wt, bt, **args))

        def backward() -> Any:
            return torch.ops.aten.convolution_backward(
                gy,
                xt,
                wt,
                [spec.out_channels] if bt is not None else None,
                list(spec.stride),
                pads,
                list(spec.dilation),
                True,
                list(spec.output_padding),
                spec.groups,
                [True, True, bt is not None],
            )

        return backward


FRAMEWORK = Torch()
