"""Exact tiled convolutions on Dask arrays: the task graph, block by block.

Every output block is one task. It reads the input chunks that overlap the block's input window (the block's
own range plus exactly the halo that :func:`tconv.shapes.conv_input_range` or
:func:`tconv.shapes.conv_transpose_input_range` derives), cuts and concatenates them, and calls tconv's
operation on that slice with the window's padding (zeros where the whole array has padding, a crop where a
transposed convolution's neighbours' stamps reach) and output padding. So a block computes the very sums
that the in-memory call computes for those outputs.

* Output blocks line up with input blocks (:func:`tconv.shapes.aligned_output_boundaries`): a transposed
  convolution's are ``stride`` times the input's, a convolution's ``1/stride``; the batch axis keeps its chunks.
* The channel axis is rechunked to one chunk (every output channel needs every input channel of its group).
* An axis whose chunks are smaller than the halo (a window would read more than three chunks) is rechunked
  to chunks of at least the window, so each task reads at most three chunks per axis and the graph grows
  linearly with the number of blocks.
* The weight and bias are one graph key each, which every task names: Dask ships them once per worker.
* A block in a Dask pool's thread runs the engine on one thread (:mod:`tconv.dask.threads`): Dask already
  runs one block per core.

This module is long because it holds the four public operations with their signatures and docstrings next to
the one graph builder they share; the builder itself is about a hundred lines.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .. import engine, shapes
from ..ops import conv as memory_conv
from ..ops import conv_transpose as memory_conv_transpose
from ..ops import parse_call
from .threads import engine_threads

__all__ = [
    "EXTRA",
    "conv",
    "conv_grad",
    "conv_transpose",
    "conv_transpose_grad",
    "is_dask_array",
    "require",
    "single_key",
]

#: What to install for Dask support.
EXTRA = "pip install 'tconv[dask]'"


def require() -> Any:
    """``dask.array``, or an ``ImportError`` naming the extra to install."""
    try:
        import dask.array as da
    except ImportError as error:
        raise ImportError(
            f"tconv received a Dask array, and computing on Dask arrays needs dask[array]: {EXTRA} "
            "(dask, distributed and zarr)"
        ) from error
    return da


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a Dask collection, judged without importing Dask."""
    module = type(value).__module__
    return module == "dask" or module.startswith("dask.")


def single_key(array: Any) -> Any:
    """The one graph key of a one-chunk Dask array (the weight, the bias)."""
    keys = array.__dask_keys__()
    while isinstance(keys, list):
        keys = keys[0]
    return keys


def _as_one_chunk(da: Any, value: Any) -> Any:
    if value is None:
        return None
    if is_dask_array(value):
        return value.rechunk(-1)
    return da.from_array(value, chunks=-1)


class Layout(NamedTuple):
    """Which axis of the caller's array is which."""

    ndim: int
    batched: bool
    channels_last: bool

    @property
    def channel_axis(self) -> int:
        return self.ndim - 1 if self.channels_last else (1 if self.batched else 0)

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        first = 1 if self.batched else 0
        start = first if self.channels_last else first + 1
        return tuple(range(start, start + self.ndim - 1 - int(self.batched)))


class AxisPlan(NamedTuple):
    """One axis of a tiled operation: the output chunks, and per output chunk the input range read and the
    block's own arithmetic (a :class:`tconv.shapes.BlockWindow` on spatial axes, ``None`` elsewhere)."""

    chunks: tuple[int, ...]
    reads: tuple[tuple[int, int], ...]
    windows: tuple[Any, ...]


def boundaries(chunks: Sequence[int]) -> list[int]:
    """``(0, c0, c0 + c1, ...)``: where chunks start and end."""
    return [0, *itertools.accumulate(chunks)]


def passthrough(chunks: Sequence[int]) -> AxisPlan:
    """An axis whose output chunks are its input chunks (the batch)."""
    edges = boundaries(chunks)
    return AxisPlan(tuple(chunks), tuple(itertools.pairwise(edges)), (None,) * len(chunks))


