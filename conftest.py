"""Shared by every test pytest collects here (``tests/`` and the doctests in ``src/tconv``): the cost model prices
products at ``GEMM_RATE``, the rate its planner tests were written against, not at this machine's measured rate
(:mod:`tconv.implementations.compiled.machine`), so that the planner's choices they pin are the same on every
machine. ``TCONV_GEMM_RATE`` is set to it for the Pythons the tests start (the command, forked and spawned
workers, the compiled-code cache's second process), so that they plan alike too and never write the user's cache
file; ``tests/test_machine.py`` turns the measurement back on for its own tests."""

import os

os.environ.pop("TCONV_GEMM_RATE", None)  # the source's GEMM_RATE, not one pinned in the caller's environment

from tconv import _tuning  # after the pop: _tuning reads the variable at import

_tuning.MEASURED_GEMM_RATE = 0
os.environ["TCONV_GEMM_RATE"] = repr(_tuning.GEMM_RATE)
