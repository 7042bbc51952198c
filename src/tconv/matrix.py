"""The matrix view: a convolution as a sparse matrix ``C``, a transposed convolution as ``C^T``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from ._geometry import tap_windows
from .ops import parse_call
from .spec import PaddingArg

__all__ = ["conv_matrix"]


def conv_matrix(
    input_shape: Sequence[int],
    weight: Any,
    /,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    format: str = "csr",
) -> Any:
    """The sparse matrix ``C`` of a convolution: ``conv(x).ravel() == C @ x.ravel()``.

    For one sample ``x`` of shape ``input_shape = (C_in, *spatial)`` (channels
    first), ``C`` has one row per output element and one column per input
    element, both in C order of ``(channel, *spatial)``, so ``C`` has shape
    ``(C_out * prod(out_spatial), C_in * prod(spatial))``. Row ``r`` holds the
    kernel taps that output ``r`` sums over; taps that fall into the padding
    have no column, which is what makes ``C`` sparse.

    A transposed convolution with the same weight and options is ``C^T``:
    ``conv_transpose(y, weight, stride=..., padding=..., dilation=..., groups=...,
    output_size=spatial).ravel() == C.T @ y.ravel()`` (seed 002: ``y = Cx``,
    ``x' = C^T y``). Entries are the weight's values; a weight element that is 0
    is still stored, so the sparsity pattern depends only on the shapes.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C_in, *spatial)`` of one sample.
    weight : array
        ``(C_out, C_in/groups, *kernel)``, as for :func:`tconv.conv`. Anything
        NumPy can read; the matrix is a SciPy matrix whatever the library.
    stride, padding, dilation, groups :
        As for :func:`tconv.conv`.
    format : str
        A scipy.sparse format name (``'csr'``, ``'csc'``, ``'coo'``, ...).

    Returns
    -------
    scipy.sparse matrix
        Needs SciPy (``pip install 'tconv[sparse]'``).

    Examples
    --------
    Seed 002: a 4x4 input and a 3x3 kernel (here ``w[r, c] = 3r + c + 1``) give
    a 4x16 ``C``; every row is the kernel laid along the flattened input:

    >>> import numpy as np
    >>> import tconv
    >>> w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    >>> C = tconv.conv_matrix((1, 4, 4), w)
    >>> C.shape
    (4, 16)
    >>> C.toarray().astype(int)
    array([[1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0],
           [0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0],
           [0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0],
           [0, 0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9]])
    >>> y = np.array([1.0, 10.0, 100.0, 1000.0])
    >>> np.array_equal(C.T @ y, tconv.conv_transpose(y.reshape(1, 2, 2), w).ravel())
    True
    """
    try:
        import scipy.sparse
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("conv_matrix needs SciPy; install it with pip install 'tconv[sparse]'") from None

    if array_api_compat.is_torch_array(weight):
        weight = weight.detach().cpu().numpy()
    try:
        w = np.asarray(weight)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"weight must be an array NumPy can read; received {type(weight).__name__} ({err})") from None
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise TypeError(f"input_shape must be a sequence (C_in, *spatial) of ints; received {input_shape!r}")
    shape = tuple(int(n) for n in input_shape)
    if any(n < 1 for n in shape):
        raise ValueError(f"input_shape must be positive on every axis; received {input_shape!r}")
    # Validate everything exactly as tconv.conv does, on a view that costs no memory.
    call = parse_call(
        False,
        np.broadcast_to(np.zeros((), dtype=w.dtype), shape),
        w,
        None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        channels_last=False,
    )
    spec = call.spec
    if call.batched:
        raise ValueError(
            f"input_shape must be (C_in, *spatial) of one sample, with {spec.ndim} spatial axes to match "
            f"weight of shape {w.shape}; received {shape}"
        )
    c_out, c_in = spec.out_channels, spec.in_channels
    c_in_g, c_out_g = c_in // spec.groups, c_out // spec.groups
    n_out, n_in = int(np.prod(spec.output_size)), int(np.prod(spec.input_size))
    taps = w.reshape(c_out, c_in_g, -1)
    out_channel = np.arange(c_out)[:, None, None]
    in_channel = (out_channel // c_out_g) * c_in_g + np.arange(c_in_g)[None, :, None]

    rows, cols, values = [], [], []
    for t, _, x_index, out_index in tap_windows(spec):
        out_flat = np.ravel_multi_index(
            np.ix_(*(np.arange(n)[sl] for n, sl in zip(spec.output_size, out_index))), spec.output_size
        ).ravel()
        in_flat = np.ravel_multi_index(
            np.ix_(*(np.arange(n)[sl] for n, sl in zip(spec.input_size, x_index))), spec.input_size
        ).ravel()
        block = (c_out, c_in_g, out_flat.size)
        rows.append(np.broadcast_to(out_channel * n_out + out_flat, block).ravel())
        cols.append(np.broadcast_to(in_channel * n_in + in_flat, block).ravel())
        values.append(np.broadcast_to(taps[:, :, t, None], block).ravel())
    matrix_shape = (c_out * n_out, c_in * n_in)
    if not rows:
        return scipy.sparse.coo_matrix(matrix_shape, dtype=w.dtype).asformat(format)
    coo = scipy.sparse.coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=matrix_shape
    )
    return coo.asformat(format)
