"""Gradients: finite differences, the oracle, torch.autograd, and autograd through tconv."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tconv
from strategies import configs, random_case

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_by_finite_differences(case, input_grad=True):
    """L(x, w, b) = <oracle(x, w, b), gy>; central differences along random directions. ``input_grad=False``:
    the input's gradient is None and the others still match."""
    x, w, b = case.arrays()
    if b is None:
        b = np.zeros(case.out_channels)
    rng = np.random.default_rng(case.seed + 1)
    gy = rng.standard_normal(case.oracle(x, w, b).shape)
    fn = tconv.conv_transpose_grad if case.transposed else tconv.conv_grad
    gx, gw, gb = fn(gy, x, w, **case.options(), input_grad=input_grad)
    assert (gx.shape == x.shape if input_grad else gx is None) and gw.shape == w.shape and gb.shape == b.shape

    def loss(x_, w_, b_):
        return float(np.vdot(case.oracle(x_, w_, b_), gy))

    eps = 1e-6
    for grad, which in ((gx, 0), (gw, 1), (gb, 2)) if input_grad else ((gw, 1), (gb, 2)):
        v = rng.standard_normal(grad.shape)
        plus = [x, w, b]
        minus = [x, w, b]
        plus[which] = plus[which] + eps * v
        minus[which] = minus[which] - eps * v
        numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(np.vdot(grad, v), numeric, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(configs(transposed=False))
def test_conv_grad_finite_differences(case):
    assume(case.output_size() is not None)
    _check_by_finite_differences(case)


@SETTINGS
@given(configs(transposed=True))
def test_conv_transpose_grad_finite_differences(case):
    assume(case.output_size() is not None)
    _check_by_finite_differences(case)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # patched per example
)
@given(case=st.one_of(configs(transposed=False), configs(transposed=True)))
def test_weight_and_bias_grads_without_the_input_grad(case, monkeypatch):
    """``input_grad=False``: grad_x is None, the weight's and bias's gradients match finite differences, and the
    input gradient's computation never runs (neither the other direction's call nor the fused pair)."""
    assume(case.output_size() is not None)
    from tconv import engine, grad

    def never(*args, **kwargs):
        raise AssertionError("the input gradient was computed")

    with monkeypatch.context() as patched:
        for module, name in ((grad, "conv"), (grad, "conv_transpose"), (engine, "run_transpose_grads")):
            patched.setattr(module, name, never)
        _check_by_finite_differences(case, input_grad=False)


@pytest.mark.parametrize("value", [0, 1, None, "no"])
def test_input_grad_must_be_a_bool(value):
    x, w, gy = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 2, 2))
    with pytest.raises(TypeError, match="input_grad must be True or False"):
        tconv.conv_grad(gy, x, w, input_grad=value)
    with pytest.raises(TypeError, match="input_grad must be True or False"):
        tconv.conv_transpose_grad(np.zeros((1, 1, 6, 6)), x, w, input_grad=value)


@SETTINGS
@given(configs(transposed=True))
def test_grads_in_every_layout(case):
    """Channels-last and unbatched calls give the channels-first gradients, re-laid out."""
    assume(case.output_size() is not None)
    x, w, _ = case.arrays()
    options = case.options()
    gy = np.random.default_rng(case.seed).standard_normal(tconv.conv_transpose(x, w, **options).shape)
    gx, gw, gb = tconv.conv_transpose_grad(gy, x, w, **options)
    gx_l, gw_l, gb_l = tconv.conv_transpose_grad(
        np.moveaxis(gy, 1, -1), np.moveaxis(x, 1, -1), w, channels_last=True, **options
    )
    np.testing.assert_allclose(np.moveaxis(gx_l, -1, 1), gx, atol=1e-10)
    np.testing.assert_allclose(gw_l, gw, atol=1e-10)
    np.testing.assert_allclose(gb_l, gb, atol=1e-10)
    gx_u, gw_u, _ = tconv.conv_transpose_grad(gy[0], x[0], w, **options)
    gx_1, gw_1, _ = tconv.conv_transpose_grad(gy[:1], x[:1], w, **options)
    np.testing.assert_allclose(gx_u, gx_1[0], atol=1e-10)
    np.testing.assert_allclose(gw_u, gw_1, atol=1e-10)


def test_conv_grad_restores_inputs_dropped_by_the_stride():
    """8 -> 3 with k3 s2 drops the last input: its gradient is 0, and grad_x is 8 long."""
    x = np.ones((1, 1, 8))
    gx, _, _ = tconv.conv_grad(np.ones((1, 1, 3)), x, np.ones((1, 1, 3)), stride=2)
    np.testing.assert_array_equal(gx, [[[1, 1, 2, 1, 2, 1, 1, 0]]])