def spatial_plan(chunks: Sequence[int], output_size: int, window_of: Callable[[int, int], Any], align: Any) -> AxisPlan:
    """An axis tiled by ``align(boundaries)`` whose blocks read ``window_of(start, stop)``."""
    out = align(boundaries(chunks))
    windows = tuple(window_of(a, b) for a, b in itertools.pairwise(out))
    reads = tuple((w.input_start, w.input_stop) for w in windows)
    return AxisPlan(tuple(b - a for a, b in itertools.pairwise(out)), reads, windows)


def chunks_read(chunks: Sequence[int], plan: AxisPlan) -> int:
    """The most input chunks one block of ``plan`` reads."""
    edges = boundaries(chunks)
    most = 0
    for start, stop in plan.reads:
        if stop > start:
            most = max(most, bisect.bisect_left(edges, stop) - bisect.bisect_right(edges, start) + 1)
    return most


def widest_read(plan: AxisPlan) -> int:
    return max((stop - start for start, stop in plan.reads), default=1)


def _concat(parts: Any, axis: int) -> Any:
    """Concatenate a nested list of blocks (depth = number of axes left), axis by axis."""
    if not isinstance(parts, list):
        return parts
    pieces = [_concat(p, axis + 1) for p in parts]
    if len(pieces) == 1:
        return pieces[0]
    xp = array_api_compat.array_namespace(pieces[0])
    return xp.concat(pieces, axis=axis)


def _cut(parts: Any, cuts: Sequence[Sequence[slice]], depth: int = 0, index: tuple[slice, ...] = ()) -> Any:
    if depth == len(cuts):
        return parts[index]
    return [_cut(p, cuts, depth + 1, (*index, cut)) for p, cut in zip(parts, cuts[depth])]


def run_block(
    fn: Callable[..., Any], cuts: Any, windows: tuple[Any, ...], sizes: tuple[int, ...], inputs: Any, *shared: Any
) -> Any:
    """One task: cut the read chunks of each input to the block's windows, concatenate, call ``fn`` (with the
    threads of :func:`tconv.dask.threads.engine_threads`)."""
    assembled = [None if parts is None else _concat(_cut(parts, c), 0) for parts, c in zip(inputs, cuts)]
    with engine_threads():
        return fn(windows, sizes, *assembled, *shared)


def block_tasks(
    name: str,
    plans: Sequence[AxisPlan],
    inputs: Sequence[tuple[Any, Sequence[AxisPlan]]],
    shared_keys: Sequence[Any],
    fn: Callable[..., Any],
    key_of: Callable[[tuple[int, ...]], Any] | None = None,
) -> dict[Any, Any]:
    """One task per block of the grid of ``plans``; each reads, from every input, the ranges its plans say.

    ``inputs`` pairs a Dask array with one :class:`AxisPlan` per axis of that array (same grid as
    ``plans``); the task calls ``fn(windows, sizes, *input_slices, *shared)`` where ``windows`` and
    ``sizes`` are ``plans``' per-axis windows and chunk sizes of the block and an input slice is ``None``
    when the block reads nothing of it.
    """
    tasks: dict[Any, Any] = {}
    edges_of = [[boundaries(c) for c in array.chunks] for array, _ in inputs]
    for index in itertools.product(*(range(len(p.chunks)) for p in plans)):
        windows = tuple(p.windows[j] for p, j in zip(plans, index))
        keys_and_cuts: list[tuple[Any, Any]] = []
        for (array, array_plans), edges in zip(inputs, edges_of):
            ranges = [p.reads[j] for p, j in zip(array_plans, index)]
            if any(stop <= start for start, stop in ranges):
                keys_and_cuts.append((None, None))
                continue
            per_axis = []
            for (start, stop), axis_edges in zip(ranges, edges):
                first = bisect.bisect_right(axis_edges, start) - 1
                last = bisect.bisect_left(axis_edges, stop) - 1
                per_axis.append(
                    [
                        (
                            c,
                            slice(
                                max(start, axis_edges[c]) - axis_edges[c], min(stop, axis_edges[c + 1]) - axis_edges[c]
                            ),
                        )
                        for c in range(first, last + 1)
                    ]
                )

            def nest(
                depth: int, chunk_index: tuple[int, ...], per_axis: list[Any] = per_axis, name: str = array.name
            ) -> Any:
                if depth == len(per_axis):
                    return (name, *chunk_index)
                return [nest(depth + 1, (*chunk_index, c)) for c, _ in per_axis[depth]]

            keys_and_cuts.append((nest(0, ()), tuple(tuple(cut for _, cut in axis) for axis in per_axis)))
        key = key_of(index) if key_of is not None else (name, *index)
        sizes = tuple(p.chunks[j] for p, j in zip(plans, index))
        task_fn = functools.partial(run_block, fn, tuple(c for _, c in keys_and_cuts), windows, sizes)
        tasks[key] = (task_fn, [k for k, _ in keys_and_cuts], *shared_keys)
    return tasks


