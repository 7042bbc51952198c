"""JAX's ``lax.conv_general_dilated`` and ``lax.conv_transpose``, with ``jax.lax``'s meaning of each argument.

This module is long because a framework is one module: ``lax``'s dimension numbers, its two functions, its two
meanings of explicit padding, and :class:`Jax` (reading its call, writing a layer as its call,
running it for ``tconv bench``).

``conv_general_dilated`` with ``lhs_dilation > 1`` inserts ``lhs_dilation - 1`` zeros
between input elements and then correlates at the given padding: a transposed
convolution written as a direct one. tconv computes it as :func:`tconv.conv_transpose`
of the undilated input with the spatially flipped, channel-swapped kernel (never
inserting the zeros); ``lo = k_eff - 1 - pad_before`` is cropped and the rest becomes
``hi`` or output padding. Negative paddings (which ``lax`` allows) crop the input or
the output.

``conv_transpose`` (``lax``'s convenience wrapper) does **not** flip the kernel unless
``transpose_kernel=True`` (then it matches Keras's ``Conv2DTranspose`` on a Keras
kernel). Its ``padding``: ``'SAME'``/``'VALID'`` are the forward convolution's padding
(the output is ``n*s`` or ``n*s + max(k_eff - s, 0)``); explicit pairs are the padding of
the zero-inserted input (the legacy meaning), unless ``use_consistent_padding=True``
makes them the forward convolution's padding, as in PyTorch.

Examples
--------
>>> import numpy as np
>>> x = np.array([[[1.0], [2.0], [3.0]]]); k = np.array([[[1.0]], [[10.0]], [[100.0]]])
>>> conv_transpose(x, k, (2,), "SAME")[0, :, 0]
array([100.,  10., 201.,  20., 302.,  30.])
>>> conv_transpose(x, k, (2,), "SAME", transpose_kernel=True)[0, :, 0]
array([  1.,  10., 102.,  20., 203.,  30.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from array_api_compat import device

from .. import shapes
from .._arguments import as_int
from .._backend import Array, extend
from ..ops import conv as _core_conv
from ..ops import conv_transpose as _core_conv_transpose
from ..spec import ConvSpec
from . import base
from ._common import as_array, ints, namespace, refuse_integers
from ._writing import keyword_code, weight_line, with_code
from .base import Arguments, BenchmarkCase, CallShape, Framework, FrameworkCall, Options, SizeCandidate, SizeGoal

__all__ = ["FRAMEWORK", "Jax", "conv_general_dilated", "conv_transpose", "dilated_to_core", "transpose_pads"]

_TRANSPOSE_DEFAULTS = {
    2: ("NC", "IO", "NC"),
    3: ("NHC", "HIO", "NHC"),
    4: ("NHWC", "HWIO", "NHWC"),
    5: ("NHWDC", "HWDIO", "NHWDC"),
}


def _permutations(dimension_numbers: Any, rank: int) -> tuple[tuple[int, ...], ...]:
    """``(lhs_perm, rhs_perm, out_perm)`` as ``jax.lax.conv_general_permutations`` defines them."""
    if dimension_numbers is None:
        identity = tuple(range(rank))
        return identity, identity, identity
    if len(dimension_numbers) != 3:
        raise TypeError(f"dimension_numbers must have three entries; received {dimension_numbers!r}")
    if all(isinstance(spec, str) for spec in dimension_numbers):
        lhs_spec, rhs_spec, out_spec = dimension_numbers
        charpairs = (("N", "C"), ("O", "I"), ("N", "C"))
        for spec, (a, b) in zip(dimension_numbers, charpairs):
            if spec.count(a) != 1 or spec.count(b) != 1 or len(spec) != len(set(spec)) or len(spec) != rank:
                raise TypeError(
                    f"dimension_numbers {dimension_numbers!r}: each spec must name {rank} distinct axes with "
                    f"'{a}' and '{b}' exactly once"
                )
        spatial_sets = [set(spec) - set(pair) for spec, pair in zip(dimension_numbers, charpairs)]
        if not spatial_sets[0] == spatial_sets[1] == spatial_sets[2]:
            raise TypeError(f"dimension_numbers must share their spatial characters; received {dimension_numbers!r}")

        def perm(spec: str, pair: tuple[str, str]) -> tuple[int, ...]:
            spatial = [i for i, c in enumerate(spec) if c not in pair]
            if spec is not rhs_spec:
                spatial.sort(key=lambda i: rhs_spec.index(spec[i]))
            return (spec.index(pair[0]), spec.index(pair[1]), *spatial)

        return perm(lhs_spec, charpairs[0]), perm(rhs_spec, charpairs[1]), perm(out_spec, charpairs[2])
    perms = tuple(tuple(ints(p, "dimension_numbers")) for p in dimension_numbers)
    if any(sorted(p) != list(range(rank)) for p in perms):
        raise ValueError(f"dimension_numbers must be permutations of range({rank}); received {dimension_numbers!r}")
    return perms


def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return tuple(inverse)


def dilated_to_core(
    kernel_size: Sequence[int],
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    pads: Sequence[tuple[int, int]],
) -> tuple[list[tuple[int, int]], list[int], list[tuple[int, int]]]:
    """A correlation of the ``lhs_dilation``-spread input padded by ``pads``, as a core transposed convolution.

    Returns the core crop ``(lo, hi)`` and output padding per axis, and the zeros
    ``(before, after)`` that the core cannot express (a pad larger than the kernel's
    reach, or an output padding of ``max(s, d)`` or more), to be added afterwards.
    ``lo = d*(k-1) - pad_before``; ``d*(k-1) - pad_after`` is ``hi`` when non-negative
    and output padding otherwise.

    Examples
    --------
    >>> dilated_to_core((3,), (2,), (1,), [(2, 2)])
    ([(0, 0)], [0], [(0, 0)])
    >>> dilated_to_core((3,), (2,), (1,), [(1, 3)])
    ([(1, 0)], [1], [(0, 0)])
    """
    crops, output_padding, extra = [], [], []
    for k, s, d, (pa, pb) in zip(kernel_size, lhs_dilation, rhs_dilation, pads):
        reach = shapes.dilated_kernel_size(k, d) - 1
        lo, hi_total = reach - pa, reach - pb
        op = max(-hi_total, 0)
        core_op = min(op, max(s, d) - 1)
        crops.append((max(lo, 0), max(hi_total, 0)))
        output_padding.append(core_op)
        extra.append((-min(lo, 0), op - core_op))
    return crops, output_padding, extra


def transpose_pads(
    kernel_size: Sequence[int],
    strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    rhs_dilation: Sequence[int],
    use_consistent_padding: bool = False,
) -> list[tuple[int, int]]:
    """The padding ``lax.conv_transpose`` applies to the zero-inserted input, per axis.

    ``'SAME'``/``'VALID'`` (and, with ``use_consistent_padding``, explicit pairs) are
    the forward convolution's padding and are converted; otherwise explicit pairs are
    already the zero-inserted input's padding (the legacy meaning).

    Examples
    --------
    >>> transpose_pads((3,), (2,), "SAME", (1,)), transpose_pads((3,), (2,), "VALID", (1,))
    ([(2, 1)], [(2, 2)])
    """
    if not (use_consistent_padding or (isinstance(padding, str) and padding in ("SAME", "VALID"))):
        if isinstance(padding, str):
            raise ValueError(f"padding must be 'SAME', 'VALID' or (low, high) pairs; received {padding!r}")
        return [tuple(ints(p, "padding")) for p in padding]  # type: ignore[misc]
    given = [padding] * len(kernel_size) if isinstance(padding, str) else list(padding)
    pads = []
    for k, s, d, p in zip(kernel_size, strides, rhs_dilation, given):
        k_eff = shapes.dilated_kernel_size(k, d)
        if p == "SAME":
            pad_len = k_eff + s - 2
            pad_a = k_eff - 1 if s > k_eff - 1 else -(-pad_len // 2)
        elif p == "VALID":
            pad_len = k_eff + s - 2 + max(k_eff - s, 0)
            pad_a = k_eff - 1
        else:
            lo, hi = ints(p, "padding")
            pad_len, pad_a = (k_eff - lo - 1) + (k_eff - hi - 1), k_eff - lo - 1
        pads.append((pad_a, pad_len - pad_a))
    return pads


def _general(
    xp: Any,
    x: Array,
    w_oi: Array,
    window_strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    groups: int,
) -> Array:
    """``conv_general_dilated`` on ``x (N, C, *sp)`` and ``w (O, I/G, *k)``, explicit (possibly negative) pads."""
    ndim = w_oi.ndim - 2
    if all(s == 1 for s in lhs_dilation):
        for axis, (lo, hi) in enumerate(pads):  # negative padding crops the input
            if lo < 0 or hi < 0:
                x = extend(xp, x, axis + 2, min(lo, 0), min(hi, 0))
        return _core_conv(
            x,
            w_oi,
            stride=tuple(window_strides),
            padding=[(max(lo, 0), max(hi, 0)) for lo, hi in pads],
            dilation=tuple(rhs_dilation),
            groups=groups,
        )
    # The zero-inserted correlation is the transposed convolution with the flipped,
    # per-group channel-swapped kernel: (O, I/G, *k) -> (I, O/G, *k).
    c_out, c_in_g = int(w_oi.shape[0]), int(w_oi.shape[1])
    kernel = tuple(int(k) for k in w_oi.shape[2:])
    w = xp.reshape(w_oi, (groups, c_out // groups, c_in_g, *kernel))
    w = xp.permute_dims(w, (0, 2, 1, *range(3, ndim + 3)))
    w = xp.reshape(w, (groups * c_in_g, c_out // groups, *kernel))
    w = xp.flip(w, axis=tuple(range(2, ndim + 2)))
    crops, output_padding, extra = dilated_to_core(kernel, lhs_dilation, rhs_dilation, pads)
    out = _core_conv_transpose(
        x,
        w,
        stride=tuple(lhs_dilation),
        padding=crops,
        output_padding=output_padding,
        dilation=tuple(rhs_dilation),
        groups=groups,
    )
    for axis, (before, after) in enumerate(extra):
        if before or after:
            out = extend(xp, out, axis + 2, before, after)
    if any(s != 1 for s in window_strides):
        subsample = [slice(None, None, s) for s in window_strides]
        out = out[tuple([slice(None), slice(None), *subsample])]
    return out


def conv_general_dilated(
    lhs: Array,
    rhs: Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
) -> Array:
    """``jax.lax.conv_general_dilated`` (default layout ``NC...``/``OI...``, channels first)."""
    refuse_integers("jax.lax.conv_general_dilated computes integer convolutions on the CPU", lhs, rhs)
    xp = namespace(lhs)
    lhs, rhs = as_array(xp, lhs), as_array(xp, rhs)
    rank = lhs.ndim
    if rhs.ndim != rank or rank < 2:
        raise ValueError(
            f"lhs and rhs must have the same rank (at least 2); received {tuple(lhs.shape)} and {tuple(rhs.shape)}"
        )
    feature_group_count = as_int(feature_group_count, "feature_group_count", "a positive int")
    batch_group_count = as_int(batch_group_count, "batch_group_count", "a positive int")
    if feature_group_count < 1 or batch_group_count < 1:
        raise ValueError(
            f"feature_group_count and batch_group_count must be positive; received {feature_group_count} and "
            f"{batch_group_count}"
        )
    if feature_group_count > 1 and batch_group_count > 1:
        raise ValueError(
            "At most one of feature_group_count and batch_group_count may be > 1, got "
            f"feature_group_count={feature_group_count} and batch_group_count={batch_group_count} (as in jax.lax)"
        )
    ndim = rank - 2
    lhs_perm, rhs_perm, out_perm = _permutations(dimension_numbers, rank)
    x = xp.permute_dims(lhs, lhs_perm)
    w = xp.permute_dims(rhs, rhs_perm)
    strides = ints(window_strides, "window_strides")
    lhs_d = (1,) * ndim if lhs_dilation is None else ints(lhs_dilation, "lhs_dilation")
    rhs_d = (1,) * ndim if rhs_dilation is None else ints(rhs_dilation, "rhs_dilation")
    for name, value in (("window_strides", strides), ("lhs_dilation", lhs_d), ("rhs_dilation", rhs_d)):
        if len(value) != ndim:
            raise ValueError(f"{name} must have {ndim} entries; received {list(value)}")
    if isinstance(padding, str):
        if any(s != 1 for s in lhs_d):
            raise ValueError(
                "String padding is not implemented for transposed convolution using conv_general_dilated "
                "(as in jax.lax); give explicit padding or use conv_transpose"
            )
        mode = padding.upper()
        if mode not in ("SAME", "SAME_LOWER", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'SAME_LOWER', 'VALID' or pairs; received {padding!r}")
        spatial = [int(n) for n in x.shape[2:]]
        kernel = [int(k) for k in w.shape[2:]]
        if mode == "VALID":
            pads = [(0, 0)] * ndim
        else:
            pads = [
                shapes.conv_same_padding(n, k, stride=s, dilation=d, lower=mode == "SAME_LOWER")
                for n, k, s, d in zip(spatial, kernel, strides, rhs_d)
            ]
    else:
        pads = [tuple(ints(p, "padding")) for p in padding]  # type: ignore[misc]
        if len(pads) != ndim or any(len(p) != 2 for p in pads):
            raise ValueError(f"padding must be {ndim} (low, high) pairs; received {padding!r}")
    batch, c_out = int(x.shape[0]), int(w.shape[0])
    if batch % batch_group_count or c_out % batch_group_count:
        raise ValueError(
            f"batch_group_count={batch_group_count} must divide the lhs batch ({batch}) and the rhs output "
            f"features ({c_out}) (as in jax.lax)"
        )
    if int(x.shape[1]) != int(w.shape[1]) * feature_group_count:
        raise ValueError(
            f"conv_general_dilated lhs feature dimension size ({int(x.shape[1])}) must equal the rhs input feature "
            f"dimension size ({int(w.shape[1])}) times feature_group_count ({feature_group_count}) (as in jax.lax)"
        )
    sizes = _output_sizes(x.shape[2:], w.shape[2:], strides, pads, lhs_d, rhs_d)
    if 0 in tuple(int(n) for n in x.shape) or 0 in sizes:
        # No input element reaches an output: zeros, of JAX's (possibly empty) output shape.
        empty = xp.zeros((batch // batch_group_count, c_out, *sizes), dtype=x.dtype, device=device(x))
        return xp.permute_dims(empty, _inverse(out_perm))
    if ndim == 0:  # no spatial axis: a (grouped) matrix product, as a 1-D convolution with one tap
        x, w = xp.reshape(x, (*x.shape, 1)), xp.reshape(w, (*w.shape, 1))
        strides, pads, lhs_d, rhs_d = (1,), [(0, 0)], (1,), (1,)
    # batch_group_count: the lhs batch and the output features split into as many groups (the group index the
    # major part of each), the g-th output features computed from the g-th part of the batch.
    part, rows = batch // batch_group_count, c_out // batch_group_count
    outs = [
        _general(
            xp,
            x[g * part : (g + 1) * part],
            w[g * rows : (g + 1) * rows],
            strides,
            pads,
            lhs_d,
            rhs_d,
            feature_group_count,
        )
        for g in range(batch_group_count)
    ]
    out = outs[0] if batch_group_count == 1 else xp.concat(outs, axis=1)
    if ndim == 0:
        out = xp.reshape(out, tuple(int(n) for n in out.shape[:2]))
    return xp.permute_dims(out, _inverse(out_perm))


def _output_sizes(
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
) -> tuple[int, ...]:
    """JAX's output sizes: the ``lhs_dilation``-spread input (0 when empty), padded (negative pads crop), the
    windows of the dilated kernel that fit, and 0 (an empty output) where none does."""
    sizes = []
    for n, k, s, (lo, hi), ld, rd in zip(spatial, kernel, strides, pads, lhs_dilation, rhs_dilation):
        n, k = int(n), int(k)
        padded = (0 if n == 0 else (n - 1) * ld + 1) + lo + hi
        k_eff = shapes.dilated_kernel_size(k, rd) if k > 0 else 0
        sizes.append(0 if padded < k_eff else (padded - k_eff) // s + 1)
    return tuple(sizes)


def conv_transpose(
    lhs: Array,
    rhs: Array,
    strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
    use_consistent_padding: bool = False,
) -> Array:
    """``jax.lax.conv_transpose`` (default layout ``NHWC``/``HWIO``)."""
    xp = namespace(lhs)
    lhs, rhs = as_array(xp, lhs), as_array(xp, rhs)
    rank = lhs.ndim
    if rhs.ndim != rank or rank < 2:
        raise ValueError(f"lhs and rhs must have the same rank; received {tuple(lhs.shape)} and {tuple(rhs.shape)}")
    if dimension_numbers is None:
        if rank not in _TRANSPOSE_DEFAULTS:
            raise ValueError("No 4+ dimensional dimension_number defaults.")
        dimension_numbers = _TRANSPOSE_DEFAULTS[rank]
    _, rhs_perm, _ = _permutations(dimension_numbers, rank)
    ndim = rank - 2
    kernel = [int(rhs.shape[i]) for i in rhs_perm[2:]]
    stride = ints(strides, "strides")
    dilation = (1,) * ndim if rhs_dilation is None else ints(rhs_dilation, "rhs_dilation")
    pads = transpose_pads(kernel, stride, padding, dilation, use_consistent_padding)
    if transpose_kernel:
        rhs = xp.flip(rhs, axis=tuple(rhs_perm[2:]))
        order = list(range(rank))
        order[rhs_perm[0]], order[rhs_perm[1]] = rhs_perm[1], rhs_perm[0]
        rhs = xp.permute_dims(rhs, tuple(order))
    return conv_general_dilated(
        lhs,
        rhs,
        (1,) * ndim,
        pads,
        lhs_dilation=stride,
        rhs_dilation=dilation,
        dimension_numbers=dimension_numbers,
    )


def _inserted_padding(spec: ConvSpec) -> list[tuple[int, int]]:
    """The padding of the zero-inserted input that gives a transposed ``spec``: ``d*(k-1) - crop``
    (the end's output padding added)."""
    pads = []
    for k, dil, (lo, hi), op in zip(spec.kernel_size, spec.dilation, spec.padding, spec.output_padding):
        reach = shapes.dilated_kernel_size(k, dil) - 1
        pads.append((reach - lo, reach - hi + op))
    return pads


class Jax(Framework):
    """JAX's rules: ``lax.conv_general_dilated`` and ``lax.conv_transpose`` (its legacy explicit padding)."""

    name = "jax"
    display_name = "JAX"
    transposed_layout = "(*k, in, out), spatially flipped (lax.conv_transpose with transpose_kernel=False)"
    forward_layout = "(*k, in/groups, out) (HWIO)"
    kernel_first = True
    flips_transposed_weight = True
    transposed_groups = False
    runtime = "jax"

    def parse(self, given: Arguments, call: CallShape) -> dict[str, Any]:
        """``lax.conv_transpose``'s ``strides``, ``padding``, ``rhs_dilation``, ``use_consistent_padding``,
        ``transpose_kernel``, or ``lax.conv_general_dilated``'s ``window_strides``, ``padding``,
        ``rhs_dilation``, ``feature_group_count``; a transposed call whose output JAX pads with zeros is refused.

        Examples
        --------
        >>> FRAMEWORK.read(True, (3,), (3,), {"strides": (2,), "padding": "SAME"})["padding"]
        ((0, 1),)
        """
        transposed, _, kernel_size, _ = call
        ndim = len(kernel_size)
        dilation = tuple(given.take("rhs_dilation", default=None) or (1,) * ndim)
        if transposed:
            stride = tuple(int(v) for v in given.take("strides"))
            pads = transpose_pads(
                kernel_size,
                stride,
                given.take("padding"),
                dilation,
                given.take("use_consistent_padding", default=False),
            )
            given.take("transpose_kernel")
            crops, output_padding, extra = dilated_to_core(kernel_size, stride, dilation, pads)
            if any(b or e for b, e in extra):
                raise ValueError(f"this lax.conv_transpose pads its output with zeros ({extra}); not translatable")
            core: dict[str, Any] = {
                "stride": stride,
                "padding": tuple(crops),
                "output_padding": tuple(output_padding),
                "dilation": dilation,
                "groups": 1,
            }
        else:
            padding = given.take("padding")
            if isinstance(padding, str):
                padding = {"SAME": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}[padding.upper()]
            stride = tuple(int(v) for v in given.take("window_strides"))
            core = {"stride": stride, "padding": padding, "dilation": dilation}
            core["groups"] = given.take("feature_group_count", default=1)
        return core

    def write(self, spec: ConvSpec) -> FrameworkCall:
        d = spec.ndim
        kwargs: dict[str, Any]
        if spec.transposed and spec.groups == 1:
            kwargs = {
                "strides": spec.stride,
                "padding": _inserted_padding(spec),
                "rhs_dilation": spec.dilation,
                "transpose_kernel": True,
            }
            call = FrameworkCall(
                self.name,
                "jax.lax",
                "conv_transpose",
                kwargs,
                True,
                True,
                "keras",
                None,
                spec.output_size,
                post=((0, 0),) * d,
                notes=(
                    "explicit pairs here are lax's legacy meaning: the padding of the zero-inserted "
                    "input, d*(k-1) - crop",
                ),
            )
            lines = ["from jax import lax", weight_line("keras", True) + "  (transpose_kernel=True)"]
            lines.append(f"y = lax.conv_transpose(x, w, {keyword_code(kwargs)}) + b")
            return with_code(call, lines)
        notes: tuple[str, ...] = ()
        if spec.transposed:
            kwargs = {
                "window_strides": (1,) * d,
                "padding": _inserted_padding(spec),
                "lhs_dilation": spec.stride,
                "rhs_dilation": spec.dilation,
                "feature_group_count": spec.groups,
            }
            layout, notes = (
                "oihw-flipped",
                (
                    "lax.conv_transpose has no groups: conv_general_dilated with lhs_dilation=stride "
                    "and the flipped, per-group channel-swapped kernel",
                ),
            )
            weight = "w = flip(weight per group (in, out/g, *k) -> (out, in/g, *k), spatial axes)  # OIHW"
        else:
            kwargs = {
                "window_strides": spec.stride,
                "padding": list(spec.padding),
                "rhs_dilation": spec.dilation,
                "feature_group_count": spec.groups,
            }
            layout, weight = "torch", "w = weight  # (out, in/groups, *k): OIHW"
        call = FrameworkCall(
            self.name,
            "jax.lax",
            "conv_general_dilated",
            kwargs,
            False,
            spec.transposed,
            layout,
            None,
            spec.output_size,
            post=((0, 0),) * d,
            notes=notes,
        )
        lines = [
            "from jax import lax",
            weight,
            f"y = lax.conv_general_dilated(x, w, {keyword_code(kwargs)}) + b[:, None, ...]  # NCHW",
        ]
        return with_code(call, lines)

    def options_as_arguments(self, options: Options) -> dict[str, Any]:
        mode, pairs = options.mode, list(options.pairs or ())
        arguments: dict[str, Any]
        if options.transposed:
            refused = {
                "output_size": options.output_size,
                "output_padding": options.output_padding if any(options.output_padding or ()) else None,
                "groups": options.groups if options.groups > 1 else None,
            }
            for name, value in refused.items():
                if value is not None:
                    raise ValueError(
                        f"lax.conv_transpose has no {name} argument; received {name}={value}: "
                        + (
                            "describe the layer with --framework torch; translate writes JAX's form"
                            if name == "groups"
                            else "give the crop as padding pairs (--padding lo:hi), or ask --want for JAX's paddings"
                        )
                    )
            arguments = dict(strides=options.stride, rhs_dilation=options.dilation)
            if mode:
                arguments["padding"] = mode.upper()
            else:
                arguments.update(padding=pairs, use_consistent_padding=True)
            return arguments
        return dict(
            window_strides=options.stride,
            rhs_dilation=options.dilation,
            feature_group_count=options.groups,
            padding=mode.upper() if mode else pairs,
        )

    def default_padding(self, transposed: bool) -> Any:
        return None  # lax.conv_transpose and conv_general_dilated require padding

    def size_candidates(self, goal: SizeGoal) -> list[SizeCandidate]:
        """``lax.conv_transpose``'s ``'SAME'`` and ``'VALID'``, or explicit pairs in its legacy meaning
        (the zero-inserted input's padding, ``d*(k-1) - crop``, the output padding added at the end)."""
        fixed = {"strides": (goal.stride,), "rhs_dilation": (goal.dilation,)}
        candidates = [SizeCandidate(f"padding={mode!r}", {**fixed, "padding": mode}) for mode in ("SAME", "VALID")]
        reach = shapes.dilated_kernel_size(goal.kernel_size, goal.dilation) - 1
        for lo, hi, op in goal.crops:
            pair = (reach - lo, reach - hi + op)
            text = f"padding=[{pair}] (the zero-inserted input's padding: d*(k-1) - crop)"
            candidates.append(SizeCandidate(text, {**fixed, "padding": [pair]}, explicit=True))
        return candidates

    def benchmark(self, case: BenchmarkCase) -> Callable[[], Any] | None:
        spec, x, w = case.spec, case.x, case.w
        if case.grad:
            return None
        import jax

        if not spec.transposed:  # the correlation itself, OIHW as tconv's forward weight
            xj, wj = jax.numpy.asarray(x), jax.numpy.asarray(w)
            convolve = jax.jit(
                lambda a, k: jax.lax.conv_general_dilated(
                    a,
                    k,
                    spec.stride,
                    list(spec.padding),
                    rhs_dilation=spec.dilation,
                    feature_group_count=spec.groups,
                )
            )
            return lambda: convolve(xj, wj).block_until_ready()
        # The zero-inserted correlation with the flipped, per-group channel-swapped kernel (OIHW).
        xj, vj = jax.numpy.asarray(x), jax.numpy.asarray(base.flipped_forward_weight(w, spec.groups))
        pads = _inserted_padding(spec)
        fn = jax.jit(
            lambda a, k: jax.lax.conv_general_dilated(
                a,
                k,
                (1,) * spec.ndim,
                pads,
                lhs_dilation=spec.stride,
                rhs_dilation=spec.dilation,
                feature_group_count=spec.groups,
            )
        )
        return lambda: fn(xj, vj).block_until_ready()


FRAMEWORK = Jax()
