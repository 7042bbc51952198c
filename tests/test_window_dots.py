"""``jit_dots`` (:mod:`tconv.implementations.compiled.window_dots`): dot products of windows and weight rows, forced,
against the oracle (the planner's choice of it: ``tests/test_planner.py``)."""

from __future__ import annotations

import numpy as np
import pytest

import tconv
from oracle import naive_conv
from tconv import _tuning
from tconv.implementations.compiled import kernels, team, window_dots

needs_jit = pytest.mark.skipif(not kernels.available(), reason="no compiled path (numba missing or TCONV_NO_JIT=1)")

#: spatial, kernel, stride, dilation, pads, c_in, c_out, groups, batch
CASES = (
    ((19,), (5,), (1,), (1,), [(2, 2)], 3, 16, 1, 3),  # a window of 15: one vector and a tail
    ((23,), (3,), (2,), (2,), [(0, 4)], 40, 37, 1, 2),  # an odd count of weight rows
    ((9, 11), (3, 3), (1, 1), (1, 1), [(1, 1), (2, 0)], 4, 32, 1, 2),
    ((12, 10), (5, 3), (2, 3), (1, 2), [(4, 2), (1, 1)], 6, 20, 2, 3),  # groups
    ((3, 3, 3), (5, 5, 5), (2, 2, 2), (2, 2, 2), [(3, 3)] * 3, 1, 21, 1, 4),  # one output pixel a sample
    ((5, 6, 7), (3, 2, 3), (1, 2, 1), (1, 1, 1), [(1, 1), (0, 1), (1, 1)], 5, 9, 1, 2),
    ((4, 4), (9, 9), (1, 1), (1, 1), [(4, 4), (4, 4)], 3, 8, 1, 3),  # most taps meet only padding
    ((6, 6), (2, 2), (2, 2), (1, 1), [(0, 0), (0, 0)], 12, 12, 12, 5),  # depthwise: a window of four
    ((7, 9), (3, 3), (2, 1), (1, 1), [(1, 2), (5, 5)], 1, 1, 1, 2),  # one row; outputs no tap reaches
    ((10,), (1,), (3,), (1,), [(0, 0)], 64, 5, 1, 1),  # a 1x1 window of whole vectors, x cropped by the stride
)


@needs_jit
@pytest.mark.parametrize("table", [False, True])
@pytest.mark.parametrize("along_channels", [False, True])
@pytest.mark.parametrize("team_size", [1, 3])
def test_window_dots_match_the_oracle(monkeypatch, team_size, along_channels, table):
    """Forced: 1-3-D, strides, dilations, asymmetric padding and kernels larger than x, groups and depthwise, odd
    and even output channel counts, windows shorter and longer than a vector, blocks of four pixels across rows and
    samples, a bias or none in either dtype, float32 and float64; x contiguous, a crop of a larger array,
    channels-last and channels-last views with gaps; every call's ranges on a team of ``team_size``; the vectors
    along the windows and along the output channels (the weight packed: whole blocks and a partial last one, a
    channels-last output's blocks stored in place and through the buffer); the windows whose taps all meet x copied
    through the table of offsets (every call) or never (the kernels compiled without it)."""
    monkeypatch.setattr(team, "_threads", team_size)
    monkeypatch.setattr(window_dots, "along_channels", lambda spec, batch, channels_last: along_channels)
    monkeypatch.setattr(_tuning, "DOTS_TABLE_MIN_RUNS", 0 if table else 10**9)
    monkeypatch.setattr(_tuning, "DOTS_TABLE_MIN_SHARE", 0.0)
    tables = []
    offsets = window_dots._offsets
    monkeypatch.setattr(window_dots, "_offsets", lambda *args: tables.append(offsets(*args)) or tables[-1])
    ran = _spy_kernels(monkeypatch)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    rng = np.random.default_rng(7)
    for spatial, kernel, stride, dilation, pads, c_in, c_out, groups, batch in CASES:
        for dtype in (np.float64, np.float32):
            larger = rng.standard_normal((batch, c_in + 2, *(n + 3 for n in spatial))).astype(dtype)
            crop = larger[(slice(None), slice(1, 1 + c_in), *(slice(1, 1 + n) for n in spatial))]
            x = np.ascontiguousarray(crop)
            w = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype)
            b = rng.standard_normal(c_out).astype(dtype) if (dtype == np.float64) == (c_in % 2 == 0) else None
            expected = naive_conv(x, w, b, stride=list(stride), pads=pads, dilation=list(dilation), groups=groups)
            options = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
            tolerance = 1e-10 if dtype == np.float64 else 2e-4
            last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
            inputs = ((x, False), (crop, False), (last, True), (np.moveaxis(crop, 1, -1), True))
            for xin, channels_last in inputs:
                with tconv.use_algorithm("jit_dots"):
                    got = tconv.conv(xin, w, b, channels_last=channels_last, **options)
                got = np.moveaxis(got, -1, 1) if channels_last else got
                np.testing.assert_allclose(got, expected, atol=tolerance, rtol=tolerance)
    assert ran and set(ran) == {"channels" if along_channels else "windows"}
    assert tables and all((t is not None) == table for t in tables)


