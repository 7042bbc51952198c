"""The public operations: N-d convolution and transposed convolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from . import engine
from ._arguments import plain_key, remember
from ._backend import Array, Prepared, handled_elsewhere, plain_numpy_call, prepare
from ._hints import layout_hint
from .engine.run import CallPlan, plan_call, route_state
from .spec import ConvSpec, PaddingArg, parse_groups

__all__ = ["conv", "conv_transpose"]


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


class Call(NamedTuple):
    """One parsed call: the checked arrays, the resolved description, the layout."""

    prepared: Prepared
    spec: ConvSpec
    batched: bool
    channels_last: bool

    def output_shape(self) -> tuple[int, ...]:
        """The result's shape in the caller's layout."""
        n_c = (self.prepared.x.shape[0],) if self.batched else ()
        c = self.spec.out_channels
        sp = self.spec.output_size
        return (*n_c, *sp, c) if self.channels_last else (*n_c, c, *sp)

    def is_empty(self) -> bool:
        """Whether the input or the output holds no element (an empty batch or spatial axis): the result is
        then zeros plus the bias, made here rather than by the engine (whose schedules divide by the sizes)."""
        return 0 in self.prepared.x.shape or self.spec.out_channels == 0 or 0 in self.spec.output_size

    def zeros_and_bias(self) -> Array:
        """The result of an empty call: zeros of :meth:`output_shape` (the padding's windows) plus the bias."""
        xp, prepared = self.prepared.xp, self.prepared
        out = xp.zeros(self.output_shape(), dtype=prepared.dtype, device=array_api_compat.device(prepared.x))
        if prepared.bias is None or 0 in self.output_shape():
            return out
        rank = len(self.output_shape())
        channel_axis = rank - 1 if self.channels_last else (1 if self.batched else 0)
        shape = tuple(-1 if a == channel_axis else 1 for a in range(rank))
        return out + xp.reshape(prepared.bias, shape)


def parse_call(
    transposed: bool,
    x: Any,
    weight: Any,
    bias: Any,
    *,
    grad_output: Any = None,
    stride: int | Sequence[int],
    padding: PaddingArg,
    dilation: int | Sequence[int],
    groups: int,
    channels_last: bool,
    output_padding: int | Sequence[int] = 0,
    output_size: int | Sequence[int] | None = None,
) -> Call:
    """Check the arrays of one call against each other and build its :class:`ConvSpec`.

    Shared by the operations and their gradients, so all of them accept and
    reject exactly the same calls.
    """
    if not isinstance(channels_last, (bool, np.bool_)):
        raise TypeError(f"channels_last must be True or False; received {channels_last!r}")
    prepared = prepare(x, weight, bias, grad_output)
    options = _option_values(stride, padding, dilation, groups, channels_last, output_padding, output_size)
    key = _remembered_key(transposed, prepared, options)
    parsed = None if key is None else _PARSED.get(key)
    if parsed is None:
        parsed = _parse(transposed, prepared, *options)
        if key is not None:
            remember(_PARSED, key, parsed, _PARSED_LIMIT)
    return Call(prepared, *parsed)


#: :func:`parse_call`'s remembered results for NumPy arrays and plain Python options, by the arrays' shapes
#: and the options' :func:`~tconv._arguments.plain_key` (emptied when full). The checks read nothing else:
#: a call with the same key passes them, and a refused call raises before anything is stored.
_PARSED: dict[Any, tuple[ConvSpec, bool, bool]] = {}
_PARSED_LIMIT = 4096


def _option_values(
    stride: Any, padding: Any, dilation: Any, groups: Any, channels_last: Any, output_padding: Any = 0,
    output_size: Any = None,
) -> tuple[Any, ...]:  # fmt: skip
    """A call's options in the order :func:`parse_call` remembers them under (a forward convolution's omitted
    ``output_padding`` and ``output_size`` as their defaults)."""
    return (stride, padding, dilation, groups, channels_last, output_padding, output_size)


def _remembered_key(transposed: bool, prepared: Prepared, options: tuple[Any, ...]) -> Any:
    """The key :func:`parse_call` remembers a call under, or None (arrays other than NumPy's own, or an option
    that is not a plain Python value: parsed every time)."""
    arrays = (prepared.x, prepared.weight, prepared.bias, prepared.grad_output)
    if not all(a is None or type(a) is np.ndarray for a in arrays):
        return None
    values = plain_key(options)
    if values is None:
        return None
    return (transposed, *(None if a is None else a.shape for a in arrays), values)


def _parse(
    transposed: bool,
    prepared: Prepared,
    stride: int | Sequence[int],
    padding: PaddingArg,
    dilation: int | Sequence[int],
    groups: int,
    channels_last: bool,
    output_padding: int | Sequence[int],
    output_size: int | Sequence[int] | None,
) -> tuple[ConvSpec, bool, bool]:
    """:func:`parse_call`'s checks of the prepared arrays against each other, and the call's description."""
    channels_last = bool(channels_last)
    x, weight, bias = prepared.x, prepared.weight, prepared.bias
    layout = "(C_in, C_out/groups, *kernel)" if transposed else "(C_out, C_in/groups, *kernel)"
    if weight.ndim < 3:
        raise ValueError(
            f"weight must have shape {layout}, with at least one spatial axis; "
            f"received weight of shape {_shape(weight)}"
        )
    ndim = weight.ndim - 2
    if x.ndim not in (ndim + 1, ndim + 2):
        form = "(N, *spatial, C) or (*spatial, C)" if channels_last else "(N, C, *spatial) or (C, *spatial)"
        raise ValueError(
            f"x must have shape {form} with {ndim} spatial axes, to match weight of shape "
            f"{_shape(weight)}; received x of shape {_shape(x)}"
        )
    batched = x.ndim == ndim + 2
    groups = parse_groups(groups)
    if channels_last:
        channels, spatial = x.shape[-1], _shape(x)[x.ndim - 1 - ndim : x.ndim - 1]
    else:
        channels, spatial = x.shape[x.ndim - 1 - ndim], _shape(x)[x.ndim - ndim :]
    kernel = _shape(weight)[2:]
    if transposed:
        expected_in, out_channels = weight.shape[0], weight.shape[1] * groups
    else:
        expected_in, out_channels = weight.shape[1] * groups, weight.shape[0]
    if channels != expected_in:
        relation = "weight.shape[0]" if transposed else "weight.shape[1] * groups"
        raise ValueError(
            f"x has {channels} channels but weight of shape {_shape(weight)} with groups={groups} "
            f"expects {relation} = {expected_in}; received x of shape {_shape(x)}"
            + (" (channels_last=True)" if channels_last else "")
            + layout_hint(transposed, _shape(x), _shape(weight), groups=groups, channels_last=channels_last)
        )
    if weight.shape[0] % groups:
        role = "input" if transposed else "output"
        raise ValueError(
            f"groups must divide weight.shape[0] (the {role} channels); received groups={groups} "
            f"with weight of shape {_shape(weight)}"
        )
    if bias is not None and _shape(bias) != (out_channels,):
        raise ValueError(f"bias must have shape (C_out,) = ({out_channels},); received bias of shape {_shape(bias)}")
    spec = ConvSpec.build(
        transposed=transposed,
        input_size=spatial,
        kernel_size=kernel,
        in_channels=channels,
        out_channels=out_channels,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        output_padding=output_padding,
        output_size=output_size,
    )
    call = Call(prepared, spec, batched, channels_last)
    if prepared.grad_output is not None and _shape(prepared.grad_output) != call.output_shape():
        raise ValueError(
            f"grad_output must have the shape of the forward output, {call.output_shape()}; "
            f"received grad_output of shape {_shape(prepared.grad_output)}"
        )
    return spec, batched, channels_last


#: forward calls on NumPy arrays decided whole (:class:`tconv.engine.run.CallPlan`), by :func:`_plan_key` (emptied
#: when full)
_PLANS: dict[Any, CallPlan] = {}
_PLANS_LIMIT = 4096

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def _plan_key(transposed: bool, x: Any, weight: Any, bias: Any, options: dict[str, Any]) -> Any:
    """The key a call's :class:`~tconv.engine.run.CallPlan` is kept under (:data:`_PLANS`): the operation, the
    arrays' shapes and dtype, the options' :func:`~tconv._arguments.plain_key` and the engine's
    :func:`~tconv.engine.run.route_state`; None unless x, the weight and any bias are NumPy ndarrays (no subclass)
    of NumPy's own native float32 or float64 dtype, one for all, and every option is a plain Python value. Such a
    call needs none of :func:`~tconv._backend.prepare`'s conversions, and the checks of :func:`parse_call` read
    only what the key holds."""
    if type(x) is not np.ndarray or type(weight) is not np.ndarray:
        return None
    dtype = x.dtype
    if (dtype is not _FLOAT32 and dtype is not _FLOAT64) or weight.dtype is not dtype:
        return None
    if bias is not None and (type(bias) is not np.ndarray or bias.dtype is not dtype):
        return None
    values = plain_key(_option_values(**options))
    if values is None:
        return None
    return (transposed, x.shape, weight.shape, None if bias is None else bias.shape, dtype.char, values, *route_state())


def _dispatch(transposed: bool, x: Any, weight: Any, bias: Any, **options: Any) -> Array:
    """One forward call, sent on unchanged where its arrays are handled elsewhere (Dask arrays: tconv.dask).

    A call on plain NumPy arrays (:func:`~tconv._backend.plain_numpy_call`) whose shapes and options passed
    :func:`parse_call` before goes straight to the engine with the description remembered then (:data:`_PARSED`):
    on a call of 0.1 ms the checks, the namespace and the dispatch took a quarter of the time. From then on it
    runs as the plan decided then (:data:`_PLANS`, :class:`~tconv.engine.run.CallPlan`: the same route, checked
    for nothing its key holds), a few microseconds less again on every call."""
    key = _plan_key(transposed, x, weight, bias, options)
    plan = None if key is None else _PLANS.get(key)
    if plan is not None:
        return plan.run(x, weight, bias)
    plain = plain_numpy_call(x, weight, bias)
    if plain is not None:
        parsed = _PARSED.get(_remembered_key(transposed, plain, _option_values(**options)))
        if parsed is not None:
            call = Call(plain, *parsed)
            if call.is_empty():
                return call.zeros_and_bias()
            if key is None:
                return engine.run(plain, call.spec, batched=call.batched, channels_last=call.channels_last)
            plan = plan_call(plain, call.spec, key[-4:], batched=call.batched, channels_last=call.channels_last)
            remember(_PLANS, key, plan, _PLANS_LIMIT)
            return plan.run(x, weight, bias)
    if (elsewhere := handled_elsewhere(x, weight, bias)) is not None:
        return (elsewhere.conv_transpose if transposed else elsewhere.conv)(x, weight, bias, **options)
    call = parse_call(transposed, x, weight, bias, **options)
    if call.is_empty():
        return call.zeros_and_bias()
    return engine.run(call.prepared, call.spec, batched=call.batched, channels_last=call.channels_last)


def conv(
    x: Array,
    weight: Array,
    /,
    bias: Array | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
) -> Array:
    """N-d convolution (cross-correlation, as every deep-learning framework computes it).

    ``out[n, co, o] = bias[co] + sum_{ci, i} weight[co, ci, i] * x_pad[n, g*C_in/G + ci, o*s + i*d]``
    per spatial axis, where ``x_pad`` is ``x`` padded with ``(lo, hi)`` zeros
    and ``g`` is the group of output channel ``co``. The spatial output size
    is ``floor((n + lo + hi - d*(k-1) - 1) / s) + 1``
    (:func:`tconv.shapes.conv_output_size`).

    Parameters
    ----------
    x : array
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; channels last
        (``(N, *spatial, C_in)``) with ``channels_last=True``. Any array that
        array-api-compat recognises (NumPy, PyTorch, CuPy, JAX, array-api-strict);
        the result is of the same library, dtype and device.
    weight : array
        ``(C_out, C_in/groups, *kernel)``, the PyTorch/ONNX layout. The number of
        spatial axes ``d >= 1`` is ``weight.ndim - 2``.
    bias : array, optional
        ``(C_out,)``.
    stride, dilation : int or sequence of int
        Positive; one value for all axes or one per axis.
    padding : int, sequence, or str
        An int, one int per axis, one ``(lo, hi)`` pair per axis, ``'valid'``
        (none), ``'same'`` (TensorFlow's rule for any stride: output ``ceil(n/s)``,
        an odd total padding puts the extra element at the end) or
        ``'same_lower'`` (the extra element at the start, ONNX ``SAME_LOWER``).
    groups : int
        Divides both channel counts; ``groups == C_in`` is a depthwise convolution.
    channels_last : bool
        Whether the channel axis of ``x`` and of the result is last.

    Returns
    -------
    array
        ``(N, C_out, *out_spatial)`` (or as laid out by ``channels_last``, unbatched
        when ``x`` is), with ``x``'s dtype. float16 accumulates in float32.

    Raises
    ------
    TypeError
        Non-floating dtypes, mixed dtypes, arrays from different libraries.
    ValueError
        Wrong ranks or channel counts, bad stride/dilation/padding/groups, an
        empty output, a bias of the wrong shape.

    Examples
    --------
    Seed 003: a 4x4 input and a 3x3 kernel give 2x2.

    >>> import numpy as np
    >>> import tconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 3, 3))
    >>> tconv.conv(x, w)
    array([[[[45., 54.],
             [81., 90.]]]])
    >>> tconv.conv(x, w, padding="same", stride=2).shape
    (1, 1, 2, 2)
    """
    return _dispatch(
        False, x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
        channels_last=channels_last,
    )  # fmt: skip


def conv_transpose(
    x: Array,
    weight: Array,
    /,
    bias: Array | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    output_padding: int | Sequence[int] = 0,
    output_size: int | Sequence[int] | None = None,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
) -> Array:
    """N-d transposed convolution (the adjoint of :func:`conv`, "deconvolution").

    Each input element scales a copy of the kernel and stamps it onto the
    output, copies ``stride`` apart, and the copies are summed (seed 004):
    ``full[n, co, j*s + i*d] += x[n, ci, j] * weight[ci, co, i]`` per spatial
    axis, within each group. The full output has length ``(n-1)*s + d*(k-1) + 1``;
    the result is that, cropped by the forward convolution's padding ``(lo, hi)``
    and extended by ``output_padding`` at the high end:
    ``(n-1)*s + d*(k-1) + 1 - lo - hi + output_padding``
    (:func:`tconv.shapes.conv_transpose_output_size`). It equals a stride-1
    convolution of the input with ``s-1`` zeros inserted, padding
    ``d*(k-1) - lo`` and ``d*(k-1) - hi + output_padding`` and the flipped kernel
    (:func:`tconv.shapes.equivalent_conv`); tconv never inserts the zeros.

    Parameters
    ----------
    x : array
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; channels last
        with ``channels_last=True``. Any array-api-compat array; the result is of
        the same library, dtype and device.
    weight : array
        ``(C_in, C_out/groups, *kernel)``, the PyTorch/ONNX/Paddle layout.
    bias, stride, dilation, groups, channels_last
        As :func:`conv` (``groups`` divides both channel counts).
    padding : int, sequence, or str
        The padding of the matching forward convolution, cropped from the full
        output: an int, one int per axis, one ``(lo, hi)`` pair per axis, ``'valid'``
        (no crop), ``'same'`` (output ``n*s`` with TensorFlow/Keras's split: the
        forward ``'same'`` padding of an ``n*s`` input, total ``max(d*(k-1)+1-s, 0)``,
        the extra element at the end, and output padding where the kernel is
        shorter than the stride) or ``'same_lower'`` (the extra element at the
        start). Values larger than ``d*(k-1)`` crop further, as in PyTorch.
    output_padding : int or sequence of int
        Added at the high end; each must be smaller than ``max(stride, dilation)``.
    output_size : int or sequence of int, optional
        The wanted spatial size; the output padding is derived from it. Rejected,
        with the reachable range, when no output padding gives it. Cannot be
        combined with a non-zero ``output_padding``.

    Returns
    -------
    array
        ``(N, C_out, *out_spatial)``, laid out as :func:`conv` returns it.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv`; ``ValueError`` also for an ``output_padding`` that is too
        large or an unreachable ``output_size``.

    Examples
    --------
    Seed 004, TensorFlow's ``conv2d_transpose`` with VALID padding and stride 2:
    the first output is ``-67 * -1 = 67``, the top-left kernel element times the
    top-left input, not 603.

    >>> import numpy as np
    >>> import tconv
    >>> x = np.array([[[[-67.0, -77.0], [-117.0, -127.0]]]])
    >>> w = np.array([[[[-1.0, 2, -3], [4, -5, 6], [-7, 8, -9]]]])
    >>> tconv.conv_transpose(x, w, stride=2)
    array([[[[   67.,  -134.,   278.,  -154.,   231.],
             [ -268.,   335.,  -710.,   385.,  -462.],
             [  586.,  -770.,  1620.,  -870.,  1074.],
             [ -468.,   585., -1210.,   635.,  -762.],
             [  819.,  -936.,  1942., -1016.,  1143.]]]])

    Seed 001: 3x3 with kernel 3 and stride 2 gives 7x7, or 8x8 on request:

    >>> y = np.ones((1, 1, 3, 3))
    >>> k = np.ones((1, 1, 3, 3))
    >>> tconv.conv_transpose(y, k, stride=2).shape
    (1, 1, 7, 7)
    >>> tconv.conv_transpose(y, k, stride=2, output_padding=1).shape
    (1, 1, 8, 8)
    >>> tconv.conv_transpose(y, k, stride=2, output_size=(8, 8)).shape
    (1, 1, 8, 8)

    Seed 000's DCGAN layer, channels last, ``'same'`` doubles 7x7 to 14x14:

    >>> z = np.zeros((1, 7, 7, 128), dtype=np.float32)
    >>> tconv.conv_transpose(z, np.zeros((128, 64, 5, 5), np.float32), stride=2,
    ...                      padding="same", channels_last=True).shape
    (1, 14, 14, 64)
    """
    return _dispatch(
        True, x, weight, bias, stride=stride, padding=padding, output_padding=output_padding, output_size=output_size,
        dilation=dilation, groups=groups, channels_last=channels_last,
    )  # fmt: skip
