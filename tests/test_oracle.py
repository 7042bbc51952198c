"""tconv against the naive oracle on random configurations (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tconv
from oracle import insert_zeros_and_pad, naive_conv, naive_conv_transpose, same_pads_tf
from planner_spy import chosen_algorithms
from strategies import configs
from tconv import _tuning
from tconv.implementations import array_api
from tconv.implementations.compiled import kernels

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_jit_missing = pytest.mark.skipif(not kernels.available(), reason="no compiled path (numba missing or TCONV_NO_JIT=1)")
JIT_GEMM = pytest.param("jit_gemm", marks=_jit_missing)
JIT_DIRECT = pytest.param("jit_direct", marks=_jit_missing)
JIT_BLOCKED = pytest.param("jit_blocked", marks=_jit_missing)
JIT_DOTS = pytest.param("jit_dots", marks=_jit_missing)
JIT_PIXELS = pytest.param("jit_pixels", marks=_jit_missing)
JIT_PATCHES = pytest.param("jit_patches", marks=_jit_missing)
JIT_IM2COL = pytest.param("jit_im2col", marks=_jit_missing)
JIT_PHASES = pytest.param("jit_phases", marks=_jit_missing)


def _forced(algorithm, case):
    """The forced algorithm, or None where it does not cover the case (the compiled path: rank <= 3)."""
    if (
        algorithm
        in (
            "jit_gemm",
            "jit_direct",
            "jit_pixels",
            "jit_patches",
            "jit_im2col",
            "jit_phases",
            "jit_blocked",
            "jit_dots",
        )
        and case.d > 3
    ):
        return None
    if algorithm in ("jit_pixels", "jit_patches", "jit_phases") and case.groups > 1:
        return None
    if algorithm == "jit_patches" and case.axes[-1].dilation != 1:
        return None
    if algorithm == "jit_im2col" or (algorithm == "jit_blocked" and case.transposed):
        # a stride-1 transposed convolution runs there as its forward twin: each side's crop within d*(k-1)
        reach = [a.dilation * (a.kernel - 1) for a in case.axes]
        if any(a.stride != 1 or a.lo > r or a.hi > r for a, r in zip(case.axes, reach)):
            return None
    return algorithm


def _call(case, x, w, b):
    """Call tconv with the case's padding form and layout; return the result as (N, C, *sp)."""
    fn = tconv.conv_transpose if case.transposed else tconv.conv
    xin = np.moveaxis(x, 1, -1) if case.channels_last else x
    if not case.batched:
        xin = xin[0]
    options = {**case.options(), "padding": case.padding_argument()}
    out = fn(xin, w, b, channels_last=case.channels_last, **options)
    if not case.batched:
        out = out[None]
    if case.channels_last:
        out = np.moveaxis(out, -1, 1)
    assert out.ndim == case.d + 2
    return out


def _matches_oracle(algorithm, case):
    """The case, in its layout and padding form, on the algorithm (where it applies) against the oracle."""
    assume(case.output_size() is not None)
    if not case.batched:
        case = case.replace(batch=1)
    x, w, b = case.arrays()
    expected = case.oracle(x, w, b)
    with tconv.use_algorithm(_forced(algorithm, case)):
        got = _call(case, x, w, b)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("algorithm", ["taps", "gemm", JIT_GEMM, JIT_DIRECT, JIT_BLOCKED, JIT_DOTS, None])
@SETTINGS
@given(configs(transposed=False))
def test_conv_matches_oracle(algorithm, case):
    _matches_oracle(algorithm, case)


@pytest.mark.parametrize(
    "algorithm",
    ["taps", "gemm", JIT_GEMM, JIT_DIRECT, JIT_PIXELS, JIT_PATCHES, JIT_IM2COL, JIT_PHASES, JIT_BLOCKED, None],
)
@SETTINGS
@given(configs(transposed=True))
def test_conv_transpose_matches_oracle(algorithm, case):
    _matches_oracle(algorithm, case)


@SETTINGS
@given(configs(transposed=True))
def test_output_size_selects_output_padding(case):
    """output_size = the oracle's size for some output_padding gives that output."""
    size = case.output_size()
    assume(size is not None)
    x, w, b = case.arrays()
    expected = case.oracle(x, w, b)
    options = case.options()
    del options["output_padding"]
    got = tconv.conv_transpose(x, w, b, output_size=size, **options)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(configs(transposed=True))
