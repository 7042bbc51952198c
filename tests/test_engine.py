"""The engine's paths: gradients per algorithm, the compiled paths' chunks, thread team and kernels, fallbacks
(the planner's choices are pinned in tests/test_planner.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

import tconv
from oracle import naive_conv, naive_conv_transpose
from planner_spy import chosen_algorithms
from strategies import Axis, Case, configs
from tconv import _tuning
from tconv.implementations import array_api
from tconv.implementations.compiled import algorithms, geometry, im2col, kernels, schedule, team, workspace
from tconv.implementations.compiled import phases as phases_path
from tconv.implementations.compiled import transposed as transposed_path

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
needs_jit = pytest.mark.skipif(not kernels.available(), reason="no compiled path (numba missing or TCONV_NO_JIT=1)")


def _spec(transposed, x_shape, w_shape, groups=1, **options):
    channels = x_shape[1]
    out = w_shape[1] * groups if transposed else w_shape[0]
    return tconv.ConvSpec.build(
        transposed=transposed,
        input_size=x_shape[2:],
        kernel_size=w_shape[2:],
        in_channels=channels,
        out_channels=out,
        groups=groups,
        **options,
    )


def test_four_dimensional_calls_fall_back_and_match_the_oracle():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 2, 3, 2, 2))
    w = rng.standard_normal((2, 2, 2, 2, 2, 2))
    expected = naive_conv_transpose(x, w, stride=[2, 1, 2, 1], pads=[(1, 0), (0, 0), (0, 1), (0, 0)])
    got = tconv.conv_transpose(x, w, stride=(2, 1, 2, 1), padding=[(1, 0), (0, 0), (0, 1), (0, 0)])
    np.testing.assert_allclose(got, expected, atol=1e-10)


def _grads_match(case, algorithm, channels_last=False):
    x, w, _ = case.arrays()
    y = case.oracle(x, w)
    rng = np.random.default_rng(case.seed + 7)
    gy = rng.standard_normal(y.shape)
    # The reference gradients, from the oracle's adjoint identities: <f(x), gy> is linear in x and in w,
    # so grad_x and grad_w are read off by applying the oracle to unit directions (small configs only).
    fn = tconv.conv_transpose_grad if case.transposed else tconv.conv_grad
    with tconv.use_algorithm(algorithm):
        if channels_last:  # the same call channels-last; its gradients back in (N, C, *sp)
            gx, gw, gb = fn(np.moveaxis(gy, 1, -1), np.moveaxis(x, 1, -1), w, channels_last=True, **case.options())
            gx = np.moveaxis(gx, -1, 1)
        else:
            gx, gw, gb = fn(gy, x, w, **case.options())

    def loss(x_, w_):
        return float(np.vdot(case.oracle(x_, w_), gy))

    for grad, which in ((gx, 0), (gw, 1)):
        v = rng.standard_normal(grad.shape)
        args = [x, w]
        args[which] = v
        # loss is bilinear in (x, w): the directional derivative along v is loss with v in its place.
        np.testing.assert_allclose(np.vdot(grad, v), loss(*args), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(gb, gy.sum(axis=tuple(a for a in range(gy.ndim) if a != 1)), atol=1e-10)


@pytest.mark.parametrize(
    "algorithm",
    ["taps", "gemm", pytest.param("jit_gemm", marks=needs_jit), pytest.param("jit_direct", marks=needs_jit)],
)
@SETTINGS
@given(configs(transposed=True))
def test_conv_transpose_grads_per_path(algorithm, case):
    assume(case.output_size() is not None)
    _grads_match(case.replace(batched=True, channels_last=False), algorithm)


@pytest.mark.parametrize(
    "algorithm",
    ["taps", "gemm", pytest.param("jit_gemm", marks=needs_jit), pytest.param("jit_direct", marks=needs_jit)],
)
@SETTINGS
@given(configs(transposed=False))
def test_conv_grads_per_path(algorithm, case):
    assume(case.output_size() is not None)
    _grads_match(case.replace(batched=True, channels_last=False), algorithm)


@SETTINGS
@given(configs(transposed=True) | configs(transposed=False))
def test_gradients_with_the_planners_choices_avoided(case):
    """The algorithms the planner picks for a call's gradients, avoided (:func:`tconv.avoid_algorithms`): none of
    them runs again, and the gradients of the next choices pass the oracle's adjoint identities."""
    assume(case.output_size() is not None)
    case = case.replace(batched=True, channels_last=False)
    with chosen_algorithms() as chosen:
        _grads_match(case, None)
    with chosen_algorithms() as instead, tconv.avoid_algorithms(*chosen):
        _grads_match(case, None)
    assert chosen and instead and not set(chosen) & set(instead)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_compiled_path_in_chunks_under_a_small_budget(monkeypatch, transposed, channels_last):
    """With a tiny chunk size every sample and channel is its own chunk: the memory bound for calls whose
    buffers would exceed it, checked against the oracle and against the unchunked result."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 6, 7, 6))
    w = rng.standard_normal((6, 4, 3, 3)) if transposed else rng.standard_normal((4, 6, 3, 3))
    b = rng.standard_normal(4)
    fn = tconv.conv_transpose if transposed else tconv.conv
    naive = naive_conv_transpose if transposed else naive_conv
    expected = naive(x, w, b, stride=[2, 2], pads=[(1, 0), (1, 1)])
    gy = rng.standard_normal(expected.shape)
    with tconv.use_algorithm("jit_gemm"):
        whole = fn(x, w, b, stride=2, padding=[(1, 0), (1, 1)])
        whole_grads = (tconv.conv_transpose_grad if transposed else tconv.conv_grad)(
            gy, x, w, stride=2, padding=[(1, 0), (1, 1)]
        )
    monkeypatch.setattr(_tuning, "CHUNK_BYTES", 1)
    chunks, blocks = [], []
    real, real_blocks = schedule.chunks, schedule.im2col_blocks
    monkeypatch.setattr(schedule, "chunks", lambda *a: chunks.append(real(*a)) or chunks[-1])
    monkeypatch.setattr(schedule, "im2col_blocks", lambda *a: blocks.append(real_blocks(*a)) or blocks[-1])
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    gyin = np.moveaxis(gy, 1, -1) if channels_last else gy
    with tconv.use_algorithm("jit_gemm"):
        got = fn(xin, w, b, stride=2, padding=[(1, 0), (1, 1)], channels_last=channels_last)
        grads = (tconv.conv_transpose_grad if transposed else tconv.conv_grad)(
            gyin, xin, w, stride=2, padding=[(1, 0), (1, 1)], channels_last=channels_last
        )
    if channels_last:
        got = np.moveaxis(got, -1, 1)
        grads = (np.moveaxis(grads[0], -1, 1), grads[1], grads[2])
    np.testing.assert_allclose(got, expected, atol=1e-10)
    np.testing.assert_allclose(whole, expected, atol=1e-10)
    for a, c in zip(grads, whole_grads):
        np.testing.assert_allclose(a, c, atol=1e-10)
    if transposed:
        assert len(chunks[0]) == 5 * 4  # one sample and one output channel per chunk
        assert len(blocks[0]) == 5 * 4  # the gradients' im2col of gy: one sample, one channel of gy
    else:
        assert len(blocks[0]) == 5 * 6  # im2col of x: one sample and one input channel per block


@needs_jit
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_compiled_path_in_low_precision(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 8, 6, 6)).astype(dtype)
    w = (rng.standard_normal((8, 5, 4, 4)) * 0.1).astype(dtype)
    expected = naive_conv_transpose(x.astype(np.float64), w.astype(np.float64), stride=[2, 2], pads=[(1, 1)] * 2)
    for algorithm in ("jit_gemm", "jit_direct", "jit_pixels", "jit_patches"):
        with tconv.use_algorithm(algorithm):
            got = tconv.conv_transpose(x, w, stride=2, padding=1)
        assert got.dtype == dtype
        tolerance = 1e-2 if dtype == np.float16 else 1e-4
        np.testing.assert_allclose(got.astype(np.float64), expected, rtol=tolerance, atol=tolerance)


@needs_jit
def test_non_contiguous_inputs_on_the_compiled_path():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 10, 8))[:, ::2, ::2, 1:]  # strided view
    w = rng.standard_normal((3, 2, 3, 3))
    expected = naive_conv_transpose(np.ascontiguousarray(x), w, stride=[3, 2], pads=[(2, 2), (0, 1)])
    with tconv.use_algorithm("jit_gemm"):
        got = tconv.conv_transpose(x, w, stride=(3, 2), padding=[(2, 2), (0, 1)])
    np.testing.assert_allclose(got, expected, atol=1e-10)


@needs_jit
@pytest.mark.parametrize("algorithm", ["jit_gemm", "jit_pixels", "jit_patches", "jit_direct"])
def test_strided_weight_views_on_the_compiled_path(algorithm):
    """A weight that is a strided view (the engine passes a kernel cut to its live taps as one), each layout:
    the transposed paths copy or reshape it once into their own order, against the oracle on its copy."""
    rng = np.random.default_rng(9)
    w = rng.standard_normal((6, 5, 5, 7))[:, 1:, 1:4, ::2]  # (6, 4, 3, 4), no axis of unit stride
    x = rng.standard_normal((2, 6, 5, 4))
    expected = naive_conv_transpose(x, np.ascontiguousarray(w), stride=[2, 1], pads=[(1, 0), (2, 1)])
    for channels_last in (False, True):
        xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
        with tconv.use_algorithm(algorithm):
            got = tconv.conv_transpose(xin, w, stride=(2, 1), padding=[(1, 0), (2, 1)], channels_last=channels_last)
        np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)


@needs_jit
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("algorithm", ["jit_pixels", "jit_patches"])
def test_pixel_rows_of_channels_first_x_read_in_place_or_copied_match_the_oracle(algorithm, in_place, monkeypatch):
    """jit_pixels and jit_patches multiply channels-first x's pixel rows either in place (one product per sample,
    BLAS reading each sample transposed) or after a transposing copy (PIXEL_ROWS_IN_PLACE_MAX_COLUMNS): both
    against the oracle, 1-D to 3-D, batches 1 and 3, float32 and float64, with a bias, forward and gradients."""
    monkeypatch.setattr(_tuning, "PIXEL_ROWS_IN_PLACE_MAX_COLUMNS", 10**9 if in_place else 0)
    rng = np.random.default_rng(41)
    for spatial, kernel, stride, pads, batch, dtype in (
        ((9,), (4,), (2,), [(1, 2)], 3, np.float64),
        ((5, 6), (3, 3), (2, 1), [(1, 1), (0, 2)], 3, np.float32),
        ((4, 3), (5, 5), (1, 2), [(0, 0), (1, 1)], 1, np.float64),  # kernels longer than the input (patches)
        ((3, 2, 4), (2, 3, 2), (2, 1, 2), [(0, 1), (1, 1), (0, 0)], 3, np.float64),
    ):
        x = rng.standard_normal((batch, 5, *spatial)).astype(dtype)
        w = rng.standard_normal((5, 4, *kernel)).astype(dtype)
        b = rng.standard_normal(4).astype(dtype)
        options = dict(stride=stride, padding=pads)
        expected = naive_conv_transpose(x, w, b, stride=list(stride), pads=pads)
        tolerance = 1e-4 if dtype == np.float32 else 1e-10
        with tconv.use_algorithm(algorithm):
            got = tconv.conv_transpose(x, w, b, **options)
            gy = rng.standard_normal(got.shape).astype(dtype)
            dx, dw, _ = tconv.conv_transpose_grad(gy, x, w, **options)
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
        # the adjoint: <conv_transpose(v, w), gy> = <v, dx> for every v, and likewise for the weight
        v, u = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        lhs = np.vdot(naive_conv_transpose(v, w.astype(np.float64), stride=list(stride), pads=pads), gy)
        np.testing.assert_allclose(lhs, np.vdot(v, dx), rtol=tolerance * 10)
        lhs = np.vdot(naive_conv_transpose(x.astype(np.float64), u, stride=list(stride), pads=pads), gy)
        np.testing.assert_allclose(lhs, np.vdot(u, dw), rtol=tolerance * 10)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_transposed_direct_sum_four_input_channels_a_pass_matches_the_oracle(channels_last):
    """The transposed direct kernel adds four input channels' rows a pass (channels-first x), then the rest one at a
    time: 4, 5, 7 and 9 input channels a group, groups 1 and 2, 1-D to 3-D, strides, dilation and padding, forced
    jit_direct (channels-last x, read a channel count apart, takes the one-at-a-time loop), against the oracle."""
    rng = np.random.default_rng(43)
    for spatial, kernel, stride, dilation, pads, cg_in, groups in (
        ((11,), (5,), (3,), (1,), [(2, 1)], 4, 1),
        ((6, 7), (4, 3), (2, 1), (1, 2), [(1, 0), (2, 2)], 5, 2),
        ((5, 4), (9, 9), (3, 3), (1, 1), [(4, 4), (4, 4)], 9, 1),  # fsrcnn's kernel longer than three strides
        ((3, 4, 3), (2, 3, 2), (2, 1, 2), (1, 1, 2), [(0, 1), (1, 0), (1, 1)], 7, 1),
    ):
        x = rng.standard_normal((2, cg_in * groups, *spatial))
        w = rng.standard_normal((cg_in * groups, 3, *kernel))
        b = rng.standard_normal(3 * groups)
        options = dict(stride=stride, dilation=dilation, padding=pads, groups=groups)
        expected = naive_conv_transpose(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
        xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv_transpose(xin, w, b, channels_last=channels_last, **options)
        np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)


def _windows_reference(x, kernel, stride, dilation, pads, out):
    """im2col by np.pad and a strided slice per tap: ``(C, K, N, P)``, ``[c, t, n, o] = x_pad[n, c, o*s + t*d]``."""
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    taps = []
    for t in np.ndindex(*kernel):
        index = tuple(
            slice(ti * d, ti * d + (o - 1) * s + 1, s) for ti, d, s, o in zip(t, dilation, stride, out, strict=True)
        )
        taps.append(xp[(slice(None), slice(None), *index)].reshape(x.shape[0], x.shape[1], -1))
    return np.stack(taps).transpose(2, 0, 1, 3)


@needs_jit
@pytest.mark.parametrize(
    "size, kernel, stride, dilation, pads",
    [
        ((7, 7), (5, 5), (2, 2), (1, 1), ((2, 2), (2, 2))),  # keras-dcgan-2's input gradient
        ((9,), (2,), (4,), (1,), ((0, 0),)),  # stride longer than the kernel: x read with gaps, its tail unread
        ((6, 5), (3, 2), (2, 3), (2, 1), ((1, 0), (0, 2))),  # dilation with stride, asymmetric padding
        ((3, 4), (2, 2), (1, 1), (1, 1), ((4, 3), (0, 5))),  # padding beyond the kernel: windows of zeros only
        ((8, 8), (2, 2), (2, 2), (1, 1), ((0, 0), (0, 0))),  # U-Net's 2x2 stride 2: x's planes read in place
        ((4, 3, 5), (2, 3, 2), (1, 2, 2), (2, 1, 1), ((1, 1), (0, 1), (2, 0))),
        # stride 1 along the last axis: each output row copied as one run
        ((6, 7), (3, 3), (2, 1), (1, 2), ((1, 0), (2, 1))),
        ((5, 4, 6), (3, 2, 3), (1, 1, 1), (1, 2, 2), ((1, 1), (0, 2), (3, 1))),
        ((13,), (3,), (1,), (4,), ((4, 4),)),  # WaveNet-style dilated 1-D
        ((3, 9), (3, 1), (3, 1), (1, 1), ((0, 0), (0, 0))),
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_im2col_gathers_every_window(size, kernel, stride, dilation, pads, channels_last):
    """The compiled im2col (zero-padded planes, then a flat gather) against np.pad and a strided slice per tap."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, *size)).astype(np.float32)
    spec = _spec(False, x.shape, (6, 2, *kernel), groups=2, stride=stride, dilation=dilation, padding=list(pads))
    out = spec.output_size
    expected = _windows_reference(x, kernel, stride, dilation, pads, out)
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
    x6 = geometry.grouped_view(xin, 2, len(size), channels_last)
    got = im2col.im2col(x6, spec, spec.input_size, spec.output_size)  # (G, C/G * K, N * P)
    k = int(np.prod(kernel))
    got = got.reshape(4, k, 3, -1)
    np.testing.assert_array_equal(got, expected)
    # and through the whole convolution, against the oracle
    w = rng.standard_normal((6, 2, *kernel)).astype(np.float32)
    with tconv.use_algorithm("jit_gemm"):
        y = tconv.conv(
            xin, w, stride=stride, dilation=dilation, padding=list(pads), groups=2, channels_last=channels_last
        )
    if channels_last:
        y = np.moveaxis(y, -1, 1)
    oracle = naive_conv(
        x.astype(np.float64),
        w.astype(np.float64),
        None,
        stride=list(stride),
        dilation=list(dilation),
        pads=list(pads),
        groups=2,
    )
    np.testing.assert_allclose(y, oracle, rtol=1e-4, atol=1e-4)


@needs_jit
@pytest.mark.parametrize("stride", [(1, 1), (2, 1), (1, 3)])
def test_im2col_of_a_block_of_outputs_that_starts_and_ends_inside_rows(stride):
    """The im2col kernel asked for outputs ``first`` to ``first + P`` (the pixel blocks of small batches), a block
    that starts inside one output row and ends inside another, against np.pad and a strided slice per tap."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    kernel, dilation, pads = (3, 2), (1, 2), ((1, 1), (2, 0))
    spec = _spec(False, x.shape, (4, 3, *kernel), stride=stride, dilation=dilation, padding=list(pads))
    expected = _windows_reference(x, kernel, stride, dilation, pads, spec.output_size)  # (C, K, N, P)
    tables = geometry.im2col_geometry(geometry.axes3(spec, spec.input_size, spec.output_size))
    padded = np.pad(x, [(0, 0), (0, 0), *pads])
    span = tables.span[1:]  # the plane the windows span (the geometry is 3-D; its first axis has length 1)
    planes = np.zeros((2, 3, *span), dtype=np.float32)
    m1, m2 = min(padded.shape[2], span[0]), min(padded.shape[3], span[1])
    planes[:, :, :m1, :m2] = padded[:, :, :m1, :m2]
    planes = planes.reshape(2, 3, -1)
    p_out = expected.shape[-1]
    for first, count in [(0, p_out), (3, p_out - 7), (p_out - 2, 2), (1, 1), (spec.output_size[1] + 1, 4)]:
        # rows longer than the block's columns (row_length pads them): the extra elements are left as they are
        cols = np.full((3, 6, 2 * count + 5), np.nan, dtype=np.float32)
        kernels.im2col(np.ascontiguousarray(planes), cols, count, tables, first)
        written = cols[:, :, : 2 * count].reshape(3, 6, 2, count)
        np.testing.assert_array_equal(written, expected[..., first : first + count])
        assert np.isnan(cols[:, :, 2 * count :]).all()
        # the pixel-major gather of the boxes (channel-minor planes, (N, P, K, C)) reads the same windows
        pixels = np.full((2, count, 6, 3), np.nan, dtype=np.float32)
        rows = tables.rows[first : first + count]
        kernels.pixel_rows(np.ascontiguousarray(np.swapaxes(planes, 1, 2)), pixels, rows, tables.taps)
        np.testing.assert_array_equal(pixels, expected[..., first : first + count].transpose(2, 3, 1, 0))


def test_row_length_moves_rows_off_the_aliasing_stride():
    """row_length pads a row only where its bytes are a multiple of ROW_ALIAS_BYTES, by ROW_ALIAS_PAD bytes."""
    step = _tuning.ROW_ALIAS_BYTES
    assert workspace.row_length(step // 4, 4) == step // 4 + _tuning.ROW_ALIAS_PAD // 4
    assert workspace.row_length(4 * step // 8, 8) == 4 * step // 8 + _tuning.ROW_ALIAS_PAD // 8
    for count, item in ((step // 4 + 1, 4), (3 * step // 8 - 1, 8), (1, 4), (0, 4)):
        assert workspace.row_length(count, item) == count


@needs_jit
@pytest.mark.parametrize("algorithm", ["jit_gemm", "jit_winograd"])
def test_padded_column_rows_match_the_oracle(algorithm, monkeypatch):
    """Calls whose columns (im2col's N * P, Winograd's tiles) are a multiple of ROW_ALIAS_BYTES a row, so that
    their buffers' rows are longer than the matrix BLAS reads (Winograd's planes of C_in rows too): forward
    calls, a transposed call (through its forward twin for jit_winograd), and (jit_gemm) the gradients, whose
    im2col of the output gradient is padded too; against the oracle."""
    padded = []  # whether each im2col call's rows were longer than the columns it wrote
    original = kernels.im2col

    def spy(planes, cols, pixels, tables, first=0):
        padded.append(cols.shape[2] > planes.shape[0] * pixels)
        original(planes, cols, pixels, tables, first)

    monkeypatch.setattr(kernels, "im2col", spy)
    rng = np.random.default_rng(23)
    shapes = {
        "jit_gemm": ((np.float32, (2, 3, 16, 8)), (np.float64, (4, 2, 16, 16)), (np.float32, (1, 5, 32, 32))),
        # Winograd's last: 64 tiles a row (not padded), planes of 4 x 64 (padded)
        "jit_winograd": (
            (np.float32, (4, 3, 16, 16)),
            (np.float64, (2, 2, 16, 16)),
            (np.float32, (1, 5, 32, 32)),
            (np.float32, (4, 4, 8, 8)),
        ),
    }
    for dtype, x_shape in shapes[algorithm]:
        item = np.dtype(dtype).itemsize
        pixels = x_shape[2] * x_shape[3] // (1 if algorithm == "jit_gemm" else 4)  # Winograd: 2x2 output tiles
        columns = x_shape[0] * pixels
        row = workspace.row_length(columns, item)
        plane = x_shape[1] * row  # Winograd's transformed input: a plane of C_in rows per tile position
        assert row > columns or (algorithm == "jit_winograd" and workspace.row_length(plane, item) > plane)
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal((4, x_shape[1], 3, 3))
        b = rng.standard_normal(4)
        with tconv.use_algorithm(algorithm):
            got = tconv.conv(x.astype(dtype), w.astype(dtype), b.astype(dtype), padding=1)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        expected = naive_conv(x, w, b, stride=[1, 1], pads=[(1, 1), (1, 1)], dilation=[1, 1])
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
        wt = rng.standard_normal((x_shape[1], 4, 3, 3))
        with tconv.use_algorithm(algorithm):
            got_t = tconv.conv_transpose(x.astype(dtype), wt.astype(dtype), None, padding=1)
        expected_t = naive_conv_transpose(x, wt, None, stride=[1, 1], pads=[(1, 1), (1, 1)], dilation=[1, 1])
        np.testing.assert_allclose(got_t, expected_t, rtol=tol, atol=tol)
    if algorithm == "jit_gemm":  # float64 gradients: 2 x 8 x 8 columns of 8 bytes, 1 KiB a row
        axis = Axis(8, 3, 1, 1, 1, 1)
        assert workspace.row_length(2 * 8 * 8, 8) > 2 * 8 * 8
        for transposed in (False, True):
            _grads_match(Case(transposed, (axis, axis), cin_g=3, cout_g=4, seed=3), "jit_gemm")
        assert padded and all(padded)  # every im2col of these calls wrote rows longer than its columns


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("algorithm", [None, "jit_gemm", "jit_pixels", "jit_patches"])
def test_single_pixel_input_is_one_product(channels_last, algorithm, monkeypatch):
    """DCGAN's first layer (1x1 input, no padding): written by one matrix product into the output, on the planner's
    choice and on each algorithm that takes it. Channels-last, fewer samples than input channels multiply in the
    weight's order and transpose the product into place (by NumPy, and by the tiled transposing copy, its size
    bound lowered), more copy the weight into the output's order; float64 and float32."""
    rng = np.random.default_rng(6)
    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_BYTES", 0)  # the (2, 96, 64) products by tiles
    for batch, c_in, c_out, kernel in [(3, 5, 4, (4, 3)), (7, 5, 4, (4, 3)), (2, 40, 96, (8, 8)), (1, 3, 2, (5,))]:
        if algorithm is not None and not kernels.available():
            pytest.skip("no compiled path")
        x = rng.standard_normal((batch, c_in, *(1,) * len(kernel)))
        w = rng.standard_normal((c_in, c_out, *kernel))
        b = rng.standard_normal(c_out)
        expected = naive_conv_transpose(x, w, b, stride=[2] * len(kernel))
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        with contextlib.nullcontext() if algorithm is None else tconv.use_algorithm(algorithm):
            got = tconv.conv_transpose(xin, w, b, stride=2, channels_last=channels_last)
            x32, w32, b32 = (a.astype(np.float32) for a in (xin, w, b))
            low = tconv.conv_transpose(x32, w32, b32, stride=2, channels_last=channels_last)
        if channels_last:
            got, low = np.moveaxis(got, -1, 1), np.moveaxis(low, -1, 1)
        np.testing.assert_allclose(got, expected, atol=1e-10)
        assert low.dtype == np.float32
        np.testing.assert_allclose(low, expected, atol=1e-4, rtol=1e-4)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "kernel, stride, padding, output_padding",
    [
        ((2, 2), (2, 2), (0, 0), (0, 0)),
        ((2, 1), (3, 2), (1, 0), (2, 1)),
        ((2, 2, 2), (2, 2, 2), (0, 1, 0), (1, 0, 1)),
        ((1, 1), (4, 3), (0, 0), (3, 2)),  # most output rows are the bias alone
    ],
)
def test_kernel_no_longer_than_stride_reads_columns_directly(kernel, stride, padding, output_padding, channels_last):
    """No overlap between taps (U-Net's 2x2 stride 2, gaps when the kernel is shorter): the gather path, its
    contiguous output rows (channels-first) and strided ones (channels-last)."""
    rng = np.random.default_rng(10)
    d = len(kernel)
    x = rng.standard_normal((2, 3, *(3,) * d))
    w = rng.standard_normal((3, 4, *kernel))
    b = rng.standard_normal(4)
    expected = naive_conv_transpose(
        x, w, b, stride=list(stride), pads=[(p, p) for p in padding], output_padding=list(output_padding)
    )
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    with tconv.use_algorithm("jit_gemm"):
        got = tconv.conv_transpose(
            xin, w, b, stride=stride, padding=padding, output_padding=output_padding, channels_last=channels_last
        )
    np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)


@needs_jit
def test_a_call_over_the_chunk_size_chunks_and_bounds_its_temporaries(monkeypatch):
    """Columns of one sample (2 MiB) over the chunk size (set to 256 KiB here; 30 MiB by default): output-channel
    chunks, traced temporaries below the whole column buffer, and the oracle's result."""
    import tracemalloc

    monkeypatch.setattr(_tuning, "CHUNK_BYTES", 256 * 2**10)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 4, 32, 32), dtype=np.float32)
    w = rng.standard_normal((4, 8, 8, 8), dtype=np.float32)
    columns = 8 * 64 * 32 * 32 * 4
    assert len(schedule.chunks(1, 8, 64 * 32 * 32 * 4)) == 8
    with tconv.use_algorithm("jit_gemm"):
        tconv.conv_transpose(x[:, :, :4, :4], w, stride=4, padding=2)  # compile and load outside the trace
        workspace.drop_workspaces()
        tracemalloc.start()
        got = tconv.conv_transpose(x, w, stride=4, padding=2)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak - got.nbytes < columns / 2  # never all the columns at once
    expected = naive_conv_transpose(x.astype(np.float64), w.astype(np.float64), stride=[4, 4], pads=[(2, 2)] * 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


needs_team = pytest.mark.skipif(
    not kernels.available() or team._controller() is None,
    reason="no thread team (numba or threadpoolctl missing, or TCONV_NO_JIT=1)",
)


def _blas_threads():
    return [info["num_threads"] for info in team._controller().info()]


@needs_team
def test_a_measured_decision_is_watched_and_measured_again_where_it_no_longer_holds(monkeypatch):
    """After the decision each run of the way taken is timed; every KERNEL_TEAM_WATCH runs (doubled after each new
    measurement) their median is set against the other way's measured median, and where the team runs slower than
    alone did (or alone slower than the team's time by the rule's share squared) the call is measured again, both
    ways in turn without the uncounted runs, at most KERNEL_TEAM_REMEASURES times; a decision that holds stays."""
    import threading
    import time

    from tconv.implementations.compiled import team

    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_WATCH", 2)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_REMEASURES", 2)
    monkeypatch.setattr(_tuning, "KERNEL_RANGES_PER_THREAD", 4)  # eight ranges of one job on two threads
    monkeypatch.setattr(team, "threads", lambda: 2)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 1000.0)
    monkeypatch.setattr(team, "_probes", {})
    monkeypatch.setattr(team, "_watched", {})
    jobs, skip, probes, unit = 8, _tuning.KERNEL_TEAM_PROBE_SKIP, _tuning.KERNEL_TEAM_PROBES, 0.002
    cost = {"job": 2 * unit, "range": 0.0}  # what a job and a kernel call sleep: changed between the calls below
    lock = threading.Lock()
    ranges: list[int] = []

    def kernel(start: int, stop: int) -> None:
        time.sleep(cost["range"] + cost["job"] * (stop - start))
        with lock:
            ranges[-1] += 1

    def calls(count: int) -> list[bool]:
        """Whether each of ``count`` calls ran on the team (more than one range)."""
        teamed = []
        for _ in range(count):
            ranges.append(0)
            team.ranges(kernel, jobs, 500.0)
            teamed.append(ranges[-1] > 1)
        return teamed

    calls(skip + 2 * probes)  # alone 16 units, on the team 8: decided for the team
    (key,) = team._probes
    assert team._probes[key] is True and calls(4) == [True] * 4  # the team keeps its time: measured no more
    assert team._watched[key][2] == 0
    cost.update(job=0.0, range=6 * unit)  # the team's eight ranges now 24 units, above alone's 16 measured
    assert calls(2 + 2 * probes + 2) == [True] * 2 + [False, True] * probes + [False] * 2  # watched, measured, alone
    assert team._probes[key] is False and team._watched[key][2] == 1
    # alone now 40 units, the team's measured 24 below 0.81 of it: watched over four runs (the two above among
    # them, whose median still holds), then four more, then measured again, then the team (20 units)
    cost.update(job=5 * unit, range=0.0)
    assert calls(6 + 2 * probes + 1) == [False] * 6 + [False, True] * probes + [True]
    assert team._probes[key] is True and team._watched[key][2] == 2
    cost.update(job=0.0, range=12 * unit)  # the team 48 units against alone's 40: wrong, but measured twice more
    assert calls(8 + 2) == [True] * 10 and team._probes[key] is True and team._watched[key][2] == 2


def test_the_watch_measures_again_only_past_its_margins_and_at_most_so_often(monkeypatch):
    """team._watch on given run times: the team (decided below KERNEL_TEAM_MEASURED_SHARE of the time alone) is
    measured again only once its window's median is above the time alone, a run alone only once the team's time is
    below the share squared of it (a margin both ways); windows of KERNEL_TEAM_WATCH runs, doubled after each new
    measurement; at most KERNEL_TEAM_REMEASURES new measurements."""
    from tconv.implementations.compiled import team

    monkeypatch.setattr(_tuning, "KERNEL_TEAM_WATCH", 4)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_REMEASURES", 2)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MEASURED_SHARE", 0.9)
    monkeypatch.setattr(team, "_probes", {})
    key = ("test",)

    def window(decision: bool, other: float, seconds: float, runs: int, again: int = 0) -> list:
        """The watch after ``runs`` runs of ``seconds`` each, the other way measured at ``other``."""
        team._probes[key] = decision
        watch = [other, [], again]
        for _ in range(runs):
            team._watch(key, decision, watch, seconds)
        return watch

    # on the team, alone measured at 1.0: runs of 0.95 (between the rule's 0.9 and 1.0) keep it; 1.05 does not
    assert window(True, 1.0, 0.95, 8)[2] == 0 and team._probes[key] is True
    assert window(True, 1.0, 1.05, 3)[2] == 0 and team._probes[key] is True  # three runs: no window yet
    watch = window(True, 1.0, 1.05, 4)
    assert watch[2] == 1 and team._probes[key] == ([None] * _tuning.KERNEL_TEAM_PROBE_SKIP, [], [])
    # alone, the team measured at 1.0: runs of 1.15 (the team below 0.9 of them, not below 0.81) keep it; 1.25 not
    assert window(False, 1.0, 1.15, 8)[2] == 0 and team._probes[key] is False
    assert window(False, 1.0, 1.25, 4)[2] == 1 and isinstance(team._probes[key], tuple)
    # measured again once: the next window is eight runs; measured again twice, nothing more (the cap)
    assert window(False, 1.0, 1.25, 7, again=1)[2] == 1 and team._probes[key] is False
    assert window(False, 1.0, 1.25, 8, again=1)[2] == 2 and isinstance(team._probes[key], tuple)
    assert window(False, 1.0, 1.25, 16, again=2)[2] == 2 and team._probes[key] is False


