"""Every worked example of the seed documents that concerns the operations, one test each.

Expected numbers are the seeds' own (``../shared/seeds/``), typed in from there.
"""

from __future__ import annotations

import numpy as np

import tconv
from oracle import naive_conv


def test_seed004_tf_conv2d_transpose_valid_stride2_exact_values():
    """Seed 004: tf.nn.conv2d_transpose(x, f, output_shape=(1, 5, 5, 1), strides=2, 'VALID')."""
    x = np.array([[-67, -77], [-117, -127]], dtype=np.float32).reshape(1, 2, 2, 1)  # NHWC
    f_tf = np.array([[-1, 2, -3], [4, -5, 6], [-7, 8, -9]], dtype=np.float32).reshape(3, 3, 1, 1)
    w = np.transpose(f_tf, (3, 2, 0, 1))  # TF (h, w, out, in) -> tconv (in, out, h, w)
    out = tconv.conv_transpose(x, w, stride=2, padding="valid", output_size=(5, 5), channels_last=True)
    expected = np.array(
        [
            [67, -134, 278, -154, 231],
            [-268, 335, -710, 385, -462],
            [586, -770, 1620, -870, 1074],
            [-468, 585, -1210, 635, -762],
            [819, -936, 1942, -1016, 1143],
        ],
        dtype=np.float32,
    )
    assert out.shape == (1, 5, 5, 1)
    np.testing.assert_array_equal(out[0, :, :, 0], expected)
    # Why 67 and not 603: the first output is the top-left input times the top-left
    # kernel element, not times the flipped kernel's.
    assert out[0, 0, 0, 0] == -67 * -1 != -67 * -9


def test_seed001_full_padding_equals_conv_with_flipped_kernel_30x30():
    """ConvTranspose2d(k=3, padding=2) on 32x32 == Conv2d(k=3, padding=0) with the flipped kernel."""
    rng = np.random.default_rng(1)
    x = rng.random((1, 1, 32, 32))
    w_conv = rng.standard_normal((1, 1, 3, 3))
    transposed = tconv.conv_transpose(x, np.ascontiguousarray(w_conv[:, :, ::-1, ::-1]), padding=2)
    direct = tconv.conv(x, w_conv, padding=0)
    assert transposed.shape == direct.shape == (1, 1, 30, 30)
    np.testing.assert_allclose(transposed, direct, atol=1e-12)
    np.testing.assert_allclose(direct, naive_conv(x, w_conv), atol=1e-12)


def test_seed001_stride3_32_to_92():
    out = tconv.conv_transpose(np.ones((1, 1, 32, 32)), np.ones((1, 1, 3, 3)), stride=3, padding=2)
    assert out.shape == (1, 1, 92, 92)
    assert tconv.shapes.equivalent_conv(32, 3, stride=3, padding=2).dilated_input_size == 94


def test_seed001_32_to_21_and_back_to_32():
    x = np.random.default_rng(2).random((1, 1, 32, 32))
    down = tconv.conv(x, np.ones((1, 1, 18, 18)), padding=3)
    assert down.shape == (1, 1, 21, 21)
    up = tconv.conv_transpose(down, np.ones((1, 1, 18, 18)), padding=3)
    assert up.shape == (1, 1, 32, 32)


def test_seed001_3x3_to_7x7_and_8x8_with_output_padding():
    y = np.random.default_rng(3).random((1, 1, 3, 3))
    k = np.ones((1, 1, 3, 3))
    assert tconv.conv(np.ones((1, 1, 7, 7)), k, stride=2).shape == (1, 1, 3, 3)
    assert tconv.conv(np.ones((1, 1, 8, 8)), k, stride=2).shape == (1, 1, 3, 3)
    seven = tconv.conv_transpose(y, k, stride=2)
    eight = tconv.conv_transpose(y, k, stride=2, output_padding=1)
    assert seven.shape == (1, 1, 7, 7)
    assert eight.shape == (1, 1, 8, 8)
    # output_padding only appends at the high end: the 7x7 part is unchanged, and the
    # extra row and column receive no kernel tap here (the last input's reach ends at 6).
    np.testing.assert_array_equal(eight[..., :7, :7], seven)
    assert not eight[..., 7, :].any() and not eight[..., :, 7].any()
    assert list(tconv.shapes.conv_input_sizes(3, 3, stride=2)) == [7, 8]


def test_seed001_1x1_kernel_with_padding1_crops_3x3_to_1x1():
    out = tconv.conv_transpose(np.ones((1, 1, 3, 3)), np.full((1, 1, 1, 1), 0.77), padding=1)
    assert out.shape == (1, 1, 1, 1)
    np.testing.assert_allclose(out, [[[[0.77]]]])


def test_seed001_full_padding_conv_p3_gives_zero_border():
    """Seed 001: Conv2d(k=3, padding=3) on 2x2 gives 6x6 whose border is all zeros."""
    x = np.random.default_rng(4).random((1, 1, 2, 2))
    out = tconv.conv(x, np.ones((1, 1, 3, 3)), padding=3)
    assert out.shape == (1, 1, 6, 6)
    border = np.ones((6, 6), bool)
    border[1:-1, 1:-1] = False
    assert not out[0, 0][border].any()
    assert out[0, 0][~border].all()


def _seed002_weights():
    return np.arange(9.0).reshape(3, 3) + 1.0  # w_{r,c} = 3r + c + 1, all distinct


