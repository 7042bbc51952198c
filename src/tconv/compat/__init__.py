"""``tconv.compat``: the public name of the framework modules in :mod:`tconv.frameworks`.

``tconv.compat.torch`` *is* ``tconv.frameworks.torch`` (and so on for every registered framework),
registered under both names, so ``from tconv.compat import torch as F`` and ``import tconv.compat.keras``
work. The six frameworks are imported by name for type checkers; any other registered framework's
module is added by the loop over the registry.
"""

import sys

from ..frameworks import (
    FORWARD_LAYOUTS,
    FRAMEWORKS,
    REGISTRY,
    TRANSPOSED_LAYOUTS,
    convert_weight,
    jax,
    keras,
    onnx,
    paddle,
    tensorflow,
    torch,
)

for _name, _framework in REGISTRY.items():
    _module = sys.modules[type(_framework).__module__]
    globals()[_name] = _module
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _framework, _module

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
