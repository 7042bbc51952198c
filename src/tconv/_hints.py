"""What to do about a shape mismatch: the layout the arrays look like, and the call that fixes it.

The operations take ``x`` channels first (``channels_last=True`` for channels last) and the weight in
PyTorch's layout; users bring Keras kernels, NHWC images and the other direction's weight. When a call's
channels do not match, :func:`layout_hint` tries each known reading of the arrays and, where exactly one
fits, names it and the call that fixes it. The error paths append its sentence to their message.

Examples
--------
>>> print(layout_hint(True, (1, 7, 7, 8), (8, 4, 5, 5), groups=1, channels_last=False))
... # doctest: +NORMALIZE_WHITESPACE
. x of shape (1, 7, 7, 8) looks channels-last (N, *spatial, C) with C = 8; pass channels_last=True
(it changes only x's layout, never the weight's).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["layout_hint"]

_KERAS = "tconv.compat.convert_weight(w, 'keras', 'torch')"


def _weight_readings(transposed: bool, weight: Sequence[int]) -> list[tuple[str, str, tuple[int, ...]]]:
    """``(name, fix, weight_in_torch_layout)`` for each known layout the weight may be in, the expected first."""
    rank = len(weight) - 2
    keras = (weight[-1], weight[-2], *weight[:rank])  # (*k, b, a) -> (a, b, *k), either direction
    swapped = (weight[1], weight[0], *weight[2:])
    if transposed:
        other = (
            "a convolution's weight (C_out, C_in/groups, *kernel), where conv_transpose takes (C_in, C_out/groups, "
            "*kernel)",
            "swap its first two axes (w.swapaxes(0, 1) for groups=1)",
        )
        keras_name = "a Keras/TensorFlow kernel (*kernel, C_out, C_in)"
    else:
        other = (
            "a transposed convolution's weight (C_in, C_out/groups, *kernel), where conv takes (C_out, "
            "C_in/groups, *kernel)",
            "swap its first two axes (w.swapaxes(0, 1) for groups=1)",
        )
        keras_name = "a Keras/TensorFlow kernel (*kernel, C_in, C_out)"
    return [("", "", tuple(weight)), (keras_name, _KERAS, keras), (other[0], other[1], swapped)]


def _fits(transposed: bool, channels: int, weight: tuple[int, ...], groups: int) -> bool:
    if transposed:
        return weight[0] == channels and weight[0] % groups == 0
    return weight[1] * groups == channels and weight[0] % groups == 0


def layout_hint(
    transposed: bool, x_shape: Sequence[int], weight_shape: Sequence[int], *, groups: int, channels_last: bool
) -> str:
    """A sentence (after a leading ``". "``) naming the layouts ``x`` and the weight look like and the call that
    fixes the mismatch, or ``""`` when no known reading fits or several do.

    The readings tried: ``x`` in the other channel layout (channels last or first); the weight as a
    Keras/TensorFlow kernel; the weight in the other direction's PyTorch layout.
    """
    x_shape, weight_shape = tuple(int(n) for n in x_shape), tuple(int(n) for n in weight_shape)
    rank = len(weight_shape) - 2
    if rank < 1 or len(x_shape) not in (rank + 1, rank + 2):
        return ""
    layouts = [(channels_last, x_shape[-1] if channels_last else x_shape[-rank - 1])]
    layouts.append((not channels_last, x_shape[-rank - 1] if channels_last else x_shape[-1]))
    fits = []
    for last, channels in layouts:
        for name, fix, weight in _weight_readings(transposed, weight_shape):
            if (last, name) != (channels_last, "") and _fits(transposed, channels, weight, groups):
                fits.append((last, channels, name, fix))
    if len(fits) != 1:
        return ""
    last, channels, name, fix = fits[0]
    op = "conv_transpose" if transposed else "conv"
    parts, steps = [], []
    if last != channels_last:
        form = "channels-last (N, *spatial, C)" if last else "channels-first (N, C, *spatial)"
        parts.append(f"x of shape {x_shape} looks {form} with C = {channels}")
    if name:
        parts.append(f"weight of shape {weight_shape} looks like {name}")
    flag = f", channels_last={last}" if last else ""
    if fix == _KERAS:
        steps.append(f"convert it: tconv.{op}(x, {_KERAS}{flag})")
        if last:
            steps.append(f"or call tconv.compat.keras.{op}, which takes Keras's layouts")
    else:
        if fix:
            steps.append(fix)
        if last != channels_last:
            steps.append(
                "pass channels_last=True (it changes only x's layout, never the weight's)"
                if last
                else "leave out channels_last=True"
            )
    return ". " + ", and ".join(parts) + "; " + ", ".join(steps) + "."
