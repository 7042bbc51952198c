"""Buffers the compiled path reuses from call to call, and per-thread partial sums on a team."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

_local = threading.local()
_every_thread: list[dict[int, np.ndarray]] = []  # every thread's buffers, for drop_workspaces
_every_thread_lock = threading.Lock()


def workspace(shape: tuple[int, ...], dtype: Any, slot: int = 0) -> np.ndarray:
    """A buffer of ``shape``, reused from call to call (per thread and slot, grown when needed, at most
    about ``_tuning.CHUNK_BYTES``): a fresh buffer of tens of MiB costs page faults on every call. Each slot
    holds one buffer at a time, and nothing returned to a caller ever lives in one."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
        with _every_thread_lock:
            _every_thread.append(buffers)
    buffer = buffers.get(slot)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[slot] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def drop_workspaces() -> None:
    """Forget every thread's reusable buffers (the memory is freed once no call is using it)."""
    with _every_thread_lock:
        for buffers in _every_thread:
            buffers.clear()


class Partials:
    """Per-thread partial sums of an accumulated result (a weight gradient) on a team, added up at the end."""

    def __init__(self, total: np.ndarray, threads: int) -> None:
        self.total, self.threads = total, threads
        self.parts: dict[int, np.ndarray] = {}

    def target(self) -> np.ndarray:
        if self.threads == 1:
            return self.total
        ident = threading.get_ident()
        part = self.parts.get(ident)
        if part is None:
            part = self.parts[ident] = np.zeros_like(self.total)
        return part

    def sum(self) -> np.ndarray:
        for part in self.parts.values():
            self.total += part
        return self.total
