"""The compiled algorithms as objects (the interface :class:`tconv.engine.registry.Algorithm`): what each
runs, its support predicate and its cost by the planner's cost model.

All take the caller's layout as it is (any strides, channels-last included; a view the kernels cannot read in place,
with negative or unaligned strides, is copied first: :func:`.geometry.kernel_ready`) and share their gradients: the
transposed convolution's input and weight gradients from one im2col of the output gradient, the convolution's weight
gradient from an im2col of x (:mod:`tconv.implementations.compiled.im2col`), except ``jit_direct``'s, summed
directly (:func:`.direct_conv.weight_grad`), and ``jit_pointwise``'s where its im2col is x itself, products over x
and the output gradient where they lie (:func:`.pointwise.weight_grad`). Where the cost model prices it lower than
the im2col, the engine runs either's weight gradient in register blocks instead (:func:`blocks_weight_grad`,
:mod:`.weight_blocks`; a transposed convolution's input gradient then apart: :mod:`tconv.engine.run`).

The cost model (seconds per sample; the rates in :mod:`tconv._tuning`): the column product at the machine's product
rate, ``gemm_rate()`` (:mod:`.machine`; slower in proportion when ``C_in/G < GEMM_FULL_RATE_INNER``), the column
buffer written and read once at ``COLUMN_STREAM``, each overlap-add row at ``ROW_COST``, and the direct kernel's
multiply-adds at ``DIRECT_RATE`` plus a ``ROW_COST`` for each row it adds; a stride-1 transposed convolution's
forward twin (``jit_im2col``) by its im2col and product (:func:`_twin_product`). A convolution is ranked between
``jit_gemm`` (its im2col and product, :func:`_twin_product` again) and ``jit_direct`` (the direct sum of
:mod:`.direct_conv`: wide planes at ``DIRECT_CONV_RATE``, phases copied at ``PHASE_FILL_RATE``).

The module is long because every compiled algorithm's object, with its support predicate and the cost terms the
transposed paths share (the column product, the spread output, the weight's copy), sits here, so that the
planner's inputs are read in one place; the estimates tied to one algorithm's own geometry live beside it
(:func:`.depthwise.cost`, :func:`.winograd.cost`, :func:`.phases.cost`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import _tuning
from ...spec import ConvSpec
from . import (
    blocked,
    depthwise,
    direct_conv,
    geometry,
    im2col,
    machine,
    phases,
    pointwise,
    transposed,
    weight_blocks,
    window_dots,
    winograd,
)
from .geometry import kernel_ready, patches_fit, runs_compiled, taps_overlap


def _column_product(spec: ConvSpec) -> tuple[float, int]:
    """The cost of the column product and of streaming its columns once each way, and the columns' elements."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps, p_in = math.prod(spec.kernel_size), math.prod(spec.input_size)
    flops = 2.0 * groups * cg_in * cg_out * taps * p_in
    elements = groups * cg_out * taps * p_in
    column_bytes = float(_tuning.COST_ITEMSIZE) * elements
    rate = machine.gemm_rate() * min(1.0, cg_in / _tuning.GEMM_FULL_RATE_INNER)
    return flops / rate + 2 * column_bytes / _tuning.COLUMN_STREAM, elements


def _twin_product(spec: ConvSpec) -> float:
    """The cost of a convolution's im2col and product run as a transposed convolution's twin: the product at
    ``gemm_rate()``, slower in proportion when its inner dimension ``C_in/G * K`` or its rows ``C_out/G`` fall
    below ``GEMM_FULL_RATE_INNER`` (BLAS's rate on thin products); its columns streamed once each way and its
    output written once, at ``COLUMN_STREAM`` (the weight's flip, once a call: :meth:`JitIm2col.setup_cost`)."""
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    inner, p_out = cg_in * taps, math.prod(spec.output_size)
    flops = 2.0 * groups * cg_out * inner * p_out
    full = _tuning.GEMM_FULL_RATE_INNER
    rate = machine.gemm_rate() * min(1.0, inner / full) * min(1.0, cg_out / full)
    item = float(_tuning.COST_ITEMSIZE)
    columns, output = item * groups * inner * p_out, item * spec.out_channels * p_out
    return flops / rate + (2 * columns + output) / _tuning.COLUMN_STREAM


def _kept_fraction(spec: ConvSpec) -> float:
    """The share of (input, tap) pairs ``jit_pixels`` multiplies: below 1 where the padding crops enough taps
    along one axis for it to skip them (:func:`.geometry.pixel_split`), else 1."""
    axes = geometry.axes3(spec)
    split = geometry.pixel_split(spec)
    if split is None:
        return 1.0
    axis, runs = split
    return geometry.pairs_inside(runs) / (axes.size_in[axis] * axes.kernel[axis])