def test_products_near_the_team_threshold_are_measured_in_the_same_blocks(monkeypatch):
    """A product from KERNEL_TEAM_PROBE_FROM to KERNEL_TEAM_TRUST times TEAM_PRODUCT_MIN_FLOPS runs as the team's
    blocks, on the team or one after the other in the caller, whichever measured faster: every call's result the
    same bit for bit through the uncounted runs, the probes and after the decision, and equal to NumPy's."""
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((257, 300)), rng.standard_normal((300, 190))
    flops = 2.0 * 257 * 300 * 190
    monkeypatch.setattr(team, "size", lambda: 2)
    monkeypatch.setattr(team, "_probes", {})
    ran: list[bool] = []  # per call: whether the team's run took it
    real_run = team.run

    def recording(*args, **kwargs):
        ran.append(True)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(team, "run", recording)
    real_matmul, rows = np.matmul, []  # the rows of each product BLAS received

    def products(x, y, *args, **kwargs):
        if x.shape[-1] == 300:  # not the threads' warm-up product (team._warm_blas)
            rows.append(x.shape[0])
        return real_matmul(x, y, *args, **kwargs)

    monkeypatch.setattr(np, "matmul", products)
    calls = _tuning.KERNEL_TEAM_PROBE_SKIP + 2 * _tuning.KERNEL_TEAM_PROBES + 2
    for threshold, first_on_team in ((flops / 2, True), (flops * 2, False)):  # estimated above / below it
        monkeypatch.setattr(_tuning, "TEAM_PRODUCT_MIN_FLOPS", threshold)
        team._probes.clear()
        results, teamed = [], []
        for _ in range(calls):
            ran.clear()
            rows.clear()
            results.append(team.matmul(a, b))
            teamed.append(bool(ran))
            assert sorted(rows) == [128, 129]  # the team's two blocks of rows, on the team or here
        assert all(np.array_equal(r, results[0]) for r in results)
        np.testing.assert_allclose(results[0], real_matmul(a, b), rtol=1e-12, atol=1e-12)
        skip, probes = _tuning.KERNEL_TEAM_PROBE_SKIP, _tuning.KERNEL_TEAM_PROBES
        assert teamed[:skip] == [first_on_team] * skip
        assert teamed[skip : skip + 2 * probes] == [False, True] * probes
        (decision,) = [v for k, v in team._probes.items() if k[0] == "matmul"]
        assert isinstance(decision, bool) and teamed[-2:] == [decision] * 2
    monkeypatch.setattr(_tuning, "TEAM_PRODUCT_MIN_FLOPS", flops / _tuning.KERNEL_TEAM_TRUST)  # unmeasured there
    team._probes.clear()
    ran.clear()
    assert np.array_equal(team.matmul(a, b), results[0])
    assert ran and not team._probes


@needs_team
def test_the_compiled_products_never_run_on_blas_threads(monkeypatch):
    """team.matmul, the compiled path's product: a product worth the hand-off is cut into blocks of rows (or of
    columns, where they are more) run by the team (or, measured, the same blocks in the caller), a middling one
    runs in the caller, each on one BLAS thread
    (BLAS's own threads would spin after it, against the team's next run). BLAS threads no product below
    ``BLAS_ONE_THREAD_MIN_WORK`` multiply-adds, so those are left alone: a small one, the matrices of a stack
    of small ones, and a middling one that a few blocks, none narrower than ``BLAS_SPLIT_MIN_BLOCK``, bring below
    it (cheaper than setting BLAS's thread count). Stacked and broadcast operands, with and without ``out``, equal
    NumPy's product; BLAS has its thread count back afterwards."""
    from threadpoolctl import threadpool_limits

    real = np.matmul
    seen: list[tuple[int, list[int]]] = []
    controller = team._controller()
    # NumPy's own BLAS (other libraries loaded by earlier tests, such as PyTorch's, are not the ones it calls)
    numpy_blas = [lib for lib in controller.lib_controllers if lib.user_api == "blas" and "numpy" in lib.filepath]
    numpy_blas = numpy_blas or [lib for lib in controller.lib_controllers if lib.user_api == "blas"]

    def counts() -> list[int]:
        return [lib.num_threads for lib in numpy_blas]

    def recording(a, b, *args, **kwargs):
        seen.append((a.shape[-2] * a.shape[-1] * b.shape[-1], counts()))
        return real(a, b, *args, **kwargs)

    rng = np.random.default_rng(5)
    cases = [
        (rng.standard_normal((300, 200)), rng.standard_normal((200, 250))),  # rows: 3e7 flops
        (rng.standard_normal((40, 200)), rng.standard_normal((200, 3000))),  # columns
        (rng.standard_normal((3, 90, 120)), rng.standard_normal((120, 500))),  # stacked, b broadcast
        (rng.standard_normal((60, 80)), rng.standard_normal((80, 70))),  # middling: in the caller, in 2 blocks
        (rng.standard_normal((32, 720)), rng.standard_normal((720, 36))),  # middling, blocks of 9: whole, limited
        (rng.standard_normal((300, 150)), rng.standard_normal((150, 100))),  # measured: the team's 2 blocks here
        (rng.standard_normal((4, 60, 40)), rng.standard_normal((40, 60))),  # a stack of small ones
        (rng.standard_normal((5, 6)), rng.standard_normal((6, 7))),  # small
    ]
    monkeypatch.setattr(team, "size", lambda: 2)  # a team of two wherever the test runs
    with threadpool_limits(limits=2, user_api="blas"):
        before = counts()
        monkeypatch.setattr(np, "matmul", recording)
        results = [team.matmul(a, b) for a, b in cases]
        given = np.empty((300, 250))
        assert team.matmul(*cases[0], out=given) is given
        monkeypatch.setattr(np, "matmul", real)
        after = counts()
    for (a, b), got in zip(cases, results):
        np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)
    vector = rng.standard_normal(200)
    np.testing.assert_allclose(team.matmul(vector, cases[0][1]), vector @ cases[0][1], rtol=1e-12)
    np.testing.assert_allclose(given, results[0], rtol=1e-12, atol=1e-12)
    assert after == before
    limit = _tuning.BLAS_ONE_THREAD_MIN_WORK
    assert limit == 4 * 65536  # OpenBLAS threads a product from m * n * k = 4 * 65536 on (see _tuning)
    # every product BLAS received was one it does not thread, or ran with BLAS on one thread
    assert all(size < limit or threads == [1] * len(before) for size, threads in seen)
    assert any(threads == [1] * len(before) for size, threads in seen)
    unlimited = [size for size, threads in seen if threads == before]
    for size in (5 * 6 * 7, 60 * 40 * 60):  # the small one and the stack of small ones
        unlimited.remove(size)
    assert len(unlimited) == 2 and sum(unlimited) == 60 * 80 * 70  # the middling one, in two blocks
    # the middling one whose blocks below the limit would be 9 columns wide (BLAS_SPLIT_MIN_BLOCK): whole, limited
    assert [threads for size, threads in seen if size == 32 * 720 * 36] == [[1] * len(before)]
    # a product of 9e6 flops, from KERNEL_TEAM_PROBE_FROM of the team's threshold up, is measured: its first run
    # the estimate's way (here, below the threshold), as the team's two blocks, each with BLAS limited
    assert [size for size, threads in seen if size == 150 * 150 * 100 and threads == [1] * len(before)] == [
        150 * 150 * 100
    ] * 2
    assert len(seen) > len(cases) + 1  # the large products were cut into blocks


@needs_team
def test_each_thread_warms_blas_once_on_one_blas_thread(monkeypatch):
    """Before its first product for tconv, each thread of a run (the caller and the team's) runs one float32
    product of ``BLAS_WARM_UP_SHAPE`` with BLAS on one thread, once: a second run warms no thread twice (a team
    thread new to it may warm then), and a thread whose BLAS has more than one thread runs none."""
    import collections
    import threading

    from threadpoolctl import threadpool_limits

    real = np.matmul
    warm_ups: list[tuple[int, list[int]]] = []
    m, k, n = _tuning.BLAS_WARM_UP_SHAPE

    def recording(a, b, *args, **kwargs):
        if a.shape == (m, k) and b.shape == (k, n) and a.dtype == np.float32:
            warm_ups.append((threading.get_ident(), team.blas_thread_counts()))
        return real(a, b, *args, **kwargs)

    both = threading.Barrier(2, timeout=30)  # each piece waits for the other: the caller and a team thread
    ran: list[int] = []

    def piece(_: int) -> None:
        ran.append(threading.get_ident())
        both.wait()
        np.matmul(np.ones((3, 4)), np.ones((4, 5)))

    monkeypatch.setattr(team, "_warmed", threading.local())  # no thread has warmed BLAS yet
    with threadpool_limits(limits=2, user_api="blas"):
        monkeypatch.setattr(np, "matmul", recording)
        team.run(piece, [0, 1], 2)
        first, first_ran = list(warm_ups), set(ran)
        team.run(piece, [0, 1], 2)
        outside: list[BaseException] = []

        def unlimited() -> None:  # a new thread, BLAS on two threads: no warm-up
            try:
                team._warm_blas()
            except BaseException as error:  # noted: the assertion below must not pass on an error
                outside.append(error)

        thread = threading.Thread(target=unlimited)
        thread.start()
        thread.join()
        monkeypatch.setattr(np, "matmul", real)
    assert len(first_ran) == 2 and {ident for ident, _ in first} == first_ran  # the caller and a team thread
    assert all(counts == [1] * len(counts) for _, counts in warm_ups)  # on one BLAS thread
    assert max(collections.Counter(ident for ident, _ in warm_ups).values()) == 1  # once a thread
    assert set(ran) <= {ident for ident, _ in warm_ups}  # every thread that ran a piece had warmed
    assert not outside and thread.ident not in {ident for ident, _ in warm_ups}


@needs_team
def test_a_run_leaves_no_thread_in_control_of_blas(monkeypatch, controlled_blas):
    """A team run limits BLAS from its calling thread and restores it there; it must also give threadpoolctl's
    control up. Kept, the main thread held it for good after its first run: every limit set from another thread
    (a Dask block's, another library's) was ignored. And a run from another thread (a Dask worker's), kept
    alive, left the main thread's later runs unable to limit BLAS: their teams ran beside BLAS's threads."""
    from concurrent.futures import ThreadPoolExecutor

    libs = controlled_blas
    original = [lib.get_num_threads() for lib in libs]
    if min(original) < 2:
        pytest.skip("BLAS has one thread here: a limit to one would not show")
    type(libs[0]).clear_controlling_thread(force=True)  # whatever earlier code in this process left
    monkeypatch.setattr(team, "size", lambda: 2)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 250))  # a team run (see the test above)

    def limit_here() -> list[int]:  # another library's limit, from its own thread: set, read, restored
        for lib in libs:
            lib.set_num_threads(1)
        seen = [lib.get_num_threads() for lib in libs]
        for lib, count in zip(libs, original):
            lib.set_num_threads(count)
        type(libs[0]).clear_controlling_thread()
        return seen

    def team_limit() -> list[int]:  # what a run's limit gives in this thread
        with team._blas_single_threaded():
            return [lib.get_num_threads() for lib in libs]

    def counts() -> list[int]:
        return [lib.get_num_threads() for lib in libs]

    def change_to(wanted: list[int], release: bool = False) -> list[int]:  # set from the calling thread
        for lib, count in zip(libs, wanted):
            lib.set_num_threads(count)
        seen = counts()
        if release:
            type(libs[0]).clear_controlling_thread()
        return seen

    pool = ThreadPoolExecutor(1)  # its thread lives on, as Dask's pool threads do
    try:
        np.testing.assert_allclose(team.matmul(a, b), a @ b, rtol=1e-12)  # limits and restores in this thread
        assert pool.submit(limit_here).result() == [1] * len(libs)  # the main thread kept no control
        np.testing.assert_allclose(pool.submit(team.matmul, a, b).result(), a @ b, rtol=1e-12)
        assert team_limit() == [1] * len(libs)  # nor did the pool's thread, still alive
        assert pool.submit(team_limit).result() == [1] * len(libs)
        # A limit of the caller's own, set outside a `with` (this thread takes the control), then a run: the run
        # keeps the control it found, so the caller's restore still takes, and other threads' changes do not
        for lib in libs:
            lib.set_num_threads(1)
        assert team.holds_blas_control()
        np.testing.assert_allclose(team.matmul(a, b), a @ b, rtol=1e-12)
        assert team.holds_blas_control() and counts() == [1] * len(libs)

        def change_here() -> list[int]:
            return change_to(original)

        assert pool.submit(change_here).result() == [1] * len(libs)  # ignored: this thread holds the control
        for lib, count in zip(libs, original):
            lib.set_num_threads(count)
        assert counts() == original  # the caller's restore took
        team.release_blas_control()
        assert not team.holds_blas_control()
        # Another thread's limit, held while a run here starts and restored (its control given up) before the
        # run ends: the run leaves OpenBLAS to that thread, so its own restore cannot write back the 1 it read
        assert pool.submit(change_to, [1] * len(libs)).result() == [1] * len(libs)
        with team._blas_single_threaded():
            assert pool.submit(change_to, original, True).result() == original
        assert counts() == original and not team.holds_blas_control()
    finally:
        pool.shutdown()
        for lib, count in zip(libs, original):  # whatever an assertion above left: the counts, then the control
            lib.set_num_threads(count)
        type(libs[0]).clear_controlling_thread(force=True)
    assert counts() == original


def test_a_batch_smaller_than_the_team_is_split_over_channels(monkeypatch):
    """Batch 1 on a two-thread team: blocks of output channels, as many as the threads (or a multiple), each
    at least TEAM_MIN_CHANNELS wide; too few channels for that and the call keeps the plain schedule."""
    monkeypatch.setattr(team, "size", lambda: 2)
    chunks, threads = schedule.schedule(1, 64, 4 * 2**20 // 64)
    assert threads == 2 and len(chunks) % 2 == 0
    assert sorted(c for _, _, c0, c1 in chunks for c in range(c0, c1)) == list(range(64))
    assert all(c1 - c0 >= _tuning.TEAM_MIN_CHANNELS for _, _, c0, c1 in chunks)
    assert schedule.schedule(1, 21, 2**20)[1] == 1  # fcn32s' 21 channels: 10 a thread is too few
    chunks, threads = schedule.schedule(1, 64, _tuning.TEAM_CHUNK_BYTES // 16)  # 4 chunks' worth
    assert threads == 2 and len(chunks) == 4
    for batch, channels, pair, budget in ((1, 5, 2, 3), (3, 10, 7, 20), (1, 7, 5, 12), (2, 9, 4, 4)):
        blocks = schedule.chunks(batch, channels, pair, budget, threads=2)
        assert all((n1 - n0) * (c1 - c0) * pair <= max(budget, pair) for n0, n1, c0, c1 in blocks)
        assert sorted((n, c) for n0, n1, c0, c1 in blocks for n in range(n0, n1) for c in range(c0, c1)) == [
            (n, c) for n in range(batch) for c in range(channels)
        ]


def _two_thread_team(monkeypatch):
    """A two-thread team for any call size; returns the list the team's chunks are recorded into."""
    monkeypatch.setattr(team, "size", lambda: 2)
    monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)
    monkeypatch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)
    chunks_seen = []
    real_run = team.run

    def run(work, chunks, threads):
        chunks_seen.extend(chunks)
        real_run(work, chunks, threads)

    monkeypatch.setattr(team, "run", run)
    return chunks_seen


@needs_team
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(configs(transposed=True))
def test_batch_one_gradients_in_pixel_blocks_on_a_team(monkeypatch, case):
    """A transposed convolution's gradients at batch 1 on a two-thread team, in blocks of a few pixels (the
    im2col's window table cut per block, partial weight gradients summed): against the oracle's adjoints."""
    assume(case.output_size() is not None and case.d <= 3)
    _two_thread_team(monkeypatch)
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 256)  # several blocks of pixels
    blocks = []  # the blocks dealt to the team's bins
    real_each_dealt = schedule.each_dealt

    def each_dealt(work, pieces, threads, sizes=None):
        blocks.extend(pieces)
        real_each_dealt(work, pieces, threads, sizes)

    monkeypatch.setattr(schedule, "each_dealt", each_dealt)
    _grads_match(case.replace(batch=1, batched=True, channels_last=False), "jit_gemm")
    assert blocks and sorted(o for o0, o1 in blocks for o in range(o0, o1)) == list(range(blocks[-1][1]))


@needs_team
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("algorithm", ["jit_gemm", "jit_pixels"])
def test_batch_one_on_a_thread_team_matches_the_oracle(monkeypatch, algorithm, channels_last):
    """A single sample's channel blocks run on both threads of a team; the result is the oracle's."""
    seen = _two_thread_team(monkeypatch)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 5, 6, 4))
    w = rng.standard_normal((5, 7, 4, 3))
    b = rng.standard_normal(7)
    expected = naive_conv_transpose(x, w, b, stride=[2, 1], pads=[(1, 1), (0, 1)], output_padding=[1, 0])
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    with tconv.use_algorithm(algorithm):
        got = tconv.conv_transpose(
            xin, w, b, stride=(2, 1), padding=[(1, 1), (0, 1)], output_padding=(1, 0), channels_last=channels_last
        )
    if channels_last:
        got = np.moveaxis(got, -1, 1)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert len(seen) >= 2 and all((n0, n1) == (0, 1) for n0, n1, _, _ in seen)


@needs_team
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("algorithm", ["jit_gemm", "jit_pixels"])
def test_thread_team_runs_every_chunk_and_matches_the_oracle(monkeypatch, algorithm, channels_last):
    """Forced onto a two-thread team with tiny chunks: every chunk runs (on both threads), the result is the
    oracle's, and the BLAS thread count is what it was before the call."""
    monkeypatch.setattr(team, "size", lambda: 2)
    monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)
    monkeypatch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 3 * 4 * 9 * 6 * 8)  # one or two samples per chunk
    seen = []
    real_run = team.run

    def run(work, chunks, threads):
        def traced(chunk):
            seen.append((chunk, __import__("threading").get_ident()))
            work(chunk)

        real_run(traced, chunks, threads)

    monkeypatch.setattr(team, "run", run)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((7, 5, 4, 3))
    w = rng.standard_normal((5, 3, 3, 3))
    b = rng.standard_normal(3)
    expected = naive_conv_transpose(x, w, b, stride=[2, 1], pads=[(1, 0), (0, 1)], output_padding=[1, 0])
    before = _blas_threads()
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    with tconv.use_algorithm(algorithm):
        got = tconv.conv_transpose(
            xin, w, b, stride=(2, 1), padding=[(1, 0), (0, 1)], output_padding=(1, 0), channels_last=channels_last
        )
    if channels_last:
        got = np.moveaxis(got, -1, 1)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert _blas_threads() == before
    covered = sorted(n for (n0, n1, _, _), _ in seen for n in range(n0, n1))
    assert covered == list(range(7)) and len(seen) >= 4


@needs_team
def test_thread_team_raises_a_chunks_error_and_restores_blas():
    before = _blas_threads()
    done = []

    def work(chunk):
        if chunk == 3:
            raise ValueError("chunk 3 failed")
        done.append(chunk)

    with pytest.raises(ValueError, match="chunk 3 failed"):
        team.run(work, list(range(8)), 2)
    assert _blas_threads() == before
    assert 3 not in done


def _sleeping_team_thread_ids() -> list[int]:
    """The team's threads' native ids, all of them asleep (started first where there are none: a run of eight
    pieces on two; waited for, up to 10 s)."""
    team.run(lambda chunk: None, list(range(8)), 2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with team._lock:
            alive = [thread.native_id for thread in team._workers if thread.is_alive()]
            if alive and set(alive) == team._asleep:
                return alive
        time.sleep(0.01)
    raise AssertionError("the team's threads did not go to sleep")


@pytest.fixture
def affinity_restored():
    """The team's threads allowed every CPU the process may use again after the test, and ``_keep_off``'s record of
    them forgotten (so that later tests start from the system's placement)."""
    yield
    allowed = os.sched_getaffinity(0)
    for tid in [thread.native_id for thread in team._workers]:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, allowed)
    team._kept_off.clear()
    team._kept_off_refused = False


@needs_team
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_team_threads_wake_off_the_callers_cpu(monkeypatch, affinity_restored):
    """Each team call lets the sleeping team threads wake only on the CPUs the caller may run on but the one it
    is on, and each woken thread takes all of them back before its first piece: seen in the system calls made
    (by which thread, on which thread, with which CPUs) for a caller on a (pretended) first and then second CPU
    of its set, and read back from the system after the calls. A caller allowed one CPU changes nothing; a
    system that refuses the setting leaves the team as it was, the call's result right, and is not asked again."""
    allowed = frozenset(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("the process may run on one CPU only")
    tids = _sleeping_team_thread_ids()
    real = os.sched_setaffinity
    calls: list = []

    def spy(tid, cpus):
        calls.append((threading.get_native_id(), tid, frozenset(cpus)))
        real(tid, cpus)

    monkeypatch.setattr(os, "sched_setaffinity", spy)
    caller = threading.get_native_id()
    for cpu in sorted(allowed)[:2]:
        monkeypatch.setattr(team, "_current_cpu", lambda cpu=cpu: cpu)
        assert sorted(_sleeping_team_thread_ids()) == sorted(tids)
        for tid in tids:  # as the system left them: the last run's setting (if no piece woke them) undone
            real(tid, allowed)
        team._kept_off.clear()
        calls.clear()
        ran: list = []
        helped = threading.Event()

        def piece(chunk, ran=ran, helped=helped):
            # the caller's pieces wait (up to 5 s) until a team thread has taken one, so that one always does
            ran.append(threading.get_native_id())
            if threading.get_native_id() == caller:
                helped.wait(5)
            else:
                helped.set()

        team.run(piece, list(range(8)), 2)
        assert set(ran) - {caller}, "no team thread took a piece"
        kept_off = {tid for by, tid, cpus in calls if by == caller and cpus == allowed - {cpu}}
        assert kept_off == set(tids), (cpu, calls)
        woken = {by for by, tid, cpus in calls if tid == 0 and cpus == allowed}
        assert woken <= set(tids) and woken >= set(ran) - {caller}, (cpu, calls, ran)
        for tid in woken:
            assert os.sched_getaffinity(tid) == allowed
    # a busy team thread (not in _asleep) is left alone: only the sleeping ones are narrowed (a thread of this
    # test's, waiting on an event, stands in for a sleeping one beside the team's first thread made busy)
    assert sorted(_sleeping_team_thread_ids()) == sorted(tids)
    release = threading.Event()
    stand_in = threading.Thread(target=release.wait, args=(10,))
    stand_in.start()
    calls.clear()
    with team._lock:
        asleep = set(team._asleep)
        team._asleep.discard(tids[0])  # as if it were running a piece
        team._asleep.add(stand_in.native_id)
        team._kept_off.clear()
        try:
            team._keep_off(min(allowed))
        finally:
            team._asleep.clear()
            team._asleep.update(asleep)
    release.set()
    stand_in.join()
    assert {tid for _, tid, _ in calls} == {stand_in.native_id, *tids[1:]}, calls
    for tid in tids:
        real(tid, allowed)
    team._kept_off.clear()
    # the caller pinned to one CPU: nothing to keep the team off, nothing asked
    assert sorted(_sleeping_team_thread_ids()) == sorted(tids)
    one = min(allowed)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {one})
    monkeypatch.setattr(team, "_current_cpu", lambda: one)
    calls.clear()
    team.run(lambda chunk: None, list(range(8)), 2)
    assert not [call for call in calls if call[1] != 0]
    monkeypatch.undo()
    # refused: the call still right, the setting not tried again
    tried = []

    def refuse(tid, cpus):
        tried.append(tid)
        raise PermissionError("not allowed here")

    monkeypatch.setattr(team, "_current_cpu", lambda: min(allowed))
    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    team._kept_off.clear()
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((4, 8, 9, 9)), rng.standard_normal((8, 4, 3, 3))
    for _ in range(2):
        got = tconv.conv_transpose(x, w, stride=2)
        np.testing.assert_allclose(got, naive_conv_transpose(x, w, stride=[2, 2]), atol=1e-10)
        team.run(lambda chunk: None, list(range(8)), 2)
    assert len(tried) == 1 and team._kept_off_refused


@needs_team
def test_concurrent_calls_on_thread_teams_match_the_oracle(monkeypatch):
    """Several user threads calling at once: each gets its own result, and BLAS is restored once all finish."""
    import concurrent.futures

    monkeypatch.setattr(team, "size", lambda: 2)
    monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)
    monkeypatch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 1)
    rng = np.random.default_rng(13)
    w = rng.standard_normal((4, 3, 4, 4))
    xs = [rng.standard_normal((4, 4, 5, 5)) for _ in range(6)]
    before = _blas_threads()
    with concurrent.futures.ThreadPoolExecutor(3) as users:
        results = list(users.map(lambda x: tconv.conv_transpose(x, w, stride=2, padding=1), xs))
    for x, got in zip(xs, results):
        np.testing.assert_allclose(got, naive_conv_transpose(x, w, stride=[2, 2], pads=[(1, 1)] * 2), atol=1e-10)
    assert _blas_threads() == before


@needs_team
@pytest.mark.parametrize("transposed", [True, False])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(transposed=True), configs(transposed=False))
def test_gradients_and_convolutions_on_a_thread_team(transposed, case_t, case_f):
    """The im2col paths (convolution, both gradients) on a two-thread team with tiny blocks, against the
    oracle's adjoint identities; the weight gradient is summed a bin of chunks at a time."""
    case = case_t if transposed else case_f
    assume(case.output_size() is not None)
    case = case.replace(batch=2, batched=True, channels_last=False)  # set, not assumed: filtering half
    runs = []  # the examples away failed hypothesis' health check now and then
    with pytest.MonkeyPatch.context() as patch:
        real_run = team.run
        patch.setattr(team, "size", lambda: 2)
        patch.setattr(team, "run", lambda *a: runs.append(a[2]) or real_run(*a))
        patch.setattr(_tuning, "TEAM_MIN_BYTES", 0)
        patch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)
        patch.setattr(_tuning, "TEAM_CHUNK_BYTES", 2**20)  # whole samples, one per block
        _grads_match(case, "jit_gemm")
    assert runs and set(runs) == {2}


@pytest.mark.parametrize("seed", range(40))
def test_cropped_tap_split_lists_the_taps_inside_the_output(seed):
    """The runs of inputs and their taps that land inside the output, against a count of every (input, tap)."""
    rng = np.random.default_rng(seed)
    n, s, d = (int(v) for v in rng.integers(1, 6, size=3))
    k = int(rng.integers(2, 6))  # a kernel of 1 is never split
    lo, out = int(rng.integers(0, 2 * k * d)), int(rng.integers(1, n * s + k * d))
    axes = geometry.Axes3((1, 1, n), (1, 1, k), (1, 1, s), (1, 1, d), (0, 0, lo), (1, 1, out))
    split = geometry.cropped_tap_split(axes)
    inside = {(j, t) for j in range(n) for t in range(k) if 0 <= j * s + t * d - lo < out}
    if split is None:
        assert len(inside) > (1 - _tuning.CROPPED_TAPS_MIN) * n * k
        return
    axis, runs = split
    assert axis == 2 and runs[0][0] == 0 and runs[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(runs))  # consecutive, covering every input
    listed = {(j, t) for j0, j1, t0, t1 in runs for j in range(j0, j1) for t in range(t0, t1)}
    assert listed == inside


def test_the_pixel_path_splits_only_where_the_skipped_taps_pay_for_the_products():
    """The same cropped geometry is split with many channels and left whole with few: each product the split
    adds costs PRODUCT_CALL_COST, more than the few channels' skipped multiply-adds."""
    few = _spec(True, (2, 8, 4, 4), (8, 8, 3, 3), stride=(2, 2), padding=(1, 1))
    many = _spec(True, (2, 256, 4, 4), (256, 256, 3, 3), stride=(2, 2), padding=(1, 1))
    axes = geometry.axes3(few)
    axis, runs = geometry.cropped_tap_split(axes)
    skipped = (axes.size_in[axis] * axes.kernel[axis] - geometry.pairs_inside(runs)) * 4 * 3  # other axis: 4 x 3
    extra = (len(runs) - 1) * _tuning.PRODUCT_CALL_COST
    assert 2.0 * skipped * 8 * 8 / _tuning.GEMM_RATE < extra < 2.0 * skipped * 256 * 256 / _tuning.GEMM_RATE
    assert geometry.pixel_split(few) is None and geometry.pixel_split(many) == (axis, runs)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "size, kernel, stride, padding, output_padding, dilation",
    [
        ((7, 7), (5, 5), (1, 1), (2, 2), (0, 0), (1, 1)),  # keras-dcgan-1: 17% of the pairs cropped per axis
        ((4, 4), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1)),  # dcgan64-2
        ((5, 6), (3, 3), (2, 1), (5, 1), (1, 0), (2, 1)),  # padding beyond the kernel: inputs with no tap inside
        ((9,), (7,), (3,), (4,), (2,), (1,)),
        ((3, 4, 5), (3, 2, 3), (1, 2, 2), (1, 0, 2), (0, 1, 1), (1, 1, 2)),
    ],
)
def test_pixel_path_computes_only_the_taps_inside_the_output(
    monkeypatch, channels_last, size, kernel, stride, padding, output_padding, dilation
):
    """jit_pixels' products skip the taps cropped by the padding (in channel blocks, under a small chunk
    budget, too): the output against the oracle."""
    rng = np.random.default_rng(12)
    d = len(size)
    x = rng.standard_normal((5, 6, *size)).astype(np.float32)
    w = rng.standard_normal((6, 7, *kernel)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    spec = _spec(
        True, x.shape, w.shape, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation
    )
    monkeypatch.setattr(_tuning, "PRODUCT_CALL_COST", 0.0)  # split these small calls too
    assert geometry.pixel_split(spec) is not None
    expected = naive_conv_transpose(
        x.astype(np.float64),
        w.astype(np.float64),
        b.astype(np.float64),
        stride=list(stride),
        pads=[(p, p) for p in padding],
        output_padding=list(output_padding),
        dilation=list(dilation),
    )
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    for budget in (None, 64 * d * 4):  # the default chunks, then blocks of output channels
        if budget is not None:
            monkeypatch.setattr(_tuning, "CHUNK_BYTES", budget)
        with tconv.use_algorithm("jit_pixels"):
            got = tconv.conv_transpose(
                xin,
                w,
                b,
                stride=stride,
                padding=padding,
                output_padding=output_padding,
                dilation=dilation,
                channels_last=channels_last,
            )
        got = np.moveaxis(got, -1, 1) if channels_last else got
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@needs_jit
@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize(
    "size, kernel, stride, padding, output_padding, dilation, groups",
    [
        ((6, 5), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1),
        ((7, 4), (3, 2), (1, 2), (2, 0), (0, 1), (2, 1), 2),
        ((11,), (5,), (3,), (1,), (2,), (1,), 3),
        ((3, 4, 2), (2, 3, 2), (2, 1, 2), (0, 1, 0), (1, 0, 1), (1, 1, 1), 1),
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_jit_gemm_reads_x_per_sample_or_copied(
    monkeypatch, per_sample, channels_last, size, kernel, stride, padding, output_padding, dilation, groups
):
    """jit_gemm's two ways to multiply x, in either layout: one product per sample reading x in place (by its
    pixel count, channels-first, or by the products' rows), or x copied to one matrix per chunk; both in
    whole-batch chunks and in blocks of output channels, against the oracle."""
    monkeypatch.setattr(_tuning, "PER_SAMPLE_MIN_PIXELS", 1 if per_sample and not channels_last else 10**9)
    monkeypatch.setattr(_tuning, "PER_SAMPLE_MAX_ROWS", 10**9 if per_sample and channels_last else 0)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4, 3 * groups, *size))
    w = rng.standard_normal((3 * groups, 5, *kernel))
    b = rng.standard_normal(5 * groups)
    options = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    expected = naive_conv_transpose(
        x,
        w,
        b,
        stride=list(stride),
        pads=[(p, p) for p in padding],
        output_padding=list(output_padding),
        dilation=list(dilation),
        groups=groups,
    )
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    for budget in (None, 8 * int(np.prod(size)) * int(np.prod(kernel)) * 2):  # whole batch, then channel blocks
        if budget is not None:
            monkeypatch.setattr(_tuning, "CHUNK_BYTES", budget)
        with tconv.use_algorithm("jit_gemm"):
            got = tconv.conv_transpose(xin, w, b, channels_last=channels_last, **options)
        np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)