def test_seed002_2x2_to_4x4_stride1_symbolic_entries():
    """Seed 002 (C^T y' with stride 1): check each printed entry of the 4x4 output."""
    w = _seed002_weights()
    y = np.array([[1.0, 10.0], [100.0, 1000.0]])  # y0, y1, y2, y3
    y0, y1, y2, y3 = y.ravel()
    out = tconv.conv_transpose(y[None, None], w[None, None])[0, 0]
    assert out.shape == (4, 4)
    expected = np.array(
        [
            [w[0, 0] * y0, w[0, 1] * y0 + w[0, 0] * y1, w[0, 2] * y0 + w[0, 1] * y1, w[0, 2] * y1],
            [
                w[1, 0] * y0 + w[0, 0] * y2,
                w[1, 1] * y0 + w[1, 0] * y1 + w[0, 1] * y2 + w[0, 0] * y3,
                w[1, 2] * y0 + w[1, 1] * y1 + w[0, 2] * y2 + w[0, 1] * y3,
                w[1, 2] * y1 + w[0, 2] * y3,
            ],
            [
                w[2, 0] * y0 + w[1, 0] * y2,
                w[2, 1] * y0 + w[2, 0] * y1 + w[1, 1] * y2 + w[1, 0] * y3,
                w[2, 2] * y0 + w[2, 1] * y1 + w[1, 2] * y2 + w[1, 1] * y3,
                w[2, 2] * y1 + w[1, 2] * y3,
            ],
            [w[2, 0] * y2, w[2, 1] * y2 + w[2, 0] * y3, w[2, 2] * y2 + w[2, 1] * y3, w[2, 2] * y3],
        ]
    )
    np.testing.assert_array_equal(out, expected)


def test_seed002_2x2_to_5x5_stride2_symbolic_entries():
    """Seed 002 (C^T y' with stride 2): o' = s(i'-1) + k = 5, each printed entry."""
    w = _seed002_weights()
    y = np.array([[1.0, 10.0], [100.0, 1000.0]])
    y0, y1, y2, y3 = y.ravel()
    out = tconv.conv_transpose(y[None, None], w[None, None], stride=2)[0, 0]
    assert out.shape == (5, 5)
    expected = np.array(
        [
            [w[0, 0] * y0, w[0, 1] * y0, w[0, 2] * y0 + w[0, 0] * y1, w[0, 1] * y1, w[0, 2] * y1],
            [w[1, 0] * y0, w[1, 1] * y0, w[1, 2] * y0 + w[1, 0] * y1, w[1, 1] * y1, w[1, 2] * y1],
            [
                w[2, 0] * y0 + w[0, 0] * y2,
                w[2, 1] * y0 + w[0, 1] * y2,
                w[2, 2] * y0 + w[2, 0] * y1 + w[0, 2] * y2 + w[0, 0] * y3,
                w[2, 1] * y1 + w[0, 1] * y3,
                w[2, 2] * y1 + w[0, 2] * y3,
            ],
            [w[1, 0] * y2, w[1, 1] * y2, w[1, 2] * y2 + w[1, 0] * y3, w[1, 1] * y3, w[1, 2] * y3],
            [w[2, 0] * y2, w[2, 1] * y2, w[2, 2] * y2 + w[2, 0] * y3, w[2, 1] * y3, w[2, 2] * y3],
        ]
    )
    np.testing.assert_array_equal(out, expected)


def test_seed003_4x4_conv_3x3_gives_2x2():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 1, 4, 4))
    w = rng.standard_normal((1, 1, 3, 3))
    out = tconv.conv(x, w)
    assert out.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(out, naive_conv(x, w), atol=1e-12)
    # O = (I - K + 2P)/S + 1
    assert (4 - 3 + 2 * 0) // 1 + 1 == out.shape[-1]


def test_seed000_dcgan_generator_shapes():
    """Seed 000: 7x7x256 -> 7x7x128 -> 14x14x64 -> 28x28x1 with k5, 'same', strides 1, 2, 2."""
    rng = np.random.default_rng(6)
    h = rng.standard_normal((2, 7, 7, 256)).astype(np.float32)
    shapes = []
    for filters, stride in ((128, 1), (64, 2), (1, 2)):
        w = rng.standard_normal((h.shape[-1], filters, 5, 5)).astype(np.float32) * 0.01
        h = tconv.conv_transpose(h, w, stride=stride, padding="same", channels_last=True)
        shapes.append(h.shape[1:])
    assert shapes == [(7, 7, 128), (14, 14, 64), (28, 28, 1)]


def test_seed000_solved_padding_p2_reproduces_same():
    """Seed 000 solves p = 2 for both layers; with output_padding 1 for stride 2 that is
    what 'same' computes for the 7 -> 14 layer only up to its (1, 2) split, and exactly
    for the 7 -> 7 layer."""
    assert tconv.shapes.solve_conv_transpose_padding(7, 7, 5, stride=1) == [(2, 0)]
    assert tconv.shapes.solve_conv_transpose_padding(7, 14, 5, stride=2) == [(2, 1)]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 8, 7, 7))
    w = rng.standard_normal((8, 4, 5, 5))
    np.testing.assert_allclose(
        tconv.conv_transpose(x, w, padding=2), tconv.conv_transpose(x, w, padding="same"), atol=1e-12
    )
    p2 = tconv.conv_transpose(x, w, stride=2, padding=2, output_padding=1)
    same = tconv.conv_transpose(x, w, stride=2, padding="same")
    assert p2.shape == same.shape == (1, 4, 14, 14)
    # 'same' crops (1, 2); p=2 with output_padding 1 crops (2, 2) and appends one: a shift of one.
    np.testing.assert_allclose(p2[..., :13, :13], same[..., 1:, 1:], atol=1e-12)
    # And the case analysis of seed 000: o = s(i-1) - 2p + k + (o + 2p - k) % s.
    o, i, k, s, p = 14, 7, 5, 2, 2
    assert o == s * (i - 1) - 2 * p + k + (o + 2 * p - k) % s
