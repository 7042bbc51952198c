"""``tconv bench``'s layers and environment: the sweep is drawn from its seed and under its caps, the forward
suite and the model steps run, and tconv's worker gets thread counts and no OpenMP setting. No timing is
asserted: speed is read off the full table, never tested."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tconv.tools import bench
from tconv.tools.bench_cases import FORWARD_CASES, MAX_BYTES, MAX_FLOPS, sweep

pytest.importorskip("torch")


@pytest.mark.parametrize("transposed", [True, False])
def test_sweep_draws_the_same_layers_for_the_same_seed(transposed):
    first = sweep(11, transposed=transposed)
    assert first == sweep(11, transposed=transposed)
    assert first != sweep(12, transposed=transposed)
    assert len(first) == 60 and len({c.name for c in first}) == 60
    assert sweep(11, 70, transposed=transposed)[:60] == first  # a larger sweep extends the same draw


@pytest.mark.parametrize("transposed", [True, False])
def test_sweep_respects_the_caps_and_covers_the_kinds_of_layer(transposed):
    cases = sweep(3, 120, transposed=transposed)
    assert all(c.flops <= MAX_FLOPS and c.bytes <= MAX_BYTES for c in cases)
    assert all(min(c.output_spatial) >= 1 for c in cases)
    assert all(1 <= c.x[0] <= 64 and 1 <= c.x[1] <= 512 and 1 <= c.c_out <= 512 for c in cases)
    assert all(1 <= k <= 9 for c in cases for k in c.kernel) and all(1 <= c.stride <= 4 for c in cases)
    assert all(c.x[1] % c.groups == 0 and c.c_out % c.groups == 0 for c in cases)
    assert {len(c.kernel) for c in cases} == {1, 2, 3}
    assert any(c.groups > 1 for c in cases) and any(c.groups == c.x[1] > 1 for c in cases)
    assert any(c.channels_last for c in cases) and any(not c.channels_last for c in cases)
    assert any(c.dilation > 1 for c in cases) and any(c.kernel[0] < c.stride for c in cases)
    assert all(c.transposed == transposed for c in cases)


def test_a_peers_standard_error_goes_to_a_file_of_its_own_removed_when_it_ends():
    """TensorFlow's native logging printed into the table; a peer's worker now writes its standard error (the
    descriptor, where native libraries write) to a file, and tconv's worker keeps the console."""
    pytest.importorskip("onnxruntime")
    if not os.path.exists("/proc/self/fd/2"):
        pytest.skip("reads the workers' descriptors from /proc")
    workers = bench.start_workers(["tconv", "onnxruntime"], 1)
    try:
        for _, connection in workers.values():
            connection.send(("environ",))
            connection.recv()  # the worker is up (it redirects before it serves)
        log = bench.WORKER_LOGS["onnxruntime"]
        assert os.path.exists(log)
        assert os.path.realpath(f"/proc/{workers['onnxruntime'][0].pid}/fd/2") == os.path.realpath(log)
        assert os.readlink(f"/proc/{workers['tconv'][0].pid}/fd/2") == os.readlink("/proc/self/fd/2")
        assert "tconv" not in bench.WORKER_LOGS
    finally:
        bench.stop_workers(workers)
    assert not os.path.exists(log) and "onnxruntime" not in bench.WORKER_LOGS