@pytest.mark.parametrize(
    "algorithm",
    ["taps", "gemm", pytest.param("jit_gemm", marks=needs_jit), pytest.param("jit_pixels", marks=needs_jit)],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_calls_leave_their_inputs_unchanged(algorithm, channels_last):
    """x, the weight, the bias and the output gradient are read in place (no defensive copies), never written."""
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    options = dict(stride=2, padding=1, output_padding=1, channels_last=channels_last)
    copies = [a.copy() for a in (x, w, b)]
    with tconv.use_algorithm(algorithm):
        y = tconv.conv_transpose(x, w, b, **options)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        gy_copy = gy.copy()
        tconv.conv_transpose_grad(gy, x, w, **options)
    for a, before in zip((x, w, b, gy), (*copies, gy_copy), strict=True):
        np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("transposed", [False, True])
def test_gemm_keeps_its_temporaries_within_the_memory_budget(monkeypatch, transposed):
    """One sample's columns over max(MEMORY_BUDGET, 2 x output): the gemm path runs tap by tap (temporaries of
    one tap's product) and still gives the oracle's result; within the budget it keeps its one product."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 4, 3, 3))
    w = rng.standard_normal((4, 2, 8, 8)) if transposed else rng.standard_normal((2, 4, 3, 3))
    fn = tconv.conv_transpose if transposed else tconv.conv
    padding = 4 if transposed else 0  # outputs of 2x2 and 1x1, columns of 64 and 9 taps
    expected = (naive_conv_transpose if transposed else naive_conv)(x, w, pads=[(padding, padding)] * 2)
    taps_calls = []
    real_taps = array_api._taps
    monkeypatch.setattr(array_api, "_taps", lambda *a: taps_calls.append(a) or real_taps(*a))
    with tconv.use_algorithm("gemm"):
        np.testing.assert_allclose(fn(x, w, padding=padding), expected, atol=1e-10)
        assert not taps_calls  # the default budget holds every sample's columns
        monkeypatch.setattr(_tuning, "MEMORY_BUDGET", 1)
        np.testing.assert_allclose(fn(x, w, padding=padding), expected, atol=1e-10)
    assert len(taps_calls) == 1


def test_one_decision_for_the_thread_team(monkeypatch):
    """team_threads with each Cut against the three rules it replaced (the transposed products' channel blocks,
    the im2col's whole samples, the small-batch gradients' pixel blocks), on a grid of call sizes."""
    monkeypatch.setattr(team, "size", lambda: 2)
    minimum, channels_min, chunk = _tuning.TEAM_MIN_BYTES, _tuning.TEAM_MIN_CHANNELS, _tuning.TEAM_CHUNK_BYTES
    for batch, channels, pair in itertools.product((1, 2, 3, 64), (1, 15, 16, 31, 32, 64), (1, 2**12, 2**17, 2**20)):
        big = batch * channels * pair >= minimum
        by_channels = 2 if big and channels >= channels_min * max(1, -(-2 // batch)) else 1
        by_samples = 2 if big and channels >= channels_min and batch >= 2 and channels * pair <= chunk else 1
        by_pixels = 2 if big and channels >= channels_min and batch < 2 else by_samples
        assert schedule.team_threads(batch, channels, pair, schedule.Cut.CHANNELS) == by_channels
        assert schedule.team_threads(batch, channels, pair, schedule.Cut.SAMPLES) == by_samples
        assert schedule.team_threads(batch, channels, pair, schedule.Cut.PIXELS) == by_pixels
    monkeypatch.setattr(team, "size", lambda: 1)
    assert all(schedule.team_threads(64, 64, 2**20, cut) == 1 for cut in schedule.Cut)


def test_the_team_hand_off_is_measured_once_and_sets_the_kernel_threshold(monkeypatch):
    """The kernels go to the team only for work that pays for waking it, by the measured hand-off."""
    from tconv import _tuning
    from tconv.implementations.compiled import team

    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)  # the cost model alone decides
    first = team.handoff_seconds()
    assert 2e-6 <= first <= 1e-3
    assert team.handoff_seconds() == first  # measured once per process
    expected = _tuning.KERNEL_TEAM_PAYBACK * first / _tuning.KERNEL_ELEMENT_SECONDS
    assert team.kernel_team_min_work() == pytest.approx(expected)
    calls = []
    little = expected * _tuning.KERNEL_TEAM_PROBE_FROM / 2  # too little even to measure: one call, inline
    team.ranges(lambda start, stop: calls.append((start, stop)), 8, little)
    assert calls == [(0, 8)] and not team._probes


def test_kernel_calls_near_the_team_threshold_are_measured_alone_and_on_the_team(monkeypatch):
    """Between KERNEL_TEAM_PROBE_FROM and KERNEL_TEAM_TRUST times the hand-off's price a kernel call is measured:
    KERNEL_TEAM_PROBE_SKIP runs the estimate's way (the team from the hand-off's price up), then alone and on the
    team in turn, and from then on the faster way (the team only below KERNEL_TEAM_MEASURED_SHARE of the time
    alone); outside that band the estimate decides unmeasured. Every run covers all the jobs, once each."""
    import threading
    import time

    from tconv import _tuning
    from tconv.implementations.compiled import team

    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "threads", lambda: 2)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 1000.0)
    monkeypatch.setattr(team, "_probes", {})
    jobs, skip, probes = 8, _tuning.KERNEL_TEAM_PROBE_SKIP, _tuning.KERNEL_TEAM_PROBES

    def runs(per_job: float, per_call: float, work: float, calls: int) -> list[list[tuple[int, int]]]:
        """The ranges each of ``calls`` calls ran (each run sleeps per job and per range)."""
        out: list[list[tuple[int, int]]] = []
        lock = threading.Lock()

        def kernel(start: int, stop: int) -> None:
            time.sleep(per_call + per_job * (stop - start))
            with lock:
                out[-1].append((start, stop))

        for _ in range(calls):
            out.append([])
            team.ranges(kernel, jobs, work)
            assert [j for a, b in sorted(out[-1]) for j in range(a, b)] == list(range(jobs))  # every job, once
        return out

    # work that halves on two threads, estimated below the hand-off's price: alone for the skipped runs, then
    # alone and teamed in turn, then the team
    halves = runs(per_job=0.004, per_call=0.0, work=500.0, calls=skip + 2 * probes + 2)
    assert all(r == [(0, jobs)] for r in halves[:skip])
    assert [len(r) > 1 for r in halves[skip : skip + 2 * probes]] == [False, True] * probes
    assert all(len(r) > 1 for r in halves[-2:])
    assert team._probes[next(k for k in team._probes if k[3] == 500.0)] is True
    # a cost a range, whatever its length, estimated above the price: the skipped runs on the team, then the
    # ranges measured dearer than the one call alone, which is kept
    fixed = runs(per_job=0.0, per_call=0.004, work=3000.0, calls=skip + 2 * probes + 2)
    assert all(len(r) > 1 for r in fixed[:skip])
    assert [len(r) > 1 for r in fixed[skip : skip + 2 * probes]] == [False, True] * probes
    assert all(r == [(0, jobs)] for r in fixed[-2:])
    assert team._probes[next(k for k in team._probes if k[3] == 3000.0)] is False
    # outside the band the estimate decides at once, and nothing is recorded
    assert all(len(r) > 1 for r in runs(0.0, 0.0, 1000.0 * _tuning.KERNEL_TEAM_TRUST, 2))
    assert all(r == [(0, jobs)] for r in runs(0.0, 0.0, 1000.0 * _tuning.KERNEL_TEAM_PROBE_FROM / 2, 2))
    assert len(team._probes) == 2


@needs_jit
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("budget", [None, 200])
@pytest.mark.parametrize("groups", [1, 2])
def test_forward_convolution_writes_its_product_into_the_result_or_reused_buffers(monkeypatch, batch, budget, groups):
    """jit_gemm's forward convolution: one channels-first sample's product goes straight into the result; a
    batch goes through the thread's reused buffers (called twice, so the second call reuses, and must fully
    overwrite, the first one's), and with a small CHUNK_BYTES in channel blocks summed in order (in fresh
    arrays then, as every product exceeds that budget)."""
    rng = np.random.default_rng(batch * 10 + groups)
    x = rng.standard_normal((batch, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    if budget is not None:
        monkeypatch.setattr(_tuning, "CHUNK_BYTES", budget)
    expected = naive_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride=[1, 2],
                          pads=[(1, 1), (0, 2)], groups=groups)  # fmt: skip
    with tconv.use_algorithm("jit_gemm"):
        for _ in range(2):
            got = tconv.conv(x, w, b, stride=(1, 2), padding=[(1, 1), (0, 2)], groups=groups)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
            got = tconv.conv(np.moveaxis(x, 1, -1), w, b, stride=(1, 2), padding=[(1, 1), (0, 2)], groups=groups,
                             channels_last=True)  # fmt: skip
            np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, rtol=1e-4, atol=1e-4)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_forward_convolution_of_a_small_batch_runs_in_pixel_blocks_on_the_team(
    monkeypatch, channels_last, groups, dilation
):
    """jit_gemm's convolution of a batch smaller than the team: blocks of output pixels on the team (several
    blocks a sample), each gathered, multiplied and written into its place, against the oracle."""
    rng = np.random.default_rng(groups * 10 + dilation)
    x = rng.standard_normal((1, 6, 13, 11)).astype(np.float32)
    w = rng.standard_normal((9, 6 // groups, 3, 2)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    options = dict(stride=(2, 1), padding=[(1, 2), (0, 1)], dilation=dilation, groups=groups)
    expected = naive_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride=[2, 1],
                          pads=[(1, 2), (0, 1)], dilation=[dilation] * 2, groups=groups)  # fmt: skip
    monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 1)
    monkeypatch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 6 * 6 * 4 * 5)  # about five pixels a block
    blocks = []
    real_run = team.run
    monkeypatch.setattr(
        team, "run", lambda work, pieces, threads: blocks.append(list(pieces)) or real_run(work, pieces, threads)
    )
    saved = team.threads()
    kernels.set_threads(2)
    try:
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        with tconv.use_algorithm("jit_gemm"):
            got = tconv.conv(xin, w, b, channels_last=channels_last, **options)
    finally:
        kernels.set_threads(saved)
    got = np.moveaxis(got, -1, 1) if channels_last else got
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert len(blocks) == 1 and len(blocks[0]) > 2  # one team run, several blocks of the sample's pixels


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [1, 4])
def test_the_direct_convolution_matches_the_oracle_at_every_stride(channels_last, groups):
    """jit_direct forced on convolutions (the phase-split direct sum): strides 1 to 5, also longer than the
    kernel, with dilation and asymmetric padding (beyond d*(k-1) too), 1-D to 3-D, batched and not, with and
    without a bias, float64 and float32, against the oracle."""
    rng = np.random.default_rng(groups)
    for spatial, kernel, stride, dilation, pads in (
        ((11,), (4,), (1,), (2,), [(6, 0)]),
        ((17,), (3,), (5,), (1,), [(4, 2)]),
        ((9, 7), (3, 2), (2, 3), (1, 3), [(2, 0), (1, 3)]),
        ((12, 10), (2, 2), (4, 3), (1, 1), [(0, 3), (2, 2)]),
        ((5, 6, 4), (2, 3, 2), (1, 2, 1), (1, 1, 2), [(1, 1), (0, 2), (2, 1)]),
        ((7, 6, 9), (3, 1, 2), (2, 3, 4), (2, 1, 1), [(3, 0), (0, 0), (1, 1)]),
    ):
        x = rng.standard_normal((2, 8, *spatial))
        w = rng.standard_normal((12, 8 // groups, *kernel))
        b = rng.standard_normal(12)
        expected = naive_conv(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        options = dict(stride=stride, padding=pads, dilation=dilation, groups=groups, channels_last=channels_last)
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv(xin, w, b, **options)
            single = tconv.conv(xin[0], w, b, **options)
            no_bias = tconv.conv(xin.astype(np.float32), w.astype(np.float32), **options)
        if channels_last:
            got, single, no_bias = np.moveaxis(got, -1, 1), np.moveaxis(single, -1, 0), np.moveaxis(no_bias, -1, 1)
        np.testing.assert_allclose(got, expected, atol=1e-10)
        np.testing.assert_allclose(single, expected[0], atol=1e-10)
        assert no_bias.dtype == np.float32
        np.testing.assert_allclose(no_bias, expected - b.reshape(12, *[1] * len(spatial)), rtol=1e-4, atol=1e-4)


@needs_jit
@pytest.mark.parametrize("staged", [False, True])
def test_the_direct_convolution_channels_last_staged_or_in_place_matches_the_oracle(monkeypatch, staged):
    """A channels-last x in channels-last memory, the direct sum with x, the output and the output gradient
    copied channels-first (:func:`.workspace.staged`: every array, TRANSPOSE_TILES_MIN_BYTES 0) or read and
    written a channel count apart (none): the forward convolution, the direct weight gradient (by the
    oracle's adjoint identity) and a transposed convolution's own direct sum, 1-D to 3-D, groups 1 and 3."""
    from tconv.implementations.compiled import direct_conv

    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_BYTES", 0 if staged else 2**62)
    rng = np.random.default_rng(21)
    for spatial, kernel, stride, pads, groups in (
        ((9, 7), (3, 2), (2, 1), [(1, 0), (2, 1)], 1),
        ((5, 6, 4), (2, 3, 2), (1, 2, 1), [(1, 1), (0, 2), (2, 1)], 3),
        ((17,), (3,), (5,), [(4, 2)], 1),
    ):
        x = rng.standard_normal((2, 6, *spatial))
        w = rng.standard_normal((9, 6 // groups, *kernel))
        b = rng.standard_normal(9)
        expected = naive_conv(x, w, b, stride=list(stride), pads=pads, groups=groups)
        x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        assert workspace.staged(x_last) == staged
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv(x_last, w, b, stride=stride, padding=pads, groups=groups, channels_last=True)
        assert got.flags.c_contiguous
        np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10)
        gy = rng.standard_normal(expected.shape)
        spec = _spec(False, x.shape, w.shape, groups=groups, stride=stride, padding=pads)
        dw = direct_conv.weight_grad(x_last, np.ascontiguousarray(np.moveaxis(gy, 1, -1)), spec, True)
        v = rng.standard_normal(w.shape)
        along_v = np.vdot(naive_conv(x, v, None, stride=list(stride), pads=pads, groups=groups), gy)
        np.testing.assert_allclose(np.vdot(dw, v), along_v, rtol=1e-9)
        # the transposed direct sum (its own kernel, at a stride above one) staged the same way
        wt = rng.standard_normal((6, 9 // groups, *kernel))
        options = dict(stride=[s + 1 for s in stride], padding=pads, groups=groups)
        expected = naive_conv_transpose(x, wt, b, stride=options["stride"], pads=pads, groups=groups)
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv_transpose(x_last, wt, b, channels_last=True, **options)
        assert got.flags.c_contiguous
        np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10)


def _tiles_forced_on_a_team(monkeypatch) -> list:
    """The forward direct sum forced into tiles, whatever the estimates, on a team of three (``team.set_threads(3)``,
    undone after the test) with every call's ranges on the team; returns the list a spy fills with the spec of each
    call the tiles ran."""
    from tconv.implementations.compiled import direct_conv

    monkeypatch.setattr(direct_conv, "tiles_cheaper", lambda spec: True)
    monkeypatch.setattr(team, "_threads", 3)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    runs: list = []
    tiles = direct_conv._run_tiles
    monkeypatch.setattr(direct_conv, "_run_tiles", lambda *args: (runs.append(args[2]), tiles(*args))[1])
    return runs


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("tile_bytes", "chunk", "sub_bytes"), [(64, 32, 2**17), (200, 5, 1), (64, 7, 2048)])
def test_the_tiled_direct_convolution_matches_the_oracle(monkeypatch, channels_last, tile_bytes, chunk, sub_bytes):
    """The forward direct sum in tiles of the wide plane (:func:`.direct_conv._run_tiles`), with tiles so short
    (16 elements, or 25 and 50 evened out in multiples of 16) that their edges fall at every place in the wide
    rows, the (input channel, tap) terms in chunks of 32, seven or five (a chunk's end inside an input channel's
    taps, the sums carried in memory between chunks), a group's output channels a tile holds all, eight (float64;
    sixteen float32) or four at a time (two four-channel blocks in one share, a group's last channels short of
    four one at a time): strides 1 to 3, dilation, asymmetric padding, 1-D to 3-D,
    groups, output channels in fours and beyond them (4, 5, 6, 9, 13 a group), output rows shorter and longer than a
    vector, a batch of one (each sample cut into blocks of channels for a team of three) and of three, float64
    and float32, every call's ranges on the team (some starting inside a sample's blocks), a transposed stride-1
    call (its forward twin), against the oracle; and the spy shows the tiles ran."""
    from tconv.implementations.compiled import direct_conv

    monkeypatch.setattr(_tuning, "DIRECT_TILE_BYTES", tile_bytes)
    monkeypatch.setattr(direct_conv, "CHUNK_TERMS", chunk)
    monkeypatch.setattr(direct_conv, "SUB_BYTES", sub_bytes)
    runs = _tiles_forced_on_a_team(monkeypatch)
    rng = np.random.default_rng(tile_bytes)
    for spatial, kernel, stride, dilation, pads, groups, cg_out, batch in (
        ((70,), (3,), (1,), (1,), [(1, 1)], 1, 5, 1),
        ((170,), (4,), (3,), (2,), [(4, 0)], 2, 4, 3),
        ((9, 11), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 1, 9, 1),
        ((24, 20), (3, 2), (2, 3), (1, 2), [(2, 0), (1, 3)], 2, 6, 3),
        ((5, 6, 7), (3, 2, 3), (1, 2, 1), (1, 1, 2), [(1, 1), (0, 2), (2, 1)], 1, 4, 1),
        ((6, 5, 8), (2, 3, 2), (2, 1, 2), (1, 1, 1), [(0, 1), (1, 1), (1, 0)], 3, 5, 3),
        ((29, 31), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 1, 13, 2),  # three four-channel blocks and one
    ):
        c_in = 3 * groups
        x = rng.standard_normal((batch, c_in, *spatial))
        w = rng.standard_normal((cg_out * groups, 3, *kernel))
        b = rng.standard_normal(cg_out * groups)
        expected = naive_conv(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
        xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
        options = dict(stride=stride, padding=pads, dilation=dilation, groups=groups, channels_last=channels_last)
        runs.clear()
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv(xin, w, b, **options)
            single = tconv.conv(xin.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **options)
        assert len(runs) == 2, (spatial, runs)
        if channels_last:
            got, single = np.moveaxis(got, -1, 1), np.moveaxis(single, -1, 1)
        np.testing.assert_allclose(got, expected, atol=1e-10)
        assert single.dtype == np.float32
        np.testing.assert_allclose(single, expected, rtol=1e-4, atol=1e-4)
    # a transposed convolution at stride 1 runs its forward twin's direct sum, in tiles too
    x = rng.standard_normal((2, 4, 13, 12))
    wt = rng.standard_normal((4, 6, 3, 4))
    runs.clear()
    with tconv.use_algorithm("jit_direct"):
        got = tconv.conv_transpose(x, wt, padding=[(1, 2), (0, 1)])
    assert runs
    np.testing.assert_allclose(got, naive_conv_transpose(x, wt, None, pads=[(1, 2), (0, 1)]), atol=1e-10)


@needs_jit
@pytest.mark.parametrize("stride", [1, 2])
def test_the_tiles_write_output_rows_of_every_length(monkeypatch, stride):
    """The tiled direct sum writes each output row's valid columns with the bias: as 256-bit vectors where the run
    is at least one long (whatever width the tiles sum at), one element at a time below that. Output rows of every
    length from 1 to 40 and of 64 (shorter than a 256-bit or a 512-bit vector, between them, a vector and one,
    several), one and three rows a plane (runs cut by the tiles' edges too), five output channels (a block
    of four and one alone), float64 and float32, channels first, against the oracle; the spy shows the tiles
    ran."""
    runs = _tiles_forced_on_a_team(monkeypatch)
    rng = np.random.default_rng(stride)
    for length, rows in itertools.product((*range(1, 41), 64), (1, 3)):
        n = (length - 1) * stride + 1  # a 3-wide kernel with padding 1 keeps (stride 1) or halves the row
        x = rng.standard_normal((2, 2, rows, n))
        w = rng.standard_normal((5, 2, 1, 3))
        b = rng.standard_normal(5)
        pads = [(0, 0), (1, 1)]
        expected = naive_conv(x, w, b, stride=[1, stride], pads=pads)
        assert expected.shape[-1] == length
        runs.clear()
        with tconv.use_algorithm("jit_direct"):
            for dtype, atol in ((np.float64, 1e-10), (np.float32, 1e-4)):
                got = tconv.conv(x.astype(dtype), w.astype(dtype), b.astype(dtype), stride=(1, stride), padding=pads)
                np.testing.assert_allclose(got, expected, atol=atol, rtol=atol)
        assert len(runs) == 2, (length, runs)


@needs_jit
@pytest.mark.parametrize(("chunk", "tile_bytes"), [(128, 4096), (5, 4096), (128, 600)])
def test_the_tiles_eight_channel_blocks_match_the_oracle(monkeypatch, chunk, tile_bytes):
    """With AVX-512, the tiled direct sum's channels go eight at a time (blocks of three vectors of wide elements;
    a tile's last one or two vectors a vector a block, or one more block of three where more than two are left),
    then four, then one: wide planes of every length from 3 to 101 and a few longer (every remainder after the
    blocks of three, float32's 16 lanes and float64's 8), 8, 16 and 21 output channels (two blocks of eight, a
    block of four and one channel), 2-D and strided, the terms whole and in chunks of five, tiles of 4096 bytes
    and of 600 (several a plane), float64 and float32, every call's ranges on a team of three (12 samples, so that
    no sample's channels are cut into blocks of four for the team), against the oracle. On a machine without
    AVX-512 the same calls run the blocks of four."""
    from tconv.implementations.compiled import direct_conv

    monkeypatch.setattr(direct_conv, "CHUNK_TERMS", chunk)
    monkeypatch.setattr(_tuning, "DIRECT_TILE_BYTES", tile_bytes)
    runs = _tiles_forced_on_a_team(monkeypatch)
    rng = np.random.default_rng(chunk + tile_bytes)
    layers = [((n,), (3,), (1,), [(1, 1)], 8) for n in range(1, 100)]  # a wide plane of n + 2
    layers += [((n,), (3,), (1,), [(1, 1)], 21) for n in (46, 61, 78, 79, 150, 333)]
    layers += [((13, 17), (3, 3), (1, 1), [(1, 1), (1, 1)], 16), ((20, 30), (4, 4), (2, 2), [(1, 1), (1, 1)], 21)]
    for spatial, kernel, stride, pads, c_out in layers:
        x = rng.standard_normal((12, 3, *spatial))  # 12 samples: a job a sample's channels whole (no cut by fours)
        w = rng.standard_normal((c_out, 3, *kernel))
        b = rng.standard_normal(c_out)
        expected = naive_conv(x, w, b, stride=list(stride), pads=pads)
        runs.clear()
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv(x, w, b, stride=stride, padding=pads)
            single = tconv.conv(
                x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), stride=stride, padding=pads
            )
        assert len(runs) == 2, (spatial, runs)
        np.testing.assert_allclose(got, expected, atol=1e-10, err_msg=f"{spatial} {c_out}")
        np.testing.assert_allclose(single, expected, rtol=1e-4, atol=1e-4, err_msg=f"{spatial} {c_out}")


@needs_jit
@pytest.mark.parametrize("chunk", [128, 5])
def test_the_tiles_one_channel_register_blocks_match_the_oracle(monkeypatch, chunk):
    """The tiled direct sum's channels summed one at a time (a group's channels short of four, every channel of a
    depthwise layer), eight vectors of sums a block in registers and the tile's last blocks two vectors each: wide
    planes of 3 to about 1500 elements (no eight-vector block; one and a tail; several, the last one reaching past
    the tile's end; two tiles), one to three output channels a group and seven (one four-channel block and three
    single channels), depthwise, strided, dilated and 1-D to 3-D, the terms whole and in chunks of five (a
    chunk's end inside an input channel's taps), float64 and float32, every call's ranges on a team of three,
    against the oracle; the spy shows the tiles ran. The vector loads are not bounds-checked, so the test also
    checks the geometry's bound they rely on: every tap's phase row, read a wide plane long, ends within one input
    channel's phases."""
    from tconv.implementations.compiled import direct_conv

    monkeypatch.setattr(direct_conv, "CHUNK_TERMS", chunk)
    runs = _tiles_forced_on_a_team(monkeypatch)
    rng = np.random.default_rng(chunk)
    for spatial, kernel, stride, dilation, pads, groups, c_in, c_out in (
        ((3,), (3,), (1,), (1,), [(1, 1)], 1, 4, 1),  # a wide plane of 3
        ((70,), (3,), (1,), (1,), [(1, 1)], 1, 6, 2),  # 70: one block of 64 and a tail of 6
        ((300,), (5,), (2,), (1,), [(2, 1)], 1, 3, 3),  # strided: 150
        ((33, 29), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 1, 5, 7),  # a block of four channels and three
        ((23, 21), (5, 3), (2, 1), (1, 2), [(2, 0), (1, 3)], 8, 8, 8),  # depthwise, strided and dilated
        ((9, 10, 11), (3, 2, 3), (1, 2, 1), (1, 1, 2), [(1, 1), (0, 2), (2, 1)], 6, 6, 6),  # depthwise 3-D
        ((40, 38), (2, 2), (1, 1), (1, 1), [(0, 0), (0, 0)], 2, 4, 4),  # two output channels a group
    ):
        x = rng.standard_normal((2, c_in, *spatial))
        w = rng.standard_normal((c_out, c_in // groups, *kernel))
        b = rng.standard_normal(c_out)
        expected = naive_conv(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
        options = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
        runs.clear()
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv(x, w, b, **options)
            single = tconv.conv(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **options)
        assert len(runs) == 2, (spatial, runs)
        phases = direct_conv.direct_conv_geometry(geometry.axes3(runs[0]))
        assert int(phases.taps.max()) + phases.wide <= phases.size, spatial
        np.testing.assert_allclose(got, expected, atol=1e-10)
        assert single.dtype == np.float32
        np.testing.assert_allclose(single, expected, rtol=1e-4, atol=1e-4)


@needs_jit
@pytest.mark.parametrize("stride", [2, 3, 4])
def test_the_direct_sums_strided_phase_copies_match_the_oracle(monkeypatch, stride):
    """The direct sum copies x into its phases; at a stride of 2 to 4 along the last axis (an element stride of 2
    to 4: channels-first, channels-last with one channel, or with two channels at stride 2; and at stride 1 with
    two or three channels) as whole vectors of every second, third or fourth element (``simd.vload_every``), the
    run's last elements one at a time: rows of every length from 1 to 40 and of 64 and 100 (each phase's run
    shorter than a vector, a vector and one, several), padded on either side or not, float64 and float32, in
    tiles and in whole planes, against the oracle."""
    from tconv.implementations.compiled import direct_conv

    rng = np.random.default_rng(stride)
    for n, tiles in itertools.product((*range(1, 41), 64, 100), (True, False)):
        monkeypatch.setattr(direct_conv, "tiles_cheaper", lambda spec, tiles=tiles: tiles)
        for pads, c_in in (((0, 0), 1), ((2, 1), 2), ((1, 3), 3)):
            x = rng.standard_normal((2, c_in, 3, n))
            w = rng.standard_normal((5, c_in, 2, 3))
            padding = [(1, 0), pads]
            if (n + sum(pads) - 3) // stride + 1 < 1:
                continue
            expected = naive_conv(x, w, None, stride=[1, stride], pads=padding)
            with tconv.use_algorithm("jit_direct"):
                for dtype, atol in ((np.float64, 1e-10), (np.float32, 1e-4)):
                    got = tconv.conv(x.astype(dtype), w.astype(dtype), stride=(1, stride), padding=padding)
                    np.testing.assert_allclose(got, expected, atol=atol, rtol=atol)
                    # channels-last: one channel reads with the stride, more than one with the channel count
                    last = np.ascontiguousarray(np.moveaxis(x, 1, -1)).astype(dtype)
                    got = tconv.conv(last, w.astype(dtype), stride=(1, stride), padding=padding, channels_last=True)
                    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=atol, rtol=atol)
            if c_in > 1 and stride == 2:  # stride 1 over a channels-last row of c_in channels: an element stride
                expected = naive_conv(x, w, None, stride=[1, 1], pads=padding)  # of c_in (once, not per stride)
                last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
                with tconv.use_algorithm("jit_direct"):
                    for dtype, atol in ((np.float64, 1e-10), (np.float32, 1e-4)):
                        got = tconv.conv(last.astype(dtype), w.astype(dtype), padding=padding, channels_last=True)
                        np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=atol, rtol=atol)


@needs_jit
def test_phases_beyond_the_cache_budget_run_in_whole_planes(monkeypatch):
    """A team's phases above ``DIRECT_TILE_CACHE_BYTES`` (they would spill from the last-level cache, and every
    four output channels read them again), counted for two threads at least, run the whole-plane kernel; at the
    budget, in tiles; teams of one to three, both against the oracle."""
    from tconv.implementations.compiled import direct_conv

    monkeypatch.setattr(_tuning, "DIRECT_TILE_BYTES", 64)
    runs = []
    tiles = direct_conv._run_tiles
    monkeypatch.setattr(direct_conv, "_run_tiles", lambda *args: (runs.append(args[2]), tiles(*args))[1])
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 6, 19, 17)), rng.standard_normal((8, 6, 3, 3))
    spec = tconv.ConvSpec.build(
        transposed=False, input_size=(19, 17), kernel_size=(3, 3), in_channels=6, out_channels=8, stride=2, padding=1
    )
    held = 6 * direct_conv.direct_conv_geometry(geometry.axes3(spec)).size * x.itemsize  # one thread's phases
    expected = naive_conv(x, w, None, stride=[2, 2], pads=[(1, 1), (1, 1)])
    for threads in (1, 2, 3):
        monkeypatch.setattr(team, "_threads", threads)
        need = held * max(2, threads)
        for budget, tiled in ((need, True), (need - 1, False)):
            monkeypatch.setattr(_tuning, "DIRECT_TILE_CACHE_BYTES", budget)
            runs.clear()
            with tconv.use_algorithm("jit_direct"):
                got = tconv.conv(x, w, stride=2, padding=1)
            assert bool(runs) == tiled, (budget, threads)
            np.testing.assert_allclose(got, expected, atol=1e-10)


@needs_jit
def test_tiles_run_where_the_cost_model_prices_them_lower(monkeypatch):
    """The forward direct sum runs in tiles where the cost model prices them at most the whole planes
    (:func:`.direct_conv.tiles_cheaper`), however short the wide plane (one of four elements over 48 input
    channels: the whole planes' passes, one a tap and channel, cost more than the blocks summed past the plane's
    end) and whatever the output channels a group (three, or two, summed one at a time); else the whole-plane
    kernel (a depthwise layer of three taps); all against the oracle, channels first and last, grouped and
    dilated."""
    from tconv.implementations.compiled import direct_conv

    runs = []
    tiles = direct_conv._run_tiles
    monkeypatch.setattr(direct_conv, "_run_tiles", lambda *args: (runs.append(args[2]), tiles(*args))[1])
    rng = np.random.default_rng(11)
    for spatial, kernel, dilation, groups, c_in, c_out, tiled in (
        ((37,), (2,), (3,), 1, 5, 8, True),
        ((20,), (3,), (1,), 2, 6, 8, True),  # a wide plane of 19: one block and a part
        ((6,), (4,), (1,), 1, 48, 64, True),  # a wide plane of 4
        ((9, 11), (1, 2), (1, 2), 1, 3, 8, False),  # priced lower in whole planes
        ((37,), (3,), (1,), 1, 5, 3, True),  # three output channels, one at a time in registers
        ((6,), (4,), (1,), 1, 48, 2, True),  # two output channels of 192 terms (channels-first)
        ((37,), (3,), (1,), 8, 8, 8, False),  # depthwise, three terms a channel: whole planes
    ):
        x = rng.standard_normal((3, c_in, *spatial))
        w = rng.standard_normal((c_out, c_in // groups, *kernel))
        b = rng.standard_normal(c_out)
        pads = [(1, 0)] * len(spatial)
        spec = tconv.ConvSpec.build(
            transposed=False, input_size=spatial, kernel_size=kernel, in_channels=c_in, out_channels=c_out,
            padding=pads, dilation=dilation, groups=groups,
        )  # fmt: skip
        assert direct_conv.tiles_cheaper(spec) == tiled
        expected = naive_conv(x, w, b, stride=[1] * len(spatial), pads=pads, dilation=list(dilation), groups=groups)
        for channels_last in (False, True):
            xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
            runs.clear()
            with tconv.use_algorithm("jit_direct"):
                got = tconv.conv(xin, w, b, padding=pads, dilation=dilation, groups=groups, channels_last=channels_last)
            # channels-last, few output channels over many inputs run as dot products along the channels instead
            dots = channels_last and direct_conv.dots_preferred(spec)
            assert bool(runs) == (tiled and not dots), (spatial, kernel, groups, channels_last)
            np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)


def _dot_products_spy(monkeypatch):
    """The specs :func:`tconv.implementations.compiled.channel_dots.conv` runs, listed as it runs them."""
    from tconv.implementations.compiled import channel_dots

    runs = []
    real = channel_dots.conv
    monkeypatch.setattr(channel_dots, "conv", lambda x, w, b, spec: (runs.append(spec), real(x, w, b, spec))[1])
    return runs


@needs_jit
@pytest.mark.parametrize("team_size", [1, 3])
def test_channels_last_dot_products_match_the_oracle(monkeypatch, team_size):
    """``jit_direct`` on a channels-last x with few output channels a group over many input channels sums dot
    products along the channels (:mod:`.channel_dots`): 1-3-D, strides, dilations (the taps along the last axis
    one run, or one run a tap where dilated or grouped), asymmetric and large padding (taps that meet no input),
    groups, a bias or none, float32 and float64; x contiguous, a transposed view (copied) and a crop of a larger
    batch (read through its strides); every call's ranges on a team of ``team_size``; a stride-1 transposed
    convolution through its forward twin; against the oracle, forced and chosen by the planner."""
    from tconv.implementations.compiled import direct_conv

    runs = _dot_products_spy(monkeypatch)
    monkeypatch.setattr(team, "_threads", team_size)  # team.set_threads(team_size), undone after the test
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)  # every call's ranges on the team
    rng = np.random.default_rng(23)
    cases = (  # spatial, kernel, stride, dilation, pads, c_in, c_out, groups
        ((19,), (8,), (1,), (1,), [(3, 3)], 151, 3, 1),
        ((23,), (3,), (2,), (2,), [(0, 4)], 80, 5, 1),
        ((9, 11), (3, 3), (1, 1), (1, 1), [(1, 1), (2, 0)], 72, 6, 1),
        ((12, 10), (5, 3), (2, 3), (1, 2), [(4, 2), (1, 1)], 64, 4, 1),
        ((8, 9), (3, 3), (1, 2), (1, 1), [(1, 1), (1, 1)], 192, 4, 2),  # grouped: one run a tap
        ((5, 6, 7), (3, 2, 3), (1, 2, 1), (1, 1, 1), [(1, 1), (0, 1), (1, 1)], 70, 2, 1),
        ((4, 4), (9, 9), (2, 2), (1, 1), [(4, 4), (4, 4)], 100, 1, 1),  # most taps meet only padding
    )
    for spatial, kernel, stride, dilation, pads, c_in, c_out, groups in cases:
        for dtype in (np.float64, np.float32):
            larger = rng.standard_normal((3, *(n + 3 for n in spatial), c_in)).astype(dtype)
            crop = larger[(slice(None), *(slice(1, 1 + n) for n in spatial))]  # channels-last, gaps between rows
            x = np.ascontiguousarray(np.moveaxis(crop, -1, 1))
            w = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype)
            b = rng.standard_normal(c_out).astype(dtype) if dtype == np.float64 else None
            expected = naive_conv(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
            options = dict(stride=stride, padding=pads, dilation=dilation, groups=groups, channels_last=True)
            spec = tconv.ConvSpec.build(
                transposed=False, input_size=spatial, kernel_size=kernel, in_channels=c_in, out_channels=c_out,
                stride=stride, padding=pads, dilation=dilation, groups=groups,
            )  # fmt: skip
            assert direct_conv.dots_preferred(spec), (spatial, kernel)
            assert not crop.flags.c_contiguous
            views = (np.ascontiguousarray(crop), np.moveaxis(x, 1, -1), crop)  # the second's channels strided
            tolerance = 1e-10 if dtype == np.float64 else 2e-4
            for xin in views:
                runs.clear()
                with tconv.use_algorithm("jit_direct"):
                    got = tconv.conv(xin, w, b, **options)
                assert runs == [spec]
                np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=tolerance, rtol=tolerance)
            got = tconv.conv(views[0], w, b, **options)  # the planner's choice (a cut of the dead taps, say)
            np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=tolerance, rtol=tolerance)
    # a stride-1 transposed convolution whose forward twin runs as dot products
    x = rng.standard_normal((3, 96, 9, 9))
    w = rng.standard_normal((96, 2, 3, 3))
    spec = tconv.ConvSpec.build(
        transposed=True, input_size=(9, 9), kernel_size=(3, 3), in_channels=96, out_channels=2, padding=1
    )
    twin = algorithms.direct_twin(spec)
    assert twin is not None and direct_conv.dots_preferred(twin)
    assert algorithms.JitDirect().cost(spec, channels_last=True) == direct_conv.cost(twin, channels_last=True)
    runs.clear()
    with tconv.use_algorithm("jit_direct"):
        got = tconv.conv_transpose(np.moveaxis(x, 1, -1), w, padding=1, channels_last=True)
    assert runs == [twin]
    expected = naive_conv_transpose(x, w, stride=[1, 1], pads=[(1, 1)] * 2, output_padding=[0, 0])
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10)


