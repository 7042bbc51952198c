"""A convolution's weight gradient in register blocks (:mod:`tconv.implementations.compiled.weight_blocks`), run
through the public gradients with its cost rule made to take every case, against the oracle; the route the cost
model takes unforced; and its sums the same on every call."""

from __future__ import annotations

import numpy as np
import pytest

import tconv
from oracle import naive_conv, naive_conv_transpose
from tconv import _tuning
from tconv.implementations.compiled import algorithms, kernels, team, weight_blocks

needs_jit = pytest.mark.skipif(not kernels.available(), reason="no compiled path (numba missing or TCONV_NO_JIT=1)")

#: spatial, kernel, stride, dilation, pads, c_in, c_out, groups, batch
CASES = (
    ((13,), (5,), (2,), (1,), [(3, 1)], 4, 6, 2, 3),  # 1-D, groups, a single vector of 3 channels a group
    ((9, 11), (3, 3), (1, 1), (1, 1), [(1, 1), (2, 0)], 3, 5, 1, 2),  # 27 pairs: three blocks and a partial one
    ((8, 7), (5, 5), (2, 2), (1, 1), [(2, 2), (2, 1)], 8, 40, 1, 3),  # two vectors: a whole block and a partial one
    ((12, 10), (2, 3), (3, 1), (2, 2), [(0, 2), (1, 1)], 6, 64, 2, 2),  # whole blocks of 32 a group: read in place
    ((5, 6, 7), (2, 3, 2), (1, 2, 1), (1, 1, 2), [(1, 0), (0, 2), (1, 1)], 4, 17, 1, 2),  # 3-D
    ((9, 9), (3, 3), (2, 2), (1, 1), [(1, 1), (1, 1)], 16, 16, 16, 2),  # depthwise
    ((6, 6), (1, 1), (1, 1), (1, 1), [(0, 0), (0, 0)], 33, 70, 1, 5),  # 1x1: windows apart, called directly
    ((20, 3), (7, 2), (3, 1), (1, 2), [(3, 3), (0, 1)], 5, 64, 1, 1),  # one sample; kernels longer than x's axis
)


def _force(monkeypatch, request) -> None:
    """The cost rule made to take the register blocks on every call, and ``jit_direct``'s own rule (asked first)
    never to take its direct sums; their cached answers forgotten after."""
    monkeypatch.setattr(_tuning, "WEIGHT_BLOCKS_MARGIN", 1e9)
    monkeypatch.setattr(_tuning, "DIRECT_CONV_MARGIN", 0.0)
    for rule in (algorithms._blocks_weight_grad, algorithms.direct_weight_grad):
        rule.cache_clear()
        request.addfinalizer(rule.cache_clear)


def _spy(monkeypatch) -> list[tuple[int, ...]]:
    """The shapes of the weight gradients the register blocks return, in order."""
    ran: list[tuple[int, ...]] = []
    original = weight_blocks.weight_grad

    def spied(*args):  # type: ignore[no-untyped-def]
        result = original(*args)
        ran.append(result.shape)
        return result

    monkeypatch.setattr(weight_blocks, "weight_grad", spied)
    return ran


