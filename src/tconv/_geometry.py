"""Index arithmetic per spatial axis, shared by the algorithms, :mod:`tconv.matrix` and ``tconv explain``.

Along one axis, kernel tap ``i`` links input index ``j`` and output index ``o`` by

* convolution: ``j = o*s + i*d - lo`` (gather from a strided input window);
* transposed convolution: ``o = j*s + i*d - lo`` (scatter into a strided output window).

:func:`overlap` gives the index range of one tap along one axis; :func:`tap_windows` gives every tap's
windows over all axes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from .spec import ConvSpec

__all__ = ["overlap", "tap_windows"]


def overlap(offset: int, stride: int, n_strided: int, n_dense: int) -> tuple[int, int, int]:
    """Indices ``a`` in ``[0, n_strided)`` whose ``b = a*stride + offset`` lies in ``[0, n_dense)``.

    Returns ``(a0, a1, b0)``: the range ``a0 <= a < a1`` and the first ``b``.

    Examples
    --------
    Tap 0 of seed 004's layer (kernel 3, stride 2, padding 1 on 2 inputs, 3 outputs): input ``j`` lands at
    ``2*j - 1``, so only input 1 lands inside, at output 1.

    >>> overlap(-1, 2, 2, 3)
    (1, 2, 1)
    """
    a0 = max(0, -(offset // stride))  # ceil(-offset / stride)
    a1 = min(n_strided, (n_dense - 1 - offset) // stride + 1)
    return a0, a1, a0 * stride + offset


def tap_windows(
    spec: ConvSpec,
) -> Iterator[tuple[int, tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]]:
    """For each kernel tap that touches the output: ``(t, box, x_index, out_index)``.

    ``x_index`` and ``out_index`` are the matching windows (one strided, one dense, both of shape ``box``)
    of the spatial axes; ``t`` is the tap's position in C order. Taps whose window is empty (all their
    products would fall into the padding) are skipped.

    Examples
    --------
    >>> spec = ConvSpec.build(transposed=True, input_size=(2,), kernel_size=(3,), in_channels=1,
    ...                       out_channels=1, stride=2, padding=1)
    >>> for window in tap_windows(spec):
    ...     print(window)
    (0, (1,), (slice(1, 2, None),), (slice(1, 2, 2),))
    (1, (2,), (slice(0, 2, None),), (slice(0, 3, 2),))
    (2, (1,), (slice(0, 1, None),), (slice(1, 2, 2),))
    """
    in_size, out_size = spec.input_size, spec.output_size
    for t, tap in enumerate(itertools.product(*(range(k) for k in spec.kernel_size))):
        x_index, out_index, box = [], [], []
        for axis, i in enumerate(tap):
            s = spec.stride[axis]
            offset = i * spec.dilation[axis] - spec.padding[axis][0]
            if spec.transposed:
                a0, a1, b0 = overlap(offset, s, in_size[axis], out_size[axis])
                x_index.append(slice(a0, a1))
                out_index.append(slice(b0, b0 + (a1 - a0 - 1) * s + 1, s))
            else:
                a0, a1, b0 = overlap(offset, s, out_size[axis], in_size[axis])
                out_index.append(slice(a0, a1))
                x_index.append(slice(b0, b0 + (a1 - a0 - 1) * s + 1, s))
            box.append(a1 - a0)
            if a1 <= a0:
                break
        else:
            yield t, tuple(box), tuple(x_index), tuple(out_index)
