"""Buffers the compiled path reuses from call to call, and partial sums a bin of work on a team.

Each thread's buffers belong to that thread (a :class:`threading.local`): when the thread ends, its buffers go
with it, so a server that handles each request on a new thread runs at constant memory. A weak set lists the
live threads' buffers for :func:`drop_workspaces`; a forked child keeps only its own thread's.

The slots: 0 the column buffer (Winograd's transformed input; a box's columns), 1 staged rows (pixel path), 2
zero-padded planes (im2col; channel-minor for the boxes), 3 grouped matrices of x or of the output gradient (a
box's rows of the weight gradient's other operand), 4 and 5 a forward convolution's product and its next
channel block's (4: Winograd's products, the boxes' pixel-major output, and a transposed call's channels-first
output before its copy into a channels-last result: the direct sum's and ``jit_gemm``'s, which the team's threads
write while the calling thread holds it; 5: the boxes' tap-major weight), 6 the
pixel path's weight in (C_in, K, C_out) order (Winograd's transformed kernel; the boxes' weight cuts), 7 the
boxes' pixel-major copy of the weight gradient's other operand. ``jit_phases`` (:mod:`.phases`): 2 its
zero-padded channels-last x and 4 a channels-first call's channels-last output, held by the calling thread; 0 a
piece's im2col and 1 its product before the copy into the output, in whichever thread runs the piece. The
pixel path's grouped block writes, channels-first: 1 x's channels-last copy and 4 the channels-last output; a
channels-last 1x1 input's product before its transposing copy: 4. ``jit_blocked`` (:mod:`.blocked`): 2 a
channels-first x's channels-last copy. A function
holds a slot only while no callee uses the same one; a buffer over ``_tuning.CHUNK_BYTES`` is never kept
(:func:`scratch`).
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from typing import Any

import numpy as np

from ... import _tuning
from . import transpose


class _Buffers(dict[int, np.ndarray]):
    """One thread's buffers by slot (a dict subclass, so that the weak set below can refer to it)."""

    __hash__ = object.__hash__  # type: ignore[assignment]  # by identity, for the weak set

    def __init__(self) -> None:
        super().__init__()
        self.owner = threading.get_ident()


_local = threading.local()
_every_thread: weakref.WeakSet[_Buffers] = weakref.WeakSet()  # the live threads' buffers, for drop_workspaces
_every_thread_lock = threading.Lock()


