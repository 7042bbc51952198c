"""A team of threads for the compiled NumPy path: each thread runs whole chunks, product and kernel.

The plain schedule alternates two thread pools on the same cores: NumPy's BLAS threads for a
chunk's matrix product, then numba's threads for its col2im. Each hand-over costs time: the
BLAS threads spin for a while after a product, the numba threads after a kernel, and each
slows the other down (docs/design.md, "Measurements behind the planner"). The team instead gives
each thread its own chunks and runs each chunk single-threaded from the product to the last write,
like a batch-parallel framework: no hand-over, and a chunk's columns are still in the cache when its col2im reads them.

While a team runs, the BLAS libraries loaded in the process use one thread (threadpoolctl,
the same means scikit-learn uses around its own parallel loops); the previous setting is restored
when the last running team finishes. Other threads' NumPy products in that window run
single-threaded too. The team is skipped (and the plain schedule used) when threadpoolctl is
not installed, when only one thread is available, or when a call is too small for it
(:func:`tconv.implementations.compiled.schedule.team_threads`, the one function that decides).

The team's size is numba's thread count in the calling thread (``NUMBA_NUM_THREADS``,
``numba.set_num_threads``, :func:`tconv.implementations.compiled.kernels.set_threads`), the one setting
for tconv's threads.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import kernels

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
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


def size() -> int:
    """The number of threads a team would use in the calling thread (1: no team)."""
    numba = kernels.numba_module()
    if numba is None or _controller() is None:
        return 1
    return int(numba.get_num_threads())


@contextlib.contextmanager
def _blas_single_threaded() -> Iterator[None]:
    """BLAS on one thread while any team runs (counted, so overlapping teams restore it once)."""
    global _blas_users, _blas_limiter
    with _lock:
        if _blas_users == 0:
            _blas_limiter = _controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tconv")
            _pool_size = workers
        return _pool


def _after_fork() -> None:  # pragma: no cover - runs in a forked child
    global _pool, _pool_size, _blas_users, _blas_limiter, _lock
    _pool, _pool_size, _blas_users, _blas_limiter = None, 0, 0, None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def run(work: Callable[[T], None], chunks: Sequence[T], threads: int) -> None:
    """``work(chunk)`` for every chunk, on ``threads`` threads (the caller's among them), each chunk
    single-threaded throughout; the chunks are handed out in order as threads become free. Returns when
    all are done; the first error raised by any chunk is raised here (after every thread has stopped)."""
    numba = kernels.numba_module()
    assert numba is not None
    pending = iter(range(len(chunks)))
    take = threading.Lock()
    failed: list[BaseException] = []

    def serve() -> None:
        numba.set_num_threads(1)  # numba's setting is per thread: this thread's kernels run serially
        while not failed:
            with take:
                index = next(pending, None)
            if index is None:
                return
            try:
                work(chunks[index])
            except BaseException as err:  # handed to the caller below
                failed.append(err)

    caller_threads = numba.get_num_threads()
    with _blas_single_threaded():
        futures = [_executor(threads - 1).submit(serve) for _ in range(min(threads, len(chunks)) - 1)]
        try:
            serve()
        finally:
            numba.set_num_threads(caller_threads)
            for future in futures:
                future.result()
    if failed:
        raise failed[0]
