"""``tconv bench`` / ``python -m tconv.tools.bench``: tconv against PyTorch and the other frameworks, side by side.

Float32, after warm-up, the median of repeated runs, every framework with the same
number of threads and in a process of its own (TensorFlow loaded beside PyTorch
slows PyTorch down several times), the processes taking turns round by round so
that drift in the machine hits all of them. Each framework runs in the environment a
user has: the benchmark sets thread counts and nothing else (no OpenMP wait policy, no
spin settings); a setting a peer needs is applied to that peer's process alone and printed
(:func:`worker_environment`). First it measures the machine's
float32 matrix-multiply rate (NumPy's BLAS), and again at the start of every
round in tconv's process, so that each case's percentage of it is against the rate
of its own moment (the machine's speed drifts). Per case it prints the times, the
ratio tconv/PyTorch, the ratio tconv/fastest peer, tconv's GFLOP/s, its percentage
of the GEMM rate and tconv's peak temporary memory; then the geometric means and
the worst case. The layers: the transposed-convolution suite (default), the forward one
(``--forward``), ``--sweep SEED`` random layers of either (:mod:`tconv.tools.bench_cases`), or
whole training steps (``--models``, :mod:`tconv.tools.bench_models`). ``--json PATH`` writes the
table; ``--plot PATH`` draws the ratios. Nothing here is a test: the targets are read off the table.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from ..frameworks import REGISTRY, Framework
from ..frameworks.base import BenchmarkCase
from .bench_cases import CASES, FORWARD_CASES, Case, arrays, sweep, with_batch
from .bench_models import MODELS, ModelCase
from .bench_report import Row, format_row, plot_ratios, summarize

__all__ = ["CASES", "FORWARD_CASES", "Case", "Row", "main", "plot_ratios", "run", "worker_environment"]


# --- the workers, one per framework, each in its own process ---------------------------------------

#: the thread-count variables each worker gets (read by the libraries as they load): nothing else
_THREAD_VARIABLES = {
    "tconv": ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"),  # NumPy's BLAS; tconv's team
    "torch": ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"),
    "onnxruntime": ("OPENBLAS_NUM_THREADS",),  # its own pool: SessionOptions.intra_op_num_threads
    "tensorflow": ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"),  # and tf.config.threading
    "jax": ("OPENBLAS_NUM_THREADS",),
}

#: settings a peer gets beyond its thread counts, printed with the table (none changes a framework's speed)
PEER_SETTINGS = {"tensorflow": {"TF_CPP_MIN_LOG_LEVEL": "3"}}  # silences TensorFlow's start-up log lines

#: the variables that change how OpenMP or BLAS threads wait: never set by the benchmark (a user's own
#: setting, already in the environment, is left as it is)
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")


def worker_environment(framework: str, threads: int) -> dict[str, str]:
    """The variables the benchmark sets for ``framework``'s worker: its thread counts (and any
    :data:`PEER_SETTINGS`), nothing else."""
    env = {name: str(threads) for name in _THREAD_VARIABLES.get(framework, ("OMP_NUM_THREADS",))}
    return {**env, **PEER_SETTINGS.get(framework, {})}


def _prepare_tconv(case: Case, kind: str) -> Any:
    import tconv

    x, w, b = arrays(case)
    options = case.options()
    if case.channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    if not case.transposed:
        return lambda: tconv.conv(x, w, b, channels_last=case.channels_last, **options)
    if kind == "forward":
        return lambda: tconv.conv_transpose(x, w, b, channels_last=case.channels_last, **options)
    y = tconv.conv_transpose(x, w, b, channels_last=case.channels_last, **options)
    gy = np.ones_like(y)
    return lambda: tconv.conv_transpose_grad(gy, x, w, channels_last=case.channels_last, **options)


def _runtimes() -> dict[str, Framework]:
    """The registered frameworks ``tconv bench`` can run, by the package that runs each (``onnxruntime``, ...)."""
    return {framework.runtime: framework for framework in REGISTRY.values() if framework.runtime}


def _prepare_framework(runtime: str, case: Case, kind: str, threads: int) -> Any:
    """The real framework's run of ``case`` (``None`` where it cannot run it), through its :class:`Framework`."""
    import tconv

    x, w, b = arrays(case)
    spec = tconv.ConvSpec.build(
        transposed=case.transposed,
        input_size=case.x[2:],
        kernel_size=case.kernel,
        in_channels=case.x[1],
        out_channels=case.c_out,
        **case.options(),
    )
    return _runtimes()[runtime].benchmark(BenchmarkCase(spec, x, w, b, kind == "grad", case.channels_last, threads))


