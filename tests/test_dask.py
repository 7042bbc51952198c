"""Tiled convolutions and networks on Dask arrays against the in-memory call (``tconv[dask]``)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tconv
from tconv import nn

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

SCHEDULERS = ["synchronous", "threads"]

# (transposed, x shape, weight shape, options, chunks): every option, irregular chunks, chunks below the halo,
# a chunked channel axis, strings, gaps between stamps, blocks of padding alone, unbatched inputs.
CASES = {
    "conv1d stride dilation asymmetric": (False, (2, 3, 23), (4, 3, 3), {"stride": 2, "dilation": 2, "padding": [(3, 1)]}, (1, 3, (5, 7, 4, 7))),
    "conv2d groups bias": (False, (2, 4, 17, 13), (6, 2, 3, 2), {"groups": 2, "padding": [(1, 2), (0, 1)], "bias": True}, (1, 4, (6, 6, 5), (4, 9))),
    "conv2d same stride": (False, (1, 3, 19, 16), (2, 3, 5, 4), {"stride": (2, 3), "padding": "same"}, (1, 3, 7, 5)),
    "conv3d": (False, (1, 2, 9, 10, 11), (3, 2, 3, 2, 3), {"stride": (1, 2, 3), "padding": 1, "dilation": (2, 1, 1)}, (1, 2, 4, 5, 6)),
    "conv chunks below halo": (False, (1, 2, 30), (3, 2, 5), {"dilation": 3, "padding": 6}, (1, 2, 2)),
    "conv chunked channels": (False, (2, 6, 20), (4, 6, 3), {"padding": 1}, (1, 2, 7)),
    "conv padding beyond kernel": (False, (1, 2, 10), (3, 2, 2), {"padding": 5, "bias": True}, (1, 2, 3)),
    "conv channels last": (False, (2, 11, 12, 4), (4, 2, 3, 3), {"groups": 2, "stride": 2, "padding": 1, "channels_last": True}, (1, 5, 4, 4)),
    "conv unbatched": (False, (3, 21), (2, 3, 4), {"stride": 3, "padding": 2}, (3, 8)),
    "convT1d output padding": (True, (2, 3, 13), (3, 2, 4), {"stride": 3, "padding": [(1, 2)], "output_padding": 2}, (1, 3, (4, 5, 4))),
    "convT2d stride same": (True, (1, 4, 9, 10), (4, 3, 5, 4), {"stride": 2, "padding": "same", "bias": True}, (1, 4, 4, 3)),
    "convT2d groups dilation": (True, (2, 4, 8, 9), (4, 3, 3, 3), {"groups": 2, "dilation": (2, 3), "output_padding": (1, 2), "stride": (1, 2)}, (2, 4, 3, 5)),
    "convT3d": (True, (1, 2, 6, 7, 5), (2, 3, 4, 3, 2), {"stride": (2, 1, 3), "padding": (1, 1, 0)}, (1, 2, 3, 4, 2)),
    "convT gaps (kernel below stride)": (True, (1, 2, 11), (2, 2, 1), {"stride": 3, "output_padding": 2, "padding": [(1, 0)]}, (1, 2, 3)),
    "convT crop beyond kernel": (True, (1, 2, 12), (2, 2, 3), {"stride": 2, "padding": 4}, (1, 2, 2)),
    "convT chunks below halo, chunked channels": (True, (1, 4, 15), (4, 2, 7), {"dilation": 2, "padding": 3}, (1, 1, 1)),
    "convT channels last": (True, (1, 7, 6, 4), (4, 1, 3, 3), {"groups": 2, "stride": 2, "padding": 1, "output_size": (14, 12), "channels_last": True}, (1, 3, 4, 4)),
    "convT unbatched": (True, (3, 9), (3, 2, 4), {"stride": 2, "padding": 1}, (3, 4)),
}  # fmt: skip


def _arrays(case: tuple, dtype: type = np.float64) -> tuple:
    transposed, x_shape, w_shape, options, chunks = case
    rng = np.random.default_rng(len(x_shape) * 100 + sum(w_shape))
    options = dict(options)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    groups = options.get("groups", 1)
    out_channels = w_shape[1] * groups if transposed else w_shape[0]
    b = rng.standard_normal(out_channels).astype(dtype) if options.pop("bias", False) else None
    return x, w, b, options, chunks


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("name", list(CASES))
def test_forward_equals_the_in_memory_call(name: str, scheduler: str) -> None:
    transposed = CASES[name][0]
    x, w, b, options, chunks = _arrays(CASES[name])
    op = tconv.conv_transpose if transposed else tconv.conv
    expected = op(x, w, b, **options)
    lazy = op(da.from_array(x, chunks=chunks), w, b, **options)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == expected.shape
    got = lazy.compute(scheduler=scheduler)
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_bitwise_where_the_blocks_compute_the_same_sums() -> None:
    """float32 on the compiled path: each output's sum runs over the same taps in the same order."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 40, 40)).astype(np.float32)
    w = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    expected = tconv.conv_transpose(x, w, stride=2, padding=1)
    got = tconv.conv_transpose(da.from_array(x, chunks=(1, 4, 16, 20)), w, stride=2, padding=1).compute()
    assert np.array_equal(got, expected)


