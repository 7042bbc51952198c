"""tconv's own thread team: Python threads that run the compiled kernels (numba, ``nogil``) in parallel.

Why a team of our own. The kernels used to be compiled with numba's ``parallel=True``, whose default threading
layer here is GNU OpenMP: its threads spin after every kernel (slowing the BLAS products that follow), and a
process that has used it cannot ``fork`` (the child is killed; ``multiprocessing``'s fork pools hang). So the
kernels are compiled serial and ``nogil``, each taking a range of its jobs (``start``, ``stop``), and the team
runs the ranges on its threads, which sleep on a condition variable between calls: no spinning, no OpenMP,
nothing that breaks ``fork``. Two kinds of work go to the team:

* :func:`ranges`: one kernel call cut into ranges of its jobs (output planes, columns), for every call big
  enough to pay for waking the team (the cost model in ``_tuning``, from :func:`handoff_seconds` measured on
  this machine; near that threshold the call itself measured alone and on the team, :func:`_measured`).
  The calling thread takes ranges too. Each job is computed whole by
  one thread with the kernel's arithmetic, so the result is bitwise the same however the jobs are divided.
* :func:`run`: a call's chunks, each run single-threaded from its product to its last write (the "team"
  schedule, :func:`tconv.implementations.compiled.schedule.team_threads`), with NumPy's BLAS on one thread
  meanwhile (threadpoolctl, as scikit-learn does around its own parallel loops). The calling thread takes chunks
  too.

The compiled path's matrix products go through :func:`matmul`: on the team in blocks, or on one BLAS thread,
never on BLAS's own threads, which spin after every product they share, against the team's next run. Each
thread runs one small product first, once, with BLAS on one thread (:func:`_warm_blas`: OpenBLAS ran narrow
products 1.6-3.8 times slower in a thread that had run no such product).

Settings. The team's size is :func:`threads` (``NUMBA_NUM_THREADS`` when set, else the CPUs this process may
run on; :func:`set_threads` changes it for the process). No thread but the team's own is changed, and those only
in the CPUs they may wake on: each team call lets its sleeping threads wake anywhere the caller may run but on the
caller's current CPU, and a woken thread takes the caller's whole set back (:func:`_keep_off`; never one CPU for
good, which would pile the teams of several processes onto the same CPUs). The scheduler had put a team thread,
woken after the machine idled, on its caller's CPU. The one process-wide
setting tconv changes, BLAS's thread count during a :func:`run`, is limited and restored by the calling thread
(threadpoolctl ignores a restore from another thread), and the control of BLAS that threadpoolctl gives the
thread that first changes it is given up after the restore where the limit took it; the restore is retried
until it has run, so an interrupt cannot skip it. An interrupted caller stops handing out chunks, waits for
the running ones, restores BLAS, and re-raises. The calling thread takes pieces too, but the job never waits for
those (:meth:`_Job.take_own`): the piece accounting that an interrupt must not cut short happens in the team's
threads, which no signal reaches.

Processes. :func:`os.register_at_fork` handlers make ``fork`` safe at any moment: before a fork the team's lock
(held only for a few instructions at a time) and numba's compiler lock are taken (before ``logging``'s module
lock, which numba's compiler takes while it holds its own), so the child never inherits them held; in the child
the team starts empty (its threads did not survive the fork) and, if a run had BLAS limited, the child gets
BLAS's original thread count back. The child builds its own team on its first call.

Memory. A thread that cannot be started (``RuntimeError``/``MemoryError`` at the limit of threads or of the
address space) is not an error: the work runs on the threads there are, the caller's among them.

The module is long because everything that touches the team's state is here: its threads and jobs, the
products cut over it, BLAS's limit and its restore, and the fork handlers all read and write the names guarded
by one lock (``_lock``: the queue, the workers, the BLAS limiter), which no other module may touch, and each
of them has to stay correct against an interrupt at any bytecode.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging  # noqa: F401 - imported before this module's fork handlers are registered (see the end)
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from ... import _tuning

T = TypeVar("T")

_lock = threading.Lock()  # guards every module-level name below; held for a few instructions at a time
_wake = threading.Condition(_lock)
_queue: collections.deque[_Job] = collections.deque()  # jobs that may still have pieces to hand out
_workers: list[threading.Thread] = []
_asleep: set[int] = set()  # the native ids of the team threads waiting for work (on _wake)
_kept_off: dict[int, frozenset[int]] = {}  # a team thread's native id -> the CPUs it may wake on (_keep_off)
_free_cpus: frozenset[int] = frozenset()  # the CPUs a woken team thread may run on again (the last caller's)
_local = threading.local()  # .member: True in the team's own threads
_warmed = threading.local()  # .done: True once _warm_blas has run its product in this thread
_threads: int | None = None  # the team's size, once set (None: from the environment)
_blas_limiter: list[tuple[Any, int]] | None = None  # while a run limits BLAS: each library and its count before
_blas_release: threading.Thread | None = None  # ... and the thread whose limit took threadpoolctl's control
_outer_blas = 0  # layers above the team holding BLAS limited (blas_held_outside): chunk teams leave BLAS alone


@functools.cache
def _controller() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded now (None without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@functools.cache
def _blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries among those :func:`_controller` found."""
    controller = _controller()
    return tuple(lib for lib in controller.lib_controllers if lib.user_api == "blas") if controller else ()


