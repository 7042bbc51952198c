"""The threads of each block's engine call where Dask already runs blocks in parallel: one by default
(:func:`set_block_threads`).

Dask's threaded scheduler and ``dask.distributed``'s workers run one block per thread of their pool, so the cores
are already shared out among blocks. The engine's thread team (:func:`tconv.implementations.compiled.team.threads`,
all the CPUs by default) is one per process, shared by every calling thread, so blocks do not multiply it; but
each block still takes ranges of its kernels beside the team and runs its BLAS products on BLAS's threads, so two
Dask threads on two cores mean up to six busy threads. One engine thread per block measured as fast for the
convolutions and, for the transposed ones, faster and steadier (``benchmarks/dask_tiling.py``; docs/dask.md).

:func:`engine_threads` wraps every block (:func:`tconv.dask.tiling.run_block`): while at least one block runs in
a thread other than the main thread, tconv's team has ``set_block_threads``'s size
(:func:`tconv.implementations.compiled.kernels.set_threads`, the documented setting) and the BLAS libraries are
limited to as many threads (threadpoolctl, the means tconv's team itself uses); the first block to start sets
both; the last to finish restores the team, and the block that limited BLAS restores it (from its own
thread). Both settings are process-wide (the engine has no per-thread setting): meanwhile, tconv and NumPy
calls of other threads of the process use as many threads, and a ``set_threads`` call made during a
computation is undone by the restore. A block in the main thread (the synchronous scheduler, one
block at a time) keeps every thread; ``set_block_threads(None)`` leaves the settings alone everywhere (a graph
of fewer blocks than cores, say).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from ..implementations.compiled import kernels, machine, team

__all__ = ["block_threads", "engine_threads", "set_block_threads"]

_lock = threading.Lock()  # guards the names below
_block_threads: int | None = 1
_active = 0  # blocks running under the limit now
_saved_team: int | None = None
_blas_limiter: Any = None
_blas_release = False  # the BLAS limit took threadpoolctl's control: give it up with the restore


def set_block_threads(count: int | None) -> None:
    """The threads of each block's engine call where Dask runs blocks in parallel (default 1); ``None``: the
    engine's own settings, untouched."""
    global _block_threads
    if count is not None and (isinstance(count, bool) or int(count) != count or count < 1):
        raise ValueError(f"block threads must be a positive int or None; received {count!r}")
    _block_threads = None if count is None else int(count)


def block_threads() -> int | None:
    """:func:`set_block_threads`'s value."""
    return _block_threads


def _limit(count: int) -> bool:
    """Limit the team (counted over overlapping blocks) and, unless a running block already has, BLAS; True
    when this block owns the BLAS limit (and so must restore it, from this same thread)."""
    global _active, _saved_team, _blas_limiter, _blas_release
    # the cost model's product rate, measured (once per machine) before any block limits BLAS: a probe under a
    # block's limit of several BLAS threads is not trusted, and the process would keep GEMM_RATE
    machine.gemm_rate()
    with _lock:
        if _active == 0:
            _saved_team = team.threads()
            kernels.set_threads(count)  # first: no chunk team (which limits BLAS itself) starts from here on
        _active += 1
        # BLAS is limited by the first block, unless another thread holds threadpoolctl's control of OpenBLAS (a
        # limit from here would be ignored, and its restore, after that thread's, would write back the limited count)
        owner = _blas_limiter is None and not team.blas_controlled_elsewhere()
        if owner:
            try:
                from threadpoolctl import threadpool_limits

                _blas_release = not team.holds_blas_control()  # else this thread's own limit holds it
                _blas_limiter = threadpool_limits(limits=count, user_api="blas")
            except Exception:  # no threadpoolctl, or no BLAS it can limit: the team's size alone is set
                return False
            team.blas_held_outside(True)
        return owner


def _restore(owner: bool) -> None:
    """Undo :func:`_limit`: the team's size when the last block ends, BLAS when its owner does (the thread that
    limited it: threadpoolctl, 3.8 on, ignores other threads' changes while the thread that first changed
    OpenBLAS's count lives and keeps its control, which left NumPy on one thread after a computation whose
    first and last blocks ran in different threads), and then that thread gives the control up (kept, the main
    thread's limits, a chunk team's, were ignored while Dask's pool lived). A block still running after the owner
    has BLAS's threads back (speed, not results); a block starting then limits BLAS again and owns that limit."""
    global _active, _saved_team, _blas_limiter
    with _lock:
        _active -= 1
        if owner and _blas_limiter is not None:
            _blas_limiter.restore_original_limits()
            _blas_limiter = None
            if _blas_release:  # kept, it would leave other threads' limits ignored while this one lives
                team.release_blas_control()  # never raises
            team.blas_held_outside(False)
        if _active == 0 and _saved_team is not None:
            kernels.set_threads(_saved_team)
            _saved_team = None


@contextlib.contextmanager
def engine_threads() -> Iterator[None]:
    """Run the body (one block) with :func:`set_block_threads`'s threads when it runs in a Dask pool's thread
    (any thread but the main one); unchanged in the main thread or with ``set_block_threads(None)``."""
    count = _block_threads
    if count is None or threading.current_thread() is threading.main_thread():
        yield
        return
    owner = _limit(count)
    try:
        yield
    finally:
        _restore(owner)