def make_array(
    da: Any, name: str, tasks: dict[Any, Any], dependencies: Sequence[Any], chunks: Sequence[Sequence[int]], meta: Any
) -> Any:
    from dask.highlevelgraph import HighLevelGraph

    graph = HighLevelGraph.from_collections(name, tasks, dependencies=[d for d in dependencies if d is not None])
    return da.Array(graph, name, chunks=tuple(tuple(c) for c in chunks), meta=meta)


def _meta_view(value: Any) -> Any:
    """A NumPy stand-in of ``value``'s shape and dtype that holds one element (for the argument checks)."""
    if value is None or not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return value
    return np.broadcast_to(np.zeros((), dtype=value.dtype), tuple(int(n) for n in value.shape))


def _parse(transposed: bool, x: Any, weight: Any, bias: Any, grad_output: Any = None, **options: Any) -> Any:
    """The in-memory call's checks and :class:`tconv.ConvSpec`, on stand-ins of the arrays' shapes."""
    return parse_call(
        transposed, _meta_view(x), _meta_view(weight), _meta_view(bias), grad_output=_meta_view(grad_output), **options
    )


def _rechunk_spatial(x: Any, layout: Layout, axis_plan: Callable[[int, Sequence[int]], AxisPlan]) -> Any:
    """Rechunk every spatial axis where a block would read more than three chunks (chunks below the halo)."""
    for i, axis in enumerate(layout.spatial_axes):
        plan = axis_plan(i, x.chunks[axis])
        if chunks_read(x.chunks[axis], plan) > 3:
            x = x.rechunk({axis: max(max(x.chunks[axis]), widest_read(plan))})
    return x


def _axis_layer(transposed: bool, spec: Any, i: int) -> shapes.AxisLayer:
    """Spatial axis ``i`` of the operation ``spec`` describes, as a :class:`tconv.shapes.AxisLayer`."""
    return shapes.AxisLayer(
        spec.kernel_size[i], spec.stride[i], spec.padding[i], spec.output_padding[i], spec.dilation[i], transposed
    )


def _spatial_plan(transposed: bool, spec: Any, i: int, chunks: Sequence[int]) -> AxisPlan:
    layer, n, out = _axis_layer(transposed, spec, i), spec.input_size[i], spec.output_size[i]

    def window(a: int, b: int) -> shapes.BlockWindow:
        return shapes.layer_input_range(layer, a, b, n)

    def align(edges: list[int]) -> tuple[int, ...]:
        return shapes.aligned_output_boundaries(
            edges, out, stride=layer.stride, padding=layer.padding, transposed=transposed
        )

    return spatial_plan(chunks, out, window, align)


def _block_options(transposed: bool, spec: Any, layout: Layout, windows: tuple[Any, ...]) -> dict[str, Any]:
    """The in-memory call's options for one block: ``spec``'s, with the padding and output padding of the
    block's windows."""
    spatial = [windows[a] for a in layout.spatial_axes]
    options: dict[str, Any] = {
        "stride": spec.stride,
        "padding": tuple(w.padding for w in spatial),
        "dilation": spec.dilation,
        "groups": spec.groups,
        "channels_last": layout.channels_last,
    }
    if transposed:
        options["output_padding"] = tuple(w.output_padding for w in spatial)
    return options


