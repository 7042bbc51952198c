"""Gradients of the convolution and the transposed convolution.

The mapping, per spatial axis (stride ``s``, dilation ``d``, padding ``(lo, hi)``):

===========================  ===========================================================
forward                      gradient with respect to the input
===========================  ===========================================================
``y = conv(x, W)``           ``dx = conv_transpose(dy, W)`` with the same stride,
                             dilation, padding and groups, and ``output_size`` = x's
                             size (a stride ``s`` convolution drops up to ``s - 1``
                             trailing inputs; the output size brings them back, with
                             gradient 0 where they were dropped).
``y = conv_transpose(x, W)`` ``dx = conv(dy, W)`` with the same stride, dilation,
                             padding and groups, cropped to x's size (an output
                             padding of ``s`` or more, possible when ``d > s``, lets
                             the convolution see further than x).
===========================  ===========================================================

The weight is the same array in both: a convolution's ``(C_out, C_in/G, *k)``
is the ``(C_in', C_out'/G, *k)`` of the transposed convolution that maps
``dy`` (``C_out`` channels) back to ``C_in`` channels, and the other way round.
So each input gradient is literally a call of the other direction's forward
operation, through the same argument parsing and the same engine.

The weight gradient is a correlation of the input with the output gradient,
``dW[i] = sum_{n, o} dy[n, o] x[n, o*s + i*d - lo]`` (the output gradient acts as
the kernel, with stride and dilation exchanged); the engine evaluates it tap by
tap on the windows of the forward pass (``tconv.implementations.array_api``), or
from an im2col on the compiled path (``tconv.implementations.compiled.im2col``). The
bias gradient is ``dy`` summed over the batch and the spatial axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from . import engine
from ._backend import Array, handled_elsewhere
from .engine.layout import finish
from .ops import Call, conv, conv_transpose, parse_call
from .spec import PaddingArg

__all__ = ["conv_grad", "conv_transpose_grad"]


def _require(grad_output: Any) -> None:
    """``grad_output`` is required (``None`` would read as a forward call)."""
    if grad_output is None:
        raise TypeError("grad_output must be an array; received None")


def _bias_grad(call: Call) -> Array:
    gy = call.prepared.grad_output
    assert gy is not None  # parse_call was given grad_output
    channel_axis = gy.ndim - 1 if call.channels_last else (1 if call.batched else 0)
    return engine.run_bias_grad(call.prepared, gy, channel_axis)


def _empty_grads(call: Call) -> tuple[Array, Array, Array] | None:
    """The gradients of an empty call (an empty batch or spatial axis, :meth:`Call.is_empty`), or ``None``.

    With no input element every product is zero: the input and weight gradients are zeros
    of their shapes, and only the bias (added to the padding's windows) gets a gradient.
    """
    if not call.is_empty():
        return None
    xp, prepared = call.prepared.xp, call.prepared
    device = array_api_compat.device(prepared.x)
    zeros_x = xp.zeros(tuple(int(n) for n in prepared.x.shape), dtype=prepared.dtype, device=device)
    zeros_w = xp.zeros(tuple(int(n) for n in prepared.weight.shape), dtype=prepared.dtype, device=device)
    return zeros_x, zeros_w, _bias_grad(call)


def _parse(
    transposed: bool, grad_output: Any, x: Any, weight: Any, **options: Any
) -> Call | tuple[Array, Array, Array]:
    """The parsed call of a gradient, or its result where that needs no engine: the gradients computed by the
    handler of the arrays' kind (Dask arrays: tconv.dask), or those of an empty call."""
    if (elsewhere := handled_elsewhere(grad_output, x, weight)) is not None:
        gradients = elsewhere.conv_transpose_grad if transposed else elsewhere.conv_grad
        return gradients(grad_output, x, weight, **options)
    _require(grad_output)
    call = parse_call(transposed, x, weight, None, grad_output=grad_output, **options)
    empty = _empty_grads(call)
    return call if empty is None else empty


def _same_options(call: Call) -> dict[str, Any]:
    """The forward call's options that the input gradient's call (the other direction) takes as they are."""
    spec = call.spec
    options = {"stride": spec.stride, "padding": spec.padding, "dilation": spec.dilation, "groups": spec.groups}
    return {**options, "channels_last": call.channels_last}


def _check_input_grad(input_grad: Any) -> None:
    if not isinstance(input_grad, (bool, np.bool_)):
        raise TypeError(f"input_grad must be True or False; received {input_grad!r}")


def _without_input_grad(grads: tuple[Array, Array, Array], input_grad: bool) -> tuple[Array, Array, Array]:
    """The gradients computed elsewhere (or of an empty call), the input's dropped where it was not asked for."""
    return grads if input_grad else (None, grads[1], grads[2])


def _weight_grad(call: Call) -> Array:
    return engine.run_weight_grad(
        call.prepared,
        call.spec,
        call.prepared.grad_output,
        batched=call.batched,
        channels_last=call.channels_last,
    )


def conv_grad(
    grad_output: Array,
    x: Array,
    weight: Array,
    /,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
    input_grad: bool = True,
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`tconv.conv` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_output : array
        The loss's gradient with respect to ``conv(x, weight, ...)``, of that
        output's shape and layout.
    x, weight :
        The forward call's input and weight.
    stride, padding, dilation, groups, channels_last :
        The forward call's options, with the same meaning and rules as in
        :func:`tconv.conv`.
    input_grad : bool
        ``False``: the input's gradient is not computed (``grad_x`` is None), as
        PyTorch skips it for an input that does not require grad (a network's
        first layer): only the weight's and the bias's.

    Returns
    -------
    grad_x, grad_weight, grad_bias : arrays
        Of the shapes of ``x``, ``weight`` and ``(C_out,)``, in the caller's array
        library and dtype. ``grad_x`` is ``conv_transpose(grad_output, weight)``
        with the same options and ``output_size`` equal to ``x``'s spatial size
        (None with ``input_grad=False``).

    Examples
    --------
    >>> import numpy as np
    >>> import tconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 3, 3))
    >>> gx, gw, gb = tconv.conv_grad(np.ones((1, 1, 2, 2)), x, w)
    >>> gx[0, 0]  # how many outputs each input reaches
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]])
    >>> gw[0, 0]  # the sum of each 2x2 window of x
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    >>> gb
    array([4.])
    """
    _check_input_grad(input_grad)
    input_grad = bool(input_grad)
    call = _parse(
        False, grad_output, x, weight, stride=stride, padding=padding, dilation=dilation, groups=groups,
        channels_last=channels_last,
    )  # fmt: skip
    if not isinstance(call, Call):  # computed elsewhere, or empty
        return _without_input_grad(call, input_grad)
    if not input_grad:
        return None, _weight_grad(call), _bias_grad(call)
    grad_x = conv_transpose(
        call.prepared.grad_output, call.prepared.weight, output_size=call.spec.input_size, **_same_options(call)
    )
    return grad_x, _weight_grad(call), _bias_grad(call)


def conv_transpose_grad(
    grad_output: Array,
    x: Array,
    weight: Array,
    /,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    output_padding: int | Sequence[int] = 0,
    output_size: int | Sequence[int] | None = None,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
    input_grad: bool = True,
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`tconv.conv_transpose` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_output : array
        The loss's gradient with respect to ``conv_transpose(x, weight, ...)``, of
        that output's shape and layout.
    x, weight :
        The forward call's input and weight.
    stride, padding, output_padding, output_size, dilation, groups, channels_last :
        The forward call's options, with the same meaning and rules as in
        :func:`tconv.conv_transpose`.
    input_grad : bool
        ``False``: the input's gradient is not computed (``grad_x`` is None); only
        the weight's and the bias's.

    Returns
    -------
    grad_x, grad_weight, grad_bias : arrays
        Of the shapes of ``x``, ``weight`` and ``(C_out,)``, in the caller's array
        library and dtype. ``grad_x`` is ``conv(grad_output, weight)`` with the same
        options, cropped to ``x``'s spatial size (None with ``input_grad=False``).

    Examples
    --------
    Seed 004's layer: the input gradient of a VALID stride-2 transposed
    convolution is the stride-2 convolution of the output gradient.

    >>> import numpy as np
    >>> import tconv
    >>> x = np.array([[[[-67.0, -77.0], [-117.0, -127.0]]]])
    >>> w = np.array([[[[-1.0, 2, -3], [4, -5, 6], [-7, 8, -9]]]])
    >>> gx, gw, gb = tconv.conv_transpose_grad(np.ones((1, 1, 5, 5)), x, w, stride=2)
    >>> gx  # each input's kernel copy lies wholly inside the output: the kernel's sum
    array([[[[-5., -5.],
             [-5., -5.]]]])
    >>> gw[0, 0]  # each tap sees every input once
    array([[-388., -388., -388.],
           [-388., -388., -388.],
           [-388., -388., -388.]])
    """
    _check_input_grad(input_grad)
    input_grad = bool(input_grad)
    call = _parse(
        True, grad_output, x, weight, stride=stride, padding=padding, output_padding=output_padding,
        output_size=output_size, dilation=dilation, groups=groups, channels_last=channels_last,
    )  # fmt: skip
    if not isinstance(call, Call):  # computed elsewhere, or empty
        return _without_input_grad(call, input_grad)
    if not input_grad:
        return None, _weight_grad(call), _bias_grad(call)
    spec = call.spec
    fused = engine.run_transpose_grads(call.prepared, spec, batched=call.batched, channels_last=channels_last)
    if fused is not None:
        return fused[0], fused[1], _bias_grad(call)
    grad_x = conv(call.prepared.grad_output, call.prepared.weight, **_same_options(call))
    spatial_now = tuple(int(n) for n in grad_x.shape)
    if spatial_now != tuple(int(n) for n in call.prepared.x.shape):
        crop = tuple(slice(0, n) for n in spec.input_size)
        lead: tuple[Any, ...] = (slice(None),) if call.batched else ()
        index = (*lead, *crop, slice(None)) if channels_last else (*lead, slice(None), *crop)
        grad_x = finish(call.prepared.xp, grad_x[index], call.prepared.dtype)
    return grad_x, _weight_grad(call), _bias_grad(call)
