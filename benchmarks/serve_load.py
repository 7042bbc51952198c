"""A bounded load test of ``tconv serve`` on the loopback interface: prints the latency percentiles.

Starts ``python -m tconv serve --port 0`` in its own process, sends ``--requests`` requests (default 2,000) from
``--clients`` concurrent clients (default 20, one keep-alive connection each) over the page's endpoints, and stops
after ``--time-limit`` seconds whatever happens. Exits 1 if any request failed (a refused connection, a timeout, a
5xx, or a status other than the one the request expects), so it can be run as a check::

    python benchmarks/serve_load.py [--requests 2000] [--clients 20] [--time-limit 120]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

# The requests the page makes for a few layers, and one it must refuse: (path, expected status).
PATHS = [
    ("/api/explain?input=7x7&kernel=5&stride=2&padding=same&framework=keras", 200),
    ("/api/translate?input=7x7&kernel=5&stride=2&padding=same&framework=keras", 200),
    ("/api/steps?input=7x7&kernel=5&stride=2&padding=same&framework=keras", 200),
    ("/api/taps?input=7x7&kernel=5&stride=2&padding=same&framework=keras", 200),
    ("/api/matrix?input=7x7&kernel=5&stride=2&padding=same&framework=keras", 200),
    (
        "/api/steps?input=2x2&kernel=3&stride=2&padding=valid&framework=tensorflow&x=%5B%5B-67%2C-77%5D%2C%5B-117"
        "%2C-127%5D%5D&w=%5B%5B-1%2C2%2C-3%5D%2C%5B4%2C-5%2C6%5D%2C%5B-7%2C8%2C-9%5D%5D",
        200,
    ),
    ("/api/explain?input=3x3x3&kernel=3&stride=2&padding=1&output-padding=1", 200),
    ("/api/explain?input=7x&kernel=3", 400),
    ("/", 200),
]


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method."""
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def run(requests: int, clients: int, time_limit: float) -> int:
    process = subprocess.Popen(
        [sys.executable, "-m", "tconv", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        url = next((word for word in line.split() if word.startswith("http://")), None)
        if url is None:
            print(f"the server did not start: {line!r}", file=sys.stderr)
            return 1
        address = urllib.parse.urlsplit(url)
        deadline = time.monotonic() + time_limit
        latencies: list[float] = []
        failures: list[str] = []
        counter = iter(range(requests))
        lock = threading.Lock()

        def client() -> None:
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
            while time.monotonic() < deadline:
                with lock:
                    number = next(counter, None)
                if number is None:
                    break
                path, expected = PATHS[number % len(PATHS)]
                start = time.perf_counter()
                try:
                    connection.request("GET", path)
                    response = connection.getresponse()
                    response.read()
                    problem = None if response.status == expected else f"{path}: status {response.status}"
                except (OSError, http.client.HTTPException) as err:
                    problem = f"{path}: {type(err).__name__}: {err}"
                    connection.close()
                    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if problem:
                        failures.append(problem)
            connection.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=10)

    done = len(latencies)
    ordered = sorted(ms * 1000 for ms in latencies)
    print(
        f"tconv serve on {address.hostname}:{address.port}: {done} requests from {clients} clients in {wall:.1f} s "
        f"({done / wall:.0f} requests/s), {len(failures)} failed"
    )
    if ordered:
        print(
            "latency ms: "
            + ", ".join(f"p{q} {percentile(ordered, q):.1f}" for q in (50, 90, 95, 99))
            + f", max {ordered[-1]:.1f}, mean {statistics.fmean(ordered):.1f}"
        )
    for problem in failures[:10]:
        print(f"  failed: {problem}")
    if done < requests:
        print(f"stopped by the time limit ({time_limit:.0f} s) after {done} of {requests} requests")
    return 1 if failures or done < requests else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds (default 120)")
    args = parser.parse_args(argv)
    return run(args.requests, args.clients, args.time_limit)


if __name__ == "__main__":
    sys.exit(main())
