"""Gradients: finite differences, the oracle, torch.autograd, and autograd through tconv."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

import tconv
from oracle import naive_conv, naive_conv_transpose
from strategies import arrays_for, configs, expected_size

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _options(cfg, transposed):
    axes = cfg["axes"]
    options = dict(
        stride=[a[2] for a in axes],
        padding=[(a[4], a[5]) for a in axes],
        dilation=[a[3] for a in axes],
        groups=cfg["groups"],
    )
    if transposed:
        options["output_padding"] = [a[6] for a in axes]
    return options


def _oracle(transposed, x, w, b, cfg):
    axes = cfg["axes"]
    kwargs = dict(
        stride=[a[2] for a in axes],
        pads=[(a[4], a[5]) for a in axes],
        dilation=[a[3] for a in axes],
        groups=cfg["groups"],
    )
    if transposed:
        return naive_conv_transpose(x, w, b, output_padding=[a[6] for a in axes], **kwargs)
    return naive_conv(x, w, b, **kwargs)


def _check_by_finite_differences(transposed, cfg):
    """L(x, w, b) = <oracle(x, w, b), gy>; central differences along random directions."""
    x, w, b = arrays_for(cfg, transposed)
    if b is None:
        b = np.zeros(cfg["groups"] * cfg["cout_g"])
    rng = np.random.default_rng(cfg["seed"] + 1)
    gy = rng.standard_normal(_oracle(transposed, x, w, b, cfg).shape)
    fn = tconv.conv_transpose_grad if transposed else tconv.conv_grad
    gx, gw, gb = fn(gy, x, w, **_options(cfg, transposed))
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == b.shape

    def loss(x_, w_, b_):
        return float(np.vdot(_oracle(transposed, x_, w_, b_, cfg), gy))

    eps = 1e-6
    for grad, which in ((gx, 0), (gw, 1), (gb, 2)):
        v = rng.standard_normal(grad.shape)
        plus = [x, w, b]
        minus = [x, w, b]
        plus[which] = plus[which] + eps * v
        minus[which] = minus[which] - eps * v
        numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(np.vdot(grad, v), numeric, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(configs(transposed=False))
def test_conv_grad_finite_differences(cfg):
    assume(expected_size(cfg, False) is not None)
    _check_by_finite_differences(False, cfg)


@SETTINGS
@given(configs(transposed=True))
def test_conv_transpose_grad_finite_differences(cfg):
    assume(expected_size(cfg, True) is not None)
    _check_by_finite_differences(True, cfg)


@SETTINGS
@given(configs(transposed=True))
def test_grads_in_every_layout(cfg):
    """Channels-last and unbatched calls give the channels-first gradients, re-laid out."""
    assume(expected_size(cfg, True) is not None)
    x, w, _ = arrays_for(cfg, True)
    options = _options(cfg, True)
    gy = np.random.default_rng(cfg["seed"]).standard_normal(tconv.conv_transpose(x, w, **options).shape)
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
    while True:
        groups = int(rng.choice([1, 2, 3]))
        cin_g, cout_g = (int(v) for v in rng.integers(1, 4, size=2))
        n = rng.integers(1, 7 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 5 if d < 3 else 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        k_eff = [(a - 1) * b + 1 for a, b in zip(k, dil)]
        p = [int(rng.integers(0, e + 1)) for e in k_eff]
        op = [int(rng.integers(0, max(a, b))) for a, b in zip(s, dil)] if transposed else [0] * d
        if transposed:
            ok = all((a - 1) * b + e - 2 * c + o >= 1 for a, b, e, c, o in zip(n, s, k_eff, p, op))
        else:
            ok = all(a + 2 * c >= e for a, e, c in zip(n, k_eff, p))
        if ok:
            return groups, cin_g, cout_g, n, k, s, dil, p, op


@torch_params
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_grads_against_torch_autograd(d, transposed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(10 * d + transposed)
    for _ in range(15):
        groups, cin_g, cout_g, n, k, s, dil, p, op = _torch_case(rng, d, transposed)
        x = rng.standard_normal((2, groups * cin_g, *n))
        shape_w = (groups * cin_g, cout_g, *k) if transposed else (groups * cout_g, cin_g, *k)
        w = rng.standard_normal(shape_w)
        b = rng.standard_normal(groups * cout_g)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        if transposed:
            fn = getattr(F, f"conv_transpose{d}d")
            ty = fn(tx, tw, tb, stride=s, padding=p, output_padding=op, groups=groups, dilation=dil)
        else:
            ty = getattr(F, f"conv{d}d")(tx, tw, tb, stride=s, padding=p, dilation=dil, groups=groups)
        gy = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(gy))
        if transposed:
            got = tconv.conv_transpose_grad(
                gy, x, w, stride=s, padding=p, output_padding=op, groups=groups, dilation=dil
            )
        else:
            got = tconv.conv_grad(gy, x, w, stride=s, padding=p, dilation=dil, groups=groups)
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
    F = torch.nn.functional
    rng = np.random.default_rng(50 + d + transposed)
    for _ in range(5):
        groups, cin_g, cout_g, n, k, s, dil, p, op = _torch_case(rng, d, transposed)
        x = rng.standard_normal((2, groups * cin_g, *n))
        shape_w = (groups * cin_g, cout_g, *k) if transposed else (groups * cout_g, cin_g, *k)
        w = rng.standard_normal(shape_w)
        b = rng.standard_normal(groups * cout_g)
        mine = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        if transposed:
            y1 = tconv.conv_transpose(*mine, stride=s, padding=p, output_padding=op, groups=groups, dilation=dil)
            y2 = getattr(F, f"conv_transpose{d}d")(
                *theirs, stride=s, padding=p, output_padding=op, groups=groups, dilation=dil
            )
        else:
            y1 = tconv.conv(*mine, stride=s, padding=p, dilation=dil, groups=groups)
            y2 = getattr(F, f"conv{d}d")(*theirs, stride=s, padding=p, dilation=dil, groups=groups)
        (y1.tanh() ** 2).sum().backward()  # a non-linear loss, so the chain rule is exercised
        (y2.tanh() ** 2).sum().backward()
        for a, b_ in zip(mine, theirs):
            torch.testing.assert_close(a.grad, b_.grad, rtol=1e-9, atol=1e-9)


def test_jax_grad_through_tconv():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
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
