"""tconv against torch.nn.functional on random configurations (skipped without PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest

import tconv
from strategies import random_case

torch = pytest.importorskip("torch")
F = torch.nn.functional

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _random_case(rng, d, transposed):
    return random_case(
        rng,
        d,
        transposed,
        groups=[1, 1, 2, 4],
        sizes=(1, 7 if d < 3 else 5),
        kernels=(1, 5 if d < 3 else 4),
        strides=(1, 4),
        dilations=(1, 3),
    )


def _torch_options(case):
    """The case's options as torch.nn.functional takes them: symmetric padding as one int per axis."""
    options = case.options()
    options["padding"] = [lo for lo, _ in case.padding]
    return options


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_against_torch_functional(d, transposed):
    rng = np.random.default_rng(100 * d + transposed)
    for _ in range(25):
        case = _random_case(rng, d, transposed)
        x = rng.standard_normal((2, case.in_channels, *case.input_size))
        w = rng.standard_normal(case.weight_shape())
        b = rng.standard_normal(case.out_channels)
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        options = _torch_options(case)
        expected = (CONV_T if transposed else CONV)[d](tx, tw, tb, **options)
        got = (tconv.conv_transpose if transposed else tconv.conv)(x, w, b, **options)
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
