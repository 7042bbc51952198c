"""What real programs do to tconv (issue 16): fork, read-only installs, odd arrays, interrupts, short-lived
threads, memory limits, odd arguments and files.

Every fault scenario runs in a fresh ``python`` (``sys.executable``) with a timeout, so that a hang or a crash
fails the test instead of the run, and so that the frameworks other tests import (torch, TensorFlow) are not
in the process being forked. Each scenario prints one ``RESULT`` line of figures (timings, RSS), which the
test checks and shows on failure (``pytest -s`` or ``-rA`` to read them on success).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest

import tconv
from oracle import naive_conv, naive_conv_transpose
from tconv.implementations.compiled import kernels, team, workspace

needs_jit = pytest.mark.skipif(not kernels.available(), reason="no compiled path (numba missing or TCONV_NO_JIT=1)")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

# Shared by the scripts: a call big enough for the kernels' team and the chunk team, and its float64 reference.
PRELUDE = """
import json, os, sys, time, threading
import numpy as np
import tconv
from tconv.implementations.compiled import kernels, team
kernels.set_threads(2)
rng = np.random.default_rng(0)
X = rng.standard_normal((8, 32, 16, 16)).astype(np.float32)
W = rng.standard_normal((32, 16, 4, 4)).astype(np.float32)
def call():
    return tconv.conv_transpose(X, W, stride=2, padding=1)
def reference():  # the same transposed convolution in float64, summed tap by tap with NumPy alone
    x, w = X.astype(np.float64), W.astype(np.float64)
    n, _, h, v = x.shape
    k = w.shape[2]
    full = np.zeros((n, w.shape[1], (h - 1) * 2 + k, (v - 1) * 2 + k))
    for a in range(k):
        for b in range(k):
            full[:, :, a : a + 2 * h - 1 : 2, b : b + 2 * v - 1 : 2] += np.einsum("nchw,co->nohw", x, w[:, :, a, b])
    return full[:, :, 1:-1, 1:-1].astype(np.float32)
EXPECTED = reference()
call()  # imported, compiled and run once before any scenario starts (as before its interrupts and forks)
def check(y):
    # float32 sums in another order (BLAS's blocking differs with the chunks a team cuts): close, not bitwise
    assert y.shape == EXPECTED.shape and np.allclose(y, EXPECTED, rtol=1e-4, atol=1e-4), "wrong numbers"
def result(**figures):
    print("RESULT " + json.dumps(figures), flush=True)
