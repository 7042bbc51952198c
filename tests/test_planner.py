"""Tests that pin the planner's choices (which algorithm runs which call); correctness is tested elsewhere
(tests/test_engine.py, tests/test_oracle.py), whatever the planner picks."""

from __future__ import annotations

import importlib

import array_api_compat
import numpy as np
import pytest

import tconv
from oracle import naive_conv, naive_conv_transpose
from planner_spy import chosen_algorithms
from tconv import _tuning
from tconv.engine import planner, registry
from tconv.implementations.compiled import kernels, schedule, team, window_dots
from test_engine import _spec, needs_jit, needs_team

engine_run = importlib.import_module("tconv.engine.run")  # the module, not the package's function


@needs_jit
def test_planner_picks_by_rule_and_by_cost():
    numpy = array_api_compat.array_namespace(np.empty(0))
    dcgan = _spec(True, (64, 256, 8, 8), (256, 128, 4, 4), stride=2, padding=1)
    depthwise = _spec(True, (8, 64, 56, 56), (64, 1, 4, 4), groups=64, stride=2, padding=1)
    forward = _spec(False, (8, 64, 32, 32), (64, 64, 5, 5), padding=2)
    forward_3x3 = _spec(False, (8, 64, 32, 32), (64, 64, 3, 3), padding=1)
    four_d = _spec(True, (1, 2, 3, 3, 3, 3), (2, 2, 2, 2, 2, 2), stride=2)
    assert planner.select(dcgan, numpy).name == "jit_gemm"
    # channels-first, the depthwise layer by its output's phases over a channels-last tile (0.55 ms forced against
    # 1.22 for jit_direct's planes; 2.9 against 8.0 at 8 samples)
    assert planner.select(depthwise, numpy).name == "jit_depthwise"
    # 64 -> 64 5x5 over 32x32, one sample: a direct sum, the register blocks over a padded copy or the direct
    # sum's tiles (1.86 and 1.66 ms forced, jit_gemm 1.84, since the tiles keep their sums in registers; 1.56 and
    # 1.57 before), whichever the estimates put first
    assert planner.select(forward, numpy).name in ("jit_blocked", "jit_direct")
    # Winograd's F(4x4, 3x3): 5.6 ms against 7.1 for F(2x2, 3x3) (0.81 of its time, paired), 9.7 for jit_gemm and
    # 10.5 for jit_direct (2026-12-01, a busy machine; F(2x2, 3x3) had measured 4.4 against 5.5 and 4.6-6.9)
    assert planner.select(forward_3x3, numpy).name == "jit_winograd4"
    assert planner.select(four_d, numpy).name == "gemm"  # the compiled kernels are 3-D
    # channels-last: jit_pixels for the batch (25.7 ms against 30.8 on jit_gemm at 64 samples), not for one
    # sample, where the model puts it past PIXELS_MARGIN (1.33 against 0.78 ms)
    assert planner.select(dcgan, numpy, channels_last=True, batch=64).name == "jit_pixels"
    assert planner.select(dcgan, numpy, channels_last=True).name == "jit_gemm"
    fcn32s = _spec(True, (1, 21, 7, 7), (21, 21, 64, 64), stride=32)
    assert planner.select(fcn32s, numpy).name == "jit_patches"  # rows of 64, not of 7
    # channels-last, the depthwise layer sums along the contiguous channels (2.7 ms against 15.9 for jit_direct,
    # whose planes then stride by the channel count; 8 samples, tenth session)
    assert planner.select(depthwise, numpy, channels_last=True).name == "jit_depthwise"
    # channels-first too where the planes are a few pixels (sweep 11's layer 21: 0.07 ms against 0.72 for jit_direct,
    # whose set-up is per plane), and through its tile where they are large (the layer above, 56x56)
    tiny = _spec(True, (51, 168, 1, 1), (168, 1, 6, 6), groups=168, padding=2)
    assert planner.select(tiny, numpy, batch=51).name == "jit_depthwise"
    assert planner.select(depthwise, numpy, batch=8).name == "jit_depthwise"
    # fewer channels than a vector's lanes: the direct sum's planes
    few = _spec(True, (8, 4, 56, 56), (4, 1, 4, 4), groups=4, stride=2, padding=1)
    assert planner.select(few, numpy, batch=8).name == "jit_direct"


