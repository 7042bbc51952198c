"""Every framework's conventions, translated into tconv's single description.

One module per framework, each holding that framework's array functions (its own
argument names, order, layouts and defaults, calling :func:`tconv.conv` /
:func:`tconv.conv_transpose`, so the arithmetic exists once) and its
:class:`~tconv.frameworks.base.Framework` (``FRAMEWORK``: how to read its call, how to
write a layer as its call):

* :mod:`tconv.compat.torch`: ``torch.nn.functional.conv*d`` and ``conv_transpose*d``;
* :mod:`tconv.compat.tensorflow`: ``tf.nn.conv*d_transpose``, ``conv_transpose``,
  ``conv*d``, ``convolution``;
* :mod:`tconv.compat.keras`: Keras 3's output-length and padding rules and
  ``keras.ops.conv``/``conv_transpose``;
* :mod:`tconv.compat.onnx`: ONNX ``Conv`` and ``ConvTranspose`` (opset 22);
* :mod:`tconv.compat.jax`: ``jax.lax.conv_general_dilated`` and ``conv_transpose``;
* :mod:`tconv.compat.paddle`: ``paddle.nn.functional.conv*d_transpose``.

None of them imports the framework it imitates; they run on any array library.
:data:`REGISTRY` holds the frameworks, one registration line each, in the order
:func:`tconv.translate` writes them; adding a framework is one module and one line here.
"""

from . import jax, keras, onnx, paddle, tensorflow, torch
from ._common import is_channels_last
from .base import REGISTRY, Framework, FrameworkCall, Options, convert_weight, get, register

register(torch.FRAMEWORK)
register(tensorflow.FRAMEWORK)
register(keras.FRAMEWORK)
register(onnx.FRAMEWORK)
register(jax.FRAMEWORK)
register(paddle.FRAMEWORK)

#: the registered frameworks' names, and their transposed and forward weight layouts
FRAMEWORKS = tuple(REGISTRY)
TRANSPOSED_LAYOUTS = {name: framework.transposed_layout for name, framework in REGISTRY.items()}
FORWARD_LAYOUTS = {name: framework.forward_layout for name, framework in REGISTRY.items()}

__all__ = [
    "FORWARD_LAYOUTS",
    "FRAMEWORKS",
    "REGISTRY",
    "TRANSPOSED_LAYOUTS",
    "Framework",
    "FrameworkCall",
    "Options",
    "convert_weight",
    "get",
    "is_channels_last",
    "register",
]