def test_conv_transpose_grad_with_output_padding_beyond_stride():
    """dilation 3 > stride 1 admits output_padding 2; grad_x is cropped back to x's size."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 4)), rng.standard_normal((2, 1, 2))
    y = tconv.conv_transpose(x, w, dilation=3, output_padding=2)
    gy = rng.standard_normal(y.shape)
    gx, _, _ = tconv.conv_transpose_grad(gy, x, w, dilation=3, output_padding=2)
    assert gx.shape == x.shape
    np.testing.assert_allclose(np.vdot(gx, x), np.vdot(gy, y), atol=1e-10)  # y is linear in x


def test_same_padding_and_output_size_in_grads():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 7))
    w = rng.standard_normal((3, 4, 5, 5))
    y = tconv.conv_transpose(x, w, stride=2, padding="same")
    gx, gw, _ = tconv.conv_transpose_grad(np.ones_like(y), x, w, stride=2, padding="same")
    gx2, gw2, _ = tconv.conv_transpose_grad(np.ones_like(y), x, w, stride=2, padding=[(1, 2), (1, 2)])
    np.testing.assert_allclose(gx, gx2)
    np.testing.assert_allclose(gw, gw2)
    y8 = tconv.conv_transpose(x, w, stride=2, padding=2, output_size=(14, 14))
    gx3, _, _ = tconv.conv_transpose_grad(np.ones_like(y8), x, w, stride=2, padding=2, output_size=(14, 14))
    assert gx3.shape == x.shape


def test_grad_output_of_the_wrong_shape_is_rejected():
    x = np.zeros((1, 2, 5, 5))
    w = np.zeros((2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"grad_output must have the shape of the forward output, \(1, 3, 11, 11\)"):
        tconv.conv_transpose_grad(np.zeros((1, 3, 10, 10)), x, w, stride=2)
    with pytest.raises(TypeError, match=r"grad_output must have the dtype of x"):
        tconv.conv_transpose_grad(np.zeros((1, 3, 11, 11), np.float32), x, w, stride=2)


def test_float16_grads_keep_dtype():
    x = np.ones((1, 2, 4, 4), np.float16)
    w = np.ones((2, 3, 3, 3), np.float16)
    gy = np.ones((1, 3, 9, 9), np.float16)
    for g in tconv.conv_transpose_grad(gy, x, w, stride=2):
        assert g.dtype == np.float16
    _, gw, _ = tconv.conv_transpose_grad(gy, x, w, stride=2)
    np.testing.assert_array_equal(gw, np.full((2, 3, 3, 3), 16.0))  # every tap meets all 16 inputs


# --- against torch.autograd -------------------------------------------------------------------

torch_params = pytest.mark.parametrize("d", [1, 2, 3])


def _torch_case(rng, d, transposed):
    """A case PyTorch accepts (symmetric padding), smaller on three axes."""
    return random_case(
        rng,
        d,
        transposed,
        groups=[1, 2, 3],
        sizes=(1, 7 if d < 3 else 4),
        kernels=(1, 5 if d < 3 else 4),
        strides=(1, 4),
        dilations=(1, 3),
    )


def _torch_function(torch, d, transposed):
    """torch.nn.functional's convolution or transposed convolution on ``d`` axes."""
    return getattr(torch.nn.functional, f"conv_transpose{d}d" if transposed else f"conv{d}d")


def _torch_options(case):
    """The case's options as torch.nn.functional takes them: symmetric padding as one int per axis."""
    options = case.options()
    options["padding"] = [lo for lo, _ in case.padding]
    return options


@torch_params
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_grads_against_torch_autograd(d, transposed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10 * d + transposed)
    for _ in range(15):
        case = _torch_case(rng, d, transposed)
        x = rng.standard_normal((2, case.in_channels, *case.input_size))
        w = rng.standard_normal(case.weight_shape())
        b = rng.standard_normal(case.out_channels)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        options = _torch_options(case)
        ty = _torch_function(torch, d, transposed)(tx, tw, tb, **options)
        gy = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(gy))
        got = (tconv.conv_transpose_grad if transposed else tconv.conv_grad)(gy, x, w, **options)
        for mine, theirs in zip(got, (tx.grad, tw.grad, tb.grad)):
            np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_grads_on_torch_tensors_return_torch_tensors(transposed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.standard_normal((2, 4, 5, 5)), dtype=torch.float32)
    w = torch.tensor(rng.standard_normal((4, 2, 3, 3)), dtype=torch.float32)
    fn = tconv.conv_transpose if transposed else tconv.conv
    grad_fn = tconv.conv_transpose_grad if transposed else tconv.conv_grad
    options = dict(stride=2, padding=1, groups=2 if not transposed else 1)
    if not transposed:
        w = torch.tensor(rng.standard_normal((4, 2, 3, 3)), dtype=torch.float32)
    gy = torch.ones_like(fn(x, w, **options))
    for g in grad_fn(gy, x, w, **options):
        assert isinstance(g, torch.Tensor) and g.dtype == torch.float32


