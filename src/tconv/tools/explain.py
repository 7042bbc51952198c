"""Explain one layer: output-size arithmetic, the crop, the equivalent direct convolution, the matrix C,
the same layer in every framework, and warnings.

:func:`explain` builds an :class:`Explanation` from a layer described with generic
options in any framework's terms (or tconv's own); ``str()`` is the report that
``tconv explain`` prints and ``to_dict()`` its ``--json`` form. Every number comes
from :mod:`tconv.shapes`, :class:`tconv.ConvSpec` and :func:`tconv.translate`.

Examples
--------
>>> e = explain(input_size=(2, 2), kernel_size=3, stride=2, padding="valid", framework="tensorflow")
>>> e.spec.output_size
(5, 5)
>>> print(e.formula_lines()[0])
axis 0: out = (n-1)*s + d*(k-1) + 1 - lo - hi + op = (2-1)*2 + 1*(3-1) + 1 - 0 - 0 + 0 = 5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import shapes
from .._arguments import ints_per_axis
from .._geometry import tap_windows
from ..frameworks import REGISTRY, Options, get
from ..spec import ConvSpec
from .translate import Translation, translate

__all__ = [
    "TILEABLE_MODELS",
    "Explanation",
    "default_padding",
    "explain",
    "explain_model",
    "layer_spec",
    "model_input_shape",
]

#: ``--framework``'s choices: tconv's own meaning of the options, or a registered framework's
FRAMEWORK_CHOICES = ("tconv", *REGISTRY)


def _pairs(padding: Any, ndim: int) -> tuple[tuple[int, int], ...] | None:
    """Integer padding (int, per axis, or pairs) as pairs; ``None`` for strings."""
    if isinstance(padding, str):
        return None
    if isinstance(padding, int):
        return ((padding, padding),) * ndim
    entries = list(padding)
    if len(entries) == 1 and ndim > 1:
        entries = entries * ndim
    if len(entries) != ndim:
        raise ValueError(f"padding must have 1 or {ndim} entries; received {padding!r}")
    for entry in entries:
        if not isinstance(entry, int) and len(entry) != 2:
            raise ValueError(f"a padding pair is two ints (lo, hi); received {tuple(entry)!r} in padding={padding!r}")
    return tuple((e, e) if isinstance(e, int) else (int(e[0]), int(e[1])) for e in entries)


def default_padding(framework: str, transposed: bool) -> Any:
    """The padding ``framework``'s call uses when none is given (``0`` for tconv's own); ``ValueError``
    where the call requires one."""
    if framework == "tconv":
        return 0
    source = get(framework)
    padding = source.default_padding(transposed)
    if padding is None:
        raise ValueError(
            f"{source.display_name}'s call has no default padding (it is a required argument): give --padding "
            "(same, valid, or lo:hi pairs)"
        )
    return padding


def layer_spec(
    framework: str,
    *,
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: Any = None,
    output_padding: int | Sequence[int] | None = None,
    output_size: int | Sequence[int] | None = None,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    in_channels: int | None = None,
    out_channels: int | None = None,
    transposed: bool = True,
) -> tuple[ConvSpec, Translation]:
    """A layer given with generic options, read with ``framework``'s meaning of each.

    ``padding`` is a string (``'same'``, ``'valid'``, ``'same_lower'``; the
    framework's spelling is applied), an int, one int per axis, or ``(lo, hi)``
    pairs (for frameworks that take them); ``None`` is the framework's own default
    (Keras's ``'valid'``, TensorFlow's ``'SAME'`` for a transposed convolution, 0 for
    PyTorch, ONNX, Paddle and tconv). Returns the resolved spec and the translation
    into every framework.
    """
    if framework != "tconv" and framework not in REGISTRY:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORK_CHOICES)}; received {framework!r}")
    if not transposed and (output_padding is not None or output_size is not None):
        raise ValueError(
            "output_padding and output_size belong to transposed convolutions; a convolution's output size "
            "follows from its padding (drop --conv, or --output-padding/--output-size)"
        )
    if padding is None:
        padding = default_padding(framework, transposed)
    size = (input_size,) if isinstance(input_size, int) else tuple(int(n) for n in input_size)
    ndim = len(size)
    kernel = ints_per_axis(kernel_size, ndim, "kernel_size", broadcast_one=True)
    strides = ints_per_axis(stride, ndim, "stride", broadcast_one=True)
    dilations = ints_per_axis(dilation, ndim, "dilation", broadcast_one=True)
    c_in = in_channels if in_channels is not None else groups
    c_out = out_channels if out_channels is not None else groups
    pairs = _pairs(padding, ndim)
    mode = padding.lower() if isinstance(padding, str) else None
    ops = None if output_padding is None else ints_per_axis(output_padding, ndim, "output_padding", broadcast_one=True)
    want = None if output_size is None else ints_per_axis(output_size, ndim, "output_size", broadcast_one=True)
    common: dict[str, Any] = dict(
        input_size=size, kernel_size=kernel, in_channels=c_in, out_channels=c_out, transposed=transposed
    )
    if framework == "tconv":
        spec = ConvSpec.build(
            **common,
            stride=strides,
            padding=padding if mode else (pairs or 0),
            dilation=dilations,
            groups=groups,
            output_padding=(ops or 0) if transposed else 0,
            output_size=want if transposed else None,
        )
        source = "onnx"
        pads = [lo for lo, _ in spec.padding] + [hi for _, hi in spec.padding]
        args: dict[str, Any] = dict(strides=spec.stride, pads=pads, dilations=spec.dilation, group=groups)
        if transposed:
            args["output_padding"] = spec.output_padding
        return spec, translate(source, **common, **args)
    options = Options(transposed, size, kernel, strides, dilations, groups, padding, mode, pairs, ops, want)
    args = get(framework).options_as_arguments(options)
    translation = translate(framework, **common, **args)
    return translation.spec, translation


@dataclass(frozen=True)
class Explanation:
    """The report on one layer; ``str()`` is the text, ``to_dict()`` the JSON form."""

    framework: str
    spec: ConvSpec
    translation: Translation

    def formula_lines(self) -> list[str]:
        """The output-size formula with the numbers substituted, per axis."""
        lines = []
        spec = self.spec
        for axis in range(spec.ndim):
            n, k, s, d = spec.input_size[axis], spec.kernel_size[axis], spec.stride[axis], spec.dilation[axis]
            lo, hi = spec.padding[axis]
            out = spec.output_size[axis]
            if spec.transposed:
                op = spec.output_padding[axis]
                lines.append(
                    f"axis {axis}: out = (n-1)*s + d*(k-1) + 1 - lo - hi + op = "
                    f"({n}-1)*{s} + {d}*({k}-1) + 1 - {lo} - {hi} + {op} = {out}"
                )
            else:
                lines.append(
                    f"axis {axis}: out = floor((n + lo + hi - d*(k-1) - 1) / s) + 1 = "
                    f"floor(({n} + {lo} + {hi} - {d}*({k}-1) - 1) / {s}) + 1 = {out}"
                )
        return lines

    def matrix_stats(self) -> dict[str, Any]:
        """Shape and sparsity of the matrix C of the forward convolution (C^T for a transposed layer)."""
        forward = self.spec.as_convolution()
        taps_total = 0
        for _, box, _, _ in tap_windows(forward):
            count = 1
            for b in box:
                count *= b
            taps_total += count
        n_out = forward.out_channels
        for size in forward.output_size:
            n_out *= size
        n_in = forward.in_channels
        for size in forward.input_size:
            n_in *= size
        nnz = taps_total * forward.out_channels * (forward.in_channels // forward.groups)
        return {"rows": n_out, "columns": n_in, "nonzeros": nnz, "density": nnz / (n_out * n_in)}

    def warnings(self) -> list[str]:
        spec = self.spec
        notes = []
        if spec.transposed:
            for axis, (k, s, d) in enumerate(zip(spec.kernel_size, spec.stride, spec.dilation)):
                if s > 1 and shapes.dilated_kernel_size(k, d) % s:
                    notes.append(
                        f"axis {axis}: the kernel ({shapes.dilated_kernel_size(k, d)}) is not divisible by the stride "
                        f"({s}), so outputs receive unequal numbers of taps: expect checkerboard artifacts"
                    )
            for axis, (n, k, s, d, pad) in enumerate(
                zip(spec.output_size, spec.kernel_size, spec.stride, spec.dilation, spec.padding)
            ):
                if s > 1:
                    m = spec.input_size[axis]
                    sizes = list(shapes.conv_input_sizes(m, k, stride=s, padding=pad, dilation=d))
                    if len(sizes) > 1:
                        notes.append(
                            f"axis {axis}: convolutions of sizes {sizes} all give {m}; this layer returns {n} "
                            f"(output_padding {spec.output_padding[axis]} picks it)"
                        )
        for name, layer in self.translation.layers.items():
            if not layer.exact:
                notes.append(f"{name} cannot express this layer in one call: {'; '.join(layer.notes)}")
        return notes

    def equivalent_lines(self) -> list[str]:
        spec = self.spec
        if not spec.transposed:
            return ["(a convolution: it is its own direct form)"]
        lines = []
        axes = zip(spec.input_size, spec.kernel_size, spec.stride, spec.padding, spec.output_padding, spec.dilation)
        for axis, (n, k, s, crop, extra, d) in enumerate(axes):
            eq = shapes.equivalent_conv(n, k, stride=s, padding=crop, output_padding=extra, dilation=d)
            pad = ", ".join(f"{p} (crop {-p})" if p < 0 else str(p) for p in eq.padding)
            lines.append(
                f"axis {axis}: insert {eq.zeros_between} zero(s) between inputs ({n} -> "
                f"{eq.dilated_input_size}), pad ({pad}), correlate with the flipped kernel at stride 1"
                f"{f', dilation {eq.dilation}' if eq.dilation > 1 else ''} -> {eq.output_size}"
            )
        lines.append(
            f"channels swap roles: the direct convolution maps {spec.in_channels} -> {spec.out_channels} channels "
            f"with the weight transposed per group (groups={spec.groups})"
        )
        return lines

    def __str__(self) -> str:
        spec = self.spec
        kind = "transposed convolution" if spec.transposed else "convolution"
        lines = [
            f"{kind} ({self.framework}): input {_by(spec.input_size)}, kernel {_by(spec.kernel_size)}, "
            f"stride {_by(spec.stride)}, dilation {_by(spec.dilation)}, "
            f"groups {spec.groups} -> output {_by(spec.output_size)}",
            "",
            "Output size",
            *(f"  {line}" for line in self.formula_lines()),
        ]
        if spec.transposed:
            lines += ["", "Full output and crop"]
            for axis in range(spec.ndim):
                full = shapes.transposed_full_size(
                    spec.input_size[axis], spec.kernel_size[axis], spec.stride[axis], spec.dilation[axis]
                )
                lo, hi = spec.padding[axis]
                lines.append(
                    f"  axis {axis}: each input stamps the kernel {spec.stride[axis]} apart: full output {full}; "
                    f"crop {lo} at the start and {hi} at the end; output padding {spec.output_padding[axis]} "
                    f"-> {spec.output_size[axis]}"
                )
            lines += ["", "Equivalent direct convolution", *(f"  {line}" for line in self.equivalent_lines())]
        stats = self.matrix_stats()
        role = "its transpose C^T is this layer" if spec.transposed else "this layer is y = C x"
        lines += [
            "",
            "Matrix C",
            f"  {stats['rows']} x {stats['columns']} ({role}); {stats['nonzeros']} nonzeros, "
            f"density {stats['density']:.4f}",
            "",
            "In every framework",
        ]
        for name, layer in self.translation.layers.items():
            lines.append(f"  # {name} ({'exact' if layer.exact else 'needs an extra step'})")
            lines.extend(f"  {line}" for line in layer.code.splitlines())
        warnings = self.warnings()
        lines += ["", "Warnings", *(f"  - {w}" for w in warnings)] if warnings else ["", "Warnings: none"]
        return "\n".join(lines) + "\n"

    def translation_dict(self) -> dict[str, Any]:
        """The output size and every framework's call, as plain data (``tconv translate --json``)."""
        layers = {
            name: {
                "function": f"{layer.module}.{layer.function}",
                "arguments": repr(layer.kwargs),
                "exact": layer.exact,
                "notes": list(layer.notes),
                "code": layer.code,
            }
            for name, layer in self.translation.layers.items()
        }
        return {"output_size": self.spec.output_size, "layers": layers}

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "framework": self.framework,
            "transposed": spec.transposed,
            "input_size": spec.input_size,
            "kernel_size": spec.kernel_size,
            "stride": spec.stride,
            "dilation": spec.dilation,
            "padding": spec.padding,
            "output_padding": spec.output_padding,
            "groups": spec.groups,
            "output_size": spec.output_size,
            "formula": self.formula_lines(),
            "equivalent_conv": self.equivalent_lines(),
            "matrix": self.matrix_stats(),
            "frameworks": {
                name: {"exact": layer.exact, "code": layer.code, "notes": list(layer.notes)}
                for name, layer in self.translation.layers.items()
            },
            "warnings": self.warnings(),
        }