"""


def _run(
    script: str,
    timeout: float = 180,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    prelude: str = PRELUDE,
):
    """Run ``script`` (after the prelude) in a fresh interpreter; its RESULT figures, or a failure with its
    output. A hang past ``timeout`` fails the test."""
    environment = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    environment.update(env or {})
    with tempfile.TemporaryDirectory() as folder:  # a file, not -c: spawned children re-import __main__
        path = os.path.join(folder, "scenario.py")
        with open(path, "w", encoding="utf-8") as file:
            file.write(prelude + textwrap.dedent(script))
        command = [*(prefix or []), sys.executable, path]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
        except subprocess.TimeoutExpired as err:
            pytest.fail(f"the scenario hung (no end after {timeout} s); output so far: {err.stdout!r} {err.stderr!r}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"status {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    figures = json.loads(lines[-1][len("RESULT ") :])
    figures["stderr"] = done.stderr
    print(figures)
    return figures


# --- defect 1: fork ---------------------------------------------------------------------------------------


@needs_jit
@needs_fork
def test_a_child_forked_after_a_call_computes_and_so_does_the_parent():
    """Used before a fork, in the parent, and after it, in the child (on a team of its own)."""
    figures = _run(
        """
        from tconv import _tuning
        _tuning.TEAM_MIN_BYTES = 0  # the call on a chunk team whatever the hand-off measured (a loaded machine
        _tuning.TEAM_MIN_CHANNELS = 1  # measures it slower, and its kernels then stay off the team)
        check(call())
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                check(call())
                workers = [t for t in threading.enumerate() if t.name.startswith("tconv-")]
                os._exit(0 if workers else 3)  # the child built a team of its own
            except BaseException:
                os._exit(1)
        check(call())
        deadline = time.time() + 60
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, 9)
            raise SystemExit("the child hung")
        result(status=os.waitstatus_to_exitcode(status), child_s=time.perf_counter() - start)
        """
    )
    assert figures["status"] == 0


@needs_jit
@needs_fork
def test_a_fork_while_another_thread_compiles_and_logs_does_not_deadlock():
    """numba's compiler logs (``logging``'s module lock) while it holds its compiler lock, and both locks are taken
    by fork handlers: ``logging``'s own, and tconv's (:mod:`tconv.implementations.compiled.team`). A fork while
    a thread compiles must take them in that order, the compiler lock first, or each side waits for the other's
    lock for good (seen when a fork met the first compile of a kernel after a change to tconv's kernel source,
    which empties numba's cache). Here a thread holds the compiler lock, and takes the logging lock after the main
    thread has started its fork."""
    figures = _run(
        """
        import logging
        from numba.core.compiler_lock import global_compiler_lock
        holding = threading.Event()
        def compiling():
            with global_compiler_lock:
                holding.set()
                time.sleep(0.3)  # the main thread's fork begins meanwhile
                with logging._lock:  # what numba's compile passes take to log
                    pass
        thread = threading.Thread(target=compiling)
        thread.start()
        holding.wait()
        time.sleep(0.05)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        thread.join()
        result(status=os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """,
        timeout=60,
    )
    assert figures["status"] == 0


@needs_jit
@needs_fork
def test_forks_made_while_calls_run_in_other_threads_do_not_deadlock():
    """A thread keeps calling (chunk teams and kernel ranges) while the main thread forks; every child
    computes correctly within its deadline, and the parent's calls stay correct."""
    figures = _run(
        """
        from tconv import _tuning
        kernels.set_threads(2)
        _tuning.TEAM_MIN_BYTES = 0  # every call on a chunk team, so forks land inside team runs
        _tuning.TEAM_MIN_CHANNELS = 1
        stop, errors = threading.Event(), []
        def caller():
            while not stop.is_set():
                try:
                    check(call())
                    tconv.conv_transpose_grad(EXPECTED, X, W, stride=2, padding=1)
                except BaseException as err:
                    errors.append(repr(err))
        threads = [threading.Thread(target=caller) for _ in range(2)]
        for t in threads:
            t.start()
        times, statuses = [], []
        for i in range(12):
            time.sleep(0.003 * i)
            start = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                try:
                    check(call())
                    os._exit(0)
                except BaseException:
                    os._exit(1)
            deadline = time.time() + 60
            while time.time() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.005)
            else:
                os.kill(pid, 9)
                status = 9 << 8
            statuses.append(os.waitstatus_to_exitcode(status))
            times.append(time.perf_counter() - start)
        stop.set()
        for t in threads:
            t.join()
        check(call())
        result(statuses=statuses, errors=errors, child_s_max=max(times), child_s_median=sorted(times)[6])
        """,
        # OpenBLAS's own fork handler can hang when other threads run multi-threaded products at the fork (NumPy
        # alone does it: two threads looping on `a @ a` and a forking main thread); that is OpenBLAS's, so its
        # products run on one thread here and the scenario tests tconv's team, kernels and locks.
        env={"OPENBLAS_NUM_THREADS": "1"},
    )
    assert figures["statuses"] == [0] * 12 and not figures["errors"]


@needs_jit
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pools_compute_after_a_call_in_the_parent(method):
    """``multiprocessing`` pools (fork: Linux's default up to Python 3.13, and DataLoader's, Dask's and
    joblib's; spawn) after the parent used tconv: every task returns the parent's numbers, within a timeout."""
    if method == "fork" and not hasattr(os, "fork"):
        pytest.skip("no fork start method on this platform")
    figures = _run(
        f"""
        import multiprocessing
        def task(seed):
            return float(tconv.conv_transpose(X, W, stride=2, padding=1).sum())
        if __name__ == "__main__":
            kernels.set_threads(2)
            check(call())
            start = time.perf_counter()
            with multiprocessing.get_context("{method}").Pool(2) as pool:
                sums = pool.map_async(task, range(4)).get(timeout=120)
            elapsed = time.perf_counter() - start
            check(call())
            result(sums=sums, expected=float(EXPECTED.sum()), pool_s=elapsed)
        """,
        timeout=240,
    )
    assert figures["sums"] == pytest.approx([figures["expected"]] * 4, rel=1e-4, abs=1e-2)


# --- defect 2: read-only installs -------------------------------------------------------------------------


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    try:
        done = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@needs_jit
def test_a_read_only_install_and_home_compile_in_memory_and_say_nothing(tmp_path):
    """The package directory and HOME read-only (bind-mounted so inside a user and mount namespace, since
    root ignores file modes), no NUMBA_CACHE_DIR: the kernels compile in memory, compute, and nothing is
    printed."""
    if not _unshare_works():
        pytest.skip("needs `unshare -rm` (user and mount namespaces) to make a directory read-only for root")
    package = os.path.dirname(tconv.__file__)
    home = tmp_path / "home"
    home.mkdir()
    mounts = " && ".join(f"mount --bind {d} {d} && mount -o remount,bind,ro {d}" for d in (package, home))
    env = {"HOME": str(home), "NUMBA_CACHE_DIR": "", "XDG_CACHE_HOME": ""}
    script = """
        for d in (os.path.dirname(tconv.__file__), os.environ["HOME"]):
            try:
                open(os.path.join(d, "probe"), "w")
                raise SystemExit(f"{d} is writable: the scenario did not apply")
            except OSError:
                pass
        check(call())
        dx, dw, db = tconv.conv_transpose_grad(EXPECTED, X, W, stride=2, padding=1)
        result(cache=kernels.cache_location())
    """
    environment = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    environment.update({"HOME": str(home), "PYTHONPATH": SRC})
    command = ["unshare", "-rm", "sh", "-c", f'{mounts} && exec "$0" -c "$1"', sys.executable]
    done = subprocess.run(
        [*command, PRELUDE + textwrap.dedent(script)], capture_output=True, text=True, timeout=300, env=environment
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.splitlines()[-1][len("RESULT ") :])
    assert figures["cache"] is None  # in memory: nowhere writable
    assert done.stderr == ""  # nothing alarming
    del env


# --- defect 10: interrupts --------------------------------------------------------------------------------


@needs_jit
def test_interrupts_at_random_points_leave_settings_and_the_team_as_they_were():
    """SIGALRM raising KeyboardInterrupt at random moments of 200 calls (chunk teams, kernel ranges, gradients;
    inside ``finally`` blocks too): afterwards BLAS has its thread count back, the team its size and threads,
    and a later call is right."""
    figures = _run(
        """
        import random, signal
        from threadpoolctl import threadpool_info
        from tconv import _tuning
        kernels.set_threads(2)
        _tuning.TEAM_MIN_CHANNELS = 1
        blas = lambda: [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        before = blas()
        def interrupt(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        random.seed(1)
        interrupted = 0
        for i in range(200):
            _tuning.TEAM_MIN_BYTES = 0 if i % 2 else 4 * 2**20  # chunk teams, or the kernels' ranges
            try:  # each call twice: the calls are fast enough that one alone leaves most timers unfired
                # (the timer set inside: a 0.1 ms one can fire as setitimer returns, on a machine that paused us)
                signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0001, 0.02))
                for _ in range(2):
                    call() if i % 3 else tconv.conv_transpose_grad(EXPECTED, X, W, stride=2, padding=1)
                signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                interrupted += 1
            signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        deadline = time.time() + 5  # a stopped run's last chunk restores BLAS when it ends
        while blas() != before and time.time() < deadline:
            time.sleep(0.01)
        check(call())
        workers = [t.name for t in threading.enumerate() if t.name.startswith("tconv-")]
        result(interrupted=interrupted, blas_before=before, blas_after=blas(), threads=team.threads(),
               workers=len(workers))
        """,
        timeout=300,
    )
    assert figures["interrupted"] > 20
    assert figures["blas_after"] == figures["blas_before"]
    assert figures["threads"] == 2 and figures["workers"] >= 1


def test_an_interrupted_team_run_stops_waits_and_restores_blas(monkeypatch):
    """The caller interrupted while chunks run (its own, most often, and a team thread's): no chunk is handed out
    after, the running ones end before the interrupt is re-raised, and BLAS is restored (in-process,
    deterministic)."""
    if team.size() < 2 and team._controller() is None:
        pytest.skip("no threadpoolctl")
    started, release, handled = threading.Event(), threading.Event(), threading.Event()
    ran, ended, jobs = [], [], []

    class Job(team._Job):  # the team's own job, noted so that the test can see when the caller has stopped it
        def __init__(self, *args):
            super().__init__(*args)
            jobs.append(self)

    monkeypatch.setattr(team, "_Job", Job)

    def work(chunk):
        ran.append(chunk)
        started.set()
        try:  # the caller's own chunk ends here by the interrupt, the team thread's once released
            deadline = time.monotonic() + 60  # released only once the caller has stopped the job (else: a failure)
            while not release.is_set() and time.monotonic() < deadline:
                time.sleep(0.001)  # not Event.wait: an interrupt inside its Python-level lock could leave it held
        finally:
            ended.append(chunk)

    import signal

    def on_interrupt(signum, frame):  # Python's own handler, noting when the main thread has run it
        handled.set()
        raise KeyboardInterrupt

    def interrupt():  # a real signal, which wakes the waiting caller (interrupt_main would not)
        started.wait(5)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        # The running chunks end only once the caller has stopped the job. Releasing them 50 ms after the
        # handler ran was a race: whenever the main thread stalled longer than that between its handler and
        # stopping the job (a loaded machine; a sleep of 0.2 s in the handler reproduces it every time), the
        # team threads ran all 50 chunks first, as in two of four CI runs.
        handled.wait(60)
        deadline = time.monotonic() + 60
        while not (jobs and jobs[0].stopped) and time.monotonic() < deadline:
            time.sleep(0.001)
        release.set()

    before = [i["num_threads"] for i in team._controller().info()]
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            team.run(work, list(range(50)), 2)
        assert sorted(ended) == sorted(ran)  # every chunk handed out had ended before the interrupt went on
    finally:
        signal.signal(signal.SIGINT, previous)
        release.set()
    assert handled.is_set()
    assert len(jobs) == 1 and jobs[0].stopped
    assert not team.member()  # the caller ran its chunk as a member of the team, and is not one any more
    assert len(ran) <= 3  # stopped: at most the chunks running when it came, and one handed out meanwhile
    assert [i["num_threads"] for i in team._controller().info()] == before


def test_the_first_error_of_a_team_run_is_raised_whichever_thread_ran_its_chunk():
    """A team thread's chunk fails first, the caller's own chunk later: the team thread's error is raised (the
    caller's chunks' errors are noted in the job like the team's, in the order they happened), after every
    chunk has stopped, and the caller is no team member afterwards."""
    team_failed = threading.Event()
    running = []

    def work(chunk):
        running.append(chunk)
        if threading.current_thread() is threading.main_thread():
            team_failed.wait(5)
            time.sleep(0.05)
            raise ValueError(f"the caller's chunk {chunk}, second")
        team_failed.set()
        raise RuntimeError(f"a team thread's chunk {chunk}, first")

    with pytest.raises(RuntimeError, match="first"):
        team.run(work, list(range(6)), 2)
    assert len(running) < 6  # stopped at the first error
    assert not team.member()


def test_an_interrupt_as_the_stop_of_a_failed_chunk_starts_still_stops_the_job():
    """The caller's own chunk raises an ordinary error while an interrupt is pending (here tripped by
    ``interrupt_main`` during the blocking call that then fails): the interrupt lands as the caller handles the
    error, and the job is still stopped before it goes on: no team chunk starts after ``team.run`` has raised,
    the job is off the queue and BLAS is restored."""
    import _thread
    import queue
    import signal

    team.run(lambda chunk: None, list(range(4)), 2)  # the team started
    started, lock = [], threading.Lock()

    def work(chunk):
        if threading.current_thread() is threading.main_thread():
            return queue.SimpleQueue().get(timeout=1.0)  # queue.Empty from C after 1 s: a failed chunk
        with lock:
            started.append(time.monotonic())
        time.sleep(0.05)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.05, _thread.interrupt_main).start()  # tripped while the chunk's C call blocks
        with pytest.raises(KeyboardInterrupt):
            team.run(work, list(range(100)), 2)
        raised_at = time.monotonic()
        time.sleep(0.3)
    finally:
        signal.signal(signal.SIGINT, previous)
    with lock:
        assert not [t for t in started if t > raised_at]  # nothing of the call ran on after it raised
        assert len(started) < 99
    assert not team._queue and team._blas_limiter is None


def test_an_interrupt_at_any_point_of_a_callers_wait_never_blocks_the_team():
    """KeyboardInterrupt injected at each trace event of a caller's wait in turn (every call, line and return,
    in tconv's code and in the threading code it runs): the team thread that finishes the job never blocks,
    and the caller's next wait returns. (With a ``threading.Event`` as the job's signal, an interrupt as
    ``Condition.__enter__`` returns left the Event's lock held, and the whole team hung: seen once in CI.)"""
    point = 1
    while True:
        job = team._Job(lambda piece: None, [0])
        with team._lock:
            job.take()

        def finish(job=job):
            time.sleep(0.01)  # the caller is waiting by then, most often
            with team._lock:
                job.done(None)

        events = [0]

        def tracer(frame, event, arg, point=point, events=events):
            events[0] += 1
            if events[0] == point:
                raise KeyboardInterrupt
            return tracer

        finisher = threading.Thread(target=finish, daemon=True)
        finisher.start()
        sys.settrace(tracer)
        try:
            job.wait()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        finisher.join(5)
        assert not finisher.is_alive(), f"the team thread blocked finishing a job (interrupt at event {point})"
        waiter = threading.Thread(target=job.wait, daemon=True)
        waiter.start()
        waiter.join(5)
        assert not waiter.is_alive(), f"a second wait blocked (interrupt at event {point})"
        if events[0] < point:  # the wait ran through without reaching this point: every point is covered
            break
        point += 1
    assert point > 2  # the wait has trace events to interrupt at


@needs_jit
def test_the_main_thread_never_compiles_a_kernel_itself():
    """A new specialization asked for from the main thread is compiled (or loaded from the cache) in a thread
    of its own: an interrupt, which lands in the main thread only, can then never leave numba's or LLVM's
    locks held (which hung a team thread compiling later, seen once in CI). From another thread the compile
    runs where it is asked."""

    def add_one(x):
        return x + 1

    dispatcher = kernels._jit(kernels.numba_module(), add_one)
    compiled_in, compile_ = [], dispatcher.compile

    def spy(signature):
        compiled_in.append(threading.current_thread())
        return compile_(signature)

    dispatcher.compile = spy
    assert dispatcher(1.0) == 2.0  # main thread, a new signature
    assert dispatcher(2.0) == 3.0  # the same signature: nothing compiled
    assert len(compiled_in) == 1 and compiled_in[0] is not threading.main_thread()
    other = threading.Thread(target=lambda: dispatcher(np.int64(3)))
    other.start()
    other.join(60)
    assert len(compiled_in) == 2 and compiled_in[1] is other


# --- defect 4: short-lived threads ------------------------------------------------------------------------


@needs_jit
def test_short_lived_threads_run_at_constant_memory():
    """60 threads, one after the other, each running a gradient: RSS after them is what it was after the
    first three (the workspaces of a thread go with it)."""
    figures = _run(
        """
        import psutil
        process = psutil.Process()
        x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
        w = rng.standard_normal((64, 32, 4, 4)).astype(np.float32)
        gy = tconv.conv_transpose(x, w, stride=2, padding=1)
        def request():
            tconv.conv_transpose_grad(gy, x, w, stride=2, padding=1)
            tconv.conv_transpose(x, w, stride=2, padding=1)
        def on_a_new_thread():
            t = threading.Thread(target=request)
            t.start()
            t.join()
        for _ in range(3):
            on_a_new_thread()
        start = process.memory_info().rss
        for _ in range(60):
            on_a_new_thread()
        end = process.memory_info().rss
        result(rss_start_mib=start / 2**20, rss_end_mib=end / 2**20, growth_mib=(end - start) / 2**20)
        """
    )
    assert figures["growth_mib"] < 24


def test_a_threads_workspaces_go_when_it_ends():
    """In process: a thread's buffers are referenced from nowhere once the thread ends."""
    import gc
    import weakref

    refs = []

    def request():
        buffer = workspace.workspace((1024, 1024), np.float32)
        refs.append(weakref.ref(buffer.base if buffer.base is not None else buffer))

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    gc.collect()
    assert refs and all(ref() is None for ref in refs)


# --- defect 5: memory limits ------------------------------------------------------------------------------


# glibc's heap-checking malloc (2.34 and later), wherever the platform's multiarch directory puts it
MALLOC_DEBUG = next(iter(sorted(glob.glob("/lib/*-linux-gnu/libc_malloc_debug.so.0"))), "")


@needs_jit
@pytest.mark.skipif(not MALLOC_DEBUG, reason="needs glibc's malloc debugging library")
def test_the_depthwise_tile_kernel_writes_inside_its_buffers():
    """Under glibc's heap checks (``glibc.malloc.check=3``), which end the process at the first corrupted chunk:
    the channels-first depthwise tile kernels over float32 and float64 (four lanes a vector there, where blocks of
    eight pixels once overran the buffer of pixel vectors), rows of 5-48 input pixels, strides 1-3, convolutions
    and transposed convolutions."""
    figures = _run(
        """
        from oracle import naive_conv, naive_conv_transpose
        worst = 0.0
        for dtype in (np.float32, np.float64):
            for size, stride in ((5, 1), (30, 1), (41, 2), (17, 3), (48, 1)):
                x = rng.standard_normal((2, 13, size, size)).astype(dtype)
                w = rng.standard_normal((13, 1, 3, 3)).astype(dtype)
                options = {"stride": [stride] * 2, "pads": [(1, 1)] * 2, "groups": 13}
                with tconv.use_algorithm("jit_depthwise"):
                    y = tconv.conv(x, w, stride=stride, padding=1, groups=13)
                    back = tconv.conv_transpose(x, w, stride=stride, padding=1, groups=13)  # flipped, or phases
                worst = max(worst, float(np.abs(y - naive_conv(x, w, **options)).max()))
                worst = max(worst, float(np.abs(back - naive_conv_transpose(x, w, **options)).max()))
        result(worst=worst)
        """,
        env={
            "LD_PRELOAD": MALLOC_DEBUG,
            "GLIBC_TUNABLES": "glibc.malloc.check=3",
            "PYTHONPATH": SRC + os.pathsep + os.path.dirname(__file__),
        },
    )
    assert figures["worst"] < 1e-4


@needs_jit
def test_a_compile_under_a_tight_cap_is_a_memory_error_not_an_abort(tmp_path):
    """LLVM aborts the process when an allocation fails mid-compile (``std::bad_alloc``): under a cap that leaves
    little room, a call that needs a new kernel raises ``MemoryError`` naming the limit instead, and with the cap
    lifted the same call compiles and is right. A cache of its own, empty, so the kernel must be compiled."""
    pytest.importorskip("resource")
    figures = _run(
        """
        import resource
        from oracle import naive_conv
        x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)
        w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm + 32 * 2**20, hard))
        try:
            tconv.conv(x, w, stride=2, padding=1, groups=6)
            message = None
        except MemoryError as err:
            message = str(err)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        y = tconv.conv(x, w, stride=2, padding=1, groups=6)
        error = float(np.abs(y - naive_conv(x, w, stride=(2, 2), pads=[(1, 1), (1, 1)], groups=6)).max())
        result(message=message, error=error)
        """,
        env={"NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": SRC + os.pathsep + os.path.dirname(__file__)},
    )
    assert figures["message"] is not None and "RLIMIT_AS" in figures["message"] and "MiB" in figures["message"]
    assert figures["error"] < 1e-4


@needs_jit
def test_a_first_call_under_a_tight_cap_is_a_memory_error_not_a_crash(tmp_path):
    """Capped before tconv has compiled or loaded anything: loading numba's LLVM or the first compile fails for want
    of address space (an ``OSError`` from llvmlite, an abort inside LLVM); the call raises ``MemoryError`` naming
    the limit, and with the cap lifted the same call is right."""
    pytest.importorskip("resource")
    figures = _run(
        """
        import json, resource
        import numpy as np
        import tconv
        from oracle import naive_conv
        rng = np.random.default_rng(1)
        x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)
        w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
        messages = []
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        for extra in (64, 128):
            with open("/proc/self/status") as f:
                vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            resource.setrlimit(resource.RLIMIT_AS, (vm + extra * 2**20, hard))
            try:
                tconv.conv(x, w, stride=2, padding=1, groups=6)
                messages.append(None)
            except MemoryError as err:
                messages.append(str(err))
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        y = tconv.conv(x, w, stride=2, padding=1, groups=6)
        error = float(np.abs(y - naive_conv(x, w, stride=(2, 2), pads=[(1, 1), (1, 1)], groups=6)).max())
        print("RESULT " + json.dumps({"messages": messages, "error": error}), flush=True)
        """,
        prelude="",
        env={"NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": SRC + os.pathsep + os.path.dirname(__file__)},
    )
    assert all(m is not None and "RLIMIT_AS" in m for m in figures["messages"]), figures["messages"]
    assert figures["error"] < 1e-4


@needs_jit
def test_an_address_space_cap_gives_memory_error_and_a_usable_process():
    """Issue 16's call (x (8,256,64,64), w (256,128,4,4), stride 2) under an address-space cap a little above
    the process's size: ``MemoryError`` (never an exit), then, with the cap lifted, calls are right again."""
    pytest.importorskip("resource")
    figures = _run(
        """
        import resource
        kernels.set_threads(2)
        check(call())
        # OpenBLAS allocates its buffers as threads first run products, and ends the process when it cannot (no
        # caller can catch that): every thread that may run a product under the caps runs one first, all of them at
        # once (barriers hold each thread to exactly one, and start them together)
        parties = len(team._workers) + 1
        barrier = threading.Barrier(parties, timeout=30)
        def first_product(index):
            a = np.ones((512, 512), np.float32)
            barrier.wait()
            a @ a
            barrier.wait()
        team.run(first_product, list(range(parties)), parties)
        x = np.ones((8, 256, 64, 64), np.float32)
        w = np.ones((256, 128, 4, 4), np.float32)
        gy = np.ones((8, 128, 130, 130), np.float32)
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        errors = []
        for extra in (16, 64, 160, 320):
            resource.setrlimit(resource.RLIMIT_AS, (vm + extra * 2**20, hard))
            try:
                tconv.conv_transpose_grad(gy, x, w, stride=2)
                tconv.conv_transpose(x, w, stride=2)
                errors.append(None)
            except MemoryError as err:
                errors.append("MemoryError")
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        check(call())
        # Threads that cannot be started (issue 16: libgomp ended the process): the team grows to 4 under a
        # cap that leaves no room for a thread's stack.
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 2 * 2**20, hard))
        try:
            kernels.set_threads(4)
            check(call())
            grown = "computed"
        except MemoryError:
            grown = "MemoryError"
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        check(call())
        dx, dw, db = tconv.conv_transpose_grad(EXPECTED, X, W, stride=2, padding=1)
        result(errors=errors, vm_mib=vm / 2**20, grown=grown)
        """,
        timeout=300,
        # OpenBLAS's threaded driver ends the process itself when its job array cannot be allocated ("OpenBLAS:
        # malloc failed in gemm_driver"), which no caller can catch: single-threaded products here.
        env={"NUMBA_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"},
    )
    assert "MemoryError" in figures["errors"] and figures["grown"] in ("computed", "MemoryError")


# --- defect 3: every view NumPy can make ------------------------------------------------------------------

RNG = np.random.default_rng(16)


def _views(a):
    """``a``'s values as views of every kind: flipped (negative strides), Fortran order, read-only, zero
    strides (broadcast), and unaligned (a byte offset into a buffer)."""
    flipped = np.flip(np.flip(a).copy())
    fortran = np.asfortranarray(a)
    frozen = a.copy()
    frozen.flags.writeable = False
    raw = np.zeros(a.nbytes + 1, np.uint8)
    unaligned = np.ndarray(a.shape, a.dtype, buffer=raw, offset=1)
    unaligned[...] = a
    return {"flipped": flipped, "fortran": fortran, "read-only": frozen, "unaligned": unaligned}


@needs_jit
@pytest.mark.parametrize("algorithm", ["jit_gemm", "jit_pixels", "jit_direct", "jit_patches"])
def test_views_of_every_kind_in_every_argument(algorithm):
    """Issue 16's reproducers and their siblings: every compiled path, forward and both gradients, with x,
    weight and grad_output as every kind of view, against the oracle."""
    x = RNG.standard_normal((2, 3, 5))
    w = RNG.standard_normal((3, 2, 3))
    expected = naive_conv_transpose(x, w, stride=[2], pads=[(1, 1)])
    gy = RNG.standard_normal(expected.shape)
    with tconv.use_algorithm(algorithm):
        reference = tconv.conv_transpose_grad(gy, x, w, stride=2, padding=1)
        for kind, xv in _views(x).items():
            for wv in _views(w).values():
                got = tconv.conv_transpose(xv, wv, stride=2, padding=1)
                np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=kind)
            for gv in _views(gy).values():
                grads = tconv.conv_transpose_grad(gv, xv, w, stride=2, padding=1)
                for g, r in zip(grads, reference):
                    np.testing.assert_allclose(g, r, atol=1e-12, err_msg=kind)
    zero = np.broadcast_to(x[:, :, :1], x.shape)  # zero strides
    np.testing.assert_allclose(
        tconv.conv(zero, w.transpose(1, 0, 2)), naive_conv(np.ascontiguousarray(zero), w.transpose(1, 0, 2))
    )