def _blocked_spy(monkeypatch):
    """The layouts :func:`tconv.implementations.compiled.blocked.conv` runs, listed as it runs them."""
    from tconv.implementations.compiled import blocked

    runs = []
    real = blocked.conv
    monkeypatch.setattr(blocked, "conv", lambda x, w, b, spec, last: (runs.append(last), real(x, w, b, spec, last))[1])
    return runs


@needs_jit
@pytest.mark.parametrize("padded", [False, True])
def test_register_blocks_of_every_row_length_match_the_oracle(monkeypatch, padded):
    """``jit_blocked`` forced on output rows of every length from 1 to 40 and of 64, so that a row's interior
    holds no block, blocks of four only, one block of eight (with 512-bit vectors) and four or fewer left, several:
    x read as it is (the border's pixels one at a time) and copied into a zero-padded buffer (every row's last
    pixels as a block of four; with 512-bit vectors a row of five to seven pixels as a block of eight), channels
    first and last, 33 output channels (a whole block and a partial one at 16
    lanes, one and a partial at 32), float32 and float64, against the oracle."""
    from tconv.implementations.compiled import blocked

    runs = _blocked_spy(monkeypatch)
    monkeypatch.setattr(blocked, "_costs", lambda spec, last: (1.0, 0.0) if padded else (0.0, 1.0))
    rng = np.random.default_rng(8)
    w = rng.standard_normal((33, 3, 2, 3))
    b = rng.standard_normal(33)
    for length in (*range(1, 41), 64):
        x = rng.standard_normal((2, 3, 3, length))
        expected = naive_conv(x, w, b, pads=[(0, 1), (1, 1)])
        for channels_last, dtype, tolerance in ((False, np.float64, 1e-10), (True, np.float32, 1e-4)):
            xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
            with tconv.use_algorithm("jit_blocked"):
                got = tconv.conv(
                    xin.astype(dtype), w.astype(dtype), b.astype(dtype), padding=[(0, 1), (1, 1)],
                    channels_last=channels_last,
                )  # fmt: skip
            got = np.moveaxis(got, -1, 1) if channels_last else got
            np.testing.assert_allclose(got, expected, atol=tolerance, rtol=tolerance, err_msg=f"{length}")
    assert len(runs) == 2 * 41


@needs_jit
@pytest.mark.parametrize("team_size", [1, 3])
@pytest.mark.parametrize("padded", [False, True])
def test_register_blocked_convolution_matches_the_oracle(monkeypatch, request, team_size, padded):
    """``jit_blocked`` (:mod:`.blocked`) forced: 1-3-D, strides, dilations, asymmetric padding and kernels larger than x
    (pixels a tap at a time at the border, taps that meet only padding), groups, output channels that fill no whole
    block (the row buffer), blocks of one vector (a group's output channels fit one) and of two, few and many input
    channels (the table of offsets, the loops a run), a bias or none, float32 and float64, both layouts; x contiguous, a
    crop of a larger array and a transposed view (read in place channels-last, copied channels-last in pieces of a few
    samples channels-first), or (``padded``) x copied into a zero-padded buffer in pieces of a few samples, whatever its
    layout (no border; a row's last pixels a block of four); every call's ranges on a team of ``team_size``, each block
    of output channels run over three jobs in turn (the last run of a range shorter); against the oracle."""
    from tconv.implementations.compiled import blocked

    runs = _blocked_spy(monkeypatch)
    monkeypatch.setattr(_tuning, "BLOCKED_TOGETHER_JOBS", 3)
    blocked._plan.cache_clear()  # the plans are made again with three jobs in turn, and after the test without
    request.addfinalizer(blocked._plan.cache_clear)
    monkeypatch.setattr(blocked, "_costs", lambda spec, last: (1.0, 0.0) if padded else (0.0, 1.0))
    pieces, widths = [], set()  # widths: (dtype, blocks of one vector) pairs run
    real_run, real_kernel = blocked._run, blocked._kernel
    monkeypatch.setattr(blocked, "_run", lambda x, *rest: (pieces.append(x.shape[0]), real_run(x, *rest))[1])
    kernels_run = []  # each call's kernel: blocks of one vector (True) or two
    monkeypatch.setattr(blocked, "_kernel", lambda single: (kernels_run.append(single), real_kernel(single))[1])
    monkeypatch.setattr(team, "_threads", team_size)
    monkeypatch.setattr(_tuning, "CHUNK_BYTES", 2048 * team_size)  # a channels-first x copied a few samples a time
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    rng = np.random.default_rng(31)
    cases = (  # spatial, kernel, stride, dilation, pads, c_in, c_out, groups
        ((19,), (5,), (1,), (1,), [(2, 2)], 3, 16, 1),
        ((23,), (3,), (2,), (2,), [(0, 4)], 40, 37, 1),
        ((9, 11), (3, 3), (1, 1), (1, 1), [(1, 1), (2, 0)], 4, 32, 1),
        ((12, 10), (5, 3), (2, 3), (1, 2), [(4, 2), (1, 1)], 6, 20, 2),
        ((8, 13), (3, 3), (1, 1), (1, 1), [(1, 1), (1, 1)], 64, 24, 1),
        ((5, 6, 7), (3, 2, 3), (1, 2, 1), (1, 1, 1), [(1, 1), (0, 1), (1, 1)], 5, 9, 1),
        ((4, 4), (9, 9), (1, 1), (1, 1), [(4, 4), (4, 4)], 3, 8, 1),  # most taps meet only padding
        ((3, 10), (2, 2), (1, 1), (1, 1), [(0, 0), (0, 0)], 12, 48, 3),
        ((7, 9), (3, 3), (2, 1), (1, 1), [(1, 2), (5, 5)], 1, 17, 1),  # one channel; outputs no tap reaches
        ((10,), (3,), (2,), (1,), [(0, 0)], 5, 16, 1),  # x reaches past the last output's taps (cropped)
        ((11, 10), (2, 2), (3, 3), (1, 1), [(0, 0), (0, 0)], 4, 16, 1),  # cropped along the last axis only
        ((9, 11), (3, 3), (1, 1), (1, 1), [(1, 1), (2, 0)], 6, 6, 2),  # three a group: one vector at any width
    )
    for spatial, kernel, stride, dilation, pads, c_in, c_out, groups in cases:
        for dtype in (np.float64, np.float32):
            larger = rng.standard_normal((3, c_in + 2, *(n + 3 for n in spatial))).astype(dtype)
            crop = larger[(slice(None), slice(1, 1 + c_in), *(slice(1, 1 + n) for n in spatial))]
            x = np.ascontiguousarray(crop)
            w = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype)
            b = rng.standard_normal(c_out).astype(dtype) if dtype == np.float64 else None
            expected = naive_conv(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
            options = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
            tolerance = 1e-10 if dtype == np.float64 else 2e-4
            last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
            inputs = ((x, False), (crop, False), (last, True), (np.moveaxis(x, 1, -1), True))
            inputs += ((np.moveaxis(crop, 1, -1), True),)  # channels-last with gaps, read in place
            for xin, channels_last in inputs:
                runs.clear()
                pieces.clear()
                kernels_run.clear()
                with tconv.use_algorithm("jit_blocked"):
                    got = tconv.conv(xin, w, b, channels_last=channels_last, **options)
                assert runs == [channels_last]
                assert set(kernels_run) == {c_out // groups <= blocked.lanes(x.itemsize)}
                widths.add((np.dtype(dtype).name, kernels_run[0]))
                if padded:  # copied into the padded buffer, CHUNK_BYTES of samples at a time
                    # the buffer: the span the outputs' taps reach, and four pixels on from every output along the
                    # last axis (whole blocks of four)
                    sizes = expected.shape[2:]
                    buffer = [(o - 1) * st + (k - 1) * d + 1 for o, st, k, d in zip(sizes, stride, kernel, dilation)]
                    buffer[-1] += (-(-sizes[-1] // 4) * 4 - sizes[-1]) * stride[-1]
                    per_sample = c_in * int(np.prod(buffer)) * x.itemsize
                    chunk = max(1, 2048 * team_size // per_sample)
                    assert pieces == [min(chunk, 3 - i) for i in range(0, 3, chunk)]
                elif channels_last or c_in == 1:  # read in place, whole
                    assert pieces == [3]
                else:  # copied channels-last, CHUNK_BYTES of samples at a time
                    per_sample = c_in * int(np.prod(spatial)) * x.itemsize
                    chunk = max(1, 2048 * team_size // per_sample)
                    assert pieces == [min(chunk, 3 - i) for i in range(0, 3, chunk)]
                got = np.moveaxis(got, -1, 1) if channels_last else got
                np.testing.assert_allclose(got, expected, atol=tolerance, rtol=tolerance)
    # blocks of two vectors and of one (a group's output channels fit one vector), in both dtypes
    assert widths == {(name, single) for name in ("float32", "float64") for single in (False, True)}


@needs_jit
@pytest.mark.parametrize("team_size", [1, 3])
def test_register_blocks_across_samples_match_the_oracle(monkeypatch, request, team_size):
    """``jit_blocked`` across samples (:func:`.blocked._across_kernel`: a block holds the same output pixel of
    consecutive samples, every tap that meets x and none of the padding's), taken wherever it runs (the row modes
    priced out): batches that leave no sample over, a block of four over, one to three over and four plus some
    (13 = 8 + 4 + 1 with 512-bit vectors), 1-3-D, strides, dilations, asymmetric padding and kernels larger than x,
    groups, a partial last block of output channels (stored through the spare block), float32 and float64, x
    contiguous, a crop and a transposed view, both layouts (channels-first: x copied channels-last in whole blocks of
    samples, the output staged channels-last), a stride-1 transposed call through its forward twin; every call's
    ranges on a team of ``team_size``, each block of output channels over three jobs in turn; against the oracle."""
    from tconv.implementations.compiled import blocked

    blocked._across_plan.cache_clear()
    request.addfinalizer(blocked._across_plan.cache_clear)
    monkeypatch.setattr(_tuning, "BLOCKED_ACROSS_TOGETHER", 3)
    monkeypatch.setattr(blocked, "_costs", lambda spec, last: (1.0, 1.0))  # the row modes priced out
    pieces, rows = [], []  # the samples of each run of the kernel across them, and of those run along the rows
    real_plan, real_rows = blocked._across_plan, blocked._run
    monkeypatch.setattr(
        blocked, "_across_plan", lambda spec, batch, *rest: (pieces.append(batch), real_plan(spec, batch, *rest))[1]
    )
    monkeypatch.setattr(blocked, "_run", lambda x, *rest: (rows.append(x.shape[0]), real_rows(x, *rest))[1])
    monkeypatch.setattr(team, "_threads", team_size)
    monkeypatch.setattr(_tuning, "CHUNK_BYTES", 40_000)  # a channels-first x copied a few blocks of samples a time
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    samples = blocked.across_samples(blocked.machine.vector_bytes())
    rng = np.random.default_rng(47)
    cases = (  # batch, spatial, kernel, stride, dilation, pads, c_in, c_out, groups
        (13, (19,), (5,), (1,), (1,), [(2, 2)], 3, 40, 1),
        (8, (7, 7), (5, 5), (1, 1), (1, 1), [(2, 2), (2, 2)], 24, 64, 1),
        (5, (12, 10), (5, 3), (2, 3), (1, 2), [(4, 2), (1, 1)], 6, 40, 2),
        (17, (4, 4), (9, 9), (1, 1), (1, 1), [(4, 4), (4, 4)], 3, 37, 1),  # most taps meet only padding
        (4, (5, 6, 7), (3, 2, 3), (1, 2, 1), (1, 1, 1), [(1, 1), (0, 1), (1, 1)], 5, 33, 1),
        (11, (7, 9), (3, 3), (2, 1), (1, 1), [(1, 2), (5, 5)], 1, 34, 1),  # one channel; outputs no tap reaches
        (6, (9, 11), (3, 3), (1, 1), (2, 1), [(2, 2), (0, 2)], 8, 1 + 2 * 32, 1),
    )
    for batch, spatial, kernel, stride, dilation, pads, c_in, c_out, groups in cases:
        for dtype in (np.float64, np.float32):
            if c_out // groups <= blocked.lanes(np.dtype(dtype).itemsize):
                continue  # blocks of one vector: not run across samples
            larger = rng.standard_normal((batch, c_in + 2, *(n + 3 for n in spatial))).astype(dtype)
            crop = larger[(slice(None), slice(1, 1 + c_in), *(slice(1, 1 + n) for n in spatial))]
            x = np.ascontiguousarray(crop)
            w = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype)
            b = rng.standard_normal(c_out).astype(dtype) if dtype == np.float64 else None
            expected = naive_conv(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
            options = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
            tolerance = 1e-10 if dtype == np.float64 else 2e-4
            inputs = ((x, False), (crop, False), (np.ascontiguousarray(np.moveaxis(x, 1, -1)), True))
            inputs += ((np.moveaxis(crop, 1, -1), True),)  # channels-last with gaps, read in place
            for xin, channels_last in inputs:
                pieces.clear()
                rows.clear()
                with tconv.use_algorithm("jit_blocked"):
                    got = tconv.conv(xin, w, b, channels_last=channels_last, **options)
                if channels_last:
                    assert pieces == [batch] and not rows
                else:  # x copied channels-last and the output staged in chunks: whole register blocks of samples
                    # where a chunk holds one, fewer than four (a chunk's last) along the rows
                    assert sum(pieces) + sum(rows) == batch and min(pieces) >= 4 and all(n < 4 for n in rows)
                    assert all(n % samples == 0 or n % 4 == 0 < samples - n for n in pieces[:-1]), pieces
                got = np.moveaxis(got, -1, 1) if channels_last else got
                np.testing.assert_allclose(got, expected, atol=tolerance, rtol=tolerance)
    # a stride-1 transposed call through its forward twin (the flipped kernel), channels-last
    x = rng.standard_normal((9, 16, 7, 7)).astype(np.float32)
    w = rng.standard_normal((16, 48, 5, 5)).astype(np.float32)
    pieces.clear()
    with tconv.use_algorithm("jit_blocked"):
        got = tconv.conv_transpose(np.moveaxis(x, 1, -1).copy(), w, padding=2, channels_last=True)
    assert pieces == [9]
    expected = naive_conv_transpose(x.astype(np.float64), w.astype(np.float64), pads=[(2, 2)] * 2)
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, rtol=2e-4, atol=2e-4)
    # 12 float32 output channels: two vectors where 256-bit ones are priced, one in 512-bit kernels, which then run
    # them along the rows (the kernel's own width decides, not the priced one)
    x = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    w = rng.standard_normal((12, 6, 3, 3)).astype(np.float32)
    pieces.clear()
    with tconv.use_algorithm("jit_blocked"):
        got = tconv.conv(np.moveaxis(x, 1, -1).copy(), w, padding=1, channels_last=True)
    assert pieces == ([] if 12 <= blocked.lanes(4) else [16])
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), naive_conv(x, w, pads=[(1, 1)] * 2), rtol=2e-4, atol=2e-4)


def test_register_blocks_across_samples_are_priced_on_the_batch():
    """The cost of blocks across samples (:func:`.blocked._across_cost`) counts every output's live taps in blocks
    for whole register blocks of samples (and four of those left over), the rest one pixel at a time: so a batch
    of one, or blocks of one vector of output channels, never run across samples, a large batch does where its
    pixels' taps are mostly cut by the padding, and the planner's cost for the batch (:meth:`batch_cost`) is the
    cheapest mode's; checked against the per-pixel sums priced by hand (:func:`.blocked._sums`)."""
    from tconv.engine import planner
    from tconv.implementations.compiled import blocked, geometry

    spec = tconv.ConvSpec.build(transposed=False, input_size=(7, 7), kernel_size=(5, 5), in_channels=128,
                                out_channels=256, padding=2)  # fmt: skip
    assert blocked._across_cost(spec, True, 1) == math.inf and blocked._across_cost(spec, True, 3) == math.inf
    taps = float(np.prod(geometry.mean_taps(geometry.axes3(spec))))
    block = blocked._sums(spec, taps, 1.0, 49)
    alone = blocked._sums(spec, taps, 0.0, 49)
    samples = blocked.across_samples(blocked.machine.priced_vector_bytes())
    for batch in (4, 8, 13, 64):
        in_blocks = batch // samples * samples
        in_blocks += (batch - in_blocks) // 4 * 4
        assert blocked._across_cost(spec, True, batch) == pytest.approx(in_blocks * block + (batch - in_blocks) * alone)
    # channels-first: x's copy and the output's staging, each written and read once at TRANSPOSE_STREAM
    moved = 2 * 4 * (128 + 256) * 49 * 64 / _tuning.TRANSPOSE_STREAM
    assert blocked._across_cost(spec, False, 64) == pytest.approx(blocked._across_cost(spec, True, 64) + moved)
    assert blocked._mode(spec, True, 64) == "across" and blocked._mode(spec, True, 1) != "across"
    assert blocked.batch_cost(spec, True, 64) == blocked._across_cost(spec, True, 64)
    assert blocked.batch_cost(spec, True, 1) == blocked.cost(spec, True)
    costs = planner.plan_costs(spec, 64, True)
    assert costs["jit_blocked"] == pytest.approx(blocked._across_cost(spec, True, 64) + blocked.packing_cost(spec))
    few = dataclasses.replace(spec, out_channels=8)  # one vector of output channels
    assert blocked._across_cost(few, True, 64) == math.inf
    assert blocked.batch_cost(few, True, 64) == blocked.cost(few, True) * 64


@needs_jit
def test_planner_takes_register_blocks_across_samples_for_batched_generator_layers(monkeypatch):
    """A stride-1 transposed generator layer of a batch on a thread team (rule 7's layers: jit_pixels unless
    jit_blocked runs its forward twin across the samples): (64, 256, 7, 7) -> 128 5x5 padding 2 ran 19.5 ms on
    jit_blocked across samples against jit_pixels' 24.2 (channels-last 16.6 against 22.3): taken in both layouts; a
    batch of two (no register block of samples) keeps the choice made without jit_blocked."""
    from tconv.engine import planner
    from tconv.implementations.compiled import blocked

    spec = tconv.ConvSpec.build(transposed=True, input_size=(7, 7), kernel_size=(5, 5), in_channels=256,
                                out_channels=128, padding=2)  # fmt: skip
    monkeypatch.setattr(team, "_threads", 2)
    planner.plan.cache_clear()
    twin = algorithms.convolution_computed(spec)
    for channels_last in (True, False):
        assert blocked.runs_across(twin, channels_last, 64)
        assert planner.select(spec, np, channels_last=channels_last, batch=64).name == "jit_blocked"
    assert not blocked.runs_across(twin, False, 2)
    with tconv.avoid_algorithms("jit_blocked"):
        without = planner.select(spec, np, channels_last=False, batch=2).name
    assert planner.select(spec, np, channels_last=False, batch=2).name == without


def test_register_blocks_run_over_as_many_rows_as_their_x_fits_the_budget(monkeypatch):
    """Each block of output channels runs over the jobs whose x fits ``BLOCKED_TOGETHER_BYTES`` in turn (each job's
    rows of taps times the columns its outputs' taps span times a pixel's channels), between one and
    ``BLOCKED_TOGETHER_JOBS``: counted by hand on three layers."""
    from tconv.implementations.compiled import blocked

    def together(kernel, stride, dilation, step, c_in):
        spec = tconv.ConvSpec.build(
            transposed=False, input_size=(40,) * len(kernel), kernel_size=kernel, in_channels=c_in, out_channels=8,
            stride=stride, dilation=dilation,
        )  # fmt: skip
        return blocked._together(geometry.axes3(spec), step, c_in * 4)

    monkeypatch.setattr(_tuning, "BLOCKED_TOGETHER_BYTES", 100_000)
    monkeypatch.setattr(_tuning, "BLOCKED_TOGETHER_JOBS", 32)
    # 4 rows x (7 * 2 + 4 = 18 columns) x 512 bytes = 36864 bytes a job: two jobs
    assert together((4, 4), (2, 2), (1, 1), 8, 128) == 2
    # dilation 2: 5 rows x (3 * 1 + 5 = 8 columns) x 64 bytes = 2560 a job: 39, capped at 32
    assert together((3, 3), (1, 1), (2, 2), 4, 16) == 32
    # 3-D 3x3x3 over 64 channels: 9 rows x 10 columns x 256 bytes = 23040: four; 1-D: 1 row x 131 x 1024 bytes
    assert together((3, 3, 3), (1, 1, 1), (1, 1, 1), 8, 64) == 4
    assert together((3,), (1,), (1,), 129, 256) == 1  # over the budget alone: still one job
    monkeypatch.setattr(_tuning, "BLOCKED_TOGETHER_JOBS", 3)
    assert together((3, 3), (1, 1), (2, 2), 4, 16) == 3


@needs_jit
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_register_blocks_padded_copy_by_tiles(monkeypatch, rank):
    """The zero-padded copy of a channels-first x of many channels runs by tiles (:func:`.transpose.planes`, its
    thresholds lowered to reach it on small arrays), at every rank; against the oracle."""
    from tconv.implementations.compiled import blocked, transpose

    monkeypatch.setattr(blocked, "_costs", lambda spec, last: (1.0, 0.0))  # the padded copy
    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_BYTES", 0)
    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_SIDE", 2)
    tiled = []
    real = transpose.planes
    monkeypatch.setattr(transpose, "planes", lambda dst, src: (tiled.append(src.shape), real(dst, src))[1])
    rng = np.random.default_rng(rank)
    spatial = (9, 7, 6)[:rank]
    x = rng.standard_normal((2, 40, *spatial))
    w = rng.standard_normal((24, 40, *(3,) * rank))
    with tconv.use_algorithm("jit_blocked"):
        got = tconv.conv(x, w, stride=2, padding=1)
    assert tiled and all(len(shape) == 5 and shape[1] == 40 for shape in tiled)
    expected = naive_conv(x, w, stride=[2] * rank, pads=[(1, 1)] * rank)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_zero_border_zeroes_exactly_what_lies_outside_the_inner_part():
    """:func:`.workspace.zero_border` on buffers of ranks 2 to 5 with an inner part of every kind per axis (whole,
    cut on one side, on both, from the first element, empty): every element outside it zero, every one inside
    as it was, against a mask built independently; a negative start or stop, or a step, refused."""
    rng = np.random.default_rng(3)
    for rank in range(2, 6):
        for _ in range(40):
            shape = tuple(int(n) for n in rng.integers(1, 7, size=rank))
            inner, mask = [], np.zeros(shape, dtype=bool)
            for n in shape[: int(rng.integers(1, rank + 1))]:
                start = int(rng.integers(0, n + 1))
                stop = int(rng.integers(start, n + 1))
                inner.append(slice(None) if rng.uniform() < 0.2 else slice(start, stop))
            mask[tuple(inner)] = True
            buffer = rng.standard_normal(shape) + 5.0  # no zero before
            before = buffer.copy()
            workspace.zero_border(buffer, tuple(inner))
            assert np.all(buffer[~mask] == 0), (shape, inner)
            np.testing.assert_array_equal(buffer[mask], before[mask])
    for part in (slice(-2, None), slice(0, -1), slice(0, 4, 2)):  # refused, not half done
        with pytest.raises(ValueError, match="inner: expected slices"):
            workspace.zero_border(np.ones((5, 5)), (part,))


@needs_jit
def test_padded_copies_never_leave_a_buffers_old_contents_in_the_padding(monkeypatch):
    """The paths that copy x (or an output gradient) into a zero-padded buffer of the thread's own (slot 2) zero
    only its border: with that buffer filled with NaN before every call (what an earlier call of another shape
    could leave there), ``jit_blocked``'s padded copy, ``jit_gemm``'s im2col planes and its weight gradient's
    planes, box by box too (channel-minor planes), on one thread, each against the oracle: a NaN left in the
    padding would reach the result."""
    from tconv.implementations.compiled import blocked

    _team_of(monkeypatch, 1)
    monkeypatch.setattr(blocked, "_costs", lambda spec, last: (1.0, 0.0))  # the padded copy

    def poisoned() -> None:
        workspace.workspace((2**20,), np.float64, slot=2).fill(np.nan)

    rng = np.random.default_rng(5)
    for spatial, kernel, stride, pads in (
        ((9,), (3,), (2,), [(1, 2)]),
        ((7, 6), (3, 2), (1, 2), [(1, 1), (2, 0)]),
        ((5, 4, 6), (2, 3, 3), (2, 1, 1), [(1, 0), (1, 1), (0, 2)]),
    ):
        x = rng.standard_normal((2, 6, *spatial))
        w = rng.standard_normal((5, 6, *kernel))
        b = rng.standard_normal(5)
        options = dict(stride=stride, padding=pads)
        expected = naive_conv(x, w, b, stride=list(stride), pads=pads)
        for algorithm in ("jit_blocked", "jit_gemm"):
            poisoned()
            with tconv.use_algorithm(algorithm):
                got = tconv.conv(x, w, b, **options)
            np.testing.assert_allclose(got, expected, atol=1e-10, err_msg=algorithm)
        case_grads = []
        with monkeypatch.context() as boxes:
            for by_boxes in (False, True):
                used = _boxes_always(boxes) if by_boxes else []
                poisoned()
                gy = rng.standard_normal(expected.shape)
                with tconv.use_algorithm("jit_gemm"):
                    gx, gw, _ = tconv.conv_grad(gy, x, w, **options)
                assert bool(used) == by_boxes, spatial
                case_grads.append((gy, gx, gw))
        for gy, gx, gw in case_grads:
            for grad, which in ((gx, 0), (gw, 1)):
                v = rng.standard_normal(grad.shape)
                args = [x, w]
                args[which] = v
                loss = float(np.vdot(naive_conv(*args, None, stride=list(stride), pads=pads), gy))
                np.testing.assert_allclose(np.vdot(grad, v), loss, rtol=1e-8, atol=1e-8)


@needs_jit
def test_planner_takes_register_blocks_for_stride_one_transposed_layers(monkeypatch):
    """A stride-1 transposed convolution is priced as its forward twin on ``jit_blocked`` (the weight flipped and
    packed once a call) and taken by rule 3's margins, in either layout: a 1-D channels-last layer (sweep 53's
    (12, 5, 93) -> 111 k7: 0.15-0.47 ms on ``jit_blocked`` against 0.21-0.67 on ``jit_im2col`` on both machines) and
    a 2-D channels-first one, each matching the oracle with its bias; a strided one is not ranked."""
    from tconv.engine import planner

    runs = _blocked_spy(monkeypatch)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((12, 5, 93)).astype(np.float32)
    w = rng.standard_normal((5, 111, 7)).astype(np.float32)
    b = rng.standard_normal(111).astype(np.float32)
    spec = tconv.ConvSpec.build(transposed=True, input_size=(93,), kernel_size=(7,), in_channels=5, out_channels=111)
    assert planner.select(spec, np, channels_last=True, batch=12).name == "jit_blocked"
    got = tconv.conv_transpose(np.moveaxis(x, 1, -1).copy(), w, b, channels_last=True)
    assert runs == [True]
    expected = naive_conv_transpose(x, w, b)
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, rtol=2e-4, atol=2e-4)
    runs.clear()
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    spec = tconv.ConvSpec.build(transposed=True, input_size=(9, 9), kernel_size=(3, 3), in_channels=8, out_channels=16,
                                padding=2)  # fmt: skip
    assert planner.select(spec, np, channels_last=False, batch=2).name == "jit_blocked"
    got = tconv.conv_transpose(x, w, padding=2)
    assert runs == [False]
    np.testing.assert_allclose(got, naive_conv_transpose(x, w, pads=[(2, 2)] * 2), rtol=2e-4, atol=2e-4)
    strided = tconv.ConvSpec.build(transposed=True, input_size=(9, 9), kernel_size=(3, 3), in_channels=8,
                                   out_channels=16, stride=2)  # fmt: skip
    assert "jit_blocked" not in planner.plan_costs(strided, 2, True)
    assert "jit_blocked" not in planner.plan_costs(strided, 2, False)
    # every other algorithm avoided: a large channels-first call (over BLOCKED_FIRST_MAX_SECONDS), either direction,
    # still gets jit_blocked rather than an error
    others = [name for name in tconv.algorithms() if name != "jit_blocked"]
    for transposed in (True, False):
        large = tconv.ConvSpec.build(transposed=transposed, input_size=(64, 64), kernel_size=(3, 3), in_channels=64,
                                     out_channels=64, padding=1)  # fmt: skip
        assert planner.plan_costs(large, 8, False)["jit_blocked"] > _tuning.BLOCKED_FIRST_MAX_SECONDS
        with tconv.avoid_algorithms(*others):
            assert planner.select(large, np, channels_last=False, batch=8).name == "jit_blocked"


@needs_jit
def test_planner_ranks_register_blocks(monkeypatch):
    """The planner ranks ``jit_blocked`` channels-last, and takes it on a first convolution (3 input channels,
    32 outputs: BLAS's product has 27 inner terms); channels-first it ranks it without 1x1 kernels and takes it on
    small calls only (``BLOCKED_FIRST_MAX_SECONDS``); each choice matches the oracle. Forced, it runs the calls it
    is not ranked on, a stride-1 transposed convolution as its forward twin (never a strided one), and the
    gradients that come with it."""
    from tconv.engine import planner
    from tconv.implementations.compiled import blocked

    def spec(stride=1):
        return tconv.ConvSpec.build(
            transposed=False, input_size=(32, 32), kernel_size=(3, 3), in_channels=3, out_channels=32, stride=stride,
            padding=1,
        )  # fmt: skip

    assert blocked.ranked(spec(), channels_last=True)
    assert blocked.ranked(spec(stride=2), channels_last=True)
    assert blocked.ranked(spec(), channels_last=False)
    one_by_one = tconv.ConvSpec.build(transposed=False, input_size=(8, 8), kernel_size=(1, 1), in_channels=16,
                                      out_channels=32)  # fmt: skip
    assert blocked.ranked(one_by_one, channels_last=True) and not blocked.ranked(one_by_one, channels_last=False)
    assert planner.select(spec(), np, channels_last=True, batch=16).name == "jit_blocked"
    # channels-first, a small call (sweep 53's (9, 20, 6, 6) -> 16 k8 p2: 0.14 ms forced against jit_gemm's 0.37)
    # and a large one (ResNet's (8, 64, 56, 56) -> 64 3x3 stride 2: 4.9 ms against jit_gemm's 4.3)
    small = tconv.ConvSpec.build(transposed=False, input_size=(6, 6), kernel_size=(8, 8), in_channels=20,
                                 out_channels=16, padding=2)  # fmt: skip
    large = tconv.ConvSpec.build(transposed=False, input_size=(56, 56), kernel_size=(3, 3), in_channels=64,
                                 out_channels=64, stride=2, padding=1)  # fmt: skip
    # (jit_direct avoided: its tiles, 0.18 ms there, are priced close to jit_blocked and taken; jit_dots too, which
    # rule 3 takes first within DOTS_MARGIN: 1.05 of jit_blocked's time there on the AVX2 machine)
    with tconv.avoid_algorithms("jit_direct", "jit_dots"):
        assert planner.select(small, np, channels_last=False, batch=9).name == "jit_blocked"
        assert planner.plan_costs(large, 8, False)["jit_blocked"] > _tuning.BLOCKED_FIRST_MAX_SECONDS
        assert planner.select(large, np, channels_last=False, batch=8).name != "jit_blocked"
    runs = _blocked_spy(monkeypatch)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 20, 6, 6)).astype(np.float32)
    w = rng.standard_normal((16, 20, 8, 8)).astype(np.float32)
    with tconv.avoid_algorithms("jit_direct", "jit_dots"):
        got = tconv.conv(x, w, padding=2)
    assert runs == [False]  # chosen, into the channels-first output
    np.testing.assert_allclose(got, naive_conv(x, w, pads=[(2, 2)] * 2), rtol=2e-4, atol=2e-4)
    runs.clear()
    x = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    got = tconv.conv(np.moveaxis(x, 1, -1).copy(), w, padding=1, channels_last=True)
    assert runs == [True]
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), naive_conv(x, w, pads=[(1, 1)] * 2), rtol=2e-4, atol=2e-4)
    runs.clear()
    with tconv.use_algorithm("jit_blocked"):
        got = tconv.conv(x, w, stride=2, padding=1)
        assert runs == [False]
        np.testing.assert_allclose(got, naive_conv(x, w, stride=[2, 2], pads=[(1, 1)] * 2), rtol=2e-4, atol=2e-4)
        with pytest.raises(ValueError, match="jit_blocked"):  # a strided transposed convolution: not here
            tconv.conv_transpose(x, np.ones((3, 4, 3, 3), np.float32), stride=2)
        # a stride-1 transposed one runs as its forward twin (the flipped kernel)
        wt = rng.standard_normal((3, 20, 3, 3)).astype(np.float32)
        runs.clear()
        got = tconv.conv_transpose(x, wt, padding=(0, 2))
        assert runs == [False]
        expected = naive_conv_transpose(x, wt, pads=[(0, 0), (2, 2)])
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)
    # the gradients that come with it, channels-last: the input's by the oracle's transposed convolution, the
    # weight's and the bias's from the oracle's response to each weight (the convolution is linear in it)
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((9, 3, 3, 3))
    options = dict(stride=[1, 1], pads=[(1, 1), (0, 2)])
    gy = rng.standard_normal(naive_conv(x, w, **options).shape)
    runs.clear()
    with tconv.use_algorithm("jit_blocked"):
        dx, dw, db = tconv.conv_grad(
            np.moveaxis(gy, 1, -1), np.moveaxis(x, 1, -1), w, padding=((1, 1), (0, 2)), channels_last=True
        )
    assert runs == [True]  # the input's gradient, the transposed twin (the weight's comes from the im2col)
    np.testing.assert_allclose(np.moveaxis(dx, -1, 1), naive_conv_transpose(gy, w, **options))
    expected_dw = np.zeros_like(w)
    for i in np.ndindex(*w.shape):
        unit = np.zeros_like(w)
        unit[i] = 1.0
        expected_dw[i] = np.sum(gy * naive_conv(x, unit, **options))
    np.testing.assert_allclose(dw, expected_dw, atol=1e-10)
    np.testing.assert_allclose(db, gy.sum(axis=(0, 2, 3)), atol=1e-10)


