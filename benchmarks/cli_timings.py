"""How long the command's figure-drawing runs take, each in a fresh process (imports included), as a table.

    python benchmarks/cli_timings.py [--repeats 3]

Rows: ``tconv explain --out`` of a 2-D Keras layer (the DCGAN layer, 7x7, kernel 5, stride 2, 'same') and of
a 3-D layer (4x4x4, kernel 3, stride 2), and ``tconv tour --out``. Each row gives the best and the median wall
time of ``--repeats`` runs and, from the command's own progress lines, the seconds until the text report was
printed and the slowest figure. The numbers depend on the machine and on what else runs on it; they are read,
never asserted.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = {
    "explain --out, 2-D Keras layer": [
        "explain",
        "--input",
        "7x7",
        "--kernel",
        "5",
        "--stride",
        "2",
        "--padding",
        "same",
        "--framework",
        "keras",
    ],
    "explain --out, 3-D layer": ["explain", "--input", "4x4x4", "--kernel", "3", "--stride", "2"],
    "tour --out": ["tour"],
}


def _one(argv: list[str]) -> tuple[float, float, float]:
    """Wall time, seconds to the first line of the report, slowest figure (from its progress line)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "tconv", *argv, "--out", out],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        first = None
        slowest = 0.0
        for line in process.stdout:
            if first is None:
                first = time.perf_counter() - start
            found = re.search(r"wrote .* \((\d+\.\d+)s\)$", line.strip())
            if found:
                slowest = max(slowest, float(found.group(1)))
        if process.wait() != 0:
            raise SystemExit(f"tconv {' '.join(argv)} failed")
        return time.perf_counter() - start, first or 0.0, slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'command':<34} {'best':>7} {'median':>7} {'report at':>10} {'slowest figure':>15}")
    for name, argv in RUNS.items():
        runs = [_one(argv) for _ in range(args.repeats)]
        walls = [r[0] for r in runs]
        first = statistics.median(r[1] for r in runs)
        slowest = statistics.median(r[2] for r in runs)
        print(f"{name:<34} {min(walls):>6.1f}s {statistics.median(walls):>6.1f}s {first:>9.1f}s {slowest:>14.1f}s")


if __name__ == "__main__":
    main()