def _forward_views_match(algorithm, with_grads):
    """``algorithm`` forced on x and the weight as every kind of view, both layouts, against the oracle, and on a
    zero-stride x; ``with_grads``: grad_output too, as every kind of view, through the input's gradient of the
    stride-1 layer."""
    x = RNG.standard_normal((2, 3, 6, 5))
    w = RNG.standard_normal((9, 3, 3, 2))
    pads = [(1, 1), (0, 1)]
    expected = naive_conv(x, w, pads=pads)
    gy = RNG.standard_normal(expected.shape)
    with tconv.use_algorithm(algorithm):
        for channels_last in (False, True):

            def layout(a, channels_last=channels_last):
                return np.moveaxis(a, 1, -1) if channels_last else a

            for kind, xv in _views(layout(x)).items():
                for wv in _views(w).values():
                    got = tconv.conv(xv, wv, padding=pads, channels_last=channels_last)
                    np.testing.assert_allclose(got, layout(expected), atol=1e-12, err_msg=kind)
                for gv in _views(layout(gy)).values() if with_grads else ():
                    dx, _, _ = tconv.conv_grad(gv, xv, w, padding=pads, channels_last=channels_last)
                    want = naive_conv_transpose(gy, w, pads=pads)
                    np.testing.assert_allclose(dx, layout(want), atol=1e-12, err_msg=kind)
        zero = np.broadcast_to(x[:, :, :1], x.shape)
        np.testing.assert_allclose(tconv.conv(zero, w), naive_conv(np.ascontiguousarray(zero), w), atol=1e-12)


