"""Every framework's conventions, translated into tconv's single description.

One module per framework, each taking that framework's own argument names,
order, layouts and defaults and calling :func:`tconv.conv` /
:func:`tconv.conv_transpose` (so the arithmetic exists once):

* :mod:`tconv.compat.torch`: ``torch.nn.functional.conv*d`` and ``conv_transpose*d``;
* :mod:`tconv.compat.tensorflow`: ``tf.nn.conv*d_transpose``, ``conv_transpose``,
  ``conv*d``, ``convolution``;
* :mod:`tconv.compat.keras`: Keras 3's output-length and padding rules and
  ``keras.ops.conv``/``conv_transpose``;
* :mod:`tconv.compat.onnx`: ONNX ``Conv`` and ``ConvTranspose`` (opset 22);
* :mod:`tconv.compat.jax`: ``jax.lax.conv_general_dilated`` and ``conv_transpose``;
* :mod:`tconv.compat.paddle`: ``paddle.nn.functional.conv*d_transpose``.

None of them imports the framework it imitates; they run on any array library.
"""

from ._common import FORWARD_LAYOUTS, FRAMEWORKS, TRANSPOSED_LAYOUTS, convert_weight

__all__ = ["FORWARD_LAYOUTS", "FRAMEWORKS", "TRANSPOSED_LAYOUTS", "convert_weight"]
