"""Shared by every test pytest collects here (``tests/`` and the doctests in ``src/tconv``): the cost model prices
products at ``GEMM_RATE``, the rate its planner tests were written against, not at this machine's measured rate
(:mod:`tconv.implementations.compiled.machine`), so that the planner's choices they pin are the same on every
machine. The tests of the measurement itself turn it back on for themselves (``tests/test_machine.py``)."""

from tconv import _tuning

_tuning.MEASURED_GEMM_RATE = 0
