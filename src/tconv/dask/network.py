"""Whole :mod:`tconv.nn` models on Dask arrays, tile by tile, with the stack's halo from the layers' arithmetic.

A model is read as a stack of steps, each with its :class:`tconv.shapes.AxisLayer` on every spatial axis:
convolutions and transposed convolutions (their resolved stride, dilation, padding and output padding),
max pooling (the convolution of its window), upsampling by an integer factor (what the bilinear transposed
convolution reads), and element-wise layers (activations, batch norm in inference, dropout in inference).
For each output tile, :func:`tconv.shapes.stack_input_ranges` walks back through the stack and gives every
layer's window; the task reads the input tile plus the stack's halo once and runs the layers forward on it,
each with its window's padding, so every intermediate is exactly the slice of the whole run it stands for.

Layers that need the whole array (global or adaptive pooling, flatten, reshape, dense layers over space,
padding modes other than zeros, resizing to a fixed size) are refused with a message naming the layer.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import shapes
from ..nn import Sequential
from ..nn.layers import ActivationLayer, BatchNorm, Convolution, DropoutLayer, MaxPool, Resize, resize_rows
from ..nn.layers.activations import ACTIVATIONS
from ..nn.layers.base import FUSED_SLOPE
from ..nn.module import Module
from ..ops import conv, conv_transpose
from ..spec import ConvSpec
from .tiling import (
    AxisPlan,
    block_tasks,
    boundaries,
    chunks_read,
    is_dask_array,
    make_array,
    passthrough,
    require,
)

__all__ = ["ModelArithmetic", "Step", "model_arithmetic", "model_steps", "run_model"]


class Step(NamedTuple):
    """One layer of a model as the tiler sees it: its kind, its arithmetic per spatial axis, its output."""

    name: str
    layer: Module
    kind: str  # 'conv', 'pool', 'resize' or 'elementwise'
    axes: tuple[shapes.AxisLayer, ...]
    spec: ConvSpec | None
    output_spatial: tuple[int, ...]
    channels: int


def _flatten(model: Module, prefix: str = "") -> list[tuple[str, Module]]:
    if isinstance(model, Sequential):
        layers = []
        for name, child in model.named_children():
            layers.extend(_flatten(child, f"{prefix}.{name}" if prefix else name))
        return layers
    return [(prefix or type(model).__name__, model)]


def _refuse(name: str, layer: Module, why: str) -> ValueError:
    return ValueError(
        f"layer {name!r} ({type(layer).__name__}) cannot run tile by tile: {why}. Run the model in memory, "
        "or split it before this layer"
    )


def model_steps(model: Module, input_shape: Sequence[int], *, channels_last: bool | None = None) -> list[Step]:
    """The model's layers as tiling steps for inputs of ``input_shape`` (batch, channels and space), or a
    ``ValueError`` naming the first layer that needs the whole array."""
    layers: list[tuple[str, Any]] = _flatten(model)
    ranks: set[Any] = {getattr(layer, "rank", None) for _, layer in layers} - {None}
    layouts = {bool(layer.channels_last) for _, layer in layers if hasattr(layer, "channels_last")}
    if len(ranks) > 1 or len(layouts) > 1:
        raise ValueError(f"the model mixes spatial ranks {sorted(ranks)} or channel layouts; tiling needs one of each")
    last = layouts.pop() if layouts else bool(channels_last)
    rank = ranks.pop() if ranks else len(input_shape) - 2
    if len(input_shape) != rank + 2:
        raise ValueError(f"the model expects inputs with {rank + 2} axes; received shape {tuple(input_shape)}")
    channels = int(input_shape[-1] if last else input_shape[1])
    spatial = tuple(int(n) for n in (input_shape[1:-1] if last else input_shape[2:]))
    steps: list[Step] = []
    for name, layer in layers:
        identity = tuple(shapes.AxisLayer(1) for _ in spatial)
        if isinstance(layer, Convolution):
            if layer.padding_mode != "zeros":
                raise _refuse(name, layer, f"padding_mode={layer.padding_mode!r} reads across the array's ends")
            if layer.in_channels is None:
                raise ValueError(f"layer {name!r} has no weights yet; build the model first (model.build_from_shape)")
            if layer.in_channels != channels:
                raise ValueError(
                    f"layer {name!r} ({type(layer).__name__}) takes {layer.in_channels} channels; the input "
                    f"{tuple(input_shape)} gives it {channels}"
                )
            args = dict(layer.call_arguments(spatial))
            spec = ConvSpec.build(
                transposed=layer.transposed,
                input_size=spatial,
                kernel_size=layer.kernel_size,
                in_channels=channels,
                out_channels=layer.out_channels,
                **args,
            )
            axes = tuple(
                shapes.AxisLayer(k, s, p, op, d, layer.transposed)
                for k, s, p, op, d in zip(
                    spec.kernel_size, spec.stride, spec.padding, spec.output_padding, spec.dilation
                )
            )
            steps.append(Step(name, layer, "conv", axes, spec, spec.output_size, spec.out_channels))
        elif isinstance(layer, MaxPool):
            if layer.padding == "valid":
                pairs = [(0, 0)] * rank
            elif layer.padding == "same":
                pairs = [
                    shapes.conv_same_padding(n, k, stride=s)
                    for n, k, s in zip(spatial, layer.kernel_size, layer.stride)
                ]
            else:
                pairs = [(p, p) for p in layer.padding]
            axes = tuple(shapes.AxisLayer(k, s, p) for k, s, p in zip(layer.kernel_size, layer.stride, pairs))
            out = tuple(shapes.layer_output_size(a, n) for a, n in zip(axes, spatial))
            steps.append(Step(name, layer, "pool", axes, None, out, channels))
        elif isinstance(layer, Resize):
            factors = layer.scale_factor
            if layer.size is not None or factors is None or any(f != int(f) for f in factors) or layer.align_corners:
                raise _refuse(
                    name, layer, "only upsampling by integer scale factors without align_corners is local; "
                    f"received size={layer.size}, scale_factor={factors}, align_corners={layer.align_corners}"
                )  # fmt: skip
            axes = tuple(shapes.AxisLayer.upsampling(int(f)) for f in factors)
            out = tuple(n * int(f) for n, f in zip(spatial, factors))
            steps.append(Step(name, layer, "resize", axes, None, out, channels))
        elif isinstance(layer, BatchNorm):
            if (layer.axis % (rank + 2)) != (rank + 1 if last else 1):
                raise _refuse(name, layer, f"it normalises axis {layer.axis}, not the channel axis")
            steps.append(Step(name, layer, "elementwise", identity, None, spatial, channels))
        elif isinstance(layer, (ActivationLayer, DropoutLayer)):
            steps.append(Step(name, layer, "elementwise", identity, None, spatial, channels))
        else:
            raise _refuse(name, layer, "it needs the whole array (it is not a convolution, pooling window, "
                          "upsampling or element-wise layer)")  # fmt: skip
        spatial, channels = steps[-1].output_spatial, steps[-1].channels
    if not steps:
        raise ValueError("the model has no layers to tile")
    return steps


class ModelArithmetic(NamedTuple):
    """Per layer: its arithmetic on every spatial axis and that of the stack up to it (``str()`` is a table)."""

    steps: tuple[Step, ...]
    stacks: tuple[tuple[shapes.StackArithmetic, ...], ...]  # [axis][depth]

    def __str__(self) -> str:
        head = (
            f"{'layer':<18} {'type':<18} {'output':<18} {'scale':<10} {'receptive field':<16} {'alignment':<10} "
            "halo (before, after)"
        )
        lines = [head, "-" * (len(head) + 2)]
        for depth, step in enumerate(self.steps):
            rows = [stack[depth] for stack in self.stacks]
            scale = "x".join(f"{r.scale[0]}/{r.scale[1]}" if r.scale[1] != 1 else str(r.scale[0]) for r in rows)
            field = "x".join(str(r.receptive_field) for r in rows)
            alignment = "x".join(str(r.alignment) for r in rows)
            halo = " ".join(f"({r.halo[0]},{r.halo[1]})" for r in rows)
            output = "x".join(map(str, step.output_spatial)) + f" x{step.channels}"
            lines.append(
                f"{step.name:<18} {type(step.layer).__name__:<18} {output:<18} {scale:<10} {field:<16} "
                f"{alignment:<10} {halo}"
            )
        lines.append("halo: input elements read beyond an input tile, per spatial axis, by the whole stack so far")
        lines.append("alignment: the input period of the stack's tiling (tiles starting at its multiples are alike)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The table as plain data (``tconv explain --model ... --json``): one entry per layer, per axis lists."""
        layers = []
        for depth, step in enumerate(self.steps):
            rows = [stack[depth] for stack in self.stacks]
            layers.append(
                {
                    "name": step.name,
                    "type": type(step.layer).__name__,
                    "kind": step.kind,
                    "output_spatial": list(step.output_spatial),
                    "channels": step.channels,
                    "scale": [list(r.scale) for r in rows],
                    "receptive_field": [r.receptive_field for r in rows],
                    "halo": [list(r.halo) for r in rows],
                    "alignment": [r.alignment for r in rows],
                }
            )
        return {"layers": layers}