def _bias_block(xp: Any, shape: tuple[int, ...], dtype: Any, bias: Any, channel_axis: int, like: Any) -> Any:
    out = xp.zeros(shape, dtype=dtype, device=array_api_compat.device(like))
    if bias is None:
        return out
    view = tuple(-1 if a == channel_axis else 1 for a in range(len(shape)))
    return out + xp.reshape(bias, view)


class _ConvBlock:
    """Computes one output block of a (transposed) convolution from its input slice (a picklable callable)."""

    def __init__(self, transposed: bool, spec: Any, layout: Layout) -> None:
        self.transposed, self.spec, self.layout = transposed, spec, layout

    def __call__(self, windows: tuple[Any, ...], sizes: tuple[int, ...], x: Any, weight: Any, bias: Any = None) -> Any:
        if x is None:  # the block reads only padding: the bias alone
            xp = array_api_compat.array_namespace(weight)
            return _bias_block(xp, sizes, weight.dtype, bias, self.layout.channel_axis, weight)
        options = _block_options(self.transposed, self.spec, self.layout, windows)
        if self.transposed:
            return memory_conv_transpose(x, weight, bias, **options)
        return memory_conv(x, weight, bias, **options)


def _forward(transposed: bool, x: Any, weight: Any, bias: Any, **options: Any) -> Any:
    da = require()
    if not is_dask_array(x):
        x = da.asarray(x)
    call = _parse(transposed, x, weight, bias, **options)
    spec = call.spec
    layout = Layout(x.ndim, call.batched, bool(options.get("channels_last", False)))
    x = x.rechunk({layout.channel_axis: -1})
    x = _rechunk_spatial(x, layout, lambda i, chunks: _spatial_plan(transposed, spec, i, chunks))
    plans: list[AxisPlan] = []
    for axis in range(x.ndim):
        if axis == layout.channel_axis:
            plans.append(AxisPlan((spec.out_channels,), ((0, spec.in_channels),), (None,)))
        elif axis in layout.spatial_axes:
            plans.append(_spatial_plan(transposed, spec, layout.spatial_axes.index(axis), x.chunks[axis]))
        else:
            plans.append(passthrough(x.chunks[axis]))
    w = _as_one_chunk(da, weight)
    b = _as_one_chunk(da, bias)
    shared = [single_key(w)] + ([single_key(b)] if b is not None else [])
    block = _ConvBlock(transposed, spec, layout)
    token = _token(transposed, x, w, b, spec, layout)
    name = f"tconv-{'conv_transpose' if transposed else 'conv'}-{token}"
    tasks = block_tasks(name, plans, [(x, plans)], shared, block)
    meta = _meta_like(da, x, x.ndim)
    return make_array(da, name, tasks, [x, w, b], [p.chunks for p in plans], meta)


def _token(*parts: Any) -> str:
    from dask.base import tokenize

    return str(tokenize(*parts))


def _meta_like(da: Any, x: Any, ndim: int) -> Any:
    from dask.array.utils import meta_from_array

    return meta_from_array(x, ndim=ndim)


def conv(
    x: Any,
    weight: Any,
    /,
    bias: Any = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
) -> Any:
    """:func:`tconv.conv` on a Dask array: a lazy Dask array, one task per output block (exact).

    ``tconv.conv`` hands Dask arrays here; the options mean what they mean there.

    Examples
    --------
    >>> import numpy as np, dask.array as da, tconv
    >>> x = np.arange(2 * 3 * 20.0).reshape(2, 3, 20)
    >>> w = np.ones((4, 3, 5))
    >>> y = tconv.conv(da.from_array(x, chunks=(1, 3, 6)), w, stride=2, padding=2)
    >>> y.chunks
    ((1, 1), (4,), (4, 3, 3))
    >>> bool((y.compute() == tconv.conv(x, w, stride=2, padding=2)).all())
    True
    """
    return _forward(
        False, x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
        channels_last=channels_last,
    )  # fmt: skip


