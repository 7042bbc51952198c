"""conv_matrix: C built column by column from the oracle, and C^T as the transposed convolution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

import tconv
from oracle import naive_conv_transpose
from strategies import configs

pytest.importorskip("scipy")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(transposed=False))
def test_matrix_columns_are_the_oracle_on_unit_inputs(case):
    out_size = case.output_size()
    assume(out_size is not None)
    c_in, c_out = case.in_channels, case.out_channels
    spatial = tuple(case.input_size)
    assume(c_in * int(np.prod(spatial)) <= 200)
    rng = np.random.default_rng(case.seed)
    w = rng.standard_normal(case.weight_shape())
    C = tconv.conv_matrix(
        (c_in, *spatial),
        w,
        stride=case.stride,
        padding=case.padding,
        dilation=case.dilation,
        groups=case.groups,
    )
    n_in = c_in * int(np.prod(spatial))
    brute = np.stack(
        [case.oracle(np.eye(n_in)[j].reshape(1, c_in, *spatial), w).ravel() for j in range(n_in)],
        axis=1,
    )
    assert C.shape == brute.shape
    np.testing.assert_allclose(C.toarray(), brute, atol=1e-12)
    # C^T is the transposed convolution that maps the output back to x's size.
    y = rng.standard_normal(brute.shape[0])
    out_padding = [
        axis.size - ((o - 1) * axis.stride + axis.kernel_extent - axis.lo - axis.hi)
        for o, axis in zip(out_size, case.axes)
    ]
    back = naive_conv_transpose(
        y.reshape(1, c_out, *out_size), w, output_padding=out_padding, **case.oracle_arguments()
    )
    np.testing.assert_allclose(C.T @ y, back.ravel(), atol=1e-10)


def test_seed002_pattern_symbolic():
    """Seed 002's 4x16 C: row r holds w[0,:], a zero, w[1,:], a zero, w[2,:] starting at column
    r + 2*(r // 2) (the 2x2 outputs' top-left corners in the flattened 4x4 input)."""
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    C = tconv.conv_matrix((1, 4, 4), w).toarray()
    for r, start in enumerate([0, 1, 4, 5]):
        expected = np.zeros(16)
        for kr in range(3):
            expected[start + 4 * kr : start + 4 * kr + 3] = w[0, 0, kr]
        np.testing.assert_array_equal(C[r], expected)
    assert (C != 0).sum() == 36  # 4 rows of 9 taps: 36 of 64 entries


def test_matrix_with_torch_weight_and_formats():
    torch = pytest.importorskip("torch")
    w = torch.ones(2, 1, 3, requires_grad=True)
    C = tconv.conv_matrix((1, 5), w, stride=2, padding=1, format="csc")
    assert C.format == "csc" and C.shape == (6, 5)


def test_matrix_when_no_tap_reaches_the_output():
    C = tconv.conv_matrix((1, 1), np.ones((1, 1, 1)), stride=2, padding=1)
    assert C.shape == (2, 1) and C.nnz == 0


def test_matrix_rejects_a_batched_shape():
    with pytest.raises(ValueError, match=r"input_shape must be \(C_in, \*spatial\) of one sample"):
        tconv.conv_matrix((1, 1, 4, 4), np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"x has 2 channels"):
        tconv.conv_matrix((2, 4, 4), np.ones((1, 1, 3, 3)))