def model_arithmetic(model: Module, input_shape: Sequence[int]) -> ModelArithmetic:
    """Receptive field, halo, scale and alignment of every layer of a model, for inputs of ``input_shape``.

    Examples
    --------
    >>> from tconv import nn
    >>> from tconv.dask import model_arithmetic
    >>> decoder = nn.Sequential([nn.ConvTranspose3d(4, 4, 4, stride=2, padding=1), nn.ReLU(),
    ...                          nn.Conv3d(4, 2, 3, padding=1)])
    >>> print(model_arithmetic(decoder, (1, 4, 8, 8, 8)))  # doctest: +NORMALIZE_WHITESPACE
    layer              type               output             scale      receptive field  alignment  halo (before, after)
    ----------------------------------------------------------------------------------------------------------------------
    0                  ConvTranspose3d    16x16x16 x4        2x2x2      2x2x2            1x1x1      (1,0) (1,0) (1,0)
    1                  ReLU               16x16x16 x4        2x2x2      2x2x2            1x1x1      (1,0) (1,0) (1,0)
    2                  Conv3d             16x16x16 x2        2x2x2      3x3x3            1x1x1      (1,1) (1,1) (1,1)
    halo: input elements read beyond an input tile, per spatial axis, by the whole stack so far
    alignment: the input period of the stack's tiling (tiles starting at its multiples are alike)
    """
    steps = model_steps(model, input_shape)
    rank = len(steps[0].axes)
    stacks = tuple(tuple(shapes.stack_arithmetic([s.axes[i] for s in steps])) for i in range(rank))
    return ModelArithmetic(tuple(steps), stacks)