@needs_jit
def test_dot_products_only_for_few_outputs_over_long_runs(monkeypatch):
    """The dot products are taken channels-last only: up to DOT_MAX_OUT output channels a group, runs of
    DOT_MIN_RUN elements on average (the taps along the last axis times the channels, or the channels alone where
    dilated there), and the cost model's estimate below the sum over planes'; channels-first never."""
    from tconv.implementations.compiled import channel_dots, direct_conv

    runs = _dot_products_spy(monkeypatch)

    def spec(c_in, c_out, kernel=(3, 3), dilation=1, groups=1):
        return tconv.ConvSpec.build(
            transposed=False, input_size=(20, 20), kernel_size=kernel, in_channels=c_in, out_channels=c_out,
            padding=1, dilation=dilation, groups=groups,
        )  # fmt: skip

    assert direct_conv.dots_preferred(spec(128, 2))
    x = np.random.default_rng(0).standard_normal((2, 128, 20, 20))
    w = np.random.default_rng(1).standard_normal((2, 128, 3, 3))
    with tconv.use_algorithm("jit_direct"):
        channels_first = tconv.conv(x, w, padding=1)  # the same layer channels-first: the planes
        assert runs == []
        tconv.conv(np.moveaxis(x, 1, -1), w, padding=1, channels_last=True)
        assert runs == [spec(128, 2)]
    np.testing.assert_allclose(channels_first, naive_conv(x, w, pads=[(1, 1)] * 2), atol=1e-10)
    assert not direct_conv.dots_preferred(spec(128, _tuning.DOT_MAX_OUT + 4))  # many outputs: planes or a product
    assert channel_dots.mean_run(spec(20, 2)) < _tuning.DOT_MIN_RUN  # 20 channels by three taps, less at borders
    assert not direct_conv.dots_preferred(spec(20, 2))
    assert channel_dots.mean_run(spec(48, 2, dilation=2)) == 48  # dilated: a run a tap
    assert not direct_conv.dots_preferred(spec(48, 2, dilation=2))
    assert direct_conv.dots_preferred(spec(96, 2, dilation=2))
    monkeypatch.setattr(_tuning, "DOT_LOAD_RATE", 1e6)  # within both bounds, but dearer than the planes
    direct_conv.dots_preferred.cache_clear()
    assert not direct_conv.dots_preferred(spec(128, 2))
    monkeypatch.undo()
    monkeypatch.setattr(_tuning, "DOT_MAX_OUT", 1)
    direct_conv.dots_preferred.cache_clear()
    assert not direct_conv.dots_preferred(spec(128, 2))


def test_the_last_level_cache_is_read_from_linux_sysfs(tmp_path):
    """``_tuning._shared_cache_bytes`` takes the largest of the caches Linux lists (sizes in K, M, G or bytes,
    either case), skips a cache whose size is missing or unreadable, and gives the default where none is read."""

    def cache(index: int, size: str | None) -> None:
        (tmp_path / f"index{index}").mkdir()
        if size is not None:
            (tmp_path / f"index{index}" / "size").write_text(size + "\n")

    assert _tuning._shared_cache_bytes(7, str(tmp_path / "none")) == 7
    cache(0, None)  # Linux leaves out the size of a cache it knows none for
    cache(1, "large")
    assert _tuning._shared_cache_bytes(7, str(tmp_path)) == 7
    for index, size in enumerate(["32k", "512K", "32768K", "2M", "1048576"], start=2):
        cache(index, size)
    assert _tuning._shared_cache_bytes(7, str(tmp_path)) == 32 * 2**20
    cache(7, "64M")
    assert _tuning._shared_cache_bytes(7, str(tmp_path)) == 64 * 2**20
    assert 0 < _tuning.DIRECT_TILE_CACHE_BYTES <= 64 * 2**20


@needs_jit
def test_patch_convolutions_match_the_oracle(monkeypatch):
    """A channels-last convolution whose windows are patches (kernel no longer than the stride, no dilation, no
    groups: :func:`.patch_conv.conv`), forced on jit_gemm: 1-D to 3-D, kernels equal to and shorter than the
    stride, with padding on either side (the span padded) and without (a view of x, longer than the span), a
    transposed view of x, with and without bias, float64 and float32, against the oracle; the spy shows the
    patch path ran, and that a dilated or grouped call does not take it."""
    from tconv.implementations.compiled import patch_conv

    ran = []
    patches = patch_conv.conv
    monkeypatch.setattr(patch_conv, "conv", lambda *args: ran.append(args[3]) or patches(*args))
    rng = np.random.default_rng(17)
    for spatial, kernel, stride, pads in (
        ((23,), (4,), (4,), [(1, 2)]),
        ((17, 14), (2, 3), (2, 3), [(0, 0), (0, 0)]),
        ((18, 13), (2, 1), (3, 2), [(2, 0), (1, 1)]),
        ((7, 9, 8), (2, 3, 2), (2, 3, 4), [(0, 1), (1, 0), (0, 0)]),
        ((3,), (6,), (6,), [(7, 0)]),  # the low padding past the span: the one window is all padding
    ):
        x = rng.standard_normal((3, 5, *spatial))
        w = rng.standard_normal((6, 5, *kernel))
        b = rng.standard_normal(6)
        expected = naive_conv(x, w, b, stride=list(stride), pads=pads)
        x_last = np.moveaxis(x, 1, -1)  # a transposed view
        ran.clear()
        with tconv.use_algorithm("jit_gemm"):
            got = tconv.conv(x_last, w, b, stride=stride, padding=pads, channels_last=True)
            low = tconv.conv(x_last.astype(np.float32), w.astype(np.float32), stride=stride, padding=pads,
                             channels_last=True)  # fmt: skip
        assert len(ran) == 2
        np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10)
        assert low.dtype == np.float32
        no_bias = expected - b.reshape(6, *[1] * len(spatial))
        np.testing.assert_allclose(np.moveaxis(low, -1, 1), no_bias, rtol=1e-4, atol=1e-4)
    ran.clear()
    x = rng.standard_normal((2, 12, 12, 4))
    with tconv.use_algorithm("jit_gemm"):
        tconv.conv(x, rng.standard_normal((4, 4, 2, 2)), stride=3, dilation=2, channels_last=True)
        tconv.conv(x, rng.standard_normal((4, 2, 2, 2)), stride=2, groups=2, channels_last=True)
        tconv.conv(np.moveaxis(x, -1, 1), rng.standard_normal((4, 4, 2, 2)), stride=2)  # channels-first
    assert not ran


@needs_jit
def test_the_direct_convolution_blocks_many_output_channels_and_empty_batches():
    """More output channels a group than one job's block (DIRECT_CONV_BLOCK_BYTES; the block rounded down to a
    multiple of the kernel's four channels a pass), a depth multiplier whose channels leave some after the
    passes of four (6 = 4 + 2, with 1, 2 and 5 taps), and a batch of none, forced on jit_direct, against the
    oracle."""
    from tconv import _tuning

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 30, 31))
    w = rng.standard_normal((3 * 40, 1, 3, 3))  # depthwise with a multiplier of 40
    saved = _tuning.DIRECT_CONV_BLOCK_BYTES
    _tuning.DIRECT_CONV_BLOCK_BYTES = 8 * 8 * 18 * 16  # 7 wide float64 planes of 16 x 18 a job -> blocks of 4
    try:
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv(x, w, stride=2, padding=2, groups=3)
            empty = tconv.conv(x[:0], w, stride=2, padding=2, groups=3)
    finally:
        _tuning.DIRECT_CONV_BLOCK_BYTES = saved
    np.testing.assert_allclose(got, naive_conv(x, w, None, stride=[2, 2], pads=[(2, 2)] * 2, groups=3), atol=1e-10)
    assert empty.shape == (0, 120, 16, 17)
    for kernel in ((1, 1), (1, 2), (5, 1)):
        w6 = rng.standard_normal((3 * 6, 1, *kernel))
        with tconv.use_algorithm("jit_direct"):
            got = tconv.conv(x, w6, padding=1, groups=3)
        np.testing.assert_allclose(got, naive_conv(x, w6, None, pads=[(1, 1)] * 2, groups=3), atol=1e-10)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_direct_weight_gradient_matches_the_oracle(channels_last, monkeypatch, request):
    """jit_direct's weight gradient of a convolution (the output gradient times each shifted phase in SIMD
    vectors, four output channels and six taps a pass, then three (9 taps: one of each; 12: two of six; 5: two
    of three, the last tap repeated), then the rest one channel at a time), forced, with its cost rule
    (direct_weight_grad) made to accept every case: 1-D to 3-D, strides 1 to 3, dilation, asymmetric padding,
    groups, 6 output channels a group (a pass of four and two more), 1 to 12 taps, a batch of 3 and one
    sample, float64 and float32, against the oracle's adjoint: the directional derivative of <conv(x, w), gy>
    along v is <conv(x, v), gy>."""
    monkeypatch.setattr(_tuning, "DIRECT_CONV_MARGIN", 1e9)
    algorithms.direct_weight_grad.cache_clear()
    request.addfinalizer(algorithms.direct_weight_grad.cache_clear)
    rng = np.random.default_rng(21)
    for spatial, kernel, stride, dilation, pads, groups in (
        ((13,), (5,), (2,), (1,), [(3, 1)], 2),
        ((9, 8), (3, 3), (1, 2), (2, 1), [(2, 2), (0, 3)], 1),
        ((7, 6), (1, 1), (3, 1), (1, 1), [(0, 0), (1, 0)], 3),
        ((5, 6, 4), (2, 3, 2), (1, 2, 1), (1, 1, 2), [(1, 1), (0, 2), (2, 1)], 2),
    ):
        x = rng.standard_normal((3, 2 * groups, *spatial))
        w = rng.standard_normal((6 * groups, 2, *kernel))
        options = {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}
        oracle = {"stride": list(stride), "pads": pads, "dilation": list(dilation), "groups": groups}
        spec = tconv.ConvSpec.build(transposed=False, input_size=spatial, kernel_size=kernel, in_channels=2 * groups,
                                    out_channels=6 * groups, **options)  # fmt: skip
        assert algorithms.direct_weight_grad(spec)
        gy = rng.standard_normal(naive_conv(x, w, None, **oracle).shape)
        v = rng.standard_normal(w.shape)
        for batch in (slice(None), slice(0, 1)):
            expected = np.vdot(naive_conv(x[batch], v, None, **oracle), gy[batch])
            xin, gyin = x[batch], gy[batch]
            if channels_last:
                xin, gyin = np.moveaxis(xin, 1, -1), np.moveaxis(gyin, 1, -1)
            with tconv.use_algorithm("jit_direct"):
                _, gw, _ = tconv.conv_grad(gyin, xin, w, channels_last=channels_last, **options)
                _, low, _ = tconv.conv_grad(gyin.astype(np.float32), xin.astype(np.float32), w.astype(np.float32),
                                            channels_last=channels_last, **options)  # fmt: skip
            np.testing.assert_allclose(np.vdot(gw, v), expected, rtol=1e-9, atol=1e-9)
            assert low.dtype == np.float32
            # float32 against the oracle too, within float32's rounding of the sum's terms
            scale = float(np.abs(v).ravel() @ np.abs(low.astype(np.float64)).ravel())
            np.testing.assert_allclose(np.vdot(low.astype(np.float64), v), expected, rtol=0, atol=1e-5 * scale)
    for array in (x, w, gy):  # read-only arrays (ONNX Runtime's, memory maps): the kernel never writes to them
        array.setflags(write=False)
    with tconv.use_algorithm("jit_direct"):
        y = tconv.conv(x, w, **options)
        _, gw, _ = tconv.conv_grad(gy, x, w, **options)
    np.testing.assert_allclose(y, naive_conv(x, w, None, **oracle), atol=1e-10)
    np.testing.assert_allclose(np.vdot(gw, v), np.vdot(naive_conv(x, v, None, **oracle), gy), rtol=1e-9)


@needs_jit
def test_the_direct_routes_the_planner_chooses_match_the_oracle():
    """Unforced: a U-Net-like 3x3 layer of 16 channels, where the planner runs the stride-1 transposed
    convolution through its twin's direct sum and the convolution's weight gradient directly (both asserted),
    against the oracle, and the convolution itself on a direct sum."""
    from tconv.engine import planner

    rng = np.random.default_rng(31)
    x, w, b = rng.standard_normal((2, 16, 12, 12)), rng.standard_normal((16, 16, 3, 3)), rng.standard_normal(16)
    transposed = tconv.ConvSpec.build(transposed=True, input_size=(12, 12), kernel_size=(3, 3), in_channels=16,
                                      out_channels=16, padding=1)  # fmt: skip
    forward = tconv.ConvSpec.build(transposed=False, input_size=(12, 12), kernel_size=(3, 3), in_channels=16,
                                   out_channels=16, padding=1)  # fmt: skip
    with tconv.avoid_algorithms("jit_blocked"):  # which prices it as its twin too, level here (71 against 66 us)
        assert planner.select(transposed, np, False, 2, 8).name == "jit_direct"
    assert algorithms.direct_twin(transposed) is not None
    # the convolution itself runs on a direct sum: the register blocks over a padded copy or the direct sum's tiles
    # (74 and 77 us forced, float32), whichever the estimates put first
    chosen = planner.select(forward, np, False, 2, 8).name
    assert chosen in ("jit_blocked", "jit_direct") and algorithms.direct_weight_grad(forward)
    got = tconv.conv(x, w, b, padding=1)
    np.testing.assert_allclose(got, naive_conv(x, w, b, pads=[(1, 1)] * 2), atol=1e-10)
    with tconv.avoid_algorithms("jit_blocked"):
        got = tconv.conv_transpose(x, w, b, padding=1)
    np.testing.assert_allclose(got, naive_conv_transpose(x, w, b, stride=[1, 1], pads=[(1, 1)] * 2), atol=1e-10)
    gy, v = rng.standard_normal((2, 16, 12, 12)), rng.standard_normal(w.shape)
    _, gw, _ = tconv.conv_grad(gy, x, w, padding=1)
    expected = np.vdot(naive_conv(x, v, None, pads=[(1, 1)] * 2), gy)
    np.testing.assert_allclose(np.vdot(gw, v), expected, rtol=1e-9)


@needs_jit
@pytest.mark.parametrize("algorithm", ["jit_im2col", "jit_direct"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [1, 4])
def test_a_stride_one_transposed_convolution_runs_as_its_forward_twin(algorithm, channels_last, groups, request):
    """jit_im2col, and jit_direct through the direct sum of the forward twin (the transposed direct sum's cost
    made prohibitive, so that every case takes that route), forced on transposed convolutions: stride 1 with
    dilation, asymmetric crops up to d*(k-1), output_padding (allowed where the dilation exceeds it), 1x1
    kernels, 1-D to 3-D, batched and not, against the oracle; jit_im2col refuses a stride above 1, or a crop
    beyond d*(k-1)."""
    if algorithm == "jit_direct":
        saved = _tuning.DIRECT_RATE
        _tuning.DIRECT_RATE = 1.0  # multiply-adds a second: the transposed sum never looks cheaper

        def restore() -> None:
            _tuning.DIRECT_RATE = saved
            algorithms.direct_twin.cache_clear()

        request.addfinalizer(restore)
        algorithms.direct_twin.cache_clear()
    rng = np.random.default_rng(10 + groups)
    for spatial, kernel, dilation, pads, extra in (
        ((11,), (4,), (2,), [(6, 0)], (1,)),
        ((9, 7), (3, 2), (1, 3), [(2, 0), (0, 3)], (0, 2)),
        ((5, 6, 4), (2, 3, 2), (1, 1, 2), [(1, 1), (0, 2), (2, 1)], (0, 0, 1)),
        ((6, 5), (1, 1), (1, 1), [(0, 0), (0, 0)], (0, 0)),
    ):
        x = rng.standard_normal((2, 8, *spatial))
        w = rng.standard_normal((8, 12 // groups, *kernel))
        b = rng.standard_normal(12)
        ones = [1] * len(spatial)
        expected = naive_conv_transpose(
            x, w, b, stride=ones, pads=pads, dilation=list(dilation), output_padding=list(extra), groups=groups
        )
        options = {"padding": pads, "dilation": dilation, "output_padding": extra, "groups": groups}
        if algorithm == "jit_direct":
            spec = tconv.ConvSpec.build(transposed=True, input_size=spatial, kernel_size=kernel, in_channels=8,
                                        out_channels=12, **options)  # fmt: skip
            assert algorithms.direct_twin(spec) is not None
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        with tconv.use_algorithm(algorithm):
            got = tconv.conv_transpose(xin, w, b, channels_last=channels_last, **options)
            single = tconv.conv_transpose(xin[0], w, b, channels_last=channels_last, **options)
            low = tconv.conv_transpose(xin.astype(np.float32), w.astype(np.float32), channels_last=channels_last,
                                       **options)  # fmt: skip
        if channels_last:
            got, single, low = np.moveaxis(got, -1, 1), np.moveaxis(single, -1, 0), np.moveaxis(low, -1, 1)
        np.testing.assert_allclose(got, expected, atol=1e-10)
        np.testing.assert_allclose(single, expected[0], atol=1e-10)
        bias_shape = (1, -1) + (1,) * len(spatial)
        assert low.dtype == np.float32
        np.testing.assert_allclose(low, expected - b.reshape(bias_shape), rtol=1e-4, atol=1e-4)
    if algorithm != "jit_im2col":
        return
    x, w = rng.standard_normal((1, 4, 9)), rng.standard_normal((4, 4 // groups, 3))
    with tconv.use_algorithm("jit_im2col"):
        for options in ({"stride": 2}, {"padding": 3}):  # 3 > d*(k-1) = 2
            with pytest.raises(ValueError, match="does not support"):
                tconv.conv_transpose(x, w, groups=groups, **options)


WINOGRADS = ["jit_winograd", "jit_winograd4"]  # F(2x2, 3x3) and F(4x4, 3x3)


@needs_jit
@pytest.mark.parametrize("algorithm", WINOGRADS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_winograd_matches_the_oracle(channels_last, algorithm):
    """jit_winograd and jit_winograd4 forced on 3x3 stride-1 convolutions: symmetric and asymmetric padding (none
    to more than the kernel), output sizes of every remainder (a last row or column of tiles partly outside), one
    output row or column, 1 to 9 channels, batched and not, with and without bias; float64 to 1e-10 of the
    oracle, float32 to 1e-4; and stride-1 transposed 3x3 convolutions through their forward twin (crops, output
    padding)."""
    rng = np.random.default_rng(21)
    for spatial, pads, c_in, c_out in (
        ((7, 7), [(1, 1), (1, 1)], 3, 5),
        ((8, 6), [(0, 0), (0, 0)], 4, 2),
        ((5, 9), [(2, 0), (0, 3)], 1, 7),
        ((3, 3), [(0, 0), (0, 0)], 9, 1),
        ((1, 12), [(1, 1), (0, 0)], 2, 3),
        ((6, 11), [(4, 1), (2, 5)], 6, 6),
        ((16, 15), [(1, 1), (1, 1)], 8, 9),
        ((13, 22), [(1, 2), (0, 1)], 5, 4),  # 4x4 tiles: a last row of one output row, a last column of three
        ((19, 17), [(0, 0), (3, 0)], 3, 3),  # ... of one row and two columns
    ):
        x = rng.standard_normal((2, c_in, *spatial))
        w = rng.standard_normal((c_out, c_in, 3, 3))
        b = rng.standard_normal(c_out)
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        for bias in (b, None):
            expected = naive_conv(x, w, bias, stride=[1, 1], pads=pads, dilation=[1, 1])
            with tconv.use_algorithm(algorithm):
                got = tconv.conv(xin, w, bias, padding=pads, channels_last=channels_last)
                single = tconv.conv(xin[1], w, bias, padding=pads, channels_last=channels_last)
                low = tconv.conv(xin.astype(np.float32), w.astype(np.float32), None if bias is None else
                                 bias.astype(np.float32), padding=pads, channels_last=channels_last)  # fmt: skip
            if channels_last:
                got, single, low = np.moveaxis(got, -1, 1), np.moveaxis(single, -1, 0), np.moveaxis(low, -1, 1)
            np.testing.assert_allclose(got, expected, atol=1e-10, rtol=1e-10)
            np.testing.assert_allclose(single, expected[1], atol=1e-10, rtol=1e-10)
            assert low.dtype == np.float32
            np.testing.assert_allclose(low, expected, rtol=1e-4, atol=1e-4)
        # the same kernel as a transposed convolution, through its forward twin
        wt = rng.standard_normal((c_in, c_out, 3, 3))
        crops = [(min(lo, 2), min(hi, 2)) for lo, hi in pads]
        extra = [0, 0]
        expected = naive_conv_transpose(x, wt, b, stride=[1, 1], pads=crops, dilation=[1, 1], output_padding=extra)
        with tconv.use_algorithm(algorithm):
            got = tconv.conv_transpose(xin, wt, b, padding=crops, channels_last=channels_last)
        if channels_last:
            got = np.moveaxis(got, -1, 1)
        np.testing.assert_allclose(got, expected, atol=1e-10, rtol=1e-10)


@needs_jit
@pytest.mark.parametrize("algorithm", WINOGRADS)
def test_channels_last_winograd_along_many_and_strided_channels(algorithm):
    """The channels-last transforms (:mod:`.winograd_last`) run along the channels, the output's in blocks of
    CHANNEL_BLOCK: more output channels than two blocks (a remainder), an input whose channels are every other
    element of a larger array (not unit-stride), and outputs whose last row and column of tiles are partly outside;
    against the oracle in float64 and the same call channels-first in float32 (bit for bit with one input
    channel)."""
    from tconv.implementations.compiled import winograd_last

    rng = np.random.default_rng(24)
    c_out = 2 * winograd_last.CHANNEL_BLOCK + 3
    wide = rng.standard_normal((2, 7, 9, 10))  # (N, H, W, 2 C_in): channels taken every other one
    x_last = wide[..., ::2]
    x = np.ascontiguousarray(np.moveaxis(x_last, -1, 1))
    w = rng.standard_normal((c_out, 5, 3, 3))
    b = rng.standard_normal(c_out)
    pads = [(1, 0), (2, 1)]
    expected = naive_conv(x, w, b, stride=[1, 1], pads=pads, dilation=[1, 1])
    with tconv.use_algorithm(algorithm):
        got = tconv.conv(x_last, w, b, padding=pads, channels_last=True)
        first32 = tconv.conv(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), padding=pads)
        last32 = tconv.conv(
            np.ascontiguousarray(x_last, dtype=np.float32), w.astype(np.float32), b.astype(np.float32),
            padding=pads, channels_last=True,
        )  # fmt: skip
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(np.moveaxis(last32, -1, 1), first32, atol=1e-4, rtol=1e-4)
    # one input channel: the products are single multiplications in both layouts, so the transforms alone
    # decide the bits, and they compute every value as the channels-first kernels do
    x1 = rng.standard_normal((2, 1, 13, 11)).astype(np.float32)
    w1, b1 = rng.standard_normal((6, 1, 3, 3)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    with tconv.use_algorithm(algorithm):
        first = tconv.conv(x1, w1, b1, padding=[(1, 2), (0, 1)])
        last = tconv.conv(np.moveaxis(x1, 1, -1), w1, b1, padding=[(1, 2), (0, 1)], channels_last=True)
    np.testing.assert_array_equal(np.moveaxis(last, -1, 1), first)


@needs_jit
@pytest.mark.parametrize("algorithm", WINOGRADS)
def test_winograd_refuses_what_it_does_not_compute(algorithm):
    """Only 2-D 3x3 kernels at stride 1 (any dilation), one group (and stride-1 transposed twins of those)."""
    rng = np.random.default_rng(22)
    x = rng.standard_normal((1, 4, 8, 8))
    with tconv.use_algorithm(algorithm):
        for w, options in (
            (rng.standard_normal((4, 4, 5, 5)), {}),
            (rng.standard_normal((4, 4, 3, 3)), {"stride": 2}),
            (rng.standard_normal((4, 4, 3, 3)), {"stride": (1, 2), "dilation": 2}),
            (rng.standard_normal((4, 2, 3, 3)), {"groups": 2}),
        ):
            with pytest.raises(ValueError, match="does not support"):
                tconv.conv(x, w, **options)
        with pytest.raises(ValueError, match="does not support"):
            tconv.conv(rng.standard_normal((1, 4, 8)), rng.standard_normal((4, 4, 3)))
        with pytest.raises(ValueError, match="does not support"):
            tconv.conv_transpose(x, rng.standard_normal((4, 4, 3, 3)), stride=2)


@needs_jit
@pytest.mark.parametrize("algorithm", WINOGRADS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_dilated_winograd_phase_by_phase_matches_the_oracle(channels_last, algorithm, monkeypatch):
    """A dilated 3x3 convolution by Winograd, one undilated convolution per phase of the outputs, against the
    oracle: dilations (2, 2) to (5, 3), one axis dilated, paddings from none to more than the dilation and
    asymmetric, maps where some phases hold no input (all padding: the bias alone) or a single output; batch 1
    and 3; in chunks of one row of tiles on the team; and the stride-1 transposed twin of a dilated layer."""
    rng = np.random.default_rng(41)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0)
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 16 * 9 * 4 * 8)  # about a row of tiles a chunk
    monkeypatch.setattr(_tuning, "CHUNK_BYTES", 16 * 9 * 4 * 8)  # the same without a team (one thread)
    checked = 0
    for size in ((9, 7), (13, 10), (3, 4), (2, 12)):
        for dilation in ((2, 2), (3, 2), (1, 3), (5, 3)):
            for pads in ([(0, 0), (0, 0)], [(1, 1), (2, 2)], [(2, 3), (1, 0)], [(5, 4), (4, 6)]):
                out = [n + lo + hi - 2 * d for n, (lo, hi), d in zip(size, pads, dilation)]
                if min(out) < 1:
                    continue
                batch = 1 + 2 * (checked % 2)
                x, w, b = (
                    rng.standard_normal((batch, 3, *size)),
                    rng.standard_normal((4, 3, 3, 3)),
                    rng.standard_normal(4),
                )
                expected = naive_conv(x, w, b, stride=[1, 1], pads=pads, dilation=list(dilation))
                xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
                with tconv.use_algorithm(algorithm):
                    got = tconv.conv(xin, w, b, padding=pads, dilation=dilation, channels_last=channels_last)
                np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)
                checked += 1
    assert checked > 40
    x, wt, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((3, 4, 3, 3)), rng.standard_normal(4)
    expected = naive_conv_transpose(
        x, wt, b, stride=[1, 1], pads=[(2, 2), (1, 1)], dilation=[2, 3], output_padding=[0, 0]
    )
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
    with tconv.use_algorithm(algorithm):
        got = tconv.conv_transpose(xin, wt, b, padding=(2, 1), dilation=(2, 3), channels_last=channels_last)
    np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)


@needs_jit
def test_every_padded_layout_in_chunks_matches_the_oracle(monkeypatch):
    """row_length made to pad every row and plane by an odd amount (so that no buffer is the matrix BLAS reads),
    with the calls cut small: Winograd in rows of tiles on the team (chunks starting inside a sample), both
    layouts; jit_gemm's forward call and gradients in whole samples and, for one sample on the team, in blocks
    of pixels; all against the oracle."""
    from tconv.implementations.compiled import winograd

    def always(count, itemsize):
        return count + 3

    monkeypatch.setattr(im2col, "row_length", always)
    monkeypatch.setattr(winograd, "row_length", always)
    rng = np.random.default_rng(29)
    x = rng.standard_normal((3, 5, 13, 10))
    w = rng.standard_normal((6, 5, 3, 3))
    b = rng.standard_normal(6)
    expected = naive_conv(x, w, b, stride=[1, 1], pads=[(1, 1), (1, 1)], dilation=[1, 1])
    monkeypatch.setattr(_tuning, "CHUNK_BYTES", 16 * 11 * 5 * 8 * 2)  # two rows of tiles a chunk
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0)
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 16 * 11 * 5 * 8)  # one row of tiles
    for channels_last, algorithm in itertools.product((False, True), WINOGRADS):
        xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
        with tconv.use_algorithm(algorithm):
            got = tconv.conv(xin, w, b, padding=1, channels_last=channels_last)
        np.testing.assert_allclose(np.moveaxis(got, -1, 1) if channels_last else got, expected, atol=1e-10)
    monkeypatch.undo()
    monkeypatch.setattr(im2col, "row_length", always)
    monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)  # the team, one sample in blocks of pixels
    blocks = []
    for name in ("_conv_in_pixel_blocks", "_grads_in_pixel_blocks"):
        original = getattr(im2col, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            blocks.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(im2col, name, spy)
    axis = Axis(9, 3, 1, 1, 1, 1)
    x16, w16 = rng.standard_normal((3, 16, 13, 10)), rng.standard_normal((6, 16, 3, 3))
    expected16 = naive_conv(x16, w16, b, stride=[1, 1], pads=[(1, 1), (1, 1)], dilation=[1, 1])
    for batch in (1, 3):
        for transposed in (False, True):
            _grads_match(Case(transposed, (axis, axis), cin_g=3, cout_g=18, batch=batch, seed=batch), "jit_gemm")
        with tconv.use_algorithm("jit_gemm"):
            got = tconv.conv(x16[:batch], w16, b, padding=1)
        np.testing.assert_allclose(got, expected16[:batch], atol=1e-10)
    if team.size() > 1:  # one sample on a team of two: both pixel-block paths ran
        assert set(blocks) == {"_conv_in_pixel_blocks", "_grads_in_pixel_blocks"}


@needs_jit
def test_winograd_kernel_transform_in_blocks_on_the_team(monkeypatch):
    """U = G g G^T for 1200 kernels (blocks of 512, the last partial), on the team in ranges and in one thread,
    against the matrices applied by einsum; float32 and float64; F(2x2, 3x3)'s 4x3 G and F(4x4, 3x3)'s 6x3."""
    from tconv.implementations.compiled import winograd

    rng = np.random.default_rng(31)
    weight = rng.standard_normal((40, 30, 3, 3))
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])  # F(2x2, 3x3)'s G (Lavin and Gray)
    expected = np.einsum("ai,ocij,bj->aboc", g, weight, g).reshape(16, 40, 30)
    # F(4x4, 3x3)'s G (Lavin and Gray's points 0, 1, -1, 2, -2 and infinity)
    g4 = np.array([[6, 0, 0], [-4, -4, -4], [-4, 4, -4], [1, 2, 4], [1, -2, 4], [0, 0, 24]]) / 24
    expected4 = np.einsum("ai,ocij,bj->aboc", g4, weight, g4).reshape(36, 40, 30)
    for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 1e-5)):
        for m, want in ((2, expected), (4, expected4)):
            alone = winograd.transformed_kernel(weight, dtype, m=m)
            monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0)
            monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
            on_team = winograd.transformed_kernel(weight, dtype, m=m)
            monkeypatch.undo()
            assert alone.dtype == on_team.dtype == dtype
            np.testing.assert_allclose(alone, want, rtol=tolerance, atol=tolerance)
            np.testing.assert_array_equal(on_team, alone)