@needs_jit
def test_planner_runs_1x1_kernels_as_products():
    """1x1 kernels with no padding go to jit_pointwise (rule 2), whatever the layout, stride (forward), groups,
    batch or pixels a sample (batches of channels-first samples of a few pixels: one stacked product, 0.28-0.99 of
    jit_gemm's time on 17 of 19 layers); transposed ones at any stride (their products scattered among the bias)
    channels-last, or channels-first where the output is at most POINTWISE_SCATTER_MAX_BYTES; padded or larger
    kernels never."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    bottleneck = _spec(False, (8, 256, 28, 28), (64, 256, 1, 1))
    shortcut = _spec(False, (8, 256, 56, 56), (512, 256, 1, 1), stride=2)
    grouped = _spec(False, (32, 240, 14, 14), (240, 80, 1, 1), groups=3)
    last_stage = _spec(False, (8, 2048, 7, 7), (512, 2048, 1, 1))
    head_3d = _spec(True, (1, 32, 24, 24, 24), (32, 2, 1, 1, 1))
    scattered = _spec(True, (8, 64, 7, 7), (64, 64, 1, 1), stride=2)  # an output of 0.4 MB at batch 8
    for spec in (bottleneck, shortcut, grouped, head_3d, scattered):
        for channels_last in (False, True):
            assert planner.select(spec, numpy, channels_last, batch=8).name == "jit_pointwise"
    thin = _spec(False, (62, 258, 42), (15, 258, 1), stride=3)  # 14 pixels a sample (forward sweep 52's fsweep-38)
    tiny = _spec(True, (27, 85, 2, 2), (85, 85, 1, 1))
    for spec, batch in ((last_stage, 8), (last_stage, 1), (thin, 62), (tiny, 27)):
        for channels_last in (False, True):
            assert planner.select(spec, numpy, channels_last, batch=batch).name == "jit_pointwise"
    # a channels-first strided transposed output above POINTWISE_SCATTER_MAX_BYTES (6.4 MB): jit_gemm writes it on
    # the team; channels-last, the scatter writes whole channel vectors and stays on jit_pointwise
    large = _spec(True, (8, 64, 28, 28), (64, 64, 1, 1), stride=2)
    assert planner.select(large, numpy, batch=8).name == "jit_gemm"
    assert planner.select(large, numpy, channels_last=True, batch=8).name == "jit_pointwise"
    for spec in (
        _spec(False, (8, 64, 28, 28), (64, 64, 1, 1), padding=1),
        _spec(True, (8, 64, 28, 28), (64, 64, 1, 1), stride=2, padding=1),
        _spec(False, (8, 64, 28, 28), (64, 64, 1, 3)),
    ):
        assert planner.select(spec, numpy, batch=8).name != "jit_pointwise"


def test_planner_picks_gemm_without_numba(monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: False)
    numpy = array_api_compat.array_namespace(np.empty(0))
    spec = _spec(True, (2, 4, 5, 5), (4, 3, 3, 3), stride=2)
    assert planner.select(spec, numpy).name == "gemm"
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    np.testing.assert_allclose(
        tconv.conv_transpose(x, w, stride=2), naive_conv_transpose(x, w, stride=[2, 2]), atol=1e-10
    )
    with pytest.raises(ValueError, match="does not support this call"), tconv.use_algorithm("jit_gemm"):
        tconv.conv_transpose(x, w, stride=2)


def test_planner_caches_its_plans_per_call_description():
    planner.plan.cache_clear()
    engine_run._route.cache_clear()
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    for _ in range(3):
        tconv.conv_transpose(x, w, stride=2)
    # the engine asks the planner once, and remembers its answer for the same call description: the second call
    # plans the call whole with it (ops._PLANS), the third runs that plan
    assert engine_run._route.cache_info().misses == 1 and engine_run._route.cache_info().hits == 1
    assert planner.plan.cache_info().misses == 1
    spec = _spec(True, (2, 3, 4, 4), (3, 2, 3, 3), stride=2)
    numpy = array_api_compat.array_namespace(np.empty(0))
    planner.select(spec, numpy, batch=2, itemsize=8)
    assert planner.plan.cache_info().misses == 1 and planner.plan.cache_info().hits == 1
    tconv.conv_transpose(np.moveaxis(x, 1, -1), w, stride=2, channels_last=True)  # another layout, another plan
    assert planner.plan.cache_info().misses == 2 and engine_run._route.cache_info().misses == 2
    with tconv.avoid_algorithms(planner.select(spec, numpy, batch=2, itemsize=8).name):
        tconv.conv_transpose(x, w, stride=2)  # other algorithms avoided: decided again
    assert engine_run._route.cache_info().misses >= 3


@needs_team
def test_planner_picks_jit_pixels_for_batched_generators_on_a_team(monkeypatch):
    numpy = array_api_compat.array_namespace(np.empty(0))
    monkeypatch.setattr(team, "size", lambda: 2)
    dcgan = _spec(True, (64, 256, 8, 8), (256, 128, 4, 4), stride=2, padding=1)
    assert planner.select(dcgan, numpy, batch=64).name == "jit_pixels"
    assert planner.select(dcgan, numpy, batch=1).name == "jit_gemm"  # no team for one sample
    rows_of_16 = _spec(True, (64, 128, 16, 16), (128, 64, 4, 4), stride=2, padding=1)  # dcgan64-4
    assert planner.select(rows_of_16, numpy, batch=64).name == "jit_gemm"
    rows_of_32 = _spec(True, (8, 64, 32, 32), (64, 64, 3, 3), padding=2, dilation=2)  # the suite's "dilated"
    # not the pixel path (rows of 32); its twin by Winograd phase by phase (2.8 ms against jit_gemm's 5.1), now
    # F(4x4, 3x3) on the 16x16 phases: 5.8 ms against 7.0 for F(2x2, 3x3) and 7.3 for jit_gemm (a busy machine)
    assert planner.select(rows_of_32, numpy, batch=8).name == "jit_winograd4"
    one_d = _spec(True, (16, 512, 256), (512, 256, 16), stride=8, padding=4)
    assert planner.select(one_d, numpy, batch=16).name == "jit_gemm"
    # Too small a call for a team (columns under TEAM_MIN_BYTES): the planner must not plan for one either,
    # else the pixel path would run without the team it was chosen for.
    small = _spec(True, (2, 64, 4, 4), (64, 64, 4, 4), stride=2, padding=1)
    assert schedule.team_threads(2, 64, 4 * 16 * 16) == 1
    assert planner.select(small, numpy, batch=2).name != "jit_pixels"
    assert planner.select(small, numpy, batch=2).name == planner.plan(small, True, False, False)
    # four input channels: products of inner dimension four, which the cost model puts far above the forward
    # twin's im2col (with one, before the products were folded in: 3.0 ms measured against 0.63): the team rule
    # yields (PIXELS_TEAM_MARGIN). With one to three (PIXELS_DIRECT_MAX_IN) the products are folded into the
    # overlap-add, estimated near the twin (one channel: 0.53 ms measured against 0.49) and taken by the rule.
    thin = _spec(True, (14, 4, 4, 4), (4, 387, 4, 4))
    costs = planner.plan_costs(thin, 14, False, frozenset())
    assert costs["jit_pixels"] > _tuning.PIXELS_TEAM_MARGIN * min(costs.values())
    # the twin by rule 5; jit_blocked across the samples, estimated cheaper still, is not within its margin of it
    # (BLOCKED_FIRST_MARGIN; forced it ran 0.54 ms against jit_im2col's 0.82 on the Xeon at 512 bits)
    assert planner.select(thin, numpy, batch=14).name == "jit_im2col"
    assert _tuning.BLOCKED_FIRST_MARGIN * costs["jit_im2col"] < costs["jit_blocked"] < costs["jit_im2col"]
    folded = _spec(True, (14, 1, 4, 4), (1, 387, 4, 4))
    assert planner.select(folded, numpy, batch=14).name == "jit_pixels"
    monkeypatch.setattr(team, "size", lambda: 1)
    # without a team the cost model decides: rows of 128 channels against rows of 8 pixels (single-threaded,
    # jit_pixels measured 52 ms against jit_gemm's 55)
    assert planner.select(dcgan, numpy, batch=64).name == "jit_pixels"


def test_planner_pins_the_staged_depthwise_kernel_for_depthwise_convolutions_at_any_stride():
    import numpy

    from tconv.engine import planner
    from tconv.implementations.compiled import kernels

    if not kernels.available():
        pytest.skip("no compiled path")

    def forward(groups, stride, channels=64):
        spec = tconv.ConvSpec.build(transposed=False, input_size=(28, 28), kernel_size=(3, 3), in_channels=channels,
                                    out_channels=channels, stride=stride, padding=1, groups=groups)  # fmt: skip
        return planner.select(spec, numpy, False, 8).name

    # depthwise: the sum along a channels-last tile of eight channels, at any stride (0.27 and 0.18 ms forced at
    # strides 1 and 2, jit_direct's planes 0.39 and 0.34)
    assert forward(groups=64, stride=1) == "jit_depthwise"
    assert forward(groups=64, stride=2) == "jit_depthwise"
    # fewer channels than a vector's lanes: the direct sum's planes
    assert forward(groups=4, stride=2, channels=4) == "jit_direct"
    # 64 channels a group: the products (Winograd's at stride 1: F(4x4, 3x3) 4.3 ms against 5.4 for F(2x2, 3x3),
    # 6.9 for jit_gemm and 8.2 for jit_direct on a busy machine); at stride 2 a direct sum, the register blocks
    # (under BLOCKED_FIRST_MAX_SECONDS) or the direct sum's tiles (1.42 and 1.28-1.56 ms forced, jit_gemm
    # 1.07-1.44, alternated on a noisy machine; 1.20, 1.41 and 1.21 before the tiles' sums went to registers)
    assert forward(groups=1, stride=1) == "jit_winograd4"
    assert forward(groups=1, stride=2) in ("jit_blocked", "jit_direct")


@needs_jit
def test_planner_pins_the_products_for_a_1x1_convolution_of_many_channels():
    """ResNet's 1x1 bottleneck convolution (x (8, 256, 28, 28), 256 filters) is one product per sample, on
    jit_pointwise since it came (4.4 ms against 4.8 on jit_gemm, one process), never the direct sum (12.0 ms),
    whose passes of four channels add one tap a pass. (Keras' MNIST first layer, one input channel to 64 5x5
    filters at stride 2, which this test pinned to the products while the direct sum went a channel at a time,
    now measures level on both: 0.96 against 0.88 ms, and noisier than that difference.)"""
    numpy = array_api_compat.array_namespace(np.empty(0))
    spec = tconv.ConvSpec.build(transposed=False, input_size=(28, 28), kernel_size=(1, 1), in_channels=256,
                                out_channels=256)  # fmt: skip
    assert planner.select(spec, numpy, batch=8).name == "jit_pointwise"


@needs_jit
def test_planner_pins_jit_im2col_where_its_forward_twin_is_clearly_cheaper():
    """A stride-1 transposed convolution with few input channels or a large kernel runs as its forward twin (sweep
    layers that ran 2-4x faster so; few_inputs measured 0.25 ms there against 0.38 for the twin's direct sum and 0.75
    for jit_gemm, and 0.375 against 0.383 and 0.91 since the direct sum's tiles keep their sums in registers: either
    twin may be chosen there). The large kernel's twin is summed in tiles since the twenty-second session, which brought
    the direct sum level with the twin's product there (3.39 against 3.23 ms forced, one process, best of four): either
    may be chosen; jit_gemm (15 ms by the model) may not. Since the thirty-fifth session rule 4 takes the register
    blocks over the same twin first on the last two (on the AVX-512 machine, forced, one process, median of 21:
    large_kernel 1.21 ms against 1.32 on jit_im2col and 1.17 on jit_direct, 2.62 on jit_gemm; three_d channels-last
    15.1 against 21.6 on jit_im2col, 32.5 on jit_direct, 90.9 on jit_gemm): asserted, then avoided for rule 5."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    few_inputs = _spec(True, (54, 4, 6, 6), (4, 35, 3, 3), padding=1)
    large_kernel = _spec(True, (1, 13, 32, 32), (13, 64, 9, 9), padding=3)
    three_d = _spec(True, (23, 3, 9, 9, 9), (3, 169, 4, 4, 4))
    assert planner.select(large_kernel, numpy).name == "jit_blocked"
    assert planner.select(three_d, numpy, channels_last=True, batch=23).name == "jit_blocked"
    with tconv.avoid_algorithms("jit_blocked"):
        assert planner.select(few_inputs, numpy, batch=54).name in ("jit_im2col", "jit_direct")
        assert planner.select(large_kernel, numpy).name in ("jit_im2col", "jit_direct")
        assert planner.select(three_d, numpy, channels_last=True, batch=23).name == "jit_im2col"
    strided = _spec(True, (8, 4, 6, 6), (4, 35, 3, 3), stride=2, padding=1)
    assert planner.select(strided, numpy, batch=8).name != "jit_im2col"  # no forward twin


