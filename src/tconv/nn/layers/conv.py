"""The convolution layer: every rank, both directions, PyTorch's and Keras's argument rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import frameworks, shapes
from ..._arguments import ints_per_axis
from ...grad import conv_grad, conv_transpose_grad
from ...ops import conv, conv_transpose
from .base import KernelLayer, KernelOptions, channel_axis, positive_int

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's
    from typing_extensions import Unpack

__all__ = ["Convolution"]


_PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class Convolution(KernelLayer):
    """A convolution or transposed convolution of ``rank`` spatial axes, with either framework's rules.

    ``style='torch'`` reads ``padding``/``output_padding``/``output_size`` as
    PyTorch does (plus ``'same'`` for transposed ones, as tconv resolves it);
    ``style='keras'`` applies Keras's ``'valid'``/``'same'`` length rules. The
    weight is stored as PyTorch's ``(in, out/groups, *k)`` (transposed) or
    ``(out, in/groups, *k)``; Keras's view is ``(*k, out, in)`` / ``(*k, in, out)``.
    """

    def __init__(
        self,
        *,
        rank: int,
        transposed: bool,
        channels_last: bool = False,
        out_channels: int,
        kernel_size: Any,
        in_channels: int | None = None,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        **options: Unpack[KernelOptions],
    ) -> None:
        super().__init__()
        style = options.get("style", "torch")
        self.rank, self.transposed = rank, transposed
        self.out_channels = positive_int(out_channels, "filters" if style == "keras" else "out_channels")
        self.in_channels = None if in_channels is None else positive_int(in_channels, "in_channels")
        # Every per-axis argument is an int or one int per axis (a single-element sequence is broadcast).
        self.kernel_size = ints_per_axis(kernel_size, rank, "kernel_size", minimum=1, broadcast_one=True)
        names = ("strides", "dilation_rate") if style == "keras" else ("stride", "dilation")
        self.stride = ints_per_axis(stride, rank, names[0], minimum=1, broadcast_one=True)
        self.dilation = ints_per_axis(dilation, rank, names[1], minimum=1, broadcast_one=True)
        self.groups = positive_int(groups, "groups")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels must be divisible by groups; received {self.out_channels} and {groups}")
        if self.in_channels is not None and self.in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups; received {self.in_channels} and {groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {sorted(_PADDING_MODES)}; received {padding_mode!r}")
        if transposed and padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' for transposed convolutions; received {padding_mode!r}")
        self.padding_mode = padding_mode
        if style == "keras":
            allowed = ("valid", "same") if transposed else ("valid", "same", "causal")
            if not isinstance(padding, str) or padding.lower() not in allowed:
                raise ValueError(f"padding must be one of {allowed}; received {padding!r}")
            padding = padding.lower()
            if output_padding is not None:
                ints_per_axis(output_padding, rank, "output_padding", broadcast_one=True)
        elif isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid', 'same', an int or a tuple of ints; received {padding!r}")
        else:
            ints_per_axis(padding, rank, "padding", minimum=None if transposed else 0, broadcast_one=True)
        self.padding, self.output_padding = padding, output_padding
        if transposed and style == "torch" and not isinstance(padding, str):
            extra = ints_per_axis(output_padding, rank, "output_padding", broadcast_one=True)
            for op, s, d in zip(extra, self.stride, self.dilation):
                if op >= max(s, d):
                    raise ValueError(
                        f"output_padding must be smaller than either stride or dilation; received "
                        f"output_padding={extra} with stride={self.stride}, dilation={self.dilation}"
                    )
        self.channels_last = bool(channels_last)
        self._configure(options)
        self._cache: tuple[Any, ...] | None = None
        if self.in_channels is not None:
            self._create(self.in_channels)

    # layouts: PyTorch's (a, b, *k) <-> Keras's (*k, b, a), the same permutation both ways
    def _to_keras(self, w: np.ndarray) -> np.ndarray:
        return np.transpose(w, (*range(2, self.rank + 2), 1, 0))

    def _from_keras(self, w: np.ndarray) -> np.ndarray:
        return np.transpose(w, (self.rank + 1, self.rank, *range(self.rank)))

    def _unbatched(self, ndim: int) -> bool:
        """Whether an input of ``ndim`` axes is one unbatched sample ``(C, *spatial)``, which PyTorch's layers take."""
        return self.style == "torch" and not self.channels_last and ndim == self.rank + 1

    def build(self, input_shape: Sequence[int | None]) -> None:
        if self._unbatched(len(input_shape)):
            input_shape = (1, *input_shape)
        if len(input_shape) != self.rank + 2:
            unbatched = f" or {self.rank + 1} (unbatched)" if self.style == "torch" else ""
            raise ValueError(
                f"{type(self).__name__} expects inputs with {self.rank + 2} axes (batch, channels and {self.rank} "
                f"spatial){unbatched}; received shape {tuple(input_shape)}"
            )
        channels = input_shape[channel_axis(self.channels_last)]
        assert channels is not None
        self._create(int(channels))
        self.built = True

    def _create(self, in_channels: int) -> None:
        if in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups; received {in_channels} and {self.groups}")
        self.in_channels = in_channels
        g = self.groups
        torch_shape = (
            (in_channels, self.out_channels // g, *self.kernel_size)
            if self.transposed
            else (self.out_channels, in_channels // g, *self.kernel_size)
        )
        user_shape = (*self.kernel_size, torch_shape[1], torch_shape[0])
        fan_in = torch_shape[1] * math.prod(self.kernel_size)  # PyTorch's: weight.shape[1] * prod(k)
        self._create_weights(user_shape, self.out_channels, fan_in, self._to_keras, self._from_keras)

    def initialize(self, kernel_initializer: Any = None, bias_initializer: Any = None) -> None:
        """Redraw the weights with the given initializers (``'bilinear'`` for FCN-style upsampling)."""
        if kernel_initializer is not None:
            self.kernel_initializer = kernel_initializer
        if bias_initializer is not None:
            self.bias_initializer = bias_initializer
        if self.in_channels is not None:
            self._create(self.in_channels)

    def call_arguments(self, spatial: tuple[int, ...], output_size: Any = None) -> dict[str, Any]:
        """The layer's call arguments for inputs of ``spatial`` size, through its framework's rules."""
        arguments: dict[str, Any]
        if self.style == "keras":
            arguments = {
                "strides": self.stride,
                "padding": self.padding,
                "dilation_rate": self.dilation,
                "groups": self.groups,
            }
            if self.transposed:
                arguments["output_padding"] = self.output_padding
            return frameworks.get("keras").read(self.transposed, spatial, self.kernel_size, arguments)
        if output_size is not None:
            if not self.transposed:
                raise TypeError("output_size is only for transposed convolutions")
            output_size = tuple(output_size)[-self.rank :]
        if self.transposed and isinstance(self.padding, str):
            args = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}
            if output_size is not None:
                args["output_size"] = output_size
            return args
        arguments = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}
        if self.transposed:
            arguments.update(output_padding=self.output_padding, output_size=output_size)
        return frameworks.get("torch").read(self.transposed, spatial, self.kernel_size, arguments)

    def _explicit_padding(self, args: dict[str, Any], spatial: tuple[int, ...]) -> list[tuple[int, int]]:
        padding = args["padding"]
        if padding == "valid":
            return [(0, 0)] * self.rank
        if padding == "same":  # stride 1 (PyTorch's rule): the odd extra goes to the end, as the shape module splits
            return [
                shapes.conv_same_padding(n, k, dilation=d) for n, k, d in zip(spatial, self.kernel_size, self.dilation)
            ]
        return [(int(p), int(p)) if not isinstance(p, tuple) else (int(p[0]), int(p[1])) for p in padding]

    def forward(self, x: np.ndarray, output_size: Any = None) -> np.ndarray:
        if self._unbatched(x.ndim):  # one sample, as torch.nn takes it: computed as a batch of one
            y = self._batched_forward(x[None], output_size)
            self._cache = (*self._cache[:-1], True) if self._cache is not None else None
            return y[0]
        return self._batched_forward(x, output_size)

    def _batched_forward(self, x: np.ndarray, output_size: Any = None) -> np.ndarray:
        spatial_axes = list(range(1, self.rank + 1)) if self.channels_last else list(range(2, self.rank + 2))
        spatial = tuple(x.shape[a] for a in spatial_axes)
        args = self.call_arguments(spatial, output_size)
        index_maps = None
        if self.padding_mode != "zeros":
            pads = self._explicit_padding(args, spatial)
            index_maps = []
            for axis, size, (lo, hi) in zip(spatial_axes, spatial, pads):
                if self.padding_mode == "reflect" and max(lo, hi) >= size:
                    raise ValueError(
                        f"padding_mode='reflect' needs padding smaller than the input ({size}) on every axis"
                    )
                if self.padding_mode == "circular" and max(lo, hi) > size:
                    raise ValueError(f"padding_mode='circular' needs padding at most the input ({size}) on every axis")
                index = np.pad(np.arange(size), (lo, hi), mode=_PADDING_MODES[self.padding_mode])  # type: ignore[call-overload]
                x = np.take(x, index, axis=axis)
                index_maps.append((axis, size, index))
            args = {**args, "padding": 0}
        bias = self.bias.value if self.use_bias else None
        op = conv_transpose if self.transposed else conv
        z = op(x, self.weight.value, bias, channels_last=self.channels_last, **args)
        y = self._activate(z)
        self._cache = (x, args, index_maps, z, y, False)
        return y

    def _backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        x, args, index_maps, z, y, unbatched = self._cache
        if unbatched:
            grad = grad[None]
        grad = self._activation_grad(grad, z, y)
        gradient = conv_transpose_grad if self.transposed else conv_grad
        grad_x, grad_w, grad_b = gradient(
            grad, x, self.weight.value, channels_last=self.channels_last, input_grad=self.needs_input_grad, **args
        )
        self.weight.accumulate(grad_w)
        if self.use_bias:
            self.bias.accumulate(grad_b)
        if grad_x is None:  # the caller has no use for it (Module.backward's input_grad)
            return None
        for axis, size, index in reversed(index_maps or []):
            shape = list(grad_x.shape)
            shape[axis] = size
            folded = np.zeros(shape, dtype=grad_x.dtype)
            np.add.at(folded, (slice(None),) * axis + (index,), grad_x)
            grad_x = folded
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self) -> str:
        kind = "transposed, " if self.transposed else ""
        return (
            f"{kind}{self.in_channels}->{self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding!r}"
        )
