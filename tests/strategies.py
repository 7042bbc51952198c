"""Convolution configurations as named records, shared by the oracle, gradient, engine and framework tests.

A ``Case`` is one call: its direction, per spatial axis an ``Axis`` (input length, kernel length, stride,
dilation, the padding pair, possibly beyond the kernel, and the output padding, 0 for a convolution), the
group and channel counts and the layout the call is made in. Its methods write it once as tconv's call
options (``options``), as the oracle's arguments (``oracle_arguments``, ``oracle``), and as arrays
(``arrays``). Output sizes are computed here, from the definitions, never by tconv.

``configs(transposed=...)`` draws cases for hypothesis; ``random_case(rng, ...)`` draws them from a NumPy
generator with symmetric padding (the form PyTorch accepts).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st

from oracle import naive_conv, naive_conv_transpose


class Axis(NamedTuple):
    """One spatial axis of a case (a tuple, so ``n, k, s, d, lo, hi, op = axis`` also reads it)."""

    size: int
    kernel: int
    stride: int
    dilation: int
    lo: int
    hi: int
    output_padding: int = 0

    @property
    def kernel_extent(self) -> int:
        """The dilated kernel's length, ``(k - 1) * d + 1``."""
        return (self.kernel - 1) * self.dilation + 1

    def output_size(self, transposed: bool) -> int | None:
        """The output length from the definitions, or None where the call has no output."""
        if transposed:
            size = (self.size - 1) * self.stride + self.kernel_extent - self.lo - self.hi + self.output_padding
        elif self.size + self.lo + self.hi < self.kernel_extent:
            return None
        else:
            size = (self.size + self.lo + self.hi - self.kernel_extent) // self.stride + 1
        return size if size >= 1 else None


@dataclasses.dataclass(frozen=True)
class Case:
    """One convolution call: direction, axes, channels and layout.

    ``cin_g`` and ``cout_g`` are the input and output channels per group; ``padding_form`` is ``"pairs"``
    (always ``(lo, hi)`` pairs) or ``"int_or_tuple"`` (an int or a tuple where every pair is symmetric).
    """

    transposed: bool
    axes: tuple[Axis, ...]
    groups: int = 1
    cin_g: int = 1
    cout_g: int = 1
    batch: int = 2
    batched: bool = True
    channels_last: bool = False
    bias: bool = True
    padding_form: str = "pairs"
    seed: int = 0

    def replace(self, **changes: Any) -> Case:
        """This case with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def d(self) -> int:
        """The number of spatial axes."""
        return len(self.axes)

    @property
    def input_size(self) -> list[int]:
        return [axis.size for axis in self.axes]

    @property
    def kernel_size(self) -> list[int]:
        return [axis.kernel for axis in self.axes]

    @property
    def stride(self) -> list[int]:
        return [axis.stride for axis in self.axes]

    @property
    def dilation(self) -> list[int]:
        return [axis.dilation for axis in self.axes]

    @property
    def padding(self) -> list[tuple[int, int]]:
        return [(axis.lo, axis.hi) for axis in self.axes]

    @property
    def output_padding(self) -> list[int]:
        return [axis.output_padding for axis in self.axes]

    @property
    def in_channels(self) -> int:
        return self.groups * self.cin_g

    @property
    def out_channels(self) -> int:
        return self.groups * self.cout_g

    def output_size(self) -> list[int] | None:
        """The output's spatial sizes from the definitions, or None where some axis has no output."""
        sizes = [axis.output_size(self.transposed) for axis in self.axes]
        return None if None in sizes else sizes  # type: ignore[return-value]

    def padding_argument(self) -> Any:
        """``padding`` in the case's form: pairs, or an int or tuple where every pair is symmetric."""
        pairs = self.padding
        if self.padding_form == "int_or_tuple" and all(lo == hi for lo, hi in pairs):
            values = [lo for lo, _ in pairs]
            return values[0] if len(set(values)) == 1 else tuple(values)
        return pairs

    def options(self) -> dict[str, Any]:
        """tconv's keyword arguments for this call (padding as pairs, no layout)."""
        options: dict[str, Any] = dict(
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups
        )
        if self.transposed:
            options["output_padding"] = self.output_padding
        return options

    def oracle_arguments(self) -> dict[str, Any]:
        """The oracle's keyword arguments for this call."""
        arguments: dict[str, Any] = dict(
            stride=self.stride, pads=self.padding, dilation=self.dilation, groups=self.groups
        )
        if self.transposed:
            arguments["output_padding"] = self.output_padding
        return arguments

    def oracle(self, x, w, b=None):
        """The naive oracle's result for this call on ``x`` (N, C, *sp) and ``w`` in tconv's layout."""
        function = naive_conv_transpose if self.transposed else naive_conv
        return function(x, w, b, **self.oracle_arguments())

    def weight_shape(self) -> tuple[int, ...]:
        """``(C_in, C_out/G, *k)`` for a transposed convolution, ``(C_out, C_in/G, *k)`` for a convolution."""
        if self.transposed:
            return (self.in_channels, self.cout_g, *self.kernel_size)
        return (self.out_channels, self.cin_g, *self.kernel_size)

    def arrays(self):
        """``x`` (batch, C_in, *sp), ``w`` and ``b`` (None without bias), from the case's seed."""
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.batch, self.in_channels, *self.input_size))
        w = rng.standard_normal(self.weight_shape())
        b = rng.standard_normal(self.out_channels) if self.bias else None
        return x, w, b