def _max_pool(x: np.ndarray, step: Step, windows: Sequence[shapes.BlockWindow]) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    layer: Any = step.layer
    pads = [(0, 0), (0, 0), *(w.padding for w in windows)]
    padded = np.pad(x, pads, constant_values=-np.inf)
    axes = tuple(range(2, x.ndim))
    view = sliding_window_view(padded, layer.kernel_size, axis=axes)
    strided = (slice(None), slice(None), *(slice(None, None, s) for s in layer.stride))
    view = view[strided]
    return np.ascontiguousarray(view.max(axis=tuple(range(x.ndim, view.ndim))))


def _resize(x: np.ndarray, step: Step, ranges_in: Sequence[tuple[int, int]], ranges_out: Sequence[tuple[int, int]],
            sizes_in: Sequence[int]) -> np.ndarray:  # fmt: skip
    layer: Any = step.layer
    mode = "nearest" if layer.mode == "nearest" else "linear"
    for i, ((c0, c1), (a, b), n, f) in enumerate(zip(ranges_in, ranges_out, sizes_in, layer.scale_factor)):
        low, high, frac = resize_rows(np.arange(a, b), n, int(n * f), mode, scale=1.0 / f)
        matrix = np.zeros((b - a, c1 - c0))
        rows = np.arange(b - a)
        np.add.at(matrix, (rows, low - c0), 1.0 - frac)
        if mode == "linear":
            np.add.at(matrix, (rows, high - c0), frac)
        axis = 2 + i
        moved = np.tensordot(matrix.astype(x.dtype), np.moveaxis(x, axis, 0), axes=(1, 0))
        x = np.moveaxis(moved, 0, axis)
    return x