@needs_jit
def test_views_of_every_kind_on_the_window_dots_path():
    """``jit_dots`` runs convolutions only: x and the weight as every kind of view, both layouts, against the
    oracle; a zero-stride x too."""
    _forward_views_match("jit_dots", with_grads=False)


@needs_jit
def test_views_of_every_kind_on_the_register_blocked_path():
    """``jit_blocked`` runs convolutions (the transposed views test above is strided, which it does not run): x,
    weight and grad_output as every kind of view, both layouts, forward and the gradients of a stride-1 layer
    (the input's through the transposed twin it runs), against the oracle; a zero-stride x too."""
    _forward_views_match("jit_blocked", with_grads=True)


@needs_jit
def test_the_issues_negative_stride_reproducers():
    x = np.arange(6.0).reshape(1, 1, 6)[..., ::-1]
    np.testing.assert_allclose(
        tconv.conv_transpose(x, np.ones((1, 1, 2)), stride=2),
        naive_conv_transpose(x.copy(), np.ones((1, 1, 2)), stride=[2]),
    )
    gy = np.arange(4.0).reshape(1, 1, 4)[..., ::-1]
    gx, _, _ = tconv.conv_grad(gy, np.ones((1, 1, 6)), np.ones((1, 1, 3)))
    np.testing.assert_allclose(gx, naive_conv_transpose(gy.copy(), np.ones((1, 1, 3))))
    xd = np.flip(RNG.standard_normal((2, 8, 5, 5)))
    wd = RNG.standard_normal((8, 1, 3, 3))
    with tconv.use_algorithm("jit_direct"):
        got = tconv.conv_transpose(xd, wd, groups=8, stride=2)
    np.testing.assert_allclose(got, naive_conv_transpose(xd.copy(), wd, stride=[2, 2], groups=8), atol=1e-12)


