"""Shape arithmetic of convolution and transposed convolution, on plain integers.

Every function here works on one spatial axis at a time (the ``*_shape``
functions map the per-axis ones over tuples) and knows nothing about arrays.
The operations, the layers and the command-line tool call these functions;
nothing else in tconv repeats the formulas.

The second half is the arithmetic of tiling (:func:`conv_input_range`, :func:`conv_transpose_input_range`,
:func:`aligned_output_boundaries`, :func:`stack_arithmetic`): which input range one output block needs, and how
to compute exactly that block from that range alone, for one layer and for a stack of layers (what
:mod:`tconv.dask` runs block by block).

This module is long because every formula carries its derivation and doctested examples (the seeds'
numbers) in its docstring; the code itself is a few lines per function.

Notation used in every docstring, per axis:

* ``n``  input length, ``k`` kernel length, ``s`` stride, ``d`` dilation;
* ``k_eff = d*(k-1) + 1``, the length the dilated kernel spans;
* ``(lo, hi)`` the zero padding of the *forward* convolution at the low and
  high end.  A transposed convolution uses the padding of the convolution it
  transposes: it computes the full output and crops ``lo`` elements from the
  start and ``hi`` from the end;
* ``op`` the output padding of a transposed convolution, added at the high
  end (it only picks which of the ``s`` input lengths that share one conv
  output length the transposed convolution returns).

Rules for the padding strings
-----------------------------
``'valid'``
    no padding: ``(0, 0)``.
``'same'`` (TensorFlow's rule, also ONNX ``SAME_UPPER``)
    convolution: the output length is ``ceil(n/s)``; the total padding is
    ``max((ceil(n/s) - 1)*s + k_eff - n, 0)``, split as
    ``lo = total // 2`` and ``hi = total - lo`` (an odd total puts the extra
    element at the end).
    transposed convolution: the output length is ``n*s``; the padding is the
    one ``'same'`` gives the forward convolution whose input length is
    ``n*s``, i.e. a total of ``max(k_eff - s, 0)`` split as above, and where
    ``k_eff < s`` the missing ``s - k_eff`` elements come from output padding.
``'same_lower'`` (ONNX ``SAME_LOWER``)
    as ``'same'`` but an odd total puts the extra element at the start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from ._arguments import ints_per_axis

__all__ = [
    "AxisLayer",
    "BlockWindow",
    "EquivalentConv",
    "StackArithmetic",
    "aligned_output_boundaries",
    "conv_input_range",
    "conv_input_sizes",
    "conv_output_shape",
    "conv_output_size",
    "conv_same_padding",
    "conv_transpose_input_range",
    "conv_transpose_output_shape",
    "conv_transpose_output_size",
    "conv_transpose_output_sizes",
    "conv_transpose_same_padding",
    "dilated_kernel_size",
    "equivalent_conv",
    "layer_input_range",
    "layer_output_size",
    "solve_conv_transpose_padding",
    "stack_arithmetic",
    "stack_input_ranges",
    "transposed_full_size",
]

PaddingPair = tuple[int, int]


def _pair(padding: int | Sequence[int], name: str = "padding") -> PaddingPair:
    """Turn a symmetric int or a ``(lo, hi)`` pair into a checked pair."""
    if isinstance(padding, bool):
        raise TypeError(f"{name} must be an int or a (lo, hi) pair of ints; received {padding!r}")
    if isinstance(padding, int):
        pair = (padding, padding)
    elif (
        isinstance(padding, Sequence)
        and len(padding) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) for p in padding)
    ):
        pair = (int(padding[0]), int(padding[1]))
    else:
        raise TypeError(f"{name} must be an int or a (lo, hi) pair of ints; received {padding!r}")
    if pair[0] < 0 or pair[1] < 0:
        raise ValueError(f"{name} must be non-negative; received {padding!r}")
    return pair


def _at_least(value: int, name: str, minimum: int) -> int:
    kind = "positive" if minimum == 1 else "non-negative"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a {kind} int; received {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be a {kind} int; received {value!r}")
    return value


def _positive(value: int, name: str) -> int:
    return _at_least(value, name, 1)


def _non_negative(value: int, name: str) -> int:
    return _at_least(value, name, 0)


class _Axis(NamedTuple):
    """One axis's arguments, checked: a length (input or output), ``k_eff``, stride, padding pair."""

    size: int
    k_eff: int
    s: int
    lo: int
    hi: int


