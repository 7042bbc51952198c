"""``tconv bench`` / ``python -m tconv.tools.bench``: tconv against PyTorch and the other frameworks, side by side.

Float32, after warm-up, the median of repeated runs, every framework with the same
number of threads and in a process of its own (TensorFlow loaded beside PyTorch
slows PyTorch down several times), the processes taking turns round by round so
that drift in the machine hits all of them. First it measures the machine's
float32 matrix-multiply rate (NumPy's BLAS), and again at the start of every
round in tconv's process, so that each case's percentage of it is against the rate
of its own moment (the machine's speed drifts). Per case it prints the times, the
ratio tconv/PyTorch, the ratio tconv/fastest peer, tconv's GFLOP/s
(``2 * N * C_in * C_out/groups * prod(k) * prod(input spatial)``), its percentage
of the GEMM rate and tconv's peak temporary memory; then the geometric means and
the worst case. ``--json PATH`` writes the table; ``--plot PATH`` draws the ratios.
Nothing here is a test: the targets are read off the table.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import shapes
from ..frameworks import REGISTRY, Framework
from ..frameworks.base import BenchmarkCase

__all__ = ["CASES", "Case", "main", "run"]


@dataclass(frozen=True)
class Case:
    name: str
    x: tuple[int, ...]  # (N, C_in, *spatial)
    c_out: int
    kernel: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    grad: bool = False
    channels_last: bool = False

    @property
    def weight(self) -> tuple[int, ...]:
        return (self.x[1], self.c_out // self.groups, *self.kernel)

    @property
    def flops(self) -> float:
        return (
            2.0 * self.x[0] * self.x[1] * (self.c_out // self.groups) * math.prod(self.kernel) * math.prod(self.x[2:])
        )

    def options(self) -> dict[str, Any]:
        return dict(
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            groups=self.groups,
        )


CASES = [
    Case("keras-dcgan-1", (64, 256, 7, 7), 128, (5, 5), 1, 2),
    Case("keras-dcgan-2", (64, 128, 7, 7), 64, (5, 5), 2, 2, 1, grad=True),
    Case("keras-dcgan-3", (64, 64, 14, 14), 1, (5, 5), 2, 2, 1),
    Case("dcgan64-1", (64, 100, 1, 1), 512, (4, 4), 1, 0),
    Case("dcgan64-2", (64, 512, 4, 4), 256, (4, 4), 2, 1),
    Case("dcgan64-3", (64, 256, 8, 8), 128, (4, 4), 2, 1, grad=True),
    Case("dcgan64-4", (64, 128, 16, 16), 64, (4, 4), 2, 1),
    Case("dcgan64-5", (64, 64, 32, 32), 3, (4, 4), 2, 1),
    Case("dcgan64-3-nhwc", (64, 256, 8, 8), 128, (4, 4), 2, 1, channels_last=True),
    Case("unet-up", (1, 512, 32, 32), 256, (2, 2), 2),
    Case("unet-up-large", (1, 128, 128, 128), 64, (2, 2), 2, grad=True),
    Case("fcn32s", (1, 21, 7, 7), 21, (64, 64), 32, bias=False),
    Case("depthwise", (8, 64, 56, 56), 64, (4, 4), 2, 1, groups=64),
    Case("grouped-1d", (16, 512, 32), 512, (6,), 3, groups=512),
    Case("dilated", (8, 64, 32, 32), 64, (3, 3), 1, 2, dilation=2),
    Case("unet3d-up", (1, 64, 16, 16, 16), 32, (2, 2, 2), 2),
    Case("conv3d-k3s2", (1, 64, 32, 32, 32), 32, (3, 3, 3), 2, 1, 1),
    Case("hifigan-1d", (1, 512, 256), 256, (16,), 8, 4),
    Case("istft-1d", (1, 1026, 224), 1, (1024,), 256),
    Case("fsrcnn-x3", (1, 56, 64, 64), 1, (9, 9), 3, 4, 2),
]


def _arrays(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x, dtype=np.float32)
    w = rng.standard_normal(case.weight, dtype=np.float32) * 0.05
    b = rng.standard_normal(case.c_out, dtype=np.float32) if case.bias else None
    return x, w, b


# --- the workers, one per framework, each in its own process ---------------------------------------


def _prepare_tconv(case: Case, kind: str) -> Any:
    import tconv

    x, w, b = _arrays(case)
    options = case.options()
    if case.channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
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

    x, w, b = _arrays(case)
    spec = tconv.ConvSpec.build(
        transposed=True,
        input_size=case.x[2:],
        kernel_size=case.kernel,
        in_channels=case.x[1],
        out_channels=case.c_out,
        **case.options(),
    )
    return _runtimes()[runtime].benchmark(BenchmarkCase(spec, x, w, b, kind == "grad", case.channels_last, threads))


def _worker(framework: str, threads: int, connection: Any) -> None:
    """Serve ``(case, kind, repeats)`` requests with the median time in seconds (None: not available)."""
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
        case, kind, repeats = request
        key = (case.name, kind)
        try:
            if key not in cache:
                if framework == "tconv":
                    cache[key] = _prepare_tconv(case, kind)
                else:
                    cache[key] = _prepare_framework(framework, case, kind, threads)
                if cache[key] is not None:
                    cache[key]()  # warm-up
            fn = cache[key]
            if fn is None:
                connection.send(None)
                continue
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            connection.send(statistics.median(times))
        except Exception as err:  # a framework that cannot run a case is reported, not fatal
            connection.send(f"{type(err).__name__}: {err}"[:120])


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


@dataclass
class Row:
    case: str
    kind: str
    times: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    gflops: float = 0.0
    gemm_gflops: float = 0.0  # the GEMM rate measured alongside this row (median of one sample per round)
    gemm_percent: float = 0.0
    peak_mib: float = 0.0
    bound_mib: float = 0.0

    @property
    def vs_torch(self) -> float | None:
        mine, theirs = self.times.get("tconv"), self.times.get("torch")
        return mine / theirs if mine and theirs else None

    @property
    def fastest_peer(self) -> tuple[str, float] | None:
        peers = [(name, t) for name, t in self.times.items() if name != "tconv" and t]
        return min(peers, key=lambda p: p[1]) if peers else None


#: timed 2048^3 products per GEMM-rate sample (one sample per round, in tconv's process)
GEMM_REPEATS = 3

#: seconds of rest after each turn (a GEMM sample, a framework's timed runs) before the next starts. Idle
#: threads spin before they sleep: OpenBLAS's for 2^28 cycles (about 0.1 s here) after a multi-threaded
#: product, Eigen's (TensorFlow, JAX) for a while too. Measured here: right after the GEMM sample, tconv's
#: keras-dcgan-2 ran in 16 ms instead of 8.6 while OpenBLAS's threads spun on the same two cores.
SETTLE_S = 0.25


def run(frameworks: list[str], cases: list[Case], rounds: int, repeats: int, threads: int) -> tuple[float, list[Row]]:
    """Time every case; return the GEMM rate (median of all samples taken through the run) and the rows.

    The machine's speed drifts (on shared machines by 10-15% between runs), so the GEMM rate is not taken
    once: every round begins with a sample of it in tconv's process, and each row's %GEMM is against the
    median of the samples taken in that row's own rounds.
    """
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # OpenMP threads (PyTorch's) spin-wait after a parallel region by default and steal the cores
    # from whichever framework runs next; the frameworks take turns, so their threads must sleep.
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["KMP_BLOCKTIME"] = "0"
    first = gemm_rate(threads)  # before the workers start, so their imports do not slow it down
    print(f"float32 GEMM rate before the workers start: {first:.1f} GFLOP/s", flush=True)
    all_rates: list[float] = []
    context = mp.get_context("spawn")
    workers = {}
    for name in frameworks:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(name, threads, child), daemon=True)
        process.start()
        workers[name] = (process, parent)
    rows = []
    try:
        for case in cases:
            for kind in ("forward", "grad") if case.grad else ("forward",):
                samples: dict[str, list[float]] = {name: [] for name in frameworks}
                row = Row(case.name, kind)
                rates = []
                for _ in range(rounds):
                    workers["tconv"][1].send(("gemm", GEMM_REPEATS))
                    rates.append(workers["tconv"][1].recv())
                    for name, (_, connection) in workers.items():
                        time.sleep(SETTLE_S)
                        connection.send((case, kind, repeats))
                        answer = connection.recv()
                        if isinstance(answer, float):
                            samples[name].append(answer)
                        elif isinstance(answer, str):
                            row.errors[name] = answer
                row.times = {name: (statistics.median(v) if v else None) for name, v in samples.items()}
                mine = row.times.get("tconv")
                flops = case.flops * (2 if kind == "grad" else 1)
                row.gflops = flops / mine / 1e9 if mine else 0.0
                row.gemm_gflops = statistics.median(rates)
                row.gemm_percent = 100 * row.gflops / row.gemm_gflops
                all_rates += rates
                row.peak_mib = peak_memory(case, kind)
                out_bytes = (
                    4
                    * case.x[0]
                    * case.c_out
                    * math.prod(
                        shapes.conv_transpose_output_size(
                            n,
                            k,
                            stride=case.stride,
                            padding=case.padding,
                            output_padding=case.output_padding,
                            dilation=case.dilation,
                        )
                        for n, k in zip(case.x[2:], case.kernel)
                    )
                )
                row.bound_mib = max(256.0, 2 * out_bytes / 2**20)
                rows.append(row)
                print(_format_row(row, frameworks), flush=True)
    finally:
        for process, connection in workers.values():
            connection.send(None)
            process.join(timeout=10)
    return (statistics.median(all_rates) if all_rates else first), rows


def _ms(value: float | None) -> str:
    return f"{value * 1e3:9.2f}" if value else "        -"


def _format_row(row: Row, frameworks: list[str]) -> str:
    peer = row.fastest_peer
    mine = row.times.get("tconv")
    vs_peer = f"{mine / peer[1]:5.2f} {peer[0]:<11}" if peer and mine else " " * 17
    vs_torch = f"{row.vs_torch:5.2f}" if row.vs_torch else "    -"
    times = " ".join(_ms(row.times.get(name)) for name in frameworks)
    return (
        f"{row.case + (' (grad)' if row.kind == 'grad' else ''):<22} {times} {vs_torch} {vs_peer} "
        f"{row.gflops:7.1f} {row.gemm_gflops:6.1f} {row.gemm_percent:5.1f}% {row.peak_mib:8.1f}/{row.bound_mib:.0f}"
    )


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


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
    cases = CASES
    if args.cases:
        names = {c.strip() for c in args.cases.split(",")}
        cases = [c for c in CASES if c.name in names]
        if len(cases) != len(names):
            parser.error(f"--cases must name cases of the suite ({', '.join(c.name for c in CASES)})")
    header = " ".join(f"{name[:9]:>9}" for name in frameworks)
    print(f"threads: {args.threads}; float32; median of {args.repeats} runs x {args.rounds} rounds; times in ms")
    print(
        f"{'case':<22} {header} {'/torch':>5} {'/fastest peer':<17} {'GFLOP/s':>7} {'GEMM':>6} {'%GEMM':>6} "
        f"{'peak/bound MiB':>14}"
    )
    rate, rows = run(frameworks, cases, args.rounds, args.repeats, args.threads)
    vs_torch = [r.vs_torch for r in rows if r.vs_torch]
    vs_peer = [mine / peer[1] for r in rows if (peer := r.fastest_peer) is not None and (mine := r.times.get("tconv"))]
    worst = max(rows, key=lambda r: r.vs_torch or 0.0) if rows else None
    print(
        f"measured float32 GEMM rate: {rate:.1f} GFLOP/s (median through the run; "
        f"each row's %GEMM is against the rate measured in its own rounds)"
    )
    print(
        f"geometric mean tconv/torch: {_geomean(vs_torch):.2f} over {len(vs_torch)} rows; "
        f"tconv/fastest peer: {_geomean(vs_peer):.2f}"
    )
    if worst is not None and worst.vs_torch:
        print(f"worst case vs torch: {worst.case} ({worst.kind}) at {worst.vs_torch:.2f}")
    over = [r for r in rows if r.peak_mib > r.bound_mib]
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
                    "rows": [{**asdict(r), "vs_torch": r.vs_torch} for r in rows],
                },
                handle,
                indent=1,
            )
    if args.plot:
        plot_ratios([asdict(r) for r in rows], args.plot)
    return 0


def plot_ratios(rows: list[dict[str, Any]], path: str) -> None:
    """Bar chart of tconv/PyTorch and tconv/fastest peer per row (rows as in the ``--json`` table)."""
    from .._plotting import pyplot

    def ratio(row: dict[str, Any], peers: list[str]) -> float:
        mine = row["times"].get("tconv")
        theirs = [row["times"][p] for p in peers if row["times"].get(p)]
        return mine / min(theirs) if mine and theirs else 0.0

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
    labels = [r["case"] + (" grad" if r["kind"] == "grad" else "") for r in rows]
    positions = range(len(rows))
    others = sorted({name for r in rows for name in r["times"] if name != "tconv"})
    ax.bar([p - 0.2 for p in positions], [ratio(r, ["torch"]) for r in rows], width=0.4, label="tconv / PyTorch")
    ax.bar([p + 0.2 for p in positions], [ratio(r, others) for r in rows], width=0.4, label="tconv / fastest peer")
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(list(positions), labels, rotation=70, fontsize=7)
    ax.set_ylabel("time ratio (below 1: tconv faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
