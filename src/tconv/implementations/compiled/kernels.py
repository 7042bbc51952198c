"""The compiled kernels (numba): im2col, the col2im overlap-adds (one with its products folded in), the no-overlap
gather, the direct sum.

Everything here is optional: :func:`available` is False when numba is not installed (or
``TCONV_NO_JIT=1`` is set), and the engine then uses the array-API algorithms
(:mod:`tconv.implementations.array_api`). The matrix products stay in NumPy's BLAS; the kernels only do
what NumPy does badly, the gathers and overlap-adds with short inner loops, each in one pass.

Each kernel is compiled serial and ``nogil`` and takes a range of its jobs (``start``, ``stop``; a job is an
output plane or a block of columns, computed whole by one thread), and its wrapper hands the ranges to tconv's
thread team (:func:`tconv.implementations.compiled.team.ranges`): numba's threading layer (OpenMP here) is never
started, so nothing spins between calls and ``fork`` stays safe (the reasons are in
:mod:`tconv.implementations.compiled.team`). The arithmetic and the order of every sum are those of the serial
loop, so results do not depend on how the jobs are divided.

The machine code is cached where numba finds a writable place (``NUMBA_CACHE_DIR``, ``__pycache__`` here, or the
user's cache directory); where none is (a read-only install and home), the kernels are compiled in memory, once
per process, silently (:func:`cache_location`). Nothing in numba's configuration is changed.

The module is long because each of its kernels sits next to the wrapper that lays out its flat arguments
and job ranges; splitting them apart would separate index arithmetic that must agree.

Every kernel is written for three spatial axes; 1-D and 2-D calls are padded to 3-D with unit axes
(kernel 1, stride 1, no padding; :func:`tconv.implementations.compiled.geometry.pad3`), so one compiled
kernel per dtype serves every rank up to 3. For a transposed convolution (``o = j*s + t*d - lo``) the
col2im and direct kernels are *output-stationary*: each output is summed in a register (or a phase-major
buffer, :class:`PhaseGeometry`) and written once, with the bias, into the caller's layout; no zero is ever
multiplied or added. The im2col gathers from zero-padded planes, so no window needs a border test.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Any, NamedTuple

import numpy as np

from . import team

__all__ = [
    "FASTMATH_IN_ORDER",
    "available",
    "compile_kernel",
    "flat",
    "index_arrays",
    "numba_module",
    "set_threads",
    "view",
]


@functools.cache
def numba_module() -> Any:
    """numba, imported on first use; None when it is missing or ``TCONV_NO_JIT`` is set."""
    if os.environ.get("TCONV_NO_JIT", "") not in ("", "0"):
        return None
    loaded = set(sys.modules)
    try:
        import numba
    except (ImportError, OSError) as err:
        # under a memory limit with little room, llvmlite's library (OSError) or one of numba's extensions
        # (ImportError) may fail to map: a MemoryError saying so, the half-imported packages forgotten so that a
        # later call imports them whole (else numba's package lacks the submodules that stayed in sys.modules),
        # and nothing cached; anything else is what it says (numba missing: None, cached)
        left = _memory_left()
        if left is None or left[0] >= COMPILE_HEADROOM_BYTES:
            if isinstance(err, ImportError):
                return None
            raise
        for name in set(sys.modules) - loaded:
            if name.split(".")[0] in ("numba", "llvmlite"):
                del sys.modules[name]
        raise MemoryError(
            f"numba (tconv's compiled kernels) could not be loaded with {max(left[0], 0) // 2**20} MiB left under "
            f"this process's {left[1]} soft limit (raise the limit, or make the first call before setting it): {err}"
        ) from err
    return numba


def available() -> bool:
    """Whether the compiled kernels can run (numba importable and not disabled by ``TCONV_NO_JIT``)."""
    return numba_module() is not None


# --- kernels (compiled on first use, cached on disk) -------------------------------------------

_write_phases: Any = None  # the compiled write_phases once _compiled() has run (the kernels call it by this name)


class Kernels(NamedTuple):
    """The compiled kernels, one per job (see each wrapper below for its arrays)."""

    col2im: Any
    direct: Any
    im2col: Any
    col2im_last: Any
    col2im_patches: Any
    gather: Any
    pixel_rows: Any
    pixels_direct: Any
    pointer: Any  # an array's first element's address (flat)


#: LLVM's fast-math flags without reassociation: a kernel whose loops run over a chunk of varying length (its
#: vectorised body and scalar tail falling on different elements) then computes each element the same way
#: however a call is chunked
FASTMATH_IN_ORDER = frozenset({"nnan", "ninf", "nsz", "arcp", "contract", "afn"})


def _jit(numba: Any, function: Any, fastmath: bool | frozenset[str] = True, error_model: str = "python") -> Any:
    """``function`` compiled serial and ``nogil`` (the team runs it in parallel, :mod:`.team`), its machine code
    cached where numba finds a writable place, else kept in memory only (:func:`cache_location`); each new
    specialization compiled or loaded away from the main thread (:func:`_compile_off_the_main_thread`)."""
    options = {
        "parallel": False,
        "fastmath": set(fastmath) if isinstance(fastmath, frozenset) else fastmath,
        "nogil": True,
        "error_model": error_model,
    }
    try:
        dispatcher = numba.njit(cache=True, **options)(function)
    except RuntimeError as err:  # "cannot cache function ...: no locator available": a read-only install
        if "cannot cache" not in str(err):
            raise
        dispatcher = numba.njit(cache=False, **options)(function)
    return _compile_off_the_main_thread(dispatcher)


def compile_kernel(function: Any, fastmath: bool | frozenset[str] = True, error_model: str = "python") -> Any:
    """``function`` compiled as every kernel here is (serial, ``nogil``, cached; :func:`_jit`): for the kernels
    that live next to their own geometry in another module (:mod:`.direct_conv`, :mod:`.winograd`,
    :mod:`.optimizer`); ``fastmath`` and ``error_model`` as numba takes them (:data:`FASTMATH_IN_ORDER`: no
    reassociation; ``"numpy"``: a division by zero gives inf or NaN instead of raising)."""
    numba = numba_module()
    assert numba is not None  # the callers run only where available()
    return _jit(numba, function, fastmath, error_model)


#: address space a compile (or a load from the cache) is given at least. Measured on a cold cache, capping
#: ``RLIMIT_AS`` at the process's size plus E MiB just before a call: LLVM aborted the process (``std::bad_alloc``)
#: at E = 16 and 48 with LLVM already started, and failed at up to 150 on the process's first compile; 200 passed
#: (a new thread's malloc arena alone reserves 64-128 MiB)
COMPILE_HEADROOM_BYTES = 256 * 2**20


def _memory_left() -> tuple[int, str] | None:
    """The bytes this process may still map under its ``RLIMIT_AS`` or ``RLIMIT_DATA`` soft limit, whichever
    leaves fewer, with the limit's name; None where neither is set or where the process cannot tell (no
    ``resource`` module, no ``/proc``)."""
    try:
        import resource

        limits = [
            (name, resource.getrlimit(getattr(resource, name))[0], field)
            for name, field in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData"))
            if hasattr(resource, name)
        ]
        limits = [(name, soft, field) for name, soft, field in limits if soft != resource.RLIM_INFINITY]
        if not limits:
            return None
        with open("/proc/self/status", encoding="ascii") as status:
            used = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in status if line.startswith("Vm")}
        left = [(soft - used[field], name) for name, soft, field in limits if field in used]
    except (ImportError, OSError, ValueError, IndexError):
        return None
    return min(left) if left else None


def _check_room_to_compile() -> None:
    """``MemoryError`` where the process's memory limit leaves too little room to compile a kernel.

    LLVM ends the whole process (``std::bad_alloc``, then ``abort``) when an allocation fails inside a compile, and
    no caller can catch that: under a tight ``ulimit -v`` a first call could kill the program. The check is made
    only when a kernel is about to be compiled or loaded, once per signature and process."""
    left = _memory_left()
    if left is not None and left[0] < COMPILE_HEADROOM_BYTES:
        room, name = left
        raise MemoryError(
            f"tconv needs about {COMPILE_HEADROOM_BYTES // 2**20} MiB of address space to compile a kernel; "
            f"this process has {max(room, 0) // 2**20} MiB left under its {name} soft limit (raise the limit, "
            "or make the first call before setting it)"
        )


def _compile_off_the_main_thread(dispatcher: Any) -> Any:
    """``dispatcher`` with its compiles (and loads from the cache) run in a thread of their own when the main
    thread asks for one, the main thread waiting for it.

    Why: Python runs signal handlers, and so raises ``KeyboardInterrupt``, in the main thread only, between
    any two bytecodes. Compiling takes numba's compiler lock and LLVM's lock through Python-level
    ``__enter__`` methods, and an interrupt landing just after one of those acquires leaves the lock held for
    good: the next thread to compile (a team thread, say) waits forever, and the process hangs. A compile in
    another thread always runs to its end and releases its locks; an interrupted main thread goes on at once
    and finds the compiled code there on its next call. Numba's C dispatcher looks ``_compile_for_args`` up on
    the dispatcher object for every new signature, so the method is replaced on this object only."""
    compile_for_args = getattr(dispatcher, "_compile_for_args", None)
    if compile_for_args is None:  # pragma: no cover - a numba without it: compiles stay where they are asked
        return dispatcher

    def compile_elsewhere(*args: Any, **kws: Any) -> Any:
        _check_room_to_compile()
        if threading.current_thread() is not threading.main_thread():
            return compile_for_args(*args, **kws)
        outcome: dict[str, Any] = {}

        def compile_() -> None:
            try:
                outcome["value"] = compile_for_args(*args, **kws)
            except BaseException as err:  # handed to the main thread
                outcome["error"] = err

        thread = threading.Thread(target=compile_, name="tconv-compile", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a limit on threads): compile here, as numba would
            return compile_for_args(*args, **kws)
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    dispatcher._compile_for_args = compile_elsewhere
    return dispatcher


def cache_location() -> str | None:
    """Where the kernels' compiled code is cached: the directory numba chose, or None (compiled in memory, on
    every new process, because nothing numba would use is writable)."""
    path = getattr(getattr(_compiled().col2im, "_cache", None), "cache_path", None)
    return None if path is None else str(path)


@functools.cache
def _compiled() -> Kernels:
    numba = numba_module()
    assert numba is not None
    jit = functools.partial(_jit, numba)

    @jit
    def write_phases(out, buf, ob, st1, st2, st3, qi1, qi2, qi3, bj):  # type: ignore[no-untyped-def]
        # A job's phase-major buffer into its output plane (col2im, direct): output (o1, o2, o3), at ob + o1*st1
        # + o2*st2 + o3*st3 in out, reads the buffer at qi1[o1] + qi2[o2] + qi3[o3], plus the bias bj.
        n3 = qi3.shape[0]
        for o1 in range(qi1.shape[0]):
            for o2 in range(qi2.shape[0]):
                row = ob + o1 * st1 + o2 * st2
                brow = qi1[o1] + qi2[o2]
                if st3 == 1:  # a contiguous output row (channels-first): unit-stride stores
                    dst = out[row : row + n3]
                    for o3 in range(n3):
                        dst[o3] = buf[brow + qi3[o3]] + bj
                    continue
                for o3 in range(n3):
                    out[row + o3 * st3] = buf[brow + qi3[o3]] + bj

    # The kernels below call it as a module global, not through their closure: numba's cache keys a function by
    # its closure's pickled values, and a dispatcher pickles with an id new in every process, so a kernel holding
    # it in its closure missed the cache and was compiled again in every new process (about a second).
    global _write_phases
    _write_phases = write_phases

    @jit
    def col2im(  # type: ignore[no-untyped-def]
        cols,
        bias,
        out,
        kernel,
        size_in,
        size_out,
        row_strides,
        size,
        ta1,
        ta2,
        ta3,
        planes,
        out_base,
        out_s,
        cs,
        qi1,
        qi2,
        qi3,
        start,
        stop,
    ):
        # Flat buffers. Job = one (group, channel, sample): its cols block (taps t1, t2, t3 at strides
        # cs[0..2], inputs j1, j2, j3 at cs[3..5], the last contiguous) starts at planes[job], its
        # output at out_base[job] (strides out_s). Tap t along an axis puts input j at the uncropped
        # position j*s + t*d = (j + a[t])*s + r[t]: in a phase-major buffer (r1, r2, r3, q1, q2, q3)
        # each tap is one shifted block add with contiguous rows, which vectorises. Then output o
        # reads its phase and row at qi[o] (per axis, summed). The buffer's last axis has stride 1;
        # row_strides holds its row strides along the first two axes, ta1..ta3 each tap's offset in it per axis.
        k1, k2, k3 = kernel[0], kernel[1], kernel[2]
        n1, n2, n3 = size_in[0], size_in[1], size_in[2]
        b1, b2 = row_strides[0], row_strides[1]
        for job in range(start, stop):
            base = planes[job]
            buf = np.zeros(size, dtype=cols.dtype)
            for t1 in range(k1):
                for t2 in range(k2):
                    for t3 in range(k3):
                        src = base + t1 * cs[0] + t2 * cs[1] + t3 * cs[2]
                        dst = ta1[t1] + ta2[t2] + ta3[t3]
                        for j1 in range(n1):
                            for j2 in range(n2):
                                s_row = src + j1 * cs[3] + j2 * cs[4]
                                d_row = dst + j1 * b1 + j2 * b2
                                # Unit strides on both sides; slices let LLVM see that and vectorise.
                                b_row = buf[d_row : d_row + n3]
                                c_row = cols[s_row : s_row + n3]
                                for j3 in range(n3):
                                    b_row[j3] += c_row[j3]
            _write_phases(out, buf, out_base[job], out_s[0], out_s[1], out_s[2], qi1, qi2, qi3, bias[job])

    @jit
    def gather(cols, bias, out, planes, out_base, out_s, r1, r2, r3, start, stop):  # type: ignore[no-untyped-def]
        # Kernel no longer than the stride (dilation 1): every output is reached by at most one (tap,
        # input) pair, at offset r1[o1] + r2[o2] + r3[o3] in the job's cols block (-1: none), so the
        # output is read straight from cols, with no accumulation buffer (U-Net's 2x2 stride 2).
        o1n, o2n, o3n = r1.shape[0], r2.shape[0], r3.shape[0]
        for job in range(start, stop):
            base = planes[job]
            ob = out_base[job]
            bj = bias[job]
            for o1 in range(o1n):
                a1 = r1[o1]
                for o2 in range(o2n):
                    a2 = r2[o2]
                    row = ob + o1 * out_s[0] + o2 * out_s[1]
                    if out_s[2] == 1:  # a contiguous output row (channels-first): unit-stride loops
                        dst = out[row : row + o3n]
                        if a1 < 0 or a2 < 0:
                            dst[:] = bj
                            continue
                        src = base + a1 + a2
                        for o3 in range(o3n):
                            a3 = r3[o3]
                            dst[o3] = (cols[src + a3] if a3 >= 0 else 0) + bj
                        continue
                    if a1 < 0 or a2 < 0:
                        for o3 in range(o3n):
                            out[row + o3 * out_s[2]] = bj
                        continue
                    src = base + a1 + a2
                    for o3 in range(o3n):
                        a3 = r3[o3]
                        out[row + o3 * out_s[2]] = (cols[src + a3] if a3 >= 0 else 0) + bj

    @jit
    def direct(  # type: ignore[no-untyped-def]
        x,
        w,
        bias,
        out,
        kernel,
        size_in,
        size_out,
        row_strides,
        size,
        ta1,
        ta2,
        ta3,
        dims,
        xs,
        out_s,
        qi1,
        qi2,
        qi3,
        start,
        stop,
    ):
        # The transposed convolution summed directly, for few channels per group (depthwise): the
        # phase-major scheme of col2im with x in place of cols and each tap's weight as a factor.
        # dims = (N, G, Cin_g, Cout_g); xs the element strides of x (N, G, Cin_g, n1, n2, n3), out_s
        # those of out (N, G, Cout_g, O1, O2, O3); w is flat (G, Cin_g, Cout_g, K1, K2, K3).
        k1, k2, k3 = kernel[0], kernel[1], kernel[2]
        n1, n2, n3 = size_in[0], size_in[1], size_in[2]
        b1, b2 = row_strides[0], row_strides[1]
        groups, cg_in, cg_out = dims[1], dims[2], dims[3]
        taps = k1 * k2 * k3
        x3 = xs[5]
        for job in range(start, stop):
            n = job // (groups * cg_out)
            g = (job // cg_out) % groups
            co = job % cg_out
            buf = np.zeros(size, dtype=out.dtype)
            blocked = 0  # the input channels summed four a pass end here
            w_step = cg_out * taps  # from one input channel's weights to the next's
            while x3 == 1 and blocked + 4 <= cg_in:  # four input channels a pass: each buffer row loaded, stored once
                xb = n * xs[0] + g * xs[1] + blocked * xs[2]
                xc = xs[2]
                wb = ((g * cg_in + blocked) * cg_out + co) * taps
                for t1 in range(k1):
                    for t2 in range(k2):
                        for t3 in range(k3):
                            wt = wb + (t1 * k2 + t2) * k3 + t3
                            v0, v1, v2, v3 = w[wt], w[wt + w_step], w[wt + 2 * w_step], w[wt + 3 * w_step]
                            dst = ta1[t1] + ta2[t2] + ta3[t3]
                            for j1 in range(n1):
                                for j2 in range(n2):
                                    s_row = xb + j1 * xs[3] + j2 * xs[4]
                                    d_row = dst + j1 * b1 + j2 * b2
                                    b_row = buf[d_row : d_row + n3]
                                    r0 = x[s_row : s_row + n3]
                                    r1 = x[s_row + xc : s_row + xc + n3]
                                    r2 = x[s_row + 2 * xc : s_row + 2 * xc + n3]
                                    r3 = x[s_row + 3 * xc : s_row + 3 * xc + n3]
                                    for j3 in range(n3):
                                        b_row[j3] += v0 * r0[j3] + v1 * r1[j3] + v2 * r2[j3] + v3 * r3[j3]
                blocked += 4
            for ci in range(blocked, cg_in):
                xb = n * xs[0] + g * xs[1] + ci * xs[2]
                wb = ((g * cg_in + ci) * cg_out + co) * taps
                for t1 in range(k1):
                    for t2 in range(k2):
                        for t3 in range(k3):
                            wv = w[wb + (t1 * k2 + t2) * k3 + t3]
                            dst = ta1[t1] + ta2[t2] + ta3[t3]
                            for j1 in range(n1):
                                for j2 in range(n2):
                                    s_row = xb + j1 * xs[3] + j2 * xs[4]
                                    d_row = dst + j1 * b1 + j2 * b2
                                    b_row = buf[d_row : d_row + n3]
                                    if x3 == 1:
                                        x_row = x[s_row : s_row + n3]
                                        for j3 in range(n3):
                                            b_row[j3] += wv * x_row[j3]
                                    else:
                                        for j3 in range(n3):
                                            b_row[j3] += wv * x[s_row + j3 * x3]
            ob = n * out_s[0] + g * out_s[1] + co * out_s[2]
            _write_phases(out, buf, ob, out_s[3], out_s[4], out_s[5], qi1, qi2, qi3, bias[g * cg_out + co])

    @jit
    def col2im_last(cols, rs, bias, out, c1, t1, j1, c2, t2, j2, c3, t3, j3, pixels_first, start, stop):  # type: ignore[no-untyped-def]
        # cols (R, K1, K2, K3, C) contiguous, input pixel (n, j1, j2, j3) in row n*rs[0] + j1*rs[1] + j2*rs[2]
        # + j3*rs[3] (any order of the four), out (N, O1, O2, O3, C) any strides. Each output
        # pixel is the sum of the cols vectors of the (tap, input) pairs reaching it (the tables give them
        # per axis), vectorised along the contiguous channel axis. Pixels are summed in tiles of `tile`
        # along the last axis; with pixels_first (channels-first out: O3 stride < C stride) each channel's
        # tile is then written as one contiguous run instead of pixel by pixel with a stride.
        # The (row, tap) vectors are read as rows of cols seen 2-D, ``(R * K, C)``, their index built axis by
        # axis: no 4-D view per pair (docs/design.md, the twenty-first session's smaller steps).
        o1n, o2n, o3n, channels = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
        k2, k3 = cols.shape[2], cols.shape[3]
        taps = cols.shape[1] * k2 * k3
        vectors = cols.reshape(-1, channels)
        tile = 16
        for job in range(start, stop):
            n = job // o1n
            o1 = job % o1n
            acc = np.empty((tile, channels), dtype=out.dtype)
            for o2 in range(o2n):
                for first in range(0, o3n, tile):
                    width = min(tile, o3n - first)
                    for i in range(width):
                        o3 = first + i
                        a = acc[i]
                        for c in range(channels):
                            a[c] = bias[c]
                        for m1 in range(c1[o1]):
                            row1 = n * rs[0] + j1[o1, m1] * rs[1]
                            tap1 = t1[o1, m1] * k2
                            for m2 in range(c2[o2]):
                                row2 = row1 + j2[o2, m2] * rs[2]
                                tap2 = (tap1 + t2[o2, m2]) * k3
                                for m3 in range(c3[o3]):
                                    v = vectors[(row2 + j3[o3, m3] * rs[3]) * taps + tap2 + t3[o3, m3]]
                                    for c in range(channels):
                                        a[c] += v[c]
                    if pixels_first:
                        for c in range(channels):
                            for i in range(width):
                                out[n, o1, o2, first + i, c] = acc[i, c]
                    else:
                        for i in range(width):
                            pixel = out[n, o1, o2, first + i]
                            a = acc[i]
                            for c in range(channels):
                                pixel[c] = a[c]

    @jit
    def col2im_patches(cols, bias, out, s1, s2, s3, d1, d2, lo1, lo2, lo3, u1, u2, u3, start, stop):  # type: ignore[no-untyped-def]
        # cols (N, n1, n2, n3, C, K1, K2, K3) contiguous: each input pixel's kernel patch per channel;
        # out (N, C, O1, O2, O3), any strides. Job = one (sample, channel): every patch is added into an
        # uncropped (u1, u2, u3) plane row by row, each row K3 contiguous elements on both sides (long
        # when the kernel is: FCN-32s' 64, an iSTFT's 1024); then the plane is cropped into out.
        n1n, n2n, n3n, channels = cols.shape[1], cols.shape[2], cols.shape[3], cols.shape[4]
        k1, k2, k3 = cols.shape[5], cols.shape[6], cols.shape[7]
        o1n, o2n, o3n = out.shape[2], out.shape[3], out.shape[4]
        for job in range(start, stop):
            n = job // channels
            c = job % channels
            plane = np.zeros((u1, u2, u3), dtype=out.dtype)
            for j1 in range(n1n):
                for j2 in range(n2n):
                    for j3 in range(n3n):
                        p3 = j3 * s3
                        for t1 in range(k1):
                            p1 = j1 * s1 + t1 * d1
                            for t2 in range(k2):
                                row = plane[p1, j2 * s2 + t2 * d2, p3 : p3 + k3]
                                patch = cols[n, j1, j2, j3, c, t1, t2]
                                for t3 in range(k3):
                                    row[t3] += patch[t3]
            b = bias[c]
            for o1 in range(o1n):
                q1 = o1 + lo1
                for o2 in range(o2n):
                    q2 = o2 + lo2
                    for o3 in range(o3n):
                        q3 = o3 + lo3
                        if q1 < u1 and q2 < u2 and q3 < u3:
                            out[n, c, o1, o2, o3] = plane[q1, q2, q3] + b
                        else:  # output padding beyond the last patch
                            out[n, c, o1, o2, o3] = b

    @jit
    def im2col(planes, cols, batch, p_all, rows, taps, runs, first, start, stop):  # type: ignore[no-untyped-def]
        # planes (N, C, L) zero-padded flat planes; cols (C, K, R) contiguous, R >= N * P (a row may be longer
        # than its N * P columns): cols[c, t, n * P + o] = planes[n, c, taps[t] + rows[o]], rows the window
        # table cut to the outputs first to first + P (the zero padding is in the planes, so no output needs a
        # test). runs = (O2, O3, row step of output axis 1, of axis 2, stride of axis 3): at stride 1 along the
        # last axis an output row's windows start at consecutive places, so each row is one contiguous copy; at
        # other strides, a flat gather through the table. Both with unsigned indices, which the compiler
        # vectorises with no wrap-around test (the gather with signed ones took 1.25 times as long; a strided
        # copy row by row, 1.1-1.5 times: rows of 7-28 outputs).
        k_all = cols.shape[1]
        o2n, o3n, r1, r2, s3 = runs[0], runs[1], runs[2], runs[3], runs[4]
        for job in range(start, stop):
            c = job // k_all
            t = job % k_all
            base = taps[t]
            if s3 != 1:
                ubase = np.uint64(base)
                for n in range(batch):
                    dst = cols[c, t, n * p_all : (n + 1) * p_all]
                    src = planes[n, c]
                    for o in range(np.uint64(p_all)):
                        dst[o] = src[ubase + np.uint64(rows[o])]
                continue
            for n in range(batch):
                dst = cols[c, t, n * p_all : (n + 1) * p_all]
                src = planes[n, c]
                o = 0
                q12 = first // o3n
                o3 = first - q12 * o3n
                o1 = q12 // o2n
                o2 = q12 - o1 * o2n
                while o < p_all:
                    length = min(o3n - o3, p_all - o)
                    at = np.uint64(o)
                    off = np.uint64(base + o1 * r1 + o2 * r2 + o3)
                    for j in range(np.uint64(length)):
                        dst[at + j] = src[off + j]
                    o += length
                    o3 = 0
                    o2 += 1
                    if o2 == o2n:
                        o2 = 0
                        o1 += 1

    @jit
    def pixel_rows(planes, cols, rows, taps, start, stop):  # type: ignore[no-untyped-def]
        # planes (N, L, C) channel-minor flat planes; cols (N, P, K, C), contiguous:
        # cols[n, o, t, :] = planes[n, taps[t] + rows[o], :], one run of C contiguous elements per (output,
        # tap). Job = (sample, output).
        p_all, k_all, channels = cols.shape[1], cols.shape[2], cols.shape[3]
        for job in range(start, stop):
            n = job // p_all
            o = job % p_all
            at = rows[o]
            for t in range(k_all):
                src = planes[n, taps[t] + at]
                dst = cols[n, o, t]
                for c in range(channels):
                    dst[c] = src[c]

    @jit
    def pixels_direct(x, rs, w, bias, out, c1, t1, j1, c2, t2, j2, c3, t3, j3, pixels_first, start, stop):  # type: ignore[no-untyped-def]
        # col2im_last with the products folded in, for few input channels: x (R, C_in) contiguous rows of input
        # pixels (row n*rs[0] + j1*rs[1] + j2*rs[2] + j3*rs[3]), w (C_in, K1, K2, K3, C) contiguous, out (N, O1, O2,
        # O3, C) any strides. Each output pixel is the bias plus, for each (tap, input) pair reaching it, the
        # input's C_in values times the tap's weight rows, summed along the contiguous channels in a tile of
        # pixels and written as col2im_last writes. A job is one row of output pixels (n, o1, o2): a 1-D or 2-D
        # call of one sample still has rows enough to share among the team's threads.
        # The weight's rows read from w seen 2-D, ``(C_in * K, C)``, as col2im_last reads its vectors.
        o1n, o2n, o3n, channels = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
        c_in = x.shape[1]
        k2, k3 = w.shape[2], w.shape[3]
        taps = w.shape[1] * k2 * k3
        rows_w = w.reshape(-1, channels)
        tile = 16
        acc = np.empty((tile, channels), dtype=out.dtype)
        for job in range(start, stop):
            n = job // (o1n * o2n)
            o1 = (job // o2n) % o1n
            o2 = job % o2n
            for first in range(0, o3n, tile):
                width = min(tile, o3n - first)
                for i in range(width):
                    o3 = first + i
                    a = acc[i]
                    for c in range(channels):
                        a[c] = bias[c]
                    for m1 in range(c1[o1]):
                        row1 = n * rs[0] + j1[o1, m1] * rs[1]
                        tap1 = t1[o1, m1] * k2
                        for m2 in range(c2[o2]):
                            row2 = row1 + j2[o2, m2] * rs[2]
                            tap2 = (tap1 + t2[o2, m2]) * k3
                            for m3 in range(c3[o3]):
                                row = row2 + j3[o3, m3] * rs[3]
                                tap = tap2 + t3[o3, m3]
                                for ci in range(c_in):
                                    v = x[row, ci]
                                    wr = rows_w[ci * taps + tap]
                                    for c in range(channels):
                                        a[c] += v * wr[c]
                if pixels_first:
                    for c in range(channels):
                        for i in range(width):
                            out[n, o1, o2, first + i, c] = acc[i, c]
                else:
                    for i in range(width):
                        pixel = out[n, o1, o2, first + i]
                        a = acc[i]
                        for c in range(channels):
                            pixel[c] = a[c]

    @jit
    def pointer(a):  # type: ignore[no-untyped-def]
        return a.ctypes.data

    return Kernels(col2im, direct, im2col, col2im_last, col2im_patches, gather, pixel_rows, pixels_direct, pointer)


class PhaseGeometry:
    """A transposed convolution's geometry for the phase-major kernels (3-D padded).

    Along an axis (input ``n``, kernel ``k``, stride ``s``, dilation ``d``, low padding ``lo``,
    output ``out``) tap ``t`` puts input ``j`` at the uncropped position ``j*s + t*d``: phase
    ``r = t*d mod s``, row ``j + a`` with ``a = t*d // s``. The buffer holds the phases in use (the taps'
    and those the outputs read: at most ``min(s, k + out)``, never ``s`` itself, so that a huge stride on a
    tiny input needs no huge buffer) of ``R = max(n + max(a), ceil((lo + out) / s))`` rows per axis,
    phase-major ``(r1, r2, r3, q1, q2, q3)``; output ``o`` reads phase ``(o + lo) mod s``, row
    ``(o + lo) // s``. Each (phase, row) cell sums the same terms in the same order wherever it lies, so
    the numbers do not depend on which phases are stored.
    """

    def __init__(
        self,
        n: tuple[int, ...],
        k: tuple[int, ...],
        s: tuple[int, ...],
        d: tuple[int, ...],
        lo: tuple[int, ...],
        out: tuple[int, ...],
    ) -> None:
        rows = [
            max(nn + (kk - 1) * dd // ss, -(-(ll + oo) // ss)) for nn, kk, ss, dd, ll, oo in zip(n, k, s, d, lo, out)
        ]
        tap_rows, tap_phases, read_rows, read_phases, used = [], [], [], [], []
        for axis in range(3):
            a, r = np.divmod(np.arange(k[axis], dtype=np.int64) * d[axis], s[axis])
            q, rr = np.divmod(np.arange(out[axis], dtype=np.int64) + lo[axis], s[axis])
            phases = np.union1d(r, rr)  # the phases in use, sorted: stored in this order
            tap_rows.append(a)
            read_rows.append(q)
            tap_phases.append(np.searchsorted(phases, r))
            read_phases.append(np.searchsorted(phases, rr))
            used.append(phases.size)
        plane = rows[0] * rows[1] * rows[2]
        q_strides = [rows[1] * rows[2], rows[2], 1]
        r_strides = [used[1] * used[2] * plane, used[2] * plane, plane]
        #: the buffer's length, and its row strides along the first two axes (the third is contiguous)
        self.size = used[0] * used[1] * used[2] * plane
        self.row_strides = np.array(q_strides[:2], dtype=np.int64)
        self.kernel = np.array(k, dtype=np.int64)
        self.size_in = np.array(n, dtype=np.int64)
        self.size_out = np.array(out, dtype=np.int64)
        #: per axis, each tap's offset in the buffer (its phase and row)
        self.tap_offsets = [
            (tap_phases[axis] * r_strides[axis] + tap_rows[axis] * q_strides[axis]).astype(np.int64)
            for axis in range(3)
        ]
        #: per axis, where each output reads the buffer
        self.reads = [
            (read_phases[axis] * r_strides[axis] + read_rows[axis] * q_strides[axis]).astype(np.int64)
            for axis in range(3)
        ]

    def arguments(self) -> tuple[Any, ...]:
        """The geometry as the col2im and direct kernels take it (before their own arrays)."""
        return (self.kernel, self.size_in, self.size_out, self.row_strides, self.size, *self.tap_offsets)


@functools.lru_cache(maxsize=256)
def phase_geometry(axes: tuple[tuple[int, ...], ...]) -> PhaseGeometry:
    """The :class:`PhaseGeometry` of a call's 3-D padded axes (``size_in, kernel, stride, dilation, low,
    size_out``), made once per geometry: a layer called again reuses its tables, which no kernel writes
    (they stay writeable arrays, so the kernels keep their compiled signatures)."""
    return PhaseGeometry(*axes)


class _Jobs(NamedTuple):
    """One job per (group, channel, sample) of a column buffer: where its block starts in ``cols``, where
    its plane starts in ``out``, its bias; and both arrays' strides in elements."""

    planes: np.ndarray
    out_base: np.ndarray
    bias: np.ndarray
    cols_strides: tuple[int, ...]
    out_strides: tuple[int, ...]