@needs_jit
def test_planner_takes_the_tiled_direct_sum_where_it_beats_the_products():
    """Layers of sweeps 47 and 46 that run the tiled direct sum (DIRECT_TILE_RATE, fitted on sweeps 45 and 46
    and checked on 47 to 50), measured forced on 2026-12-02: a convolution (16, 13, 120, 120) -> 135 k3 s2 p1,
    jit_direct 28.6 ms against 38.7 for jit_gemm (the choice before); a stride-1 transposed convolution (3, 3, 54,
    54) -> 132 k4, its twin's direct sum 1.89 ms against 2.84 for jit_im2col (the choice before) and 10.3 for
    jit_gemm. A 3x3 depthwise layer is priced by the cheaper of its two routes, the whole planes here (its
    one-channel groups summed in tiles priced within 0.4% of them)."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    forward = _spec(False, (16, 13, 120, 120), (135, 13, 3, 3), stride=2, padding=1)
    transposed = _spec(True, (3, 3, 54, 54), (3, 132, 4, 4))
    assert planner.select(forward, numpy, batch=16).name == "jit_direct"
    assert planner.select(transposed, numpy, batch=3).name == "jit_direct"
    from tconv.implementations.compiled import direct_conv

    depthwise = _spec(False, (8, 128, 56, 56), (128, 1, 3, 3), padding=1, groups=128)
    assert direct_conv.cost(depthwise) == min(direct_conv.cost(depthwise, tiles=t) for t in (True, False))
    assert not direct_conv.tiles_cheaper(depthwise)  # nine terms a channel on wide planes of 3246: whole planes
    assert direct_conv.cost(forward) < direct_conv.cost(forward, tiles=False)


@needs_jit
def test_planner_keeps_the_direct_sum_on_few_output_channels_at_512_bits(monkeypatch):
    """A group's two channels past its four summed in registers by the direct sum, priced so: forward sweep 52's
    fsweep-02, (28, 105, 14, 14) -> 6 k7 s2 p3, ran 2.09 ms on the direct sum against 4.52 on ``jit_blocked``, the
    choice before (forced, 2026-12-03, 256-bit kernels). Since the fortieth session ``jit_blocked`` sums six output
    channels in blocks of one vector: on the AVX-512 machine 2.24 ms against the direct sum's 1.62 (forced, one
    process, medians of 30), and priced at its 512 bits the planner keeps the direct sum. At 256 bits, the width
    the rest of the suite prices, the model puts blocks of eight lanes (six used) at 0.6 of the direct sum's
    estimate; no 256-bit machine has timed them, so that width is not asserted here."""
    monkeypatch.setattr(_tuning, "PRICED_VECTOR_BYTES", _tuning.WIDE_VECTOR_BYTES)
    numpy = array_api_compat.array_namespace(np.empty(0))
    remainder = _spec(False, (28, 105, 14, 14), (6, 105, 7, 7), stride=2, padding=3)
    assert planner.select(remainder, numpy, batch=28).name == "jit_direct"


@needs_jit
def test_planner_pins_the_unet_3x3_transposed_layers_through_their_twin():
    """The input gradients of U-Net's 3x3 convolutions (stride-1 transposed convolutions of 16-32 channels) run
    as their forward twin. At 32 channels by F(4x4, 3x3): (8, 32, 32, 32) measured 2.01 ms there against 2.50
    for jit_direct (the direct sum of the twin, chosen before F(4x4, 3x3) came: 1.33 against 1.84 for jit_gemm
    then), 2.32 for F(2x2, 3x3) and 2.55 for jit_gemm. At 16 channels the direct sum still clears
    rule 4's bar: (8, 16, 64, 64) 3.20 ms against 2.87 for F(4x4, 3x3), 3.47 for F(2x2, 3x3) and
    4.25 for jit_gemm (2026-12-01, a busy machine: within 10% of the fastest). At 64 channels the products win.
    Since the twenty-second session the direct sum runs in tiles (DIRECT_TILE_RATE) and takes the 32-channel
    layer too: 2.02 ms against 2.06 for F(4x4, 3x3) and 2.04 for F(2x2, 3x3) (forced, best of five); the
    16-channel one 2.00 against 3.63-4.04. (The bar was DIRECT_CONV_MARGIN, 0.8, until TWIN_DIRECT_MARGIN, 1, took
    its place in rule 4.)"""
    numpy = array_api_compat.array_namespace(np.empty(0))
    for x_shape, channels, chosen in (((8, 32, 32, 32), 32, "jit_direct"), ((8, 16, 64, 64), 16, "jit_direct")):
        unet = _spec(True, x_shape, (channels, channels, 3, 3), padding=1)
        assert planner.select(unet, numpy, batch=8).name == chosen
    wide = _spec(True, (8, 64, 16, 16), (64, 64, 3, 3), padding=1)
    # at 64 channels the products: Winograd's through the twin (1.27 ms, jit_gemm 1.24; at 14x14 and 128 channels
    # 2.56 against 3.20); F(4x4, 3x3) since it came, 1.77 ms against 1.87 for F(2x2, 3x3) (0.94 paired) and 2.20
    # for jit_gemm on a busy machine
    assert planner.select(wide, numpy, batch=8).name == "jit_winograd4"


@needs_jit
def test_planner_pins_jit_direct_for_a_large_dilated_depthwise_kernel_over_a_small_input():
    """The direct kernel's cost counts each (input, tap) pair at most once: a 6x6x6 kernel of dilation 2 over
    a 4x4x4 input reaches 14^3 outputs, but only 64 * 216 pairs exist (it ran 7 ms against jit_gemm's 25)."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    spec = _spec(True, (29, 25, 4, 4, 4), (25, 1, 6, 6, 6), groups=25, dilation=2)
    assert planner.select(spec, numpy, batch=29).name == "jit_direct"


@needs_jit
def test_planner_pins_jit_gemm_over_the_direct_kernel_for_a_channels_last_layer_of_few_channels():
    """Channels-last, the direct kernel's loops stride by the channel count (DIRECT_CHANNELS_LAST doubles its
    cost): x(1,35,35,5) -> 7, k4 s2, ran 0.64 ms there against jit_gemm's 0.17. A depthwise layer sums along
    the channels either way (channels-first through a channels-last tile)."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    spec = _spec(True, (1, 5, 35, 35), (5, 7, 4, 4), stride=2, padding=1, output_padding=1)
    assert planner.select(spec, numpy, channels_last=True).name == "jit_gemm"
    depthwise = _spec(True, (8, 64, 56, 56), (64, 1, 4, 4), groups=64, stride=2, padding=1)
    # channels-last, the depthwise layer sums along the contiguous channels (2.7 ms against 15.9 for jit_direct,
    # whose planes then stride by the channel count; 8 samples, tenth session)
    assert planner.select(depthwise, numpy, channels_last=True).name == "jit_depthwise"
    # channels-first too where the planes are a few pixels (sweep 11's layer 21: 0.07 ms against 0.72 for jit_direct,
    # whose set-up is per plane), and through its tile where they are large (the layer above, 56x56)
    tiny = _spec(True, (51, 168, 1, 1), (168, 1, 6, 6), groups=168, padding=2)
    assert planner.select(tiny, numpy, batch=51).name == "jit_depthwise"
    assert planner.select(depthwise, numpy, batch=8).name == "jit_depthwise"
    # fewer channels than a vector's lanes: the direct sum's planes
    few = _spec(True, (8, 4, 56, 56), (4, 1, 4, 4), groups=4, stride=2, padding=1)
    assert planner.select(few, numpy, batch=8).name == "jit_direct"


@needs_jit
def test_planner_prices_jit_gemm_s_transposing_copy_of_a_channels_last_input():
    """Channels-last, jit_gemm copies x into its (C_in, N*P) operand, a transposing copy of 4-12 GB/s; its
    estimate carries that copy (TRANSPOSE_STREAM, read and written) and channels-first's does not. The DCGAN
    generator's last layer, x(64,14,14,64) nhwc -> 1, k5 s2 p2 op1, measured 1.5-1.9 ms on jit_gemm against
    0.8-1.1 on jit_patches, which now runs it; channels-first, where jit_gemm took 0.55 ms, keeps jit_gemm."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    spec = _spec(True, (64, 64, 14, 14), (64, 1, 5, 5), stride=2, padding=2, output_padding=1)
    first, last = planner.plan_costs(spec, 64, False)["jit_gemm"], planner.plan_costs(spec, 64, True)["jit_gemm"]
    copy = 2 * _tuning.COST_ITEMSIZE * 64 * 14 * 14 * 64 / _tuning.TRANSPOSE_STREAM
    assert last - first == pytest.approx(copy)
    assert planner.select(spec, numpy, channels_last=True, batch=64).name == "jit_patches"
    assert planner.select(spec, numpy, channels_last=False, batch=64).name == "jit_gemm"


@needs_jit
def test_planner_prices_the_direct_convolution_s_channels_last_strides_on_its_memory_terms_only():
    """A channels-last convolution's direct sum strides by the channel count in its phase fills and its output
    write, not in its sums over the wide planes: only those terms grow (DIRECT_CONV_LAST_MEMORY). x(9,43,41,41)
    nhwc -> 51, k5 s2 p1 (sweep 2's fsweep-27) measured 4.5 ms on jit_direct against 6.8 on jit_gemm, which
    the whole estimate doubled had chosen; a layer of one channel each way keeps its sums' share unchanged.
    (``jit_blocked``, 4.2 ms there, is chosen over both; the comparison here is between the other two, so
    ``jit_dots`` is kept out too: 4.2 ms with its vectors along the output channels, 3.0 on ``jit_direct``, 3.2 on
    ``jit_blocked`` in the forty-fourth session, within its margin.)"""
    numpy = array_api_compat.array_namespace(np.empty(0))
    spec = _spec(False, (9, 43, 41, 41), (51, 43, 5, 5), stride=2, padding=1)
    assert planner.select(spec, numpy, channels_last=True, batch=9).name == "jit_blocked"
    with tconv.avoid_algorithms("jit_blocked", "jit_dots"):
        assert planner.select(spec, numpy, channels_last=True, batch=9).name == "jit_direct"
    first = planner.plan_costs(spec, 9, False)["jit_direct"]
    last = planner.plan_costs(spec, 9, True)["jit_direct"]
    assert first < last < 1.5 * first  # the sums dominate here and are the same in both layouts


@needs_jit
def test_planner_ranks_dilated_winograd_only_where_its_phases_pay():
    """A dilated 3x3 layer runs by Winograd phase by phase: ranked (and chosen) where every phase has
    WINOGRAD_MIN_PHASE outputs a side, x(2,512,32,32) -> 256 d2 (19.8 ms against 28.6 on jit_gemm); not ranked
    at dilation 8 over 17x17 outputs (2.4 ms against jit_gemm's 0.6) or 12 over 33x33."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    pays = _spec(False, (2, 512, 32, 32), (256, 512, 3, 3), padding=2, dilation=2)
    # (F(2x2, 3x3) 26.1 ms, F(4x4, 3x3) 29.0, jit_gemm 40.0 on a busy machine: the model puts F(4x4, 3x3) first on
    # these 16x16 phases, the smallest it ranks, and it measured 1.11 times F(2x2, 3x3)'s time)
    assert planner.select(pays, numpy, batch=2).name in ("jit_winograd", "jit_winograd4")
    for x_shape, d in (((2, 64, 17, 17), 8), ((1, 256, 33, 33), 12)):
        small = _spec(False, x_shape, (x_shape[1], x_shape[1], 3, 3), padding=d, dilation=d)
        costs = planner.plan_costs(small, x_shape[0])
        assert "jit_winograd" not in costs and "jit_winograd4" not in costs
        assert planner.select(small, numpy, batch=x_shape[0]).name not in ("jit_winograd", "jit_winograd4")


@needs_jit
def test_planner_pins_jit_pixels_where_it_skips_the_cropped_taps():
    """jit_pixels multiplies only the taps that land inside the output along one axis, and its cost says so:
    x(12,216,4,4) -> 96, k4 d3 p4 keeps 5x5 of a 13x13 full output (1.1 ms there against jit_gemm's 1.9)."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    spec = _spec(True, (12, 216, 4, 4), (216, 96, 4, 4), padding=4, dilation=3)
    assert planner.select(spec, numpy, batch=12).name == "jit_pixels"


@needs_jit
def test_planner_pins_the_direct_weight_gradient_on_long_planes_and_depthwise_layers_only():
    """jit_direct sums a convolution's weight gradient directly where the cost model puts it at most
    DIRECT_CONV_MARGIN of the im2col and product: U-Net's 16-channel 3x3 layer at 64x64 (measured 0.41 of the
    im2col's time) and a 3x3 depthwise layer (0.21) do; 64 channels on 7x7 planes (3.4x slower direct) and the
    DCGAN discriminator's second layer (64 -> 128, 5x5, stride 2 to 7x7) do not."""
    from tconv.implementations.compiled import algorithms

    assert algorithms.direct_weight_grad(_spec(False, (8, 16, 64, 64), (16, 16, 3, 3), padding=1))
    assert algorithms.direct_weight_grad(_spec(False, (8, 64, 56, 56), (64, 1, 3, 3), padding=1, groups=64))
    assert not algorithms.direct_weight_grad(_spec(False, (8, 64, 7, 7), (64, 64, 3, 3), padding=1))
    assert not algorithms.direct_weight_grad(_spec(False, (64, 64, 14, 14), (128, 64, 5, 5), stride=2, padding=2))


@needs_jit
def test_planner_takes_the_twins_direct_sum_at_the_cheaper_estimate(monkeypatch):
    """Rule 4 takes jit_direct for a stride-1 transposed layer through its twin where its estimate is at most
    TWIN_DIRECT_MARGIN (1: the cheaper) of every other's. On these two layers its estimate is 0.85 of jit_im2col's,
    which the former bar (DIRECT_CONV_MARGIN, 0.8) refused; every algorithm forced (transposed sweeps 56 and 57,
    `docs/bench-2026-12-05-s45-regret-56-59.json`): (8, 2, 39, 39) -> 353 5x5 2.42 ms on jit_direct against 4.85 on
    jit_im2col, (2, 15, 41, 41) -> 231 2x2 0.68 against 1.45."""
    from tconv.implementations.compiled import algorithms

    for x_shape, w_shape, padding in (((8, 2, 39, 39), (2, 353, 5, 5), 2), ((2, 15, 41, 41), (15, 231, 2, 2), 0)):
        spec = _spec(True, x_shape, w_shape, padding=padding)
        assert algorithms.direct_twin(spec) is not None  # rule 4's question, not rule 8's cheapest
        costs = planner.plan_costs(spec, x_shape[0], False)
        assert 0.8 * costs["jit_im2col"] < costs["jit_direct"] <= costs["jit_im2col"]
        for on_team in (False, True):
            assert planner.plan(spec, True, False, on_team, x_shape[0]) == "jit_direct"
    with monkeypatch.context() as patch:  # at the former bar the same layers went to the im2col
        patch.setattr(_tuning, "TWIN_DIRECT_MARGIN", 0.8)
        planner.plan.cache_clear()
        for x_shape, w_shape, padding in (((8, 2, 39, 39), (2, 353, 5, 5), 2), ((2, 15, 41, 41), (15, 231, 2, 2), 0)):
            spec = _spec(True, x_shape, w_shape, padding=padding)
            assert planner.plan(spec, True, False, False, x_shape[0]) != "jit_direct"
    planner.plan.cache_clear()


@needs_jit
def test_planner_pins_jit_direct_where_winograd_does_not_qualify(monkeypatch):
    """A Winograd estimate that fails WINOGRAD_MARGIN is not counted at all: it must not raise the bar the
    direct sum's twin has to clear (rule 4). On the two stride-1 transposed 3x3 layers below Winograd's estimate
    is under every other's but not WINOGRAD_MARGIN of them, and jit_direct's is under TWIN_DIRECT_MARGIN of the
    others' but not of Winograd's; measured (2026-11-30, ms): (4, 24, 14, 14) -> 16 channels-last, jit_direct 0.172,
    jit_winograd 0.177, jit_pixels 0.198; (2, 40, 10, 10) -> 24, jit_direct 0.123, jit_winograd 0.138, jit_gemm
    0.154. (The layers of 24-32 channels this test pinned first, 0.19 ms on jit_direct against 0.25 and 0.41
    against 0.57, now qualify: Winograd's rewritten transforms ran them in 0.19-0.60 ms.) The direct sum's tiles
    are priced at the rate of the kernel this test was written against (25e9, below DIRECT_TILE_RATE since its sums
    went to registers: 0.198 and 0.131 ms forced there, Winograd 0.197 and 0.197), so that its estimate lands
    between the bars the rule is about. ``jit_blocked``, which prices such layers as their forward twin since the
    thirty-fifth session (channels-last 0.092 ms there against jit_direct's 0.136, channels-first 0.104 against
    0.087, forced, on the AVX-512 machine), is avoided: the rule is about the other three."""
    monkeypatch.setattr(_tuning, "DIRECT_TILE_RATE", 25e9)  # (the estimates' caches are cleared around each test)
    # the bar at the margin the test was written for (0.8): at 1 jit_direct's estimate clears Winograd's on these
    # layers, and the rule's question (does an unqualified Winograd estimate raise the bar?) is not asked
    monkeypatch.setattr(_tuning, "TWIN_DIRECT_MARGIN", 0.8)
    numpy = array_api_compat.array_namespace(np.empty(0))
    for x_shape, w_shape, channels_last in (
        ((4, 24, 14, 14), (24, 16, 3, 3), True),
        ((2, 40, 10, 10), (40, 24, 3, 3), False),
    ):
        spec = _spec(True, x_shape, w_shape, padding=1)
        costs = planner.plan_costs(spec, x_shape[0], channels_last, avoided=frozenset({"jit_blocked"}))
        others = min(cost for name, cost in costs.items() if name not in ("jit_winograd", "jit_direct", "jit_im2col"))
        assert _tuning.WINOGRAD_MARGIN * others < costs["jit_winograd"] < others  # counted, it would win
        assert costs["jit_direct"] > _tuning.TWIN_DIRECT_MARGIN * costs["jit_winograd"]  # and bar jit_direct
        with tconv.avoid_algorithms("jit_blocked"):
            assert planner.select(spec, numpy, channels_last, x_shape[0]).name == "jit_direct"


@needs_jit
def test_planner_ranks_winograd4_only_from_sixteen_outputs_a_phase_side():
    """F(4x4, 3x3) is ranked only where every phase of the call has WINOGRAD4_MIN_SIDE outputs along each axis
    (on smaller maps its partly empty tiles and its transforms' set-up a row of tiles outweigh its products:
    (8, 128, 12, 12) -> 16 measured 1.51 times F(2x2, 3x3)'s time, (1, 64, 7, 7) -> 64 1.54 times)."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    side = _tuning.WINOGRAD4_MIN_SIDE
    for size, dilation, ranked in (
        (side, 1, True),
        (side - 1, 1, False),
        (2 * side, 2, True),
        (2 * side - 1, 2, False),
    ):
        spec = _spec(False, (4, 64, size, size), (64, 64, 3, 3), padding=dilation, dilation=dilation)
        assert ("jit_winograd4" in planner.plan_costs(spec, 4)) is ranked, (size, dilation)
    small = _spec(False, (8, 128, 12, 12), (16, 128, 3, 3), padding=1)
    assert planner.select(small, numpy, batch=8).name != "jit_winograd4"


@needs_jit
def test_planner_prices_winograd4_kernel_transform_per_call():
    """F(4x4, 3x3) transforms the kernel on every call, at WINOGRAD4_KERNEL_COST times F(2x2, 3x3)'s cost a
    value: at batch 1 a 512-channel layer keeps F(2x2, 3x3) (over 28x28 F(4x4, 3x3) measured 26.2 ms against 16.7,
    over 32x32 29.4 against 20.1), while at batch 4 the transform is shared by the samples and F(4x4, 3x3) wins
    (43.0 against 45.3 ms over 28x28; 2026-12-01, a busy machine)."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    for batch, side, chosen in ((1, 28, "jit_winograd"), (1, 32, "jit_winograd"), (4, 28, "jit_winograd4")):
        spec = _spec(False, (batch, 512, side, side), (512, 512, 3, 3), padding=1)
        assert planner.select(spec, numpy, batch=batch).name == chosen, (batch, side)


@needs_jit
def test_avoid_algorithms_leaves_the_next_choice():
    """``tconv.avoid_algorithms`` takes its names out of every rule and estimate: the planner then picks what it
    would pick among the rest, the rule of an avoided algorithm giving way to the next (rules 2, 6 and 7 return
    their algorithm without comparing costs), and blocks nest."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    forward_3x3 = _spec(False, (8, 64, 32, 32), (64, 64, 3, 3), padding=1)
    dcgan = _spec(True, (64, 256, 8, 8), (256, 128, 4, 4), stride=2, padding=1)
    bottleneck = _spec(False, (8, 256, 28, 28), (64, 256, 1, 1))
    assert planner.select(forward_3x3, numpy, batch=8).name == "jit_winograd4"
    with tconv.avoid_algorithms("jit_winograd4"):
        assert planner.select(forward_3x3, numpy, batch=8).name == "jit_winograd"
        with tconv.avoid_algorithms("jit_winograd"):
            assert planner.select(forward_3x3, numpy, batch=8).name not in ("jit_winograd", "jit_winograd4")
        assert planner.select(forward_3x3, numpy, batch=8).name == "jit_winograd"
    assert planner.select(forward_3x3, numpy, batch=8).name == "jit_winograd4"
    # rule 6 (channels-last, 64 samples) and rule 2 (a 1x1 kernel) give way to the cost model's next choice
    assert planner.select(dcgan, numpy, channels_last=True, batch=64).name == "jit_pixels"
    assert planner.select(bottleneck, numpy, batch=8).name == "jit_pointwise"
    with tconv.avoid_algorithms("jit_pixels", "jit_pointwise"):
        assert planner.select(dcgan, numpy, channels_last=True, batch=64).name == "jit_gemm"
        # (jit_gemm 2.7 ms forced, the direct sum's tiles 3.0: close, either may be taken)
        assert planner.select(bottleneck, numpy, batch=8).name in ("jit_gemm", "jit_direct")
    # with only the 1x1 path left, it runs whatever rule 2 says
    compiled = [name for name in tconv.algorithms() if name.startswith("jit_")]
    with tconv.avoid_algorithms(*(name for name in compiled if name != "jit_pointwise")):
        assert planner.select(_spec(False, (8, 2048, 7, 7), (512, 2048, 1, 1)), numpy, batch=8).name == "jit_pointwise"
    # every compiled algorithm avoided: the array-API product, then the per-tap one; none left: an error
    with tconv.avoid_algorithms(*compiled):
        assert planner.select(dcgan, numpy, batch=64).name == "gemm"
        with tconv.avoid_algorithms("gemm"):
            assert planner.select(dcgan, numpy, batch=64).name == "taps"
            with pytest.raises(ValueError, match="leaves no algorithm that runs this call"):
                with tconv.avoid_algorithms("taps"):  # depth_to_space and direct do not run it (stride 2, k 4)
                    planner.select(dcgan, numpy, batch=64)
    # one left that the cost model never ranks for the call: that one; none: an error
    four_d = _spec(True, (1, 2, 3, 3, 3, 3), (2, 2, 2, 2, 2, 2))
    with tconv.avoid_algorithms("gemm", "taps"):
        assert planner.select(four_d, numpy).name == "direct"  # stride 1, rank 4: the array-API direct sum
        with (
            pytest.raises(ValueError, match="leaves no algorithm that runs this call"),
            tconv.avoid_algorithms("direct"),
        ):
            planner.select(four_d, numpy)
    small_3x3 = _spec(False, (1, 8, 9, 9), (8, 8, 3, 3), padding=1)  # F(4x4, 3x3) runs it, though never ranked
    with tconv.avoid_algorithms(*(name for name in tconv.algorithms() if name != "jit_winograd4")):
        assert planner.select(small_3x3, numpy).name == "jit_winograd4"


@needs_team
def test_avoid_algorithms_gives_way_on_the_team_rule():
    """Rule 7 (channels-first batched generator layers on a team: jit_pixels without comparing costs) gives way
    when jit_pixels is avoided."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    dcgan = _spec(True, (64, 256, 8, 8), (256, 128, 4, 4), stride=2, padding=1)
    if team.size() < 2 or planner.select(dcgan, numpy, batch=64).name != "jit_pixels":
        pytest.skip("rule 7 does not hold here (one thread)")
    with tconv.avoid_algorithms("jit_pixels"):
        assert planner.select(dcgan, numpy, batch=64).name != "jit_pixels"


def test_avoid_algorithms_checks_its_names_and_forcing():
    with pytest.raises(ValueError, match=r"each name must be one of .* received 'fft'"), tconv.avoid_algorithms("fft"):
        pass
    with pytest.raises(TypeError, match=r"algorithm names .* received 3"), tconv.avoid_algorithms(3):
        pass
    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 2))
    with tconv.avoid_algorithms("taps"), tconv.use_algorithm("taps"):
        with pytest.raises(ValueError, match="forced algorithm 'taps' is also avoided"):
            tconv.conv_transpose(x, w, stride=2)
    with tconv.avoid_algorithms("taps"):
        pass
    assert tconv.engine.registry.avoided() == frozenset()