@needs_jit
@pytest.mark.parametrize("algorithm", WINOGRADS)
def test_winograd_in_chunks_of_tile_rows(monkeypatch, algorithm):
    """A chunk budget below one sample's buffers cuts each sample into rows of tiles (and a team run into
    chunks on every thread): the same numbers as one chunk, against the oracle."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((3, 5, 13, 10))
    w = rng.standard_normal((6, 5, 3, 3))
    expected = naive_conv(x, w, None, stride=[1, 1], pads=[(1, 1), (1, 1)], dilation=[1, 1])
    # the bytes of a row of tiles, transformed input and output (16 values a 2x2 tile, 36 a 4x4 one)
    positions, tile_rows, columns = (16, 7, 5) if algorithm == "jit_winograd" else (36, 4, 3)
    row_bytes = positions * 11 * columns * 8
    with tconv.use_algorithm(algorithm):
        whole = tconv.conv(x, w, padding=1)
        monkeypatch.setattr(_tuning, "CHUNK_BYTES", row_bytes * 2)  # two rows of tiles
        monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0)  # the team, whatever the call's size
        monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", row_bytes)  # one row of tiles
        rows = tconv.conv(x, w, padding=1)
    assert schedule.chunks(3, tile_rows, row_bytes, row_bytes, 2)[0] == (0, 1, 0, 1)
    np.testing.assert_allclose(whole, expected, atol=1e-10)
    np.testing.assert_array_equal(rows, whole)


@needs_jit
@pytest.mark.parametrize("side, algorithm", [(12, "jit_winograd"), (16, "jit_winograd4")])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_winograd_route_the_planner_chooses_matches_the_oracle(channels_last, side, algorithm):
    """Unforced: a 64-channel 3x3 layer at batch 4, where the planner runs the convolution and the stride-1
    transposed convolution (its twin) by Winograd (asserted: F(2x2, 3x3) over 12x12, F(4x4, 3x3) over 16x16),
    and the convolution's gradients (the input gradient through the same route), against the oracle on one
    output channel of every call (the oracle's loops are slow). ``jit_blocked`` is avoided: channels-last, where
    256-bit vectors are priced, it would run these across the samples, cheaper by the model and measured so at 512
    bits ((4, 12, 12, 64): 0.43 ms against 0.48-0.56 by Winograd). So is ``jit_dots``: channels-last over 12x12 its
    vectors along the output channels come within rule 3's margin (float64: 0.77 ms against 0.87 by F(2x2, 3x3),
    forty-fourth session)."""
    from tconv.engine import planner

    rng = np.random.default_rng(32)
    x, w, b = rng.standard_normal((4, 64, side, side)), rng.standard_normal((64, 64, 3, 3)), rng.standard_normal(64)
    with tconv.avoid_algorithms("jit_blocked", "jit_dots"):
        for transposed in (False, True):
            spec = _spec(transposed, x.shape, w.shape, padding=1)
            assert planner.select(spec, np, channels_last, 4, 8).name == algorithm
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        pads = [(1, 1)] * 2
        got = tconv.conv(xin, w, b, padding=1, channels_last=channels_last)
        back = tconv.conv_transpose(xin, w, b, padding=1, channels_last=channels_last)
        gy = rng.standard_normal(got.shape)
        gx, gw, gb = tconv.conv_grad(gy, xin, w, padding=1, channels_last=channels_last)
    if channels_last:
        got, back, gy, gx = (np.moveaxis(a, -1, 1) for a in (got, back, gy, gx))
    picked = slice(5, 6)  # one output channel
    np.testing.assert_allclose(got[:, picked], naive_conv(x, w[picked], b[picked], stride=[1, 1], pads=pads), atol=1e-9)
    expected = naive_conv_transpose(x, w[:, picked], b[picked], stride=[1, 1], pads=pads)
    np.testing.assert_allclose(back[:, picked], expected, atol=1e-9)
    np.testing.assert_allclose(gx[:, picked], naive_conv_transpose(gy, w[:, picked], None, stride=[1, 1], pads=pads),
                               atol=1e-9)  # fmt: skip
    v = np.zeros(w.shape)
    v[picked] = rng.standard_normal(v[picked].shape)
    expected = np.vdot(naive_conv(x, v[picked], None, pads=pads), gy[:, picked])
    np.testing.assert_allclose(np.vdot(gw, v), expected, rtol=1e-9)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), atol=1e-9)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_matches_the_oracle(channels_last):
    """jit_pointwise forced on 1x1 kernels with no padding: convolutions of strides 1-3 (strided pixels copied
    together), transposed convolutions (the weight's matrix read transposed) at stride 1 and, every other one,
    at strides 1-3 with dilation and output padding (the stride-1 products scattered among the bias), 1-D to
    3-D, groups of one channel to several, a batch of one and more, with and without bias, float64 to 1e-10 of
    the oracle and float32 to 1e-4, from x in place and from a non-contiguous view of it."""
    rng = np.random.default_rng(41)
    for trial in range(80):
        d = 1 + trial % 3
        groups = (1, 1, 2, 3)[trial % 4]
        cg_in, cg_out = 1 + trial % 5, 1 + (trial * 3) % 4
        transposed = trial % 2 == 1
        scattered = transposed and (trial // 4) % 2 == 0  # groups 1 and 3, x in place and a view, both ways
        stride = [1] * d if transposed and not scattered else [int(s) for s in rng.integers(1, 4, size=d)]
        dilation = [int(v) for v in rng.integers(1, 4, size=d)] if scattered else [1] * d
        output_padding = [int(rng.integers(0, max(s, v))) for s, v in zip(stride, dilation)] if scattered else [0] * d
        spatial = tuple(int(n) for n in rng.integers(1, 8, size=d))
        x = rng.standard_normal((1 + trial % 3, cg_in * groups, *spatial))
        k = (1,) * d
        w = rng.standard_normal((cg_in * groups, cg_out, *k) if transposed else (cg_out * groups, cg_in, *k))
        b = rng.standard_normal(cg_out * groups) if trial % 5 else None
        if transposed:
            expected = naive_conv_transpose(x, w, b, stride=stride, pads=[(0, 0)] * d, groups=groups,
                                            dilation=dilation, output_padding=output_padding)  # fmt: skip
        else:
            expected = naive_conv(x, w, b, stride=stride, pads=[(0, 0)] * d, groups=groups)
        fn = tconv.conv_transpose if transposed else tconv.conv
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        if trial % 4 == 3:  # a view of every other element of a larger array
            wide = np.zeros((*xin.shape[:-1], 2 * xin.shape[-1]))
            wide[..., ::2] = xin
            xin = wide[..., ::2]
        options = {"stride": stride, "groups": groups, "channels_last": channels_last}
        if scattered:
            options.update(dilation=dilation, output_padding=output_padding)
        with tconv.use_algorithm("jit_pointwise"):
            got = fn(xin, w, b, **options)
            low = fn(xin.astype(np.float32), w.astype(np.float32), None if b is None else b.astype(np.float32),
                     **options)  # fmt: skip
        if channels_last:
            got, low = np.moveaxis(got, -1, 1), np.moveaxis(low, -1, 1)
        np.testing.assert_allclose(got, expected, atol=1e-10, rtol=1e-10)
        assert low.dtype == np.float32
        np.testing.assert_allclose(low, expected, atol=1e-4, rtol=1e-4)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("forced", [False, True])
def test_pointwise_weight_gradient_matches_the_oracle(monkeypatch, channels_last, forced):
    """The weight gradient of 1x1 convolutions with no padding (``jit_pointwise``'s, chosen by the planner or
    forced) through ``tconv.conv_grad``: at stride 1 with one group from x and the output gradient where they lie
    (one product channels-last; channels-first one a sample, summed in stacks of one sample and of all), 1-D to 3-D,
    a batch of one and more, x in place and a view of every other element of a larger array, float64 and float32;
    channels-first layers of few pixels and many channels, strided and grouped layers, left to the im2col route.
    Against the oracle's adjoint: the directional derivative of <conv(x, w), gy> along v is <conv(x, v), gy>."""
    from tconv.implementations.compiled import pointwise

    taken: list[bool] = []
    original = pointwise.weight_grad

    def spied(*args):  # type: ignore[no-untyped-def]
        result = original(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(pointwise, "weight_grad", spied)
    rng = np.random.default_rng(47)
    #: spatial, c_in, c_out, stride, groups, batch, whether the products run where x lies (channels-first)
    cases = (
        ((9, 7), 3, 5, 1, 1, 4, True),
        ((23,), 6, 1, 1, 1, 1, True),
        ((4, 3, 5), 2, 7, 1, 1, 3, True),
        ((2, 2), 24, 40, 1, 1, 3, False),  # 4 pixels of 24 and 40 channels: channels-first, the im2col route
        ((6, 5), 4, 6, 2, 1, 2, False),  # strided
        ((5, 5), 4, 6, 1, 2, 2, False),  # two groups
    )
    for number, (spatial, c_in, c_out, stride, groups, batch, in_place) in enumerate(cases):
        # stacks of one sample (cases 0 and 4), of two with a shorter last one (case 2 in float64), of all
        chunk = {0: 1, 2: 2 * c_in * c_out * 8, 4: 1}.get(number, 30 * 2**20)
        monkeypatch.setattr(_tuning, "CHUNK_BYTES", chunk)
        d = len(spatial)
        x = rng.standard_normal((batch, c_in, *spatial))
        w = rng.standard_normal((c_out, c_in // groups, *(1,) * d))
        oracle = {"stride": [stride] * d, "pads": [(0, 0)] * d, "groups": groups}
        gy = rng.standard_normal(naive_conv(x, w, None, **oracle).shape)
        v = rng.standard_normal(w.shape)
        expected = np.vdot(naive_conv(x, v, None, **oracle), gy)
        options = {"stride": stride, "groups": groups, "channels_last": channels_last}
        for dtype, tolerance in ((np.float64, 1e-10), (np.float32, 2e-5)):
            xin, gyin = x.astype(dtype), gy.astype(dtype)
            if channels_last:  # channels-last in memory, as a caller's NHWC arrays are
                xin, gyin = (
                    np.ascontiguousarray(np.moveaxis(xin, 1, -1)),
                    np.ascontiguousarray(np.moveaxis(gyin, 1, -1)),
                )
            if number % 3 == 2:  # a view of every other element of a larger array
                wide = np.zeros((*xin.shape[:-1], 2 * xin.shape[-1]), dtype=dtype)
                wide[..., ::2] = xin
                xin = wide[..., ::2]
            del taken[:]
            with tconv.use_algorithm("jit_pointwise") if forced else contextlib.nullcontext():
                _, gw, _ = tconv.conv_grad(gyin, xin, w.astype(dtype), **options)
            assert gw.shape == w.shape and gw.dtype == dtype
            assert taken == [(in_place or channels_last) and stride == 1 and groups == 1]
            scale = float(np.abs(v).ravel() @ np.abs(gw.astype(np.float64)).ravel()) + 1.0
            np.testing.assert_allclose(np.vdot(gw.astype(np.float64), v), expected, rtol=0, atol=tolerance * scale)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_matches_the_oracle(channels_last):
    """jit_depthwise forced on depthwise layers (one input and one output channel per group): convolutions and
    transposed convolutions, 1-D to 3-D, strides 1-3, dilations 1-2, symmetric and asymmetric padding, output
    padding, kernels longer than the input, one channel to many, a batch of one and more, unbatched calls, with
    and without bias, float64 to 1e-10 of the oracle and float32 to 1e-4, from x in place and from a
    non-contiguous view of it (channels-first calls run the same kernel with the channels a plane apart)."""
    rng = np.random.default_rng(43)
    for trial in range(48):
        d = 1 + trial % 3
        channels = (1, 3, 8, 17)[trial % 4]
        transposed = trial % 2 == 1
        stride = [int(v) for v in rng.integers(1, 4, size=d)]
        dilation = [int(v) for v in rng.integers(1, 3, size=d)]
        k = [int(v) for v in rng.integers(1, 5, size=d)]
        spatial = tuple(int(n) for n in rng.integers(1, 9, size=d))
        reach = [dd * (kk - 1) for kk, dd in zip(k, dilation)]
        pads = [(int(rng.integers(0, r + 1)), int(rng.integers(0, r + 1))) for r in reach]
        extra = [int(rng.integers(0, max(s, dd))) if transposed else 0 for s, dd in zip(stride, dilation)]
        if transposed:  # the crop leaves at least one output
            full = [(n - 1) * s + r + 1 for n, s, r in zip(spatial, stride, reach)]
            pads = [(min(lo, f - 1), min(hi, f - 1 - min(lo, f - 1))) for (lo, hi), f in zip(pads, full)]
        else:  # a convolution needs a window inside the padded input
            spatial = tuple(max(n, r + 1 - lo - hi) for n, r, (lo, hi) in zip(spatial, reach, pads))
        x = rng.standard_normal((1 + trial % 3, channels, *spatial))
        w = rng.standard_normal((channels, 1, *k))
        b = rng.standard_normal(channels) if trial % 5 else None
        options = {"stride": stride, "dilation": dilation, "groups": channels}
        if transposed:
            expected = naive_conv_transpose(x, w, b, pads=pads, output_padding=extra, **options)
            fn, call = tconv.conv_transpose, {**options, "padding": pads, "output_padding": extra}
        else:
            expected = naive_conv(x, w, b, pads=pads, **options)
            fn, call = tconv.conv, {**options, "padding": pads}
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        if trial % 4 == 3:  # a view of every other element of a larger array
            wide = np.zeros((*xin.shape[:-1], 2 * xin.shape[-1]))
            wide[..., ::2] = xin
            xin = wide[..., ::2]
        with tconv.use_algorithm("jit_depthwise"):
            got = fn(xin, w, b, channels_last=channels_last, **call)
            single = fn(xin[0], w, b, channels_last=channels_last, **call)
            low = fn(xin.astype(np.float32), w.astype(np.float32), None if b is None else b.astype(np.float32),
                     channels_last=channels_last, **call)  # fmt: skip
        if channels_last:
            got, low, single = np.moveaxis(got, -1, 1), np.moveaxis(low, -1, 1), np.moveaxis(single, -1, 0)
        np.testing.assert_allclose(got, expected, atol=1e-10, rtol=1e-10)
        np.testing.assert_allclose(single, expected[0], atol=1e-10, rtol=1e-10)
        assert low.dtype == np.float32
        np.testing.assert_allclose(low, expected, atol=1e-4, rtol=1e-4)


def _depthwise_call(rng, transposed, channels, stride, dilation, k, spatial):
    """A drawn depthwise call for the depthwise kernels' oracle tests: its output padding, padding (a transposed
    call's any crop that leaves an output, wider than the kernel's reach too; a convolution's a window inside the
    padded input, the input grown where it needs), a batch of one or two, weight and bias (or none); returns ``(x,
    w, b, fn, options, expected)``, ``expected`` the oracle's."""
    reach = [dd * (kk - 1) for kk, dd in zip(k, dilation)]
    extra = [int(rng.integers(0, max(st, dd))) if transposed else 0 for st, dd in zip(stride, dilation)]
    if transposed:
        full = [(n - 1) * st + r + 1 for n, st, r in zip(spatial, stride, reach)]
        lows = [int(rng.integers(0, f)) for f in full]
        pads = [(lo, int(rng.integers(0, f - lo))) for lo, f in zip(lows, full)]
    else:
        pads = [(int(rng.integers(0, r + 1)), int(rng.integers(0, r + 1))) for r in reach]
        spatial = tuple(max(n, r + 1 - lo - hi) for n, r, (lo, hi) in zip(spatial, reach, pads))
    x = rng.standard_normal((int(rng.integers(1, 3)), channels, *spatial))
    w = rng.standard_normal((channels, 1, *k))
    b = rng.standard_normal(channels) if rng.integers(0, 3) else None
    options = {"stride": stride, "dilation": dilation, "groups": channels, "padding": pads}
    if transposed:
        expected = naive_conv_transpose(x, w, b, pads=pads, output_padding=extra, stride=stride, dilation=dilation,
                                        groups=channels)  # fmt: skip
        return x, w, b, tconv.conv_transpose, {**options, "output_padding": extra}, expected
    expected = naive_conv(x, w, b, pads=pads, stride=stride, dilation=dilation, groups=channels)
    return x, w, b, tconv.conv, options, expected


@needs_jit
def test_depthwise_channels_first_through_its_tile_matches_the_oracle(monkeypatch):
    """Channels-first depthwise convolutions through the channels-last tile (``depthwise_tile.run``, asserted by
    its jobs: a sample's block of a vector's lanes of channels): 8, 9 and 21 channels (whole blocks and parts in
    both dtypes); rows shorter than, as long as and longer than a block (the last block overlapping); output
    rows of 1-13 pixels (blocks of eight, four and single pixels, flushed across rows); strides 1-4 and kernels
    shorter than the stride, dilation, asymmetric and no padding, 1-D to 3-D, float64 to 1e-10 of the oracle and
    float32 to 1e-4, with and without bias, forced and as the planner's choice. Transposed convolutions too: at
    stride 1 as the flipped kernel's convolution (crops wider than the kernel's reach, output padding under the
    dilation), strided by the output's phases (strides 2-4, kernels shorter than the stride, phases with no
    tap, output padding under the stride). Dtype, rank, batch, bias and direction are drawn independently; a
    4-D call is not the tile's (its arithmetic is 3-D)."""
    from tconv import _tuning
    from tconv.engine import planner
    from tconv.implementations.compiled import depthwise_tile

    jobs = []
    ranges = team.ranges
    monkeypatch.setattr(team, "ranges", lambda kernel, count, work: (jobs.append(count), ranges(kernel, count, work)))
    rng = np.random.default_rng(47)
    for _ in range(60):  # each setting drawn on its own
        d = int(rng.integers(1, 4))
        dtype = (np.float64, np.float32)[int(rng.integers(0, 2))]
        transposed = bool(rng.integers(0, 2))
        lanes = _tuning.VECTOR_BYTES // np.dtype(dtype).itemsize
        channels = (8, 9, 21)[int(rng.integers(0, 3))]  # a float32 vector's lanes at least (both dtypes' blocks)
        stride = [1] * d if transposed and rng.integers(0, 2) else [int(v) for v in rng.integers(1, 5, size=d)]
        dilation = [int(v) for v in rng.integers(1, 3, size=d)] if rng.integers(0, 4) == 0 else [1] * d
        k = [int(v) for v in rng.integers(1, 6, size=d)]
        sizes = {1: (3, 40), 2: (2, 24), 3: (2, 9)}[d]
        spatial = tuple(int(n) for n in rng.integers(*sizes, size=d))
        x, w, b, fn, options, expected = _depthwise_call(rng, transposed, channels, stride, dilation, k, spatial)
        spec = _spec(transposed, x.shape, w.shape, **options)
        assert depthwise_tile.fits(spec, np.dtype(dtype).itemsize)
        jobs.clear()
        with tconv.use_algorithm("jit_depthwise"):
            got = fn(x.astype(dtype), w.astype(dtype), None if b is None else b.astype(dtype), **options)
        assert jobs == [x.shape[0] * -(-channels // lanes)]
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, **({"atol": 1e-10, "rtol": 1e-10} if dtype == np.float64 else
                                                     {"atol": 1e-4, "rtol": 1e-4}))  # fmt: skip
    assert not depthwise_tile.fits(_spec(False, (1, 8, 4, 4, 4, 4), (8, 1, 3, 3, 3, 3), groups=8, padding=1))
    # ... and such a call whose dead taps make the engine price every algorithm (the tile's 3-D unpacking once
    # raised ValueError there) runs, right
    x4, w4 = rng.standard_normal((1, 8, 4, 4, 4, 4)), rng.standard_normal((8, 1, 3, 3, 3, 3))
    got = tconv.conv(x4, w4, dilation=6, padding=6, groups=8)
    expected = naive_conv(x4, w4, stride=[1] * 4, pads=[(6, 6)] * 4, dilation=[6] * 4, groups=8)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    # chosen: a MobileNet-like 3x3 stride-2 layer channels-first
    x, w, b = rng.standard_normal((2, 24, 28, 28)), rng.standard_normal((24, 1, 3, 3)), rng.standard_normal(24)
    spec = _spec(False, x.shape, w.shape, groups=24, stride=2, padding=1)
    assert planner.select(spec, np, False, 2, 8).name == "jit_depthwise"
    got = tconv.conv(x, w, b, stride=2, padding=1, groups=24)
    np.testing.assert_allclose(got, naive_conv(x, w, b, stride=[2, 2], pads=[(1, 1)] * 2, groups=24), atol=1e-10)
    # chosen: 3x3 transposed ones at strides 1 and 2 (a depthwise layer's input gradient)
    for stride in (1, 2):
        spec = _spec(True, x.shape, w.shape, groups=24, stride=stride, padding=1)
        assert planner.select(spec, np, False, 2, 8).name == "jit_depthwise"
        got = tconv.conv_transpose(x, w, b, stride=stride, padding=1, groups=24)
        expected = naive_conv_transpose(x, w, b, stride=[stride] * 2, pads=[(1, 1)] * 2, groups=24)
        np.testing.assert_allclose(got, expected, atol=1e-10)


@needs_jit
def test_depthwise_channels_last_by_rows_matches_the_oracle(monkeypatch):
    """Channels-last depthwise convolutions by rows of vectors of channels (``depthwise_rows.run_rows``, asserted by its
    jobs: a block of ``DEPTHWISE_JOB_PIXELS`` outputs along the last axis of every row), and strided transposed ones
    by rows of their output's phases (``depthwise_rows.run_phases``: a row a job): channels a whole number of the
    kernel's vectors and not (the last vector overlapping the one before), rows of 1-40 outputs (blocks of eight
    and of four, each the last overlapping the one before; eight outputs of a phase a stride apart; single outputs
    at the padding, and a row cut into jobs of fewer outputs than a block), strides 1-4, kernels shorter than the
    stride, dilation, asymmetric and no padding, output padding, 1-D to 3-D, float64 to 1e-10 of the oracle and
    float32 to 1e-4, with and without bias, x in place, as a strided view of its pixels and with its channels
    strided (copied). Transposed ones at stride 1 as the flipped kernel's convolution, crops wider than the
    kernel's reach included. Every output is summed alike whichever block holds it: a convolution equals itself
    cut into jobs of one output (bitwise)."""
    from tconv.implementations.compiled import depthwise_rows, machine

    lanes = machine.vector_bytes() // 4  # the float32 vector's lanes: the least channels for either dtype
    jobs = []
    ranges = team.ranges
    monkeypatch.setattr(team, "ranges", lambda kernel, count, work: (jobs.append(count), ranges(kernel, count, work)))
    rng = np.random.default_rng(48)
    for trial in range(90):  # each setting drawn on its own
        d = int(rng.integers(1, 4))
        dtype = (np.float64, np.float32)[int(rng.integers(0, 2))]
        kind = int(rng.integers(0, 3))  # a convolution, a stride-1 transposed one, a strided transposed one
        transposed = kind > 0
        channels = (lanes, lanes + 1, 2 * lanes + 3, 5 * lanes)[int(rng.integers(0, 4))]
        stride = [int(v) for v in rng.integers(1, 5, size=d)]
        if kind == 1:
            stride = [1] * d
        elif kind == 2 and all(st == 1 for st in stride):
            stride[-1] = 2
        dilation = [int(v) for v in rng.integers(1, 3, size=d)] if rng.integers(0, 4) == 0 else [1] * d
        k = [int(v) for v in rng.integers(1, 6, size=d)]
        sizes = {1: (3, 150), 2: (2, 30), 3: (2, 10)}[d]  # 1-D rows of more outputs than a job holds too
        spatial = tuple(int(n) for n in rng.integers(*sizes, size=d))
        x, w, b, fn, options, expected = _depthwise_call(rng, transposed, channels, stride, dilation, k, spatial)
        spec = _spec(transposed, x.shape, w.shape, **options)
        itemsize = np.dtype(dtype).itemsize
        assert (depthwise_rows.phases_fit if kind == 2 else depthwise_rows.rows_fit)(spec, itemsize)
        xl = np.moveaxis(x, 1, -1).astype(dtype)
        view = trial % 3
        if view == 1:  # every other pixel of the last axis of a larger array, read in place
            wide = np.zeros((*xl.shape[:-2], 2 * xl.shape[-2], channels), dtype=dtype)
            wide[..., ::2, :] = xl
            xl = wide[..., ::2, :]
        elif view == 2:  # the channels strided: copied first
            wide = np.zeros((*xl.shape[:-1], 2 * channels), dtype=dtype)
            wide[..., ::2] = xl
            xl = wide[..., ::2]
        wd, bd = w.astype(dtype), None if b is None else b.astype(dtype)
        jobs.clear()
        with tconv.use_algorithm("jit_depthwise"):
            got = fn(xl, wd, bd, channels_last=True, **options)
        size_out = spec.output_size
        rows = x.shape[0] * math.prod(size_out[:-1])
        assert jobs == [rows * -(-size_out[-1] // _tuning.DEPTHWISE_JOB_PIXELS)]
        assert got.dtype == dtype
        np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, **({"atol": 1e-10, "rtol": 1e-10}
                                   if dtype == np.float64 else {"atol": 1e-4, "rtol": 1e-4}))  # fmt: skip
        if trial % 3 == 0:  # one output a job: its blocks are single outputs, none overlaps; the same bits
            block = _tuning.DEPTHWISE_JOB_PIXELS
            monkeypatch.setattr(_tuning, "DEPTHWISE_JOB_PIXELS", 1)
            depthwise_rows._rows_numbers.cache_clear()
            with tconv.use_algorithm("jit_depthwise"):
                single = fn(xl, wd, bd, channels_last=True, **options)
            monkeypatch.setattr(_tuning, "DEPTHWISE_JOB_PIXELS", block)
            depthwise_rows._rows_numbers.cache_clear()
            np.testing.assert_array_equal(single, got)
    assert not depthwise_rows.rows_fit(_spec(False, (1, lanes - 1, 9, 9), (lanes - 1, 1, 3, 3), groups=lanes - 1))
    assert not depthwise_rows.rows_fit(_spec(True, (1, lanes, 9, 9), (lanes, 1, 3, 3), groups=lanes, stride=2))
    assert depthwise_rows.phases_fit(_spec(True, (1, lanes, 9, 9), (lanes, 1, 3, 3), groups=lanes, stride=2))
    # three inputs under a kernel of 21 taps at stride 2: nine outputs of a phase receive three taps each, but
    # not the same three (each reaches the inputs with the next ones), so none of them is summed as a block
    x, w = rng.standard_normal((1, lanes, 3)), rng.standard_normal((lanes, 1, 21))
    with tconv.use_algorithm("jit_depthwise"):
        got = tconv.conv_transpose(np.moveaxis(x, 1, -1), w, stride=2, groups=lanes, channels_last=True)
    expected = naive_conv_transpose(x, w, None, stride=[2], pads=[(0, 0)], groups=lanes)
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10)
    spec = _spec(True, x.shape, w.shape, groups=lanes, stride=2)
    assert not depthwise_rows._phase_blocks(geometry.axes3(spec)).any()
    # ... and one sample of a long 1-D row splits into jobs of DEPTHWISE_JOB_PIXELS outputs (a first version took
    # a row a job: one thread), its blocks of eight within them
    x, w = rng.standard_normal((1, lanes, 300)), rng.standard_normal((lanes, 1, 4))
    jobs.clear()
    with tconv.use_algorithm("jit_depthwise"):
        got = tconv.conv_transpose(np.moveaxis(x, 1, -1), w, stride=2, padding=1, groups=lanes, channels_last=True)
    assert jobs == [-(-600 // _tuning.DEPTHWISE_JOB_PIXELS)]
    spec = _spec(True, x.shape, w.shape, groups=lanes, stride=2, padding=1)
    assert depthwise_rows._phase_blocks(geometry.axes3(spec)).sum() > 500
    expected = naive_conv_transpose(x, w, None, stride=[2], pads=[(1, 1)], groups=lanes)
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10)


@needs_jit
def test_depthwise_refuses_what_it_does_not_compute():
    """Only one input and one output channel per group: a dense layer, a grouped one and a depthwise layer with a
    channel multiplier are refused when forced, naming the algorithm."""
    rng = np.random.default_rng(44)
    x = rng.standard_normal((1, 4, 6, 6))
    with tconv.use_algorithm("jit_depthwise"):
        for w, groups in ((rng.standard_normal((4, 4, 3, 3)), 1), (rng.standard_normal((4, 2, 3, 3)), 2),
                          (rng.standard_normal((8, 1, 3, 3)), 4)):  # fmt: skip
            with pytest.raises(ValueError, match="jit_depthwise"):
                tconv.conv(x, w, groups=groups, padding=1)


@needs_jit
def test_depthwise_splits_one_sample_and_leaves_shared_tables_alone(monkeypatch):
    """jit_depthwise hands a batch of one sample to the team in blocks of output pixels (its first jobs were whole
    samples: a 2-D call at batch 1 ran on one thread), and leaves the transposed tables it shares with jit_pixels
    writeable (a read-only array is another type to numba: jit_pixels' overlap-add was compiled again). Its pair
    count, taken per tap without the tables, is the tables' count. Seven channels: fewer than any vector's lanes,
    so that the call runs the kernel of pairs (more run by rows of the output's phases, tested below)."""
    from tconv.implementations.compiled import depthwise_rows

    jobs = []
    ranges = team.ranges
    monkeypatch.setattr(team, "ranges", lambda kernel, count, work: (jobs.append(count), ranges(kernel, count, work)))
    rng = np.random.default_rng(46)
    x, w = rng.standard_normal((1, 56, 56, 7)), rng.standard_normal((7, 1, 3, 3))
    with tconv.use_algorithm("jit_depthwise"):
        got = tconv.conv_transpose(x, w, stride=2, padding=1, groups=7, channels_last=True)
    assert jobs and jobs[-1] >= 2 * 56
    spec = _spec(True, (1, 7, 56, 56), (7, 1, 3, 3), groups=7, stride=2, padding=1)
    assert not depthwise_rows.phases_fit(spec) and not depthwise_rows.rows_fit(spec)
    tables = [geometry.transposed_tables(*axis) for axis in zip(*geometry.axes3(spec))]
    assert all(t.flags.writeable for triple in tables for t in triple)
    counts = [triple[0].sum() for triple in tables]
    assert geometry.pair_count(spec) == int(np.prod(counts))
    expected = naive_conv_transpose(np.moveaxis(x[:, :, :, :2], -1, 1), w[:2], None, stride=[2, 2], pads=[(1, 1)] * 2,
                                    groups=2)  # fmt: skip
    np.testing.assert_allclose(np.moveaxis(got, -1, 1)[:, :2], expected, atol=1e-10)


@needs_jit
def test_the_depthwise_route_the_planner_chooses_matches_the_oracle():
    """Unforced: a channels-last depthwise 3x3 stride-2 layer of 96 channels at batch 4, which the planner runs on
    jit_depthwise (asserted, the convolution and the transposed convolution), and the convolution's gradients
    (the input gradient through the transposed route), against the oracle on three channels of every call (the
    oracle's loops are slow); channels-first, the same layer and its transposed twin go through jit_depthwise's
    channels-last tile too (the convolution 0.05 ms forced against jit_direct's 0.16)."""
    from tconv.engine import planner

    rng = np.random.default_rng(45)
    x, w, b = rng.standard_normal((4, 96, 14, 14)), rng.standard_normal((96, 1, 3, 3)), rng.standard_normal(96)
    for transposed in (False, True):
        spec = _spec(transposed, x.shape, (96, 1, 3, 3), groups=96, stride=2, padding=1)
        assert planner.select(spec, np, True, 4, 8).name == "jit_depthwise"
        assert planner.select(spec, np, False, 4, 8).name == "jit_depthwise"
    xin = np.moveaxis(x, 1, -1)
    options = {"stride": 2, "padding": 1, "groups": 96, "channels_last": True}
    got = np.moveaxis(tconv.conv(xin, w, b, **options), -1, 1)
    back = np.moveaxis(tconv.conv_transpose(xin, w, b, **options), -1, 1)
    gy = rng.standard_normal(got.shape)
    gx, gw, gb = tconv.conv_grad(np.moveaxis(gy, 1, -1), xin, w, **options)
    gx = np.moveaxis(gx, -1, 1)
    picked = [5, 40, 95]
    pads = [(1, 1)] * 2
    for c in picked:
        one = slice(c, c + 1)
        np.testing.assert_allclose(got[:, one], naive_conv(x[:, one], w[one], b[one], stride=[2, 2], pads=pads),
                                   atol=1e-9)  # fmt: skip
        expected = naive_conv_transpose(x[:, one], w[one], b[one], stride=[2, 2], pads=pads)
        np.testing.assert_allclose(back[:, one], expected, atol=1e-9)
        # the input gradient: the transposed convolution of gy, output padding to x's size (14 from 7)
        expected_gx = naive_conv_transpose(gy[:, one], w[one], None, stride=[2, 2], pads=pads, output_padding=[1, 1])
        np.testing.assert_allclose(gx[:, one], expected_gx, atol=1e-9)
        np.testing.assert_allclose(gb[c], gy[:, c].sum(), atol=1e-9)
        v = rng.standard_normal((1, 1, 3, 3))
        expected = np.vdot(naive_conv(x[:, one], v, None, stride=[2, 2], pads=pads), gy[:, one])
        np.testing.assert_allclose(np.vdot(gw[one], v), expected, rtol=1e-9)


@needs_jit
def test_pointwise_on_an_empty_batch():
    """jit_pointwise called directly on no samples (the operations answer such calls before the engine): an empty
    result of the right shape in either layout, not a division by zero."""
    from tconv.implementations.compiled import pointwise

    spec = _spec(False, (0, 4, 5, 5), (3, 4, 1, 1))
    w = np.ones((3, 4, 1, 1))
    assert pointwise.conv(np.ones((0, 4, 5, 5)), w, None, spec, False).shape == (0, 3, 5, 5)
    assert pointwise.conv(np.ones((0, 5, 5, 4)), w, np.ones(3), spec, True).shape == (0, 5, 5, 3)


@needs_jit
def test_pointwise_refuses_what_it_does_not_compute():
    """Only 1x1 kernels with no padding, in either direction."""
    rng = np.random.default_rng(42)
    x = rng.standard_normal((2, 4, 6, 6))
    with tconv.use_algorithm("jit_pointwise"):
        for w, options in (
            (rng.standard_normal((3, 4, 3, 3)), {}),
            (rng.standard_normal((3, 4, 1, 1)), {"padding": 1}),
            (rng.standard_normal((3, 4, 1, 2)), {}),
        ):
            with pytest.raises(ValueError, match="does not support"):
                tconv.conv(x, w, **options)
        with pytest.raises(ValueError, match="does not support"):
            tconv.conv_transpose(x, rng.standard_normal((4, 3, 1, 1)), padding=1)
        with pytest.raises(ValueError, match="does not support"):
            tconv.conv_transpose(x, rng.standard_normal((4, 3, 2, 2)), stride=2)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_in_blocks_on_the_team(monkeypatch, channels_last):
    """A block budget below one sample cuts the pixels into blocks (a sample smaller than the team into one
    block a thread at least), run on the team: the same numbers as one block, against the oracle."""
    rng = np.random.default_rng(43)
    x = rng.standard_normal((3, 6, 9, 7))
    w, b = rng.standard_normal((5, 6, 1, 1)), rng.standard_normal(5)
    expected = naive_conv(x, w, b, stride=[1, 1], pads=[(0, 0)] * 2)
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    with tconv.use_algorithm("jit_pointwise"):
        whole = tconv.conv(xin, w, b, channels_last=channels_last)
        monkeypatch.setattr(_tuning, "POINTWISE_BLOCK_BYTES", 8 * 11 * 10)  # ten pixels of 11 channels
        monkeypatch.setattr(_tuning, "POINTWISE_MIN_BLOCK", 4)
        monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)  # the team, whatever the call's size
        blocks = tconv.conv(xin, w, b, channels_last=channels_last)
        single = tconv.conv(xin[:1], w, b, channels_last=channels_last)
    if channels_last:
        whole, blocks, single = (np.moveaxis(a, -1, 1) for a in (whole, blocks, single))
    np.testing.assert_allclose(whole, expected, atol=1e-10)
    np.testing.assert_allclose(blocks, expected, atol=1e-10)
    np.testing.assert_allclose(single, expected[:1], atol=1e-10)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_one_by_one_layers_take_the_depthwise_kernel(channels_last):
    """Rule 2 gives a depthwise 1x1 layer (one multiply a channel and pixel) to ``jit_depthwise`` where its estimate
    is below ``jit_pointwise``'s: the 11 sweep layers (of 14 such timed on both machines, forward and transposed,
    both layouts) that this moved ran 0.43-0.85 of ``jit_pointwise``'s time (docs/design.md). Unforced, against the
    oracle, with the bias: a convolution at stride 2 and a transposed one at stride 2."""
    from tconv.engine import planner

    rng = np.random.default_rng(45)
    x, b = rng.standard_normal((3, 40, 30, 30)), rng.standard_normal(40)
    w = rng.standard_normal((40, 1, 1, 1))
    xin = np.moveaxis(x, 1, -1).copy() if channels_last else x
    forward = _spec(False, x.shape, w.shape, stride=2, groups=40)
    transposed = _spec(True, x.shape, w.shape, stride=2, groups=40)
    for spec in (forward, transposed):
        costs = planner.plan_costs(spec, 3, channels_last)
        assert costs["jit_depthwise"] < costs["jit_pointwise"]
        assert planner.select(spec, np, channels_last, 3, 8).name == "jit_depthwise"
    with chosen_algorithms() as chosen:
        got = tconv.conv(xin, w, b, stride=2, groups=40, channels_last=channels_last)
        back = tconv.conv_transpose(xin, w, b, stride=2, groups=40, channels_last=channels_last)
    assert chosen == ["jit_depthwise", "jit_depthwise"]
    with tconv.avoid_algorithms("jit_depthwise"):  # rule 2 as before
        assert planner.select(forward, np, channels_last, 3, 8).name == "jit_pointwise"
        assert planner.select(transposed, np, channels_last, 3, 8).name == "jit_pointwise"
    if channels_last:
        got, back = np.moveaxis(got, -1, 1), np.moveaxis(back, -1, 1)
    pads = [(0, 0)] * 2
    np.testing.assert_allclose(got, naive_conv(x, w, b, stride=[2, 2], pads=pads, groups=40), atol=1e-10)
    expected = naive_conv_transpose(x, w, b, stride=[2, 2], pads=pads, groups=40)
    np.testing.assert_allclose(back, expected, atol=1e-10)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_pointwise_route_the_planner_chooses_matches_the_oracle(channels_last):
    """Unforced: 1x1 layers the planner runs on jit_pointwise (asserted: a convolution at strides 1 and 2, its
    stride-1 transposed counterpart), with their gradients (the input gradient of the convolution through the
    same route), against the oracle."""
    from tconv.engine import planner

    rng = np.random.default_rng(44)
    x, b = rng.standard_normal((2, 16, 20, 18)), rng.standard_normal(24)
    w = rng.standard_normal((24, 16, 1, 1))
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    for stride in (1, 2):
        spec = _spec(False, x.shape, w.shape, stride=stride)
        assert planner.select(spec, np, channels_last, 2, 8).name == "jit_pointwise"
        got = tconv.conv(xin, w, b, stride=stride, channels_last=channels_last)
        gy = rng.standard_normal(got.shape)
        gx, gw, gb = tconv.conv_grad(gy, xin, w, stride=stride, channels_last=channels_last)
        if channels_last:
            got, gy, gx = (np.moveaxis(a, -1, 1) for a in (got, gy, gx))
        pads = [(0, 0)] * 2
        np.testing.assert_allclose(got, naive_conv(x, w, b, stride=[stride] * 2, pads=pads), atol=1e-10)
        expected_gx = naive_conv_transpose(gy, w, None, stride=[stride] * 2, pads=pads,
                                           output_padding=[(n - 1) % stride for n in x.shape[2:]])  # fmt: skip
        np.testing.assert_allclose(gx, expected_gx, atol=1e-10)
        v = rng.standard_normal(w.shape)
        np.testing.assert_allclose(np.vdot(gw, v), np.vdot(naive_conv(x, v, None, stride=[stride] * 2, pads=pads), gy))
        np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), atol=1e-10)
    wt = rng.standard_normal((16, 24, 1, 1))
    for stride, extra in ((1, 0), (2, 1), (3, 0)):  # stride 2 and 3: the products scattered among the bias
        spec = _spec(True, x.shape, wt.shape, stride=stride, output_padding=extra)
        assert planner.select(spec, np, channels_last, 2, 8).name == "jit_pointwise"
        back = tconv.conv_transpose(xin, wt, b, stride=stride, output_padding=extra, channels_last=channels_last)
        if channels_last:
            back = np.moveaxis(back, -1, 1)
        expected = naive_conv_transpose(x, wt, b, stride=[stride] * 2, pads=[(0, 0)] * 2, output_padding=[extra] * 2)
        np.testing.assert_allclose(back, expected, atol=1e-10)


def test_dead_taps_are_dropped_with_the_same_results():
    """Calls whose kernel has leading or trailing taps that meet no input for any output (kernels longer than
    the input, dilation past it, padding beyond it; both directions, strides 1-3, groups): the planner runs
    them with the kernel cut to its live taps, and the output and both gradients match the
    oracle on the whole kernel, the dead taps' weight gradient zero. The cut is taken where the cost model puts
    it below the whole call with the cut weight's copy (asserted on two layers)."""
    from tconv.engine.run import _cut_if_cheaper, live_taps

    rng = np.random.default_rng(61)
    cut_calls = taken = 0
    for _ in range(300):
        d = int(rng.integers(1, 4))
        transposed = bool(rng.integers(0, 2))
        spatial = tuple(int(v) for v in rng.integers(1, 5, size=d))
        kernel = tuple(int(v) for v in rng.integers(1, 8, size=d))
        stride, dilation = [int(v) for v in rng.integers(1, 4, size=d)], [int(v) for v in rng.integers(1, 4, size=d)]
        pads = [(int(lo), int(hi)) for lo, hi in rng.integers(0, 12, size=(d, 2))]
        groups = int(rng.choice([1, 2]))
        options = {"stride": stride, "dilation": dilation, "groups": groups}
        try:
            spec = _spec(transposed, (2, 2 * groups, *spatial), (2 * groups, 2, *kernel), padding=pads, **options)
            if any(o < 1 for o in spec.output_size):
                continue
        except ValueError:
            continue
        cut = live_taps(spec)
        if cut is None:
            continue
        cut_calls += 1
        taken += _cut_if_cheaper(spec, 2, False) is not None
        x = rng.standard_normal((2, 2 * groups, *spatial))
        w = rng.standard_normal((2 * groups, 2, *kernel))
        b = rng.standard_normal(2 * groups)
        naive = naive_conv_transpose if transposed else naive_conv
        expected = naive(x, w, b, pads=pads, **options)
        fn, grad_fn = (tconv.conv_transpose, tconv.conv_transpose_grad) if transposed else (tconv.conv, tconv.conv_grad)
        np.testing.assert_allclose(fn(x, w, b, padding=pads, **options), expected, atol=1e-9, rtol=1e-9)
        gy = rng.standard_normal(expected.shape)
        gx, gw, _ = grad_fn(gy, x, w, padding=pads, **options)
        v, u = rng.standard_normal(w.shape), rng.standard_normal(x.shape)
        np.testing.assert_allclose(np.vdot(gw, v), np.vdot(naive(x, v, None, pads=pads, **options), gy), rtol=1e-8)
        np.testing.assert_allclose(np.vdot(gx, u), np.vdot(naive(u, w, None, pads=pads, **options), gy), rtol=1e-8)
        dead = np.ones(kernel, dtype=bool)
        dead[tuple(slice(first, stop) for first, stop in cut[1])] = False
        assert not gw[..., dead].any()
    assert cut_calls > 50 and taken > cut_calls // 2
    # DeepLab's atrous branch on a small map: dilation 24 over 20x20 leaves the centre tap only, a 1x1 kernel
    aspp = _spec(False, (1, 8, 20, 20), (8, 8, 3, 3), dilation=24, padding=24)
    assert live_taps(aspp)[0].kernel_size == (1, 1) and live_taps(aspp)[0].padding == ((0, 0), (0, 0))
    assert _cut_if_cheaper(aspp, 1, False) is not None  # and the planner runs it so
    # 500 input channels over a 1x1 input, 9x9 at stride 3 to 7x7: the cut weight's copy would cost more
    assert _cut_if_cheaper(_spec(True, (2, 500, 1, 1), (500, 5, 9, 9), stride=3, padding=1), 2, False) is None
    assert live_taps(_spec(False, (1, 8, 20, 20), (8, 8, 3, 3), dilation=6, padding=6)) is None
    # a NumPy weight's live taps gathered into a contiguous array (from a view of another layout too)
    from tconv.engine.run import _cut_weight

    for weight in (
        rng.standard_normal((4, 6, 9, 7)),
        rng.standard_normal((9, 7, 4, 6)).astype(np.float16).transpose(2, 3, 0, 1),
    ):
        kept = ((2, 5), (1, 7))
        cut_weight = _cut_weight(weight, kept)
        assert cut_weight.flags.c_contiguous and cut_weight.dtype == weight.dtype
        np.testing.assert_array_equal(cut_weight, weight[:, :, 2:5, 1:7])
    # an infinity at a dead tap times the padding's zeros is NaN, as in every framework: such calls are not cut
    x, w = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((3, 3, 3, 3))
    w[:, :, 0, 0] = np.inf
    options = {"dilation": 8, "padding": 8}
    with np.errstate(invalid="ignore"):  # inf * 0, on purpose
        expected = naive_conv(x, w, None, pads=[(8, 8)] * 2, dilation=[8, 8])
        assert np.isnan(expected).any()
        np.testing.assert_allclose(tconv.conv(x, w, **options), expected)  # NaN where the oracle has NaN
        gy = rng.standard_normal(expected.shape)
        gy[0, 0, 0, 0] = np.inf
        gw = tconv.conv_grad(gy, x, np.ones((3, 3, 3, 3)), **options)[1]
    # the dead taps' sums for output channel 0: inf times a padding zero; the other channels' are zero
    assert np.isnan(gw[0, :, 0, 0]).all() and not gw[1:, :, 0, 0].any()


def test_dead_taps_on_another_array_library():
    """The cut kernel and the zero-extended weight gradient on PyTorch tensors (the array-API path)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(62)
    x, w, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)
    options = {"dilation": 8, "padding": 8}
    expected = naive_conv(x, w, b, pads=[(8, 8)] * 2, dilation=[8, 8])
    got = tconv.conv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **options)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)
    gy = rng.standard_normal(expected.shape)
    _, gw, _ = tconv.conv_grad(torch.from_numpy(gy), torch.from_numpy(x), torch.from_numpy(w), **options)
    assert isinstance(gw, torch.Tensor) and tuple(gw.shape) == w.shape
    v = rng.standard_normal(w.shape)
    expected = np.vdot(naive_conv(x, v, None, pads=[(8, 8)] * 2, dilation=[8, 8]), gy)
    np.testing.assert_allclose(np.vdot(gw.numpy(), v), expected, rtol=1e-9)
    assert not gw.numpy()[..., [0, 2], :].any() and not gw.numpy()[..., :, [0, 2]].any()


@needs_jit
def test_no_kernel_holds_a_compiled_function_in_its_closure():
    """numba's disk cache keys a function by its pickled closure, and a compiled function (a dispatcher) pickles
    with an id that is new in every process: a kernel that called another through its closure missed the cache
    and was compiled again in every new process (the first transposed call took about a second instead of 0.4).
    Kernels call one another as module globals."""
    from tconv.implementations.compiled import blocked, depthwise, depthwise_rows, direct_conv, winograd, winograd4

    dispatchers = [*kernels._compiled(), direct_conv._kernel(), direct_conv._tiled_kernel(), *winograd._kernels()]
    dispatchers += [*winograd4.kernels()]
    dispatchers += [depthwise._kernel(), blocked._kernel(False), blocked._kernel(True)]
    dispatchers += [depthwise_rows._rows_kernel(), depthwise_rows._phases_kernel()]
    for dispatcher in dispatchers:
        cells = dispatcher.py_func.__closure__ or ()
        # a dispatcher, or a numba intrinsic (both pickle with an id of their process)
        held = [
            c.cell_contents for c in cells if hasattr(c.cell_contents, "py_func") or hasattr(c.cell_contents, "_uuid")
        ]
        assert not held, f"{dispatcher.py_func.__name__} holds {held} in its closure"


@needs_jit
def test_kernels_load_from_the_disk_cache_in_a_new_process(tmp_path):
    """A second process finds the first one's compiled kernels on disk (numba's cache in a fresh directory) and
    compiles nothing for the same calls: the col2im (overlapping taps) and transposed direct kernels, both of
    which call a shared compiled helper, and the register-blocked kernel (numba intrinsics and inlined helpers)."""
    import subprocess
    import sys

    probe = (
        "import numpy as np, tconv\n"
        "x = np.ones((2, 4, 6, 6), np.float32)\n"
        "tconv.conv_transpose(x, np.ones((4, 3, 4, 4), np.float32), stride=2, padding=1)\n"
        "with tconv.use_algorithm('jit_direct'):\n"
        "    tconv.conv_transpose(x, np.ones((4, 1, 4, 4), np.float32), stride=2, padding=1, groups=4)\n"
        "with tconv.use_algorithm('jit_blocked'):\n"
        "    tconv.conv(x, np.ones((16, 4, 3, 3), np.float32), padding=1)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    first = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert "data saved" in first.stdout + first.stderr  # the first process compiled and stored them
    second = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    log = second.stdout + second.stderr
    assert "data loaded" in log and "data saved" not in log, log


def _case_boxes(case, size_in, size_out):
    """The boxes of a case's im2col from ``size_in`` to ``size_out`` (a gradient's runs the other way)."""
    spec = tconv.ConvSpec.build(
        transposed=case.transposed,
        input_size=case.input_size,
        kernel_size=case.kernel_size,
        in_channels=case.in_channels,
        out_channels=case.out_channels,
        **case.options(),
    )
    return geometry.tap_classes(geometry.axes3(spec, tuple(size_in), tuple(size_out)))


#: the box tests' hypothesis settings: sixty cases each, monkeypatched tuning (a function-scoped fixture)
BOXES_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def _team_of(monkeypatch, threads):
    """A team of ``threads`` for every call size (``threads`` 1: no team)."""
    monkeypatch.setattr(team, "size", lambda: threads)
    if threads > 1:
        monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)
        monkeypatch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)


def _boxes_always(monkeypatch):
    """Every im2col whose windows reach into the padding runs box by box (the cost gate and the per-axis
    threshold opened); returns the list of the boxes' splits used, each with the threads it ran on."""
    monkeypatch.setattr(_tuning, "TAP_CLASS_CALL_COST", 0.0)
    monkeypatch.setattr(_tuning, "TAP_CLASS_AXIS_KEPT", 1.0 - 1e-9)
    monkeypatch.setattr(_tuning, "GEMM_FULL_RATE_INNER", 1e-9)  # no product counted as thin
    monkeypatch.setattr(_tuning, "COLUMN_STREAM", 1e30)  # nor the copies
    monkeypatch.setattr(_tuning, "COPY_STREAM", 1e30)
    used = []
    real = im2col._by_boxes

    def spy(split, source, axes, threads, *args, **kwargs):
        used.append((split, threads))
        return real(split, source, axes, threads, *args, **kwargs)

    monkeypatch.setattr(im2col, "_by_boxes", spy)
    return used


@needs_jit
@pytest.mark.parametrize("threads", [1, 2])
@BOXES_SETTINGS
@given(configs(transposed=False))
def test_convolution_box_by_box_skips_the_padding_and_matches_the_oracle(monkeypatch, threads, case):
    """The convolution's im2col and product box by box (the windows at the borders read fewer taps: only those
    taps' columns and weights), forced for every padded geometry, on one thread and on a two-thread team with
    three samples: the output and both gradients against the oracle."""
    assume(case.output_size() is not None and case.d <= 3)
    _team_of(monkeypatch, threads)
    used = _boxes_always(monkeypatch)
    case = case.replace(batch=3, batched=True)
    x, w, b = case.arrays()
    xin = np.moveaxis(x, 1, -1) if case.channels_last else x
    with tconv.use_algorithm("jit_gemm"):
        got = tconv.conv(xin, w, b, channels_last=case.channels_last, **case.options())
    if case.channels_last:
        got = np.moveaxis(got, -1, 1)
    np.testing.assert_allclose(got, case.oracle(x, w, b), rtol=1e-9, atol=1e-9)
    _grads_match(case, "jit_gemm", case.channels_last)
    if case.groups == 1 and len(_case_boxes(case, case.input_size, case.output_size()).classes) > 1:
        assert used  # every padded geometry with windows of different taps went box by box
        assert all(ran == threads for _, ran in used)  # on the team where there is one


@needs_jit
@pytest.mark.parametrize("threads", [1, 2])
@BOXES_SETTINGS
@given(configs(transposed=True))
def test_transposed_gradients_box_by_box_match_the_oracle(monkeypatch, threads, case):
    """A transposed convolution's gradients (the im2col of the output gradient) box by box, forced for every
    padded geometry: against the oracle's adjoints, and the boxes used wherever the output is cropped."""
    assume(case.output_size() is not None and case.d <= 3)
    _team_of(monkeypatch, threads)
    used = _boxes_always(monkeypatch)
    case = case.replace(batch=3, batched=True)
    _grads_match(case, "jit_gemm", case.channels_last)
    if case.groups == 1 and len(_case_boxes(case, case.output_size(), case.input_size).classes) > 1:
        assert used and all(ran == threads for _, ran in used)


@needs_jit
def test_boxes_split_the_padded_borders_and_keep_only_taps_inside():
    """The boxes of a 5x5 'same' convolution on 7x7 (the DCGAN generator's first layer's gradients): outputs
    0, 1, 2-4, 5, 6 of an axis read taps 2-4, 1-4, 0-4, 0-3, 0-2, so the axis is cut into the outputs before
    the widest run (taps 1-4), that run, and those after it (taps 0-3): 31 of 35 pairs an axis kept. The cost
    model splits that layer's gradients at batch 64 (channels-last, as in the model), but not a 56x56 map,
    where the borders are a sliver."""
    spec = _spec(False, (64, 256, 7, 7), (128, 256, 5, 5), padding=2)
    split = geometry.tap_classes(geometry.axes3(spec))
    runs = sorted({(c.outputs[2], c.taps[2]) for c in split.classes})
    assert runs == [((0, 2), (1, 5)), ((2, 5), (0, 5)), ((5, 7), (0, 4))]
    assert len(split.classes) == 9 and split.kept == pytest.approx((31 / 35) ** 2)
    corner = next(c for c in split.classes if c.outputs[1:] == ((0, 2), (0, 2)))
    assert corner.tap_index.tolist() == [5 * t1 + t2 for t1 in range(1, 5) for t2 in range(1, 5)]
    assert im2col._tap_split(spec, spec.input_size, spec.output_size, 64, 128, 256, True, 2, 4) is not None
    large = _spec(False, (8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert im2col._tap_split(large, large.input_size, large.output_size, 8, 64, 64, True, 1, 4) is None
    # DCGAN's discriminator 32x32 -> 16x16: 94% of the pairs kept, less than the copies to pixel-major cost
    disc = _spec(False, (64, 64, 32, 32), (128, 64, 4, 4), stride=2, padding=1)
    assert geometry.tap_classes(geometry.axes3(disc)).kept == pytest.approx((62 / 64) ** 2)
    assert im2col._tap_split(disc, disc.input_size, disc.output_size, 64, 128, 64, False, 1, 4) is None
    # a wide 3x3 layer: its weight's nine cuts (49 of the 9 taps' copies) would exceed the chunk size
    wide = _spec(False, (96, 256, 7, 7), (2048, 256, 3, 3), padding=1)
    assert im2col._tap_split(wide, wide.input_size, wide.output_size, 96, 2048, 256, True, 1, 4) is None


def test_weight_gradient_boxes_take_fewer_jobs_where_their_adds_outweigh_the_balance(monkeypatch):
    """A weight gradient's box jobs each add their product into their bin's gradient (BOX_PART_ADD_MACS a
    element): where the boxes are many enough to balance two bins whole, each box is one job (half the adds);
    with one box it is still cut into blocks of samples for the two threads, and a forward call keeps its
    blocks."""
    from tconv import _tuning

    def boxes(kernel: int, padding: int) -> geometry.TapClasses:
        spec = tconv.ConvSpec.build(transposed=False, input_size=(7, 7), kernel_size=(kernel, kernel), in_channels=8,
                              out_channels=8, padding=padding)  # fmt: skip
        return geometry.tap_classes(geometry.axes3(spec, spec.input_size, spec.output_size))

    split = boxes(5, 2)
    assert len(split.classes) == 9

    def jobs(parts: bool, add: float) -> list[tuple[int, int, int]]:
        monkeypatch.setattr(_tuning, "BOX_PART_ADD_MACS", add)
        return [job for b in im2col._box_jobs(split, 64, 4 * 8, 2, parts=parts) for job in b]

    assert len(jobs(False, 27.0)) == 18  # each box in two blocks of 32 samples
    assert sorted(jobs(True, 27.0)) == [(box, 0, 64) for box in range(9)]
    assert len(jobs(True, 0.0)) == 18  # no cost to the adds: the finer balance wins
    one = boxes(1, 0)
    assert len(one.classes) == 1
    assert len([job for b in im2col._box_jobs(one, 64, 4 * 8, 2, parts=True) for job in b]) == 2


@needs_jit
@pytest.mark.parametrize("part_adds", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_boxes_in_blocks_of_samples_on_a_team(monkeypatch, transposed, channels_last, part_adds):
    """Box by box on a two-thread team, each box in blocks of samples (every sample of every box in exactly one
    job), or, for the weight gradient where its parts' adds are priced (``part_adds``), each box whole: output and
    gradients against the oracle; and no boxes where one sample's columns exceed the team's chunk size (they are
    never cut below whole samples)."""
    if not part_adds:
        monkeypatch.setattr(_tuning, "BOX_PART_ADD_MACS", 0.0)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3)) if transposed else rng.standard_normal((3, 4, 3, 3))
    b = rng.standard_normal(3)
    options = dict(stride=(1, 2), padding=[(2, 1), (1, 1)], dilation=(2, 1))
    naive = naive_conv_transpose if transposed else naive_conv
    expected = naive(x, w, b, stride=[1, 2], pads=[(2, 1), (1, 1)], dilation=[2, 1])
    gy = rng.standard_normal(expected.shape)
    used = _boxes_always(monkeypatch)
    _team_of(monkeypatch, 2)
    calls = []  # each call's jobs (box, n0, n1), and whether its products were weight-gradient parts
    deal = im2col._box_jobs

    def dealt(*args, **kwargs):
        bins = deal(*args, **kwargs)
        calls.append(([job for b in bins for job in b], kwargs.get("parts", False)))
        return bins

    monkeypatch.setattr(im2col, "_box_jobs", dealt)
    xin = np.moveaxis(x, 1, -1) if channels_last else x
    gyin = np.moveaxis(gy, 1, -1) if channels_last else gy
    fn = tconv.conv_transpose if transposed else tconv.conv
    grad = tconv.conv_transpose_grad if transposed else tconv.conv_grad
    with tconv.use_algorithm("jit_gemm"):
        got = fn(xin, w, b, channels_last=channels_last, **options)
        gx, gw, _ = grad(gyin, xin, w, channels_last=channels_last, **options)
    if channels_last:
        got, gx = np.moveaxis(got, -1, 1), np.moveaxis(gx, -1, 1)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert used and all(ran == 2 for _, ran in used) and len(calls) == len(used)
    boxes = len(used[0][0].classes)
    for jobs, _ in calls:  # every sample of every box in exactly one job, in every call
        assert sorted((box, n) for box, n0, n1 in jobs for n in range(n0, n1)) == [
            (box, n) for box in range(boxes) for n in range(3)
        ]
    assert any(parts for _, parts in calls)  # the weight gradient's products, added into its bins
    for jobs, parts in calls:  # more than one block of samples a box; whole boxes where the adds decide
        assert len(jobs) == boxes if parts and part_adds else len(jobs) > boxes

    def loss(x_, w_):
        return float(np.vdot(naive(x_, w_, None, stride=[1, 2], pads=[(2, 1), (1, 1)], dilation=[2, 1]), gy))

    for g, which in ((gx, 0), (gw, 1)):
        v = rng.standard_normal(g.shape)
        args = [x, w]
        args[which] = v
        np.testing.assert_allclose(np.vdot(g, v), loss(*args), rtol=1e-8, atol=1e-8)
    used.clear()
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 64)
    with tconv.use_algorithm("jit_gemm"):
        again = fn(xin, w, b, channels_last=channels_last, **options)
    assert not used  # one sample's columns over the team's chunk size: one product, as before
    np.testing.assert_allclose(np.moveaxis(again, -1, 1) if channels_last else again, expected, atol=1e-10)


@needs_jit
def test_box_gradients_are_the_same_on_every_call_on_a_team(monkeypatch):
    """The weight gradient box by box on a two-thread team is summed in the same order on every call (each bin
    of jobs its own sum, the bins added in order), so repeated calls give the same bits, as one product does;
    and it matches the oracle's adjoint."""
    _team_of(monkeypatch, 2)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((12, 7, 7, 24)).astype(np.float32)  # channels-last, as the DCGAN generator's
    w = rng.standard_normal((24, 16, 5, 5)).astype(np.float32)
    gy = rng.standard_normal((12, 7, 7, 16)).astype(np.float32)
    used = _boxes_always(monkeypatch)
    first = tconv.conv_transpose_grad(gy, x, w, padding=2, channels_last=True)
    assert used and all(ran == 2 for _, ran in used)
    for _ in range(6):
        again = tconv.conv_transpose_grad(gy, x, w, padding=2, channels_last=True)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
    x64, gy64 = np.moveaxis(x, -1, 1).astype(np.float64), np.moveaxis(gy, -1, 1).astype(np.float64)
    v = rng.standard_normal(w.shape)
    expected = np.vdot(naive_conv_transpose(x64, v, pads=[(2, 2), (2, 2)]), gy64)  # <conv_transpose(x, v), gy>
    np.testing.assert_allclose(np.vdot(first[1].astype(np.float64), v), expected, rtol=1e-4)


def _tiles_everywhere(monkeypatch):
    """Every transposing copy of float32/float64 runs in tiles, however small."""
    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_BYTES", 0)
    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_SIDE", 1)
    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_ROWS", 1)


@needs_jit
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposing_copies_in_tiles_are_numpys_copies(monkeypatch, dtype):
    """Channels-last arrays as channels-first matrices, channels-first planes as pixel-major ones, and the way
    back (the destination the transposed view): every element lands where NumPy's copy puts it, at sizes that
    are and are not multiples of the tile and of a vector's lanes (the square blocks a tile copies by vector
    shuffles, and its last rows and columns short of a block), the tiles on the team where it has two threads or
    more; layouts that are no stack of transposes, reversed or byte-swapped views are left to the caller."""
    from tconv.implementations.compiled import transpose

    _tiles_everywhere(monkeypatch)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)  # every copy's tiles in ranges on the team
    rng = np.random.default_rng(3)
    views = [
        rng.standard_normal((96, 64)).astype(dtype).T,  # whole tiles only
        np.moveaxis(rng.standard_normal((2, 9, 11, 300)).astype(dtype), -1, 0),  # many tiles
        np.moveaxis(rng.standard_normal((3, 5, 7, 37)).astype(dtype), -1, 0),  # (N, H, W, C) -> (C, N, H, W)
        np.moveaxis(rng.standard_normal((4, 33, 9, 11)).astype(dtype), 1, -1),  # (N, C, H, W) -> (N, H, W, C)
        rng.standard_normal((70, 65)).astype(dtype).T,
        rng.standard_normal((9, 15)).astype(dtype).T,  # one block of shuffles and edges along both sides
        rng.standard_normal((3, 8, 16)).astype(dtype).transpose(0, 2, 1),  # whole blocks of eight, three matrices
        np.moveaxis(rng.standard_normal((2, 1, 6, 40)).astype(dtype), -1, 1),  # a unit axis in between
    ]
    for view in views:
        assert transpose.transposed_layout(view) is not None
        got = np.empty(view.shape, dtype)
        assert transpose.copy(got, view)
        np.testing.assert_array_equal(got, view)
        memory = np.zeros(view.base.shape if view.base is not None else view.shape, dtype)
        target = np.lib.stride_tricks.as_strided(memory, view.shape, view.strides)  # laid out as the view is
        source = rng.standard_normal(view.shape).astype(dtype)
        assert transpose.copy(target, source)
        np.testing.assert_array_equal(target, source)
    plain = rng.standard_normal((40, 50))
    assert transpose.transposed_layout(plain) is None
    assert transpose.transposed_layout(plain[:, ::2].T) is None  # every other column: not one block of memory
    assert transpose.transposed_layout(np.moveaxis(rng.standard_normal((4, 5, 6, 7)), 1, 2)) is None
    assert not transpose.copy(np.empty((50, 40), np.int64), np.arange(2000).reshape(40, 50).T)
    reversed_rows = rng.standard_normal((1, 40, 50)).astype(dtype)[::-1].transpose(0, 2, 1)  # a unit axis, stride < 0
    assert not transpose.copy(np.empty(reversed_rows.shape, dtype), reversed_rows)
    swapped = rng.standard_normal((40, 50)).astype(np.dtype(dtype).newbyteorder(">")).T
    assert not transpose.copy(np.empty(swapped.shape, swapped.dtype), swapped)


