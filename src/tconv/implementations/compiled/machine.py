"""This machine's own matrix-product rate, for the cost model: measured once on a machine, remembered on disk.

The cost model prices every algorithm's products at a rate and its compiled loops at rates of their own
(:mod:`tconv._tuning`). Fitted on one machine, the product rate misleads on another: BLAS's speed follows the
vector width and the cores (a float32 product ran at about 100 GFLOP/s a thread on the AVX-512 machine the model
was fitted on, 31-35 on an AMD EPYC with AVX2), while the compiled loops moved far less between the two (a replay
that slowed their rates as well did worse, docs/design.md). So the model prices products at ``GEMM_PROBE_SHARE``
times a rate measured here, never above ``GEMM_RATE`` (:func:`gemm_rate`; the replays support lowering the rate on
a slower machine, and not raising it on a faster one: on an AVX-512 Xeon whose probe reads 150 GFLOP/s, rates above
the cap chose worse, docs/design.md): one product of a typical layer's shape on one BLAS
thread, the way the compiled path runs its products (each thread of tconv's team runs its own).

The measurement (:func:`probe_rate`) takes about 0.07 s here, once per machine. It is kept in a small JSON file
under the user's cache directory (``$XDG_CACHE_HOME/tconv``, else ``~/.cache/tconv``; :func:`cache_file`), keyed by
the probe, the CPU, the CPU count, NumPy's version and its BLAS (:func:`machine_key`), so that the processes on a
machine plan alike and a new one does not pay the measurement. Processes that start together take a lock on the
file (where the system has ``fcntl``), so one measures and the others read its rate. Where nothing can be written
(no absolute home or cache directory, a read-only one) it is measured once per process.

A measurement that cannot be trusted is never kept: where BLAS could not be held to one thread (another thread
holds threadpoolctl's control of it, :mod:`.team`), the process keeps ``GEMM_RATE``. ``TCONV_GEMM_RATE=<flop/s>``
in the environment pins the rate and turns the measurement off (read by :mod:`tconv._tuning` at import): for
plans that must not depend on the machine (the test suite's subprocesses, workers on several machines), together
with ``TCONV_PRICED_VECTOR_BYTES``, which pins the vector width the cost model counts.

The module also says which vectors the register blocks are compiled with (:func:`vector_bytes`: 512 bits where
numba compiles for AVX-512) and how the cost model prices them (:func:`priced_vector_bytes`, :func:`vector_rate`,
:func:`vector_speed`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ... import _tuning
from . import kernels, team

__all__ = [
    "PROBE",
    "cache_file",
    "describe",
    "gemm_rate",
    "machine_key",
    "priced_vector_bytes",
    "probe_rate",
    "vector_bytes",
    "vector_rate",
    "vector_speed",
]

#: The probe's product, (rows, inner, columns), and its version: part of the cache key, so that a changed probe
#: measures again.
PROBE_SHAPE = (128, 576, 1024)
PROBE = "probe 1: float32 128x576 @ 576x1024, one BLAS thread, fastest of 5-20"

#: Rates outside this range (flop/s) are not believed, from a file or a measurement.
_PLAUSIBLE = (1e8, 1e14)

#: Seconds a process waits for another's lock on the cache file before it measures on its own.
_FILE_LOCK_SECONDS = 2.0

_lock = threading.Lock()  # one measurement at a time in this process; guards _probe's first setting
_UNSET = object()
_probe: object = _UNSET  # the probe's rate this process uses, once known (None: not trusted)
_vector_bytes: int | None = None  # vector_bytes() once numba has answered
_held_descriptor: int | None = None  # the cache file's lock file while this process holds or waits for its lock


def _after_fork_in_child() -> None:  # pragma: no cover - runs in a forked child (tests/test_machine.py)
    """A child forked while another thread measured holds a copy of the lock taken: a new one, unheld; and a copy
    of the cache file's descriptor, whose lock (``flock``: the open file's) would stay held while the child lives,
    after the parent has released it: closed."""
    global _lock, _held_descriptor
    _lock = threading.Lock()
    if _held_descriptor is not None:
        with contextlib.suppress(OSError):
            os.close(_held_descriptor)
        _held_descriptor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def gemm_rate() -> float:
    """The cost model's float32 product rate in flop/s: ``GEMM_PROBE_SHARE`` times this machine's probe
    (:func:`probe_rate`), at most ``GEMM_RATE``; ``GEMM_RATE`` itself where ``MEASURED_GEMM_RATE`` is off or the
    probe is not trusted."""
    if not _tuning.MEASURED_GEMM_RATE:
        return _tuning.GEMM_RATE
    probe = probe_rate()
    return _tuning.GEMM_RATE if probe is None else min(_tuning.GEMM_RATE, _tuning.GEMM_PROBE_SHARE * probe)


def vector_bytes() -> int:
    """The bytes of the widest SIMD vectors the compiled kernels are written with (:func:`.simd.widest`):
    ``WIDE_VECTOR_BYTES`` (512 bits) where numba compiles for a CPU with AVX-512 F, else ``VECTOR_BYTES`` (256). It
    is read from the features numba's code generator compiles for (``NUMBA_CPU_FEATURES`` where set;
    ``NUMBA_CPU_NAME=generic`` or ``NUMBA_ENABLE_AVX=0``: none), the ones in the compiled code's cache key.
    ``VECTOR_BYTES`` where numba cannot run (missing, or ``TCONV_NO_JIT``); that answer is not kept, so that a
    process that loads numba later asks again."""
    global _vector_bytes
    if _vector_bytes is None:
        numba = kernels.numba_module()
        if numba is None:
            return _tuning.VECTOR_BYTES
        from numba.core.registry import cpu_target

        features = str(cpu_target.target_context.codegen().magic_tuple()[2]).split(",")
        _vector_bytes = _tuning.WIDE_VECTOR_BYTES if "+avx512f" in features else _tuning.VECTOR_BYTES
    return _vector_bytes


def priced_vector_bytes() -> int:
    """The vector width the cost model counts: ``PRICED_VECTOR_BYTES`` where set, else the kernels' own
    (:func:`vector_bytes`)."""
    return _tuning.PRICED_VECTOR_BYTES or vector_bytes()


def vector_speed() -> float:
    """The compiled kernels' multiply-adds a second at the priced width (:func:`priced_vector_bytes`) as a multiple of
    those at ``VECTOR_BYTES``, at which their rates were fitted: ``2 x WIDE_VECTOR_SHARE`` with 512-bit vectors,
    else 1. A rate counted in vectors is multiplied by ``vector_speed() * VECTOR_BYTES / priced_vector_bytes()``
    (:func:`vector_rate`)."""
    if priced_vector_bytes() == _tuning.WIDE_VECTOR_BYTES:
        return _tuning.WIDE_VECTOR_SHARE * _tuning.WIDE_VECTOR_BYTES / _tuning.VECTOR_BYTES
    return 1.0


def vector_rate(rate: float) -> float:
    """A rate in vector multiply-adds a second, fitted at ``VECTOR_BYTES``, at the priced width (``rate x
    WIDE_VECTOR_SHARE`` with 512-bit vectors)."""
    return rate * vector_speed() * _tuning.VECTOR_BYTES / priced_vector_bytes()


def describe() -> str:
    """One line on the rate the cost model prices products at, and where it came from (for ``tconv bench``)."""
    rate = gemm_rate() / 1e9
    if not _tuning.MEASURED_GEMM_RATE:
        return f"{rate:.1f} GFLOP/s (GEMM_RATE, pinned: the measured rate is off)"
    probe = probe_rate()
    if probe is None:
        return f"{rate:.1f} GFLOP/s (GEMM_RATE: this process could not measure the machine's rate on one BLAS thread)"
    path = cache_file()
    kept = f"kept in {path}" if path is not None and machine_key() in _read(path) else "not kept on disk"
    share = _tuning.GEMM_PROBE_SHARE
    return f"{rate:.1f} GFLOP/s ({share:g} x {probe / 1e9:.1f} measured on one thread, at most GEMM_RATE; {kept})"


def probe_rate() -> float | None:
    """This machine's one-thread float32 rate on :data:`PROBE_SHAPE`, in flop/s: from the cache file, else
    measured (and written there); None where it could not be measured on one thread (or without threadpoolctl,
    which holds BLAS there). Asked once per process; thread-safe; never raises an ``Exception``."""
    global _probe
    rate = _probe  # read once: the cost model asks on every estimate
    if rate is _UNSET:
        with _lock:
            if _probe is _UNSET:
                try:
                    _probe = _remembered_or_measured()
                except Exception:  # a hint for the cost model: never an error in the user's call
                    _probe = None
            rate = _probe
    return rate  # type: ignore[return-value]  # a float or None once set


@functools.cache
def machine_key() -> str:
    """What the probe's rate depends on: the probe, the CPU's model and count, NumPy's version and its BLAS."""
    return f"{PROBE} | {_cpu_model()} x{os.cpu_count()} | numpy {np.__version__} | {_numpy_blas()}"