@needs_jit
def test_patches_gives_way_on_kernels_no_longer_than_their_stride_with_many_channels():
    """A kernel no longer than its stride (nothing overlaps) with PATCHES_NO_OVERLAP_MAX_CHANNELS output channels
    or more: jit_patches is not ranked (seed 41's sweep-02, (48, 9, 3) -> 186 k4 s4, took 1.27 ms on it against
    0.42 on jit_gemm) but still runs when forced; with fewer output channels, or with a kernel that overlaps, it is
    ranked as before."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    patches = registry.get("jit_patches")
    wide = _spec(True, (48, 9, 3), (9, 186, 4), stride=4, padding=1)
    assert patches.cost(wide) is None and patches.supports(wide, numpy)
    assert planner.select(wide, numpy, batch=48).name == "jit_gemm"
    few = _spec(True, (48, 9, 3), (9, _tuning.PATCHES_NO_OVERLAP_MAX_CHANNELS - 1, 4), stride=4, padding=1)
    overlapping = _spec(True, (48, 9, 3), (9, 186, 5), stride=4, padding=1)
    assert patches.cost(few) is not None and patches.cost(overlapping) is not None


@needs_jit
def test_a_channels_last_output_spread_by_the_stride_is_counted_where_nothing_overlaps():
    """jit_gemm's (and jit_patches') estimate of a channels-last call whose kernel is no longer than its stride
    counts writing the whole output once more (most of it the bias alone), as the channels-first one does not:
    sweep 12's (24, 37, 20, 20) -> 37 k2 s4 depthwise channels-last took 18 ms on jit_gemm, estimated at 4.5,
    against 2.5 on jit_depthwise, which the planner now picks."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    gemm = registry.get("jit_gemm")
    spread = _spec(True, (24, 37, 20, 20), (37, 1, 2, 2), stride=4, groups=37)
    output = _tuning.COST_ITEMSIZE * 37 * 78 * 78 / _tuning.COLUMN_STREAM  # (20 - 1) * 4 + 2 = 78 a side
    copy = 2 * _tuning.COST_ITEMSIZE * 37 * 20 * 20 / _tuning.TRANSPOSE_STREAM  # x's transposing copy, as before
    assert gemm.cost(spread, channels_last=True) == pytest.approx(gemm.cost(spread) + copy + output)
    overlapping = _spec(True, (24, 37, 20, 20), (37, 1, 5, 5), stride=4, groups=37)
    assert gemm.cost(overlapping, channels_last=True) < gemm.cost(overlapping) + output / 2
    assert planner.select(spread, numpy, channels_last=True, batch=24).name == "jit_depthwise"


