"""Short SIMD vectors for the compiled kernels: a numba type whose values are LLVM vectors, 256 bits (eight float32 or
four float64 lanes) for the module's own operations, and the machine's widest (:func:`widest`, 512 bits where numba
compiles for AVX-512) for the register blocks bound by their multiply-adds, and the handful of operations a
register-blocked kernel needs (:mod:`.blocked`, :mod:`.direct_conv`): a load of consecutive elements (or of every
second, third or fourth, for the direct sum's strided copies into phases), a broadcast of one element, a vector of
zeros, a sum, a fused multiply-add and a store, the sum of a vector's lanes (:mod:`.window_dots`), a square block's
transpose (:mod:`.transpose`), and the lanes of a vector of an array's elements as a constant of the compiled code.

Why not numba's own vectorisation: LLVM vectorises an inner loop, so a kernel that keeps a block of outputs in
registers (several pixels times a vector of output channels, each input element and each weight vector loaded
once for the whole block) has to be written with the vectors explicit. Written as scalars, LLVM's SLP pass
vectorised some of the sums and left the rest scalar (7 GFLOP/s on a first convolution), and with the sums in an
array they live in memory and each multiply-add stores (docs/design.md, "Register-blocked direct convolution").
LLVM lowers these vectors to whatever the machine has: two 128-bit halves without AVX, one register with AVX2,
one with AVX-512 (whose 512-bit registers LLVM's vectoriser leaves unused by default: it prefers 256 bits on those
CPUs, so only vectors written out get them).

Imported only by the kernels' builders, after :func:`.kernels.numba_module` found numba: importing this module
imports numba.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

from ... import _tuning
from . import machine

__all__ = [
    "Vector",
    "Width",
    "lanes",
    "vadd",
    "vfma",
    "vload",
    "vload_every",
    "vsplat",
    "vstore",
    "vsum",
    "vtranspose",
    "vzero",
    "widest",
    "width",
]


class Vector(types.Type):
    """``lanes`` of ``dtype``'s elements, one LLVM vector value (kept in a register where one is free)."""

    def __init__(self, dtype: Any, lanes: int) -> None:
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Vector({dtype} x {lanes})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: Vector) -> None:
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _address(context: Any, builder: Any, array_type: Any, array: Any, index: Any) -> Any:
    """The address of element ``index`` of a 1-D array's memory (no bounds or wrap-around check: the kernels'
    index arithmetic keeps every access inside the array)."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


def _check_array(array: Any, written: bool = False) -> None:
    """A 1-D C-contiguous float32 or float64 array (its elements one after another: the operations index its
    memory directly), writeable where ``written``."""
    if not isinstance(array, types.Array) or array.ndim != 1 or array.dtype not in (types.float32, types.float64):
        raise TypeError(f"expected a 1-D float32 or float64 array, received {array}")
    if array.layout != "C" or (written and not array.mutable):
        raise TypeError(f"expected a C-contiguous{' writeable' if written else ''} array, received {array}")


@intrinsic
def vstore(typingctx: Any, array: Any, index: Any, value: Any) -> Any:
    """``array[index : index + lanes] = value`` (any alignment)."""
    _check_array(array, written=True)
    if not isinstance(value, Vector) or value.dtype != array.dtype:
        raise TypeError(f"expected a vector of {array.dtype}, received {value}")

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        address = _address(context, builder, signature.args[0], args[0], args[1])
        pointer = builder.bitcast(address, args[2].type.as_pointer())
        builder.store(args[2], pointer, align=array.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def vadd(typingctx: Any, a: Any, b: Any) -> Any:
    """``a + b`` lane by lane."""
    if not (isinstance(a, Vector) and a == b):
        raise TypeError(f"expected two vectors of one type, received {a}, {b}")

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fadd(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vfma(typingctx: Any, accumulator: Any, a: Any, b: Any) -> Any:
    """``accumulator + a * b`` lane by lane, fused where the machine has a fused multiply-add (LLVM's
    ``fmuladd``)."""
    if not (isinstance(accumulator, Vector) and accumulator == a == b):
        raise TypeError(f"expected three vectors of one type, received {accumulator}, {a}, {b}")

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        vector_type = args[0].type
        bits = 32 if isinstance(vector_type.element, ir.FloatType) else 64
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vector_type, [vector_type] * 3),
            f"llvm.fmuladd.v{vector_type.count}f{bits}",
        )
        return builder.call(function, [args[1], args[2], args[0]])

    return accumulator(accumulator, a, b), codegen


@intrinsic
def vsum(typingctx: Any, vector: Any) -> Any:
    """The sum of a vector's lanes, as a tree (halves added until one lane is left, not the lanes one after
    another; a kernel compiled with fast math may let LLVM reassociate it, in the same way on every call of that
    build)."""
    if not isinstance(vector, Vector):
        raise TypeError(f"expected a vector, received {vector}")
    if vector.lanes & (vector.lanes - 1):
        raise TypeError(f"expected a power-of-two count of lanes, received {vector}")

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value, count = args[0], vector.lanes
        while count > 1:
            half = count // 2
            lanes_of = [
                ir.Constant(ir.VectorType(ir.IntType(32), half), list(r)) for r in (range(half), range(half, count))
            ]
            low, high = (builder.shuffle_vector(value, value, picked) for picked in lanes_of)
            value, count = builder.fadd(low, high), half
        return builder.extract_element(value, ir.IntType(32)(0))

    return vector.dtype(vector), codegen


class Width(NamedTuple):
    """The operations that make vectors of one width (:func:`width`); :func:`vstore`, :func:`vadd`, :func:`vfma` and
    :func:`vsum` take any width from their vectors."""

    vector_bytes: int
    lanes: Any
    vload: Any
    vload_every: Any
    vsplat: Any
    vtranspose: Any
    vzero: Any


@functools.cache
def width(vector_bytes: int) -> Width:
    """The intrinsics that make vectors of ``vector_bytes`` (made once a width: a kernel binds them as module
    globals, so that numba's cache, which keys a kernel by its closure, never holds them).

    Every kernel written with them holds its width's bytes as an int in its closure instead (an int pickles alike in
    every process, and numba's cache key includes the closure), and checks it against its compiled lanes: code
    cached for another width, by an earlier tconv whose source file is unchanged, is then never loaded."""

    def typed(dtype: Any) -> Vector:
        return Vector(dtype, vector_bytes * 8 // dtype.bitwidth)

    @intrinsic
    def vload(typingctx: Any, array: Any, index: Any) -> Any:
        """The vector of ``array[index : index + lanes]`` (any alignment)."""
        _check_array(array)
        vector = typed(array.dtype)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            address = _address(context, builder, signature.args[0], args[0], args[1])
            pointer = builder.bitcast(address, context.get_value_type(vector).as_pointer())
            return builder.load(pointer, align=array.dtype.bitwidth // 8)

        return vector(array, index), codegen

    @intrinsic(prefer_literal=True)
    def vload_every(typingctx: Any, array: Any, index: Any, step: Any) -> Any:
        """The vector of ``array[index : index + step * lanes : step]`` (any alignment; ``step``, a constant of the
        compiled code, at least 2): the ``step * lanes`` elements from ``index`` loaded at once and every ``step``-th
        kept by one shuffle (LLVM lowers it to a few permutes; a strided loop of elements it leaves scalar, or
        gathers). It reads ``step - 1`` elements past the last one it keeps: the caller keeps them inside the array."""
        _check_array(array)
        if not isinstance(step, types.IntegerLiteral) or step.literal_value < 2:
            raise TypeError(f"expected a constant step of at least 2, received {step}")
        vector = typed(array.dtype)
        every = step.literal_value

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            address = _address(context, builder, signature.args[0], args[0], args[1])
            element = context.get_value_type(vector).element
            wide = ir.VectorType(element, every * vector.lanes)
            loaded = builder.load(builder.bitcast(address, wide.as_pointer()), align=array.dtype.bitwidth // 8)
            kept = ir.Constant(ir.VectorType(ir.IntType(32), vector.lanes), [i * every for i in range(vector.lanes)])
            return builder.shuffle_vector(loaded, ir.Constant(wide, ir.Undefined), kept)

        return vector(array, index, step), codegen

    @intrinsic
    def vsplat(typingctx: Any, array: Any, index: Any) -> Any:
        """The vector whose every lane is ``array[index]``."""
        _check_array(array)
        vector = typed(array.dtype)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            element = builder.load(_address(context, builder, signature.args[0], args[0], args[1]))
            vector_type = context.get_value_type(vector)
            first = builder.insert_element(ir.Constant(vector_type, ir.Undefined), element, ir.IntType(32)(0))
            lanes = ir.Constant(ir.VectorType(ir.IntType(32), vector.lanes), [0] * vector.lanes)
            return builder.shuffle_vector(first, ir.Constant(vector_type, ir.Undefined), lanes)

        return vector(array, index), codegen

    @intrinsic
    def vtranspose(typingctx: Any, dst: Any, to: Any, dst_step: Any, src: Any, at: Any, src_step: Any) -> Any:
        """A square block of ``lanes x lanes`` elements copied transposed: row ``i`` of ``src`` (``lanes`` elements from
        ``at + i * src_step``) becomes column ``i`` of ``dst`` (element ``i`` of each row from ``to + j * dst_step``),
        by ``lanes`` vector loads, log2(lanes) rounds of shuffles (each swaps blocks of the rows pairwise, as a
        transpose of 2 x 2 blocks of blocks) and ``lanes`` vector stores, where an element-by-element copy reads a
        row apart for every element it writes."""
        _check_array(src)
        _check_array(dst, written=True)
        if src.dtype != dst.dtype:
            raise TypeError(f"expected arrays of one dtype, received {src}, {dst}")
        if not all(isinstance(i, types.Integer) for i in (to, dst_step, at, src_step)):
            raise TypeError(f"expected integer indices and steps, received {to}, {dst_step}, {at}, {src_step}")
        vector = typed(src.dtype)
        lanes = vector.lanes

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            dst_array, src_array = args[0], args[3]
            to_index, dst_stride, at_index, src_stride = (
                context.cast(builder, args[i], signature.args[i], types.int64) for i in (1, 2, 4, 5)
            )
            vector_type = context.get_value_type(vector)
            align = src.dtype.bitwidth // 8
            rows = []
            for i in range(lanes):
                index = builder.add(at_index, builder.mul(src_stride, ir.Constant(src_stride.type, i)))
                address = _address(context, builder, signature.args[3], src_array, index)
                rows.append(builder.load(builder.bitcast(address, vector_type.as_pointer()), align=align))
            block = 1
            while block < lanes:
                low = [k if not k & block else lanes + k - block for k in range(lanes)]
                high = [k + block if not k & block else lanes + k for k in range(lanes)]
                masks = [ir.Constant(ir.VectorType(ir.IntType(32), lanes), m) for m in (low, high)]
                for i in range(lanes):
                    if i & block:
                        continue
                    a, b = rows[i], rows[i + block]
                    rows[i], rows[i + block] = (builder.shuffle_vector(a, b, mask) for mask in masks)
                block *= 2
            for j in range(lanes):
                index = builder.add(to_index, builder.mul(dst_stride, ir.Constant(dst_stride.type, j)))
                address = _address(context, builder, signature.args[0], dst_array, index)
                builder.store(rows[j], builder.bitcast(address, vector_type.as_pointer()), align=align)
            return context.get_dummy_value()

        return types.void(dst, to, dst_step, src, at, src_step), codegen

    @intrinsic
    def vzero(typingctx: Any, array: Any) -> Any:
        """The vector of zeros of ``array``'s element type (an accumulator's start)."""
        _check_array(array)
        vector = typed(array.dtype)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return ir.Constant(context.get_value_type(vector), None)

        return vector(array), codegen

    @intrinsic
    def lanes(typingctx: Any, array: Any) -> Any:
        """The lanes of a vector of ``array``'s elements, a constant of the compiled code (``array.itemsize`` is read
        from the array at run time, so offsets computed from it are not constants, and LLVM then keeps a base address
        for each offset, more than the registers hold)."""
        _check_array(array)
        count = typed(array.dtype).lanes

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return ir.Constant(ir.IntType(64), count)

        return types.int64(array), codegen

    return Width(vector_bytes, lanes, vload, vload_every, vsplat, vtranspose, vzero)


#: 256 bits (``VECTOR_BYTES``): the width of the kernels that move data rather than multiply (the tiled transposes,
#: the depthwise tile, the windows' dot products, the direct sum's phase copies), which ran no faster, or slower,
#: at 512 bits (docs/design.md, "512-bit vectors where the machine has them")
lanes, vload, vload_every, vsplat, vtranspose, vzero = width(_tuning.VECTOR_BYTES)[1:]


def widest() -> Width:
    """The machine's widest vectors (:func:`.machine.vector_bytes`: 512 bits where numba compiles for AVX-512), for
    the register blocks bound by their multiply-adds (``jit_blocked``, the direct sum's tiles)."""
    return width(machine.vector_bytes())