def test_conv_transpose_equals_zero_inserted_conv_with_flipped_kernel(case):
    """The equivalent direct convolution (seed 001), built by the test from the oracle:
    s-1 zeros between inputs, padding d*(k-1)-lo and d*(k-1)-hi+op, the kernel flipped,
    channels swapped per group, stride 1."""
    assume(case.output_size() is not None)
    x, w, _ = case.arrays()
    axes, g, cin_g, cout_g, d = case.axes, case.groups, case.cin_g, case.cout_g, case.d
    pads = [((a.kernel - 1) * a.dilation - a.lo, (a.kernel - 1) * a.dilation - a.hi + a.output_padding) for a in axes]
    spread = insert_zeros_and_pad(x, case.stride, pads)
    # (C_in, C_out/g, *k) -> (C_out, C_in/g, *k), flipped on every spatial axis.
    w_conv = w.reshape(g, cin_g, cout_g, *w.shape[2:]).swapaxes(1, 2).reshape(g * cout_g, cin_g, *w.shape[2:])
    w_conv = np.flip(w_conv, axis=tuple(range(2, 2 + d)))
    expected = naive_conv(spread, w_conv, dilation=case.dilation, groups=g)
    # tconv's description of the same equivalence must agree with what the test built.
    for (n, k, s, dil, lo, hi, op), pad in zip(axes, pads):
        eq = tconv.shapes.equivalent_conv(n, k, stride=s, padding=(lo, hi), output_padding=op, dilation=dil)
        assert eq.padding == pad
        assert eq.zeros_between == s - 1
    got = tconv.conv_transpose(x, w, **case.options())
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(configs(transposed=False))
def test_adjoint_identity(case):
    """<conv(x, W), y> == <x, conv_transpose(y, W)> with matching options."""
    out_size = case.output_size()
    assume(out_size is not None)
    g, cin_g, cout_g = case.groups, case.cin_g, case.cout_g
    x, w, _ = case.replace(batch=2, bias=False).arrays()
    options = case.options()
    y_conv = tconv.conv(x, w, **options)
    y = np.random.default_rng(case.seed + 1).standard_normal(y_conv.shape)
    # The transposed convolution must return x's size: output_size picks the output padding.
    back = tconv.conv_transpose(
        y,
        w.reshape(g, cout_g, cin_g, *w.shape[2:]).reshape(g * cout_g, cin_g, *w.shape[2:]),
        output_size=x.shape[2:],
        **options,
    )
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(y_conv, y), np.vdot(x, back), rtol=1e-9)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("lower", [False, True])
def test_same_padding_matches_tensorflow_rule(d, lower):
    """'same' and 'same_lower' against the oracle with the test's own TF-rule paddings."""
    rng = np.random.default_rng(d)
    mode = "same_lower" if lower else "same"
    for _ in range(15):
        n = rng.integers(1, 7, size=d).tolist()
        k = rng.integers(1, 5, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        x = rng.standard_normal((1, 2, *n))
        w = rng.standard_normal((3, 2, *k))
        pads = [same_pads_tf(*args, lower=lower) for args in zip(n, k, s, dil)]
        expected = naive_conv(x, w, stride=s, pads=pads, dilation=dil)
        assert expected.shape[2:] == tuple(-(-a // b) for a, b in zip(n, s))
        np.testing.assert_allclose(tconv.conv(x, w, stride=s, padding=mode, dilation=dil), expected, atol=1e-10)
        # Transposed 'same': output n*s, the forward 'same' padding of an n*s input cropped,
        # and the missing s - k_eff elements (if any) as output padding.
        wt = rng.standard_normal((2, 3, *k))
        tpads = [same_pads_tf(a * b, kk, b, dd, lower=lower) for a, kk, b, dd in zip(n, k, s, dil)]
        ops = [max(b - ((kk - 1) * dd + 1), 0) for kk, b, dd in zip(k, s, dil)]
        expected_t = naive_conv_transpose(x, wt, stride=s, pads=tpads, output_padding=ops, dilation=dil)
        got_t = tconv.conv_transpose(x, wt, stride=s, padding=mode, dilation=dil)
        assert got_t.shape[2:] == tuple(a * b for a, b in zip(n, s))
        np.testing.assert_allclose(got_t, expected_t, atol=1e-10)


@pytest.mark.parametrize("fn", [tconv.conv, tconv.conv_transpose])
def test_valid_is_zero_padding(fn):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((3, 3, 3, 2))
    np.testing.assert_array_equal(fn(x, w, stride=2, padding="valid"), fn(x, w, stride=2, padding=0))
    np.testing.assert_array_equal(fn(x, w, padding="VALID"), fn(x, w))


@pytest.mark.parametrize("dtype, rtol", [(np.float16, 2e-2), (np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("fn, oracle", [(tconv.conv, naive_conv), (tconv.conv_transpose, naive_conv_transpose)])
def test_dtypes(dtype, rtol, fn, oracle):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 6, 5)).astype(dtype)
    w_shape = (4, 3, 3, 3) if fn is tconv.conv_transpose else (3, 4, 3, 3)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    got = fn(x, w, b, stride=2, padding=1)
    assert got.dtype == dtype
    expected = oracle(x, w, b, stride=[2, 2], pads=[(1, 1), (1, 1)])
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=rtol, atol=rtol * scale)


def test_float16_accumulates_in_float32():
    """A long float16 sum that would lose the small terms if accumulated in float16."""
    x = np.full((1, 1024, 1), 1.0, dtype=np.float16)
    x[0, 0, 0] = 2048.0
    w = np.ones((1, 1024, 1), dtype=np.float16)
    # float32 accumulation: 2048 + 1023 = 3071 -> nearest float16 is 3072; float16
    # accumulation would stay at 2048 (2048 + 1 rounds back to 2048).
    assert float(tconv.conv(x, w)[0, 0, 0]) == 3072.0


def test_inputs_are_not_modified():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4)
    copies = [a.copy() for a in (x, w, b)]
    tconv.conv_transpose(x, w, b, stride=2, padding=1, output_padding=1, groups=2)
    tconv.conv(x, w.reshape(4, 2, 3, 3), b, groups=2)
    for before, after in zip(copies, (x, w, b)):
        np.testing.assert_array_equal(before, after)


def test_empty_batch():
    x = np.zeros((0, 2, 5, 5), np.float32)
    assert tconv.conv_transpose(x, np.ones((2, 3, 3, 3), np.float32), stride=2).shape == (0, 3, 11, 11)
    assert tconv.conv(x, np.ones((3, 2, 3, 3), np.float32)).shape == (0, 3, 3, 3)


def test_linearity():
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 1, 3, 7, 7))
    w = rng.standard_normal((3, 2, 4, 4))
    lhs = tconv.conv_transpose(2.0 * x1 - 3.0 * x2, w, stride=2, padding=1)
    rhs = 2.0 * tconv.conv_transpose(x1, w, stride=2, padding=1) - 3.0 * tconv.conv_transpose(
        x2, w, stride=2, padding=1
    )
    np.testing.assert_allclose(lhs, rhs, atol=1e-10)