def _jobs(cols: np.ndarray, bias: np.ndarray, out: np.ndarray) -> _Jobs:
    """The jobs of ``cols (G, K1, K2, K3, C/G, N, n1, n2, n3)`` into ``out (N, G, C/G, O1, O2, O3)``."""
    batch = cols.shape[5]
    planes, out_base, cs, os_ = _job_bases(cols.shape, cols.strides, out.strides, cols.dtype.itemsize)
    bias_jobs = np.array(bias, dtype=cols.dtype).reshape(-1)  # a copy: a read-only bias would be another kernel
    if batch > 1:
        bias_jobs = np.repeat(bias_jobs, batch)  # jobs in (g, c, n) order
    return _Jobs(planes, out_base, bias_jobs, cs, os_)


@functools.lru_cache(maxsize=256)
def _job_bases(
    shape: tuple[int, ...], cols_strides: tuple[int, ...], out_strides: tuple[int, ...], item: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """Where each (group, channel, sample) job's block starts in ``cols`` and its plane in ``out``, from
    ``cols``'s shape and both arrays' strides (bytes), and those strides in elements: made once per layout,
    read-only to the kernels and their wrappers."""
    cs = tuple(st // item for st in cols_strides)
    os_ = tuple(st // item for st in out_strides)
    g = np.arange(shape[0], dtype=np.int64)[:, None, None]
    c = np.arange(shape[4], dtype=np.int64)[None, :, None]
    n = np.arange(shape[5], dtype=np.int64)[None, None, :]
    planes = (g * cs[0] + c * cs[4] + n * cs[5]).ravel()
    out_base = (g * os_[1] + c * os_[2] + n * os_[0]).ravel()
    return planes, out_base, cs, os_


def col2im(cols: np.ndarray, bias: np.ndarray, out: np.ndarray, geometry: PhaseGeometry) -> None:
    """``out[n, g, c, o] = bias[g, c] + sum over (t, j) reaching o of cols[g, t, c, n, j]``.

    ``cols`` is ``(G, K1, K2, K3, C/G, N, n1, n2, n3)`` with a contiguous last axis and ``out``
    ``(N, G, C/G, O1, O2, O3)``, both views with any non-negative strides.
    """
    jobs = _jobs(cols, bias, out)
    cs = jobs.cols_strides
    if cols.shape[8] > 1 and cs[8] != 1:  # pragma: no cover - the engine's cols are always so
        raise ValueError("col2im needs cols with a contiguous last axis")
    strides, out_strides = index_arrays((cs[1], cs[2], cs[3], cs[6], cs[7], cs[8]), jobs.out_strides[3:6])
    arguments = (
        flat(cols),
        jobs.bias,
        flat(out),
        *geometry.arguments(),
        jobs.planes,
        jobs.out_base,
        out_strides,
        strides,
        *geometry.reads,
    )
    kernel = _compiled().col2im
    work = cols.size + out.size
    team.ranges(lambda start, stop: kernel(*arguments, start, stop), jobs.planes.size, work)


@functools.lru_cache(maxsize=256)
def index_arrays(*values: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Each tuple of ints (a layout's strides in elements, a call's sizes) as an int64 array for the kernels (made
    anew on every call: the callers whose plans are cached keep the arrays in their plans); the kernels only read
    them."""
    return tuple(np.array(ints, dtype=np.int64) for ints in values)


def gather(cols: np.ndarray, bias: np.ndarray, out: np.ndarray, axes: Any) -> None:
    """col2im for kernels no longer than their stride (no overlap): each output read straight from cols.

    ``cols`` and ``out`` as in :func:`col2im`; ``axes`` the call's sizes, kernel, stride and low padding per
    axis, 3-D padded (``size_in``, ``kernel``, ``stride``, ``low``, ``size_out``; dilation 1).
    """
    jobs = _jobs(cols, bias, out)
    cs = jobs.cols_strides
    reads = _gather_reads(tuple(axes), (cs[1], cs[2], cs[3]), (cs[6], cs[7], cs[8]))
    out_strides = index_arrays(jobs.out_strides[3:6])[0]
    arguments = (flat(cols), jobs.bias, flat(out), jobs.planes, jobs.out_base, out_strides, *reads)
    kernel = _compiled().gather
    team.ranges(lambda start, stop: kernel(*arguments, start, stop), jobs.planes.size, out.size)


@functools.lru_cache(maxsize=256)
def _gather_reads(
    axes: tuple[tuple[int, ...], ...], tap_strides: tuple[int, ...], row_strides: tuple[int, ...]
) -> list[np.ndarray]:
    """Per axis, where each output reads its (tap, input) in a job's cols block (-1: no tap reaches it), for
    :func:`gather`: made once per geometry and cols layout, read-only to the kernel."""
    size_in, kernel, stride, low, size_out = axes[0], axes[1], axes[2], axes[4], axes[5]
    reads = []
    for axis in range(3):
        q, r = np.divmod(np.arange(size_out[axis]) + low[axis], stride[axis])
        inside = (r < kernel[axis]) & (q < size_in[axis])
        reads.append(np.where(inside, r * tap_strides[axis] + q * row_strides[axis], -1).astype(np.int64))
    return reads


def direct(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray, geometry: PhaseGeometry) -> None:
    """A transposed convolution summed per output plane, for few channels per group.

    ``x`` ``(N, G, Cin_g, n1, n2, n3)`` and ``out`` ``(N, G, Cout_g, O1, O2, O3)`` with any non-negative
    strides, ``w`` ``(G, Cin_g, Cout_g, K1, K2, K3)``, ``bias`` ``(G, Cout_g)``.
    """
    item = x.dtype.itemsize
    xs, out_s, dims = index_arrays(
        tuple(st // item for st in x.strides), tuple(st // item for st in out.strides), (*x.shape[:3], out.shape[2])
    )
    flat_w = np.ascontiguousarray(w).ravel()
    flat_b = np.ascontiguousarray(bias).ravel()
    arguments = (flat(x), flat_w, flat_b, flat(out), *geometry.arguments(), dims, xs, out_s, *geometry.reads)
    kernel = _compiled().direct
    jobs = x.shape[0] * x.shape[1] * out.shape[2]
    work = out.size * (1 + x.shape[2] * int(geometry.kernel.prod()))
    team.ranges(lambda start, stop: kernel(*arguments, start, stop), jobs, work)


def flat(a: np.ndarray) -> np.ndarray:
    """The memory a view spans (non-negative strides), as a flat array starting at its first element."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    item = a.dtype.itemsize
    span = 1
    for n, st in zip(a.shape, a.strides):
        if n == 0:
            span = 0
            break
        if st < 0 or st % item:  # pragma: no cover - geometry.kernel_ready copies such views
            raise ValueError("the kernels need non-negative strides in whole elements")
        span += (n - 1) * (st // item)
    return view(a, (span,), (item,))


def view(a: np.ndarray, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """A view with ``shape`` and ``strides`` (bytes) of the memory from ``a``'s first element, as
    ``np.lib.stride_tricks.as_strided`` makes it. Made through the buffer of the array that owns the memory,
    where that one is C-contiguous and writeable, as ``a`` is (a workspace buffer, a fresh output, the caller's
    x), at the offset of ``a``'s first element (a compiled pointer difference), for non-negative strides: about
    2 us, against 6-7 us through ``as_strided``, and this is on every call's path (two or three views a
    kernel call)."""
    owner = a.base
    while isinstance(owner, np.ndarray) and isinstance(owner.base, np.ndarray):
        owner = owner.base
    # read-only views stay read-only; the compiled pointer takes native float32 and float64 (the kernels' arrays)
    fast = a.flags.writeable and a.dtype.isnative and a.dtype.char in "fd" and min(strides, default=0) >= 0
    if fast and isinstance(owner, np.ndarray) and owner.flags.c_contiguous and owner.flags.writeable and available():
        memory = owner if owner.dtype.isnative and owner.dtype.char in "fdB" else owner.reshape(-1).view(np.uint8)
        pointer = _compiled().pointer
        offset = pointer(a) - pointer(memory)
        reach = sum((n - 1) * st for n, st in zip(shape, strides)) + a.dtype.itemsize if 0 not in shape else 0
        if 0 <= offset and offset + reach <= owner.nbytes:
            return np.ndarray(shape, a.dtype, owner, offset, strides)
    return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


def col2im_last(
    cols: np.ndarray,
    bias: np.ndarray,
    out: np.ndarray,
    tables: tuple[np.ndarray, ...],
    order: tuple[int, ...] = (0, 1, 2, 3),
) -> None:
    """Channels-last overlap-add: ``out[n, o, :] = bias + sum over (t, j) reaching o of cols[n, j, t, :]``.

    ``cols`` contiguous, ``(N, n1, n2, n3, K1, K2, K3, C)``, or with its four leading axes in another
    ``order`` (leading axis ``i`` is pixel axis ``order[i]``: 0 the sample, 1-3 the input axes; the
    cropped-tap split of :func:`tconv.implementations.compiled.transposed.conv_transpose_pixels` puts one
    input axis first); ``out`` ``(N, O1, O2, O3, C)`` with any strides (channels-first output is a view with
    the channel axis moved last); ``tables`` the three axes'
    :func:`tconv.implementations.compiled.geometry.transposed_tables`.
    """
    strides = _row_steps(order, cols.shape[:4])  # rows per step of (n, j1, j2, j3)
    rows = np.ascontiguousarray(cols).reshape(-1, *cols.shape[4:])  # the kernel reads it as (R * K, C)
    pixels_first = out.strides[3] < out.strides[4]
    arguments = (rows, strides, np.ascontiguousarray(bias), out, *tables, pixels_first)
    kernel = _compiled().col2im_last
    work = out.size + rows.size
    team.ranges(lambda start, stop: kernel(*arguments, start, stop), out.shape[0] * out.shape[1], work)


def pixels_direct(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray, tables: tuple[np.ndarray, ...]
) -> None:
    """:func:`col2im_last` with the column product folded in, for few input channels: ``out[n, o, :] = bias + sum
    over (t, j) reaching o of x[n, j, :] @ weight[:, t, :]``.

    ``x`` ``(N, n1, n2, n3, C_in)`` contiguous, ``weight`` ``(C_in, K1, K2, K3, C)`` contiguous, ``out`` ``(N, O1,
    O2, O3, C)`` with any strides, ``tables`` the three axes' transposed tables (as :func:`col2im_last`'s).
    """
    rows = x.reshape(-1, x.shape[4])
    strides = _row_steps((0, 1, 2, 3), x.shape[:4])
    pixels_first = out.strides[3] < out.strides[4]
    arguments = (rows, strides, np.ascontiguousarray(weight), np.ascontiguousarray(bias), out, *tables, pixels_first)
    kernel = _compiled().pixels_direct
    work = out.size + rows.shape[0] * weight.size  # each input pixel meets every weight row once
    jobs = out.shape[0] * out.shape[1] * out.shape[2]  # rows of output pixels
    team.ranges(lambda start, stop: kernel(*arguments, start, stop), jobs, work)


@functools.lru_cache(maxsize=256)
def _row_steps(order: tuple[int, ...], leading: tuple[int, ...]) -> np.ndarray:
    """:func:`col2im_last`'s rows per step of (sample, j1, j2, j3), for leading axes of sizes ``leading`` in
    ``order``: made once per layout, read-only to the kernel."""
    strides = np.empty(4, dtype=np.int64)
    step = 1
    for axis in reversed(range(4)):
        strides[order[axis]] = step
        step *= leading[axis]
    return strides


def col2im_patches(cols: np.ndarray, bias: np.ndarray, out: np.ndarray, geometry: tuple[int, ...]) -> None:
    """Patch-major overlap-add for kernels longer than their input along the last axis.

    ``cols`` ``(N, n1, n2, n3, C, K1, K2, K3)`` contiguous, ``out`` ``(N, C, O1, O2, O3)`` any strides,
    ``geometry`` ``(s1, s2, s3, d1, d2, lo1, lo2, lo3, u1, u2, u3)`` (dilation 1 on the last axis).
    """
    arguments = (cols, np.ascontiguousarray(bias), out, *geometry)
    kernel = _compiled().col2im_patches
    work = cols.size + out.size
    team.ranges(lambda start, stop: kernel(*arguments, start, stop), out.shape[0] * out.shape[1], work)


def im2col(planes: np.ndarray, cols: np.ndarray, pixels: int, tables: Any, first: int = 0) -> None:
    """Fill ``cols (C, K, R)`` (contiguous, ``R >= N * pixels``) with ``cols[c, t, n * pixels + o] =
    planes[n, c, taps[t] + rows[first + o]]`` (``planes (N, C, L)``: zero-padded, flattened; ``tables`` an
    im2col geometry, :class:`.geometry.Im2colGeometry`: its ``rows``, ``taps`` and ``runs``): the outputs
    ``first`` to ``first + pixels`` of every sample; the rows' last ``R - N * pixels`` elements are not written."""
    kernel = _compiled().im2col
    batch = planes.shape[0]
    rows, taps, runs = tables.rows[first : first + pixels], tables.taps, tables.runs
    team.ranges(
        lambda start, stop: kernel(planes, cols, batch, pixels, rows, taps, runs, first, start, stop),
        cols.shape[0] * cols.shape[1],
        cols.shape[0] * cols.shape[1] * batch * pixels,
    )


def pixel_rows(planes: np.ndarray, cols: np.ndarray, rows: np.ndarray, taps: np.ndarray) -> None:
    """Fill ``cols (N, P, K, C)`` with ``planes[n, taps[t] + rows[o], :]`` (``planes (N, L, C)``: channel-minor,
    flattened): a pixel-major im2col, each (output, tap) one run of the channels."""
    kernel = _compiled().pixel_rows
    jobs = cols.shape[0] * cols.shape[1]
    team.ranges(lambda start, stop: kernel(planes, cols, rows, taps, start, stop), jobs, cols.size)


def set_threads(threads: int) -> None:
    """Run the kernels (and a call's chunks) on ``threads`` threads: the size of tconv's thread team, for the
    whole process (:func:`tconv.implementations.compiled.team.set_threads`; numba's own threads are not used)."""
    team.set_threads(threads)
