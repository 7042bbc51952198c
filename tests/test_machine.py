"""This machine's product rate for the cost model (tconv.implementations.compiled.machine): measured on one BLAS
thread, remembered on disk per machine, never trusted when BLAS kept its threads, and what the planner prices
products at. The root conftest turns the measured rate off for every other test; these turn it on."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tconv
from tconv import _tuning
from tconv.engine import planner
from tconv.implementations.compiled import machine, team


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """The measured rate on, this process's probe forgotten, the cache file under ``tmp_path``."""
    monkeypatch.setattr(_tuning, "MEASURED_GEMM_RATE", 1)
    monkeypatch.setattr(machine, "_probe", machine._UNSET)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    yield tmp_path
    planner.plan.cache_clear()


def test_the_rate_is_the_share_of_the_probe_and_off_is_gemm_rate(measured, monkeypatch):
    monkeypatch.setattr(machine, "_measure", lambda: 40e9)
    assert machine.gemm_rate() == pytest.approx(_tuning.GEMM_PROBE_SHARE * 40e9)
    monkeypatch.setattr(_tuning, "MEASURED_GEMM_RATE", 0)
    assert machine.gemm_rate() == _tuning.GEMM_RATE


def test_an_untrusted_probe_falls_back_on_gemm_rate_and_is_not_kept(measured, monkeypatch):
    monkeypatch.setattr(machine, "_measure", lambda: None)
    assert machine.gemm_rate() == _tuning.GEMM_RATE
    assert not machine.cache_file().exists()


def test_the_probe_is_kept_per_machine_and_read_by_the_next_process(measured, monkeypatch):
    calls = []
    monkeypatch.setattr(machine, "_measure", lambda: calls.append(1) or 37e9)
    assert machine.probe_rate() == 37e9
    assert machine.probe_rate() == 37e9 and len(calls) == 1  # once per process
    path = measured / "tconv" / "machine.json"
    assert machine.cache_file() == path
    assert json.loads(path.read_text())["gemm_probe_flops"] == {machine.machine_key(): 37e9}

    monkeypatch.setattr(machine, "_probe", machine._UNSET)  # a new process on the same machine
    monkeypatch.setattr(machine, "_measure", lambda: pytest.fail("measured again: the file was not read"))
    assert machine.probe_rate() == 37e9

    # another machine's entry (or another NumPy's) is kept beside this one's, and never read for it
    data = json.loads(path.read_text())
    data["gemm_probe_flops"]["another CPU x64 | numpy 1.0 | mkl"] = 500e9
    path.write_text(json.dumps(data))
    monkeypatch.setattr(machine, "_probe", machine._UNSET)
    assert machine.probe_rate() == 37e9
    this = machine.machine_key()
    monkeypatch.setattr(machine, "machine_key", lambda: "a third machine")
    monkeypatch.setattr(machine, "_probe", machine._UNSET)
    monkeypatch.setattr(machine, "_measure", lambda: 12e9)
    assert machine.probe_rate() == 12e9
    assert json.loads(path.read_text())["gemm_probe_flops"] == {
        this: 37e9,
        "another CPU x64 | numpy 1.0 | mkl": 500e9,
        "a third machine": 12e9,
    }


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"gemm_probe_flops": [1]}),
        json.dumps({"gemm_probe_flops": {"KEY": -5.0}}),
        json.dumps({"gemm_probe_flops": {"KEY": "33e9"}}),
        json.dumps({"gemm_probe_flops": {"KEY": True}}),
        '{"gemm_probe_flops": {"KEY": NaN}}',
        "[" * 100_000 + "]" * 100_000,  # deeper than json's recursion
        json.dumps({"other": 1}),
    ],
)
def test_a_damaged_or_implausible_file_is_measured_again_and_rewritten(measured, monkeypatch, text):
    path = machine.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(text.replace("KEY", machine.machine_key()))
    monkeypatch.setattr(machine, "_measure", lambda: 33e9)
    assert machine.probe_rate() == 33e9
    assert json.loads(path.read_text())["gemm_probe_flops"][machine.machine_key()] == 33e9


