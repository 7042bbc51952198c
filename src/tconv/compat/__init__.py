"""``tconv.compat``: the public name of the framework front ends in :mod:`tconv.frameworks`.

``tconv.compat.torch`` *is* ``tconv.frameworks.torch`` (and so on for every framework), registered
under both names, so ``from tconv.compat import torch as F`` and ``import tconv.compat.keras`` work.
"""

import sys

from ..frameworks import (
    FORWARD_LAYOUTS,
    FRAMEWORKS,
    TRANSPOSED_LAYOUTS,
    convert_weight,
    jax,
    keras,
    onnx,
    paddle,
    tensorflow,
    torch,
)

for _module in (jax, keras, onnx, paddle, tensorflow, torch):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module

__all__ = [
    "FORWARD_LAYOUTS",
    "FRAMEWORKS",
    "TRANSPOSED_LAYOUTS",
    "convert_weight",
    "jax",
    "keras",
    "onnx",
    "paddle",
    "tensorflow",
    "torch",
]
