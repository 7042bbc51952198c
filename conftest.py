"""Shared by every test pytest collects here (``tests/`` and the doctests in ``src/tconv``): the cost model prices
products at ``GEMM_RATE``, the rate its planner tests were written against, not at this machine's measured rate
(:mod:`tconv.implementations.compiled.machine`), so that the planner's choices they pin are the same on every
machine. ``TCONV_GEMM_RATE`` is set to it for the Pythons the tests start (the command, forked and spawned
workers, the compiled-code cache's second process), so that they plan alike too and never write the user's cache
file; ``tests/test_machine.py`` turns the measurement back on for its own tests. Likewise the cost model counts
vectors of ``VECTOR_BYTES`` (256 bits) whatever width the kernels run at (512 bits on a machine with AVX-512), here
and, through ``TCONV_PRICED_VECTOR_BYTES``, in those Pythons."""

import os

os.environ.pop("TCONV_GEMM_RATE", None)  # the source's GEMM_RATE, not one pinned in the caller's environment
os.environ.pop("TCONV_PRICED_VECTOR_BYTES", None)

from tconv import _tuning  # after the pop: _tuning reads the variable at import

_tuning.MEASURED_GEMM_RATE = 0
_tuning.PRICED_VECTOR_BYTES = _tuning.VECTOR_BYTES
os.environ["TCONV_GEMM_RATE"] = repr(_tuning.GEMM_RATE)
os.environ["TCONV_PRICED_VECTOR_BYTES"] = str(_tuning.VECTOR_BYTES)