# --- defect 7: huge strides, index overflow ---------------------------------------------------------------


@needs_jit
@pytest.mark.parametrize("stride", [3000, 10**5])
def test_huge_strides_on_tiny_inputs_need_no_stride_sized_buffer(stride):
    """The phase-major buffer holds the phases in use, not ``stride**d`` of them; the numbers are the oracle's
    on every transposed path."""
    x = RNG.standard_normal((1, 8, 1, 1))
    w = RNG.standard_normal((8, 8, 3, 3))
    geometry = kernels.PhaseGeometry((1, 1, 1), (1, 3, 3), (1, stride, stride), (1, 1, 1), (0, 0, 0), (1, 3, 3))
    assert geometry.size <= 9  # was stride**2
    expected = naive_conv_transpose(x, w, stride=[stride, stride])
    for algorithm in ("jit_gemm", "jit_direct", "jit_pixels", "jit_patches"):
        with tconv.use_algorithm(algorithm):
            np.testing.assert_allclose(tconv.conv_transpose(x, w, stride=stride), expected, atol=1e-12)
    np.testing.assert_allclose(tconv.conv_transpose(x, w, stride=stride), expected, atol=1e-12)


def test_the_phase_buffer_keeps_the_numbers_bitwise():
    """Storing only the phases in use changes where a sum lies, not what it adds: bitwise equal to storing
    every phase (stride 3 with a kernel of 2 leaves one phase unused)."""
    x = RNG.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 2, 5)).astype(np.float32)
    with tconv.use_algorithm("jit_gemm"):
        a = tconv.conv_transpose(x, w, stride=(3, 2), padding=(1, 2))
    with tconv.use_algorithm("gemm"):
        b = tconv.conv_transpose(x, w, stride=(3, 2), padding=(1, 2))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("function", "options", "named"),
    [
        (tconv.conv, {"stride": 2**63}, "stride"),
        (tconv.conv_transpose, {"stride": 2**63}, "stride"),
        (tconv.conv_transpose, {"stride": 2**62}, "stride="),
        (tconv.conv_transpose, {"dilation": 2**62}, "dilation="),
        (tconv.conv, {"padding": 2**62}, "padding="),
    ],
)
def test_sizes_beyond_the_index_range_are_a_value_error_naming_the_argument(function, options, named):
    with pytest.raises(ValueError, match=named):
        function(np.ones((1, 1, 5)), np.ones((1, 1, 3)), **options)


