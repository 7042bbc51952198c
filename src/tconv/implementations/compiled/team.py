"""tconv's own thread team: Python threads that run the compiled kernels (numba, ``nogil``) in parallel.

Why a team of our own. The kernels used to be compiled with numba's ``parallel=True``, whose default threading
layer here is GNU OpenMP: its threads spin after every kernel (slowing the BLAS products that follow), and a
process that has used it cannot ``fork`` (the child is killed; ``multiprocessing``'s fork pools hang). So the
kernels are compiled serial and ``nogil``, each taking a range of its jobs (``start``, ``stop``), and the team
runs the ranges on its threads, which sleep on a condition variable between calls: no spinning, no OpenMP,
nothing that breaks ``fork``. Two kinds of work go to the team:

* :func:`ranges`: one kernel call cut into ranges of its jobs (output planes, columns), for every call big
  enough (``_tuning.KERNEL_TEAM_MIN_WORK``). The calling thread takes ranges too. Each job is computed whole by
  one thread with the kernel's arithmetic, so the result is bitwise the same however the jobs are divided.
* :func:`run`: a call's chunks, each run single-threaded from its product to its last write (the "team"
  schedule, :func:`tconv.implementations.compiled.schedule.team_threads`), with NumPy's BLAS on one thread
  meanwhile (threadpoolctl, as scikit-learn does around its own parallel loops). The calling thread only waits.

Settings. The team's size is :func:`threads` (``NUMBA_NUM_THREADS`` when set, else the CPUs this process may
run on; :func:`set_threads` changes it for the process). Nothing per-thread is changed. The one process-wide
setting tconv changes, BLAS's thread count, is limited and restored by the team's own threads (the first to
start a chunk of a :func:`run` limits it, the last to finish one restores it once no other run needs it), never
by the calling thread: a ``KeyboardInterrupt``, which Python delivers to the main thread only, cannot skip the
restore. An interrupted caller stops handing out chunks, waits for the running ones, and re-raises.

Processes. :func:`os.register_at_fork` handlers make ``fork`` safe at any moment: before a fork the team's lock
(held only for a few instructions at a time) and numba's compiler lock are taken, so the child never inherits
them held; in the child the team starts empty (its threads did not survive the fork) and, if a run had BLAS
limited, the child gets BLAS's original thread count back. The child builds its own team on its first call.

Memory. A thread that cannot be started (``RuntimeError``/``MemoryError`` at the limit of threads or of the
address space) is not an error: the work runs on the threads there are, the caller's among them.
"""

from __future__ import annotations

import collections
import functools
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ... import _tuning

T = TypeVar("T")

_lock = threading.Lock()  # guards every module-level name below; held for a few instructions at a time
_wake = threading.Condition(_lock)
_queue: collections.deque[_Job] = collections.deque()  # jobs that may still have pieces to hand out
_workers: list[threading.Thread] = []
_local = threading.local()  # .member: True in the team's own threads
_threads: int | None = None  # the team's size, once set (None: from the environment)
_blas_users = 0
_blas_limiter: Any = None


