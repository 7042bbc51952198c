"""Translate a convolution or transposed convolution from one framework's terms into every other's.

:func:`translate` reads a layer in one framework's own arguments, resolves it into
tconv's single description (:class:`tconv.ConvSpec`, through the source framework's
:meth:`~tconv.frameworks.base.Framework.read_spec`), and writes it back out for each
registered framework (its :meth:`~tconv.frameworks.base.Framework.write`): the function
and its arguments, the weight conversion, and, where the target cannot say it, the
extra step the user must add (a crop or zero-pad of the output, a pad of the input,
a split over groups). Each :class:`~tconv.frameworks.base.FrameworkCall` can
:meth:`~tconv.frameworks.base.FrameworkCall.run` itself on any module with the
framework's function names: the real framework, or tconv's front end, which is how
the tests check that every translated form computes the same array.
``str(translation)`` is the code to paste.

Examples
--------
>>> t = translate("tensorflow", input_size=(7, 7), kernel_size=(5, 5), in_channels=128,
...               out_channels=64, strides=2, padding="SAME", output_shape=(14, 14))
>>> t.spec.padding, t.spec.output_size
(((1, 2), (1, 2)), (14, 14))
>>> print(t.layers["torch"].code)
import torch.nn.functional as F
w = weight  # (in, out/groups, *k): PyTorch's own layout
y = F.conv_transpose2d(x, w, b, stride=(2, 2), padding=(1, 1), output_padding=(0, 0), groups=1, dilation=(1, 1))
y = y[:, :, 0:-1, 0:-1]         # PyTorch pads symmetrically: crop (0, 1) more on each axis
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..frameworks import REGISTRY, FrameworkCall, get
from ..spec import ConvSpec

__all__ = ["FrameworkCall", "Translation", "translate"]


@dataclass(frozen=True)
class Translation:
    """A layer in every framework's terms: ``layers[framework]`` is a :class:`FrameworkCall`."""

    source: str
    spec: ConvSpec
    layers: dict[str, FrameworkCall]

    def __str__(self) -> str:
        spec = self.spec
        kind = "transposed convolution" if spec.transposed else "convolution"
        size = "x".join(map(str, spec.input_size))
        out = "x".join(map(str, spec.output_size))
        lines = [
            f"{kind} from {self.source}: input {size} -> output {out}, {spec.in_channels} -> "
            f"{spec.out_channels} channels, kernel {'x'.join(map(str, spec.kernel_size))}, stride {spec.stride}, "
            f"dilation {spec.dilation}, crop/padding {spec.padding}"
            + (f", output padding {spec.output_padding}" if spec.transposed else "")
            + f", groups {spec.groups}",
            "",
        ]
        for name, layer in self.layers.items():
            status = "exact" if layer.exact else "needs an extra step"
            lines.append(f"# {name} ({status})")
            lines.append(layer.code)
            lines.extend(f"# note: {note}" for note in layer.notes)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def translate(
    framework: str,
    *,
    input_size: int | Sequence[int],
    kernel_size: int | Sequence[int],
    in_channels: int = 1,
    out_channels: int = 1,
    transposed: bool = True,
    **arguments: Any,
) -> Translation:
    """Translate a layer given in ``framework``'s own arguments into every framework.

    Parameters
    ----------
    framework : str
        A registered framework: ``'torch'``, ``'tensorflow'``, ``'keras'``, ``'onnx'``, ``'jax'`` or ``'paddle'``.
    input_size, kernel_size : int or sequence of int
        Spatial sizes (an int for 1-D).
    in_channels, out_channels : int
    transposed : bool
        A transposed convolution (default) or a forward one.
    **arguments
        The layer's arguments with ``framework``'s names: e.g. PyTorch's ``stride``,
        ``padding``, ``output_padding``, ``groups``, ``dilation``, ``output_size``;
        TensorFlow's ``strides``, ``padding``, ``output_shape``, ``dilations``; Keras's
        ``strides``, ``padding``, ``output_padding``, ``dilation_rate``; ONNX's
        attributes; JAX's ``strides``/``window_strides``, ``padding``, ``rhs_dilation``,
        ``use_consistent_padding``, ``feature_group_count``; Paddle's ``stride``,
        ``padding``, ``output_padding``, ``dilation``, ``groups``, ``output_size``.

    Returns
    -------
    Translation
        ``.spec`` (the resolved layer), ``.layers[framework]`` for each framework,
        and ``str()`` the code to paste.

    Examples
    --------
    >>> t = translate("torch", input_size=3, kernel_size=3, stride=2, padding=1, output_padding=1)
    >>> t.layers["onnx"].kwargs
    {'strides': [2], 'pads': [1, 1], 'dilations': [1], 'group': 1, 'output_padding': [1]}
    >>> t.layers["keras"].exact
    False
    """
    source = get(framework)
    kernel = (kernel_size,) if isinstance(kernel_size, int) else tuple(int(k) for k in kernel_size)
    size = (input_size,) * len(kernel) if isinstance(input_size, int) else tuple(int(n) for n in input_size)
    spec = source.read_spec(transposed, size, kernel, in_channels, out_channels, arguments)
    return Translation(framework, spec, {name: target.write(spec) for name, target in REGISTRY.items()})