def test_the_bench_sets_no_openmp_variable_for_tconvs_worker(monkeypatch):
    for name in (*bench.WAIT_VARIABLES, "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    env = bench.worker_environment("tconv", 2)
    assert not any(key.startswith(("OMP_", "KMP_", "GOMP_")) for key in env)
    assert set(env) <= {"OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"}
    for name in ("torch", "onnxruntime", "tensorflow", "jax"):  # no peer gets a wait setting either
        assert not set(bench.worker_environment(name, 2)) & set(bench.WAIT_VARIABLES)
    workers = bench.start_workers(["tconv"], 1)
    try:
        connection = workers["tconv"][1]
        connection.send(("environ",))
        environ = connection.recv()
    finally:
        bench.stop_workers(workers)
    # Nothing the bench adds: a variable the test process itself has (a framework imported by an earlier test
    # may have set one) is the user's environment, passed on as it is.
    inherited = {key for key in os.environ if key.startswith(("OMP_", "KMP_", "GOMP_"))}
    added = {key for key in environ if key.startswith(("OMP_", "KMP_", "GOMP_"))} - inherited
    assert not added
    assert environ["OPENBLAS_NUM_THREADS"] == "1"


def test_every_worker_has_started_before_the_first_sample_is_timed(monkeypatch):
    """``run`` asks every worker whether it has started (``("ready",)``) and waits for each answer before it takes
    the first GEMM sample or times the first case: a peer's import running beside tconv's turn slowed the tables'
    first rows. Fake workers record the order of the requests."""
    requests = []

    class Connection:
        def __init__(self, name):
            self.name, self.last = name, None

        def send(self, request):
            requests.append(
                (self.name, request[0] if isinstance(request, tuple) and isinstance(request[0], str) else "case")
            )
            self.last = requests[-1][1]

        def recv(self):
            return {"ready": True, "gemm": 100.0}.get(self.last, 1e-3)

    names = ["tconv", "torch", "tensorflow"]
    monkeypatch.setattr(
        bench, "start_workers", lambda frameworks, threads: {n: (None, Connection(n)) for n in frameworks}
    )
    monkeypatch.setattr(bench, "stop_workers", lambda workers: None)
    monkeypatch.setattr(bench, "gemm_rate", lambda threads, **options: 100.0)
    monkeypatch.setattr(bench, "SETTLE_S", 0.0)
    bench.run(names, FORWARD_CASES[:1], rounds=1, repeats=1, threads=1)
    ready = [i for i, (_, kind) in enumerate(requests) if kind == "ready"]
    assert sorted(name for name, kind in requests if kind == "ready") == sorted(names)
    assert ready == list(range(len(names)))  # every worker asked first, before any sample or case
    assert [kind for _, kind in requests[len(names) :]] == ["gemm", "case", "case", "case"]


def _bench(*argv, timeout=300):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tconv",
            "bench",
            "--frameworks",
            "tconv,torch",
            "--rounds",
            "1",
            "--repeats",
            "1",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_forward_runs_on_a_tiny_size(tmp_path):
    out = tmp_path / "forward.json"
    names = ["depthwise-3x3-s2", "wavenet-dilated-1d", "dcgan-disc-3"]  # in the suite's order
    assert set(names) <= {c.name for c in FORWARD_CASES}
    result = _bench("--forward", "--batch", "1", "--cases", ",".join(names), "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "forward suite: geometric mean tconv/torch" in result.stdout
    data = json.loads(out.read_text())
    assert [row["case"] for row in data["rows"]] == names
    assert all(row["times"]["tconv"] > 0 and row["times"]["torch"] > 0 for row in data["rows"])
    assert all(not case["transposed"] for case in data["cases"])


def test_bench_sweep_runs_on_a_tiny_size():
    result = _bench("--sweep", "5", "--sweep-size", "2", "--batch", "1")
    assert result.returncode == 0, result.stderr
    assert "sweep seed 5 (2 layers): geometric mean tconv/torch" in result.stdout
    assert "sweep-00:" in result.stdout and "worst row vs fastest peer" in result.stdout


def test_bench_models_runs_on_a_tiny_size(tmp_path):
    out = tmp_path / "models.json"
    result = _bench("--models", "--batch", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "models: geometric mean tconv/torch" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [row["case"] for row in rows] == ["dcgan-generator", "dcgan-discriminator", "unet"]
    assert all(row["times"]["tconv"] > 0 and row["times"]["torch"] > 0 for row in rows)


def test_a_turn_times_short_calls_for_long_enough_and_slow_calls_fewer_times(monkeypatch):
    from tconv.tools import bench

    clock = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])

    def runs(seconds, repeats):
        count = [0]

        def call():
            clock[0] += seconds
            count[0] += 1

        assert bench.time_turn(call, repeats) == pytest.approx(seconds)
        return count[0]

    assert runs(1e-3, 3) == 50  # 3 asked; 50 fill the 0.05 s turn
    assert runs(1e-5, 3) == bench.MAX_RUNS  # would need 5000: capped
    assert runs(0.02, 3) == 3  # 3 already fill it
    assert runs(1.0, 5) == 3  # slow: stopped past SLOW_S (2 s)


def test_the_summary_leaves_out_a_mean_it_has_no_rows_for():
    from tconv.tools.bench_report import Row, summarize

    rows = [Row("a", "forward", times={"tconv": 2.0, "onnxruntime": 1.0}), Row("b", "forward", times={"tconv": 1.0})]
    first = summarize(rows, "suite")[0]
    assert first == "suite: geometric mean tconv/fastest peer: 2.00 over 1 rows"
    rows.append(Row("c", "forward", times={"tconv": 1.0, "torch": 4.0}))
    assert summarize(rows, "suite")[0] == (
        "suite: geometric mean tconv/torch: 0.25 over 1 rows; tconv/fastest peer: 0.71 over 2 rows"
    )
    assert summarize([Row("d", "forward", times={"tconv": 1.0})], "suite")[0] == "suite: no ratio (no peer timed a row)"