def _by(values: Sequence[int]) -> str:
    """``(4, 5)`` as ``4x5``."""
    return "x".join(map(str, values))


def explain(framework: str = "tconv", **options: Any) -> Explanation:
    """Explain one layer given with :func:`layer_spec`'s options in ``framework``'s terms."""
    spec, translation = layer_spec(framework, **options)
    return Explanation(framework, spec, translation)


# --- ``tconv explain --model``: the tiling arithmetic of a built-in model (a path of its own) -------------------


def _volume_decoder() -> Any:
    from .volume import decoder

    return decoder()


def _super_resolution() -> Any:
    from ..models import super_resolution_net

    return super_resolution_net()


#: The built-in models that run tile by tile (:func:`tconv.dask.run_model`): name -> (builder, input channels,
#: spatial rank). ``volume-decoder`` is ``tconv demo volume``'s decoder, ``super-resolution``
#: :func:`tconv.models.super_resolution_net`. (The DCGAN generator starts with a dense layer, the U-Net has
#: skip connections: neither is a stack of local layers.)
TILEABLE_MODELS: dict[str, tuple[Any, int, int]] = {
    "volume-decoder": (_volume_decoder, 4, 3),
    "super-resolution": (_super_resolution, 1, 2),
}


def model_input_shape(name: str, sizes: Sequence[int] | None) -> tuple[int, ...]:
    """The full input shape ``(N, C, *spatial)`` of model ``name`` from ``sizes``: ``C x spatial``,
    ``N x C x spatial``, or the spatial sizes alone (the model's channels, batch 1)."""
    _, channels, rank = TILEABLE_MODELS[name]
    given = tuple(int(n) for n in sizes) if sizes is not None else (64,) * rank
    if len(given) == rank:
        return (1, channels, *given)
    if len(given) == rank + 1:
        return (1, *given)
    if len(given) == rank + 2:
        return given
    raise ValueError(
        f"model {name!r} takes {rank}-D inputs: give --input as {rank} spatial sizes, CxSPATIAL or NxCxSPATIAL "
        f"(e.g. {'x'.join([str(channels)] + ['64'] * rank)}); received {'x'.join(map(str, given))}"
    )


def explain_model(name: str, sizes: Sequence[int] | None = None) -> Any:
    """The tiling arithmetic (:func:`tconv.dask.model_arithmetic`: receptive field, halo, alignment per
    layer) of built-in model ``name`` for inputs of ``sizes`` (see :func:`model_input_shape`).

    Examples
    --------
    >>> table = explain_model("super-resolution", (1, 32, 32))
    >>> last = table.to_dict()["layers"][-1]
    >>> last["type"], last["receptive_field"], last["halo"]
    ('Conv2d', [5, 5], [[1, 3], [1, 3]])
    """
    if name not in TILEABLE_MODELS:
        raise ValueError(f"unknown model {name!r}; the tileable built-in models are {', '.join(TILEABLE_MODELS)}")
    from ..dask import model_arithmetic

    return model_arithmetic(TILEABLE_MODELS[name][0](), model_input_shape(name, sizes))