@SETTINGS
@given(st.data())
def test_depth_to_space_matches_oracle(data):
    """Kernel equal to stride, no padding: the rearrangement path (forced) and the planner's choice."""
    d = data.draw(st.integers(1, 3))
    kernel = [data.draw(st.integers(1, 3)) for _ in range(d)]
    n = [data.draw(st.integers(1, 4)) for _ in range(d)]
    groups = data.draw(st.sampled_from([1, 2]))
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    x = rng.standard_normal((2, 2 * groups, *n))
    w = rng.standard_normal((2 * groups, 3, *kernel))
    b = rng.standard_normal(3 * groups)
    expected = naive_conv_transpose(x, w, b, stride=kernel, groups=groups)
    np.testing.assert_allclose(tconv.conv_transpose(x, w, b, stride=kernel, groups=groups), expected, atol=1e-10)
    with tconv.use_algorithm("depth_to_space"):
        np.testing.assert_allclose(
            tconv.conv_transpose(np.moveaxis(x, 1, -1), w, b, stride=kernel, groups=groups, channels_last=True),
            np.moveaxis(expected, 1, -1),
            atol=1e-10,
        )


@pytest.mark.parametrize("transposed", [False, True])
def test_gemm_works_in_batch_chunks_under_a_small_budget(monkeypatch, transposed):
    """A call whose temporaries exceed the budget runs in batch chunks and gives the same result."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((7, 4, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3)) if transposed else rng.standard_normal((3, 4, 3, 3))
    fn = tconv.conv_transpose if transposed else tconv.conv
    expected = (naive_conv_transpose if transposed else naive_conv)(x, w, stride=[2, 2], pads=[(1, 1), (1, 1)])
    monkeypatch.setattr(_tuning, "MEMORY_BUDGET", 1)  # every sample is its own chunk
    seen = []
    real = array_api._batch_chunks
    monkeypatch.setattr(array_api, "_batch_chunks", lambda *a: seen.append(real(*a)) or seen[-1])
    with tconv.use_algorithm("gemm"):
        np.testing.assert_allclose(fn(x, w, stride=2, padding=1), expected, atol=1e-10)
    assert len(seen[0]) > 1


def test_forcing_an_unsupported_algorithm_is_an_error():
    with pytest.raises(ValueError, match="does not support this call"), tconv.use_algorithm("depth_to_space"):
        tconv.conv_transpose(np.ones((1, 1, 3)), np.ones((1, 1, 3)), stride=2)
    with pytest.raises(ValueError, match="algorithm must be one of"), tconv.use_algorithm("fft"):
        pass


@SETTINGS
@given(configs(transposed=True))
def test_direct_path_matches_oracle(case):
    """Stride 1 as the direct convolution with the flipped kernel (forced; the planner prefers gemm)."""
    axes = [
        a._replace(stride=1, lo=min(a.lo, a.kernel_extent - 1), hi=min(a.hi, a.kernel_extent - 1), output_padding=0)
        for a in case.axes
    ]
    case = case.replace(axes=tuple(axes))
    assume(case.output_size() is not None)
    x, w, b = case.arrays()
    expected = case.oracle(x, w, b)
    with tconv.use_algorithm("direct"):
        got = tconv.conv_transpose(x, w, b, padding=case.padding, dilation=case.dilation, groups=case.groups)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(configs(transposed=True))
def test_blocked_col2im_matches_oracle(case):
    """The gemm path's blocked overlap-add, forced on every dilation-1 configuration (the planner uses it
    only for large kernel/stride ratios, which these small configurations rarely reach)."""
    from unittest import mock

    axes = [a._replace(dilation=1, output_padding=min(a.output_padding, a.stride - 1)) for a in case.axes]
    case = case.replace(axes=tuple(axes))
    assume(case.output_size() is not None)
    x, w, b = case.arrays()
    expected = case.oracle(x, w, b)
    with mock.patch.object(array_api, "_use_blocked_col2im", lambda spec: True), tconv.use_algorithm("gemm"):
        got = tconv.conv_transpose(x, w, b, **case.options())
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "shape, kernel, stride, padding", [((2, 3, 5), (16,), 8, 4), ((1, 2, 3, 2), (9, 12), (3, 4), 2)]
)
def test_large_kernel_over_stride_takes_the_blocked_path(shape, kernel, stride, padding):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((shape[1], 2, *kernel))
    d = len(kernel)
    strides = list(stride) if isinstance(stride, tuple) else [stride] * d
    spec = tconv.ConvSpec.build(
        transposed=True,
        input_size=shape[2:],
        kernel_size=kernel,
        in_channels=shape[1],
        out_channels=2,
        stride=strides,
        padding=padding,
    )
    assert array_api._use_blocked_col2im(spec)
    expected = naive_conv_transpose(x, w, stride=strides, pads=[(padding, padding)] * d)
    np.testing.assert_allclose(tconv.conv_transpose(x, w, stride=strides, padding=padding), expected, atol=1e-10)


def test_zero_output_padding_in_any_form_combines_with_same_and_output_size():
    x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
    a = tconv.conv_transpose(x, w, stride=2, padding="same", output_padding=(0, 0))
    np.testing.assert_array_equal(a, tconv.conv_transpose(x, w, stride=2, padding="same"))
    assert tconv.conv_transpose(x, w, stride=2, output_padding=[0, 0], output_size=(8, 8)).shape[-2:] == (8, 8)


@SETTINGS
@given(configs(transposed=True) | configs(transposed=False))
def test_avoided_algorithms_give_way_and_match_the_oracle(case):
    """The planner's choices for a call, avoided (:func:`tconv.avoid_algorithms`): none of them runs again, and
    the next choice computes the call, in its layout and padding form, as the oracle does."""
    assume(case.output_size() is not None)
    if not case.batched:
        case = case.replace(batch=1)
    x, w, b = case.arrays()
    expected = case.oracle(x, w, b)
    with chosen_algorithms() as chosen:
        _call(case, x, w, b)
    with chosen_algorithms() as instead, tconv.avoid_algorithms(*chosen):
        got = _call(case, x, w, b)
    assert chosen and instead and not set(chosen) & set(instead)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