@needs_jit
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plane_copies_in_tiles_are_numpys_copies(monkeypatch, dtype):
    """transpose.planes: a channels-last array into the interior of zero-padded channels-first planes, and
    channels-first planes into the interior of zero-padded channel-minor ones, at sizes that are and are not
    multiples of the tile, the tiles on the team: every element lands where NumPy's copy puts it and the
    padding is left as it was; other layouts, too few channels and other dtypes are left to the caller."""
    from tconv.implementations.compiled import transpose

    _tiles_everywhere(monkeypatch)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    rng = np.random.default_rng(8)
    for n, c, s1, s2, s3 in [(2, 37, 1, 9, 70), (1, 64, 3, 5, 33), (3, 5, 2, 4, 2), (1, 32, 1, 1, 32)]:
        last = np.moveaxis(rng.standard_normal((n, s1, s2, s3, c)).astype(dtype), -1, 1)  # channels contiguous
        first = rng.standard_normal((n, c, s1, s2, s3)).astype(dtype)  # rows contiguous
        planes = np.full((n, c, s1 + 2, s2 + 1, s3 + 3), 7.0, dtype)
        minor = np.full((n, s1 + 1, s2 + 2, s3 + 2, c), 7.0, dtype)
        for memory, box, source in (
            (planes, (slice(None), slice(None), slice(1, -1), slice(1, None), slice(2, -1)), last),
            (minor, (slice(None), slice(1, None), slice(1, -1), slice(1, -1)), first),
        ):
            target = memory[box] if memory is planes else np.moveaxis(memory[box], -1, 1)
            expected = memory.copy()
            (expected[box] if memory is planes else np.moveaxis(expected[box], -1, 1))[...] = source
            assert transpose.planes(target, source)
            np.testing.assert_array_equal(memory, expected)
    both_first = rng.standard_normal((2, 4, 3, 5, 6))
    assert not transpose.planes(np.empty_like(both_first), both_first)  # rows contiguous on both sides
    last = np.moveaxis(rng.standard_normal((2, 3, 5, 6, 40)), -1, 1)
    assert not transpose.planes(np.empty(last.shape, np.int64), last.astype(np.int64))
    monkeypatch.setattr(_tuning, "TRANSPOSE_TILES_MIN_SIDE", 41)
    assert not transpose.planes(np.empty(last.shape), last)  # fewer channels than the tiles need


@needs_jit
@pytest.mark.parametrize("boxes, batch", [(False, 1), (False, 3), (True, 3)])
@BOXES_SETTINGS
@given(configs(transposed=False))
def test_convolutions_with_planes_copied_in_tiles_match_the_oracle(monkeypatch, boxes, batch, case):
    """With every copy into an im2col's zero-padded planes in tiles (a channels-last x into channels-first
    planes; with the boxes, channels-first x into channel-minor ones), ``jit_gemm``'s convolution (channels-last:
    pixel-major products straight into the output, in blocks of pixels for one sample, of samples for three)
    and both its gradients are the oracle's, in either layout, on a two-thread team."""
    from tconv.implementations.compiled import transpose

    assume(case.output_size() is not None and case.d <= 3)
    _tiles_everywhere(monkeypatch)
    _team_of(monkeypatch, 2)
    if boxes:
        _boxes_always(monkeypatch)
    tiled = []
    real = transpose.planes

    def spy(dst, src):
        tiled.append(real(dst, src))
        return tiled[-1]

    monkeypatch.setattr(transpose, "planes", spy)
    case = case.replace(batch=batch, batched=True)
    x, w, b = case.arrays()
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if case.channels_last else x  # channels-last memory
    with tconv.use_algorithm("jit_gemm"):
        got = tconv.conv(xin, w, b, channels_last=case.channels_last, **case.options())
    if case.channels_last:
        got = np.moveaxis(got, -1, 1)
    np.testing.assert_allclose(got, case.oracle(x, w, b), rtol=1e-9, atol=1e-9)
    _grads_match(case, "jit_gemm", case.channels_last)  # (channels-last views of channels-first memory)
    last, out = case.axes[-1], case.output_size()[-1]
    read = {o * last.stride + t * last.dilation - last.lo for o in range(out) for t in range(last.kernel)}
    patches = all(a.kernel <= a.stride and a.dilation == 1 for a in case.axes)  # patch_conv's calls
    if (
        case.channels_last
        and not boxes
        and case.groups == 1
        and case.cin_g > 1
        and not patches
        and len(read & set(range(last.size))) > 1
    ):
        assert True in tiled  # x (rows of two or more of its values read) copied into the padded planes in tiles