def _axis(
    size: int,
    size_name: str,
    kernel_size: int,
    stride: int,
    dilation: int,
    padding: int | Sequence[int] = 0,
    *,
    empty: bool = False,
) -> _Axis:
    """Check one axis's arguments in the order every function reports them: size, kernel, stride, padding.

    ``empty`` admits a size of 0 (an input axis of zero length, see :func:`conv_output_size`)."""
    n = _at_least(size, size_name, 0 if empty else 1)
    k_eff = dilated_kernel_size(kernel_size, dilation)
    s = _positive(stride, "stride")
    lo, hi = _pair(padding)
    return _Axis(n, k_eff, s, lo, hi)


def dilated_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """Length spanned by a dilated kernel: ``k_eff = d*(k-1) + 1``.

    Examples
    --------
    >>> dilated_kernel_size(3)
    3
    >>> dilated_kernel_size(3, dilation=2)
    5
    """
    _positive(kernel_size, "kernel_size")
    _positive(dilation, "dilation")
    return dilation * (kernel_size - 1) + 1


def transposed_full_size(input_size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """Length of a transposed convolution's full output, before any crop: ``(n-1)*s + d*(k-1) + 1``.

    Every input element stamps the dilated kernel, ``s`` apart; the last stamp starts at
    ``(n-1)*s`` and spans ``k_eff``. The padding then crops ``lo`` and ``hi`` from it and the
    output padding adds at the end (:func:`conv_transpose_output_size`).

    Examples
    --------
    Seed 004 (2 -> 5 with kernel 3, stride 2) and seed 000's first stride-2 layer (7 -> 17 before its crop):

    >>> transposed_full_size(2, 3, stride=2)
    5
    >>> transposed_full_size(7, 5, stride=2)
    17
    """
    _non_negative(input_size, "input_size")
    _positive(stride, "stride")
    return (input_size - 1) * stride + dilated_kernel_size(kernel_size, dilation)


def conv_output_size(
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    dilation: int = 1,
) -> int:
    """Output length of a convolution along one axis.

    ``out = floor((n + lo + hi - k_eff) / s) + 1`` with ``k_eff = d*(k-1) + 1``.

    Parameters
    ----------
    input_size, kernel_size : int
        ``n`` and ``k``.
    stride, dilation : int
        ``s`` and ``d``.
    padding : int or (int, int)
        Symmetric padding or a ``(lo, hi)`` pair.

    Raises
    ------
    ValueError
        If a non-empty padded input is shorter than the dilated kernel (output below 1).

    Notes
    -----
    An empty input (``n = 0``) is padded like any other: where ``lo + hi`` covers the
    dilated kernel the output is that many windows of zeros; otherwise it is empty
    (length 0), as in TensorFlow and JAX.

    Examples
    --------
    Seed 003, a 4x4 input and a 3x3 kernel give 2x2:

    >>> conv_output_size(4, 3)
    2

    Seed 001, 32 with kernel 18 and padding 3 gives 21; 7 and 8 with kernel 3
    and stride 2 both give 3:

    >>> conv_output_size(32, 18, padding=3)
    21
    >>> conv_output_size(7, 3, stride=2), conv_output_size(8, 3, stride=2)
    (3, 3)

    Empty inputs: padding 1 on each side gives two windows of a 1-tap kernel, none without padding:

    >>> conv_output_size(0, 1, padding=1), conv_output_size(0, 3)
    (2, 0)
    """
    n, k_eff, s, lo, hi = _axis(input_size, "input_size", kernel_size, stride, dilation, padding, empty=True)
    span = n + lo + hi - k_eff
    if span < 0 and n == 0:
        return 0
    if span < 0:
        raise ValueError(
            "the padded input is shorter than the dilated kernel, so the output would be empty; "
            f"received input_size={n}, padding={(lo, hi)}, kernel_size={kernel_size}, "
            f"dilation={dilation} (dilated kernel {k_eff})"
        )
    return span // s + 1


def conv_transpose_output_size(
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed convolution along one axis.

    ``out = (n - 1)*s + k_eff - lo - hi + op`` with ``k_eff = d*(k-1) + 1``:
    the full output ``(n-1)*s + k_eff`` (each input element stamps the kernel
    ``s`` apart), cropped by the forward convolution's padding ``(lo, hi)``,
    extended by ``op`` at the high end.  ``op`` must be smaller than
    ``max(s, d)``. An empty input (``n = 0``) gives the same formula's length of zeros, or an
    empty output where the crop takes everything.

    Raises
    ------
    ValueError
        If ``op`` is too large or the crop leaves fewer than one element of a non-empty input.

    Examples
    --------
    Seed 001: 32 with kernel 3, padding 2 gives 30; with stride 3 it gives 92;
    21 with kernel 18 and padding 3 gives 32 back; 3 with kernel 3 and
    stride 2 gives 7, or 8 with ``output_padding=1``:

    >>> conv_transpose_output_size(32, 3, padding=2)
    30
    >>> conv_transpose_output_size(32, 3, stride=3, padding=2)
    92
    >>> conv_transpose_output_size(21, 18, padding=3)
    32
    >>> conv_transpose_output_size(3, 3, stride=2)
    7
    >>> conv_transpose_output_size(3, 3, stride=2, output_padding=1)
    8

    Seed 002: 2 gives 4 with stride 1 and 5 with stride 2 (kernel 3); seed 001's
    1x1 kernel with padding 1 crops a 3x3 input to 1x1:

    >>> conv_transpose_output_size(2, 3), conv_transpose_output_size(2, 3, stride=2)
    (4, 5)
    >>> conv_transpose_output_size(3, 1, padding=1)
    1
    >>> conv_transpose_output_size(0, 3), conv_transpose_output_size(0, 3, padding=2)
    (2, 0)
    """
    n, _, s, lo, hi = _axis(input_size, "input_size", kernel_size, stride, dilation, padding, empty=True)
    op = _non_negative(output_padding, "output_padding")
    if op >= max(s, dilation):
        raise ValueError(
            "output_padding must be smaller than stride or dilation; "
            f"received output_padding={op} with stride={s}, dilation={dilation}"
        )
    full = transposed_full_size(n, kernel_size, s, dilation)
    out = full - lo - hi + op
    if out < 1 and n == 0:
        return max(out, 0)
    if out < 1:
        raise ValueError(
            "the padding crops the whole output of the transposed convolution; received "
            f"input_size={n}, kernel_size={kernel_size}, stride={s}, padding={(lo, hi)}, "
            f"output_padding={op}, dilation={dilation}: full output {full + op}, "
            f"cropped by {lo + hi}"
        )
    return out


def conv_transpose_output_sizes(
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    dilation: int = 1,
) -> range:
    """Every output length a transposed convolution can give, over all output paddings.

    That is ``conv_transpose_output_size`` for ``op = 0 .. max(s, d) - 1``,
    minus the lengths below 1. An ``output_size`` argument must lie in this range.

    Examples
    --------
    >>> conv_transpose_output_sizes(3, 3, stride=2)
    range(7, 9)
    >>> conv_transpose_output_sizes(7, 5, stride=2, padding=2)
    range(13, 15)
    """
    n, _, s, lo, hi = _axis(input_size, "input_size", kernel_size, stride, dilation, padding, empty=True)
    smallest = transposed_full_size(n, kernel_size, s, dilation) - lo - hi
    return range(max(smallest, 0 if n == 0 else 1), smallest + max(s, dilation))


def conv_input_sizes(
    output_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    dilation: int = 1,
) -> range:
    """Every input length that a convolution maps to ``output_size``.

    A stride ``s`` convolution drops up to ``s - 1`` trailing elements, so
    ``s`` input lengths share one output length:
    ``n = (out - 1)*s + k_eff - lo - hi + r`` for ``r = 0 .. s - 1`` (those
    at least 1). The transposed convolution returns the smallest unless told
    otherwise by ``output_padding = r``.

    Examples
    --------
    Seed 001, why 7x7 and 8x8 both convolve to 3x3 with kernel 3, stride 2:

    >>> conv_input_sizes(3, 3, stride=2)
    range(7, 9)
    >>> conv_input_sizes(2, 3)
    range(4, 5)
    """
    out, k_eff, s, lo, hi = _axis(output_size, "output_size", kernel_size, stride, dilation, padding)
    smallest = (out - 1) * s + k_eff - lo - hi
    return range(max(smallest, 1), smallest + s)


def conv_same_padding(
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    lower: bool = False,
) -> PaddingPair:
    """The ``(lo, hi)`` padding that ``'same'`` gives a convolution.

    Output ``ceil(n/s)``; total ``max((ceil(n/s) - 1)*s + k_eff - n, 0)``,
    split ``lo = total // 2``, ``hi = total - lo`` (TensorFlow, ONNX
    ``SAME_UPPER``), or the other way round with ``lower=True`` (ONNX ``SAME_LOWER``).

    Examples
    --------
    >>> conv_same_padding(7, 5)
    (2, 2)
    >>> conv_same_padding(14, 5, stride=2)
    (1, 2)
    >>> conv_same_padding(14, 5, stride=2, lower=True)
    (2, 1)
    """
    n, k_eff, s, _, _ = _axis(input_size, "input_size", kernel_size, stride, dilation, empty=True)
    out = -(-n // s)
    total = max((out - 1) * s + k_eff - n, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def conv_transpose_same_padding(
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    lower: bool = False,
) -> tuple[PaddingPair, int]:
    """The ``((lo, hi), output_padding)`` that ``'same'`` gives a transposed convolution.

    The output length is ``n*s``. The padding is the one ``'same'`` gives the
    forward convolution of an ``n*s`` input (what TensorFlow's
    ``conv2d_transpose`` and Keras use): total ``max(k_eff - s, 0)`` split
    with the extra element at the end (at the start with ``lower=True``).
    When ``k_eff < s`` the full output is short by ``s - k_eff``, which
    becomes the output padding.

    Examples
    --------
    Seed 000's DCGAN generator: kernel 5 gives padding 2 with stride 1, and
    ``(1, 2)`` with stride 2 (7 -> 14 -> 28):

    >>> conv_transpose_same_padding(7, 5)
    ((2, 2), 0)
    >>> conv_transpose_same_padding(7, 5, stride=2)
    ((1, 2), 0)
    >>> conv_transpose_same_padding(4, 1, stride=2)
    ((0, 0), 1)
    """
    n, k_eff, s, _, _ = _axis(input_size, "input_size", kernel_size, stride, dilation, empty=True)
    pair = conv_same_padding(n * s, kernel_size, stride=s, dilation=dilation, lower=lower)
    output_padding = max(s - k_eff, 0)
    return pair, output_padding


def solve_conv_transpose_padding(
    input_size: int,
    output_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
) -> list[tuple[int, int]]:
    """Every symmetric ``(padding, output_padding)`` that gives the wanted output length.

    Solves ``out = (n - 1)*s + k_eff - 2p + op`` for ``p >= 0`` and
    ``0 <= op < max(s, d)``, as seed 000 does by hand. The list is sorted by
    ``p``; it is empty when no symmetric padding reaches ``out`` (an
    asymmetric pair may still: ``'same'`` with an even kernel, for example).

    Examples
    --------
    Seed 000's DCGAN generator, 7 -> 7 with kernel 5, stride 1, and 7 -> 14
    with stride 2: both need ``p = 2`` (the second also ``output_padding=1``):

    >>> solve_conv_transpose_padding(7, 7, 5)
    [(2, 0)]
    >>> solve_conv_transpose_padding(7, 14, 5, stride=2)
    [(2, 1)]
    >>> solve_conv_transpose_padding(14, 28, 5, stride=2)
    [(2, 1)]
    >>> solve_conv_transpose_padding(3, 8, 3, stride=2)
    [(0, 1)]
    """
    n = _positive(input_size, "input_size")
    out = _positive(output_size, "output_size")
    dilated_kernel_size(kernel_size, dilation)
    s = _positive(stride, "stride")
    full = transposed_full_size(n, kernel_size, s, dilation)
    solutions = []
    for op in range(max(s, dilation)):
        twice_p = full + op - out
        if twice_p >= 0 and twice_p % 2 == 0:
            solutions.append((twice_p // 2, op))
    return sorted(solutions)


class EquivalentConv(NamedTuple):
    """A transposed convolution along one axis, written as a stride-1 direct convolution.

    Insert ``zeros_between`` zeros between input elements (giving
    ``dilated_input_size``), pad by ``padding`` (a negative entry crops),
    and correlate with the *flipped* kernel at stride 1 and the same
    dilation; channels swap roles (per group).
    """

    zeros_between: int
    dilated_input_size: int
    padding: PaddingPair
    dilation: int
    kernel_size: int
    output_size: int


def equivalent_conv(
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> EquivalentConv:
    """The direct convolution that a transposed convolution equals, along one axis.

    The input is spread out with ``s - 1`` zeros between elements (length
    ``(n - 1)*s + 1``), padded by ``d*(k-1) - lo`` at the start and
    ``d*(k-1) - hi + op`` at the end, and correlated at stride 1 with the
    flipped kernel, with input and output channels swapped. A padding larger
    than ``d*(k-1)`` makes the corresponding entry negative: that many
    elements are cropped instead (seed 001's ``p' = k - 1 - p``).

    Examples
    --------
    Seed 001, ``ConvTranspose2d(k=3, padding=2)`` on 32 equals ``Conv2d(k=3,
    padding=0)`` with the flipped kernel; seed 004, 2 -> 5 with stride 2:

    >>> equivalent_conv(32, 3, padding=2)  # doctest: +NORMALIZE_WHITESPACE
    EquivalentConv(zeros_between=0, dilated_input_size=32, padding=(0, 0),
                   dilation=1, kernel_size=3, output_size=30)
    >>> equivalent_conv(2, 3, stride=2)  # doctest: +NORMALIZE_WHITESPACE
    EquivalentConv(zeros_between=1, dilated_input_size=3, padding=(2, 2),
                   dilation=1, kernel_size=3, output_size=5)
    >>> equivalent_conv(3, 1, padding=1).padding
    (-1, -1)
    """
    out = conv_transpose_output_size(
        input_size,
        kernel_size,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
    lo, hi = _pair(padding)
    reach = dilation * (kernel_size - 1)
    return EquivalentConv(
        zeros_between=stride - 1,
        dilated_input_size=(input_size - 1) * stride + 1,
        padding=(reach - lo, reach - hi + output_padding),
        dilation=dilation,
        kernel_size=kernel_size,
        output_size=out,
    )


def _pairs_per_axis(
    padding: int | Sequence[int] | Sequence[Sequence[int]], ndim: int
) -> tuple[int | Sequence[int], ...]:
    if isinstance(padding, int) and not isinstance(padding, bool):
        return (padding,) * ndim
    if isinstance(padding, Sequence) and len(padding) == ndim:
        return tuple(padding)
    raise ValueError(
        f"padding must be an int, a sequence of {ndim} ints or of {ndim} (lo, hi) pairs; received {padding!r}"
    )


def _shape_axes(
    input_shape: Sequence[int],
    kernel_shape: Sequence[int],
    stride: int | Sequence[int],
    padding: int | Sequence[int] | Sequence[Sequence[int]],
    dilation: int | Sequence[int],
    output_padding: int | Sequence[int] = 0,
) -> Iterator[tuple[int, int, int, int | Sequence[int], int, int]]:
    """The ``*_shape`` functions' arguments, checked and one value per kernel axis: ``(n, k, s, padding, op, d)``.

    One value for all axes is repeated on each; the checks run in the order the functions report them."""
    ndim = len(kernel_shape)
    if len(input_shape) != ndim:
        raise ValueError(f"input_shape must have one entry per kernel axis ({ndim}); received {tuple(input_shape)}")
    strides = ints_per_axis(stride, ndim, "stride")
    dilations = ints_per_axis(dilation, ndim, "dilation")
    output_paddings = ints_per_axis(output_padding, ndim, "output_padding")
    pads = _pairs_per_axis(padding, ndim)
    return zip(input_shape, kernel_shape, strides, pads, output_paddings, dilations)


def conv_output_shape(
    input_shape: Sequence[int],
    kernel_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | Sequence[Sequence[int]] = 0,
    dilation: int | Sequence[int] = 1,
) -> tuple[int, ...]:
    """Spatial output shape of a convolution: ``conv_output_size`` on every axis.

    Examples
    --------
    >>> conv_output_shape((4, 4), (3, 3))
    (2, 2)
    >>> conv_output_shape((14, 14), (5, 5), stride=2, padding=[(1, 2), (1, 2)])
    (7, 7)
    """
    return tuple(
        conv_output_size(n, k, stride=s, padding=p, dilation=d)
        for n, k, s, p, _, d in _shape_axes(input_shape, kernel_shape, stride, padding, dilation)
    )


def conv_transpose_output_shape(
    input_shape: Sequence[int],
    kernel_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | Sequence[Sequence[int]] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> tuple[int, ...]:
    """Spatial output shape of a transposed convolution: ``conv_transpose_output_size`` on every axis.

    Examples
    --------
    Seed 000's DCGAN generator, 7x7 -> 14x14 -> 28x28 with kernel 5, stride 2:

    >>> conv_transpose_output_shape((7, 7), (5, 5), stride=2, padding=[(1, 2), (1, 2)])
    (14, 14)
    >>> conv_transpose_output_shape((14, 14), (5, 5), stride=2, padding=2, output_padding=1)
    (28, 28)
    """
    return tuple(
        conv_transpose_output_size(n, k, stride=s, padding=p, output_padding=op, dilation=d)
        for n, k, s, p, op, d in _shape_axes(input_shape, kernel_shape, stride, padding, dilation, output_padding)
    )


# -- tiling: the input range each output block needs ---------------------------------------------------


class BlockWindow(NamedTuple):
    """What one output block of a tiled (transposed) convolution reads, and the call that computes it.

    The block ``[output_start, output_stop)`` equals the same operation applied to the input slice
    ``[input_start, input_stop)`` alone with ``padding`` (a convolution's zero padding, a transposed
    convolution's crop) and ``output_padding`` in place of the whole array's: the slice plus this padding is
    exactly what the whole computation reads for those outputs. ``input_start == input_stop`` means that
    the block reads no input at all (it lies wholly in the padding): it is the bias alone.
    """

    input_start: int
    input_stop: int
    padding: PaddingPair
    output_padding: int


def _check_range(start: int, stop: int, size: int) -> None:
    if isinstance(start, bool) or isinstance(stop, bool) or not isinstance(start, int) or not isinstance(stop, int):
        raise TypeError(f"output_start and output_stop must be ints; received {start!r}, {stop!r}")
    if not 0 <= start < stop <= size:
        raise ValueError(
            f"the output range must satisfy 0 <= output_start < output_stop <= {size} (the output length); "
            f"received [{start}, {stop})"
        )


def conv_input_range(
    output_start: int,
    output_stop: int,
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    dilation: int = 1,
) -> BlockWindow:
    """The input range that outputs ``[output_start, output_stop)`` of a convolution read, along one axis.

    Output ``o`` reads the padded input ``[o*s - lo, o*s - lo + k_eff)``, so the block reads
    ``[start*s - lo, (stop - 1)*s - lo + k_eff)``; the part outside ``[0, n)`` is the zero padding,
    which becomes the block's own padding.

    Examples
    --------
    Kernel 3, padding 1 on 10 elements: the first four outputs read inputs 0..4 and one zero before them,
    the rest read 3..9 and one zero after; with stride 2 outputs 2..4 read inputs 3..9:

    >>> conv_input_range(0, 4, 10, 3, padding=1)
    BlockWindow(input_start=0, input_stop=5, padding=(1, 0), output_padding=0)
    >>> conv_input_range(4, 10, 10, 3, padding=1)
    BlockWindow(input_start=3, input_stop=10, padding=(0, 1), output_padding=0)
    >>> conv_input_range(2, 5, 10, 3, stride=2, padding=1)
    BlockWindow(input_start=3, input_stop=10, padding=(0, 0), output_padding=0)
    """
    _check_range(
        output_start,
        output_stop,
        conv_output_size(input_size, kernel_size, stride=stride, padding=padding, dilation=dilation),
    )
    n, k_eff, s, lo, _ = _axis(input_size, "input_size", kernel_size, stride, dilation, padding)
    first = output_start * s - lo
    last = (output_stop - 1) * s - lo + k_eff
    start, stop = max(first, 0), min(last, n)
    if stop <= start:
        edge = min(max(first, 0), n)
        return BlockWindow(edge, edge, (last - first, 0), 0)
    return BlockWindow(start, stop, (start - first, last - stop), 0)


def conv_transpose_input_range(
    output_start: int,
    output_stop: int,
    input_size: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> BlockWindow:
    """The input range that outputs ``[output_start, output_stop)`` of a transposed convolution read.

    Output ``o`` is element ``o + lo`` of the full output, where input ``i`` stamps ``[i*s, i*s + k_eff)``.
    The block needs the inputs whose stamps meet ``[start + lo, stop + lo)``:
    ``ceil((start + lo - k_eff + 1)/s) <= i <= floor((stop - 1 + lo)/s)``. The slice's own full output is
    then cropped by ``padding`` to exactly the block; where stamps leave gaps (``k_eff < s``) one more input
    on that side keeps the crop non-negative (its stamp lies wholly in the cropped part), and at the
    array's end the output padding that the block still needs (less than ``max(s, d)``) is ``output_padding``.

    Examples
    --------
    Seed 004 (2 -> 5 with kernel 3, stride 2), outputs 0..1 and 2..4:

    >>> conv_transpose_input_range(0, 2, 2, 3, stride=2)
    BlockWindow(input_start=0, input_stop=1, padding=(0, 1), output_padding=0)
    >>> conv_transpose_input_range(2, 5, 2, 3, stride=2)
    BlockWindow(input_start=0, input_stop=2, padding=(2, 0), output_padding=0)

    A 1-element kernel at stride 3 leaves gaps: outputs 1..2 lie between two stamps, and seed 001's 3 -> 8
    ends in output padding:

    >>> conv_transpose_input_range(1, 3, 4, 1, stride=3)
    BlockWindow(input_start=0, input_stop=2, padding=(1, 1), output_padding=0)
    >>> conv_transpose_input_range(4, 8, 3, 3, stride=2, output_padding=1)
    BlockWindow(input_start=1, input_stop=3, padding=(2, 0), output_padding=1)
    """
    total = conv_transpose_output_size(
        input_size, kernel_size, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation
    )
    _check_range(output_start, output_stop, total)
    n, k_eff, s, lo, _ = _axis(input_size, "input_size", kernel_size, stride, dilation, padding)
    a, b = output_start + lo, output_stop + lo  # the block in the full output's coordinates
    start = max(-((k_eff - 1 - a) // s), 0)  # ceil((a - k_eff + 1) / s)
    stop = min((b - 1) // s + 1, n)
    if start > 0 and start * s > a:
        start -= 1
    if stop < n and (stop - 1) * s + k_eff < b:
        stop += 1
    if stop <= start:
        edge = min(start, n)
        return BlockWindow(edge, edge, (0, 0), 0)
    full_end = (stop - 1) * s + k_eff
    return BlockWindow(start, stop, (a - start * s, max(full_end - b, 0)), max(b - full_end, 0))


def aligned_output_boundaries(
    input_boundaries: Sequence[int],
    output_size: int,
    *,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    transposed: bool = False,
) -> tuple[int, ...]:
    """Output block boundaries that line up with input block boundaries ``(0, ..., n)``, along one axis.

    A transposed convolution's output block of the input block ``[B0, B1)`` starts where the block's
    first stamp lands, ``B*s - lo`` (so output blocks are ``stride`` times the input blocks); a
    convolution's output ``o`` belongs to the input block holding its window's start ``o*s - lo``, so
    the boundary is ``ceil((B + lo)/s)``. Boundaries are clipped to ``[0, output_size]``; empty blocks
    are dropped. The first and last output boundaries are ``0`` and ``output_size``.

    Examples
    --------
    >>> aligned_output_boundaries((0, 4, 8, 10), 20, stride=2, padding=1, transposed=True)
    (0, 7, 15, 20)
    >>> aligned_output_boundaries((0, 4, 8, 10), 5, stride=2, padding=1)
    (0, 3, 5)
    """
    lo, _ = _pair(padding)
    s = _positive(stride, "stride")
    points = {0, output_size}
    for boundary in input_boundaries[1:-1]:
        mapped = boundary * s - lo if transposed else -(-(boundary + lo) // s)
        points.add(min(max(mapped, 0), output_size))
    return tuple(sorted(points))


# -- stacks of layers ---------------------------------------------------------------------------------------


class AxisLayer(NamedTuple):
    """One layer's arithmetic along one axis: a convolution or a transposed convolution.

    Element-wise layers (activations, batch norm in inference) are ``AxisLayer(1)``; max pooling is the
    convolution of its window; upsampling by an integer factor ``f`` (nearest or linear, half-pixel) reads
    what the transposed convolution with kernel ``2f - f % 2``, stride ``f`` and padding
    ``(ceil((f - 1)/2), f - f % 2 - ceil((f - 1)/2))`` reads (the bilinear kernel of FCN).
    """

    kernel_size: int
    stride: int = 1
    padding: PaddingPair = (0, 0)
    output_padding: int = 0
    dilation: int = 1
    transposed: bool = False

    @classmethod
    def upsampling(cls, factor: int) -> AxisLayer:
        """The transposed convolution that reads what upsampling by ``factor`` reads.

        Examples
        --------
        >>> AxisLayer.upsampling(2)
        AxisLayer(kernel_size=4, stride=2, padding=(1, 1), output_padding=0, dilation=1, transposed=True)
        >>> layer_output_size(AxisLayer.upsampling(3), 5)
        15
        """
        f = _positive(factor, "factor")
        lo = f // 2
        return cls(2 * f - f % 2, f, (lo, f - f % 2 - lo), 0, 1, True)


def _keywords(layer: AxisLayer) -> dict[str, Any]:
    """The layer's keyword arguments to the ``conv_*`` and ``conv_transpose_*`` functions."""
    keywords: dict[str, Any] = {"stride": layer.stride, "padding": layer.padding, "dilation": layer.dilation}
    if layer.transposed:
        keywords["output_padding"] = layer.output_padding
    return keywords


def layer_output_size(layer: AxisLayer, input_size: int) -> int:
    """The layer's output length for ``input_size``.

    Examples
    --------
    >>> layer_output_size(AxisLayer(3, stride=2, padding=(1, 1)), 10)
    5
    """
    output_size = conv_transpose_output_size if layer.transposed else conv_output_size
    return output_size(input_size, layer.kernel_size, **_keywords(layer))


def layer_input_range(layer: AxisLayer, output_start: int, output_stop: int, input_size: int) -> BlockWindow:
    """:func:`conv_input_range` or :func:`conv_transpose_input_range` for one :class:`AxisLayer`.

    Examples
    --------
    >>> layer_input_range(AxisLayer(3, padding=(1, 1)), 0, 4, 10)
    BlockWindow(input_start=0, input_stop=5, padding=(1, 0), output_padding=0)
    """
    input_range = conv_transpose_input_range if layer.transposed else conv_input_range
    return input_range(output_start, output_stop, input_size, layer.kernel_size, **_keywords(layer))


def stack_input_ranges(
    layers: Sequence[AxisLayer], input_size: int, output_start: int, output_stop: int
) -> list[BlockWindow]:
    """The window of every layer of a stack for one block of the stack's output (first layer first).

    Walking back from the last layer, each layer's window says which of its inputs (the previous layer's
    outputs) the block needs; running the stack forward on ``[windows[0].input_start,
    windows[0].input_stop)`` of the input, each layer with its window's padding, gives exactly the block.

    Examples
    --------
    Two 3-wide convolutions with padding 1 then a stride-2 transposed convolution (kernel 4, padding 1),
    on 16 elements; outputs 8..16 need inputs 1..11:

    >>> stack = [AxisLayer(3, padding=(1, 1)), AxisLayer(3, padding=(1, 1)),
    ...          AxisLayer(4, stride=2, padding=(1, 1), transposed=True)]
    >>> [w[:2] for w in stack_input_ranges(stack, 16, 8, 16)]
    [(1, 11), (2, 10), (3, 9)]
    """
    sizes = [input_size]
    for layer in layers:
        sizes.append(layer_output_size(layer, sizes[-1]))
    windows: list[BlockWindow] = []
    start, stop = output_start, output_stop
    for layer, size in zip(reversed(layers), reversed(sizes[:-1])):
        window = layer_input_range(layer, start, stop, size)
        windows.append(window)
        if window.input_start == window.input_stop:
            raise ValueError(
                f"an output block [{output_start}, {output_stop}) reads only padding at some layer ({layer}); "
                "tiling a stack needs every block to read some input"
            )
        start, stop = window.input_start, window.input_stop
    return windows[::-1]


class StackArithmetic(NamedTuple):
    """The tiling arithmetic of a stack's first ``depth`` layers along one axis.

    ``scale`` is output elements per input element (``numerator/denominator``); ``receptive_field`` the
    most inputs one output reads; ``halo`` the most inputs an output block aligned with an input block
    (:func:`aligned_output_boundaries` through every layer) reads before and after that input block;
    ``alignment`` the input period after which the pattern repeats (tile boundaries that are multiples of
    it give output tiles of equal size).
    """

    depth: int
    scale: tuple[int, int]
    receptive_field: int
    halo: tuple[int, int]
    alignment: int


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def stack_arithmetic(layers: Sequence[AxisLayer]) -> list[StackArithmetic]:
    """Receptive field, halo, scale and alignment of every prefix of a stack, along one axis.

    Evaluated on interior blocks (away from the array's ends, where the padding is read instead of
    inputs), over one alignment period, from :func:`stack_input_ranges`.

    Examples
    --------
    The decoder of ``tconv demo volume`` along one axis: two stride-2 transposed convolutions (kernel 4,
    padding 1) with a 3-wide convolution between them. The whole stack reads 2 inputs before and 1 after each
    input tile (its output tile starts where the tile's first stamp lands) and quadruples it:

    >>> up = AxisLayer(4, stride=2, padding=(1, 1), transposed=True)
    >>> for row in stack_arithmetic([up, AxisLayer(3, padding=(1, 1)), up]):
    ...     print(row)
    StackArithmetic(depth=1, scale=(2, 1), receptive_field=2, halo=(1, 0), alignment=1)
    StackArithmetic(depth=2, scale=(2, 1), receptive_field=3, halo=(1, 1), alignment=1)
    StackArithmetic(depth=3, scale=(4, 1), receptive_field=4, halo=(2, 1), alignment=1)
    """
    rows = []
    for depth in range(1, len(layers) + 1):
        stack = list(layers[:depth])
        numerator = denominator = 1
        for layer in stack:
            if layer.transposed:
                numerator *= layer.stride
            else:
                denominator *= layer.stride
        common = _gcd(numerator, denominator)
        numerator, denominator = numerator // common, denominator // common
        period = denominator
        reach = sum(dilated_kernel_size(la.kernel_size, la.dilation) + sum(la.padding) + la.stride for la in stack)
        size = 8 * period * (reach + 4) * max(1, denominator)
        # scale the margin so that interior blocks see no padding at any depth
        size *= max(1, numerator)
        sizes = [size]
        for layer in stack:
            sizes.append(layer_output_size(layer, sizes[-1]))

        def through(boundary: int, stack: list[AxisLayer] = stack, sizes: list[int] = sizes) -> int:
            for layer, out in zip(stack, sizes[1:]):
                boundary = aligned_output_boundaries(
                    (0, boundary, sizes[0]),
                    out,
                    stride=layer.stride,
                    padding=layer.padding,
                    transposed=layer.transposed,
                )[1]
            return boundary

        middle = size // 2
        halo_before = halo_after = 0
        field = 0
        tile = 4 * period
        for phase in range(period):
            b0 = middle + phase
            b1 = b0 + tile
            o0, o1 = through(b0), through(b1)
            if o1 > o0:
                first = stack_input_ranges(stack, size, o0, o1)[0]
                halo_before = max(halo_before, b0 - first.input_start)
                halo_after = max(halo_after, first.input_stop - b1)
        out_middle = sizes[-1] // 2
        for o in range(out_middle, out_middle + max(numerator, 1) * max(period, 1)):
            first = stack_input_ranges(stack, size, o, o + 1)[0]
            field = max(field, first.input_stop - first.input_start)
        rows.append(StackArithmetic(depth, (numerator, denominator), field, (halo_before, halo_after), period))
    return rows
