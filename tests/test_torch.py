"""tconv against torch.nn.functional on random configurations (skipped without PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest

import tconv

torch = pytest.importorskip("torch")
F = torch.nn.functional

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _random_config(rng, d, transposed):
    while True:
        groups = int(rng.choice([1, 1, 2, 4]))
        cin_g, cout_g = (int(v) for v in rng.integers(1, 4, size=2))
        n = rng.integers(1, 7 if d < 3 else 5, size=d).tolist()
        k = rng.integers(1, 5 if d < 3 else 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        k_eff = [(a - 1) * b + 1 for a, b in zip(k, dil)]
        p = [int(rng.integers(0, e + 1)) for e in k_eff]
        op = [int(rng.integers(0, max(a, b))) for a, b in zip(s, dil)] if transposed else [0] * d
        if transposed:
            out = [(a - 1) * b + e - 2 * c + o for a, b, e, c, o in zip(n, s, k_eff, p, op)]
        else:
            out = [(a + 2 * c - e) // b + 1 if a + 2 * c >= e else 0 for a, b, e, c in zip(n, s, k_eff, p)]
        if min(out) >= 1:
            return groups, cin_g, cout_g, n, k, s, dil, p, op


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_against_torch_functional(d, transposed):
    rng = np.random.default_rng(100 * d + transposed)
    for _ in range(25):
        groups, cin_g, cout_g, n, k, s, dil, p, op = _random_config(rng, d, transposed)
        x = rng.standard_normal((2, groups * cin_g, *n))
        if transposed:
            w = rng.standard_normal((groups * cin_g, cout_g, *k))
        else:
            w = rng.standard_normal((groups * cout_g, cin_g, *k))
        b = rng.standard_normal(groups * cout_g)
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        if transposed:
            expected = CONV_T[d](tx, tw, tb, stride=s, padding=p, output_padding=op, groups=groups, dilation=dil)
            got = tconv.conv_transpose(x, w, b, stride=s, padding=p, output_padding=op, groups=groups, dilation=dil)
        else:
            expected = CONV[d](tx, tw, tb, stride=s, padding=p, dilation=dil, groups=groups)
            got = tconv.conv(x, w, b, stride=s, padding=p, dilation=dil, groups=groups)
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("d", [1, 2])
def test_asymmetric_padding_against_torch_pad_and_crop(d):
    """Asymmetric pairs: torch needs F.pad before a convolution, a crop after a transposed one."""
    rng = np.random.default_rng(7 + d)
    for _ in range(10):
        n = rng.integers(3, 8, size=d).tolist()
        k = rng.integers(1, 5, size=d).tolist()
        s = rng.integers(1, 3, size=d).tolist()
        pairs = [tuple(int(v) for v in rng.integers(0, kk + 1, size=2)) for kk in k]
        x = rng.standard_normal((1, 3, *n))
        w_conv = rng.standard_normal((2, 3, *k))
        torch_pad = [v for pair in reversed(pairs) for v in pair]  # F.pad wants the last axis first
        expected = CONV[d](F.pad(torch.from_numpy(x), torch_pad), torch.from_numpy(w_conv), stride=s)
        np.testing.assert_allclose(tconv.conv(x, w_conv, stride=s, padding=pairs), expected.numpy(), atol=1e-10)

        w_t = rng.standard_normal((3, 2, *k))
        full = CONV_T[d](torch.from_numpy(x), torch.from_numpy(w_t), stride=s).numpy()
        crop = tuple(slice(lo, full.shape[2 + a] - hi) for a, (lo, hi) in enumerate(pairs))
        expected_t = full[(slice(None), slice(None), *crop)]
        if min(expected_t.shape) == 0:
            continue
        np.testing.assert_allclose(tconv.conv_transpose(x, w_t, stride=s, padding=pairs), expected_t, atol=1e-10)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_torch_same_padding_for_conv():
    rng = np.random.default_rng(11)
    for k, dil in [(3, 1), (4, 1), (5, 2), (2, 3)]:
        x = rng.standard_normal((2, 3, 9, 10))
        w = rng.standard_normal((4, 3, k, k))
        expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same", dilation=dil)
        np.testing.assert_allclose(tconv.conv(x, w, padding="same", dilation=dil), expected.numpy(), atol=1e-10)


def test_output_size_as_torch_module_forward():
    rng = np.random.default_rng(12)
    layer = torch.nn.ConvTranspose2d(3, 2, kernel_size=3, stride=2, padding=1).double()
    x = rng.standard_normal((1, 3, 5, 6))
    expected = layer(torch.from_numpy(x), output_size=[10, 12]).detach().numpy()
    got = tconv.conv_transpose(
        x,
        layer.weight.detach().numpy(),
        layer.bias.detach().numpy(),
        stride=2,
        padding=1,
        output_size=(10, 12),
    )
    np.testing.assert_allclose(got, expected, atol=1e-10)


@pytest.mark.parametrize("transposed", [False, True])
def test_float32_tolerance_against_torch(transposed):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 16, 9, 9)).astype(np.float32)
    w = rng.standard_normal((16, 8, 4, 4)).astype(np.float32)
    if transposed:
        expected = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1)
        got = tconv.conv_transpose(x, w, stride=2, padding=1)
    else:
        w = np.ascontiguousarray(w.transpose(1, 0, 2, 3))
        expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1)
        got = tconv.conv(x, w, stride=2, padding=1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)