def _prepare(framework: str, job: Case | ModelCase, kind: str, threads: int) -> Any:
    if isinstance(job, ModelCase):
        from .bench_models import prepare

        return prepare(framework, job)
    if framework == "tconv":
        return _prepare_tconv(job, kind)
    return _prepare_framework(framework, job, kind, threads)


#: a call slower than this (timed once after the warm-up) is repeated fewer times: about this long in all
SLOW_S = 2.0

#: each turn times at least ``repeats`` calls and, for calls shorter than this share of it, more (up to
#: MAX_RUNS): the first calls after a turn's rest pay for waking the cores, the threads and the caches (measured
#: here after the 0.25 s rest: NumPy's sum of 100 000 floats 99 us against 24 in a loop, a 64x256 product 184 us
#: against 19, a 0.15 ms tconv layer 0.9 ms), which for a sub-millisecond layer is most of a median of three.
#: Every framework's turn is timed alike; a layer in a network is called in a stream, as the longer turn is.
MIN_TURN_S = 0.05
MAX_RUNS = 200


def time_turn(fn: Any, repeats: int) -> float:
    """The median time of one turn of ``fn``: ``repeats`` calls, more for short calls (:data:`MIN_TURN_S`, at
    most :data:`MAX_RUNS`), fewer for slow ones (:data:`SLOW_S` in all)."""
    times: list[float] = []
    while len(times) < MAX_RUNS:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent = sum(times)
        if spent > SLOW_S or (len(times) >= repeats and spent >= MIN_TURN_S):
            break
    return statistics.median(times)


def _worker(framework: str, threads: int, connection: Any, log: str | None = None) -> None:
    """Serve ``(case, kind, repeats)`` requests with the median time in seconds (None: not available),
    ``("gemm", repeats)`` with a GEMM-rate sample, ``("environ",)`` with the worker's environment and
    ``("ready",)`` with True (the worker has started: its framework imported, its threads set). With
    ``log``, the process's standard error (its file descriptor, where native libraries write) goes to that file."""
    if log is not None:
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND)
        if descriptor != 2:  # (2 itself when the parent's standard error was closed)
            os.dup2(descriptor, 2)
            os.close(descriptor)
    if framework == "tconv":
        from tconv.implementations.compiled.kernels import set_threads

        set_threads(threads)  # the compiled kernels' threads (NumPy's BLAS follows OPENBLAS_NUM_THREADS)
    else:
        _runtimes()[framework].set_threads(threads)
    cache: dict[tuple[str, str], Any] = {}
    while True:
        request = connection.recv()
        if request is None:
            return
        if request[0] == "gemm":  # a sample of the GEMM rate, taken in this process between the cases
            connection.send(gemm_rate(threads, repeats=request[1]))
            continue
        if request[0] == "environ":
            connection.send(dict(os.environ))
            continue
        if request[0] == "ready":
            connection.send(True)
            continue
        job, kind, repeats = request
        key = (job.name, kind)
        try:
            if key not in cache:
                cache[key] = _prepare(framework, job, kind, threads)
                if cache[key] is not None:
                    cache[key]()  # warm-up
            fn = cache[key]
            if fn is None:
                connection.send(None)
                continue
            connection.send(time_turn(fn, repeats))
        except Exception as err:  # a framework that cannot run a case is reported, not fatal
            connection.send(f"{type(err).__name__}: {err}"[:120])


#: the file each peer framework's worker writes its standard error to, by framework (:func:`start_workers`)
WORKER_LOGS: dict[str, str] = {}


