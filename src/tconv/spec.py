"""The one internal description of a convolution, and the one parser that builds it.

Every entry point (the operations, the framework front ends through their
``Framework.read_spec``, the layers and the command-line tool) turns its arguments
into a :class:`ConvSpec` through :meth:`ConvSpec.build`; nothing else resolves
``stride``, ``padding``, ``dilation``, ``output_padding``, ``output_size`` or
``groups`` into a call (per-axis integers are read by :mod:`tconv._arguments`).
Padding strings are resolved into explicit ``(lo, hi)`` pairs by :mod:`tconv.shapes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ParamSpec

from . import shapes
from ._arguments import array_as_python, as_int, ints_per_axis, plain_options_key, remember

__all__ = ["ConvSpec", "PaddingArg"]

#: What ``padding`` accepts: an int, one int per axis, one ``(lo, hi)`` pair per
#: axis, or one of the strings ``'valid'``, ``'same'``, ``'same_lower'``.
PaddingArg = int | str | Sequence[int] | Sequence[Sequence[int]]

_PADDING_STRINGS = ("valid", "same", "same_lower")

#: :meth:`ConvSpec.build`'s remembered parses (by :func:`tconv._arguments.plain_key`), emptied when full.
_BUILT: dict[Any, ConvSpec] = {}
_BUILT_LIMIT = 4096

_P = ParamSpec("_P")


def _remembered(parse: Callable[_P, ConvSpec]) -> Callable[_P, ConvSpec]:
    """``parse`` remembering its successful results for keyword arguments of plain Python values (a refused
    call raises before anything is stored, so it is refused again next time)."""

    @functools.wraps(parse)
    def remembered(*args: _P.args, **kwargs: _P.kwargs) -> ConvSpec:
        options = plain_options_key(kwargs)
        key = None if options is None else (args, options)
        spec = None if key is None else _BUILT.get(key)
        if spec is None:
            spec = parse(*args, **kwargs)
            if key is not None:
                remember(_BUILT, key, spec, _BUILT_LIMIT)
        return spec

    return remembered


def _padding_pairs(padding: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """Parse the non-string forms of ``padding`` into one ``(lo, hi)`` pair per axis."""
    expected = (
        f"an int, a sequence of {ndim} ints, a sequence of {ndim} (lo, hi) pairs, "
        f"or one of {', '.join(repr(s) for s in _PADDING_STRINGS)}"
    )
    padding = array_as_python(padding)  # padding=np.array([1, 1]) or one (lo, hi) row per axis
    if isinstance(padding, Sequence) and not isinstance(padding, (str, bytes)):
        if len(padding) != ndim:
            hint = ""
            if ndim == 1 and len(padding) == 2:
                hint = " (for an asymmetric (lo, hi) pair on one axis write [(lo, hi)])"
            raise ValueError(f"padding must be {expected}; received {padding!r} of length {len(padding)}{hint}")
        pairs = []
        for entry in padding:
            if isinstance(entry, Sequence) and not isinstance(entry, (str, bytes)):
                if len(entry) != 2:
                    raise ValueError(f"padding must be {expected}; received the entry {entry!r}")
                pairs.append((as_int(entry[0], "padding", expected), as_int(entry[1], "padding", expected)))
            else:
                p = as_int(entry, "padding", expected)
                pairs.append((p, p))
    else:
        p = as_int(padding, "padding", expected)
        pairs = [(p, p)] * ndim
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise ValueError(f"padding must be non-negative on every axis; received padding={padding!r}")
    return tuple(pairs)


def parse_groups(groups: Any) -> int:
    """Check ``groups``: a positive int."""
    value = as_int(groups, "groups", "a positive int")
    if value < 1:
        raise ValueError(f"groups must be a positive int; received groups={groups!r}")
    return value


@dataclass(frozen=True)
class ConvSpec:
    """A convolution or transposed convolution, fully resolved, per spatial axis.

    Attributes
    ----------
    transposed : bool
        ``False`` for a convolution, ``True`` for a transposed convolution.
    input_size, kernel_size : tuple of int
        Spatial sizes of the input and of the (undilated) kernel.
    stride, dilation : tuple of int
    padding : tuple of (int, int)
        The forward convolution's ``(lo, hi)`` padding on each axis. For a
        transposed convolution this is what is cropped from the full output.
    output_padding : tuple of int
        Elements added at the high end of a transposed convolution's output
        (all zero for a convolution).
    groups, in_channels, out_channels : int

    Examples
    --------
    >>> spec = ConvSpec.build(transposed=True, input_size=(7, 7), kernel_size=(5, 5),
    ...                       in_channels=128, out_channels=64, stride=2, padding="same")
    >>> spec.padding, spec.output_padding, spec.output_size
    (((1, 2), (1, 2)), (0, 0), (14, 14))
    """

    transposed: bool
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    output_padding: tuple[int, ...]
    groups: int
    in_channels: int
    out_channels: int

    def __hash__(self) -> int:
        # The engine's caches (the plan, the index check, the live taps) hash the description several times a call:
        # worked out once per instance (the fields never change), as the dataclass's own hash of the same fields.
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.kernel_size)

    @functools.cached_property
    def output_size(self) -> tuple[int, ...]:
        """Spatial size of the result, from :mod:`tconv.shapes` (worked out once per description)."""
        options: dict[str, Any] = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}
        if self.transposed:
            return shapes.conv_transpose_output_shape(
                self.input_size, self.kernel_size, output_padding=self.output_padding, **options
            )
        return shapes.conv_output_shape(self.input_size, self.kernel_size, **options)

    def as_convolution(self) -> ConvSpec:
        """A transposed convolution as the convolution whose adjoint it is (over its output, the channel counts
        swapped, no output padding: its input gradient's call); a convolution as itself."""
        if not self.transposed:
            return self
        return replace(
            self, transposed=False, input_size=self.output_size, output_padding=(0,) * self.ndim,
            in_channels=self.out_channels, out_channels=self.in_channels,
        )  # fmt: skip

    @classmethod
    @_remembered
    def build(
        cls,
        *,
        transposed: bool,
        input_size: Sequence[int],
        kernel_size: Sequence[int],
        in_channels: int,
        out_channels: int,
        stride: int | Sequence[int] = 1,
        padding: PaddingArg = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        output_padding: int | Sequence[int] = 0,
        output_size: int | Sequence[int] | None = None,
    ) -> ConvSpec:
        """Validate user arguments and resolve them into a :class:`ConvSpec`.

        This is the only parser of convolution arguments in tconv. The rules:

        * ``stride``, ``dilation``: a positive int or one per spatial axis.
        * ``padding``: an int, one int per axis, one ``(lo, hi)`` pair per
          axis, ``'valid'``, ``'same'`` or ``'same_lower'`` (see
          :mod:`tconv.shapes` for how the strings resolve).  For a
          transposed convolution ``'same'`` fixes the output at ``input*stride``
          and so cannot be combined with ``output_padding`` or ``output_size``.
        * ``output_padding`` (transposed only): a non-negative int or one per
          axis, each smaller than ``max(stride, dilation)`` on its axis.
        * ``output_size`` (transposed only): the wanted spatial size, an int or
          one per axis; the output padding is derived from it. It must lie in
          :func:`tconv.shapes.conv_transpose_output_sizes`, and it cannot be
          combined with a non-zero ``output_padding``.
        * ``groups``: a positive int dividing both channel counts.
        * Zero-size inputs: an input axis of length 0 is padded like any other, so the
          output holds the windows that fit in the padding (zeros, plus the bias) or is
          empty (:func:`tconv.shapes.conv_output_size`,
          :func:`tconv.shapes.conv_transpose_output_size`).

        A layer calls with the same arguments again and again, so a successful parse of plain Python values
        is remembered (:func:`tconv._arguments.plain_key`); anything refused is parsed, and refused, anew.
        """
        kernel = tuple(kernel_size)
        ndim = len(kernel)
        if ndim < 1:
            raise ValueError("the kernel must have at least one spatial axis; received kernel_size=()")
        if any(k < 1 for k in kernel):
            raise ValueError(f"kernel_size must be positive on every axis; received kernel_size={kernel}")
        size = tuple(input_size)
        if len(size) != ndim:
            raise ValueError(
                f"the input must have {ndim} spatial axes to match the kernel {kernel}; received spatial size {size}"
            )
        if any(n < 0 for n in size):
            raise ValueError(f"the input's spatial size must be non-negative on every axis; received {size}")
        strides = ints_per_axis(stride, ndim, "stride", minimum=1)
        dilations = ints_per_axis(dilation, ndim, "dilation", minimum=1)
        groups = parse_groups(groups)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels < 1:
                raise ValueError(f"{name} must be positive; received {name}={channels}")
            if channels % groups:
                raise ValueError(
                    f"groups must divide both channel counts; received groups={groups} with "
                    f"in_channels={in_channels}, out_channels={out_channels}"
                )

        zeros = (0,) * ndim
        # Only a non-zero output padding counts as given: 0 or (0, 0) says nothing.
        output_padding = array_as_python(output_padding)
        op_values = output_padding if isinstance(output_padding, Sequence) else [output_padding]
        op_given = output_padding is not None and any(
            isinstance(v, bool) or not hasattr(v, "__index__") or v != 0 for v in op_values
        )
        if not transposed:
            if op_given:
                raise ValueError(
                    f"output_padding only applies to a transposed convolution; received "
                    f"output_padding={output_padding!r} for a convolution"
                )
            if output_size is not None:
                raise ValueError(
                    f"output_size only applies to a transposed convolution; received "
                    f"output_size={output_size!r} for a convolution"
                )

        if isinstance(padding, str):
            mode = padding.lower()
            if mode not in _PADDING_STRINGS:
                raise ValueError(
                    f"padding must be an int, per-axis ints or (lo, hi) pairs, or one of "
                    f"{', '.join(repr(s) for s in _PADDING_STRINGS)}; received padding={padding!r}"
                )
            if mode == "valid":
                pairs: tuple[tuple[int, int], ...] = ((0, 0),) * ndim
            elif transposed:
                if op_given or output_size is not None:
                    raise ValueError(
                        f"padding={padding!r} fixes a transposed convolution's output at input*stride, "
                        f"so output_padding and output_size cannot be given with it; received "
                        f"output_padding={output_padding!r}, output_size={output_size!r}. "
                        "Pass explicit (lo, hi) padding pairs instead."
                    )
                resolved = [
                    shapes.conv_transpose_same_padding(n, k, stride=s, dilation=d, lower=mode == "same_lower")
                    for n, k, s, d in zip(size, kernel, strides, dilations)
                ]
                pairs = tuple(pair for pair, _ in resolved)
                output_padding = tuple(op for _, op in resolved)
                op_given = False
            else:
                pairs = tuple(
                    shapes.conv_same_padding(n, k, stride=s, dilation=d, lower=mode == "same_lower")
                    for n, k, s, d in zip(size, kernel, strides, dilations)
                )
        else:
            pairs = _padding_pairs(padding, ndim)

        out_pads = ints_per_axis(0 if output_padding is None else output_padding, ndim, "output_padding", minimum=0)
        if transposed:
            bad = [i for i in range(ndim) if out_pads[i] >= max(strides[i], dilations[i])]
            if bad:
                raise ValueError(
                    "output_padding must be smaller than stride or dilation on every axis; received "
                    f"output_padding={out_pads} with stride={strides}, dilation={dilations}"
                )
            if output_size is not None:
                if op_given:
                    raise ValueError(
                        "give output_padding or output_size, not both; received "
                        f"output_padding={output_padding!r}, output_size={output_size!r}"
                    )
                wanted = ints_per_axis(output_size, ndim, "output_size", minimum=0 if 0 in size else 1)
                reachable = [
                    shapes.conv_transpose_output_sizes(n, k, stride=s, padding=p, dilation=d)
                    for n, k, s, p, d in zip(size, kernel, strides, pairs, dilations)
                ]
                if any(w not in r for w, r in zip(wanted, reachable)):
                    ranges = ", ".join(f"[{r.start}, {r.stop - 1}]" if len(r) else "none" for r in reachable)
                    raise ValueError(
                        f"output_size={wanted} cannot be reached from input size {size} with "
                        f"kernel_size={kernel}, stride={strides}, padding={pairs}, dilation={dilations}; "
                        f"the reachable sizes per axis are {ranges}"
                    )
                # The range runs over output_padding = 0 .. max(s, d) - 1 (minus sizes
                # below 1), so the smallest size, reached with output_padding 0, is
                # r.stop - max(s, d).
                out_pads = tuple(w - (r.stop - max(s, d)) for w, r, s, d in zip(wanted, reachable, strides, dilations))

        spec = cls(
            transposed=bool(transposed),
            input_size=size,
            kernel_size=kernel,
            stride=strides,
            dilation=dilations,
            padding=pairs,
            output_padding=out_pads if transposed else zeros,
            groups=groups,
            in_channels=int(in_channels),
            out_channels=int(out_channels),
        )
        # Validate each axis's output (non-empty unless the input axis is), naming the axis.
        for axis in range(ndim):
            try:
                spec._axis_output(axis)
            except ValueError as err:
                raise ValueError(f"on spatial axis {axis}: {err}") from None
        return spec

    def _axis_output(self, axis: int) -> int:
        layer = shapes.AxisLayer(
            self.kernel_size[axis],
            self.stride[axis],
            self.padding[axis],
            self.output_padding[axis],
            self.dilation[axis],
            self.transposed,
        )
        return shapes.layer_output_size(layer, self.input_size[axis])