class _ModelBlock:
    """Runs the stack on one tile (a picklable callable; the model arrives as a shared graph key)."""

    def __init__(self, steps: Sequence[Step], channels_last: bool, dtype: Any) -> None:
        # Layers travel in the shared model, not here: keep only what each task needs.
        self.kinds = [s.kind for s in steps]
        self.specs = [s.spec for s in steps]
        self.sizes_in = [None, *[s.output_spatial for s in steps[:-1]]]
        self.channels_last, self.dtype = channels_last, dtype

    def __call__(self, windows: tuple[Any, ...], sizes: tuple[int, ...], x: Any, model: Module) -> Any:
        steps: list[tuple[str, Any]] = _flatten(model)
        spatial = [w for w in windows if w is not None]  # per axis: (list of BlockWindow per layer, tile range)
        h = np.asarray(x, dtype=self.dtype)
        if self.channels_last:
            h = np.moveaxis(h, -1, 1)
        for j, ((_, layer), kind, spec) in enumerate(zip(steps, self.kinds, self.specs)):
            layer_windows = [axis_windows[j] for axis_windows, _ in spatial]
            if kind == "conv":
                assert spec is not None
                options: dict[str, Any] = {
                    "stride": spec.stride,
                    "padding": tuple(w.padding for w in layer_windows),
                    "dilation": spec.dilation,
                    "groups": spec.groups,
                }
                bias = layer.bias.value if layer.use_bias else None
                if spec.transposed:
                    options["output_padding"] = tuple(w.output_padding for w in layer_windows)
                    z = conv_transpose(h, layer.weight.value, bias, **options)
                else:
                    z = conv(h, layer.weight.value, bias, **options)
                h = ACTIVATIONS[layer.activation][0](z, FUSED_SLOPE).astype(z.dtype, copy=False)
            elif kind == "pool":
                h = _max_pool(h, Step("", layer, kind, (), None, (), 0), layer_windows)
            elif kind == "resize":
                ranges_in = [(w.input_start, w.input_stop) for w in layer_windows]
                ranges_out = [
                    (axis_windows[j + 1].input_start, axis_windows[j + 1].input_stop)
                    if j + 1 < len(axis_windows)
                    else tile
                    for axis_windows, tile in spatial
                ]
                sizes_in = self.sizes_in[j] or ()
                h = _resize(h, Step("", layer, kind, (), None, (), 0), ranges_in, ranges_out, sizes_in)
            else:  # element-wise, in the model's channels-first view
                h = layer(np.moveaxis(h, 1, -1)) if self.channels_last else layer(h)
                h = np.moveaxis(h, -1, 1) if self.channels_last else h
        return np.moveaxis(h, 1, -1) if self.channels_last else h


