"""tconv.shapes against brute-force enumeration and the oracle's own output lengths."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tconv
from oracle import naive_conv, naive_conv_transpose
from tconv import shapes

small = st.integers(1, 9)


def _conv_len(n, k, s, d, lo, hi):
    """The test's own formula, checked against the oracle below."""
    span = n + lo + hi - ((k - 1) * d + 1)
    return span // s + 1 if span >= 0 else None


@settings(max_examples=200, deadline=None)
@given(small, st.integers(1, 5), st.integers(1, 4), st.integers(1, 3), st.integers(0, 4), st.integers(0, 4))
def test_conv_output_size_matches_oracle(n, k, s, d, lo, hi):
    expected = _conv_len(n, k, s, d, lo, hi)
    if expected is None:
        return
    assert shapes.conv_output_size(n, k, stride=s, padding=(lo, hi), dilation=d) == expected
    out = naive_conv(np.zeros((1, 1, n)), np.zeros((1, 1, k)), stride=[s], pads=[(lo, hi)], dilation=[d])
    assert out.shape[-1] == expected


@settings(max_examples=200, deadline=None)
@given(
    small,
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(0, 4),
    st.integers(0, 4),
    st.data(),
)
def test_conv_transpose_output_size_matches_oracle(n, k, s, d, lo, hi, data):
    op = data.draw(st.integers(0, max(s, d) - 1))
    full = (n - 1) * s + (k - 1) * d + 1
    if full + op - lo - hi < 1:
        return
    out = naive_conv_transpose(
        np.zeros((1, 1, n)),
        np.zeros((1, 1, k)),
        stride=[s],
        pads=[(lo, hi)],
        output_padding=[op],
        dilation=[d],
    )
    got = shapes.conv_transpose_output_size(n, k, stride=s, padding=(lo, hi), output_padding=op, dilation=d)
    assert got == out.shape[-1]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(0, 3),
    st.integers(0, 3),
)
def test_conv_input_sizes_is_every_input_with_that_output(out, k, s, d, lo, hi):
    brute = [n for n in range(1, 80) if _conv_len(n, k, s, d, lo, hi) == out]
    assert list(shapes.conv_input_sizes(out, k, stride=s, padding=(lo, hi), dilation=d)) == brute


@settings(max_examples=200, deadline=None)
@given(small, st.integers(1, 40), st.integers(1, 5), st.integers(1, 4), st.integers(1, 3))
def test_solve_conv_transpose_padding_is_every_symmetric_solution(n, out, k, s, d):
    brute = [
        (p, op) for p in range(0, 60) for op in range(max(s, d)) if (n - 1) * s + (k - 1) * d + 1 - 2 * p + op == out
    ]
    assert shapes.solve_conv_transpose_padding(n, out, k, stride=s, dilation=d) == brute


@settings(max_examples=200, deadline=None)
@given(small, st.integers(1, 5), st.integers(1, 4), st.integers(1, 3), st.integers(0, 4), st.integers(0, 4))
def test_transposed_output_range_round_trips_through_conv(n, k, s, d, lo, hi):
    """conv_transpose_output_sizes agrees with brute force, and every length it reaches with an
    output padding below the stride convolves back to n with the same options."""
    full = (n - 1) * s + (k - 1) * d + 1
    brute = [full - lo - hi + op for op in range(max(s, d)) if full - lo - hi + op >= 1]
    assert list(shapes.conv_transpose_output_sizes(n, k, stride=s, padding=(lo, hi), dilation=d)) == brute
    for m in brute:
        op = m - (full - lo - hi)
        if op < s:  # output padding >= s (allowed when d > s) adds lengths the conv maps further
            assert _conv_len(m, k, s, d, lo, hi) == n


def test_same_padding_rules():
    # TensorFlow 'SAME' for a convolution, worked by hand: n=14, k=5, s=2 -> out 7, total 3.
    assert shapes.conv_same_padding(14, 5, stride=2) == (1, 2)
    assert shapes.conv_same_padding(14, 5, stride=2, lower=True) == (2, 1)
    # n=5, k=3, s=2 -> out 3, total (3-1)*2 + 3 - 5 = 2 -> (1, 1).
    assert shapes.conv_same_padding(5, 3, stride=2) == (1, 1)
    # A large stride needs no padding: n=10, k=3, s=5 -> out 2, total max(5 + 3 - 10, 0) = 0.
    assert shapes.conv_same_padding(10, 3, stride=5) == (0, 0)
    # Dilation: k=3, d=2 spans 5 -> total 4 at stride 1.
    assert shapes.conv_same_padding(6, 3, dilation=2) == (2, 2)
    # Transposed: 1-D x=[1,2,3], w=[1,10,100], stride 2: total 1, at the end.
    assert shapes.conv_transpose_same_padding(3, 3, stride=2) == ((0, 1), 0)
    assert shapes.conv_transpose_same_padding(3, 3, stride=2, lower=True) == ((1, 0), 0)


def test_same_1d_example_tf_and_onnx_lower():
    """TensorFlow/ONNX SAME_UPPER give [1,10,102,20,203,30]; ONNX SAME_LOWER [10,102,20,203,30,300]."""
    x, w = np.array([[[1.0, 2.0, 3.0]]]), np.array([[[1.0, 10.0, 100.0]]])
    np.testing.assert_array_equal(tconv.conv_transpose(x, w, stride=2, padding="same"), [[[1, 10, 102, 20, 203, 30]]])
    np.testing.assert_array_equal(
        tconv.conv_transpose(x, w, stride=2, padding="same_lower"), [[[10, 102, 20, 203, 30, 300]]]
    )
    # PyTorch's padding=1, output_padding=1 gives the SAME_LOWER result.
    np.testing.assert_array_equal(
        tconv.conv_transpose(x, w, stride=2, padding=1, output_padding=1), [[[10, 102, 20, 203, 30, 300]]]
    )


def test_nd_shape_helpers():
    assert shapes.conv_output_shape((7, 8, 9), (3, 3, 3), stride=(1, 2, 3)) == (5, 3, 3)
    assert shapes.conv_transpose_output_shape((3, 3), (3, 3), stride=2, output_padding=(0, 1)) == (7, 8)