def cache_file() -> Path | None:
    """Where the probe's rates are kept: ``tconv/machine.json`` in ``$XDG_CACHE_HOME`` (where it is an absolute
    path), else in ``~/.cache``; None where neither is usable (no home, a relative one, or the root directory:
    nothing is written)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "tconv" / "machine.json"
    home = os.path.expanduser("~")  # "~" itself without a home; "/" with HOME set empty
    usable = os.path.isabs(home) and Path(home) != Path(home).parent
    return Path(home) / ".cache" / "tconv" / "machine.json" if usable else None


def _cpu_model() -> str:
    """The CPU's model as Linux's ``/proc/cpuinfo`` names it (x86's model name; ARM's implementer and part), with
    the architecture; the architecture alone elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "CPU implementer", "CPU part", "Hardware") and name not in fields:
                    fields[name] = value.strip()
    except OSError:
        pass
    described = ", ".join(f"{name} {value}" for name, value in fields.items() if name != "model name")
    return " ".join(part for part in (fields.get("model name", ""), described, platform.machine()) if part)


def _numpy_blas() -> str:
    """NumPy's own BLAS, as its build configuration names it (not whichever other BLAS the process has loaded);
    threadpoolctl's list where NumPy does not say."""
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '?')}"
    except Exception:  # an older NumPy, another build
        return team.blas_description() or "BLAS unknown"