@needs_jit
@pytest.mark.parametrize("team_size", [1, 3])
@pytest.mark.parametrize("tile_bytes", [1, 2**20])
def test_the_weight_gradient_in_register_blocks_matches_the_oracle(monkeypatch, request, team_size, tile_bytes):
    """Through ``tconv.conv_grad`` (any algorithm the planner takes for the call: the gradient's route is the cost
    rule's, forced here): 1-3-D, strides, dilations, asymmetric padding, kernels longer than x, groups and depthwise,
    blocks of one vector and of two, whole blocks (the output gradient read channels-last in place) and partial
    ones (copied, padded with zeros), pairs in whole blocks and a partial last one, one sample and several;
    float64 and float32; x and the output gradient channels-first, channels-last, and crops of larger arrays; tiles
    of one row and of every row; one bin and three on a team of three (every call on the team); samples in chunks
    of one (``CHUNK_BYTES`` of a sample's copies); the output gradient channels-last with gaps between its pixels,
    read in place where its blocks are whole. The layers the rule never takes (a 1x1 layer, windows apart; fewer
    than ``BLOCKED_MIN_OUT`` output channels a group) run through the blocks directly. Against the oracle's
    adjoint: the directional derivative of <conv(x, w), gy> along v is <conv(x, v), gy>."""
    _force(monkeypatch, request)
    monkeypatch.setattr(team, "_threads", team_size)
    monkeypatch.setattr(_tuning, "WEIGHT_BLOCKS_TILE_BYTES", tile_bytes)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    ran = _spy(monkeypatch)
    routed = 0
    rng = np.random.default_rng(41)
    for number, (spatial, kernel, stride, dilation, pads, c_in, c_out, groups, batch) in enumerate(CASES):
        monkeypatch.setattr(_tuning, "CHUNK_BYTES", 1 if number % 2 else 30 * 2**20)
        options = {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}
        oracle = {"stride": list(stride), "pads": pads, "dilation": list(dilation), "groups": groups}
        spec = tconv.ConvSpec.build(transposed=False, input_size=spatial, kernel_size=kernel, in_channels=c_in,
                                    out_channels=c_out, **options)  # fmt: skip
        larger = rng.standard_normal((batch, c_in + 2, *(n + 2 for n in spatial)))
        crop = larger[(slice(None), slice(1, 1 + c_in), *(slice(1, 1 + n) for n in spatial))]
        x = np.ascontiguousarray(crop)
        w = rng.standard_normal((c_out, c_in // groups, *kernel))
        gy = rng.standard_normal(naive_conv(x, w, None, **oracle).shape)
        v = rng.standard_normal(w.shape)
        expected = np.vdot(naive_conv(x, v, None, **oracle), gy)
        gy_larger = np.zeros((batch, *(n + 1 for n in gy.shape[2:]), c_out + 3))
        gy_gaps = gy_larger[(slice(None), *(slice(0, n) for n in gy.shape[2:]), slice(2, 2 + c_out))]
        gy_gaps[...] = np.moveaxis(gy, 1, -1)  # channels-last, channels contiguous, pixels with gaps
        for xin, gyin, channels_last in (
            (x, gy, False),
            (crop, gy, False),
            (np.moveaxis(x, 1, -1).copy(), np.moveaxis(gy, 1, -1).copy(), True),
            (np.moveaxis(crop, 1, -1), np.moveaxis(gy, 1, -1), True),  # views: x with gaps, gy channels strided
            (np.moveaxis(crop, 1, -1), gy_gaps, True),  # gy read in place where its blocks are whole
        ):
            before = len(ran)
            _, gw, _ = tconv.conv_grad(gyin, xin, w, channels_last=channels_last, **options)
            _, low, _ = tconv.conv_grad(
                gyin.astype(np.float32), xin.astype(np.float32), w.astype(np.float32),
                channels_last=channels_last, **options,
            )  # fmt: skip
            if algorithms.blocks_weight_grad(spec, batch, channels_last):
                routed += 1
            else:  # a layer the rule never takes (windows apart, few output channels a group): called directly
                assert len(ran) == before
                gw = algorithms.weight_grad_in_blocks(xin, gyin, spec, channels_last)
                low = algorithms.weight_grad_in_blocks(xin.astype(np.float32), gyin.astype(np.float32), spec,
                                                       channels_last)  # fmt: skip
            assert len(ran) == before + 2  # both ran in register blocks
            assert gw.shape == w.shape and gw.dtype == np.float64 and low.dtype == np.float32
            np.testing.assert_allclose(np.vdot(gw, v), expected, rtol=1e-10, atol=1e-10)
            scale = float(np.abs(v).ravel() @ np.abs(low.astype(np.float64)).ravel())
            np.testing.assert_allclose(np.vdot(low.astype(np.float64), v), expected, rtol=0, atol=2e-6 * scale)
    assert routed >= 20  # most cases through the engine's route


@needs_jit
def test_a_transposed_convolutions_weight_gradient_in_register_blocks_matches_the_oracle(monkeypatch, request):
    """``tconv.conv_transpose_grad`` with the cost rule forced: the weight gradient in register blocks as the
    adjoint convolution's (over the output gradient, x its output gradient) and the input gradient apart, both
    against the oracle's adjoints, in either layout, strides 1-3 with output padding, dilation and groups; a layer
    of too few output channels a group (the adjoint's) through the blocks directly; and an output padding of a
    stride or more (the adjoint has outputs x does not) left to the shared pass."""
    _force(monkeypatch, request)
    ran = _spy(monkeypatch)
    rng = np.random.default_rng(43)
    routed = 0
    for spatial, kernel, stride, dilation, pads, output_padding, c_in, c_out, groups in (
        ((7, 7), (5, 5), (2, 2), (1, 1), [(2, 2), (2, 2)], (1, 1), 12, 10, 1),
        ((9,), (4,), (3,), (2,), [(1, 2)], (2,), 6, 8, 2),  # 3 output channels a group (the adjoint's): direct
        ((4, 5, 3), (2, 2, 3), (1, 2, 1), (1, 1, 1), [(0, 1), (1, 0), (1, 1)], (0, 1, 0), 40, 33, 1),
        ((6, 5), (3, 3), (1, 1), (2, 2), [(1, 1), (2, 1)], (1, 1), 16, 9, 1),  # output padding >= stride: shared
    ):
        options = {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}
        oracle = {"stride": list(stride), "pads": pads, "dilation": list(dilation), "groups": groups}
        spec = tconv.ConvSpec.build(transposed=True, input_size=spatial, kernel_size=kernel, in_channels=c_in,
                                    out_channels=c_out, output_padding=output_padding, **options)  # fmt: skip
        beyond = any(p >= st for p, st in zip(output_padding, stride))  # the adjoint has outputs x does not
        x = rng.standard_normal((3, c_in, *spatial))
        w = rng.standard_normal((c_in, c_out // groups, *kernel))
        y = naive_conv_transpose(x, w, None, output_padding=list(output_padding), **oracle)
        gy, u, v = rng.standard_normal(y.shape), rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        along_w = np.vdot(naive_conv_transpose(x, v, None, output_padding=list(output_padding), **oracle), gy)
        along_x = np.vdot(naive_conv_transpose(u, w, None, output_padding=list(output_padding), **oracle), gy)
        for channels_last in (False, True):
            xin, gyin = (np.moveaxis(x, 1, -1), np.moveaxis(gy, 1, -1)) if channels_last else (x, gy)
            before = len(ran)
            gx, gw, _ = tconv.conv_transpose_grad(
                gyin, xin, w, output_padding=output_padding, channels_last=channels_last, **options
            )
            taken = algorithms.blocks_weight_grad(spec, 3, channels_last)
            assert len(ran) == before + taken and (not beyond or not taken)
            routed += taken
            gx = np.moveaxis(gx, -1, 1) if channels_last else gx
            np.testing.assert_allclose(np.vdot(gw, v), along_w, rtol=1e-10)
            np.testing.assert_allclose(np.vdot(gx, u), along_x, rtol=1e-10)
            if not taken and not beyond:  # the blocks called directly
                gw = algorithms.weight_grad_in_blocks(xin, gyin, spec, channels_last)
                np.testing.assert_allclose(np.vdot(gw, v), along_w, rtol=1e-10)
    assert routed == 4  # the first and third layers in either layout


@needs_jit
def test_the_register_blocks_sum_the_same_on_the_team_and_alone(monkeypatch):
    """A bin's sums, and the bins' order, do not depend on which thread runs which bin or whether they run on the
    team at all: the gradient is the same to the bit either way, and from call to call."""
    monkeypatch.setattr(team, "_threads", 2)
    teamed = []
    on_team_call = team._on_team
    monkeypatch.setattr(team, "_on_team", lambda *args: teamed.append(args[1]) or on_team_call(*args))
    rng = np.random.default_rng(47)
    x = rng.standard_normal((6, 24, 10, 10)).astype(np.float32)
    spec = tconv.ConvSpec.build(transposed=False, input_size=(10, 10), kernel_size=(3, 3), in_channels=24,
                                out_channels=40, padding=1)  # fmt: skip
    gy = rng.standard_normal((6, 40, 10, 10)).astype(np.float32)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    on_team = [weight_blocks.weight_grad(x, gy, spec, False) for _ in range(3)]
    assert teamed == [2, 2, 2]  # each call's two bins on the team
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", float("inf"))
    alone = weight_blocks.weight_grad(x, gy, spec, False)
    assert len(teamed) == 3  # that one in the calling thread
    for result in on_team:
        np.testing.assert_array_equal(result, alone)
    v = rng.standard_normal(alone.shape)
    expected = np.vdot(naive_conv(x.astype(np.float64), v, None, pads=[(1, 1)] * 2), gy.astype(np.float64))
    scale = float(np.abs(v).ravel() @ np.abs(alone.astype(np.float64)).ravel())
    np.testing.assert_allclose(np.vdot(alone.astype(np.float64), v), expected, rtol=0, atol=2e-6 * scale)


@needs_jit
def test_the_cost_model_takes_the_register_blocks_over_the_im2col_only_where_it_prices_them_lower(monkeypatch):
    """Unforced (the suite's pinned product rate and vector width): a 3x3 layer of 32 into 64 channels over 16x16
    maps and the seed generator's last layer's weight gradient (the adjoint of (64, 7, 7, 64) -> 1 5x5 stride 2)
    run in register blocks, whose estimates are below the im2col's; a layer of 3 input channels over 4x4 maps into
    179 (a short product the im2col runs at once) and a 2x2 stride-2 layer (windows apart) keep the im2col; a 3x3
    layer of 16 channels over 64x64 maps keeps its direct sums (``jit_direct``'s rule, asked first). The blocks'
    gradient against the oracle, in float64 and float16 (summed in float32); under ``use_algorithm`` the forced
    algorithm's own route runs instead."""

    def spec(shape, c_out, kernel, **options):  # type: ignore[no-untyped-def]
        return tconv.ConvSpec.build(transposed=False, input_size=shape[2:], kernel_size=kernel, in_channels=shape[1],
                                    out_channels=c_out, **options)  # fmt: skip

    assert algorithms.blocks_weight_grad(spec((8, 32, 16, 16), 64, (3, 3), padding=1), 8, False)
    generator = tconv.ConvSpec.build(transposed=True, input_size=(14, 14), kernel_size=(5, 5), in_channels=64,
                                     out_channels=1, stride=2, padding=2, output_padding=1)  # fmt: skip
    assert algorithms.blocks_weight_grad(generator.as_convolution(), 64, True)
    assert not algorithms.blocks_weight_grad(spec((3, 40, 4, 4), 179, (5, 5), stride=2, padding=2), 3, False)
    # windows that do not overlap (a U-Net's 2x2 stride-2 up-convolution's adjoint): the im2col copies x once
    assert not algorithms.blocks_weight_grad(spec((8, 16, 64, 64), 32, (2, 2), stride=2), 8, False)
    unet = spec((8, 16, 64, 64), 16, (3, 3), padding=1)
    assert algorithms.direct_weight_grad(unet)  # jit_direct's own rule keeps it
    ran = _spy(monkeypatch)
    rng = np.random.default_rng(53)
    x, w = rng.standard_normal((8, 32, 16, 16)), rng.standard_normal((64, 32, 3, 3))
    gy, v = rng.standard_normal((8, 64, 16, 16)), rng.standard_normal(w.shape)
    expected = np.vdot(naive_conv(x, v, None, pads=[(1, 1)] * 2), gy)
    _, gw, _ = tconv.conv_grad(gy, x, w, padding=1)
    assert ran == [w.shape]
    np.testing.assert_allclose(np.vdot(gw, v), expected, rtol=1e-10)
    # float16 in, float32 sums (the compute dtype), float16 out
    _, half, _ = tconv.conv_grad(gy.astype(np.float16), x.astype(np.float16), w.astype(np.float16), padding=1)
    assert half.dtype == np.float16 and len(ran) == 2
    scale = float(np.abs(v).ravel() @ np.abs(gw).ravel())
    np.testing.assert_allclose(np.vdot(half.astype(np.float64), v), expected, rtol=0, atol=2e-3 * scale)
    # a forced algorithm runs its own route (the im2col here), never the blocks
    with tconv.use_algorithm("jit_gemm"):
        _, forced, _ = tconv.conv_grad(gy, x, w, padding=1)
    assert len(ran) == 2
    np.testing.assert_allclose(np.vdot(forced, v), expected, rtol=1e-10)
