"""tconv: convolution and transposed convolution, exactly as every framework computes them.

The public surface:

* :func:`conv`, :func:`conv_transpose`: N-d operations on NumPy and any
  Array-API array (PyTorch, CuPy, JAX, array-api-strict), returning the
  caller's array type;
* :func:`conv_grad`, :func:`conv_transpose_grad`: their gradients with respect to
  input, weight and bias, written as convolutions;
* :func:`conv_matrix`: the sparse matrix ``C`` of a convolution, whose transpose
  is the transposed convolution (needs SciPy);
* :mod:`tconv.shapes`: the output-size arithmetic, padding resolution and
  solving, and the equivalent direct convolution, on plain integers;
* :mod:`tconv.compat`: each framework's own functions and argument rules
  (PyTorch, TensorFlow, Keras, ONNX, JAX, Paddle), and weight-layout conversion;
* :func:`translate`: one framework's layer written in every other's, with the
  extra crop, pad or split a target needs;
* :mod:`tconv.nn`: layers (PyTorch- and Keras-flavoured) that train on NumPy,
  with losses, optimizers, summaries and weight loading;
* :mod:`tconv.models`: the seeds' models (DCGAN, Inception, ResNet bottleneck,
  learned upsampling, U-Net) and the demos that train them;
* :mod:`tconv.dask`: the operations and :mod:`tconv.nn` models on Dask arrays, tiled exactly (the
  ``dask`` extra; ``tconv.conv`` and the others hand Dask arrays to it);
* :class:`ConvSpec`: the one resolved description of a convolution that every
  entry point builds.
"""

from . import compat, dask, models, nn, shapes
from .engine import algorithms, avoid_algorithms, use_algorithm
from .grad import conv_grad, conv_transpose_grad
from .matrix import conv_matrix
from .ops import conv, conv_transpose
from .spec import ConvSpec
from .tools.translate import translate

__version__ = "0.1.0"

__all__ = [
    "ConvSpec",
    "__version__",
    "algorithms",
    "avoid_algorithms",
    "compat",
    "conv",
    "conv_grad",
    "conv_matrix",
    "conv_transpose",
    "conv_transpose_grad",
    "dask",
    "models",
    "nn",
    "shapes",
    "translate",
    "use_algorithm",
]