def conv_transpose(
    x: Any,
    weight: Any,
    /,
    bias: Any = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    output_padding: int | Sequence[int] = 0,
    output_size: int | Sequence[int] | None = None,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
) -> Any:
    """:func:`tconv.conv_transpose` on a Dask array: output blocks ``stride`` times the input blocks.

    Examples
    --------
    >>> import numpy as np, dask.array as da, tconv
    >>> x = np.arange(2 * 3 * 10.0).reshape(2, 3, 10)
    >>> w = np.ones((3, 4, 4))
    >>> y = tconv.conv_transpose(da.from_array(x, chunks=(2, 3, 5)), w, stride=2, padding=1)
    >>> y.chunks
    ((2,), (4,), (9, 11))
    >>> bool((y.compute() == tconv.conv_transpose(x, w, stride=2, padding=1)).all())
    True
    """
    return _forward(
        True, x, weight, bias, stride=stride, padding=padding, output_padding=output_padding,
        output_size=output_size, dilation=dilation, groups=groups, channels_last=channels_last,
    )  # fmt: skip


class _WeightGradBlock:
    """One block's share of the weight gradient: the engine's weight gradient alone
    (:func:`tconv.engine.run_weight_grad`) of the block's own call, without the input gradient that
    :func:`tconv.conv_grad` would compute with it."""

    def __init__(self, transposed: bool, spec: Any, layout: Layout, weight_shape: tuple[int, ...]) -> None:
        self.transposed, self.spec, self.layout, self.weight_shape = transposed, spec, layout, weight_shape

    def __call__(self, windows: tuple[Any, ...], sizes: tuple[int, ...], grad_output: Any, x: Any, weight: Any) -> Any:
        xp = array_api_compat.array_namespace(weight)
        if x is None:  # the block reads no input: it adds nothing to the weight's gradient
            return xp.zeros((1, *self.weight_shape), dtype=weight.dtype, device=array_api_compat.device(weight))
        options = _block_options(self.transposed, self.spec, self.layout, windows)
        call = parse_call(self.transposed, x, weight, None, grad_output=grad_output, **options)
        if call.is_empty():  # no input element reaches this block's outputs
            return xp.zeros((1, *self.weight_shape), dtype=weight.dtype, device=array_api_compat.device(weight))
        grad_w = engine.run_weight_grad(
            call.prepared, call.spec, call.prepared.grad_output, batched=call.batched, channels_last=call.channels_last
        )
        return xp.reshape(grad_w, (1, *self.weight_shape))