@needs_jit
def test_the_planner_takes_the_folded_pixel_path_for_one_input_channel(monkeypatch):
    """One input channel channels-last (sweep 41's (1, 1, 56, 56) -> 127 k4 s2): the folded products cost a row per
    (input, tap) pair that reaches the output, and the planner picks jit_pixels (1.9-2.1 ms forced, against 4.1 on
    jit_direct, its former choice); with more input channels than PIXELS_DIRECT_MAX_IN the estimate is the column
    product's again."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    pixels = registry.get("jit_pixels")
    one = _spec(True, (1, 1, 56, 56), (1, 127, 4, 4), stride=2)
    pairs = 56 * 56 * 16  # every (input, tap) pair lands inside the output (no padding)
    per_pair = _tuning.PIXEL_ROW_COST + (_tuning.ROW_COST + 127 / _tuning.DIRECT_RATE)
    assert pixels.cost(one, channels_last=True) == pytest.approx(pairs * per_pair)
    assert planner.select(one, numpy, channels_last=True).name == "jit_pixels"
    many = _spec(True, (1, 16, 56, 56), (16, 127, 4, 4), stride=2)
    folded = pairs * (_tuning.PIXEL_ROW_COST + 16 * (_tuning.ROW_COST + 127 / _tuning.DIRECT_RATE))
    assert pixels.cost(many, channels_last=True) != pytest.approx(folded)
    monkeypatch.setattr(_tuning, "PIXELS_DIRECT_MAX_IN", 16)  # the same call folded: the other estimate
    assert pixels.cost(many, channels_last=True) == pytest.approx(folded)


@needs_jit
def test_the_planner_ranks_the_block_writes_channels_last():
    """Channels-last, where the output is whole blocks of the stride, jit_pixels writes each tap's product into the
    output (transposed._blocks), and the cost model ranks it: for a 2x2 stride-2 layer to three channels it is the
    cheapest ((4, 32, 63, 63) -> 3: 0.65 ms forced, against 0.90 on jit_gemm, the choice before); 3-D over short
    rows, whose 2704 products of 13 rows each cost more than their multiply-adds (BLOCKS_PRODUCT_COST), it is not
    (2.0 ms against 1.4 on jit_gemm). Channels-first the blocks are not contiguous, and it is not ranked. Likewise
    with groups."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    pixels = registry.get("jit_pixels")
    few = _spec(True, (4, 32, 63, 63), (32, 3, 2, 2), stride=2)
    assert planner.select(few, numpy, channels_last=True, batch=4).name == "jit_pixels"
    assert pixels.cost(few, channels_last=False) is None
    assert planner.select(few, numpy, channels_last=False, batch=4).name != "jit_pixels"
    short_rows = _spec(True, (4, 64, 13, 13, 13), (64, 4, 2, 2, 2), stride=2)
    assert planner.select(short_rows, numpy, channels_last=True, batch=4).name == "jit_gemm"
    # with groups, a product per group and tap of the last axis: sweep 44's (6, 76, 40, 40) -> 496 k2 s2, 4 groups
    # (13 ms forced, against 51-58 on jit_gemm, the choice before); channels-first it is not ranked
    grouped = _spec(True, (6, 76, 40, 40), (76, 124, 2, 2), groups=4, stride=2)
    assert planner.select(grouped, numpy, channels_last=True, batch=6).name == "jit_pixels"
    assert pixels.cost(grouped, channels_last=False) is None
    assert planner.select(grouped, numpy, channels_last=False, batch=6).name != "jit_pixels"