@st.composite
def configs(draw, transposed):
    """A random case: up to 3 axes (smaller on 3), paddings up to beyond the kernel, any layout."""
    d = draw(st.integers(1, 3))
    small = d == 3
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin_g = draw(st.integers(1, 2 if small else 3))
    cout_g = draw(st.integers(1, 2 if small else 3))
    axes = []
    for _ in range(d):
        k = draw(st.integers(1, 3 if small else 4))
        s = draw(st.integers(1, 3))
        dil = draw(st.integers(1, 2))
        n = draw(st.integers(1, 4 if small else 6))
        k_eff = (k - 1) * dil + 1
        lo = draw(st.integers(0, k_eff + 1))  # up to beyond the kernel
        hi = draw(st.integers(0, k_eff + 1))
        op = draw(st.integers(0, max(s, dil) - 1)) if transposed else 0
        axes.append(Axis(n, k, s, dil, lo, hi, op))
    batch = draw(st.integers(1, 2))
    return Case(
        transposed=transposed,
        axes=tuple(axes),
        groups=groups,
        cin_g=cin_g,
        cout_g=cout_g,
        batch=batch,
        batched=draw(st.booleans()),
        channels_last=draw(st.booleans()),
        bias=draw(st.booleans()),
        padding_form=draw(st.sampled_from(["pairs", "int_or_tuple"])),
        seed=draw(st.integers(0, 2**16)),
    )


def random_case(rng, d, transposed, *, groups, sizes, kernels, strides, dilations, channels=(1, 4)):
    """A case with an output, drawn from ``rng`` with symmetric padding up to the dilated kernel.

    ``sizes``, ``kernels``, ``strides`` and ``dilations`` are the ``[low, high)`` ranges of each axis' values,
    ``groups`` the group counts to choose from and ``channels`` the range of channels per group.
    """
    while True:
        group_count = int(rng.choice(groups))
        cin_g, cout_g = (int(v) for v in rng.integers(*channels, size=2))
        n = rng.integers(*sizes, size=d).tolist()
        k = rng.integers(*kernels, size=d).tolist()
        s = rng.integers(*strides, size=d).tolist()
        dil = rng.integers(*dilations, size=d).tolist()
        k_eff = [(a - 1) * b + 1 for a, b in zip(k, dil)]
        p = [int(rng.integers(0, e + 1)) for e in k_eff]
        op = [int(rng.integers(0, max(a, b))) for a, b in zip(s, dil)] if transposed else [0] * d
        axes = tuple(Axis(*values[:4], values[4], values[4], values[5]) for values in zip(n, k, s, dil, p, op))
        case = Case(transposed, axes, groups=group_count, cin_g=cin_g, cout_g=cout_g)
        if case.output_size() is not None:
            return case