def threads() -> int:
    """The team's size: :func:`set_threads`'s value, else ``NUMBA_NUM_THREADS``, else this process's CPUs (the
    last two read once per process, at the first call that asks, as numba reads ``NUMBA_NUM_THREADS``)."""
    if _threads is not None:
        return _threads
    return _default_threads()


@functools.cache
def _default_threads() -> int:
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


def blas_thread_counts() -> list[int]:
    """The thread count each BLAS library loaded at the team's first use reports now (empty without
    threadpoolctl)."""
    return [lib.get_num_threads() for lib in _blas_libraries()]


def blas_description() -> str:
    """Those BLAS libraries' names, versions and the kernels each chose for this CPU ("" without threadpoolctl)."""
    return "; ".join(
        f"{getattr(lib, 'internal_api', '?')} {getattr(lib, 'version', '?')} {getattr(lib, 'architecture', '?')}"
        for lib in _blas_libraries()
    )


def member() -> bool:
    """Whether the calling thread is one of the team's (work handed to the team from it runs in it, serially)."""
    return bool(getattr(_local, "member", False))


class _Job:
    """Pieces of work handed out one at a time; finished (:meth:`wait` returns) once none is running and none
    is left."""

    def __init__(self, work: Callable[[Any], None], pieces: Sequence[Any], products: bool = False) -> None:
        self.work, self.pieces = work, pieces
        self.products = products  # a run's chunks, which may multiply (BLAS on one thread): warm BLAS first
        self.next = 0  # the next piece to hand out
        self.running = 0
        self.stopped = False  # a piece failed, or the caller was interrupted: hand out no more
        self.errors: list[BaseException] = []
        self.finished = False
        # Released once, when the job finishes. A bare lock, not a threading.Event: an Event's wait and set go
        # through a Condition whose Python-level __enter__ an interrupt can leave holding its lock, after which
        # the team thread that sets the Event blocks forever while holding _lock, and every call hangs.
        self._gate = threading.Lock()
        self._gate.acquire()

    def take(self) -> int | None:
        """The next piece's index for a team thread, counted as running until it reports :meth:`done` (call under
        ``_lock``), or None when there is none to hand out."""
        if self.stopped or self.next >= len(self.pieces):
            return None
        self.next += 1
        self.running += 1
        return self.next - 1

    def take_own(self) -> int | None:
        """The next piece's index for the caller, who runs it itself and reports nothing (call under ``_lock``),
        or None when there is none left: the job never waits for a caller's piece, so an interrupt landing
        anywhere in one cannot leave the job waiting forever (the caller's wait settles the job once it has
        none left, :meth:`settle`)."""
        if self.stopped or self.next >= len(self.pieces):
            return None
        self.next += 1
        return self.next - 1

    def done(self, error: BaseException | None) -> None:
        """One piece is over (call under ``_lock``); the last one finishes the job."""
        self.running -= 1
        if error is not None:
            self.fail(error)
        self.settle()

    def fail(self, error: BaseException) -> None:
        """A piece raised ``error`` (call under ``_lock``): noted, in order, and no piece is handed out after."""
        self.errors.append(error)
        self.stopped = True

    def settle(self) -> None:
        """Finish the job once no piece runs and none is left (call under ``_lock``)."""
        if self.running == 0 and (self.stopped or self.next >= len(self.pieces)) and not self.finished:
            self.finished = True  # before the release: whoever gets through the gate sees it set
            self._gate.release()

    def wait(self) -> None:
        """Block until the job has finished. An interrupt may land anywhere in here and leaves nothing held
        that matters: the gate is only passed once ``finished`` is set, so a later wait returns at once."""
        while not self.finished:
            if self._gate.acquire():  # interruptible; a pending signal's exception is raised from it
                self._gate.release()


@contextlib.contextmanager
def one_blas_thread(multiply_adds: float) -> Iterator[None]:
    """BLAS on one thread in the calling thread for a product of ``multiply_adds``, where it is large enough for
    BLAS to thread it (``BLAS_ONE_THREAD_MIN_WORK``; :func:`matmul`). Nothing is changed from a team thread
    (BLAS is on one thread there already), while another run holds BLAS limited, or without threadpoolctl."""
    if multiply_adds < _tuning.BLAS_ONE_THREAD_MIN_WORK or member() or _controller() is None:
        yield
        return
    with _blas_single_threaded():
        _warm_blas()
        yield