@needs_jit
def test_the_planner_takes_the_phases_within_their_margin():
    """Channels-last strided layers of few input channels: jit_phases (one stride-1 convolution per output phase,
    the product's inner dimension C_in times the phase's taps) where the cost model puts it at most PHASES_MARGIN
    of every other estimate: sweep 36's (20, 3, 56, 56) -> 30 k4 s2 took 7.3 ms there against 37.1 on jit_pixels,
    its former choice. Sweep 16's (37, 31, 6) -> 384 k6 s2, estimated at 0.69 of jit_pixels, ran 1.3-3.0x slower
    on jit_phases, and the margin leaves it to jit_pixels. Channels-first jit_phases is not ranked (it would copy x
    and the output across)."""
    numpy = array_api_compat.array_namespace(np.empty(0))
    phases = registry.get("jit_phases")
    few = _spec(True, (4, 3, 56, 56), (3, 30, 4, 4), stride=2, padding=1)
    assert planner.select(few, numpy, channels_last=True, batch=4).name == "jit_phases"
    assert phases.cost(few, channels_last=False) is None
    assert planner.select(few, numpy, channels_last=False, batch=4).name != "jit_phases"
    wide = _spec(True, (37, 31, 6), (31, 384, 6), stride=2, padding=1)
    costs = planner.plan_costs(wide, 37, True)
    others = min(cost for name, cost in costs.items() if name != "jit_phases")
    assert costs["jit_phases"] < others  # the cheapest estimate ...
    assert costs["jit_phases"] > _tuning.PHASES_MARGIN * others  # ... but not by the margin
    assert planner.select(wide, numpy, channels_last=True, batch=37).name == "jit_pixels"
    stride_one = _spec(True, (4, 3, 56, 56), (3, 30, 4, 4), padding=1)
    assert phases.cost(stride_one, channels_last=True) is None  # the twin's im2col there