def start_workers(frameworks: list[str], threads: int) -> dict[str, tuple[Any, Any]]:
    """One process per framework (spawned), each with :func:`worker_environment` over the caller's environment
    (the variables are set in this process only while the worker starts, so that the worker's imports see them).

    A peer framework's worker writes its standard error to a file of its own (:data:`WORKER_LOGS`), so that the
    messages its native libraries print as they load (TensorFlow's and XLA's logging, which ignores
    ``TF_CPP_MIN_LOG_LEVEL`` before it is set up) do not break into the table; the file is named where the
    worker dies, and removed by :func:`stop_workers` otherwise. tconv's worker keeps the console."""
    context = mp.get_context("spawn")
    workers = {}
    for name in frameworks:
        parent, child = context.Pipe()
        log = None
        if name != "tconv":
            handle, log = tempfile.mkstemp(prefix=f"tconv-bench-{name}-", suffix=".log")
            os.close(handle)
            WORKER_LOGS[name] = log
        process = context.Process(target=_worker, args=(name, threads, child, log), daemon=True)
        env = worker_environment(name, threads)
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            process.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        workers[name] = (process, parent)
    return workers


def wait_ready(workers: dict[str, tuple[Any, Any]]) -> None:
    """Wait until every worker has started (:func:`_worker` answers ``("ready",)`` once its threads are set, which
    imports PyTorch and TensorFlow; the other peers import in their first case's preparation, in their own turn),
    so that no worker's start-up runs beside another's timed turn: TensorFlow's import takes seconds of both cores,
    and the first rows of every table were timed during it (resnet-3x3,
    the forward suite's first row: tconv 9.4-9.6 ms in the tables against 5.6 timed alone the same way, with
    the row's GEMM sample at 238-244 GFLOP/s against 320-340 in the rows after). A worker that died starting is
    left for the first case to report."""
    for _, connection in workers.values():
        with contextlib.suppress(EOFError, OSError):
            connection.send(("ready",))
            connection.recv()


def stop_workers(workers: dict[str, tuple[Any, Any]]) -> None:
    """Ask each worker to end (ending it after 10 s), and remove their standard-error files: the workers here did
    not die on a case (one that did was dropped from ``workers``, and its file named in the table's notes)."""
    for name, (process, connection) in workers.items():
        with contextlib.suppress(BrokenPipeError, OSError):
            connection.send(None)
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)
        if name in WORKER_LOGS:
            with contextlib.suppress(OSError):
                os.remove(WORKER_LOGS.pop(name))


