"""What this machine charges for the team's two kinds of traffic: waking a sleeping thread, and reading what another
core wrote.

    python benchmarks/machine_costs.py [--rounds N]

It prints, each a median over ``N`` rounds (default 200; the copies ``N / 4``, after five rounds left out):

* ``wake``: a thread blocked on a lock until another releases it, from the release to the thread running again
  (both hold the GIL in turn, as a team run's threads do), after the waker had run for 20 us and for 1 ms: on a
  virtual machine whose idle CPUs halt, each such wake-up goes through the hypervisor;
* ``team run``: :func:`tconv.implementations.compiled.team.run` of two products that take ``T`` alone on one BLAS
  thread (threadpoolctl's limit and restore included), against ``T`` (the ideal run takes ``T`` on two cores);
* ``copy``: a 1.3 MB transposing copy by the calling thread (the staging copy of a channels-first (40, 67, 11, 11)
  output, ``blocked._run_across``, which NumPy's copy makes: ``transpose.copy`` declines matrices of 121 rows), of data
  it wrote itself and of data the team wrote (half on each core).

The numbers are the machine's, not tconv's: read them before a change that trades a copy or a hand-off for
parallel work (docs/design.md, "What a hand-off costs here"). A measuring script, nothing in it is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import numpy as np

from tconv.implementations.compiled import geometry, team, transpose


def _wake(rounds: int, busy: float) -> float:
    """Median seconds from a lock's release to the thread blocked on it running, the releaser busy ``busy`` first."""
    gate, back = threading.Lock(), threading.Lock()
    gate.acquire()
    back.acquire()
    released = [0.0]
    delays: list[float] = []

    def waiter() -> None:
        for _ in range(rounds):
            gate.acquire()
            delays.append(time.perf_counter() - released[0])
            back.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    for _ in range(rounds):
        start = time.perf_counter()
        while time.perf_counter() - start < busy:
            pass
        released[0] = time.perf_counter()
        gate.release()
        back.acquire()
    thread.join()
    return statistics.median(delays)


def _median(call: Callable[[], None], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = max(1, parser.parse_args().rounds)
    for busy in (20e-6, 1e-3):
        print(f"wake: {_wake(rounds, busy) * 1e6:6.1f} us (the waker busy {busy * 1e6:.0f} us first)")

    rng = np.random.default_rng(0)
    a = np.ascontiguousarray(rng.standard_normal((81, 56), dtype=np.float32))
    x = rng.standard_normal((56, 4096), dtype=np.float32)
    out = np.empty((81, 4096), np.float32)
    half = x.shape[1] // 2

    def block(start: int) -> None:
        np.matmul(a, x[:, start : start + half], out=out[:, start : start + half])

    def alone() -> None:
        with team.one_blas_thread(10**9):
            block(0)

    def both() -> None:
        team.run(block, [0, half], 2)

    for _ in range(5):
        alone()
        both()
    one, run = _median(alone, rounds), _median(both, rounds)
    print(f"team run: {run * 1e6:6.1f} us for two products of {one * 1e6:.1f} us each ({run / one:.2f} x one)")

    staged = rng.standard_normal((40, 121, 67), dtype=np.float32)
    target = geometry.moved(np.empty((40, 67, 121), np.float32), 1, -1)
    halves = staged.reshape(2, -1)

    def own() -> None:
        staged.fill(1.0)
        start = time.perf_counter()
        transpose.assign(target, staged)
        own_times.append(time.perf_counter() - start)

    def others() -> None:
        team.run(lambda i: halves[i].fill(1.0), [0, 1], 2)
        start = time.perf_counter()
        transpose.assign(target, staged)
        other_times.append(time.perf_counter() - start)

    own_times: list[float] = []
    other_times: list[float] = []
    for _ in range(rounds // 4 + 5):
        own()
        others()
    mine, theirs = statistics.median(own_times[5:]), statistics.median(other_times[5:])
    print(
        f"copy: {mine * 1e6:6.1f} us of data this thread wrote, {theirs * 1e6:.1f} us of data the team wrote "
        f"({theirs / mine:.2f} x)"
    )


if __name__ == "__main__":
    main()