def test_a_whole_number_in_the_file_is_read_and_other_fields_are_kept(measured, monkeypatch):
    path = machine.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"gemm_probe_flops": {machine.machine_key(): 35_000_000_000}, "later": [1]}))
    monkeypatch.setattr(machine, "_measure", lambda: pytest.fail("measured again"))
    assert machine.probe_rate() == 35e9
    machine._write(path, "another machine", 20e9)
    assert json.loads(path.read_text())["later"] == [1]


@pytest.mark.parametrize("home, xdg", [("~", ""), ("relative/home", ""), ("", "relative/cache")])
def test_without_an_absolute_home_nothing_is_written(measured, monkeypatch, home, xdg, tmp_path):
    """No home (``~`` unexpanded, as for a user id without a passwd entry) or a relative one: measured once per
    process, and no ``./~/.cache`` made in the working directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    monkeypatch.setenv("HOME", home)
    monkeypatch.chdir(tmp_path)
    if home == "~":
        monkeypatch.setattr(os.path, "expanduser", lambda path: path)
    assert machine.cache_file() is None
    monkeypatch.setattr(machine, "_measure", lambda: 27e9)
    assert machine.probe_rate() == 27e9
    assert not [p for p in tmp_path.iterdir() if p.name != "tconv"]


def test_processes_starting_together_measure_once(measured, monkeypatch):
    """Another process holds the file's lock while it measures: this one waits, then reads that rate."""
    fcntl = pytest.importorskip("fcntl")
    path = machine.cache_file()
    path.parent.mkdir(parents=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # the other process, measuring
    monkeypatch.setattr(machine, "_FILE_LOCK_SECONDS", 30.0)
    monkeypatch.setattr(machine, "_measure", lambda: pytest.fail("measured beside the other process"))
    seen = []
    waiting = threading.Thread(target=lambda: seen.append(machine.probe_rate()))
    waiting.start()
    time.sleep(0.2)
    assert seen == []  # still waiting for the lock
    path.write_text(json.dumps({"gemm_probe_flops": {machine.machine_key(): 41e9}}))  # the other's result
    os.close(descriptor)  # its lock released
    waiting.join(10)
    assert seen == [41e9]


def test_a_remembered_rate_is_read_without_waiting_for_the_lock(measured, monkeypatch):
    fcntl = pytest.importorskip("fcntl")
    path = machine.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"gemm_probe_flops": {machine.machine_key(): 44e9}}))
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # a process that holds the lock and never lets go
    try:
        monkeypatch.setattr(machine, "_FILE_LOCK_SECONDS", 30.0)
        start = time.monotonic()
        assert machine.probe_rate() == 44e9
        assert time.monotonic() - start < 5
    finally:
        os.close(descriptor)


