"""Helpers the frameworks' :meth:`~tconv.frameworks.base.Framework.write` methods share: values as code,
the crop between a framework's output and the spec's, the weight line, the split over groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..spec import ConvSpec
from .base import FrameworkCall, Pairs, get


def fmt(value: Any) -> str:
    """``value`` as Python source (tuples keep their trailing comma)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return repr(value)


def keyword_code(kwargs: dict[str, Any]) -> str:
    """``kwargs`` as the keyword arguments of a call."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in kwargs.items())


def post_crop(spec: ConvSpec, framework_pairs: Pairs, framework_op: Any) -> Pairs:
    """The crop that turns a framework's ``(lo, hi)`` crop and output padding ``op`` into the spec's."""
    post = []
    for (lo, hi), op, (lo_f, hi_f), op_f in zip(spec.padding, spec.output_padding, framework_pairs, framework_op):
        post.append((lo - lo_f, (op_f - hi_f) - (op - hi)))
    return tuple(post)


def extends(post: Pairs) -> bool:
    """Whether the crop ``post`` adds zeros somewhere (a negative amount)."""
    return any(b < 0 or a < 0 for b, a in post)


def crop_code(post: Pairs, channels_last: bool) -> str | None:
    """The line that crops (or zero-extends) the framework's output ``y``; ``None`` when there is nothing to do."""
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


def channels_last_tail(lines: list[str], post: Pairs, subsample: tuple[int, ...]) -> None:
    """Append the crop, the bias after zeros and the subsampling of a channels-last output ``y``."""
    crop = crop_code(post, True)
    if crop:
        lines.append(crop)
    if extends(post):
        lines.append("y = y + b  # after the zeros, so they get the bias too")
    if subsample and any(s > 1 for s in subsample):
        lines.append(f"y = y[:, {', '.join(f'::{s}' for s in subsample)}, :]")


def weight_line(layout: str, transposed: bool) -> str:
    """The line that makes ``w`` from tconv's ``weight`` (PyTorch's layout) in framework ``layout``'s."""
    target = get(layout)
    described = target.transposed_layout if transposed else target.forward_layout
    if not target.kernel_first:
        return f"w = weight  # {described}: {target.display_name}'s own layout"
    call = f'tconv.compat.convert_weight(weight, "torch", "{layout}"' + ("" if transposed else ", transposed=False")
    return f"w = {call})  # -> {described}"


def output_size(spec: ConvSpec, post: Pairs) -> tuple[int, ...]:
    """The size of the framework's output, before the crop ``post``."""
    return tuple(o + b + a for o, (b, a) in zip(spec.output_size, post))


def call_in(
    name: str,
    spec: ConvSpec,
    call: tuple[str, str, dict[str, Any]],
    channels_last: bool,
    bias_argument: str | None,
    post: Pairs,
    notes: Sequence[str],
    **rest: Any,
) -> FrameworkCall:
    """Framework ``name``'s ``(module, function, kwargs)`` call for ``spec``, its weight in ``name``'s own
    layout, its output ``output_size(spec, post)`` before the crop ``post`` (unless ``rest`` gives
    ``output_size``); ``rest`` holds ``pre_pad``, ``subsample`` and ``split_groups`` where they apply."""
    rest.setdefault("output_size", output_size(spec, post))
    module, function, kwargs = call
    return FrameworkCall(
        name, module, function, kwargs, channels_last, spec.transposed, name, bias_argument,
        post=post, notes=tuple(notes), **rest,
    )  # fmt: skip


def with_code(call: FrameworkCall, lines: list[str]) -> FrameworkCall:
    """``call`` with ``lines`` as its code."""
    return FrameworkCall(**{**call.__dict__, "code": "\n".join(lines)})


def group_split(spec: ConvSpec, name: str) -> tuple[int, list[str]]:
    """How many calls (one per group) a framework without grouped transposed (or CPU 3-D) convolutions needs."""
    if spec.transposed and spec.groups > 1:
        return spec.groups, [f"{name} transposed convolutions have no groups: run one per group and concatenate"]
    if spec.ndim == 3 and spec.groups > 1:
        return spec.groups, [f"{name}'s CPU Conv3D has no groups: run one per group and concatenate"]
    return 1, []


def output_padding_below_stride(spec: ConvSpec) -> tuple[list[int], list[int], Pairs]:
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