def gemm_rate(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-multiply rate in GFLOP/s (NumPy's BLAS on ``threads`` threads)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def peak_memory(case: Case, kind: str) -> float:
    """tconv's peak temporary memory for a case (NumPy allocations, traced), in MiB, inputs excluded.

    The compiled path's reusable column buffer is dropped first, so that it is counted (it is allocated
    within the traced call), as is the output. Not traced: the compiled kernels' per-thread scratch
    planes (numba's allocator), at most one output plane's phases per thread.
    """
    import tracemalloc

    from tconv.implementations.compiled.workspace import drop_workspaces

    fn = _prepare_tconv(case, kind)
    fn()  # warm-up: the first call loads the compiled kernels, whose Python objects are no temporaries
    drop_workspaces()
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak / 2**20


#: timed 2048^3 products per GEMM-rate sample (one sample per round, in tconv's process)
GEMM_REPEATS = 3

#: seconds of rest after each turn (a GEMM sample, a framework's timed runs) before the next starts. Idle
#: threads spin before they sleep: OpenBLAS's for 2^28 cycles (about 0.1 s here) after a multi-threaded
#: product, Eigen's (TensorFlow, JAX) for a while too. Measured here: right after the GEMM sample, tconv's
#: keras-dcgan-2 ran in 16 ms instead of 8.6 while OpenBLAS's threads spun on the same two cores.
SETTLE_S = 0.25


def run(
    frameworks: list[str], cases: list[Case] | list[ModelCase], rounds: int, repeats: int, threads: int
) -> tuple[float, list[Row]]:
    """Time every case; return the GEMM rate (median of all samples taken through the run) and the rows.

    The machine's speed drifts (on shared machines by 10-15% between runs), so the GEMM rate is not taken
    once: every round begins with a sample of it in tconv's process, and each row's %GEMM is against the
    median of the samples taken in that row's own rounds. Model cases (``--models``) time a training step
    and have no GEMM share or memory bound.
    """
    if "tconv" in frameworks:  # first: on a new machine this measures, which BLAS's spinning threads would slow
        from tconv.implementations.compiled import machine

        print(f"tconv's cost model prices products at {machine.describe()}", flush=True)
        print(f"tconv's register-blocked kernels write {machine.vector_bytes() * 8}-bit vectors", flush=True)
    first = gemm_rate(threads)  # before the workers start, so their imports do not slow it down
    print(f"float32 GEMM rate before the workers start: {first:.1f} GFLOP/s", flush=True)
    all_rates: list[float] = []
    workers = start_workers(frameworks, threads)
    wait_ready(workers)
    rows = []
    try:
        for case in cases:
            kinds = ("step",) if isinstance(case, ModelCase) else ("forward", "grad") if case.grad else ("forward",)
            for kind in kinds:
                samples: dict[str, list[float]] = {name: [] for name in frameworks}
                row = Row(case.name, kind)
                rates = []
                for _ in range(rounds):
                    time.sleep(SETTLE_S)  # after the last framework's turn, as before every turn
                    workers["tconv"][1].send(("gemm", GEMM_REPEATS))
                    rates.append(workers["tconv"][1].recv())
                    for name, (_, connection) in list(workers.items()):
                        time.sleep(SETTLE_S)
                        try:
                            connection.send((case, kind, repeats))
                            answer = connection.recv()
                        except (EOFError, OSError):  # the framework's process died (a native abort): drop it
                            answer = f"{name}'s process died on this case; not run after it"
                            if name in WORKER_LOGS:
                                answer += f" (its messages: {WORKER_LOGS[name]})"
                            if name == "tconv":
                                raise
                            del workers[name]
                        if isinstance(answer, float):
                            samples[name].append(answer)
                        elif isinstance(answer, str):
                            row.errors[name] = answer
                row.times = {name: (statistics.median(v) if v else None) for name, v in samples.items()}
                row.gemm_gflops = statistics.median(rates)
                all_rates += rates
                if isinstance(case, Case):
                    mine = row.times.get("tconv")
                    flops = case.flops * (2 if kind == "grad" else 1)
                    row.gflops = flops / mine / 1e9 if mine else 0.0
                    row.gemm_percent = 100 * row.gflops / row.gemm_gflops
                    row.peak_mib = peak_memory(case, kind)
                    row.bound_mib = max(256.0, 2 * case.output_bytes / 2**20)
                rows.append(row)
                print(format_row(row, frameworks), flush=True)
    finally:
        stop_workers(workers)
    if all_rates and min(all_rates) < 0.8 * first:
        print(
            f"warning: GEMM samples through the run fell to {min(all_rates):.1f} GFLOP/s against {first:.1f} at the "
            "start: something else was using the cores (another program, or a framework's threads still spinning)",
            flush=True,
        )
    return (statistics.median(all_rates) if all_rates else first), rows


def main(argv: list[str] | None = None) -> int:
    from .parser import Parser

    parser = Parser(prog="tconv bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frameworks",
        default=",".join(["tconv", *_runtimes()]),
        help="comma-separated; tconv first (default: tconv and every framework it can run; those not installed "
        "are skipped)",
    )
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: the whole suite)")
    parser.add_argument("--forward", action="store_true", help="forward convolutions instead of transposed ones")
    parser.add_argument("--sweep", type=int, default=None, metavar="SEED", help="random layers drawn from SEED")
    parser.add_argument("--sweep-size", type=int, default=60, metavar="N", help="layers in the sweep (default 60)")
    parser.add_argument("--models", action="store_true", help="training steps of whole networks, tconv.nn vs torch.nn")
    parser.add_argument("--batch", type=int, default=None, help="override every case's batch size (quick checks)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the frameworks taking turns (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per round, median taken (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every framework")
    parser.add_argument("--json", default=None, help="write the table as JSON to this path")
    parser.add_argument("--plot", default=None, help="draw the ratios as a bar chart into this PNG")
    args = parser.parse_args(argv)
    import importlib.util

    wanted = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    modules = {"tconv": "tconv", **{runtime: runtime for runtime in _runtimes()}}
    unknown = [f for f in wanted if f not in modules]
    if unknown or "tconv" not in wanted:
        parser.error(f"--frameworks must include tconv and name only {', '.join(modules)}; received {args.frameworks}")
    frameworks = [f for f in wanted if importlib.util.find_spec(modules[f]) is not None]
    suite: list[Any]
    if args.models:
        frameworks = [f for f in frameworks if f in ("tconv", "torch")]
        suite = MODELS
        label = "models"
    elif args.sweep is not None:
        suite = sweep(args.sweep, args.sweep_size, transposed=not args.forward)
        label = f"{'forward ' if args.forward else ''}sweep seed {args.sweep} ({args.sweep_size} layers)"
    else:
        suite = FORWARD_CASES if args.forward else CASES
        label = "forward suite" if args.forward else "suite"
    if args.batch is not None:
        suite = [with_batch(c, args.batch) if isinstance(c, Case) else replace(c, batch=args.batch) for c in suite]
    if args.cases:
        names = {c.strip() for c in args.cases.split(",")}
        chosen = [c for c in suite if c.name in names]
        if len(chosen) != len(names):
            parser.error(f"--cases must name cases of the suite ({', '.join(c.name for c in suite)})")
        suite = chosen
    header = " ".join(f"{name[:9]:>9}" for name in frameworks)
    turn = f"median of {args.repeats} runs (or as many as fill {MIN_TURN_S} s, at most {MAX_RUNS})"
    print(f"threads: {args.threads}; float32; {turn} x {args.rounds} rounds; times in ms")
    print("environment set per worker (thread counts; nothing else unless listed):")
    for name in frameworks:
        extra = PEER_SETTINGS.get(name)
        print(f"  {name}: {' '.join(f'{k}={v}' for k, v in worker_environment(name, args.threads).items())}")
        if extra:
            print(f"    beyond thread counts for {name} alone: {', '.join(extra)} (log output only)")
    inherited = [f"{k}={os.environ[k]}" for k in WAIT_VARIABLES if k in os.environ]
    print(f"  inherited wait settings from the caller's environment: {', '.join(inherited) or 'none'}")
    print("  the peers' own messages (standard error) go to a file each, named only where a peer's process dies")
    if args.sweep is not None:
        for case in suite:
            if isinstance(case, Case):
                print(f"  {case.name}: {case.describe()}  ({case.flops / 1e9:.3f} GFLOP)")
    print(
        f"{'case':<22} {header} {'/torch':>5} {'/fastest peer':<17} {'GFLOP/s':>7} {'GEMM':>6} {'%GEMM':>6} "
        f"{'peak/bound MiB':>14}"
    )
    rate, rows = run(frameworks, suite, args.rounds, args.repeats, args.threads)
    print(
        f"measured float32 GEMM rate: {rate:.1f} GFLOP/s (median through the run; "
        f"each row's %GEMM is against the rate measured in its own rounds)"
    )
    for line in summarize(rows, label):
        print(line)
    over = [r for r in rows if r.peak_mib > r.bound_mib]
    if not args.models:
        print(f"cases over the memory bound: {', '.join(r.case for r in over) or 'none'}")
    for row in rows:
        for name, error in row.errors.items():
            print(f"note: {name} could not run {row.case} ({row.kind}): {error}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "gemm_gflops": rate,
                    "threads": args.threads,
                    "frameworks": frameworks,
                    "sweep": args.sweep,
                    "forward": args.forward,
                    "models": args.models,
                    "environment": {name: worker_environment(name, args.threads) for name in frameworks},
                    "cases": [asdict(c) for c in suite],
                    "rows": [{**asdict(r), "vs_torch": r.vs_torch} for r in rows],
                },
                handle,
                indent=1,
            )
    if args.plot:
        plot_ratios([asdict(r) for r in rows], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