def workspace(shape: tuple[int, ...], dtype: Any, slot: int = 0) -> np.ndarray:
    """A buffer of ``shape``, reused from call to call (per thread and slot, grown when needed, at most
    about ``_tuning.CHUNK_BYTES``): a fresh buffer of tens of MiB costs page faults on every call. Each slot
    holds one buffer at a time, and nothing returned to a caller ever lives in one."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = _Buffers()
        with _every_thread_lock:
            _every_thread.add(buffers)
    buffer = buffers.get(slot)
    if buffer is None or buffer.nbytes < nbytes:
        buffers.pop(slot, None)  # the old buffer is freed before the new one is made
        buffer = buffers[slot] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return np.ndarray(shape, dtype, buffer)  # a view of the buffer's first nbytes (one call, not three)


def scratch(shape: tuple[int, ...], dtype: Any, slot: int) -> np.ndarray:
    """A temporary of ``shape``: this thread's buffer ``slot`` when it fits ``_tuning.CHUNK_BYTES``, else a
    fresh array (so that no buffer kept between calls outgrows the chunks)."""
    if math.prod(shape) * np.dtype(dtype).itemsize > _tuning.CHUNK_BYTES:
        return np.empty(shape, dtype=dtype)
    return workspace(shape, dtype, slot)


def zero_border(buffer: np.ndarray, inner: tuple[slice, ...]) -> None:
    """Zeros in every element of ``buffer`` outside ``inner`` (a slice an axis from the first, each ``slice(a, b)``
    with ``0 <= a``, ``0 <= b`` and a step of 1 or none, or ``slice(None)``; the axes past them whole), the part a
    copy fills next: a padded plane's border, a slab an axis and side, instead of the whole buffer (a (64, 35, 35,
    64) float32 buffer of a 32 x 32 map padded by one: 0.70 ms to fill, 0.17 for its border). Elements in more than
    one slab (the corners) are zeroed more than once."""
    for axis, part in enumerate(inner):
        start, stop = part.start or 0, buffer.shape[axis] if part.stop is None else part.stop
        if start < 0 or stop < 0 or part.step not in (None, 1):
            raise ValueError(f"inner: expected slices from non-negative starts to non-negative stops; received {part}")
        if start > 0:
            buffer[(slice(None),) * axis + (slice(0, start),)] = 0
        if stop < buffer.shape[axis]:
            buffer[(slice(None),) * axis + (slice(stop, None),)] = 0


def row_length(count: int, itemsize: int) -> int:
    """The elements to allocate for each row of a matrix of ``count`` columns that BLAS reads as a product's
    right-hand operand: ``count``, or a little more where the rows would be a multiple of
    ``_tuning.ROW_ALIAS_BYTES`` apart (cache-set aliasing while BLAS packs the operand)."""
    if count > 0 and (count * itemsize) % _tuning.ROW_ALIAS_BYTES == 0:
        return count + max(1, _tuning.ROW_ALIAS_PAD // itemsize)
    return count


def contiguous(a: np.ndarray, slot: int) -> np.ndarray:
    """``a`` as a C-contiguous array: ``a`` itself when it is one, else a copy in this thread's buffer ``slot``
    when it fits ``_tuning.CHUNK_BYTES`` (a fresh array above the allocator's mapping threshold, 128 KiB,
    costs a mapping, page faults and an unmapping on every call, which dominated small calls), else a fresh
    copy (a larger one is not kept between calls); ``a`` must not lie in that slot's buffer. The copy lives until
    the slot is used again in this thread.
    A copy that transposes (a channels-last array as its channels-first matrix, channels-first planes as
    pixel-major ones) runs in tiles (:func:`.transpose.copy`: NumPy's own reads the source a row apart for every
    element)."""
    if a.flags.c_contiguous:
        return a
    buffer = scratch(a.shape, a.dtype, slot)
    transpose.assign(buffer, a)
    return buffer


def staged(a: np.ndarray) -> bool:
    """Whether a channels-last ``a`` is copied channels-first for a direct sum (:func:`channels_first`): where one
    sample of it (the direct kernels' jobs run a sample at a time) is ``TRANSPOSE_TILES_MIN_BYTES`` or more. A
    kernel that fills or writes each channel's plane of a channels-last array reads or writes it a channel count
    apart; on a large sample each channel streams the whole sample through the cache. Below the threshold those
    accesses stay in the cache, and the copies measured slower ((16, 16, 16, 512) -> 16, 0.5 MiB a sample: 10.2
    against 13.0 ms)."""
    return a.shape[0] > 0 and stages(a.nbytes // a.shape[0])


def stages(sample_bytes: float) -> bool:
    """:func:`staged`'s rule on the bytes of one sample (the cost model asks it of its estimates)."""
    return sample_bytes >= _tuning.TRANSPOSE_TILES_MIN_BYTES


def channels_first(a: np.ndarray, slot: int) -> np.ndarray:
    """A channels-last ``a (N, *sp, C)`` as channels-first ``(N, C, *sp)``: a C-contiguous copy in this thread's
    buffer ``slot`` (in tiles: :func:`contiguous`) where it is :func:`staged`, else a view."""
    view = a.transpose(0, a.ndim - 1, *range(1, a.ndim - 1))  # np.moveaxis(a, -1, 1), without its checks
    return contiguous(view, slot) if staged(a) else view


def drop_workspaces() -> None:
    """Forget every thread's reusable buffers (the memory is freed once no call is using it)."""
    with _every_thread_lock:
        for buffers in list(_every_thread):
            buffers.clear()


def _after_fork_in_child() -> None:  # pragma: no cover - runs in a forked child (tests/test_faults.py)
    global _every_thread_lock
    _every_thread_lock = threading.Lock()
    me = threading.get_ident()
    for buffers in list(_every_thread):  # the other threads did not survive the fork
        if buffers.owner != me:
            buffers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Partials:
    """Partial sums of an accumulated result (a weight gradient) on a team, one a bin of the work, added up in
    the bins' order at the end. A bin is a fixed set of pieces (:func:`.schedule.each_dealt`, or a kernel's
    range) run in order by one thread at a time, so the sums and their order are the same on every call,
    whichever thread runs which bin: the gradient is reproducible to the bit. (One partial a thread held
    whichever pieces that thread happened to take from the team's queue, and a weight gradient changed in its
    last bits from call to call.) Bin 0 sums into the total itself; the others are allocated when first asked."""

    def __init__(self, total: np.ndarray) -> None:
        self.total = total
        self.parts: dict[int, np.ndarray] = {0: total}

    def target(self, which: int) -> np.ndarray:
        """Bin ``which``'s partial (asked by the one thread running that bin)."""
        part = self.parts.get(which)
        if part is None:
            part = self.parts[which] = np.zeros_like(self.total)
        return part

    def sum(self) -> np.ndarray:
        for which in sorted(self.parts)[1:]:
            self.total += self.parts[which]
        return self.total
