"""This machine's own matrix-product rate, for the cost model: measured once on a machine, remembered on disk.

The cost model prices every algorithm's products at a rate and its compiled loops at rates of their own
(:mod:`tconv._tuning`). Fitted on one machine, the product rate misleads on another: BLAS's speed follows the
vector width and the cores (a float32 product on one thread ran at about 100 GFLOP/s on the AVX-512 machine the
model was fitted on, 31-35 on an AMD EPYC with AVX2), while the compiled loops moved far less between the two (a
replay that slowed their rates as well did worse, docs/design.md). So the model prices products at
``GEMM_PROBE_SHARE`` times a rate measured here (:func:`gemm_rate`): one product of a typical layer's shape on
one BLAS thread, the way the compiled path runs its products (each thread of tconv's team runs its own).

The measurement (:func:`probe_rate`) takes under 0.1 s, once per machine: it is kept in a small JSON file under
the user's cache directory (``$XDG_CACHE_HOME/tconv``, else ``~/.cache/tconv``), keyed by the CPU, the CPU count
NumPy's version and its BLAS, so that every process on a machine plans alike (the same algorithm, hence the same
bits, for the same call) and a new one does not pay the measurement. Where no such file can be read or written
(a read-only home), it is measured once per process. A measurement that cannot be trusted is never kept on disk:
where BLAS could not be held to one thread (another thread holds its control, :mod:`.team`), the model falls
back on ``GEMM_RATE``.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np

from ... import _tuning
from . import team

__all__ = ["cache_file", "describe", "gemm_rate", "machine_key", "probe_rate"]

#: The probe's product: (rows, inner, columns).
PROBE_SHAPE = (128, 576, 1024)

#: Rates outside this range (flop/s) are not believed, from a file or a measurement.
_PLAUSIBLE = (1e8, 1e14)

_lock = threading.Lock()  # one measurement at a time; guards _probe's first setting
_UNSET = object()
_probe: object = _UNSET  # the probe's rate this process uses, once known (None: not trusted)


def _after_fork_in_child() -> None:  # pragma: no cover - runs in a forked child (tests/test_machine.py)
    """A child forked while another thread measured holds a copy of the lock taken: a new one, unheld."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def gemm_rate() -> float:
    """The cost model's float32 product rate in flop/s: ``GEMM_PROBE_SHARE`` times this machine's probe
    (:func:`probe_rate`), or ``GEMM_RATE`` where ``MEASURED_GEMM_RATE`` is off or the probe is not trusted.

    Examples
    --------
    >>> from tconv import _tuning
    >>> from tconv.implementations.compiled import machine
    >>> rate = machine.gemm_rate()
    >>> rate == _tuning.GEMM_RATE or rate == _tuning.GEMM_PROBE_SHARE * machine.probe_rate()
    True
    """
    if not _tuning.MEASURED_GEMM_RATE:
        return _tuning.GEMM_RATE
    probe = probe_rate()
    return _tuning.GEMM_RATE if probe is None else _tuning.GEMM_PROBE_SHARE * probe


def describe() -> str:
    """One line on the rate the cost model prices products at, and where it came from (for ``tconv bench``)."""
    rate = gemm_rate() / 1e9
    if not _tuning.MEASURED_GEMM_RATE:
        return f"{rate:.1f} GFLOP/s (GEMM_RATE; the measured rate is off)"
    probe = probe_rate()
    if probe is None:
        return f"{rate:.1f} GFLOP/s (GEMM_RATE: BLAS could not be held to one thread to measure)"
    share = _tuning.GEMM_PROBE_SHARE
    return f"{rate:.1f} GFLOP/s ({share:g} x {probe / 1e9:.1f} measured on one thread; kept in {cache_file()})"


def probe_rate() -> float | None:
    """This machine's one-thread float32 rate on :data:`PROBE_SHAPE`, in flop/s: from the cache file, else
    measured (and written there where it was measured on one BLAS thread); None where it could not be measured on
    one thread (or without threadpoolctl, which holds it there). Asked once per process; thread-safe."""
    global _probe
    rate = _probe  # read once: the cost model asks on every estimate
    if rate is _UNSET:
        with _lock:
            if _probe is _UNSET:
                _probe = _remembered_or_measured(machine_key())
            rate = _probe
    return rate  # type: ignore[return-value]  # a float or None once set


@functools.cache
def machine_key() -> str:
    """What the probe's rate depends on: the CPU's model and count, NumPy's version and its BLAS (name, version
    and the kernels it chose for this CPU)."""
    blas = team.blas_description() or "BLAS unknown"
    return f"{_cpu_model()} x{os.cpu_count()} | numpy {np.__version__} | {blas}"


def cache_file() -> Path:
    """Where the probe's rates are kept: ``tconv/machine.json`` in ``$XDG_CACHE_HOME``, else ``~/.cache``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "tconv" / "machine.json"


def _cpu_model() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``; else what :mod:`platform` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _plausible(rate: object) -> bool:
    return isinstance(rate, float) and _PLAUSIBLE[0] < rate < _PLAUSIBLE[1]


def _read() -> dict[str, float]:
    """The cache file's rates (empty where it is missing, unreadable or not what this module writes)."""
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    rates = data.get("gemm_probe_flops") if isinstance(data, dict) else None
    return {k: v for k, v in rates.items() if isinstance(k, str) and _plausible(v)} if isinstance(rates, dict) else {}


def _remembered_or_measured(key: str) -> float | None:
    rate = _read().get(key)
    if rate is not None:
        return rate
    rate = _measure()
    if rate is not None:
        _write(key, rate)
    return rate


def _write(key: str, rate: float) -> None:
    """Add ``key``'s rate to the cache file (written whole to a temporary file, then renamed, so that a reader
    never sees half of it); nothing where it cannot be written."""
    path = cache_file()
    rates = {**_read(), key: rate}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps({"gemm_probe_flops": rates}, indent=1), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass


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