@functools.cache
def _controller() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded now (None without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def threads() -> int:
    """The team's size: :func:`set_threads`'s value, else ``NUMBA_NUM_THREADS``, else this process's CPUs."""
    if _threads is not None:
        return _threads
    env = os.environ.get("NUMBA_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def set_threads(count: int) -> None:
    """Run tconv's kernels and chunks on ``count`` threads (the calling thread included), for the process."""
    global _threads
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"threads must be a positive int; received {count!r}")
    _threads = int(count)


def size() -> int:
    """The threads a chunk team (:func:`run`) would use (1: no team; it needs threadpoolctl)."""
    return threads() if _controller() is not None else 1


def member() -> bool:
    """Whether the calling thread is one of the team's (work handed to the team from it runs in it, serially)."""
    return bool(getattr(_local, "member", False))


class _Job:
    """Pieces of work handed out one at a time; ``finished`` is set once none is running and none is left."""

    def __init__(self, work: Callable[[Any], None], pieces: Sequence[Any], blas: bool) -> None:
        self.work, self.pieces, self.blas = work, pieces, blas
        self.next = 0  # the next piece to hand out
        self.running = 0
        self.stopped = False  # a piece failed, or the caller was interrupted: hand out no more
        self.blas_limited = False
        self.errors: list[BaseException] = []
        self.finished = threading.Event()

    def take(self) -> int | None:
        """The next piece's index (call under ``_lock``), or None when there is none to hand out."""
        if self.stopped or self.next >= len(self.pieces):
            return None
        if self.blas and not self.blas_limited:
            _limit_blas()
            self.blas_limited = True
        self.next += 1
        self.running += 1
        return self.next - 1

    def done(self, error: BaseException | None) -> None:
        """One piece is over (call under ``_lock``); the last one restores BLAS and sets ``finished``."""
        self.running -= 1
        if error is not None:
            self.errors.append(error)
            self.stopped = True
        self.settle()

    def settle(self) -> None:
        """Once no piece runs and none is left (call under ``_lock``, in a team thread unless BLAS was never
        limited): restore BLAS and set ``finished``."""
        if self.running == 0 and (self.stopped or self.next >= len(self.pieces)) and not self.finished.is_set():
            if self.blas_limited:
                _restore_blas()
                self.blas_limited = False
            self.finished.set()


def _limit_blas() -> None:
    """BLAS on one thread while any chunk team runs (counted, so overlapping runs restore it once)."""
    global _blas_users, _blas_limiter
    if _blas_users == 0:
        _blas_limiter = _controller().limit(limits=1, user_api="blas")
    _blas_users += 1


def _restore_blas() -> None:
    global _blas_users, _blas_limiter
    _blas_users -= 1
    if _blas_users == 0 and _blas_limiter is not None:
        _blas_limiter.restore_original_limits()
        _blas_limiter = None


def _serve() -> None:
    """A team thread: take the next piece of the oldest job that has one, run it, report it; sleep when idle."""
    _local.member = True
    while True:
        with _lock:
            while True:
                job, index = _next_piece()
                if job is not None:
                    break
                _wake.wait()
        _run_piece(job, index)


def _next_piece() -> tuple[_Job | None, int]:
    """The oldest queued job with a piece left, and that piece (call under ``_lock``)."""
    while _queue:
        job = _queue[0]
        index = job.take()
        if index is not None:
            return job, index
        _queue.popleft()
        job.settle()  # a job its caller stopped between two pieces is settled here, in a team thread
    return None, -1


def _run_piece(job: _Job, index: int) -> None:
    error = None
    try:
        job.work(job.pieces[index])
    except BaseException as err:  # handed to the caller
        error = err
    with _lock:
        job.done(error)


def _start_workers(count: int) -> int:
    """At least ``count`` team threads running, as far as threads can be started (call under ``_lock``);
    returns how many there are."""
    _workers[:] = [thread for thread in _workers if thread.is_alive()]
    while len(_workers) < count:
        thread = threading.Thread(target=_serve, name=f"tconv-{len(_workers)}", daemon=True)
        try:
            thread.start()
        except (RuntimeError, MemoryError):  # no thread to be had: run on those there are
            break
        _workers.append(thread)
    return len(_workers)


def _submit(job: _Job, workers: int) -> int:
    """Queue ``job`` for the team with at least ``workers`` threads; returns the threads there are."""
    with _lock:
        available = _start_workers(workers)
        if available:
            _queue.append(job)
            _wake.notify(min(available, len(job.pieces)))
    return available


def _wait(job: _Job) -> None:
    """Wait for ``job``; if interrupted, stop it (:func:`_stop`) and re-raise. Raises the first piece's error."""
    try:
        job.finished.wait()
    except BaseException:
        _stop(job)
        raise
    if job.errors:
        raise job.errors[0]


def _stop(job: _Job) -> None:
    """Hand out no more pieces of ``job`` and wait for the running ones (a team thread settles it), so that
    nothing of an interrupted call still writes when its caller goes on. Further interrupts meanwhile are
    ignored: the first one is the one re-raised."""
    with _lock:
        job.stopped = True
        _wake.notify()
    while True:
        try:
            job.finished.wait()
            return
        except BaseException:
            continue


def run(work: Callable[[T], None], chunks: Sequence[T], threads: int) -> None:
    """``work(chunk)`` for every chunk, on ``threads`` team threads, each chunk single-threaded throughout with
    BLAS on one thread; the chunks are handed out in order as threads become free. Returns when all are done;
    the first error raised by any chunk is raised here (after every chunk has stopped). From a team thread, or
    where no team thread can be started, the chunks run in order in the calling thread."""
    if not chunks:
        return
    if member() or threads <= 1:
        for chunk in chunks:
            work(chunk)
        return
    job = _Job(work, chunks, blas=True)
    if _submit(job, threads) == 0:
        for chunk in chunks:
            work(chunk)
        return
    _wait(job)


def ranges(kernel: Callable[[int, int], None], jobs: int, work: float) -> None:
    """``kernel(start, stop)`` over ``range(jobs)`` cut into ranges run in parallel by the team and the calling
    thread, when ``work`` (elements the kernel touches) is at least ``_tuning.KERNEL_TEAM_MIN_WORK``; else (or
    from a team thread) ``kernel(0, jobs)`` in the calling thread."""
    count = threads()
    if jobs <= 1 or count <= 1 or work < _tuning.KERNEL_TEAM_MIN_WORK or member():
        kernel(0, jobs)
        return
    pieces = min(jobs, count * _tuning.KERNEL_RANGES_PER_THREAD)
    step = -(-jobs // pieces)
    bounds = [(start, min(start + step, jobs)) for start in range(0, jobs, step)]
    job = _Job(lambda bound: kernel(*bound), bounds, blas=False)
    if _submit(job, count - 1) == 0:
        kernel(0, jobs)
        return
    try:  # the caller takes ranges too, until none is left; then it waits for the team's
        while True:
            with _lock:
                index = job.take()
            if index is None:
                break
            _run_piece(job, index)
    except BaseException:
        _stop(job)
        raise
    _wait(job)


def _before_fork() -> None:
    compiler = _numba_compiler_lock()
    if compiler is not None:
        compiler.acquire()
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()
    compiler = _numba_compiler_lock()
    if compiler is not None:
        compiler.release()


def _after_fork_in_child() -> None:  # pragma: no cover - runs in a forked child (tests/test_faults.py)
    global _lock, _wake, _queue, _workers, _blas_users, _blas_limiter
    limiter = _blas_limiter
    _lock = threading.Lock()
    _wake = threading.Condition(_lock)
    _queue, _workers, _blas_users, _blas_limiter = collections.deque(), [], 0, None
    compiler = _numba_compiler_lock()
    try:
        if compiler is not None:
            compiler.release()
        if limiter is not None:  # forked while a chunk team had BLAS on one thread: the child gets it back
            limiter.restore_original_limits()
    except Exception:  # a fork handler must not fail the child; the team works without these
        pass


def _numba_compiler_lock() -> Any:
    """numba's compiler lock when numba is loaded (a fork while another thread compiles would leave it held
    in the child); None otherwise."""
    if "numba.core.compiler_lock" not in sys.modules:
        return None
    return sys.modules["numba.core.compiler_lock"].global_compiler_lock


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