@needs_jit
def test_planner_picks_window_dots_on_small_calls_only():
    """Rule 3 takes ``jit_dots`` where its estimate and its call's own cost are under ``DOTS_MAX_SECONDS`` and
    ``DOTS_MARGIN`` of the others' with theirs: a small 3-D call of one output pixel a sample (sweep 52's fsweep-19,
    31 us forced against jit_gemm's 73), in either layout; not ResNet's 3x3 layer (8, 64, 56, 56) -> 64, nor a
    large strided layer of a large weight ((8, 512, 14, 14) -> 1024 3x3 stride 2, an 18.9 MB weight read once a
    block of four pixels); the chosen call runs ``jit_dots`` and matches the oracle."""
    small = tconv.ConvSpec.build(transposed=False, input_size=(3, 3, 3), kernel_size=(5, 5, 5), in_channels=1,
                                 out_channels=210, stride=2, padding=3, dilation=2)  # fmt: skip
    resnet = tconv.ConvSpec.build(transposed=False, input_size=(56, 56), kernel_size=(3, 3), in_channels=64,
                                  out_channels=64, padding=1)  # fmt: skip
    wide = tconv.ConvSpec.build(transposed=False, input_size=(14, 14), kernel_size=(3, 3), in_channels=512,
                                out_channels=1024, stride=2, padding=1)  # fmt: skip
    assert planner.select(small, np, channels_last=False, batch=4).name == "jit_dots"
    assert planner.select(small, np, channels_last=True, batch=4).name == "jit_dots"
    for spec in (resnet, wide):
        for channels_last in (False, True):
            assert planner.select(spec, np, channels_last=channels_last, batch=8).name != "jit_dots"
    rng = np.random.default_rng(19)
    x = rng.standard_normal((4, 1, 3, 3, 3)).astype(np.float32)
    w = rng.standard_normal((210, 1, 5, 5, 5)).astype(np.float32)
    b = rng.standard_normal(210).astype(np.float32)
    with chosen_algorithms() as chosen:
        got = tconv.conv(x, w, b, stride=2, padding=3, dilation=2)
    assert chosen == ["jit_dots"]
    expected = naive_conv(x, w, b, stride=[2] * 3, pads=[(3, 3)] * 3, dilation=[2] * 3)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)