def _gradients(transposed: bool, grad_output: Any, x: Any, weight: Any, **options: Any) -> tuple[Any, Any, Any]:
    da = require()
    grad_output = grad_output if is_dask_array(grad_output) else da.asarray(grad_output)
    x = x if is_dask_array(x) else da.asarray(x)
    call = _parse(transposed, x, weight, None, grad_output=grad_output, **options)
    spec = call.spec
    channels_last = bool(options.get("channels_last", False))
    layout = Layout(x.ndim, call.batched, channels_last)
    common = {"stride": spec.stride, "padding": spec.padding, "dilation": spec.dilation, "groups": spec.groups}
    # The input gradient is the other direction's forward call (tconv.grad's mapping), tiled in its turn.
    if transposed:
        grad_x = conv(grad_output, weight, channels_last=channels_last, **common)
        crop = tuple(slice(0, n) for n in spec.input_size)
        index = [slice(None)] * x.ndim
        for axis, cut in zip(layout.spatial_axes, crop):
            index[axis] = cut
        grad_x = grad_x[tuple(index)]
    else:
        grad_x = conv_transpose(grad_output, weight, output_size=spec.input_size, channels_last=channels_last, **common)
    # The weight gradient: each block of grad_output with the input window its outputs read, summed.
    gy = grad_output.rechunk({layout.channel_axis: -1})
    x = x.rechunk({layout.channel_axis: -1})
    gy_plans, x_plans = [], []
    for axis in range(x.ndim):
        if axis == layout.channel_axis:
            gy_plans.append(passthrough(gy.chunks[axis]))
            x_plans.append(AxisPlan((spec.out_channels,), ((0, spec.in_channels),), (None,)))
        elif axis in layout.spatial_axes:
            i = layout.spatial_axes.index(axis)
            windows = _windows_for_blocks(transposed, spec, i, gy.chunks[axis])
            gy_plans.append(AxisPlan(gy.chunks[axis], passthrough(gy.chunks[axis]).reads, windows))
            x_plans.append(AxisPlan(gy.chunks[axis], tuple((w.input_start, w.input_stop) for w in windows), windows))
        else:
            gy_plans.append(passthrough(gy.chunks[axis]))
            x_plans.append(passthrough(x.chunks[axis]))
    w = _as_one_chunk(da, weight)
    weight_shape = tuple(int(n) for n in weight.shape)
    name = f"tconv-weight-grad-{_token(transposed, gy, x, w, spec, layout)}"
    grid = [len(p.chunks) for p in gy_plans]
    flat = {index: n for n, index in enumerate(itertools.product(*(range(g) for g in grid)))}
    tasks = block_tasks(
        name,
        gy_plans,
        [(gy, gy_plans), (x, x_plans)],
        [single_key(w)],
        _WeightGradBlock(transposed, spec, layout, weight_shape),
        key_of=lambda index: (name, flat[index]) + (0,) * len(weight_shape),
    )
    partials = make_array(
        da,
        name,
        tasks,
        [gy, x, w],
        [(1,) * len(flat), *((n,) for n in weight_shape)],
        _meta_like(da, x, len(weight_shape) + 1),
    )
    grad_w = partials.sum(axis=0, dtype=partials.dtype)
    axes = tuple(a for a in range(grad_output.ndim) if a != layout.channel_axis)
    compute = np.float32 if np.dtype(grad_output.dtype).itemsize < 4 else grad_output.dtype
    grad_b = grad_output.astype(compute).sum(axis=axes).astype(grad_output.dtype)
    return grad_x, grad_w, grad_b


def _windows_for_blocks(transposed: bool, spec: Any, i: int, chunks: Sequence[int]) -> tuple[Any, ...]:
    """The window of each block of an output already chunked (``grad_output``'s chunks)."""
    layer, n = _axis_layer(transposed, spec, i), spec.input_size[i]
    return tuple(shapes.layer_input_range(layer, a, b, n) for a, b in itertools.pairwise(boundaries(chunks)))


def conv_grad(
    grad_output: Any,
    x: Any,
    weight: Any,
    /,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
) -> tuple[Any, Any, Any]:
    """:func:`tconv.conv_grad` on Dask arrays: lazy input, weight and bias gradients.

    The input gradient is the tiled transposed convolution of ``grad_output``; the weight gradient sums, over
    the blocks of ``grad_output``, the in-memory weight gradient of each block with the input window its
    outputs read (equal to the in-memory result within float rounding: the sum runs in another order).
    """
    return _gradients(
        False, grad_output, x, weight, stride=stride, padding=padding, dilation=dilation, groups=groups,
        channels_last=channels_last,
    )  # fmt: skip


def conv_transpose_grad(
    grad_output: Any,
    x: Any,
    weight: Any,
    /,
    *,
    stride: int | Sequence[int] = 1,
    padding: Any = 0,
    output_padding: int | Sequence[int] = 0,
    output_size: int | Sequence[int] | None = None,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    channels_last: bool = False,
) -> tuple[Any, Any, Any]:
    """:func:`tconv.conv_transpose_grad` on Dask arrays: lazy input, weight and bias gradients."""
    return _gradients(
        True, grad_output, x, weight, stride=stride, padding=padding, output_padding=output_padding,
        output_size=output_size, dilation=dilation, groups=groups, channels_last=channels_last,
    )  # fmt: skip