@torch_params
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_autograd_through_tconv_on_torch_tensors(d, transposed):
    """loss.backward() through tconv.conv / conv_transpose equals PyTorch's own operators."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(50 + d + transposed)
    for _ in range(5):
        case = _torch_case(rng, d, transposed)
        x = rng.standard_normal((2, case.in_channels, *case.input_size))
        w = rng.standard_normal(case.weight_shape())
        b = rng.standard_normal(case.out_channels)
        mine = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        options = _torch_options(case)
        y1 = (tconv.conv_transpose if transposed else tconv.conv)(*mine, **options)
        y2 = _torch_function(torch, d, transposed)(*theirs, **options)
        (y1.tanh() ** 2).sum().backward()  # a non-linear loss, so the chain rule is exercised
        (y2.tanh() ** 2).sum().backward()
        for a, b_ in zip(mine, theirs):
            torch.testing.assert_close(a.grad, b_.grad, rtol=1e-9, atol=1e-9)


def test_jax_grad_through_tconv(jax_x64):
    jax = jax_x64
    jnp = jax.numpy
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))

    def loss(x_, w_):
        return jnp.sum(jnp.tanh(tconv.conv_transpose(x_, w_, stride=2, padding=1)) ** 2)

    gx, gw = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(w))
    assert array_api_compat.is_jax_array(gx)
    y = tconv.conv_transpose(x, w, stride=2, padding=1)
    gy = 2 * np.tanh(y) * (1 - np.tanh(y) ** 2)
    ex, ew, _ = tconv.conv_transpose_grad(gy, x, w, stride=2, padding=1)
    np.testing.assert_allclose(np.asarray(gx), ex, atol=1e-10)
    np.testing.assert_allclose(np.asarray(gw), ew, atol=1e-10)


def test_output_wholly_in_padding_gives_zero_grads_not_none():
    """Kernel 1, padding 1, stride 2 on a 1-long input: no tap reaches the output."""
    torch = pytest.importorskip("torch")
    x = torch.tensor([[[float("inf")]]], requires_grad=True)
    w = torch.ones(1, 1, 1, requires_grad=True)
    b = torch.ones(1, requires_grad=True)
    y = tconv.conv(x, w, b, stride=2, padding=1)
    torch.testing.assert_close(y, torch.nn.functional.conv1d(x, w, b, stride=2, padding=1))
    assert not torch.isnan(y).any()
    y.sum().backward()
    assert x.grad is not None and w.grad is not None
    assert float(x.grad.abs().sum()) == 0.0 and float(w.grad.abs().sum()) == 0.0
    assert float(b.grad[0]) == 2.0


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("c_out", [1, 3, 16])
def test_bias_grad_against_float64_sums(monkeypatch, channels_last, c_out):
    """The bias's gradient of float32 calls (summed by the compiled element-wise pass where numba is installed)
    against the float64 sum of the output gradient over every other axis."""
    from tconv.implementations.compiled import elementwise, kernels

    summed: list[tuple[int, ...]] = []
    real = elementwise.channel_sums
    monkeypatch.setattr(elementwise, "channel_sums", lambda a, axis, **k: summed.append(a.shape) or real(a, axis, **k))
    rng = np.random.default_rng(c_out)
    x = rng.standard_normal((3, 4, 9, 10)).astype(np.float32)
    w = rng.standard_normal((c_out, 4, 3, 3)).astype(np.float32)
    gy = (rng.standard_normal((3, c_out, 7, 8)) + 5).astype(np.float32)
    if channels_last:
        x, gy = np.moveaxis(x, 1, -1), np.ascontiguousarray(np.moveaxis(gy, 1, -1))
    _, _, gb = tconv.conv_grad(gy, x, w, channels_last=channels_last)
    expected = gy.astype(np.float64).sum(axis=(0, 1, 2) if channels_last else (0, 2, 3))
    assert gb.dtype == np.float32
    np.testing.assert_allclose(gb, expected, rtol=1e-6)
    if kernels.available():
        assert summed == [gy.shape]


@pytest.mark.parametrize("apart", [False, True])
def test_transposed_input_grad_apart_or_with_the_weight_grad(monkeypatch, apart):
    """A stride-1 transposed convolution's input gradient runs apart from the weight's (as the convolution of the
    output gradient, :func:`tconv.engine.run._input_grad_apart`) or in the pass they share: either way the three
    gradients match sums written out here (the output gradient zero-padded, each tap's window multiplied), and the
    shared pass runs only where the input gradient is not apart. Where the planner takes ``jit_blocked`` across the
    samples for that convolution, channels-last (the seed generator's first layer, batch 64), it is apart; not
    channels-first, nor for a batch of one, nor under a forced algorithm."""
    import importlib

    from tconv import engine
    from tconv.implementations.compiled import kernels

    run = importlib.import_module("tconv.engine.run")  # the module (tconv.engine.run is also its function)
    from tconv import _tuning

    # the weight gradient in register blocks, which puts the input gradient apart too (in either layout), kept out
    # here (its rule: tests/test_weight_blocks.py)
    monkeypatch.setattr(_tuning, "WEIGHT_BLOCKS_MARGIN", 0.0)
    monkeypatch.setattr(run, "_input_grad_apart", lambda *args: apart)
    shared = []
    real = engine.run_transpose_grads
    monkeypatch.setattr(engine, "run_transpose_grads", lambda *a, **k: shared.append(r := real(*a, **k)) or r)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 20, 7, 7))
    w = rng.standard_normal((20, 40, 5, 5))
    gy = rng.standard_normal((9, 40, 7, 7))
    gx, gw, gb = tconv.conv_transpose_grad(
        np.ascontiguousarray(np.moveaxis(gy, 1, -1)), np.ascontiguousarray(np.moveaxis(x, 1, -1)), w, padding=2,
        channels_last=True,
    )  # fmt: skip
    padded = np.pad(gy, ((0, 0), (0, 0), (2, 2), (2, 2)))  # output o = i + k - 2: gy at o is padded at i + k
    expected_x = np.zeros_like(x)
    expected_w = np.zeros_like(w)
    for kh in range(5):
        for kw in range(5):
            window = padded[:, :, kh : kh + 7, kw : kw + 7]
            expected_x += np.einsum("nohw,io->nihw", window, w[:, :, kh, kw])
            expected_w[:, :, kh, kw] = np.einsum("nihw,nohw->io", x, window)
    np.testing.assert_allclose(np.moveaxis(gx, -1, 1), expected_x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gw, expected_w, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-9)
    if kernels.available():  # the compiled paths share the pass (the array-API ones never do)
        assert (shared == [None]) if apart else (len(shared) == 1 and shared[0] is not None)
    monkeypatch.undo()
    if not kernels.available():
        return
    spec = tconv.ConvSpec.build(transposed=True, input_size=(7, 7), kernel_size=(5, 5), in_channels=256,
                                out_channels=128, padding=2)  # fmt: skip
    from tconv.implementations.compiled import team

    monkeypatch.setattr(team, "_threads", 2)  # the planner's team, as on the two-core machine measured
    run._input_grad_apart.cache_clear()
    assert run._input_grad_apart(spec, np, 64, True, 4, frozenset(), 2, True)
    assert not run._input_grad_apart(spec, np, 64, False, 4, frozenset(), 2, True)  # channels-first: shared
    assert not run._input_grad_apart(spec, np, 1, True, 4, frozenset(), 2, True)  # a batch of one: no blocks across
    # under a forced algorithm the shared pass runs even where the input gradient would be apart
    monkeypatch.setattr(run, "_input_grad_apart", lambda *args: True)
    monkeypatch.setattr(engine, "run_transpose_grads", lambda *a, **k: shared.append(r := real(*a, **k)) or r)
    shared.clear()
    with tconv.use_algorithm("jit_pixels"):
        forced = tconv.conv_transpose_grad(
            np.ascontiguousarray(np.moveaxis(gy, 1, -1)), np.ascontiguousarray(np.moveaxis(x, 1, -1)), w,
            padding=2, channels_last=True,
        )  # fmt: skip
    assert len(shared) == 1 and shared[0] is not None
    np.testing.assert_allclose(forced[1], expected_w, rtol=1e-9, atol=1e-9)
