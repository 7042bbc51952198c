"""The algorithms the engine chooses among, each one object (the interface
:class:`tconv.engine.registry.Algorithm`).

:mod:`~tconv.implementations.array_api`: ``taps``, ``gemm``, ``direct``, ``depth_to_space``, for any array
library. :mod:`~tconv.implementations.compiled`: ``jit_gemm``, ``jit_pixels``, ``jit_patches``,
``jit_direct``, ``jit_im2col``, the numba-compiled NumPy path. Nothing here imports the engine.
"""