def _spy_kernels(monkeypatch) -> list[str]:
    """Which of the two kernels each call runs, in order (the compiled kernels wrapped)."""
    ran: list[str] = []
    for name, label in (("_kernel", "windows"), ("_channels_kernel", "channels")):
        compiled = getattr(window_dots, name)()

        def spied(*args, _compiled=compiled, _label=label):  # type: ignore[no-untyped-def]
            ran.append(_label)
            return _compiled(*args)

        monkeypatch.setattr(window_dots, name, lambda _spied=spied: _spied)
    return ran


@needs_jit
def test_window_dots_run_the_way_the_cost_model_prices_lower(monkeypatch):
    """Short windows over many output channels (three channels of a 6-tap kernel into 45) run with the vectors along
    the output channels, long windows into few output channels (208 channels of 7x7 into 7) along the windows: the
    cheaper by the cost model each, which the planner's estimate is (``batch_cost``); either matches the oracle."""
    monkeypatch.setattr(team, "_threads", 1)
    ran = _spy_kernels(monkeypatch)
    rng = np.random.default_rng(5)
    layers = (
        ((23, 3, 28), (45, 3, 6), dict(stride=4, padding=1), True),
        ((2, 208, 2, 2), (7, 208, 7, 7), dict(padding=3), False),
    )
    for x_shape, w_shape, options, channels in layers:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        b = rng.standard_normal(w_shape[0]).astype(np.float32)
        spec = tconv.ConvSpec.build(
            transposed=False, input_size=x_shape[2:], kernel_size=w_shape[2:], in_channels=x_shape[1],
            out_channels=w_shape[0], **options,
        )  # fmt: skip
        batch = x_shape[0]
        windows = window_dots.cost(spec) * batch
        along = window_dots.channels_cost(spec, False) * batch + window_dots.packing_cost(spec)
        assert (along < windows) == channels
        assert window_dots.along_channels(spec, batch, False) == channels
        assert window_dots.batch_cost(spec, batch, False) == pytest.approx(min(along, windows))
        ran.clear()
        with tconv.use_algorithm("jit_dots"):
            got = tconv.conv(x, w, b, **options)
        assert ran == ["channels" if channels else "windows"]
        stride, padding = options.get("stride", 1), options["padding"]
        rank = len(x_shape) - 2
        expected = naive_conv(x, w, b, stride=[stride] * rank, pads=[(padding, padding)] * rank, dilation=[1] * rank)
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=2e-4)