def _weight_copy(spec: ConvSpec) -> float:
    """Seconds to copy the weight once each way at ``COLUMN_STREAM`` (an algorithm that rearranges it per call)."""
    weight = float(_tuning.COST_ITEMSIZE) * spec.in_channels * (spec.out_channels // spec.groups)
    return 2 * weight * math.prod(spec.kernel_size) / _tuning.COLUMN_STREAM


class Compiled:
    """What the compiled algorithms share: NumPy arrays of rank <= 3 with numba, the caller's layout, and the
    gradients. A subclass names itself and writes :meth:`forward` (and :meth:`supports`, :meth:`cost`)."""

    name = ""
    description = ""
    shares_transpose_grads = True

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        return None

    def batch_cost(self, spec: ConvSpec, batch: int, channels_last: bool = False) -> float | None:
        cost = self.cost(spec, channels_last)
        return None if cost is None else cost * batch

    def setup_cost(self, spec: ConvSpec) -> float:
        return 0.0

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        raise NotImplementedError

    def weight_grad(self, xp: Any, x: np.ndarray, grad_output: np.ndarray, spec: ConvSpec, channels_last: bool) -> Any:
        x, grad_output = kernel_ready(x), kernel_ready(grad_output)
        if spec.transposed:
            return im2col.conv_transpose_grads(x, None, grad_output, spec, channels_last)[1]
        return im2col.conv_weight_grad(x, grad_output, spec, channels_last)

    def runs_weight_grad_in_blocks(self, spec: ConvSpec, batch: int, channels_last: bool) -> bool:
        """Whether the engine runs this call's weight gradient in register blocks (:func:`weight_grad_in_blocks`)
        rather than :meth:`weight_grad`'s im2col: :func:`blocks_weight_grad`."""
        return blocks_weight_grad(spec, batch, channels_last)

    def transpose_grads(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, grad_output: np.ndarray, spec: ConvSpec, channels_last: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both gradients of a transposed convolution from one im2col of the output gradient."""
        x, weight, grad_output = kernel_ready(x), kernel_ready(weight), kernel_ready(grad_output)
        dx, dw = im2col.conv_transpose_grads(x, weight, grad_output, spec, channels_last)
        assert dx is not None  # the weight was given
        return dx, dw


class JitGemm(Compiled):
    name = "jit_gemm"
    description = (
        "compiled im2col / output-stationary col2im around one BLAS product per group (NumPy, rank <= 3, needs numba)"
    )

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The column product, then an overlap-add in rows as long as the input's last axis, and in channels-last
        the transposing copy of x into the product's ``(C_in, N*P)`` operand, read and written at
        ``TRANSPOSE_STREAM``; a convolution: its im2col and product (:func:`_twin_product`)."""
        if not spec.transposed:
            return _twin_product(spec)
        product, elements = _column_product(spec)
        copy = 2.0 * _tuning.COST_ITEMSIZE * spec.in_channels * math.prod(spec.input_size) if channels_last else 0.0
        rows = elements / spec.input_size[-1] * _tuning.ROW_COST
        return product + rows + copy / _tuning.TRANSPOSE_STREAM + _spread_output(spec, channels_last)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        x, weight = kernel_ready(x), kernel_ready(weight)
        if spec.transposed:
            return transposed.conv_transpose(x, weight, bias, spec, channels_last)
        return im2col.conv(x, weight, bias, spec, channels_last)


class JitPixels(Compiled):
    name = "jit_pixels"
    description = (
        "BLAS product into pixel-major columns, then a compiled overlap-add vectorised along the "
        "output channels; with one to three input channels the products folded into the overlap-add; "
        "channels-last output of whole stride blocks written by the products themselves, the only case with "
        "groups (NumPy, rank <= 3, transposed, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return spec.transposed and (spec.groups == 1 or transposed.blocks_fit(spec)) and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The column product, then an overlap-add in rows as long as the output channels, one per (input pixel,
        tap), at ``PIXEL_ROW_COST`` (the weight's rearrangement, once a call: :meth:`setup_cost`); with at most
        ``PIXELS_DIRECT_MAX_IN`` input channels, the products folded in: for each pair that reaches the output
        (:func:`.geometry.pair_count`, counted without the tables), that row and ``C_in`` rows of the weight at
        ``ROW_COST`` with their multiply-adds at ``DIRECT_RATE``. Channels-last, where the output is whole blocks
        of the stride and the products are written straight into it (:func:`.transposed.blocks_fit`):
        :func:`_blocks_cost`. Not ranked for other kernels no longer than their stride, where ``jit_gemm`` reads its
        output straight from the columns (no overlap-add, which measured faster on U-Net's 2x2 stride 2:
        docs/design.md)."""
        if not spec.transposed:
            return None
        if channels_last and transposed.blocks_fit(spec):  # each tap's product written into the output
            return _blocks_cost(spec)
        if spec.groups != 1:
            return None
        if not taps_overlap(spec):
            return None
        if spec.in_channels <= _tuning.PIXELS_DIRECT_MAX_IN:  # the products folded into the overlap-add
            rows = spec.in_channels * (_tuning.ROW_COST + spec.out_channels / _tuning.DIRECT_RATE)
            per_pair = _tuning.PIXEL_ROW_COST + rows
            return geometry.pair_count(spec) * per_pair  # the (input, tap) pairs inside the output
        product, elements = _column_product(spec)
        kept = _kept_fraction(spec)  # the cropped taps' columns are neither computed nor added
        return kept * (product + elements / spec.out_channels * _tuning.PIXEL_ROW_COST)

    def setup_cost(self, spec: ConvSpec) -> float:
        """The weight rearranged to ``(C_in, K * C_out)`` on every call."""
        return _weight_copy(spec)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        return transposed.conv_transpose_pixels(kernel_ready(x), kernel_ready(weight), bias, spec, channels_last)


class JitPatches(Compiled):
    name = "jit_patches"
    description = (
        "BLAS product into each input pixel's kernel patch, then a compiled overlap-add in rows "
        "of the kernel's length (kernels longer than their input; NumPy, rank <= 3, transposed, one group, "
        "last-axis dilation 1, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return patches_fit(spec) and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The column product, then an overlap-add in rows as long as the kernel's last axis. Not ranked for
        kernels no longer than their stride (nothing overlaps: ``jit_gemm`` reads the output straight from its
        columns) with ``PATCHES_NO_OVERLAP_MAX_CHANNELS`` output channels or more, where it adds a short row per
        input pixel and output channel (docs/design.md)."""
        if not patches_fit(spec):
            return None
        if not taps_overlap(spec) and spec.out_channels >= _tuning.PATCHES_NO_OVERLAP_MAX_CHANNELS:
            return None
        product, elements = _column_product(spec)
        return product + elements / spec.kernel_size[-1] * _tuning.ROW_COST + _spread_output(spec, channels_last)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        return transposed.conv_transpose_patches(kernel_ready(x), kernel_ready(weight), bias, spec, channels_last)


class JitPhases(Compiled):
    name = "jit_phases"
    description = (
        "one stride-1 convolution per output phase: an im2col of x for the phase's taps and one BLAS product "
        "written straight into the phase's outputs (NumPy, rank <= 3, transposed, one group, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return spec.transposed and spec.groups == 1 and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """:func:`.phases.cost`, channels-last with a stride above 1 only: channels-first it copies x and the
        output across, and at stride 1 it is the twin's im2col (``jit_im2col``)."""
        if not channels_last or not spec.transposed or spec.groups != 1 or all(s == 1 for s in spec.stride):
            return None
        return phases.cost(spec)

    def setup_cost(self, spec: ConvSpec) -> float:
        """The weight rearranged per phase, and one piece's Python per phase."""
        return _weight_copy(spec) + phases.setup_cost(spec)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        return phases.conv_transpose_phases(kernel_ready(x), kernel_ready(weight), bias, spec, channels_last)


def _blocks_cost(spec: ConvSpec) -> float:
    """``jit_pixels``' block writes (:func:`.transposed._blocks`), per sample: the product at ``gemm_rate()`` (slower
    in proportion below ``GEMM_FULL_RATE_INNER`` input channels a group), the output written once at
    ``COLUMN_STREAM`` (twice where a kernel shorter than its stride leaves outputs to the bias: the fill first), and
    the weight's block packed by BLAS at ``BLOCKS_PACK_STREAM`` and ``BLOCKS_PRODUCT_COST`` for each of its
    products: one group, in 2-D and 3-D, a ``C_in x kD * C_out`` block per input row and tap of the axes before the
    last; with groups a ``C_in/G x C_out/G`` block per group and tap of the last axis too (in 1-D once a piece,
    counted here once a sample: an overestimate where a piece spans several samples)."""
    c_in, c_out, groups = spec.in_channels, spec.out_channels, spec.groups
    cg_in = c_in // groups
    flops = 2.0 * cg_in * c_out * math.prod(spec.kernel_size) * math.prod(spec.input_size)
    product = flops / (machine.gemm_rate() * min(1.0, cg_in / _tuning.GEMM_FULL_RATE_INNER))
    gaps = any(k < st for k, st in zip(spec.kernel_size, spec.stride))
    written = (2 if gaps else 1) * float(_tuning.COST_ITEMSIZE) * c_out * math.prod(spec.output_size)
    item, rows = float(_tuning.COST_ITEMSIZE), math.prod(spec.input_size[:-1]) * math.prod(spec.kernel_size[:-1])
    if groups == 1:
        products = rows if spec.ndim > 1 else 0
        block = item * c_in * spec.kernel_size[-1] * c_out
    else:
        products = rows * groups * spec.kernel_size[-1]
        block = item * cg_in * (c_out // groups)
    packed = products * (block / _tuning.BLOCKS_PACK_STREAM + _tuning.BLOCKS_PRODUCT_COST)
    return product + written / _tuning.COLUMN_STREAM + packed


def _spread_output(spec: ConvSpec, channels_last: bool) -> float:
    """A channels-last transposed call whose taps never overlap (each dilated kernel no longer than its stride,
    :func:`~.geometry.taps_overlap`): the whole
    output written once more at ``COLUMN_STREAM``, which the column terms miss. Its outputs number up to
    ``prod(s/k)`` times the columns, most of them the bias alone, and channels-last they are written a channel
    count apart or through a channels-first copy; sweep 12's (24, 37, 20, 20) -> 37 k2 s4 depthwise was
    estimated at 4.5 ms on ``jit_gemm`` and took 18. Channels-first, where the rows are written whole, the term
    moved four choices to ones 1.1-2.7x slower (docs/design.md). Zero elsewhere."""
    if not channels_last or taps_overlap(spec):
        return 0.0
    return float(_tuning.COST_ITEMSIZE) * spec.out_channels * math.prod(spec.output_size) / _tuning.COLUMN_STREAM


def transposed_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """A convolution's weight ``(C_out, C_in/G, *k)`` as the weight of its transposed twin ``(C_in, C_out/G,
    *k)``: each group's two channel axes swapped and the kernel flipped on every spatial axis (and, the same
    operation, a transposed weight as its forward twin's: :func:`tconv.frameworks.base.flipped_forward_weight`)."""
    c_out, cg_in, *kernel = weight.shape
    grouped = weight.reshape(groups, c_out // groups, cg_in, *kernel).swapaxes(1, 2)
    flipped = grouped[(slice(None),) * 3 + (slice(None, None, -1),) * len(kernel)]
    return np.ascontiguousarray(flipped).reshape(groups * cg_in, c_out // groups, *kernel)


@functools.lru_cache(maxsize=1024)
def stride_one_conv(spec: ConvSpec) -> ConvSpec | None:
    """A stride-1 transposed convolution as the convolution that computes it (None for any other call): the
    flipped kernel (:func:`transposed_weight`) over x padded by ``d*(k-1) - lo`` and ``d*(k-1) - hi +
    output_padding``, which needs each side's crop within ``d*(k-1)``. Output ``o`` of both sums
    ``x[o + lo - d*(k-1) + t*d] * w_flipped[t]`` over the taps."""
    if not spec.transposed or any(s != 1 for s in spec.stride):
        return None
    pads = []
    for (lo, hi), k, d, extra in zip(spec.padding, spec.kernel_size, spec.dilation, spec.output_padding):
        reach = d * (k - 1)
        if lo > reach or hi > reach:
            return None
        pads.append((reach - lo, reach - hi + extra))
    return ConvSpec.build(
        transposed=False,
        input_size=spec.input_size,
        kernel_size=spec.kernel_size,
        in_channels=spec.in_channels,
        out_channels=spec.out_channels,
        padding=tuple(pads),
        dilation=spec.dilation,
        groups=spec.groups,
    )


def convolution_computed(spec: ConvSpec) -> ConvSpec | None:
    """The convolution an algorithm of forward sums runs for ``spec``: the call itself, or a stride-1 transposed
    convolution's forward twin (:func:`stride_one_conv`); None for another transposed call."""
    return stride_one_conv(spec) if spec.transposed else spec


class JitIm2col(Compiled):
    name = "jit_im2col"
    description = (
        "a stride-1 transposed convolution as its forward twin: compiled im2col of x and one BLAS product per "
        "group over C_in/G * K (few input channels, large kernels; NumPy, rank <= 3, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return stride_one_conv(spec) is not None and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The twin's im2col and product: the product's inner dimension is ``C_in/G * K`` here, against
        ``C_in/G`` for the transposed column product, and its columns number ``C_in/G * K * P_out`` against
        ``C_out/G * K * P_in``."""
        twin = stride_one_conv(spec)
        return None if twin is None else _twin_product(twin)

    def setup_cost(self, spec: ConvSpec) -> float:
        """The kernel flipped and its channel axes swapped on every call."""
        return _weight_copy(spec)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        twin = stride_one_conv(spec)
        assert twin is not None  # supports() said so
        x, weight = kernel_ready(x), kernel_ready(weight)
        return im2col.conv(x, transposed_weight(weight, spec.groups), bias, twin, channels_last)


class JitWinograd(Compiled):
    name = "jit_winograd"
    description = (
        "Winograd's F(2x2, 3x3): 16 BLAS products of the transformed kernel and input, 2.25 times fewer "
        "multiply-adds than the im2col's (2-D 3x3 stride-1 convolutions, dilated ones phase by phase, one group, "
        "and stride-1 transposed ones through their forward twin; NumPy, needs numba)"
    )
    #: the side of the output tiles: F(m x m, 3x3)
    tile = 2

    def _target(self, spec: ConvSpec) -> ConvSpec | None:
        """The convolution it computes: the call itself, or a stride-1 transposed convolution's forward twin."""
        target = convolution_computed(spec)
        if target is None or not winograd.fits(target) or not winograd.fits_memory(target, self.tile):
            return None
        return target

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return self._target(spec) is not None and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The products and the tile transforms (:func:`.winograd.cost`); not ranked where a dilated call's
        phases are too small (:func:`.winograd.phases_pay`)."""
        target = self._target(spec)
        if target is None or not winograd.phases_pay(target, self.tile):
            return None
        return winograd.cost(target, self.tile)

    def setup_cost(self, spec: ConvSpec) -> float:
        """The kernel's transform on every call (and a transposed call's flip to its twin's weight)."""
        target = self._target(spec)
        if target is None:
            return 0.0
        return winograd.setup_cost(target, self.tile) + (_weight_copy(spec) if spec.transposed else 0.0)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        target = self._target(spec)
        assert target is not None  # supports() said so
        x, weight = kernel_ready(x), kernel_ready(weight)
        if spec.transposed:
            weight = transposed_weight(weight, spec.groups)
        return winograd.conv(x, weight, bias, target, channels_last, self.tile)


class JitWinograd4(JitWinograd):
    name = "jit_winograd4"
    description = (
        "Winograd's F(4x4, 3x3): 36 BLAS products over 4x4 output tiles, 4 times fewer multiply-adds than the "
        "im2col's, for the same calls as jit_winograd (maps of 16 and more; float32 results round 10-20 times more)"
    )
    tile = 4


class JitPointwise(Compiled):
    name = "jit_pointwise"
    description = (
        "1x1 kernels as one BLAS product per block of pixels, written straight into the caller's layout "
        "(convolutions with no padding, any stride; transposed ones too, a strided one scattered among the bias; "
        "NumPy, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return pointwise.fits(spec) and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The product and one pass over the output (:func:`.pointwise.cost`)."""
        return pointwise.cost(spec, channels_last) if pointwise.fits(spec) else None

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        return pointwise.conv(x, weight, bias, spec, channels_last)

    def weight_grad(self, xp: Any, x: np.ndarray, grad_output: np.ndarray, spec: ConvSpec, channels_last: bool) -> Any:
        """Products over x and the output gradient where they lie, where the im2col is x itself
        (:func:`.pointwise.weight_grad`); else the im2col route, as the other compiled algorithms'."""
        x, grad_output = kernel_ready(x), kernel_ready(grad_output)
        grad = pointwise.weight_grad(x, grad_output, spec, channels_last)
        return grad if grad is not None else super().weight_grad(xp, x, grad_output, spec, channels_last)


class JitDirect(Compiled):
    name = "jit_direct"
    description = (
        "compiled direct sum per output plane, for few channels per group (depthwise; NumPy, rank <= 3, "
        "a transposed convolution or a convolution of any stride, needs numba); channels-last with few output "
        "channels per group over many input channels, dot products along the channels"
    )

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """A convolution: :func:`.direct_conv.cost` (channels-last, its fills and output write costlier). A
        transposed convolution: the cheaper of its own direct sum (:meth:`_transposed_cost`) and, at stride 1, the
        direct convolution of its forward twin (:func:`stride_one_conv`), times ``DIRECT_CHANNELS_LAST`` in
        channels-last, where the loops stride by the channel count (except where the twin runs as dot products
        along the channels, :func:`.direct_conv.dots_preferred`: their estimate)."""
        if not spec.transposed:
            return direct_conv.cost(spec, channels_last)
        layout = _tuning.DIRECT_CHANNELS_LAST if channels_last else 1.0
        twin = direct_twin(spec)
        if twin is None:
            return layout * self._transposed_cost(spec)
        if channels_last and direct_conv.dots_preferred(twin):  # the twin runs as dot products (forward)
            return direct_conv.cost(twin, channels_last=True)
        return layout * direct_conv.cost(twin)

    def setup_cost(self, spec: ConvSpec) -> float:
        """The kernel flipped on every call where a transposed convolution runs as its twin."""
        return 0.0 if direct_twin(spec) is None else _weight_copy(spec)

    @staticmethod
    def _transposed_cost(spec: ConvSpec) -> float:
        """Every output sums ``C_in/G`` channels times the ``prod(k/s)`` taps that reach it on average (at most
        every (input, tap) pair once), every output plane adds each (input channel, tap)'s input rows as one
        row each, at ``ROW_COST`` (the loop's set-up, which dominates where rows are short: a 1x1 input, a 1-D
        input of a few elements), and the whole output is written once at ``COLUMN_STREAM``: a kernel shorter
        than its stride reaches few outputs, and without that term the estimate missed the bias-only ones
        (sweep 41's (2, 4, 55, 55) -> 136 k1 s4 ran 2.1x ``jit_gemm``'s time on it; docs/design.md)."""
        cg_in = spec.in_channels // spec.groups
        taps = math.prod(spec.kernel_size)
        reach = taps / math.prod(spec.stride)
        # no more than every (input, tap) pair once: with a large dilated kernel over a small input the outputs
        # outnumber prod(s) times the inputs, and most of their taps fall outside x
        multiply_adds = (
            spec.out_channels * cg_in * min(math.prod(spec.output_size) * reach, taps * math.prod(spec.input_size))
        )
        rows = spec.out_channels * cg_in * taps * math.prod(spec.input_size[:-1])
        output = float(_tuning.COST_ITEMSIZE) * spec.out_channels * math.prod(spec.output_size)
        return multiply_adds / _tuning.DIRECT_RATE + rows * _tuning.ROW_COST + output / _tuning.COLUMN_STREAM

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        x, weight = kernel_ready(x), kernel_ready(weight)
        if not spec.transposed:
            return direct_conv.conv(x, weight, bias, spec, channels_last)
        twin = direct_twin(spec)
        if twin is not None:
            return direct_conv.conv(x, transposed_weight(weight, spec.groups), bias, twin, channels_last)
        return transposed.conv_transpose(x, weight, bias, spec, channels_last, direct=True)

    def weight_grad(self, xp: Any, x: np.ndarray, grad_output: np.ndarray, spec: ConvSpec, channels_last: bool) -> Any:
        """A convolution's weight gradient summed directly (:func:`.direct_conv.weight_grad`: no im2col of x)
        where the cost model puts that at most ``DIRECT_CONV_MARGIN`` of the im2col and product (short planes
        of many channels favour the product); else, and for a transposed convolution, from the im2col."""
        if spec.transposed or not direct_weight_grad(spec):
            return super().weight_grad(xp, x, grad_output, spec, channels_last)
        return direct_conv.weight_grad(kernel_ready(x), kernel_ready(grad_output), spec, channels_last)

    def runs_weight_grad_in_blocks(self, spec: ConvSpec, batch: int, channels_last: bool) -> bool:
        """Not where its own direct sums run the gradient (:func:`direct_weight_grad`, asked first); else as every
        compiled algorithm."""
        if not spec.transposed and direct_weight_grad(spec):
            return False
        return super().runs_weight_grad_in_blocks(spec, batch, channels_last)


class JitDepthwise(Compiled):
    name = "jit_depthwise"
    description = (
        "compiled sum per output pixel along the channels, for depthwise layers (one input and one output "
        "channel per group): channels-last (by rows of outputs held in registers: a convolution or a stride-1 "
        "transposed one, a strided transposed one by its output's phases), or channels-first through a "
        "channels-last tile of a vector's lanes "
        "of channels (a convolution or a transposed one, the latter by its output's phases where strided) or on "
        "small planes; a convolution or a transposed convolution, any "
        "stride, dilation and padding (NumPy, rank <= 3, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return depthwise.fits(spec) and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """A pair cost and the channels' multiply-adds per (output pixel, tap) pair, and the output's write; more
        channels-first, in proportion to the planes, except for a call through the tile: its vector multiply-adds
        and copies (:func:`.depthwise.cost`)."""
        return depthwise.cost(spec, channels_last)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        return depthwise.run(kernel_ready(x), kernel_ready(weight), bias, spec, channels_last)


class JitBlocked(Compiled):
    name = "jit_blocked"
    description = (
        "compiled direct convolution with blocks of 4 output pixels x 2 SIMD vectors of output channels held in "
        "registers (or the same pixel of 4-8 samples, over the taps that meet x), x read in place channels-last or "
        "copied (channels-last, or zero-padded on small maps; "
        "convolutions of any stride, dilation, padding and groups, "
        "and stride-1 transposed ones as their forward twin; NumPy, rank <= 3, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        """A convolution, or a stride-1 transposed convolution through its forward twin (:func:`stride_one_conv`:
        the flipped kernel), rank 1-3."""
        target = convolution_computed(spec)
        return target is not None and blocked.fits(target) and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The vector multiply-adds, the blocks' set-up and the copies (:func:`.blocked.cost`), where the planner
        ranks it (:func:`.blocked.ranked`: convolutions channels-last, and channels-first of more than one tap); a
        stride-1 transposed convolution priced as its forward twin (:func:`stride_one_conv`)."""
        target = convolution_computed(spec)
        if target is None or not blocked.ranked(target, channels_last):
            return None
        return blocked.cost(target, channels_last)

    def batch_cost(self, spec: ConvSpec, batch: int, channels_last: bool = False) -> float | None:
        """:meth:`cost` for a whole batch: a batch of a register block of samples or more may run in blocks across
        the samples (:func:`.blocked.batch_cost`)."""
        target = convolution_computed(spec)
        if target is None or not blocked.ranked(target, channels_last):
            return None
        return blocked.batch_cost(target, channels_last, batch)

    def setup_cost(self, spec: ConvSpec) -> float:
        """The weight packed into blocks on every call (:func:`.blocked.packing_cost`); a transposed one's also
        flipped, its channel axes swapped, first (:func:`transposed_weight`)."""
        target = convolution_computed(spec)
        if target is None or not blocked.fits(target):
            return 0.0
        return blocked.packing_cost(target) + (_weight_copy(spec) if spec.transposed else 0.0)

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        x, weight = kernel_ready(x), kernel_ready(weight)
        if spec.transposed:
            twin = stride_one_conv(spec)
            assert twin is not None  # supports() holds
            return blocked.conv(x, transposed_weight(weight, spec.groups), bias, twin, channels_last)
        return blocked.conv(x, weight, bias, spec, channels_last)


class JitDots(Compiled):
    name = "jit_dots"
    description = (
        "compiled dot products of each output's window of x with its weight row (the weight read as it is), four "
        "pixels' windows gathered at a time, in one compiled call for small convolutions; any stride, dilation, "
        "padding and groups, either layout (NumPy, rank <= 3, needs numba)"
    )

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        return window_dots.fits(spec) and runs_compiled(spec, xp)

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """The windows' gather, the dot products' vector multiply-adds and each output's sum of lanes
        (:func:`.window_dots.cost`): the way along the windows, per sample; the planner weighs :meth:`batch_cost`
        with the calls' own costs (rule 3)."""
        return window_dots.cost(spec) if window_dots.fits(spec) else None

    def batch_cost(self, spec: ConvSpec, batch: int, channels_last: bool = False) -> float | None:
        """:meth:`cost` for a whole batch, or, where the cost model prices it lower, the vectors along the output
        channels with the weight packed once (:func:`.window_dots.batch_cost`)."""
        return window_dots.batch_cost(spec, batch, channels_last) if window_dots.fits(spec) else None

    def forward(
        self, xp: Any, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec, channels_last: bool
    ) -> np.ndarray:
        return window_dots.conv(kernel_ready(x), weight, bias, spec, channels_last)

    def weight_grad(self, xp: Any, x: np.ndarray, grad_output: np.ndarray, spec: ConvSpec, channels_last: bool) -> Any:
        """As ``jit_direct``'s: summed directly where :func:`direct_weight_grad` holds, else from the im2col (the
        gradient the planner's other choices for the call would run; the window sums have no gradient of their
        own)."""
        return JitDirect().weight_grad(xp, x, grad_output, spec, channels_last)

    def runs_weight_grad_in_blocks(self, spec: ConvSpec, batch: int, channels_last: bool) -> bool:
        """As ``jit_direct``'s (whose gradient it runs)."""
        return JitDirect().runs_weight_grad_in_blocks(spec, batch, channels_last)


def blocks_weight_grad(spec: ConvSpec, batch: int, channels_last: bool) -> bool:
    """:func:`_blocks_weight_grad` for the team's size now (the estimate prices a partial sum a thread)."""
    return _blocks_weight_grad(spec, batch, channels_last, weight_blocks.bins())


@functools.lru_cache(maxsize=1024)
def _blocks_weight_grad(spec: ConvSpec, batch: int, channels_last: bool, bins: int) -> bool:
    """Whether a call's weight gradient (``batch`` samples) runs in register blocks (:func:`weight_grad_in_blocks`)
    instead of the algorithm's own route: where the cost model puts it at most ``WEIGHT_BLOCKS_MARGIN`` of the
    im2col and product's (:func:`_twin_product`: the same columns and multiply-adds), on layers whose windows
    overlap along some axis (``d*(k-1) + 1 > s``) and whose groups have ``BLOCKED_MIN_OUT`` output channels or more
    (as ``jit_blocked`` ranks itself: a depthwise layer's block of one vector is one lane of output channel and
    fifteen of zeros; such layers ran 1.3-4.2x the im2col's time on forward sweeps 58-59, where the im2col's
    estimate, priced for a product of one row a group, runs tens of times high), and where at least
    ``WEIGHT_BLOCKS_MIN_TAP_SHARE`` of the outputs' taps meet x (the blocks sum the padding's zeros too; (53, 29,
    3, 3, 3) -> 40 7x7x7, 8% of its taps in x, ran 3.5x the im2col's time on sweep 61). Where no windows overlap, the
    im2col copies each element of x at most once and a transposed call's shares it with the input gradient's
    product: on such layers of the U-Net's and of forward sweeps 56-59 (kernels 2x2 stride 2, 1x1) the blocks ran up
    to 1.3-2.2x the im2col's time
    (docs/design.md, "The weight gradient in register blocks"). A transposed convolution's is its adjoint
    convolution's (:meth:`~tconv.spec.ConvSpec.as_convolution`), where that convolution's output is x's size (an
    output padding of a stride or more adds outputs x does not have: left to the algorithm's route). ``jit_direct``'s
    direct sums keep their own rule (:func:`direct_weight_grad`), asked first (``runs_weight_grad_in_blocks``)."""
    if spec.transposed:
        adjoint = spec.as_convolution()
        if adjoint.output_size != spec.input_size:
            return False
        spec = adjoint
    if not weight_blocks.fits(spec) or spec.out_channels // spec.groups < _tuning.BLOCKED_MIN_OUT:
        return False
    if all(d * (k - 1) + 1 <= s for k, s, d in zip(spec.kernel_size, spec.stride, spec.dilation)):
        return False
    if math.prod(geometry.mean_taps(geometry.axes3(spec))) < _tuning.WEIGHT_BLOCKS_MIN_TAP_SHARE * math.prod(
        spec.kernel_size
    ):  # most taps in the padding: the blocks sum them all (zeros), the im2col's boxes skip them
        return False
    blocks = weight_blocks.cost(spec, batch, channels_last, bins)
    return blocks <= _tuning.WEIGHT_BLOCKS_MARGIN * _twin_product(spec) * batch


def weight_grad_in_blocks(x: np.ndarray, grad_output: np.ndarray, spec: ConvSpec, channels_last: bool) -> np.ndarray:
    """A call's weight gradient in register blocks (:func:`.weight_blocks.weight_grad`); a transposed convolution's
    as its adjoint convolution's, over the output gradient with x as that convolution's output gradient, in the
    transposed weight's own layout ``(C_in, C_out/G, *k)``."""
    x, grad_output = kernel_ready(x), kernel_ready(grad_output)
    if spec.transposed:
        return weight_blocks.weight_grad(grad_output, x, spec.as_convolution(), channels_last)
    return weight_blocks.weight_grad(x, grad_output, spec, channels_last)


@functools.lru_cache(maxsize=1024)
def direct_weight_grad(spec: ConvSpec) -> bool:
    """Whether ``jit_direct`` sums a convolution's weight gradient directly: where
    :func:`.direct_conv.weight_grad_cost` is at most ``DIRECT_CONV_MARGIN`` of the im2col and product's
    (:func:`_twin_product`, the same columns and multiply-adds)."""
    return direct_conv.weight_grad_cost(spec) <= _tuning.DIRECT_CONV_MARGIN * _twin_product(spec)


@functools.lru_cache(maxsize=1024)
def direct_twin(spec: ConvSpec) -> ConvSpec | None:
    """The forward twin (:func:`stride_one_conv`) through which ``jit_direct`` runs a stride-1 transposed
    convolution, where the direct convolution's cost (with the kernel's flip) is below the transposed direct
    sum's; else None. The twin sums four output channels a pass, the transposed sum one. The planner ranks
    ``jit_direct`` on such a call by rule 4 (``TWIN_DIRECT_MARGIN``)."""
    twin = stride_one_conv(spec)
    if twin is None or direct_conv.cost(twin) + _weight_copy(spec) >= JitDirect._transposed_cost(spec):
        return None
    return twin


#: The compiled algorithms, in the order the engine registers them.
ALGORITHMS = (
    JitGemm(),
    JitPixels(),
    JitPatches(),
    JitPhases(),  # before the others: the last resort (every ranked algorithm avoided) takes it late
    JitDirect(),
    JitIm2col(),
    JitWinograd(),
    JitWinograd4(),
    JitPointwise(),
    JitDepthwise(),
    JitBlocked(),
    JitDots(),
)
