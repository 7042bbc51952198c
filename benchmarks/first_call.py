"""How long a new process waits for tconv's first calls, with the compiled-code cache already on disk.

Each row runs in a fresh Python process (the environment as it is: nothing set here), so numba's import and the
loading of cached kernels are counted where a user meets them. The first round warms the cache on disk; the
rounds after it are the numbers that count ("warm install"). Prints a table of medians:

    python benchmarks/first_call.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import tconv
t1 = time.perf_counter()
x = np.random.default_rng(0).standard_normal((2, 16, 12, 12)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((16, 8, 4, 4)).astype(np.float32)
tconv.conv_transpose(x, w, stride=2, padding=1)
t2 = time.perf_counter()
tconv.conv_transpose(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, stride=2, padding=1, channels_last=True)
t3 = time.perf_counter()
y = tconv.conv_transpose(x, w, stride=2, padding=1)
tconv.conv_transpose_grad(np.ones_like(y), x, w, stride=2, padding=1)
t4 = time.perf_counter()
tconv.conv(x, np.ones((8, 16, 3, 3), np.float32), padding=1)
t5 = time.perf_counter()
print(json.dumps({"import tconv": t1 - t0, "first conv_transpose": t2 - t1, "first channels-last call": t3 - t2,
                  "first gradient": t4 - t3, "first conv": t5 - t4, "all of it": t5 - t0}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes after the warm-up (default 5)")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    for round_ in range(args.rounds + 1):
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
        if round_ == 0:
            continue  # the warm-up: it may compile and write the cache
        for name, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
            samples.setdefault(name, []).append(seconds)
    print(f"fresh processes, compiled-code cache on disk; median of {args.rounds} (min .. max), seconds")
    for name, values in samples.items():
        print(f"{name:<26} {statistics.median(values):6.2f}   ({min(values):.2f} .. {max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