@needs_jit
def test_window_dots_any_weight_layout():
    """A weight of another layout (a transposed view, which the kernel reads through a contiguous copy) gives the
    same result as its contiguous copy, against the oracle; x and the weight are left as they were."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 10, 3, 3)).astype(np.float32).swapaxes(0, 1)  # (10, 6, 3, 3), not contiguous
    x_before, w_before = x.copy(), w.copy()
    with tconv.use_algorithm("jit_dots"):
        got = tconv.conv(x, w, padding=1)
        again = tconv.conv(x, np.ascontiguousarray(w), padding=1)
    np.testing.assert_array_equal(got, again)
    np.testing.assert_allclose(got, naive_conv(x, w, pads=[(1, 1)] * 2), rtol=2e-4, atol=2e-4)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


@needs_jit
def test_window_dots_only_convolutions():
    """A transposed convolution is not run here: forcing it raises, naming the algorithm."""
    x = np.ones((1, 2, 4, 4), dtype=np.float32)
    w = np.ones((2, 3, 3, 3), dtype=np.float32)
    with tconv.use_algorithm("jit_dots"), pytest.raises(ValueError, match="jit_dots"):
        tconv.conv_transpose(x, w, stride=2)


def test_whole_share_counts_the_outputs_whose_taps_all_meet_x():
    """``geometry.whole_share`` against a count by brute force over every output of 1-3-D layers (padding, stride,
    dilation, kernels longer than x): the outputs whose every tap reads inside x, over all outputs."""
    from tconv.implementations.compiled import geometry

    layers = (
        ((19,), (5,), 1, 1, 2),
        ((12, 10), (5, 3), 2, 2, 1),
        ((5, 6, 7), (3, 2, 3), 1, 1, 1),
        ((4, 4), (9, 9), 1, 1, 4),
        ((14, 14), (4, 4), 2, 1, 0),
    )
    for size, kernel, stride, dilation, pad in layers:
        spec = tconv.ConvSpec.build(
            transposed=False, input_size=size, kernel_size=kernel, in_channels=1, out_channels=1, stride=stride,
            dilation=dilation, padding=pad,
        )  # fmt: skip
        whole = 0
        for out in np.ndindex(*spec.output_size):
            reads = [
                [o * stride - pad + t * dilation for t in range(k)] for o, k in zip(out, kernel)
            ]  # each axis's reads
            whole += all(0 <= r < n for axis, n in zip(reads, size) for r in axis)
        expected = whole / np.prod(spec.output_size)
        assert geometry.whole_share(geometry.axes3(spec)) == pytest.approx(expected)


@needs_jit
def test_window_dots_table_where_windows_have_many_runs_and_the_same_bits_without(monkeypatch):
    """At the default constants the table is made for a layer of many runs a window and mostly whole windows (64
    channels of 3x3, padding 1 on 16x16), and not for a depthwise 3x3 layer (three runs a window) nor for a map
    mostly border (8x8 kernel over 5x5 at stride 4); the table and the loops gather the same elements, so the
    results are the same bit for bit either way, and match the oracle."""
    rng = np.random.default_rng(11)
    x_elements = (4096, 256, 16, 1, 256)  # (N, axis 1, 2, 3, channels) of a channels-first x, 2-D padded to 3-D

    def spec(c_in, c_out, size, k, groups=1, stride=1, padding=1):
        return tconv.ConvSpec.build(
            transposed=False, input_size=(size, size), kernel_size=(k, k), in_channels=c_in, out_channels=c_out,
            groups=groups, stride=stride, padding=padding,
        )  # fmt: skip

    assert window_dots._offsets(spec(64, 8, 16, 3), x_elements, False) is not None
    assert window_dots._offsets(spec(64, 64, 16, 3, groups=64), x_elements, False) is None
    assert window_dots._offsets(spec(44, 44, 5, 8, stride=4, padding=3), x_elements, False) is None
    x = rng.standard_normal((3, 16, 16, 64)).astype(np.float32)  # channels-last
    w = rng.standard_normal((24, 64, 3, 3)).astype(np.float32)
    results = []
    for along in (False, True):
        monkeypatch.setattr(window_dots, "along_channels", lambda spec, batch, channels_last, _a=along: _a)
        for runs in (0, 10**9):
            monkeypatch.setattr(_tuning, "DOTS_TABLE_MIN_RUNS", runs)
            window_dots._plan.cache_clear()
            with tconv.use_algorithm("jit_dots"):
                results.append(tconv.conv(x, w, padding=1, channels_last=True))
        np.testing.assert_array_equal(results[-2], results[-1])
    expected = naive_conv(np.moveaxis(x, -1, 1), w, stride=[1, 1], pads=[(1, 1)] * 2)
    for got in results:
        np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, rtol=2e-4, atol=2e-4)