def test_transposed_output_blocks_are_stride_times_the_input_blocks() -> None:
    x = da.zeros((1, 2, 40), chunks=(1, 2, 10))
    y = tconv.conv_transpose(x, np.zeros((2, 2, 2)), stride=2)
    assert y.chunks[-1] == (20, 20, 20, 20)


@pytest.mark.parametrize("transposed", [False, True])
def test_gradients_equal_the_in_memory_ones(transposed: bool) -> None:
    rng = np.random.default_rng(1)
    if transposed:
        x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((4, 3, 3, 4))
        options = {"stride": (2, 3), "padding": [(1, 0), (2, 1)], "output_padding": (1, 2), "groups": 1}
        forward = tconv.conv_transpose(x, w, **options)
        grad, grad_fn = tconv.conv_transpose_grad, True
    else:
        x, w = rng.standard_normal((2, 4, 15, 12)), rng.standard_normal((6, 2, 3, 3))
        options = {"stride": 2, "padding": [(2, 1), (1, 1)], "dilation": (1, 2), "groups": 2}
        forward = tconv.conv(x, w, **options)
        grad, grad_fn = tconv.conv_grad, False
    assert grad_fn == transposed
    gy = rng.standard_normal(forward.shape)
    expected = grad(gy, x, w, **options)
    lazy = grad(da.from_array(gy, chunks=(1, -1, 5, 4)), da.from_array(x, chunks=(1, 2, 4, 5)), w, **options)
    for got, want in zip(dask.compute(*lazy, scheduler="threads"), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_the_weight_is_one_key_of_the_graph() -> None:
    w = np.ones((3, 2, 3, 3))
    x = da.ones((2, 2, 64, 64), chunks=(1, 2, 16, 16))
    y = tconv.conv(x, w, padding=1)
    graph = dict(y.__dask_graph__())
    holding = [k for k, v in graph.items() if isinstance(v, np.ndarray) or "array-" in str(k)]
    assert len(holding) <= 2  # the original array and its one chunk
    small = len(dict(tconv.conv(da.ones((1, 2, 32, 32), chunks=(1, 2, 8, 8)), w).__dask_graph__()))
    large = len(dict(tconv.conv(da.ones((1, 2, 128, 128), chunks=(1, 2, 8, 8)), w).__dask_graph__()))
    assert large <= 16 * small + 8  # 16 times the blocks, at most 16 times the tasks: linear


def test_the_result_is_lazy_and_bad_arguments_fail_at_once() -> None:
    x = da.ones((1, 3, 10), chunks=(1, 3, 5))
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        tconv.conv_transpose(x, np.ones((3, 1, 3)), stride=2, output_padding=2)
    with pytest.raises(TypeError, match="real floating"):
        tconv.conv(da.ones((1, 3, 10), dtype=int, chunks=5), np.ones((1, 3, 3)))


def test_without_dask_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask.array", None)

    class Array:  # a Dask array as seen by a process where dask.array cannot be imported
        __module__ = "dask.array.core"
        shape = (1, 1, 4)

    with pytest.raises(ImportError, match=r"pip install 'tconv\[dask\]'"):
        tconv.conv(Array(), np.ones((1, 1, 3)))


def _decoder(channels_last: bool = False) -> nn.Module:
    nn.manual_seed(3)
    if channels_last:
        model = nn.Sequential(
            [
                nn.Conv2DTranspose(6, 4, strides=2, padding="same", activation="relu", input_shape=(10, 9, 3)),
                nn.BatchNormalization(),
                nn.Conv2D(4, 3, padding="same", dilation_rate=2),
                nn.MaxPooling2D(2, padding="same"),
                nn.UpSampling2D(2, interpolation="bilinear"),
                nn.Conv2DTranspose(2, 3, strides=3, padding="valid"),
            ]
        )
    else:
        model = nn.Sequential(
            [
                nn.ConvTranspose2d(3, 6, 4, stride=2, padding=1),
                nn.BatchNorm2d(6),
                nn.torch.LeakyReLU(0.1),
                nn.Conv2d(6, 4, 3, padding=2, dilation=2),
                nn.MaxPool2d(3, stride=2, padding=1),
                nn.Upsample(scale_factor=3, mode="nearest"),
                nn.Conv2d(4, 4, (3, 1), padding=(1, 0), groups=2),
                nn.Upsample(scale_factor=2, mode="bilinear"),
                nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
                nn.Tanh(),
            ]
        )
        model.build_from_shape((1, 3, 10, 9))
    rng = np.random.default_rng(5)
    for name, param in model.named_parameters():
        if "running_var" in name:
            param.value = rng.uniform(0.5, 2.0, param.shape).astype(param.value.dtype)
        elif "running_mean" in name:
            param.value = rng.standard_normal(param.shape).astype(param.value.dtype)
    return model


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_network_tile_by_tile_equals_the_whole_run(channels_last: bool, scheduler: str) -> None:
    model = _decoder(channels_last)
    shape = (2, 10, 9, 3) if channels_last else (2, 3, 10, 9)
    chunks = (1, 4, (3, 2, 4), 3) if channels_last else (1, 2, 4, (3, 2, 4))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = model.eval()(x)
    got = tconv.dask.run_model(model, da.from_array(x, chunks=chunks)).compute(scheduler=scheduler)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_model_arithmetic_names_every_layer() -> None:
    table = str(tconv.dask.model_arithmetic(_decoder(), (1, 3, 10, 9)))
    assert "ConvTranspose2d" in table and "MaxPool2d" in table and "halo" in table


@pytest.mark.parametrize(
    ("layer", "name"),
    [
        (lambda: nn.Sequential([nn.Conv2d(2, 2, 3), nn.torch.Flatten(), nn.Linear(2 * 6 * 6, 3)]), "Flatten"),
        (lambda: nn.Sequential([nn.Conv2d(2, 2, 3), nn.AdaptiveAvgPool2d(1)]), "AdaptiveAvgPool2d"),
        (lambda: nn.Sequential([nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")]), "Conv2d"),
        (lambda: nn.Sequential([nn.Upsample(size=(9, 9))]), "Upsample"),
    ],
)
def test_layers_that_need_the_whole_array_are_refused_by_name(layer: object, name: str) -> None:
    model = layer()  # type: ignore[operator]
    with pytest.raises(ValueError, match=name):
        tconv.dask.run_model(model, da.zeros((1, 2, 8, 8), chunks=4))


def test_zarr_in_and_out_on_a_local_cluster(tmp_path: object) -> None:
    """Worker processes on the loopback interface with a memory limit; Zarr to Zarr."""
    distributed = pytest.importorskip("distributed")
    zarr = pytest.importorskip("zarr")
    model = nn.Sequential([nn.ConvTranspose3d(2, 3, 4, stride=2, padding=1), nn.ReLU(), nn.Conv3d(3, 1, 3, padding=1)])
    x = np.random.default_rng(2).standard_normal((1, 2, 12, 10, 8)).astype(np.float32)
    source, target = f"{tmp_path}/x.zarr", f"{tmp_path}/y.zarr"
    da.from_array(x, chunks=(1, 2, 5, 4, 4)).to_zarr(source)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        memory_limit="1GiB",
    ) as cluster, distributed.Client(cluster, timeout="60s") as client:  # fmt: skip
        lazy = tconv.dask.run_model(model, da.from_zarr(source))
        lazy.to_zarr(target, compute=True)
        conv = tconv.conv_transpose(da.from_zarr(source), model[0].weight.value, stride=2, padding=1)
        single = client.compute(conv).result(timeout=120)
    stored = zarr.open(target, mode="r")[...]
    np.testing.assert_allclose(stored, model.eval()(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(single, tconv.conv_transpose(x, model[0].weight.value, stride=2, padding=1))


def test_the_weight_gradient_graph_computes_no_input_gradient() -> None:
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 12, 10)), rng.standard_normal((2, 3, 4, 4))
    gy = rng.standard_normal(tconv.conv_transpose(x, w, stride=2, padding=1).shape)
    _, grad_w, _ = tconv.conv_transpose_grad(da.from_array(gy, chunks=(1, 3, 8, 8)), da.from_array(x), w, stride=2,
                                             padding=1)  # fmt: skip
    layers = list(grad_w.__dask_graph__().layers)
    assert any(name.startswith("tconv-weight-grad") for name in layers)
    assert not any(name.startswith(("tconv-conv-", "tconv-conv_transpose-")) for name in layers)
    np.testing.assert_allclose(grad_w.compute(), tconv.conv_transpose_grad(gy, x, w, stride=2, padding=1)[1],
                               rtol=1e-10, atol=1e-10)  # fmt: skip


def _thread_settings() -> tuple[int, list[int]]:
    from threadpoolctl import threadpool_info

    from tconv.implementations.compiled import team

    return team.threads(), [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def _no_thread_in_control_of_blas() -> None:
    """Clear threadpoolctl's control of OpenBLAS (3.8 on; nothing before), whichever thread holds it: earlier code
    in this process (another library's limit set outside a `with`) may have left it, and then every limit set
    from another thread, a block's among them, is ignored."""
    from tconv.implementations.compiled import team

    kind = team._openblas_controller()
    if kind is not None:
        kind.clear_controlling_thread(force=True)


def test_set_block_threads_limits_blocks_in_dask_threads_and_restores() -> None:
    import threading

    import tconv.dask.threads as block_settings
    from tconv.dask.threads import engine_threads

    _no_thread_in_control_of_blas()
    before = _thread_settings()
    seen: list[tuple[int, list[int]]] = []
    limiting: list[bool] = []

    def block() -> None:
        with engine_threads():
            seen.append(_thread_settings())
            limiting.append(block_settings._blas_limiter is not None)

    assert tconv.dask.block_threads() == 1  # the default
    try:
        thread = threading.Thread(target=block)
        thread.start()
        thread.join()
        with engine_threads():  # the main thread (the synchronous scheduler) keeps every thread
            assert _thread_settings() == before
        x = np.random.default_rng(0).standard_normal((2, 3, 40, 40))
        tconv.conv_transpose(da.from_array(x, chunks=(1, 3, 20, 20)), np.ones((3, 2, 4, 4)), stride=2).compute(
            scheduler="threads"
        )
    finally:
        tconv.dask.set_block_threads(1)
    # The team has the block's size and BLAS the block's limit (threadpoolctl, 3.8 on, ignores a thread's limit
    # while another thread holds its control of OpenBLAS: neither tconv's runs nor the blocks keep it).
    assert seen[0][0] == 1 and limiting == [True]
    assert seen[0][1] == [1] * len(before[1])
    assert _thread_settings() == before


def test_a_block_in_a_living_pool_thread_leaves_the_main_thread_able_to_limit_blas() -> None:
    """Dask's pool threads live on after a computation. A block's BLAS limit, restored from its own thread, must
    give threadpoolctl's control up there: kept, every limit set from the main thread (a chunk team's around its
    run) was ignored while the pool lived, and the team ran beside BLAS's threads."""
    from concurrent.futures import ThreadPoolExecutor

    from tconv.dask.threads import engine_threads
    from tconv.implementations.compiled import team

    _no_thread_in_control_of_blas()
    libs = team._blas_libraries()  # those the team limits: the BLAS libraries loaded at its first use

    def counts() -> list[int]:
        return [lib.get_num_threads() for lib in libs]

    before = counts()
    if not libs or min(before) < 2:
        pytest.skip("no BLAS whose limit to one thread would show (or no threadpoolctl)")

    def block() -> list[int]:
        with engine_threads():
            return counts()

    def limited_here() -> list[int]:
        with team._blas_single_threaded():  # what a chunk team does around its run
            return counts()

    pool = ThreadPoolExecutor(1)
    try:
        assert limited_here() == [1] * len(libs)
        assert pool.submit(block).result() == [1] * len(libs)  # the block's limit took
        assert limited_here() == [1] * len(libs)  # and the pool's thread, alive, kept no control
    finally:
        pool.shutdown()
    assert counts() == before


def test_block_threads_can_be_left_to_the_engine() -> None:
    import threading

    import tconv.dask.threads as block_settings
    from tconv.dask.threads import engine_threads

    before = _thread_settings()
    seen: list[tuple[int, list[int]]] = []
    limiting: list[bool] = []

    def block() -> None:
        with engine_threads():
            seen.append(_thread_settings())
            limiting.append(block_settings._blas_limiter is not None)

    tconv.dask.set_block_threads(None)
    try:
        thread = threading.Thread(target=block)
        thread.start()
        thread.join()
    finally:
        tconv.dask.set_block_threads(1)
    assert seen == [before] and limiting == [False]
    with pytest.raises(ValueError, match="positive int or None"):
        tconv.dask.set_block_threads(0)


def test_the_resize_rule_is_the_layers_own() -> None:
    from tconv.dask import network
    from tconv.nn.layers import resize, resize_rows

    assert network.resize_rows is resize_rows is resize.resize_rows


def test_explain_model_prints_the_arithmetic_and_its_json(capsys: pytest.CaptureFixture[str]) -> None:
    from tconv.tools.cli import main

    assert main(["explain", "--model", "volume-decoder", "--input", "4x160x160x160"]) == 0
    out = capsys.readouterr().out
    assert "ConvTranspose3d" in out and "640x640x640 x2" in out and "alignment" in out and "(2,0)" in out
    assert main(["explain", "--model", "super-resolution", "--input", "1x32x32", "--json"]) == 0
    data = __import__("json").loads(capsys.readouterr().out)
    assert data["model"] == "super-resolution" and data["input_shape"] == [1, 1, 32, 32]
    last = data["layers"][-1]
    assert last["type"] == "Conv2d" and last["receptive_field"] == [5, 5] and last["halo"] == [[1, 3], [1, 3]]
    assert last["scale"] == [[2, 1], [2, 1]] and last["alignment"] == [1, 1]
    assert main(["explain", "--model", "super-resolution", "--input", "3x3x3x3x3"]) == 2
    assert "takes 2-D inputs" in capsys.readouterr().err
    assert main(["explain", "--model", "super-resolution", "--input", "3x32x32"]) == 2  # 3 channels, 1 expected
    assert "error" in capsys.readouterr().err


def test_a_chunk_team_inside_a_block_leaves_blas_to_the_blocks() -> None:
    """Block A limits BLAS (to the default one thread a block), block B starts, a chunk team's BLAS step runs
    in B (with set_block_threads(k >= 2) a real chunk team can: it must not take A's limit for BLAS's own
    count), A ends and restores, then the team's step and B end: BLAS is back to its count before."""
    import threading

    from tconv.dask.threads import engine_threads
    from tconv.implementations.compiled import team

    before = _thread_settings()
    steps = {name: threading.Event() for name in ("a_in", "b_team", "a_out", "team_out")}

    def block_a() -> None:
        with engine_threads():
            steps["a_in"].set()
            steps["b_team"].wait(10)
        steps["a_out"].set()

    def block_b() -> None:
        steps["a_in"].wait(10)
        with engine_threads():
            with team._blas_single_threaded():  # what a chunk team does around its run
                steps["b_team"].set()
                steps["a_out"].wait(10)
            steps["team_out"].set()

    assert tconv.dask.block_threads() == 1
    threads = [threading.Thread(target=block_a), threading.Thread(target=block_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert all(event.is_set() for event in steps.values())
    assert _thread_settings() == before