@needs_jit
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding"),
    [
        ((4, 29, 3, 3, 3), (166, 29, 3, 3, 3), 1, 1),  # forward sweep 52's fsweep-11: 0.51 of jit_gemm's time
        ((56, 2, 8), (164, 2, 7), 1, 0),  # sweep 50's fsweep-31: 0.57 of jit_gemm's time
    ],
)
def test_planner_takes_window_dots_within_its_margin_above_the_others(x_shape, w_shape, stride, padding, monkeypatch):
    """``DOTS_MARGIN`` is above 1 (``jit_dots``' estimate runs high against the others'): on these small layers
    (estimates about 1.3 times the cheapest other's, each with its call's cost) rule 3 takes ``jit_dots``, and the
    chosen call (channels-first) matches the oracle; with the margin at 1 the planner takes another algorithm. The
    vectors along the windows only, as these were measured (the second layer now runs along the output channels,
    below every other estimate: ``test_planner_takes_window_dots_along_the_channels_without_its_margin``)."""
    monkeypatch.setattr(window_dots, "along_channels", lambda spec, batch, channels_last: False)
    rank = len(x_shape) - 2
    spec = tconv.ConvSpec.build(transposed=False, input_size=x_shape[2:], kernel_size=w_shape[2:],
                                in_channels=x_shape[1], out_channels=w_shape[0], stride=stride,
                                padding=padding)  # fmt: skip
    batch = x_shape[0]
    assert planner.select(spec, np, channels_last=False, batch=batch).name == "jit_dots"
    rng = np.random.default_rng(53)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    expected = naive_conv(x, w, stride=[stride] * rank, pads=[(padding, padding)] * rank)
    with chosen_algorithms() as chosen:
        got = tconv.conv(x, w, stride=stride, padding=padding)
    assert chosen == ["jit_dots"]
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)
    monkeypatch.setattr(_tuning, "DOTS_MARGIN", 1.0)
    planner.plan.cache_clear()
    assert planner.select(spec, np, channels_last=False, batch=batch).name != "jit_dots"


@needs_jit
def test_planner_takes_window_dots_along_the_channels_without_its_margin(monkeypatch):
    """Sweep 50's fsweep-31, (56, 2, 8) -> 164 k7: a window of 14 elements into 164 output channels. With the vectors
    along the output channels (the weight packed once a call) ``jit_dots`` took 36 us forced, against 87 along the
    windows, 73 on ``jit_blocked`` and 92 on ``jit_gemm`` (forty-fourth session); its estimate that way is below
    every other's with their calls' costs, so rule 3 takes it with ``DOTS_MARGIN`` at 1, and the call runs the
    channels' kernel and matches the oracle."""
    spec = tconv.ConvSpec.build(transposed=False, input_size=(8,), kernel_size=(7,), in_channels=2, out_channels=164)
    assert window_dots.along_channels(spec, 56, False)
    costs = planner.plan_costs(spec, 56, False)
    calls = _tuning.FORWARD_CALL_COST
    own = costs.pop("jit_dots") + calls["jit_dots"]
    assert all(own < cost + calls.get(name, _tuning.FORWARD_CALL_COST_OTHERS) for name, cost in costs.items())
    monkeypatch.setattr(_tuning, "DOTS_MARGIN", 1.0)
    assert planner.select(spec, np, channels_last=False, batch=56).name == "jit_dots"
    rng = np.random.default_rng(31)
    x = rng.standard_normal((56, 2, 8)).astype(np.float32)
    w = rng.standard_normal((164, 2, 7)).astype(np.float32)
    b = rng.standard_normal(164).astype(np.float32)
    packed = []
    pack = window_dots._pack_kernel()
    monkeypatch.setattr(window_dots, "_pack_kernel", lambda: lambda *args: packed.append(1) or pack(*args))
    with chosen_algorithms() as chosen:
        got = tconv.conv(x, w, b)
    assert chosen == ["jit_dots"] and packed == [1]
    np.testing.assert_allclose(got, naive_conv(x, w, b, stride=[1], pads=[(0, 0)]), rtol=2e-4, atol=2e-4)