def _plausible(rate: object) -> bool:
    return isinstance(rate, (int, float)) and not isinstance(rate, bool) and _PLAUSIBLE[0] < rate < _PLAUSIBLE[1]


def _load(path: Path) -> dict[str, Any]:
    """The cache file's whole content (empty where it is missing, unreadable or not a JSON object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _read(path: Path) -> dict[str, float]:
    """The cache file's plausible rates by machine key."""
    rates = _load(path).get("gemm_probe_flops")
    if not isinstance(rates, dict):
        return {}
    return {key: float(rate) for key, rate in rates.items() if isinstance(key, str) and _plausible(rate)}


def _remembered_or_measured() -> float | None:
    """The cache file's rate for this machine, else a measurement (written there where it is trusted), under the
    file's lock so that processes starting together measure once."""
    key, path = machine_key(), cache_file()
    if path is None:
        return _measure()
    rate = _read(path).get(key)  # the usual case: no lock to wait for
    if rate is not None:
        return rate
    with _file_locked(path):  # read again: another process may have measured while this one waited
        rate = _read(path).get(key)
        if rate is None:
            rate = _measure()
            if rate is not None:
                _write(path, key, rate)
    return rate


@contextlib.contextmanager
def _file_locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``'s lock file, waited for at most ``_FILE_LOCK_SECONDS``; the block runs
    unlocked where there is no ``fcntl``, the lock file cannot be opened, or the wait runs out."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except (ImportError, OSError):
        yield
        return
    global _held_descriptor
    _held_descriptor = descriptor
    try:
        end = time.monotonic() + _FILE_LOCK_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # another process holds it: wait, for a while
                if time.monotonic() > end:
                    break
                time.sleep(0.01)
            except OSError:  # no locks on this file system: go on unlocked
                break
        yield
    finally:
        _held_descriptor = None
        os.close(descriptor)  # and with it the lock


def _write(path: Path, key: str, rate: float) -> None:
    """Add ``key``'s rate to the cache file, every other entry and field kept (written whole to a new temporary
    file, then renamed over it, so that a reader never sees half of it); nothing where it cannot be written."""
    data = _load(path)
    rates = data.get("gemm_probe_flops")
    data["gemm_probe_flops"] = {**(rates if isinstance(rates, dict) else {}), key: rate}
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1)
        os.replace(temporary, path)
        temporary = None
    except OSError:
        pass
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _measure(budget: float = 0.05, repeats: int = 5) -> float | None:
    """The probe's rate in flop/s: the fastest of ``repeats`` products (more while ``budget`` seconds last, at most
    twenty) after one untimed, with BLAS held to one thread; None where it was not on one thread throughout (or
    the rate is not plausible). The fastest, because anything else running on the machine only slows a product."""
    rows, inner, columns = PROBE_SHAPE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner), dtype=np.float32)
    b = rng.standard_normal((inner, columns), dtype=np.float32)
    out = np.empty((rows, columns), dtype=np.float32)
    best = float("inf")
    with team.one_blas_thread(rows * inner * columns):
        counts = team.blas_thread_counts()
        np.matmul(a, b, out=out)
        timed = 0
        end = time.perf_counter() + budget
        while timed < repeats or (timed < 20 and time.perf_counter() < end):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
            timed += 1
        single = bool(counts) and all(count == 1 for count in counts) and counts == team.blas_thread_counts()
    rate = 2.0 * rows * inner * columns / best
    return rate if single and _plausible(rate) else None