@needs_jit
def test_channels_last_calls_and_gradients_with_tiled_copies_match_the_oracle(monkeypatch):
    """With every transposing copy in tiles, a channels-last call of ``jit_gemm`` (x copied into the product's
    operand) and its gradients (x copied likewise, dx written back from its matrix) are the oracle's."""
    from tconv.implementations.compiled import transpose

    _tiles_everywhere(monkeypatch)
    monkeypatch.setattr(_tuning, "PER_SAMPLE_MAX_ROWS", 0)  # x copied, not read per sample (a short product)
    tiled = []
    real_copy = transpose.copy

    def spy(dst, src):  # (copied in tiles, into a C-contiguous buffer rather than a transposed view)
        tiled.append((real_copy(dst, src), bool(dst.flags.c_contiguous)))
        return tiled[-1][0]

    monkeypatch.setattr(transpose, "copy", spy)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((6, 5, 7, 9))
    w = rng.standard_normal((5, 4, 3, 3))
    b = rng.standard_normal(4)
    options = dict(stride=2, padding=1, output_padding=1)
    expected = naive_conv_transpose(x, w, b, stride=[2, 2], pads=[(1, 1), (1, 1)], output_padding=[1, 1])
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))  # as a channels-last caller holds it
    with tconv.use_algorithm("jit_gemm"):
        got = tconv.conv_transpose(x_last, w, b, channels_last=True, **options)
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10)
    assert (True, True) in tiled  # x copied into the product's operand in tiles
    tiled.clear()
    gy = rng.standard_normal(expected.shape)
    with tconv.use_algorithm("jit_gemm"):  # its own gradients: the shared pass (unforced, the weight gradient's blocks)
        gx, gw, _ = tconv.conv_transpose_grad(
            np.ascontiguousarray(np.moveaxis(gy, 1, -1)), x_last, w, channels_last=True, **options
        )
    assert (True, True) in tiled and (True, False) in tiled  # x into its matrix, dx back from its matrix

    def loss(x_, w_):  # <conv_transpose(x, w), gy>, bilinear: a gradient's product with v is the loss at v
        pads = [(1, 1), (1, 1)]
        return float(np.vdot(naive_conv_transpose(x_, w_, stride=[2, 2], pads=pads, output_padding=[1, 1]), gy))

    v_x, v_w = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    np.testing.assert_allclose(np.vdot(np.moveaxis(gx, -1, 1), v_x), loss(v_x, w), rtol=1e-8)
    np.testing.assert_allclose(np.vdot(gw, v_w), loss(x, v_w), rtol=1e-8)


def test_deal_gives_the_largest_pieces_first_to_the_least_loaded_bin():
    """schedule.deal: every piece in exactly one bin, the largest first to the least loaded (the first such),
    empty bins dropped; the same sizes are dealt the same way every time."""
    sizes = [3, 9, 1, 4, 4, 7]
    bins = schedule.deal(sizes, 2)
    # By hand, largest first (ties in index order): 9 (index 1) -> A 9; 7 (5) -> B 7; 4 (3) -> B 11;
    # 4 (4) -> A 13; 3 (0) -> B 14; 1 (2) -> A 14.
    assert bins == [[1, 4, 2], [5, 3, 0]]
    assert sorted(i for b in bins for i in b) == list(range(len(sizes)))
    assert schedule.deal(sizes, 2) == bins
    assert schedule.deal([5, 5], 4) == [[0], [1]]  # two pieces, four bins: two left empty and dropped
    assert schedule.deal([], 3) == []
    assert schedule.deal([2, 2, 2], 1) == [[0, 1, 2]]


def test_each_dealt_runs_each_bin_in_order_on_one_thread_whatever_the_timing(monkeypatch):
    """schedule.each_dealt on a two-thread team, with pieces that take random times: each piece goes to the bin
    deal() gives it, whichever thread is free first, a bin's pieces run in their given order on one thread, and
    sums kept a bin at a time (workspace.Partials) come out to the same bits on every run."""
    import random
    import threading
    import time

    _team_of(monkeypatch, 2)
    monkeypatch.setattr(team, "_threads", 2)  # kernels.set_threads(2), undone after the test
    rng = np.random.default_rng(3)
    values = rng.standard_normal((12, 64)).astype(np.float32) * 10.0 ** rng.integers(-4, 4, (12, 1))
    sizes = [float(s) for s in rng.integers(1, 5, 12)]
    expected_bins = schedule.deal(sizes, 2)
    results = []
    for _ in range(8):
        runs = []
        partials = workspace.Partials(np.zeros(64, dtype=np.float32))

        def work(piece, which, runs=runs, partials=partials):
            time.sleep(random.random() * 2e-3)
            runs.append((piece, which, threading.get_ident()))
            partials.target(which)[...] += values[piece]

        schedule.each_dealt(work, list(range(12)), 2, sizes)
        for which, dealt in enumerate(expected_bins):
            ran = [(piece, ident) for piece, b, ident in runs if b == which]
            assert [piece for piece, _ in ran] == sorted(dealt)  # the bin's pieces, in the order given
            assert len({ident for _, ident in ran}) == 1  # on one thread
        results.append(partials.sum())
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    np.testing.assert_allclose(results[0], values.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-3)


def _jittered(monkeypatch):
    """Random delays in the weight gradients' products and in the direct kernel, so that which thread takes
    which piece of a call varies from call to call (as it does on a busy machine)."""
    import random
    import time

    from tconv.implementations.compiled import direct_conv

    def slow(fn):
        def call(*args):
            time.sleep(random.random() * 1e-3)
            return fn(*args)

        return call

    monkeypatch.setattr(im2col, "times_transposed", slow(im2col.times_transposed))
    kernel = direct_conv._kernel()
    monkeypatch.setattr(direct_conv, "_kernel", lambda: slow(kernel))


@needs_jit
@pytest.mark.parametrize(
    "path, transposed, x_shape, w_shape, options, algorithm",
    [
        ("conv_weight_grad", False, (12, 12, 10, 10), (16, 12, 3, 3), {}, "jit_gemm"),
        ("conv_weight_grad", False, (12, 10, 10, 12), (16, 12, 3, 3), {"channels_last": True}, "jit_gemm"),
        ("conv_weight_grad", False, (12, 16, 9, 9), (16, 1, 3, 3), {"groups": 16}, "jit_depthwise"),
        ("conv_transpose_grads", True, (12, 16, 6, 6), (16, 12, 4, 4), {"stride": 2}, "jit_gemm"),
        ("_grads_in_pixel_blocks", True, (1, 16, 24, 24), (16, 12, 4, 4), {"stride": 2}, "jit_gemm"),
        ("direct_conv.weight_grad", False, (12, 4, 16, 16), (4, 4, 3, 3), {"padding": 1}, "jit_direct"),
    ],
)
def test_weight_gradients_are_the_same_on_every_call_on_a_team(
    monkeypatch, path, transposed, x_shape, w_shape, options, algorithm
):
    """The weight gradient's sums over chunks of the batch (or of the pixels, or over a kernel's ranges) on a
    two-thread team, with random delays so that the threads take the pieces in a different order on each
    call: every call gives the same bits (each bin of pieces, or each range, its own partial, added in order),
    and the gradient matches the oracle's adjoint. Before, each thread kept one partial, and the bits changed
    from call to call."""
    from tconv.implementations.compiled import direct_conv

    _team_of(monkeypatch, 2)
    monkeypatch.setattr(_tuning, "TEAM_CHUNK_BYTES", 64 * 1024)  # two or three samples a chunk: several a call
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)  # the direct kernel's ranges on the team
    monkeypatch.setattr(team, "_threads", 2)  # kernels.set_threads(2), undone after the test
    _jittered(monkeypatch)
    inside, pieces = [False], []  # the weight gradient's function running; the pieces its sums were cut into
    real_each_dealt, real_ranges = schedule.each_dealt, team.ranges

    direct = path.startswith("direct")  # the kernel's ranges; else the chunks dealt to bins

    def each_dealt(work, chunks, threads, sizes=None):
        if inside[0] and not direct:
            pieces.append((len(chunks), threads))
        return real_each_dealt(work, chunks, threads, sizes)

    def ranges(kernel, jobs, work):
        if inside[0] and direct:
            pieces.append((jobs, team.threads()))
        return real_ranges(kernel, jobs, work)

    monkeypatch.setattr(schedule, "each_dealt", each_dealt)
    monkeypatch.setattr(team, "ranges", ranges)
    module, name = (direct_conv, "weight_grad") if direct else (im2col, path)
    real = getattr(module, name)

    def spied(*args):
        inside[0] = True
        try:
            return real(*args)
        finally:
            inside[0] = False

    monkeypatch.setattr(module, name, spied)
    rng = np.random.default_rng(len(path) + len(x_shape))
    channels_last = options.get("channels_last", False)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    fn, grad = (tconv.conv_transpose, tconv.conv_transpose_grad) if transposed else (tconv.conv, tconv.conv_grad)
    with tconv.use_algorithm(algorithm):
        gy = rng.standard_normal(fn(x, w, **options).shape).astype(np.float32)
        first = grad(gy, x, w, **options)
        again = [grad(gy, x, w, **options) for _ in range(6)]
    assert len(pieces) == 7 and all(count > 2 and threads == 2 for count, threads in pieces), pieces
    for other in again:
        np.testing.assert_array_equal(other[1], first[1])
    x64 = np.moveaxis(x, -1, 1) if channels_last else x
    gy64 = np.moveaxis(gy, -1, 1) if channels_last else gy
    x64, gy64, v = x64.astype(np.float64), gy64.astype(np.float64), rng.standard_normal(w.shape)
    keys = {k: v_ for k, v_ in options.items() if k != "channels_last"}
    pads = [(keys.get("padding", 0),) * 2] * 2
    stride, groups = [keys.get("stride", 1)] * 2, keys.get("groups", 1)
    if transposed:
        expected = np.vdot(naive_conv_transpose(x64, v, stride=stride, pads=pads), gy64)
    else:
        expected = np.vdot(naive_conv(x64, v, stride=stride, pads=pads, groups=groups), gy64)
    np.testing.assert_allclose(np.vdot(first[1].astype(np.float64), v), expected, rtol=1e-4)


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
def test_transposed_gradients_in_channel_blocks_with_a_remainder_match_the_oracle(monkeypatch, channels_last, groups):
    """A sample whose im2col of the output gradient is over the chunk size runs in blocks of output channels,
    summed in order into dx (7 channels a group in equal blocks and a smaller remainder); with several samples
    and groups, on one thread. The blocks must run in the order given: dealt largest first (as the weight
    gradient's bins are), the last block of one sample ran after the others' and wrote another sample's sum into
    dx (relative error 1.5 on a (2, 8, 128, 128) layer of 100 output channels)."""
    _team_of(monkeypatch, 1)
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((2, 4 * groups, 6, 6))
    w = rng.standard_normal((4 * groups, 7, 4, 4))  # 7 output channels a group
    gy = rng.standard_normal((2, 7 * groups, 12, 12))
    per_channel = 16 * 36 * 8  # the im2col's bytes a channel: 16 taps x 36 pixels of x, float64
    monkeypatch.setattr(_tuning, "CHUNK_BYTES", 3 * per_channel)
    blocks = []
    real_each_dealt = schedule.each_dealt

    def each_dealt(work, pieces, threads, sizes=None):
        blocks.extend(pieces)
        real_each_dealt(work, pieces, threads, sizes)

    monkeypatch.setattr(schedule, "each_dealt", each_dealt)
    xin, gyin = (np.moveaxis(a, 1, -1) for a in (x, gy)) if channels_last else (x, gy)
    with tconv.use_algorithm("jit_gemm"):
        gx, gw, _ = tconv.conv_transpose_grad(gyin, xin, w, stride=2, padding=1, groups=groups,
                                              channels_last=channels_last)  # fmt: skip
    sizes = sorted({c1 - c0 for *_, c0, c1 in blocks})
    assert len(sizes) == 2 and sum(sizes) < 7  # full blocks and a smaller remainder, in several blocks a group
    gx = np.moveaxis(gx, -1, 1) if channels_last else gx
    # dx of a transposed convolution is the convolution of gy with the same weight and geometry
    np.testing.assert_allclose(gx, naive_conv(gy, w, None, stride=[2, 2], pads=[(1, 1)] * 2, groups=groups), atol=1e-10)
    v = rng.standard_normal(w.shape)
    expected = np.vdot(naive_conv_transpose(x, v, stride=[2, 2], pads=[(1, 1)] * 2, groups=groups), gy)
    np.testing.assert_allclose(np.vdot(gw, v), expected, rtol=1e-9)


@needs_jit
def test_kernel_views_are_the_memory_as_strided_would_view_it():
    """kernels.flat and kernels.view make their views through the memory's owner where they can (a pointer
    difference): the same addresses and numbers as NumPy's as_strided on sliced, permuted, channels-last and
    zero-stride views; a read-only view stays read-only; an owner of a dtype the compiled pointer does not take
    (float16 memory seen as float32) works too, and so does a call on such an x."""
    from tconv.implementations.compiled import kernels

    def address(a):
        return a.__array_interface__["data"][0]

    base = np.arange(4 * 7 * 6 * 5, dtype=np.float32).reshape(4, 7, 6, 5)
    frozen = base.copy()
    frozen.flags.writeable = False
    half = np.arange(800, dtype=np.float16).view(np.float32).reshape(4, 5, 4, 5)  # float16 memory
    views = [
        base.transpose(1, 0, 2, 3)[:, 1:3, 2:],
        np.moveaxis(base, -1, 1)[1:],
        base[::2, :, 1:4, ::2],
        frozen.transpose(3, 2, 1, 0)[1:],
        half[..., ::2],
    ]
    for a in views:
        item = a.dtype.itemsize
        span = 1 + sum((n - 1) * st // item for n, st in zip(a.shape, a.strides))
        got = kernels.flat(a)
        expected = np.lib.stride_tricks.as_strided(a, shape=(span,), strides=(item,))
        assert address(got) == address(a) and got.shape == (span,)
        np.testing.assert_array_equal(got, expected)
        assert got.flags.writeable == a.flags.writeable
        shape, strides = (2, 3, *a.shape[1:]), (a.strides[0], 0, *a.strides[1:])  # a zero stride added
        widened = kernels.view(a[:2], shape, strides)
        np.testing.assert_array_equal(widened, np.broadcast_to(a[:2, None], shape))
        assert address(widened) == address(a)
    x = half[..., ::2].astype(np.float64)
    w = np.random.default_rng(0).standard_normal((5, 2, 3, 3))
    got = tconv.conv_transpose(half[..., ::2], w.astype(np.float32), stride=2)
    np.testing.assert_allclose(got, naive_conv_transpose(x, w, stride=[2, 2]), rtol=1e-4, atol=1e-2)


def test_a_cut_call_runs_where_only_its_cut_has_an_algorithm_left():
    """A kernel with dead taps runs cut to its live ones; with every algorithm but one avoided, the one left may run
    the cut call and not the whole (depth_to_space takes kernels no longer than their stride). The cut call runs;
    with a NaN in the weight the call must run whole (so that the NaN reaches the output), and then it raises the
    whole call's refusal."""
    x, w = np.ones((1, 2, 1, 1)), np.ones((2, 3, 3, 3))
    options = {"stride": 2, "padding": ((1, 0), (1, 0))}
    others = [name for name in tconv.algorithms() if name != "depth_to_space"]
    with tconv.avoid_algorithms(*others):
        got = tconv.conv_transpose(x, w, **options)
        np.testing.assert_allclose(got, naive_conv_transpose(x, w, stride=[2, 2], pads=[(1, 0), (1, 0)]))
        w[0, 0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="avoid_algorithms leaves no algorithm"):
            tconv.conv_transpose(x, w, **options)


def _oracle_or_none(x, w, b, **options):
    """The oracle's transposed convolution, or None where the options make no call (the padding crops the whole
    output, or an axis of the output is empty)."""
    try:
        expected = naive_conv_transpose(x, w, b, **options)
    except AssertionError:
        return None
    return None if 0 in expected.shape else expected


def _as_callers_hand_them(trial, x, w):
    """x and the weight as callers hand them, by trial: read-only arrays (trial % 6 == 5), a strided view of a
    weight (every other output channel of a wider one; trial % 6 == 2), else as they are."""
    if trial % 6 == 5:
        x, w = x.copy(), w.copy()
        x.flags.writeable = w.flags.writeable = False
    elif trial % 6 == 2:
        wide = np.zeros((w.shape[0], 2 * w.shape[1], *w.shape[2:]), dtype=w.dtype)
        wide[:, ::2] = w
        w = wide[:, ::2]
    return x, w


def _in_three_dtypes(x, w, b, channels_last, **options):
    """``conv_transpose`` of the arrays as they are (float64), then in float32 and in float16."""
    results = []
    for dtype in (x.dtype, np.float32, np.float16):
        x_, w_, b_ = (None if a is None else a.astype(dtype, copy=False) for a in (x, w, b))
        results.append(tconv.conv_transpose(x_, w_, b_, channels_last=channels_last, **options))
    return tuple(results)


def _match_in_three_dtypes(results, expected, channels_last):
    """:func:`_in_three_dtypes`' results (in the call's layout) against the oracle, each to its dtype's tolerance."""
    got, low, half = (np.moveaxis(a, -1, 1) if channels_last else a for a in results)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=1e-10)
    assert low.dtype == np.float32 and half.dtype == np.float16
    np.testing.assert_allclose(low, expected, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(half, expected, atol=2e-2 * (1 + np.abs(expected).max()), rtol=2e-2)


def _block_write_trials(monkeypatch, rng, ran, teamed, count=36):
    """The block-write oracle tests' trials: spies that note each run of transposed._blocks (its call description,
    in ``ran``) and of the team (``teamed``), and per trial its rank, strides and kernels (equal to and shorter
    than their strides, at every rank), drawn from ``rng``; the second half in pieces of a few rows, on the team
    where there is one."""
    blocks, team_run = transposed_path._blocks, team.run
    monkeypatch.setattr(transposed_path, "_blocks", lambda *args: ran.append(args[3]) or blocks(*args))
    monkeypatch.setattr(team, "run", lambda *args: teamed.append(args) or team_run(*args))
    for trial in range(count):
        if trial == count // 2:
            monkeypatch.setattr(_tuning, "PIXELS_BLOCKS_PIECE_BYTES", 1)
            monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)
            monkeypatch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)
        d = 1 + trial % 3
        stride = [int(v) for v in rng.integers(1, 5, size=d)]
        kernel = [s if (trial // 3) % 3 else int(rng.integers(1, s + 1)) for s in stride]  # any rank has gaps
        yield trial, d, stride, kernel


@needs_jit
def test_jit_pixels_block_writes_match_the_oracle(monkeypatch):
    """Channels-last, where the output is whole blocks of the stride (kernels no longer than their strides,
    nothing cropped, output padding s - k), jit_pixels writes each tap's product straight into the output
    (transposed._blocks). Forced on random 1-3-D layers, kernels equal to and shorter than their strides (outputs
    left to the bias), with and without bias, against the oracle in float64 and float32, with a transposed view of
    x, read-only arrays and a strided weight view, in one piece and in many, on one thread and on the team; a spy
    checks that the block path ran."""
    rng = np.random.default_rng(20)
    ran, teamed = [], []
    for trial, d, stride, kernel in _block_write_trials(monkeypatch, rng, ran, teamed):
        c_in = _tuning.PIXELS_BLOCKS_MAX_IN if trial in (7, 21) else int(rng.integers(2, 12))  # 2-D and 1-D
        # sides of 2 or more: a 1x1 input whose kernel is the whole output is one product (_single_pixel)
        x = rng.standard_normal((1 + trial % 4, c_in, *(int(v) for v in rng.integers(2, 7, size=d))))
        w = rng.standard_normal((c_in, int(rng.integers(1, 12)), *kernel))
        b = rng.standard_normal(w.shape[1]) if trial % 5 else None
        output_padding = [s - k for s, k in zip(stride, kernel)]
        expected = naive_conv_transpose(x, w, b, stride=stride, output_padding=output_padding)
        xin = np.moveaxis(x, 1, -1)  # a transposed view of channels-first x
        if trial % 4 == 1:
            xin = np.ascontiguousarray(xin)
        xin, w = _as_callers_hand_them(trial, xin, w)
        options = {"stride": stride, "output_padding": output_padding}
        before = len(ran)
        with tconv.use_algorithm("jit_pixels"):
            got = tconv.conv_transpose(xin, w, b, channels_last=True, **options)
            b32 = None if b is None else b.astype(np.float32)
            low = tconv.conv_transpose(xin.astype(np.float32), w.astype(np.float32), b32, channels_last=True, **options)
        assert len(ran) == before + 2, (trial, stride, kernel, c_in)
        np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, atol=1e-10, rtol=1e-10)
        assert low.dtype == np.float32
        np.testing.assert_allclose(np.moveaxis(low, -1, 1), expected, atol=1e-3, rtol=1e-3)
    assert teamed or team.size() == 1


@needs_jit
def test_jit_pixels_grouped_block_writes_match_the_oracle(monkeypatch):
    """With groups, the block writes (transposed._blocks) run a product per group and tap of the last axis, the
    groups' outputs interleaved with the taps' in each row. Forced on random grouped 1-3-D layers whose output is
    whole blocks of the stride (kernels equal to and shorter than their strides), with and without bias, in both
    layouts (channels-first through channels-last copies), against the oracle in float64, float32 and float16, with
    views and read-only arrays, in one piece and in many, on one thread and on the team; a spy checks that the block
    path ran, and a grouped call whose output is not whole blocks is refused."""
    rng = np.random.default_rng(22)
    ran, teamed = [], []
    for trial, d, stride, kernel in _block_write_trials(monkeypatch, rng, ran, teamed):
        groups = int(rng.integers(2, 5))
        x = rng.standard_normal(
            (1 + trial % 4, groups * int(rng.integers(2, 6)), *(int(v) for v in rng.integers(2, 7, size=d)))
        )
        w = rng.standard_normal((x.shape[1], int(rng.integers(1, 6)), *kernel))
        b = rng.standard_normal(groups * w.shape[1]) if trial % 5 else None
        output_padding = [s - k for s, k in zip(stride, kernel)]
        expected = naive_conv_transpose(x, w, b, stride=stride, output_padding=output_padding, groups=groups)
        channels_last = trial % 4 != 0
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        xin, w = _as_callers_hand_them(trial, xin, w)
        options = {"stride": stride, "output_padding": output_padding, "groups": groups}
        before = len(ran)
        with tconv.use_algorithm("jit_pixels"):
            got, low, half = _in_three_dtypes(xin, w, b, channels_last, **options)
        assert len(ran) == before + 3, (trial, stride, kernel, groups)
        _match_in_three_dtypes((got, low, half), expected, channels_last)
    assert teamed or team.size() == 1
    x = np.zeros((1, 6, 5, 5))
    w = np.zeros((6, 2, 3, 3))
    with tconv.use_algorithm("jit_pixels"), pytest.raises(ValueError, match="jit_pixels"):
        tconv.conv_transpose(x, w, stride=2, groups=2)  # overlapping taps


@needs_jit
@pytest.mark.parametrize("channels_last", [False, True])
def test_grouped_block_writes_have_the_oracles_gradients(channels_last):
    """A grouped call that jit_pixels runs as block writes gets its gradients from the shared im2col path (one group
    or many): forced, both layouts, in 2-D with a kernel shorter than its stride on one axis."""
    case = Case(True, (Axis(5, 2, 2, 1, 0, 0, 0), Axis(4, 1, 3, 1, 0, 0, 2)), groups=2, cin_g=3, cout_g=2, seed=9)
    assert transposed_path.blocks_fit(
        _spec(True, (2, 6, 5, 4), (6, 2, 2, 1), groups=2, stride=(2, 3), output_padding=(0, 2))
    )
    _grads_match(case, "jit_pixels", channels_last=channels_last)


@needs_jit
def test_jit_phases_matches_the_oracle(monkeypatch):
    """jit_phases (one stride-1 convolution per output phase: an im2col of x for the phase's taps, one product
    written into the phase's outputs) forced on random 1-3-D layers of both layouts with stride, dilation, padding,
    output padding and bias (kernels shorter than their stride too: phases no tap reaches), against the oracle in
    float64, float32 and float16, with read-only arrays and a strided weight view, padded x's buffer handed over
    full of NaN (only its border is zeroed); its products through a buffer and in place, in whole samples a piece
    and in rows of one sample, on one thread and on the team."""
    rng = np.random.default_rng(21)
    scratch = phases_path.scratch  # padded x's buffer (slot 2) handed over full of NaN: the border must be zeroed
    monkeypatch.setattr(
        phases_path,
        "scratch",
        lambda shape, dtype, slot: np.full(shape, np.nan, dtype) if slot == 2 else scratch(shape, dtype, slot),
    )
    gather, team_run = phases_path._gather(), team.run
    bases, teamed = [], []  # where each im2col piece starts in padded x; the team's runs
    monkeypatch.setattr(phases_path, "_gather", lambda: lambda *args: bases.append(args[3]) or gather(*args))
    monkeypatch.setattr(team, "run", lambda *args: teamed.append(args) or team_run(*args))
    row_pieces = 0  # calls cut into rows of one sample (more distinct starts than samples)
    for trial in range(48):
        if trial == 16:  # products written in place, in pieces of one row
            monkeypatch.setattr(_tuning, "PHASES_IN_PLACE_MIN_ROWS", 1)
            monkeypatch.setattr(_tuning, "PHASES_PIECE_BYTES", 1)
        if trial == 32:  # and on the team where there is one
            monkeypatch.setattr(_tuning, "TEAM_MIN_BYTES", 0)
            monkeypatch.setattr(_tuning, "TEAM_MIN_CHANNELS", 1)
        d = 1 + trial % 3
        stride = [int(v) for v in rng.integers(1, 5, size=d)]
        dilation = [int(v) for v in rng.integers(1, 3, size=d)]
        kernel = [int(v) for v in rng.integers(1, 7, size=d)]
        pads = [(int(rng.integers(0, 4)), int(rng.integers(0, 4))) for _ in range(d)]
        output_padding = [int(rng.integers(0, max(s, v))) for s, v in zip(stride, dilation)]
        x = rng.standard_normal((1 + trial % 4, int(rng.integers(1, 7)), *(int(v) for v in rng.integers(1, 8, size=d))))
        w = rng.standard_normal((x.shape[1], int(rng.integers(1, 9)), *kernel))
        b = rng.standard_normal(w.shape[1]) if trial % 5 else None
        expected = _oracle_or_none(x, w, b, stride=stride, pads=pads, dilation=dilation, output_padding=output_padding)
        if expected is None:
            continue
        channels_last = bool(trial % 2)
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        xin, w = _as_callers_hand_them(trial, xin, w)
        options = {"stride": stride, "padding": pads, "dilation": dilation, "output_padding": output_padding}
        with tconv.use_algorithm("jit_phases"):
            bases.clear()
            got, low, half = _in_three_dtypes(xin, w, b, channels_last, **options)
            row_pieces += len(set(bases)) > x.shape[0]  # the same starts in each dtype
        _match_in_three_dtypes((got, low, half), expected, channels_last)
    assert row_pieces > 0
    assert teamed or team.size() == 1


@needs_jit
def test_jit_phases_runs_each_phase_on_its_own_taps():
    """The phases of one axis (6 inputs, k7 s3, padding 2, output padding 2: 20 outputs): outputs o = 3q + r receive
    the taps t = r + 2 (mod 3) from inputs q + (r + 2 - t) / 3; x is padded by what the phases read beyond it."""
    spec = _spec(True, (1, 2, 6), (2, 3, 7), stride=3, padding=2, output_padding=2)
    assert spec.output_size == (20,)
    plan = phases_path.plan(spec)
    starts = [p.start for p in plan.axes[0]]
    assert starts == [0, 1, 2]
    first = plan.axes[0][0]
    assert first.taps == (2, 5) and first.offsets == (0, -1) and first.length == 7
    middle, last = plan.axes[0][1:]
    assert middle.taps == (0, 3, 6) and middle.offsets == (1, 0, -1) and middle.length == 7
    assert last.taps == (1, 4) and last.offsets == (1, 0) and last.length == 6
    assert plan.pad_low == (1,) and plan.pad_high == (2,)  # input -1, and input 7 (phase 1's last output)
    # every (input, tap) pair that lands inside the output is in exactly one phase
    pairs = {(j, t) for j in range(6) for t in range(7) if 0 <= 3 * j + t - 2 < 20}
    from_phases = {
        (q + o, t) for p in plan.axes[0] for t, o in zip(p.taps, p.offsets) for q in range(p.length) if 0 <= q + o < 6
    }
    assert from_phases == pairs


@needs_jit
def test_jit_pixels_writes_blocks_only_where_the_output_is_whole_blocks():
    """The block path's condition (transposed.blocks_fit): a cropped start, an output shorter than n * s,
    dilation, overlapping taps, one input channel a group (the folded path's, or a depthwise call) or more than
    PIXELS_BLOCKS_MAX_IN a group in 2-D each rule it out; 1-D takes any count of input channels (one product)."""
    many = _tuning.PIXELS_BLOCKS_MAX_IN + 1

    def fits(x_shape, w_shape, **options):
        return transposed_path.blocks_fit(_spec(True, x_shape, w_shape, **options))

    assert fits((2, 8, 5, 6), (8, 4, 2, 2), stride=2)
    assert fits((2, 8, 5, 6), (8, 4, 1, 2), stride=(3, 2), output_padding=(2, 0))
    assert fits((2, many, 9), (many, 4, 3), stride=3)
    assert not fits((2, 8, 5, 6), (8, 4, 2, 2), stride=2, padding=1, output_padding=1)  # cropped: shifted blocks
    assert not fits((2, 8, 5, 6), (8, 4, 1, 2), stride=(3, 2))  # output 13 rows, not 15
    assert not fits((2, 8, 5, 6), (8, 4, 2, 2), stride=4, dilation=2, output_padding=1)
    assert not fits((2, 8, 5, 6), (8, 4, 3, 3), stride=2, output_padding=1)  # the taps overlap
    assert not fits((2, 1, 5, 6), (1, 4, 2, 2), stride=2)
    assert not fits((2, many, 5, 6), (many, 4, 2, 2), stride=2)
    assert fits((2, 8, 5, 6), (8, 4, 2, 2), stride=2, groups=2)  # two input channels a group or more
    assert not fits((2, 8, 5, 6), (8, 1, 2, 2), stride=2, groups=8)  # depthwise
    assert fits((2, 2 * many, 9), (2 * many, 4, 3), stride=3, groups=2)
    assert not fits((2, 2 * many, 5, 6), (2 * many, 4, 2, 2), stride=2, groups=2)
    assert fits((2, 2 * many, 5, 6), (2 * many, 4, 2, 2), stride=2, groups=3)  # the bound is per group


@needs_jit
def test_jit_pixels_with_its_products_folded_in_matches_the_oracle(monkeypatch):
    """jit_pixels with at most PIXELS_DIRECT_MAX_IN input channels folds its products into the overlap-add
    (kernels.pixels_direct: no column buffer); with more it multiplies into columns first. Both, forced, on random
    1-3-D layers of both layouts with stride, dilation, padding, output padding and bias, against the oracle, in
    float64, float32 and float16, with read-only arrays and a strided weight view, on one thread and on the team."""
    rng = np.random.default_rng(19)
    folded = _tuning.PIXELS_DIRECT_MAX_IN
    for trial in range(48):
        if trial == 24:  # the rest with every kernel call on the team (where there is one), in rows of pixels
            monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
            monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
        d = 1 + trial % 3
        c_in = int(rng.integers(1, folded + 1)) if trial % 4 else folded + 1
        stride = [int(v) for v in rng.integers(1, 4, size=d)]
        dilation = [int(v) for v in rng.integers(1, 3, size=d)]
        kernel = [int(v) for v in rng.integers(2, 6, size=d)]
        pads = [(int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(d)]
        output_padding = [int(rng.integers(0, max(s, v))) for s, v in zip(stride, dilation)]
        x = rng.standard_normal((1 + trial % 3, c_in, *(int(v) for v in rng.integers(1, 6, size=d))))
        w = rng.standard_normal((c_in, int(rng.integers(1, 20)), *kernel))
        b = rng.standard_normal(w.shape[1]) if trial % 5 else None
        expected = _oracle_or_none(x, w, b, stride=stride, pads=pads, dilation=dilation, output_padding=output_padding)
        if expected is None:
            continue
        channels_last = bool((trial // 4) % 2 if trial % 4 == 0 else trial % 2)  # both layouts on both paths
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        xin, w = _as_callers_hand_them(trial, xin, w)
        options = {"stride": stride, "padding": pads, "dilation": dilation, "output_padding": output_padding}
        with tconv.use_algorithm("jit_pixels"):
            got = tconv.conv_transpose(xin, w, b, channels_last=channels_last, **options)
            b32 = None if b is None else b.astype(np.float32)
            low = tconv.conv_transpose(
                xin.astype(np.float32), w.astype(np.float32), b32, channels_last=channels_last, **options
            )
        if channels_last:
            got, low = np.moveaxis(got, -1, 1), np.moveaxis(low, -1, 1)
        np.testing.assert_allclose(got, expected, atol=1e-10, rtol=1e-10)
        assert low.dtype == np.float32
        np.testing.assert_allclose(low, expected, atol=1e-3, rtol=1e-3)
        if trial % 8 == 1:  # float16 in and out, summed in float32
            b16 = None if b is None else b.astype(np.float16)
            with tconv.use_algorithm("jit_pixels"):
                half = tconv.conv_transpose(
                    xin.astype(np.float16), w.astype(np.float16), b16, channels_last=channels_last, **options
                )
            half = np.moveaxis(half, -1, 1) if channels_last else half
            assert half.dtype == np.float16
            np.testing.assert_allclose(half, expected, atol=2e-2 * (1 + np.abs(expected).max()), rtol=2e-2)