def _warm_blas() -> None:
    """Once in each thread that runs products for tconv, before the first of them where it can: one float32
    product of ``BLAS_WARM_UP_SHAPE`` with every BLAS library on one thread. OpenBLAS ran narrow float32 products
    in a thread 1.6-3.8 times slower until one such product had run there (``_tuning``; cause not found); the
    product costs about 0.4 ms once. Where some library has more than one thread (no limit held, or one that
    leaves a library out; or no threadpoolctl to tell) it waits for a later call: BLAS would thread the product,
    and its threads then spin.
    It never fails a call: an error in it is ignored (the thread is then counted as warmed)."""
    if getattr(_warmed, "done", False):
        return
    try:
        libraries = _blas_libraries()  # none without threadpoolctl: BLAS's threads unknown
        if not libraries or any(lib.get_num_threads() != 1 for lib in libraries):
            return
        m, k, n = _tuning.BLAS_WARM_UP_SHAPE
        np.matmul(np.ones((m, k), np.float32), np.ones((k, n), np.float32))
    except Exception:  # a hint for speed, never an error in the user's call
        pass
    _warmed.done = True


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` with BLAS never on more than one thread: from the calling thread a product
    worth the hand-off (``TEAM_PRODUCT_MIN_FLOPS``, times ``KERNEL_TEAM_TRUST``) is cut into blocks of its rows
    (or of its columns, where they are more) run by the team; one from ``KERNEL_TEAM_PROBE_FROM`` times the
    hand-off's worth to there is cut into the same blocks, run by the team or one after the other here, whichever
    measured faster for its shapes (:func:`_measured`: the same products either way, so the same bits; a 21
    MFLOP product ran 1.5 times slower on the team after a pause); a smaller one runs here on one BLAS thread
    (:func:`_one_thread_product`);
    from a team thread (BLAS on one thread already, for the run it is part of) it runs as it is. Why: OpenBLAS's
    workers spin for about 0.1 s after every product they share, and a team run meanwhile shares the cores with
    them (docs/design.md). A vector operand (1-D) goes to ``np.matmul`` as it is. ``out`` must not overlap ``a``
    or ``b`` (the blocks would read what others wrote; no caller passes one that does)."""
    if a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b, out=out)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    # a stack times one matrix, or two stacks alike: the common cases, without np.broadcast_shapes (a few us)
    if b.ndim == 2 or a.shape[:-2] == b.shape[:-2]:
        lead = a.shape[:-2]
    else:
        lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    flops = 2.0 * math.prod(lead) * m * n * k
    if flops < 2.0 * _tuning.BLAS_ONE_THREAD_MIN_WORK or member():  # small, or in a team run: as it is
        return np.matmul(a, b, out=out)
    count = size()
    result = np.empty((*lead, m, n), dtype=np.result_type(a.dtype, b.dtype)) if out is None else out
    least = _tuning.TEAM_PRODUCT_MIN_FLOPS
    if count <= 1 or flops < least * _tuning.KERNEL_TEAM_PROBE_FROM:
        _one_thread_product(a, b, result, m, n, k)
        return result
    by_rows = m >= n
    length = m if by_rows else n
    step = -(-length // count)
    starts = range(0, length, step)

    def on_team() -> None:
        run(lambda start: _block_product(a, b, result, by_rows, start, start + step), starts, count)

    if flops >= least * _tuning.KERNEL_TEAM_TRUST:
        on_team()
        return result

    def alone() -> None:  # the same blocks, one after the other on one BLAS thread: the same bits as on the team
        with one_blas_thread(math.prod(lead) * (step * n if by_rows else m * step) * k):  # a block's size
            for start in starts:
                _block_product(a, b, result, by_rows, start, start + step)

    key = ("matmul", lead, m, n, k, a.dtype.str, b.dtype.str, a.strides, b.strides, by_rows, count)
    _measured(key, alone, on_team, flops >= least)
    return result


def _block_product(a: np.ndarray, b: np.ndarray, out: np.ndarray, by_rows: bool, start: int, stop: int) -> None:
    """Rows ``start:stop`` of ``a @ b`` into the same rows of ``out`` (``by_rows``), else those columns."""
    if by_rows:
        np.matmul(a[..., start:stop, :], b, out=out[..., start:stop, :])
    else:
        np.matmul(a, b[..., start:stop], out=out[..., start:stop])


def _one_thread_product(a: np.ndarray, b: np.ndarray, out: np.ndarray, m: int, n: int, k: int) -> None:
    """``np.matmul(a, b, out=out)`` on one BLAS thread, in the cheapest of three ways. BLAS threads none of the
    2-D products NumPy hands it (one per matrix of a stack) below ``BLAS_ONE_THREAD_MIN_WORK`` multiply-adds:
    such products run as they are. One that needs at most ``BLAS_SPLIT_MAX_PIECES`` blocks of its rows (or
    columns, where they are more) to get below it, each at least ``BLAS_SPLIT_MIN_BLOCK`` rows (or columns), runs
    as those blocks, one after the other: BLAS's thread count, set to one and back, cost more than the added
    products (about 20 us, against 3-5 us a block). Narrower blocks run far below BLAS's rate ((32, 720) @ (720,
    36) as four blocks of 9 columns 35-37 us, limited 22-24). Others run with BLAS limited to one thread
    (:func:`one_blas_thread`)."""
    limit = _tuning.BLAS_ONE_THREAD_MIN_WORK
    if m * n * k < limit:
        np.matmul(a, b, out=out)
        return
    rows = m >= n
    length, other = (m, n) if rows else (n, m)
    largest = (limit - 1) // (other * k)  # the longest block below the limit
    pieces = -(-length // largest) if largest >= 1 else 0
    if 1 <= pieces <= _tuning.BLAS_SPLIT_MAX_PIECES and length // pieces >= _tuning.BLAS_SPLIT_MIN_BLOCK:
        for i in range(pieces):  # even blocks: each at most ``largest`` long
            _block_product(a, b, out, rows, length * i // pieces, length * (i + 1) // pieces)
        return
    with one_blas_thread(m * n * k):
        np.matmul(a, b, out=out)


@functools.cache
def _openblas_controller() -> Any:
    """threadpoolctl's ``OpenBLASController`` class where it has a controlling thread (3.8 on), else None."""
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:
        return None
    return OpenBLASController if hasattr(OpenBLASController, "clear_controlling_thread") else None


def _control_state() -> Any:
    """threadpoolctl's shared state of OpenBLAS's control (its controlling thread and lock; None where there is
    none). It has no public reader, so the names in it are read defensively."""
    return getattr(_openblas_controller(), "_SHARED_STATE", None)


def holds_blas_control() -> bool:
    """Whether the calling thread holds threadpoolctl's control of OpenBLAS now (3.8 on: the first thread that
    changes an OpenBLAS's thread count is the only one whose changes take effect, until it gives the control up
    or ends). False without that control, or where threadpoolctl's state cannot be read (then a limit's control
    is given up after it, as threadpoolctl's own ``with`` blocks do)."""
    return getattr(_control_state(), "controlling_thread", None) is threading.current_thread()


def _shared_pool(lib: Any) -> bool:
    """Whether threadpoolctl lets one thread at a time change this library's count (an OpenBLAS with its own
    threads, one pool for the process, under threadpoolctl 3.8 on)."""
    kind = _openblas_controller()
    return kind is not None and isinstance(lib, kind) and getattr(lib, "threading_layer", None) != "openmp"


def blas_controlled_elsewhere() -> bool:
    """Whether another thread, alive, holds threadpoolctl's control of OpenBLAS now: a limit set from here would
    be ignored, and its restore, once that thread has restored and given the control up, would write back the
    count read while it was limited."""
    holder = getattr(_control_state(), "controlling_thread", None)
    return holder is not None and holder is not threading.current_thread() and holder.is_alive()


def _control_lock() -> Any:
    """threadpoolctl's lock around its control of OpenBLAS (None where there is none): taken before a fork
    (:func:`_before_fork`), so that the child never inherits it held. None before threadpoolctl is imported."""
    if "threadpoolctl" not in sys.modules:
        return None
    lock = getattr(_control_state(), "lock", None)
    return lock if hasattr(lock, "acquire") and hasattr(lock, "release") else None


def release_blas_control() -> None:
    """Give up threadpoolctl's control of OpenBLAS where the calling thread holds it (nothing otherwise). For a
    thread that took it with a limit it has restored; never raises (an interrupt aside): a failure here (a
    ``MemoryError`` under an address-space cap, say) leaves the control where it is, which costs other threads'
    limits, never results."""
    kind = _openblas_controller()
    if kind is None:
        return
    try:
        kind.clear_controlling_thread()
    except Exception:
        pass


def blas_held_outside(held: bool) -> None:
    """A layer above the team (:mod:`tconv.dask`'s blocks) starts (True) or stops (False) holding BLAS limited:
    meanwhile a chunk team neither limits nor restores BLAS, so that it never takes the outer limit for BLAS's
    own count and restores it after the outer layer has restored the real one."""
    global _outer_blas
    with _lock:
        _outer_blas += 1 if held else -1


@contextlib.contextmanager
def _blas_single_threaded() -> Iterator[None]:
    """BLAS on one thread for the block, limited and restored by the calling thread itself.

    The same thread must do both: a restore from another thread, while the limiting thread lives, is ignored
    (threadpoolctl's controlling thread, below; earlier notes blamed OpenBLAS 0.3.31). Only the first of
    overlapping runs limits BLAS (and restores it when it ends; a run still going then has BLAS's threads back,
    which costs speed, never correctness). The restore is retried until it has run, so an interrupt landing in it
    cannot skip it: the first interrupt is the one that goes on.

    threadpoolctl (3.8 on) lets one thread at a time change OpenBLAS's count (pthreads builds: one pool for the
    process): the first that changes it, until it ends or gives the control up; other threads' changes are
    silently ignored. So where this limit took the control, it is given up after the restore
    (:func:`release_blas_control`); one this thread held before (a limit of the caller's own, whose restore must
    still take) is kept. Kept, tconv's left every other thread's limits ignored for as long as this one lived (the
    main thread: for good), a Dask block's among them, and a limit tconv set from a Dask worker's thread left the
    main thread's ignored. Where another thread holds the control (a limit set from another thread that lives,
    not yet restored or set outside a ``with``), BLAS keeps its threads during the run, as it did before
    threadpoolctl 3.8.
    """
    global _blas_limiter, _blas_release
    owner = False
    mine: list[tuple[Any, int]] | None = None  # this run's limit, restored only while it is the one held
    release = False  # this limit took threadpoolctl's control: give it up after the restore
    try:  # from before the limit: an interrupt landing anywhere after it still reaches the restore below
        with _lock:
            if _blas_limiter is None and _outer_blas == 0:
                release = not holds_blas_control()
                counts = [(lib, lib.get_num_threads()) for lib in _blas_libraries()]
                if blas_controlled_elsewhere():  # OpenBLAS's pool is another thread's to limit and restore
                    counts = [(lib, count) for lib, count in counts if not _shared_pool(lib)]
                try:
                    # set directly: threadpoolctl's limit() would read every library's whole info() first
                    for lib, _ in counts:
                        lib.set_num_threads(1)
                    _blas_limiter, _blas_release = counts, threading.current_thread() if release else None
                    mine = counts
                    owner = True
                except BaseException:  # interrupted while limiting: some libraries may be limited
                    if not owner:  # (once owner, the restore below undoes the limit)
                        _set_counts(counts)
                        if release:
                            release_blas_control()
                        _blas_limiter = None
                    raise
        yield
    finally:
        while owner:  # the restore, then the release, both retried until this run's limit is gone
            try:
                with _lock:
                    if _blas_limiter is mine:
                        assert mine is not None  # owner: this run limited BLAS
                        _set_counts(mine)
                        if release:
                            release_blas_control()
                        _blas_limiter = None
                owner = False
            except BaseException:  # a second interrupt during the restore: restore all the same
                continue


def _set_counts(counts: list[tuple[Any, int]]) -> None:
    """Give each BLAS library its thread count back, retried while interrupts land (a second interrupt here
    cannot leave one limited); a library that raises an error of its own is left as it is."""
    for lib, count in counts:
        while True:
            try:
                lib.set_num_threads(count)
                break
            except Exception:  # the library refuses: retrying would not help
                break
            except BaseException:  # an interrupt: set it all the same
                continue


def _serve() -> None:
    """A team thread: take the next piece of the oldest job that has one, run it, report it; sleep when idle
    (listed in ``_asleep`` meanwhile), and once woken to a piece take back the CPUs its wake-up was kept off
    (:func:`_keep_off`: the last caller's set), outside the lock. A thread that ends (it never does but by an
    error in the team's own code) leaves no record of its CPUs behind for a thread that gets its id."""
    _local.member = True
    me = threading.get_native_id()
    try:
        while True:
            with _lock:
                while True:
                    job, index = _next_piece()
                    if job is not None:
                        break
                    _asleep.add(me)
                    try:
                        _wake.wait()
                    finally:
                        _asleep.discard(me)
                widen = _free_cpus if _kept_off.pop(me, None) is not None else None
            if widen:
                _run_on(widen)
            _run_piece(job, index)
    finally:
        with _lock:
            _kept_off.pop(me, None)


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
        if job.products:
            _warm_blas()
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
            _keep_off(_current_cpu())
            _queue.append(job)
            _wake.notify(min(workers, available, len(job.pieces)))
    return available


@functools.cache
def _sched_getcpu() -> Any:
    """The C library's ``sched_getcpu`` (the CPU the calling thread runs on) on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None).sched_getcpu
        function.restype, function.argtypes = ctypes.c_int, []
    except Exception:  # no such library or function here: the team is left where the system puts it
        return None
    return function


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on now, or None where it cannot be told."""
    function = _sched_getcpu()
    cpu = -1 if function is None else function()
    return cpu if cpu >= 0 else None


def _keep_off(cpu: int | None) -> None:
    """Let every sleeping team thread (``_asleep``) wake only on the CPUs the calling thread may run on but
    ``cpu``, the one it is on now (call under ``_lock``; a thread's setting is changed only where it differs), and
    note the caller's whole set (``_free_cpus``), which a thread takes back once awake (:func:`_serve`), so that
    the scheduler may move it where it likes while it works. With two CPUs that wake-up is on the one the caller
    is not on; a thread is never given one CPU for good (several processes' teams would pile onto the same ones).
    Why: a team thread woken by the caller after the machine had idled was put on the caller's own CPU (a virtual
    machine's idle CPUs look busy to the scheduler once the host has stopped them), and the two shared it for tens
    of milliseconds: a 0.5 ms call took 0.8-1.4 ms for its next dozens of calls (docs/design.md, "Keeping the team
    off the caller's CPU"). Nothing is changed where the CPU cannot be told (off Linux) or the caller may run on one
    CPU only; where the system refuses a setting (a container's limits), none is tried again in this process."""
    global _kept_off_refused, _free_cpus
    if cpu is None or _kept_off_refused or not _asleep:
        return
    try:
        free = frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this system
        _kept_off_refused = True
        return
    allowed = free - {cpu}
    if not allowed:
        return
    _free_cpus = free
    for tid in list(_asleep):
        if _kept_off.get(tid) == allowed:
            continue
        try:
            os.sched_setaffinity(tid, allowed)
        except ProcessLookupError:  # never for a thread waiting on _wake; forgotten all the same
            _asleep.discard(tid)
            continue
        except OSError:  # refused: the team is left where the system puts it
            _kept_off_refused = True
            return
        _kept_off[tid] = allowed


def _run_on(cpus: frozenset[int]) -> None:
    """Let the calling team thread run on ``cpus`` (the set its wake-up was kept within is widened again); left
    as it is where the system refuses (its next wake-up is kept off the caller's CPU all the same)."""
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:
        pass


_kept_off_refused = False


def _team_call(job: _Job, workers: int, caller_takes: bool = True) -> bool:
    """Queue ``job`` for at least ``workers`` team threads, take pieces in the calling thread too (running them
    itself, as a member of the team meanwhile: what they hand to the team runs in place; unless not
    ``caller_takes``), and wait for the job; ``False`` when no team thread could be started (nothing queued,
    nothing run). Raises the first piece's error, the caller's own pieces' errors counted as the team's (in the
    order they happened; the job stopped at the first).

    The caller's own pieces are not counted by the job (:meth:`_Job.take_own`), so the caller may be the main
    thread, where signals land: whatever interrupts it, at whatever point (while queueing, inside or between its
    pieces, while waiting, or at the start of the stop itself), the job is stopped (:func:`_stop`: the team
    threads' running pieces end, none is handed out) before the interrupt goes on.
    """
    try:
        if _submit(job, workers) == 0:
            return False
        while caller_takes:
            with _lock:
                index = job.take_own()
                if index is None:
                    job.settle()  # the team threads' pieces may all have ended already
                    break
            _local.member = True
            try:
                job.work(job.pieces[index])
            except Exception as error:  # as a team thread's piece: noted, the job stopped, raised after the wait
                with _lock:
                    job.fail(error)
            finally:
                _local.member = False
        job.wait()
    except BaseException:
        _local.member = False
        while True:  # an interrupt landing as _stop starts (before its own retries) must not skip it
            try:
                _stop(job)
                break
            except BaseException:
                continue
        raise
    if job.errors:
        raise job.errors[0]
    return True


def _stop(job: _Job) -> None:
    """Hand out no more pieces of ``job`` and wait for the running ones (a team thread settles it, or this
    thread when the job never reached the queue), so that nothing of an interrupted call still writes when its
    caller goes on. Further interrupts meanwhile are ignored (each step is idempotent and retried): the first
    one is the one re-raised."""
    while True:
        try:
            with _lock:
                job.stopped = True
                if job.running == 0 and job not in _queue:
                    job.settle()  # never queued (or already taken off it): nothing will run
                _wake.notify()
            break
        except BaseException:
            continue
    while True:
        try:
            job.wait()
            return
        except BaseException:
            continue


def run(work: Callable[[T], None], chunks: Sequence[T], threads: int) -> None:
    """``work(chunk)`` for every chunk, on ``threads`` threads (the calling thread and ``threads - 1`` team
    threads), each chunk single-threaded throughout with BLAS on one thread; the chunks are handed out in order as
    threads become free. Returns when all are done;
    the first error raised by any chunk is raised here (after every chunk has stopped). From a team thread, or
    where no team thread can be started, the chunks run in order in the calling thread."""
    if not chunks:
        return
    if member() or threads <= 1:
        _warm_blas()  # where BLAS is on one thread already (a Dask block's limit, a caller's own)
        for chunk in chunks:
            work(chunk)
        return
    job = _Job(work, chunks, True)  # products: its chunks may multiply
    with _blas_single_threaded():
        _warm_blas()
        if not _team_call(job, threads - 1):
            for chunk in chunks:
                work(chunk)


def ranges(kernel: Callable[[int, int], None], jobs: int, work: float) -> None:
    """``kernel(start, stop)`` over ``range(jobs)`` cut into ranges run in parallel by the team and the calling
    thread, when ``work`` (elements the kernel touches) is at least ``KERNEL_TEAM_TRUST`` times what pays for the
    hand-off (:func:`kernel_team_min_work`), or from ``KERNEL_TEAM_PROBE_FROM`` times that where the call measured
    faster so (:func:`_measured`; each job is one thread's either way); else (or from a team thread) ``kernel(0,
    jobs)`` in the calling thread."""
    count = threads()
    if jobs <= 1 or count <= 1 or work < _tuning.KERNEL_TEAM_MIN_WORK or member():
        kernel(0, jobs)
        return
    least = kernel_team_min_work()
    if work < least * _tuning.KERNEL_TEAM_PROBE_FROM:
        kernel(0, jobs)
        return
    if work < least * _tuning.KERNEL_TEAM_TRUST:  # measured: its kernel, jobs, work and team are the key
        key = ("ranges", getattr(kernel, "__qualname__", ""), jobs, work, count)
        _measured(key, lambda: kernel(0, jobs), lambda: _on_team(kernel, jobs, count), work >= least)
        return
    _on_team(kernel, jobs, count)


def _on_team(kernel: Callable[[int, int], None], jobs: int, count: int) -> None:
    """``kernel`` over ``range(jobs)`` in ranges on ``count`` threads, the calling thread's among them."""
    pieces = min(jobs, count * _tuning.KERNEL_RANGES_PER_THREAD)
    step = -(-jobs // pieces)
    bounds = [(start, min(start + step, jobs)) for start in range(0, jobs, step)]
    job = _Job(lambda bound: kernel(*bound), bounds)
    if not _team_call(job, count - 1):  # the calling thread takes ranges too
        kernel(0, jobs)


#: a call's measurements (:func:`_measured`): its key -> its uncounted runs (a mark each) and the seconds of its
#: timed runs alone and on the team, then the decision (True: the team) once both have ``KERNEL_TEAM_PROBES`` runs
_probes: dict[tuple[Any, ...], tuple[list[None], list[float], list[float]] | bool] = {}

#: a decided call's watch (:func:`_watch`): its key -> the median measured for the way not taken, the taken way's
#: recent runs, and how many times the call was measured again
_watched: dict[tuple[Any, ...], list[Any]] = {}


def _measured(key: tuple[Any, ...], alone: Callable[[], None], on_team: Callable[[], None], estimated: bool) -> None:
    """Run a call ``alone`` (in the calling thread) or ``on_team``, the way that measured faster for ``key``: its
    first ``KERNEL_TEAM_PROBE_SKIP`` runs are not counted (after a pause the first calls pay for waking the CPU,
    fresh pages and caches: 2-3 times a later call's time) and go the way the estimate says (``estimated``: the
    team; a large call that belongs there is not run alone more than it must); then it runs alone and on the team
    in turn, timed, ``KERNEL_TEAM_PROBES`` times each, and from then on the way whose median was faster (the team
    only where it is below ``KERNEL_TEAM_MEASURED_SHARE`` of the time alone). Both ways must give the same result
    bit for bit, so that the choice changes only the time.

    Why: on a virtual machine a team thread woken after its CPU idled runs beside its caller on one physical
    core (the host places the woken CPU by its waker) until the host spreads them, and each call's wake-up
    lands there again: calls of 0.1-0.5 ms on one thread ran 1.4-2.6 times slower on the team in the benchmark's
    turns (docs/design.md, "The team measured"). No price per element fits every kernel there (their estimates
    ran 0.6-10 times their time), and the hand-off measured at the start is that of a team just woken.

    A decision is watched (:func:`_watch`): where the way taken runs slower, over its recent runs, than the rule
    allows against the median measured for the other way, the call is measured again (both ways, in turn), up to
    ``KERNEL_TEAM_REMEASURES`` times. Three runs a way decide on noise at times (forward sweep 56's fsweep-12, 0.23 ms
    alone, went to the team in two processes of five, where its turns then took 0.21-0.49 ms)."""
    state = _probes.get(key)
    if state is True or state is False:
        watch = _watched.get(key)
        if watch is None:
            (on_team if state else alone)()
            return
        start = time.perf_counter()
        (on_team if state else alone)()
        _watch(key, state, watch, time.perf_counter() - start)
        return
    if state is None:
        if len(_probes) >= _PROBES_KEPT:
            _probes.clear()
            _watched.clear()
        state = _probes.setdefault(key, ([], [], []))  # two threads on a new key share one record
        if isinstance(state, bool):
            (on_team if state else alone)()
            return
    skipped, alone_times, team_times = state
    if len(skipped) < _tuning.KERNEL_TEAM_PROBE_SKIP:  # its first runs: the estimate's way, not counted
        skipped.append(None)
        (on_team if estimated else alone)()
        return
    teamed = len(team_times) < len(alone_times)
    start = time.perf_counter()
    (on_team if teamed else alone)()
    (team_times if teamed else alone_times).append(time.perf_counter() - start)
    if min(len(team_times), len(alone_times)) >= _tuning.KERNEL_TEAM_PROBES:  # (two threads may add a run more)
        team_median, alone_median = statistics.median(team_times), statistics.median(alone_times)
        decision = team_median < _tuning.KERNEL_TEAM_MEASURED_SHARE * alone_median
        earlier = _watched.get(key)
        _watched[key] = [alone_median if decision else team_median, [], 0 if earlier is None else earlier[2]]
        _probes[key] = decision


def _watch(key: tuple[Any, ...], decision: bool, watch: list[Any], seconds: float) -> None:
    """One more run of a decided call (:func:`_measured`), of ``seconds``, on the team (``decision``) or alone.
    Every ``KERNEL_TEAM_WATCH`` runs (doubled after each new measurement) the median of those is set against the
    median measured for the other way: a team run slower than the time alone, or a run alone that the team's time
    beats by the rule's share twice over (``KERNEL_TEAM_MEASURED_SHARE`` squared: a margin both ways, so that a call
    near the rule's line is not measured over and over), and the call is measured again, both ways in turn, without
    the uncounted runs; at most ``KERNEL_TEAM_REMEASURES`` times. Both ways give the same bits, so only the time
    changes."""
    other, recent, again = watch
    recent.append(seconds)
    if len(recent) < _tuning.KERNEL_TEAM_WATCH << again:
        return
    mine = statistics.median(recent)
    recent.clear()
    share = _tuning.KERNEL_TEAM_MEASURED_SHARE
    wrong = mine > other if decision else other < share * share * mine
    if wrong and again < _tuning.KERNEL_TEAM_REMEASURES:
        watch[2] = again + 1
        _probes[key] = ([None] * _tuning.KERNEL_TEAM_PROBE_SKIP, [], [])


_PROBES_KEPT = 4096  # calls measured before the record starts again (a process of many distinct layers)


_handoff: float | None = None  # handoff_seconds(), once measured
_HANDOFF_WARM, _HANDOFF_SAMPLES = 3, 25  # handoff_seconds' calls left out (waking new threads), and those timed


def handoff_seconds() -> float:
    """What handing a kernel call to the team costs on this machine: the lower quartile of the wall times of
    calls of nothing cut into ranges and run by the team's threads alone (waking them, handing out the ranges,
    waiting for the last; the caller, who takes ranges too in a real call, only waits here, so that its own
    quick ranges do not hide the team's wake-up, which a real call pays), measured once per process (about
    2 ms) at the first kernel call big enough to ask, and kept between 2 us and 1 ms.

    The first calls, which wake threads that were just started, are left out, and a quartile rather than the
    median is taken: on a virtual machine the hypervisor stalls whole bursts of wake-ups now and then, and a
    median of ten calls gave 44 to 340 us in ten processes of the same machine (so each process drew its
    own threshold for the team, :func:`kernel_team_min_work`; docs/design.md)."""
    global _handoff
    if _handoff is None and member():  # a team thread waiting on the others could wait on itself: not measured
        return 1e-3
    if _handoff is None:
        count = threads()

        def nothing(bound: tuple[int, int]) -> None:
            return None

        times = []
        for _ in range(_HANDOFF_WARM + _HANDOFF_SAMPLES):
            job = _Job(nothing, [(i, i + 1) for i in range(count * _tuning.KERNEL_RANGES_PER_THREAD)])
            start = time.perf_counter()
            if not _team_call(job, count - 1, caller_takes=False):  # the threads a real call wakes
                times = [1e-3] * (_HANDOFF_WARM + 4)  # no team thread could be started: not worth asking for
                break
            times.append(time.perf_counter() - start)
        quartile = statistics.quantiles(times[_HANDOFF_WARM:], n=4)[0]
        _handoff = min(max(quartile, 2e-6), 1e-3)
    return _handoff


def kernel_team_min_work() -> float:
    """The least work (elements) a kernel call needs to go to the team: ``_tuning``'s cost model of the team
    (``KERNEL_TEAM_PAYBACK`` hand-offs of :func:`handoff_seconds` at ``KERNEL_ELEMENT_SECONDS`` an element)."""
    return _tuning.KERNEL_TEAM_PAYBACK * handoff_seconds() / _tuning.KERNEL_ELEMENT_SECONDS


def _before_fork() -> None:
    compiler = _numba_compiler_lock()
    if compiler is not None:
        compiler.acquire()
    _lock.acquire()
    control = _control_lock()  # after _lock, the order of a run (which changes BLAS's count holding _lock)
    if control is not None:
        control.acquire()


def _after_fork_in_parent() -> None:
    control = _control_lock()
    if control is not None:
        control.release()
    _lock.release()
    compiler = _numba_compiler_lock()
    if compiler is not None:
        compiler.release()


def _after_fork_in_child() -> None:  # pragma: no cover - runs in a forked child (tests/test_faults.py)
    global _lock, _wake, _queue, _workers, _blas_limiter, _warmed, _asleep, _kept_off, _free_cpus
    limiter, release = _blas_limiter, _blas_release
    _warmed = threading.local()  # the child's OpenBLAS state is a copy: warmed again, on its first product
    _lock = threading.Lock()
    _wake = threading.Condition(_lock)
    _queue, _workers, _blas_limiter = collections.deque(), [], None
    _asleep, _kept_off, _free_cpus = set(), {}, frozenset()  # the parent's team threads are not the child's
    _default_threads.cache_clear()  # the child may run on other CPUs
    compiler = _numba_compiler_lock()
    try:
        if compiler is not None:
            compiler.release()
        control = _control_lock()  # taken before the fork, by the thread that is the child's
        if control is not None:
            control.release()
        if limiter is not None:  # forked while a chunk team had BLAS on one thread: the child gets it back
            held = holds_blas_control()  # this thread's own, before the restore (a limit of the caller's)
            _set_counts(limiter)  # a limiting thread other than this one is gone: the restore takes the control
            if release is threading.current_thread() or not held:
                release_blas_control()
    except Exception:  # a fork handler must not fail the child; the team works without these
        pass


def _numba_compiler_lock() -> Any:
    """numba's compiler lock when numba is loaded (a fork while another thread compiles would leave it held
    in the child); None otherwise."""
    if "numba.core.compiler_lock" not in sys.modules:
        return None
    return sys.modules["numba.core.compiler_lock"].global_compiler_lock


# Registered after `logging`'s own fork handlers (imported above), so that this one runs before them: Python runs the
# `before` handlers in the reverse order of registration. numba's compiler logs while it holds its compiler lock,
# so the compiler lock must be taken before logging's module lock; the other order, where logging was first
# imported after this module (numba imports it), left a fork waiting for a compiling thread that waited for it.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