def test_a_huge_stride_on_a_small_input_computes():
    """PyTorch's answer: one output (the stride never multiplies anything)."""
    np.testing.assert_allclose(tconv.conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)), stride=2**62), [[[3.0]]])


# --- defect 8: atomic weight loading; defect 9: files ------------------------------------------------------


def _model():
    from tconv import nn

    model = nn.Sequential([nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)])
    model(np.ones((1, 3)))
    return model


def test_loading_weights_with_one_bad_tensor_changes_nothing(tmp_path):
    model = _model()
    before = model.state_dict()
    bad = {name: value + 1 for name, value in before.items()}
    bad[list(bad)[-1]] = np.ones(7)
    with pytest.raises(ValueError, match="must have shape"):
        model.load_state_dict(bad)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match="must have shape"):
        model.load(tmp_path / "bad.npz")
    weights = [w + 1 for w in model.get_weights()]
    weights[-1] = np.ones(9)
    with pytest.raises(ValueError, match="must have shape"):
        model.set_weights(weights)
    assert all(np.array_equal(model.state_dict()[name], value) for name, value in before.items())


def test_loading_what_is_not_a_weights_archive_says_what_it_is(tmp_path):
    model = _model()
    before = model.state_dict()
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"single array .*\.npy file.*expected a \.npz archive"):
        model.load(tmp_path / "one.npy")
    model.save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    for name, content in (("half.npz", data[: len(data) // 2]), ("tail.npz", data[:-40]), ("junk.npz", b"x" * 99)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=r"expected a \.npz archive written by Module\.save"):
            model.load(tmp_path / name)
    assert all(np.array_equal(model.state_dict()[name], value) for name, value in before.items())


def test_complex_weights_and_inputs_are_refused():
    model = _model()
    with pytest.raises(TypeError, match="complex128"):
        model.load_state_dict({name: value.astype(complex) for name, value in model.state_dict().items()})
    with pytest.raises(TypeError, match="complex"):
        model.set_weights([w.astype(np.complex64) for w in model.get_weights()])
    with pytest.raises(TypeError, match="complex"):
        model(np.ones((1, 3), complex))


# --- defect 9: exception kinds; defect 11: NumPy scalars ---------------------------------------------------


@pytest.mark.parametrize("dtype", [np.longdouble, ">f8", ">f4", ">f2", "<f4"])
def test_byte_orders_and_extended_precision(dtype):
    x, w = np.ones((1, 1, 5)), np.ones((1, 1, 3))
    if np.dtype(dtype).itemsize > 8:
        with pytest.raises(TypeError, match=f"x must have dtype .*received x of dtype {np.dtype(dtype)}"):
            tconv.conv(x.astype(dtype), w.astype(dtype))
        return
    for function in (tconv.conv, tconv.conv_transpose):
        got = function(x.astype(dtype), w.astype(dtype))
        assert got.dtype.isnative and got.dtype == np.dtype(dtype).newbyteorder("=")
        np.testing.assert_allclose(got, function(x, w), rtol=1e-3)
    grads = tconv.conv_grad(np.ones((1, 1, 3), dtype), x.astype(dtype), w.astype(dtype))
    np.testing.assert_allclose(grads[0], tconv.conv_grad(np.ones((1, 1, 3)), x, w)[0], rtol=1e-3)


@pytest.mark.parametrize("argument", ["x", "weight"])
@pytest.mark.parametrize("function", [tconv.conv, tconv.conv_transpose])
def test_none_for_an_array_is_a_type_error_naming_it(function, argument):
    arrays = {"x": np.ones((1, 1, 5)), "weight": np.ones((1, 1, 3))}
    arrays[argument] = None
    with pytest.raises(TypeError, match=f"{argument} must be an array; received None"):
        function(arrays["x"], arrays["weight"])


@pytest.mark.parametrize("argument", ["grad_output", "x", "weight"])
@pytest.mark.parametrize("function", [tconv.conv_grad, tconv.conv_transpose_grad])
def test_none_in_a_gradient_is_a_type_error_naming_it(function, argument):
    arrays = {"grad_output": np.ones((1, 1, 3)), "x": np.ones((1, 1, 5)), "weight": np.ones((1, 1, 3))}
    arrays[argument] = None
    with pytest.raises(TypeError, match=f"{argument} must be an array; received None"):
        function(arrays["grad_output"], arrays["x"], arrays["weight"])


def test_numpy_scalars_and_arrays_where_python_ones_are_meant():
    x, w = RNG.standard_normal((1, 6, 6, 2)), RNG.standard_normal((3, 2, 3, 3))
    expected = tconv.conv(x, w, stride=2, dilation=1, channels_last=True)
    for options in (
        {"stride": np.int64(2), "channels_last": np.True_},
        {"stride": np.array([2, 2]), "channels_last": np.bool_(True)},
        {"stride": (np.int32(2), np.int64(2)), "dilation": np.array(1), "channels_last": True},
        {"stride": np.array([2, 2], np.uint8), "groups": np.int64(1), "channels_last": True},
    ):
        np.testing.assert_array_equal(tconv.conv(x, w, **options), expected)
    wt = RNG.standard_normal((2, 3, 3, 3))
    got = tconv.conv_transpose(x, wt, stride=np.array([2, 2]), output_padding=np.array([1, 0]), channels_last=np.True_)
    assert got.shape == (1, 14, 13, 3)
    for bad in (np.array([2.0, 2.0]), np.array([[2, 2]]), np.float64(2.0)):
        with pytest.raises(TypeError, match="stride must be"):
            tconv.conv(x, w, stride=bad, channels_last=True)
    with pytest.raises(TypeError, match="channels_last"):
        tconv.conv(x, w, channels_last=np.int64(1))


def test_numpy_arrays_as_padding_and_a_numpy_zero_output_padding():
    """The siblings in ConvSpec.build: padding as an array (per axis, or one (lo, hi) row per axis) means what
    the same list means; an output padding of np.int64(0) says nothing, as 0 does."""
    x, w = RNG.standard_normal((1, 1, 5, 5)), RNG.standard_normal((1, 1, 3, 3))
    np.testing.assert_array_equal(tconv.conv(x, w, padding=np.array([1, 2])), tconv.conv(x, w, padding=[1, 2]))
    pairs = np.array([[1, 0], [0, 2]])
    np.testing.assert_array_equal(tconv.conv(x, w, padding=pairs), tconv.conv(x, w, padding=[(1, 0), (0, 2)]))
    np.testing.assert_array_equal(
        tconv.conv_transpose(x, w, stride=2, padding=np.int64(1)), tconv.conv_transpose(x, w, stride=2, padding=1)
    )
    spec = tconv.ConvSpec.build(
        transposed=False, input_size=(5,), kernel_size=(3,), in_channels=1, out_channels=1, output_padding=np.int64(0)
    )
    assert spec.output_size == (3,)
    with pytest.raises(ValueError, match="output_padding only applies"):
        tconv.ConvSpec.build(
            transposed=False,
            input_size=(5,),
            kernel_size=(3,),
            in_channels=1,
            out_channels=1,
            output_padding=np.int64(1),
        )
    with pytest.raises(TypeError, match="padding must be"):
        tconv.conv(x, w, padding=np.array([1.0, 1.0]))


def test_a_blas_library_that_refuses_its_count_is_left_as_it_is():
    """Restoring BLAS's thread counts retries while interrupts land, but a library that raises an error of its
    own (here OSError, every time) is left as it is, and the others are still set: no endless retry (which
    would also hang a forked child's handler)."""

    class Refusing:
        calls = 0

        def set_num_threads(self, count):
            Refusing.calls += 1
            raise OSError("no")

    class Accepting:
        def __init__(self):
            self.count = None

        def set_num_threads(self, count):
            self.count = count

    refusing, accepting = Refusing(), Accepting()
    team._set_counts([(refusing, 2), (accepting, 3)])
    assert Refusing.calls == 1 and accepting.count == 3
