"""Invalid calls raise ValueError or TypeError naming the argument, the expectation and what was received."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest

import tconv
from tconv import shapes

F32 = np.float32
X = np.zeros((2, 4, 5, 5), F32)  # N, C, H, W
W_T = np.zeros((4, 3, 3, 3), F32)  # conv_transpose: (C_in, C_out/g, kh, kw)
W_C = np.zeros((3, 4, 3, 3), F32)  # conv: (C_out, C_in/g, kh, kw)

ct = tconv.conv_transpose
cv = tconv.conv


class ErrorCase(NamedTuple):
    """An invalid call, the error type it raises and a regex its message must match."""

    name: str
    call: Callable[[], object]
    error: type[Exception]
    pattern: str


CASES = [
    ErrorCase(
        "weight rank too low",
        lambda: ct(X, np.zeros((4, 3), F32)),
        ValueError,
        r"weight must have shape .*\(4, 3\)",
    ),
    ErrorCase(
        "x rank wrong",
        lambda: ct(np.zeros((2, 4, 5, 5, 5), F32), W_T),
        ValueError,
        r"x must have shape .*\(2, 4, 5, 5, 5\)",
    ),
    ErrorCase(
        "x rank too low",
        lambda: cv(np.zeros((5,), F32), W_C),
        ValueError,
        r"x must have shape .*received x of shape \(5,\)",
    ),
    ErrorCase(
        "channel mismatch transpose",
        lambda: ct(np.zeros((2, 5, 5, 5), F32), W_T),
        ValueError,
        r"x has 5 channels .*weight\.shape\[0\] = 4",
    ),
    ErrorCase(
        "channel mismatch conv",
        lambda: cv(np.zeros((2, 5, 5, 5), F32), W_C),
        ValueError,
        r"x has 5 channels .*= 4",
    ),
    ErrorCase(
        "channel mismatch channels_last",
        lambda: ct(X, W_T, channels_last=True),
        ValueError,
        r"x has 5 channels.*channels_last=True",
    ),
    ErrorCase("groups not dividing transpose", lambda: ct(X, W_T, groups=3), ValueError, r"groups"),
    ErrorCase(
        "groups not dividing conv out",
        lambda: cv(X, np.zeros((3, 2, 3, 3), F32), groups=2),
        ValueError,
        r"groups must divide weight\.shape\[0\].*groups=2",
    ),
    ErrorCase(
        "groups zero",
        lambda: ct(X, W_T, groups=0),
        ValueError,
        r"groups must be a positive int; received groups=0",
    ),
    ErrorCase(
        "groups float",
        lambda: ct(X, W_T, groups=1.5),
        TypeError,
        r"groups must be a positive int; received 1\.5",
    ),
    ErrorCase("stride zero", lambda: ct(X, W_T, stride=0), ValueError, r"stride must be a positive int.*received 0"),
    ErrorCase(
        "stride negative per axis",
        lambda: cv(X, W_C, stride=(1, -2)),
        ValueError,
        r"stride must be .*received \(1, -2\)",
    ),
    ErrorCase(
        "stride wrong length",
        lambda: ct(X, W_T, stride=(1, 2, 3)),
        ValueError,
        r"stride must be .*one per spatial axis.*\(1, 2, 3\)",
    ),
    ErrorCase("stride string", lambda: ct(X, W_T, stride="2"), TypeError, r"stride must be .*'2'"),
    ErrorCase(
        "dilation zero",
        lambda: cv(X, W_C, dilation=0),
        ValueError,
        r"dilation must be a positive int.*received 0",
    ),
    ErrorCase("dilation bool", lambda: cv(X, W_C, dilation=True), TypeError, r"dilation must be .*True"),
    ErrorCase(
        "kernel size zero",
        lambda: ct(X, np.zeros((4, 3, 0, 3), F32)),
        ValueError,
        r"kernel_size must be positive .*\(0, 3\)",
    ),
    ErrorCase(
        "negative padding",
        lambda: ct(X, W_T, padding=-1),
        ValueError,
        r"padding must be non-negative.*padding=-1",
    ),
    ErrorCase(
        "negative padding pair",
        lambda: cv(X, W_C, padding=[(0, 1), (2, -1)]),
        ValueError,
        r"padding must be non-negative.*\(2, -1\)",
    ),
    ErrorCase(
        "bad padding string",
        lambda: ct(X, W_T, padding="full"),
        ValueError,
        r"padding must be .*'valid', 'same', 'same_lower'.*'full'",
    ),
    ErrorCase(
        "padding wrong length",
        lambda: ct(X, W_T, padding=(1, 1, 1)),
        ValueError,
        r"padding must be .*\(1, 1, 1\) of length 3",
    ),
    ErrorCase(
        "padding 1-d pair hint",
        lambda: ct(np.zeros((1, 4, 5), F32), np.zeros((4, 3, 3), F32), padding=(1, 2)),
        ValueError,
        r"write \[\(lo, hi\)\]",
    ),
    ErrorCase(
        "padding bad pair",
        lambda: cv(X, W_C, padding=[(1, 2, 3), (0, 0)]),
        ValueError,
        r"padding must be .*\(1, 2, 3\)",
    ),
    ErrorCase("padding float", lambda: cv(X, W_C, padding=1.0), TypeError, r"padding must be .*1\.0"),
    ErrorCase(
        "output_padding too large",
        lambda: ct(X, W_T, stride=2, output_padding=2),
        ValueError,
        r"output_padding must be smaller than stride or dilation on every axis; received output_padding=\(2, 2\) with stride=\(2, 2\), dilation=\(1, 1\)",
    ),
    ErrorCase(
        "output_padding with stride 1",
        lambda: ct(X, W_T, output_padding=(0, 1)),
        ValueError,
        r"output_padding=\(0, 1\) with stride=\(1, 1\)",
    ),
    ErrorCase(
        "output_padding negative",
        lambda: ct(X, W_T, stride=2, output_padding=-1),
        ValueError,
        r"output_padding must be a non-negative int.*-1",
    ),
    ErrorCase(
        "output_padding for conv",
        lambda: tconv.ConvSpec.build(
            transposed=False,
            input_size=(5,),
            kernel_size=(3,),
            in_channels=1,
            out_channels=1,
            output_padding=1,
        ),
        ValueError,
        r"output_padding only applies to a transposed convolution",
    ),
    ErrorCase(
        "output_size unreachable",
        lambda: ct(X, W_T, stride=2, output_size=(13, 9)),
        ValueError,
        r"output_size=\(13, 9\) cannot be reached .*\[11, 12\], \[11, 12\]",
    ),
    ErrorCase(
        "output_size wrong length",
        lambda: ct(X, W_T, output_size=(7, 7, 7)),
        ValueError,
        r"output_size must be .*\(7, 7, 7\)",
    ),
    ErrorCase(
        "output_size and output_padding",
        lambda: ct(X, W_T, stride=2, output_padding=1, output_size=(12, 12)),
        ValueError,
        r"give output_padding or output_size, not both",
    ),
    ErrorCase(
        "same with output_padding",
        lambda: ct(X, W_T, stride=2, padding="same", output_padding=1),
        ValueError,
        r"padding='same' fixes .*output_padding=1",
    ),
    ErrorCase(
        "same with output_size",
        lambda: ct(X, W_T, stride=2, padding="same", output_size=(10, 10)),
        ValueError,
        r"padding='same' fixes .*output_size=\(10, 10\)",
    ),
    ErrorCase(
        "conv output empty",
        lambda: cv(np.zeros((1, 4, 2, 2), F32), W_C),
        ValueError,
        r"on spatial axis 0: the padded input is shorter than the dilated kernel.*input_size=2",
    ),
    ErrorCase(
        "conv_transpose cropped empty",
        lambda: ct(np.zeros((1, 4, 1, 1), F32), W_T, padding=2),
        ValueError,
        r"on spatial axis 0: the padding crops the whole output.*full output 3, cropped by 4",
    ),
    ErrorCase(
        "bias wrong shape",
        lambda: ct(X, W_T, np.zeros(4, F32)),
        ValueError,
        r"bias must have shape \(C_out,\) = \(3,\); received bias of shape \(4,\)",
    ),
    ErrorCase("bias 2-d", lambda: cv(X, W_C, np.zeros((3, 1), F32)), ValueError, r"bias must have shape .*\(3, 1\)"),
    ErrorCase(
        "integer input",
        lambda: ct(np.zeros((2, 4, 5, 5), np.int32), W_T),
        TypeError,
        r"x must have a real floating dtype .*int32.*Cast",
    ),
    ErrorCase(
        "boolean weight",
        lambda: cv(X, np.zeros((3, 4, 3, 3), bool)),
        TypeError,
        r"weight must have a real floating dtype .*bool",
    ),
    ErrorCase(
        "complex input",
        lambda: cv(np.zeros((2, 4, 5, 5), np.complex64), W_C),
        TypeError,
        r"x must have a real floating dtype .*complex64",
    ),
    ErrorCase(
        "mixed dtypes",
        lambda: ct(X, W_T.astype(np.float64)),
        TypeError,
        r"weight must have the dtype of x; received weight of dtype float64 with x of dtype float32",
    ),
    ErrorCase("bias dtype", lambda: ct(X, W_T, np.zeros(3, np.float64)), TypeError, r"bias must have the dtype of x"),
    ErrorCase("string as array", lambda: ct("x", W_T), TypeError, r"x must be an array"),
    ErrorCase(
        "channels_last not bool",
        lambda: ct(X, W_T, channels_last="yes"),
        TypeError,
        r"channels_last must be True or False; received 'yes'",
    ),
    ErrorCase(
        "shapes: negative padding",
        lambda: shapes.conv_output_size(5, 3, padding=-1),
        ValueError,
        r"padding must be non-negative; received -1",
    ),
    ErrorCase(
        "shapes: zero stride",
        lambda: shapes.conv_transpose_output_size(5, 3, stride=0),
        ValueError,
        r"stride must be a positive int; received 0",
    ),
    ErrorCase(
        "shapes: bad pair",
        lambda: shapes.conv_output_size(5, 3, padding=(1, 2, 3)),
        TypeError,
        r"padding must be an int or a \(lo, hi\) pair",
    ),
]


@pytest.mark.parametrize("call, error, pattern", [c[1:] for c in CASES], ids=[c.name for c in CASES])
def test_invalid_call_raises_clear_error(call, error, pattern):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    assert re.search(pattern, str(info.value)), str(info.value)


def test_at_least_25_cases():
    assert len(CASES) >= 25


def test_mismatched_array_libraries():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"same array library.*numpy.*torch"):
        tconv.conv_transpose(X, torch.zeros(4, 3, 3, 3))


def test_a_remembered_parse_never_lets_a_refused_value_through():
    """ConvSpec.build remembers successful parses of plain values; True is not 1 and 2.0 is not 2 to it."""
    x = np.ones((1, 2, 5, 5))
    w = np.ones((2, 3, 3, 3))
    for _ in range(2):  # the second call finds the first one's parse
        assert tconv.conv_transpose(x, w, stride=1, groups=1).shape == (1, 3, 7, 7)
        assert tconv.conv_transpose(x, w, stride=[2, 2], padding=[(1, 0), (0, 1)]).shape == (1, 3, 10, 10)
    for bad, error in (
        ({"stride": True}, TypeError),
        ({"groups": True}, TypeError),
        ({"stride": 2.0}, TypeError),
        ({"stride": (2, True)}, TypeError),
        ({"padding": [(1, 0), (0, -1)]}, ValueError),
    ):
        for _ in range(2):
            with pytest.raises(error):
                tconv.conv_transpose(x, w, **bad)
    # A list and a tuple, or a NumPy integer and an int, parse alike (the NumPy one is simply not remembered).
    assert tconv.conv_transpose(x, w, stride=(2, 2)).shape == tconv.conv_transpose(x, w, stride=np.int64(2)).shape


def test_a_remembered_call_is_refused_again_when_its_arrays_do_not_match():
    """parse_call remembers a NumPy call by its arrays' shapes and plain options: a call that differs from a
    remembered one only in a shape (the channels, the bias, a gradient's shape, the rank) is checked afresh
    and refused, however often the good one ran before; the good one's description is the one parsed afresh."""
    from tconv.ops import _parse, parse_call

    x, w = np.ones((2, 4, 5, 5), np.float32), np.ones((4, 3, 3, 3), np.float32)
    options = dict(stride=2, padding=1, dilation=1, groups=1, channels_last=False)
    for _ in range(2):
        call = parse_call(True, x, w, np.ones(3, np.float32), **options)
        assert call.spec == _parse(True, call.prepared, 2, 1, 1, 1, False, 0, None)[0]
        assert call.output_shape() == (2, 3, 9, 9)
    for bad in (
        lambda: tconv.conv_transpose(np.ones((2, 5, 5, 5), np.float32), w, stride=2, padding=1),  # channels
        lambda: tconv.conv_transpose(x, w, np.ones(4, np.float32), stride=2, padding=1),  # bias
        lambda: tconv.conv_transpose(np.ones((2, 4, 5), np.float32), w, stride=2, padding=1),  # rank
        lambda: tconv.conv_transpose(x, w, stride=2, padding=1, channels_last=True),  # layout
        lambda: tconv.conv_transpose_grad(np.ones((2, 3, 8, 8), np.float32), x, w, stride=2, padding=1),
    ):
        for _ in range(2):
            with pytest.raises(ValueError):
                bad()
    with pytest.raises(TypeError, match="channels_last"):
        tconv.conv_transpose(x, w, stride=2, padding=1, channels_last=1)


def test_a_routed_call_goes_the_checked_way_whenever_anything_else_differs():
    """A NumPy call that passed every check once is remembered with its description (ops._PARSED) and goes
    straight to the engine the next time: the same result as the oracle's, batched and not, a forward call and a
    transposed one. A call that differs in anything the route does not hold (a bias of another dtype, a float16 x,
    a NumPy scalar option, a list for the weight, an empty batch) is checked afresh: refused, or computed as the
    oracle does; a forced or avoided algorithm still applies to a routed call."""
    from oracle import naive_conv, naive_conv_transpose
    from tconv import ops

    rng = np.random.default_rng(31)
    x, w = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(3)
    expected = naive_conv_transpose(x, w, b, stride=[2, 2], pads=[(1, 1)] * 2)
    ops._PARSED.clear()
    for _ in range(3):
        np.testing.assert_allclose(tconv.conv_transpose(x, w, b, stride=2, padding=1), expected, atol=1e-10)
        np.testing.assert_allclose(tconv.conv_transpose(x[1], w, b, stride=2, padding=1), expected[1], atol=1e-10)
        np.testing.assert_allclose(
            tconv.conv(x, w.swapaxes(0, 1), b, stride=2, padding=1),
            naive_conv(x, w.swapaxes(0, 1), b, stride=[2, 2], pads=[(1, 1)] * 2),
            atol=1e-10,
        )
    assert len(ops._PARSED) == 3
    with pytest.raises(TypeError, match="dtype"):
        tconv.conv_transpose(x, w, b.astype(np.float32), stride=2, padding=1)
    half = tconv.conv_transpose(x.astype(np.float16), w.astype(np.float16), stride=2, padding=1)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, naive_conv_transpose(x, w, stride=[2, 2], pads=[(1, 1)] * 2), atol=0.1)
    np.testing.assert_allclose(tconv.conv_transpose(x, w, b, stride=np.int64(2), padding=1), expected, atol=1e-10)
    np.testing.assert_allclose(tconv.conv_transpose(x, w.tolist(), b, stride=2, padding=1), expected, atol=1e-10)
    empty = tconv.conv_transpose(x[:0], w, b, stride=2, padding=1)
    assert empty.shape == (0, 3, 9, 9)
    with tconv.use_algorithm("taps"):  # the oracle's own arithmetic, forced on a routed call
        np.testing.assert_allclose(tconv.conv_transpose(x, w, b, stride=2, padding=1), expected, atol=1e-10)
    with pytest.raises(ValueError, match="avoid_algorithms leaves no algorithm"):
        with tconv.avoid_algorithms(*tconv.algorithms()):
            tconv.conv_transpose(x, w, b, stride=2, padding=1)


def test_a_remembered_spec_is_the_spec_parsed_afresh():
    from tconv.spec import ConvSpec

    arguments = dict(
        transposed=True,
        input_size=(7, 9),
        kernel_size=(5, 3),
        in_channels=4,
        out_channels=6,
        stride=(2, 3),
        padding="same",
        dilation=1,
        groups=2,
    )
    first = ConvSpec.build(**arguments)
    again = ConvSpec.build(**arguments)
    fresh = ConvSpec.build.__wrapped__(ConvSpec, **arguments)  # the parser itself, nothing remembered
    assert fresh is not first and again == first == fresh and again.output_size == (14, 27)
    assert ConvSpec.build(**{**arguments, "padding": "valid"}).output_size == ((7 - 1) * 2 + 5, (9 - 1) * 3 + 3)