def test_a_file_system_without_locks_goes_on_unlocked(measured, monkeypatch):
    fcntl = pytest.importorskip("fcntl")

    def no_locks(descriptor, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(machine, "_FILE_LOCK_SECONDS", 30.0)
    monkeypatch.setattr(machine, "_measure", lambda: 22e9)
    start = time.monotonic()
    assert machine.probe_rate() == 22e9
    assert time.monotonic() - start < 5


def test_a_lock_held_too_long_is_not_waited_for(measured, monkeypatch):
    fcntl = pytest.importorskip("fcntl")
    path = machine.cache_file()
    path.parent.mkdir(parents=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        monkeypatch.setattr(machine, "_FILE_LOCK_SECONDS", 0.1)
        monkeypatch.setattr(machine, "_measure", lambda: 23e9)
        start = time.monotonic()
        assert machine.probe_rate() == 23e9
        assert time.monotonic() - start < 5  # gave up on the lock after its wait
    finally:
        os.close(descriptor)


def test_an_error_while_asking_gives_gemm_rate_not_an_error(measured, monkeypatch):
    def broken() -> float:
        raise RuntimeError("a BLAS that threadpoolctl cannot read")

    monkeypatch.setattr(machine, "_measure", broken)
    assert machine.probe_rate() is None and machine.gemm_rate() == _tuning.GEMM_RATE


def test_the_rate_is_capped_at_gemm_rate(measured, monkeypatch):
    monkeypatch.setattr(machine, "_measure", lambda: 10 * _tuning.GEMM_RATE)
    assert machine.gemm_rate() == _tuning.GEMM_RATE


def test_describe_says_where_the_rate_came_from(measured, monkeypatch):
    monkeypatch.setattr(machine, "_measure", lambda: 30e9)
    line = machine.describe()
    assert line.startswith(f"{_tuning.GEMM_PROBE_SHARE * 30:.1f} GFLOP/s") and str(machine.cache_file()) in line
    monkeypatch.setattr(machine, "_probe", None)
    assert "could not measure" in machine.describe()
    monkeypatch.setattr(_tuning, "MEASURED_GEMM_RATE", 0)
    assert machine.describe() == f"{_tuning.GEMM_RATE / 1e9:.1f} GFLOP/s (GEMM_RATE, pinned: the measured rate is off)"


@pytest.mark.parametrize("value, expected", [("7e10", 7e10), ("  5000000000 ", 5e9), ("", None)])
def test_the_environment_pins_the_rate(monkeypatch, value, expected):
    monkeypatch.setenv("TCONV_GEMM_RATE", value)
    assert _tuning._pinned_gemm_rate() == expected


@pytest.mark.parametrize("value", ["fast", "-1", "0", "inf", "nan"])
def test_a_bad_pinned_rate_is_reported_and_ignored(monkeypatch, value):
    monkeypatch.setenv("TCONV_GEMM_RATE", value)
    with pytest.warns(UserWarning, match=r"TCONV_GEMM_RATE: expected a positive rate in flop/s.*received"):
        assert _tuning._pinned_gemm_rate() is None


def test_a_pinned_rate_reaches_a_new_process_and_turns_the_measurement_off(tmp_path):
    code = "from tconv import _tuning; print(_tuning.GEMM_RATE, _tuning.MEASURED_GEMM_RATE)"
    env = {**os.environ, "TCONV_GEMM_RATE": "6.5e10", "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65000000000.0", "0"]


def test_an_unwritable_cache_is_measured_once_per_process_without_an_error(measured, monkeypatch):
    blocker = measured / "tconv"
    blocker.write_text("a file where the directory would go")  # mkdir fails: nothing can be written
    monkeypatch.setattr(machine, "_measure", lambda: 21e9)
    assert machine.probe_rate() == 21e9
    assert blocker.read_text() == "a file where the directory would go"
    assert [p.name for p in measured.iterdir()] == ["tconv"]  # no temporary file left behind


def test_threads_asking_at_once_measure_once(measured, monkeypatch):
    calls = []

    def slow() -> float:
        calls.append(1)
        time.sleep(0.05)
        return 29e9

    monkeypatch.setattr(machine, "_measure", slow)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(machine.probe_rate())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [29e9] * 4 and len(calls) == 1


def test_the_measurement_runs_on_one_blas_thread_and_is_plausible():
    """The real probe: on one BLAS thread, so its rate is one thread's; a float32 product on one modern core runs
    at 1-300 GFLOP/s. Its rate against a product timed here with BLAS limited by threadpoolctl (same shape, one
    thread): the two measure the same thing, so they agree within a factor of two (timing noise only slows)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    libs = team._blas_libraries()
    if not libs:
        pytest.skip("no BLAS under threadpoolctl")
    rate = machine._measure()
    assert rate is not None and 1e9 < rate < 3e11
    rows, inner, columns = machine.PROBE_SHAPE
    rng = np.random.default_rng(1)
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    b = rng.standard_normal((inner, columns), dtype=np.float32)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        counts = team.blas_thread_counts()
        a @ b
        best = min(_seconds(lambda: a @ b) for _ in range(7))
    assert counts == [1] * len(libs)
    independent = 2.0 * rows * inner * columns / best
    assert independent / 3 < rate < independent * 3  # loose: a sanity check of what is measured, not a timing


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_a_probe_beside_blas_threads_is_not_trusted(monkeypatch):
    """Where BLAS could not be held to one thread (another thread holds threadpoolctl's control), the rate would
    be several threads': None, so the model keeps GEMM_RATE and nothing is written."""
    monkeypatch.setattr(team, "one_blas_thread", lambda work: _nothing())
    monkeypatch.setattr(team, "blas_thread_counts", lambda: [2])
    assert machine._measure() is None
    monkeypatch.setattr(team, "blas_thread_counts", lambda: [])  # no threadpoolctl: not known to be one thread
    assert machine._measure() is None


def test_a_probe_while_another_thread_holds_blas_control_is_not_trusted(controlled_blas):
    """A live thread that set OpenBLAS's count itself holds threadpoolctl's control (3.8 on): tconv's limit to one
    thread cannot take, so the probe would measure two threads' rate; it gives None instead."""
    libs = controlled_blas
    original = [lib.get_num_threads() for lib in libs]
    if min(original) < 2:
        pytest.skip("BLAS has one thread here: a probe on several would not show")
    type(libs[0]).clear_controlling_thread(force=True)  # whatever earlier code in this process left
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:  # another library's thread: sets the count, keeps the control while it lives
        for lib in libs:
            lib.set_num_threads(2)
        holding.set()
        done.wait(30)
        for lib, count in zip(libs, original):
            lib.set_num_threads(count)
        type(libs[0]).clear_controlling_thread()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(10)
        assert machine._measure() is None
    finally:
        done.set()
        thread.join()
    assert machine._measure() is not None  # the control given up: the probe runs on one thread again


def test_a_dask_block_asks_for_the_rate_before_it_limits_blas(measured, monkeypatch):
    """A block limits BLAS to its own thread count (``set_block_threads``); a probe under that limit would not be
    on one thread, so the block asks for the rate first."""
    from tconv.dask import threads as block_threads

    seen = []
    monkeypatch.setattr(machine, "_measure", lambda: seen.append(block_threads._active) or 30e9)
    owner = block_threads._limit(2)
    try:
        assert seen == [0]  # measured before this block counted itself active, or limited anything
    finally:
        block_threads._restore(owner)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_planner_prices_products_at_the_machines_rate(measured, monkeypatch):
    """The planner's estimates of the product algorithms follow the measured rate, and its choice with them: on a
    machine whose BLAS is slow against its compiled loops a layer leaves the products for a direct sum."""
    spec = tconv.ConvSpec.build(
        transposed=False, input_size=(28, 28), kernel_size=(3, 3), in_channels=64, out_channels=64, padding=1
    )
    choices, gemm = {}, {}
    for rate in (1e9, 1e12):
        monkeypatch.setattr(machine, "_probe", rate / _tuning.GEMM_PROBE_SHARE)
        planner.plan.cache_clear()
        gemm[rate] = planner.plan_costs(spec, 8)["jit_gemm"]
        choices[rate] = planner.plan(spec, True, False, True, 8)
    assert gemm[1e9] > 10 * gemm[1e12]  # the product is most of the estimate, and scales with the rate
    assert choices[1e12] in ("jit_gemm", "jit_winograd", "jit_winograd4")
    assert choices[1e9] not in ("jit_gemm", "jit_winograd", "jit_winograd4", "jit_pointwise")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_while_measuring_measures_itself(measured, monkeypatch):
    """The lock held by a thread measuring at the fork is a new, free one in the child: its first plan does not
    hang."""
    started, release = threading.Event(), threading.Event()
    monkeypatch.setattr(machine, "_measure", lambda: started.set() or (release.wait(10) and 26e9))
    monkeypatch.setattr(machine, "_FILE_LOCK_SECONDS", 0.2)  # the child waits this long for the parent's file lock
    thread = threading.Thread(target=machine.probe_rate)
    thread.start()
    assert started.wait(10)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            machine._measure = lambda: 24e9
            code = 0 if machine.probe_rate() == 24e9 else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20  # the parent's thread still measuring, its lock held
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        _release_measuring(release, thread)
        pytest.fail("the forked child hung on the lock held at the fork")
    _release_measuring(release, thread)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert machine.probe_rate() == 26e9


def _release_measuring(release: threading.Event, thread: threading.Thread) -> None:
    """Let the parent's measuring thread finish."""
    release.set()
    thread.join()


# --- the kernels' vector width ------------------------------------------------------------------------------------


def _cpu_flags() -> set[str] | None:
    """The CPU's flags as Linux's ``/proc/cpuinfo`` lists them (None where there is no such file or field)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                name, _, value = line.partition(":")
                if name.strip() == "flags":
                    return set(value.split())
    except OSError:
        return None
    return None


@pytest.mark.skipif(not tconv.implementations.compiled.kernels.available(), reason="needs numba")
def test_the_kernels_write_512_bit_vectors_exactly_where_the_cpu_has_avx512():
    """The width follows the CPU, its flags read here from Linux's /proc/cpuinfo (the code asks numba)."""
    from numba.core import config

    numba_set = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_ENABLE_AVX")
    if _cpu_flags() is None or any(name in os.environ for name in numba_set) or not config.ENABLE_AVX:
        pytest.skip("needs Linux's /proc/cpuinfo and numba targeting this CPU with its AVX")
    assert machine.vector_bytes() == (64 if "avx512f" in _cpu_flags() else 32)


def test_wide_vectors_are_priced_at_their_share_of_the_narrow_rate(monkeypatch):
    """At 512 bits a rate counted in vectors is the 256-bit one times ``WIDE_VECTOR_SHARE`` (each vector does twice
    the work), and one counted in elements twice that; at 256 bits both stay as fitted. ``jit_blocked``'s estimate
    for a layer of 64 output channels follows: half the blocks of vectors, each at the share of the rate."""
    spec = tconv.ConvSpec.build(
        transposed=False, input_size=(40, 40), kernel_size=(3, 3), in_channels=64, out_channels=64, padding=1
    )
    from tconv.implementations.compiled import blocked

    sums = {}
    for width in (32, 64):
        monkeypatch.setattr(_tuning, "PRICED_VECTOR_BYTES", width)
        share = _tuning.WIDE_VECTOR_SHARE if width == 64 else 1.0
        assert machine.vector_rate(3e9) == pytest.approx(3e9 * share)
        assert machine.vector_speed() == pytest.approx(share * width / 32)
        assert blocked.priced_lanes(4) == width // 4
        monkeypatch.setattr(_tuning, "BLOCKED_BLOCK_COST", 0.0)  # the sums alone
        sums[width] = blocked._sums(spec, 9.0, 1.0, 1600)
    assert sums[64] / sums[32] == pytest.approx(0.5 / _tuning.WIDE_VECTOR_SHARE)


def test_the_cost_model_counts_the_priced_width_not_the_kernels(monkeypatch):
    """With the priced width pinned (as in this suite), every algorithm's estimate and the planner's choice are the
    same whatever width the kernels run at: no cost reads the kernels' width (it would make the suite's planner pins
    depend on the machine, and a replay of another width's timings wrong)."""
    import importlib

    from tconv.implementations.compiled import algorithms, blocked, direct_conv, window_dots

    run = importlib.import_module("tconv.engine.run")  # the module (tconv.engine.run is also a function's name)

    specs = [
        tconv.ConvSpec.build(transposed=False, input_size=(30, 30), kernel_size=(3, 3), in_channels=24,
                             out_channels=40, padding=1),
        tconv.ConvSpec.build(transposed=False, input_size=(17, 19), kernel_size=(5, 5), in_channels=16,
                             out_channels=16, groups=16, stride=2),
        tconv.ConvSpec.build(transposed=True, input_size=(12, 12), kernel_size=(3, 3), in_channels=32,
                             out_channels=48, padding=1),
        tconv.ConvSpec.build(transposed=False, input_size=(40,), kernel_size=(7,), in_channels=9, out_channels=3),
        tconv.ConvSpec.build(transposed=False, input_size=(6, 6, 6), kernel_size=(3, 3, 3), in_channels=8,
                             out_channels=70, padding=1),
    ]  # fmt: skip
    seen = {}
    for kernel_bytes in (32, 64):
        monkeypatch.setattr(machine, "_vector_bytes", kernel_bytes)
        assert blocked.lanes(4) == kernel_bytes // 4 and blocked.priced_lanes(4) == _tuning.VECTOR_BYTES // 4
        caches = (planner.plan, blocked._costs, window_dots.cost, direct_conv.tiles_cheaper)
        caches += (direct_conv.dots_preferred, direct_conv._planes_cost, algorithms.direct_twin)
        caches += (algorithms.direct_weight_grad,)
        for cache in (*caches, run._cut_if_cheaper):
            cache.cache_clear()
        seen[kernel_bytes] = [
            (planner.plan_costs(spec, 4, last), planner.plan(spec, True, last, True, 4))
            for spec in specs
            for last in (False, True)
        ]
    assert seen[32] == seen[64]


def test_the_environment_pins_the_priced_width():
    """``TCONV_PRICED_VECTOR_BYTES`` sets the width the cost model counts in a new process (the test suite's
    subprocesses plan alike on every machine); a value other than 32 or 64 is reported and ignored."""
    probe = "from tconv import _tuning; print(_tuning.PRICED_VECTOR_BYTES)"
    for value, expected, warned in (("64", "64", False), ("32", "32", False), ("48", "0", True)):
        env = {**os.environ, "TCONV_PRICED_VECTOR_BYTES": value}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        assert done.stdout.strip() == expected
        assert ("TCONV_PRICED_VECTOR_BYTES: expected 32 or 64" in done.stderr) == warned


@pytest.mark.skipif(not tconv.implementations.compiled.kernels.available(), reason="needs numba")
def test_kernels_compiled_for_a_cpu_without_avx_write_256_bit_vectors_and_agree_with_the_oracle():
    """``NUMBA_CPU_NAME=generic`` (numba's portable target: no AVX) in a new process: the register blocks are
    written with 256-bit vectors (the test suite itself runs them at this machine's width, 512 bits where it has
    AVX-512), and the algorithms written with explicit vectors, forced, give the naive oracle's results:
    ``jit_blocked``, ``jit_direct`` (a forward call, whose sums run in tiles where the model prefers them), the
    depthwise tile (channels-first) and the windows' dot products."""
    probe = r"""
import sys
import numpy as np, tconv
sys.path.insert(0, sys.argv[1])
import oracle
from tconv.implementations.compiled import machine
rng = np.random.default_rng(5)
print("width", machine.vector_bytes())
worst = 0.0
cases = [
    ("jit_blocked", (2, 20, 9, 11), (40, 20, 3, 3), dict(padding=1), False),
    ("jit_blocked", (1, 6, 8, 8), (7, 6, 3, 2), dict(stride=2), False),
    ("jit_direct", (2, 5, 13, 12), (9, 5, 3, 3), dict(padding=1), False),
    ("jit_direct", (2, 4, 7, 7), (4, 3, 4, 4), dict(stride=2, padding=1), True),
    ("jit_depthwise", (2, 9, 10, 9), (9, 1, 3, 3), dict(padding=1, groups=9), False),
    ("jit_depthwise", (2, 16, 6, 7), (16, 1, 3, 3), dict(stride=2, padding=1, groups=16), True),
    ("jit_dots", (3, 11, 6, 6), (21, 11, 2, 2), dict(stride=2), False),
]
for name, xs, ws, options, transposed in cases:
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[1] * options.get("groups", 1) if transposed else ws[0]).astype(np.float32)
    with tconv.use_algorithm(name):
        y = (tconv.conv_transpose if transposed else tconv.conv)(x, w, b, **options)
    s, p, g = options.get("stride", 1), options.get("padding", 0), options.get("groups", 1)
    if transposed:
        ref = oracle.naive_conv_transpose(x, w, b, stride=[s, s], pads=[(p, p)] * 2, groups=g)
    else:
        ref = oracle.naive_conv(x, w, b, stride=[s, s], pads=[(p, p)] * 2, groups=g)
    worst = max(worst, float(np.abs(y - ref).max() / np.abs(ref).max()))
print("worst", worst)
"""
    env = {**os.environ, "NUMBA_CPU_NAME": "generic"}
    env.pop("NUMBA_CPU_FEATURES", None)
    tests = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run(
        [sys.executable, "-c", probe, tests], env=env, capture_output=True, text=True, timeout=600, check=True
    )
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert int(lines["width"]) == 32, done.stdout + done.stderr
    assert float(lines["worst"]) < 1e-5, done.stdout
