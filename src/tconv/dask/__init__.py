"""Exact tiled convolutions and whole networks on Dask arrays (``pip install 'tconv[dask]'``).

``tconv.conv``, ``conv_transpose``, ``conv_grad`` and ``conv_transpose_grad`` hand Dask arrays here (this
package registers the kind with the operations when tconv is imported; Dask itself is imported only when a
Dask array arrives). Every output block is computed by tconv's engine from its input block plus exactly the
halo that :mod:`tconv.shapes` derives, so the result equals the in-memory call.

* :func:`conv`, :func:`conv_transpose`, :func:`conv_grad`, :func:`conv_transpose_grad`: the operations;
* :func:`run_model`: a :mod:`tconv.nn` model run tile by tile with the stack's halo, and :func:`model_arithmetic`
  (receptive field, halo, alignment per layer);
* :func:`blend_tiles`: the usual overlap-and-blend sliding window, for comparison;
* :func:`set_block_threads`: the engine's threads per block where Dask runs blocks in parallel (default 1).
"""

from __future__ import annotations

from .._backend import register_array_kind
from . import tiling
from .blend import blend_tiles
from .network import ModelArithmetic, model_arithmetic, run_model
from .threads import block_threads, set_block_threads
from .tiling import EXTRA, conv, conv_grad, conv_transpose, conv_transpose_grad, is_dask_array

__all__ = [
    "EXTRA",
    "ModelArithmetic",
    "blend_tiles",
    "block_threads",
    "conv",
    "conv_grad",
    "conv_transpose",
    "conv_transpose_grad",
    "is_dask_array",
    "model_arithmetic",
    "run_model",
    "set_block_threads",
]

register_array_kind(is_dask_array, tiling)
