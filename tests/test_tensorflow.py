"""tconv against TensorFlow's tf.nn operations (skipped without TensorFlow).

TensorFlow is channels-last with filters laid out ``(*k, out, in)`` for the
transposed convolution and ``(*k, in, out)`` for the convolution; the tests
convert the weights with NumPy transposes, written out here.
"""

from __future__ import annotations

import numpy as np
import pytest

import tconv


def _tf_transpose_filters_to_tconv(f):
    """(*k, out, in) -> (in, out, *k)."""
    d = f.ndim - 2
    return np.ascontiguousarray(np.transpose(f, (d + 1, d, *range(d))))


def _tf_conv_filters_to_tconv(f):
    """(*k, in, out) -> (out, in, *k)."""
    d = f.ndim - 2
    return np.ascontiguousarray(np.transpose(f, (d + 1, d, *range(d))))


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_transpose_against_tf(d, padding, tf):
    rng = np.random.default_rng(20 * d + (padding == "SAME"))
    fn = tf.nn.conv2d_transpose if d == 2 else tf.nn.conv3d_transpose
    for _ in range(12 if d == 2 else 6):
        n = rng.integers(1, 7 if d == 2 else 4, size=d).tolist()
        k = rng.integers(1, 6 if d == 2 else 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        c_in, c_out = (int(v) for v in rng.integers(1, 5, size=2))
        x = rng.standard_normal((2, *n, c_in)).astype(np.float32)
        f = rng.standard_normal((*k, c_out, c_in)).astype(np.float32)
        if padding == "SAME":
            out = [a * b for a, b in zip(n, s)]
            options = {"padding": "same"}
        else:
            # Any admissible VALID size: the full output plus 0 .. s-1 at the end.
            extra = [int(rng.integers(0, b)) for b in s]
            out = [(a - 1) * b + kk + e for a, b, kk, e in zip(n, s, k, extra)]
            options = {"padding": "valid", "output_size": out}
        expected = fn(x, f, output_shape=(2, *out, c_out), strides=s, padding=padding).numpy()
        got = tconv.conv_transpose(x, _tf_transpose_filters_to_tconv(f), stride=s, channels_last=True, **options)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_convolution_against_tf(d, padding, tf):
    rng = np.random.default_rng(40 * d + (padding == "SAME"))
    for _ in range(10 if d < 3 else 5):
        n = rng.integers(3, 9 if d < 3 else 6, size=d).tolist()
        k = rng.integers(1, 4, size=d).tolist()
        # TensorFlow does not combine stride > 1 with dilation > 1.
        if rng.random() < 0.5:
            s, dil = rng.integers(1, 4, size=d).tolist(), [1] * d
        else:
            s, dil = [1] * d, rng.integers(1, 3, size=d).tolist()
        if padding == "VALID" and any(a < (kk - 1) * dd + 1 for a, kk, dd in zip(n, k, dil)):
            continue
        c_in, c_out = (int(v) for v in rng.integers(1, 5, size=2))
        x = rng.standard_normal((2, *n, c_in)).astype(np.float32)
        f = rng.standard_normal((*k, c_in, c_out)).astype(np.float32)
        expected = tf.nn.convolution(x, f, strides=s, padding=padding, dilations=dil).numpy()
        got = tconv.conv(
            x,
            _tf_conv_filters_to_tconv(f),
            stride=s,
            dilation=dil,
            padding=padding.lower(),
            channels_last=True,
        )
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_seed004_with_tensorflow_itself(tf):
    x = np.array([[[[-67], [-77]], [[-117], [-127]]]], np.float32)
    f = np.array([[[[-1]], [[2]], [[-3]]], [[[4]], [[-5]], [[6]]], [[[-7]], [[8]], [[-9]]]], np.float32)
    expected = tf.nn.conv2d_transpose(x, f, output_shape=(1, 5, 5, 1), strides=[1, 2, 2, 1], padding="VALID")
    got = tconv.conv_transpose(x, _tf_transpose_filters_to_tconv(f), stride=2, channels_last=True)
    np.testing.assert_array_equal(got, expected.numpy())