def run_model(model: Module, x: Any, *, chunks: Any = None, output_chunks: int | Sequence[int] | None = None) -> Any:
    """Run a :mod:`tconv.nn` model on a Dask array tile by tile, in inference mode; a lazy Dask array.

    Each output tile is one task that reads its input tile plus the stack's halo (computed from the layers'
    arithmetic, :func:`model_arithmetic`) and runs every layer on it; the result equals ``model(x)`` in
    evaluation mode on the whole array. Output tiles line up with the input's chunks (``chunks`` rechunks
    the input first), or are ``output_chunks`` elements along every spatial axis (an int, or one per axis:
    regular chunks, as Zarr stores them). The model (a copy, switched to evaluation mode) is one key of
    the graph.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from tconv import nn
    >>> from tconv.dask import run_model
    >>> _ = nn.manual_seed(0)
    >>> model = nn.Sequential([nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1), nn.ReLU(),
    ...                        nn.Conv2d(3, 1, 3, padding=1)])
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 12, 12)).astype(np.float32)
    >>> y = run_model(model, da.from_array(x, chunks=(1, 2, 5, 5)))
    >>> y.chunks
    ((1,), (1,), (10, 10, 4), (10, 10, 4))
    >>> float(abs(y.compute() - model.eval()(x)).max()) < 1e-5
    True
    """
    da = require()
    if not is_dask_array(x):
        x = da.asarray(x)
    if chunks is not None:
        x = x.rechunk(chunks)
    steps = model_steps(model, x.shape)
    first = next((s.layer for s in steps if hasattr(s.layer, "channels_last")), None)
    channels_last = bool(getattr(first, "channels_last", False))
    rank = len(steps[0].axes)
    channel_axis = rank + 1 if channels_last else 1
    spatial_axes = tuple(range(1, rank + 1)) if channels_last else tuple(range(2, rank + 2))
    x = x.rechunk({channel_axis: -1})
    input_sizes = [int(x.shape[a]) for a in spatial_axes]

    def plan_axis(i: int, chunks: Sequence[int]) -> AxisPlan:
        layers = [s.axes[i] for s in steps]
        edges = boundaries(chunks)
        sizes = [input_sizes[i], *[s.output_spatial[i] for s in steps]]
        if output_chunks is not None:
            step = output_chunks if isinstance(output_chunks, int) else output_chunks[i]
            layers_to_align: list[shapes.AxisLayer] = []
            edges = [*range(0, sizes[-1], int(step)), sizes[-1]]
        else:
            layers_to_align = layers
        for layer, out in zip(layers_to_align, sizes[1:]):
            edges = list(
                shapes.aligned_output_boundaries(edges, out, stride=layer.stride, padding=layer.padding,
                                                 transposed=layer.transposed)
            )  # fmt: skip
        windows, reads = [], []
        for a, b in itertools.pairwise(edges):
            stack = shapes.stack_input_ranges(layers, input_sizes[i], a, b)
            windows.append((tuple(stack), (a, b)))
            reads.append((stack[0].input_start, stack[0].input_stop))
        return AxisPlan(tuple(b - a for a, b in itertools.pairwise(edges)), tuple(reads), tuple(windows))

    for i, axis in enumerate(spatial_axes):
        plan = plan_axis(i, x.chunks[axis])
        if chunks_read(x.chunks[axis], plan) > 3:
            widest = max(stop - start for start, stop in plan.reads)
            x = x.rechunk({axis: max(max(x.chunks[axis]), widest)})
    plans: list[AxisPlan] = []
    for axis in range(x.ndim):
        if axis == channel_axis:
            plans.append(AxisPlan((steps[-1].channels,), ((0, int(x.shape[axis])),), (None,)))
        elif axis in spatial_axes:
            plans.append(plan_axis(spatial_axes.index(axis), x.chunks[axis]))
        else:
            plans.append(passthrough(x.chunks[axis]))
    inference = copy.deepcopy(model).eval()
    model_key = _model_key(inference)
    from dask.base import tokenize

    name = f"tconv-model-{tokenize(x, model_key[0], [p.chunks for p in plans])}"
    tasks = block_tasks(name, plans, [(x, plans)], [model_key[0]], _ModelBlock(steps, channels_last, model.dtype))
    tasks.update(model_key[1])
    from dask.array.utils import meta_from_array

    meta = meta_from_array(np.empty((0,) * x.ndim, dtype=model.dtype))
    return make_array(da, name, tasks, [x], [p.chunks for p in plans], meta)


def _model_key(model: Module) -> tuple[str, dict[str, Any]]:
    """One graph key holding the model: every task names it, so Dask ships it once per worker."""
    from dask.base import tokenize

    state = {name: p.value for name, p in model.named_parameters()}
    key = f"tconv-model-weights-{tokenize(type(model).__name__, state, repr(model))}"
    return key, {key: (_identity, model)}


def _identity(value: Any) -> Any:
    return value
