"""``tconv tour``: every worked example of the five tutorials tconv started from, computed by tconv and checked
against the numbers they print (their titles and subjects: docs/tour.md).

The expected numbers below are the seeds' own, typed in from ``../shared/seeds/``;
everything compared with them is computed by tconv's operations and shape functions.
:func:`run_tour` returns one :class:`Check` per example and, given a directory, writes
the figures of the most instructive ones there.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import shapes
from ..frameworks import keras as ckeras
from ..frameworks import tensorflow as ctf
from ..matrix import conv_matrix
from ..ops import conv, conv_transpose

__all__ = ["Check", "figure_count", "run_checks", "run_tour", "write_figures"]


# Where each check comes from: the five tutorials and Q&A threads (docs/tour.md gives their full titles).
KERAS_TUTORIAL = "Keras Conv2DTranspose tutorial"
TORCH_TUTORIAL = "PyTorch ConvTranspose2d tutorial"
PADDLE_COURSE = "Paddle course, 1x1 and transposed conv"
CONV_INTRO = "transposed-conv layer intro"
TF_QA = "tf.nn.conv2d_transpose Q&A"


@dataclass(frozen=True)
class Check:
    """One worked example: where it comes from, what it claims, whether tconv reproduces it."""

    source: str
    name: str
    passed: bool
    detail: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", bool(self.passed))  # NumPy comparisons give numpy.bool_

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.source}  {self.name}: {self.detail}"


SEED004_X = np.array([[-67.0, -77.0], [-117.0, -127.0]])
SEED004_KERNEL = np.array([[-1.0, 2, -3], [4, -5, 6], [-7, 8, -9]])
SEED004_OUTPUT = np.array(
    [
        [67, -134, 278, -154, 231],
        [-268, 335, -710, 385, -462],
        [586, -770, 1620, -870, 1074],
        [-468, 585, -1210, 635, -762],
        [819, -936, 1942, -1016, 1143],
    ],
    dtype=float,
)


def _seed004() -> Check:
    x = SEED004_X.reshape(1, 2, 2, 1).astype(np.float32)
    f = SEED004_KERNEL.reshape(3, 3, 1, 1).astype(np.float32)
    out = np.asarray(ctf.conv2d_transpose(x, f, (1, 5, 5, 1), [1, 2, 2, 1], "VALID"))[0, :, :, 0]
    ok = bool(np.array_equal(out, SEED004_OUTPUT)) and out[0, 0] == 67
    return Check(
        TF_QA,
        "tf.nn.conv2d_transpose, output (1, 5, 5, 1), VALID, stride 2",
        ok,
        f"the 25 values match the seed's; the first is {out[0, 0]:g} = -67 * -1 (the kernel's "
        f"top-left times the top-left input, stamped 2 apart), not -67 * -9 = 603",
    )


def _seed001_flipped() -> Check:
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 32, 32))
    w = rng.standard_normal((1, 1, 3, 3))
    transposed = conv_transpose(x, np.ascontiguousarray(w[..., ::-1, ::-1]), padding=2)
    direct = conv(x, w)
    ok = transposed.shape == direct.shape == (1, 1, 30, 30) and bool(np.allclose(transposed, direct))
    return Check(
        TORCH_TUTORIAL,
        "ConvTranspose2d(k=3, padding=2) on 32x32",
        ok,
        f"{transposed.shape[-2]}x{transposed.shape[-1]}, equal to Conv2d(k=3, padding=0) with the flipped "
        f"kernel (p' = k - 1 - p = 0)",
    )


def _seed001_stride3() -> Check:
    out = conv_transpose(np.ones((1, 1, 32, 32)), np.ones((1, 1, 3, 3)), stride=3, padding=2)
    spread = shapes.equivalent_conv(32, 3, stride=3, padding=2).dilated_input_size + 2 * 0
    ok = out.shape[-2:] == (92, 92) and spread == 94
    return Check(
        TORCH_TUTORIAL,
        "ConvTranspose2d(k=3, padding=2, stride=3) on 32x32",
        ok,
        f"{out.shape[-2]}x{out.shape[-1]}: two zeros between pixels make 32 + 31*2 = {spread}, then 94 - 3 + 1 = 92",
    )


def _seed001_round_trip() -> Check:
    down = conv(np.random.default_rng(1).random((1, 1, 32, 32)), np.ones((1, 1, 18, 18)), padding=3)
    up = conv_transpose(down, np.ones((1, 1, 18, 18)), padding=3)
    ok = down.shape[-2:] == (21, 21) and up.shape[-2:] == (32, 32)
    return Check(
        TORCH_TUTORIAL,
        "Conv2d(k=18, padding=3) then ConvTranspose2d with the same arguments",
        ok,
        f"32x32 -> {down.shape[-2]}x{down.shape[-1]} -> {up.shape[-2]}x{up.shape[-1]}",
    )


def _seed001_output_padding() -> Check:
    k = np.ones((1, 1, 3, 3))
    seven = conv(np.ones((1, 1, 7, 7)), k, stride=2).shape[-1]
    eight = conv(np.ones((1, 1, 8, 8)), k, stride=2).shape[-1]
    back = conv_transpose(np.ones((1, 1, 3, 3)), k, stride=2).shape[-1]
    back8 = conv_transpose(np.ones((1, 1, 3, 3)), k, stride=2, output_padding=1).shape[-1]
    sizes = list(shapes.conv_input_sizes(3, 3, stride=2))
    ok = (seven, eight, back, back8) == (3, 3, 7, 8) and sizes == [7, 8]
    return Check(
        TORCH_TUTORIAL,
        "stride 2, kernel 3: 7x7 and 8x8 both convolve to 3x3",
        ok,
        f"conv gives {seven} and {eight}; the transposed convolution returns {back}, or {back8} with "
        f"output_padding=1 (input sizes sharing output 3: {sizes})",
    )


def _seed001_crop() -> Check:
    out = conv_transpose(np.ones((1, 1, 3, 3)), np.full((1, 1, 1, 1), 0.77), padding=1)
    ok = out.shape == (1, 1, 1, 1) and bool(np.isclose(out[0, 0, 0, 0], 0.77))
    return Check(
        TORCH_TUTORIAL,
        "ConvTranspose2d(k=1, padding=1) on a 3x3 of ones",
        ok,
        f"{out.shape[-2]}x{out.shape[-1]} holding {out[0, 0, 0, 0]:.2f}: p' = k - 1 - p = -1 crops the input",
    )


def _seed001_full_padding() -> Check:
    out = conv(np.random.default_rng(2).random((1, 1, 2, 2)) + 0.1, np.ones((1, 1, 3, 3)), padding=3)[0, 0]
    border = np.ones(out.shape, bool)
    border[1:-1, 1:-1] = False
    ok = out.shape == (6, 6) and not out[border].any() and bool(out[~border].all())
    return Check(
        TORCH_TUTORIAL,
        "Conv2d(k=3, padding=3) on 2x2 (beyond full padding)",
        ok,
        f"{out.shape[0]}x{out.shape[1]} with a border of zeros: no input reaches it",
    )


def _seed002_one_by_one() -> Check:
    out = conv(np.random.default_rng(3).random((3, 3, 3)), np.ones((4, 3, 1, 1)))
    ok = tuple(out.shape) == (4, 3, 3)
    return Check(
        PADDLE_COURSE,
        "1x1 convolution, 3x3 input with 3 channels, 4 kernels",
        ok,
        f"output {out.shape[1]}x{out.shape[2]}x{out.shape[0]}: the spatial size stays, the channels mix",
    )


def _weights(layers: list[tuple[int, int, int]], size: int = 8) -> int:
    """Run each (c_in, c_out, k) 'same' convolution through tconv and count its weights."""
    total = 0
    for c_in, c_out, k in layers:
        w = np.zeros((c_out, c_in, k, k), np.float32)
        out = conv(np.zeros((1, c_in, size, size), np.float32), w, padding="same")
        assert out.shape == (1, c_out, size, size)
        total += w.size
    return total


def _seed002_inception() -> Check:
    plain = _weights([(192, 64, 1), (192, 128, 3), (192, 32, 5)])
    reduced = _weights([(192, 64, 1), (192, 96, 1), (192, 16, 1), (96, 128, 3), (16, 32, 5), (192, 32, 1)])
    ok = (plain, reduced) == (387072, 163328)
    return Check(
        PADDLE_COURSE, "Inception block weights without and with 1x1 reductions", ok, f"{plain:,} vs {reduced:,}"
    )


def _seed002_bottleneck() -> Check:
    plain = _weights([(256, 256, 3), (256, 256, 3)])
    bottleneck = _weights([(256, 64, 1), (64, 64, 3), (64, 256, 1)])
    ok = (plain, bottleneck) == (1179648, 69632)
    return Check(
        PADDLE_COURSE, "ResNet block weights, two 3x3 vs the 1x1-3x3-1x1 bottleneck", ok, f"{plain:,} vs {bottleneck:,}"
    )


def _seed002_matrix() -> Check:
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    try:
        C = conv_matrix((1, 4, 4), w).toarray()
    except ImportError:  # without SciPy: C's columns are the convolution of the unit inputs
        C = np.stack([conv(np.eye(16)[j].reshape(1, 4, 4), w).ravel() for j in range(16)], axis=1)
    expected = np.zeros((4, 16))
    for row, start in enumerate([0, 1, 4, 5]):  # the seed's rows: the kernel laid along the flattened input
        for r in range(3):
            expected[row, start + 4 * r : start + 4 * r + 3] = w[0, 0, r]
    x = np.random.default_rng(4).random((1, 4, 4))
    y = np.random.default_rng(5).random((1, 2, 2))
    ok = (
        C.shape == (4, 16)
        and bool(np.array_equal(C, expected))
        and bool(np.allclose(C @ x.ravel(), conv(x, w).ravel()))
        and bool(np.allclose(C.T @ y.ravel(), conv_transpose(y, w).ravel()))
    )
    return Check(
        PADDLE_COURSE,
        "convolution as a matrix: 4x4 input, 3x3 kernel",
        ok,
        "C is 4x16 with the seed's pattern; y = C x is the convolution and x' = C^T y the transposed one",
    )


def _symbolic(stride: int) -> tuple[np.ndarray, np.ndarray]:
    w = np.arange(1.0, 10.0).reshape(3, 3)
    y = np.array([[1.0, 10.0], [100.0, 1000.0]])
    return conv_transpose(y[None, None], w[None, None], stride=stride)[0, 0], w


def _seed002_stride1() -> Check:
    out, w = _symbolic(1)
    y0, y1, y2, y3 = 1.0, 10.0, 100.0, 1000.0
    # A few of the seed's printed entries of C^T y' (stride 1).
    ok = (
        out.shape == (4, 4)
        and out[0, 0] == w[0, 0] * y0
        and out[1, 1] == w[1, 1] * y0 + w[1, 0] * y1 + w[0, 1] * y2 + w[0, 0] * y3
        and out[3, 3] == w[2, 2] * y3
        and out[2, 0] == w[2, 0] * y0 + w[1, 0] * y2
    )
    return Check(
        PADDLE_COURSE,
        "transposed convolution 2x2 -> 4x4, stride 1",
        ok,
        "o' = i' + (k - 1) = 4; every entry as the seed writes it (w11*y0 + w10*y1 + w01*y2 + w00*y3, ...)",
    )


def _seed002_stride2() -> Check:
    out, w = _symbolic(2)
    y0, y1, y2, y3 = 1.0, 10.0, 100.0, 1000.0
    ok = (
        out.shape == (5, 5)
        and out[0, 2] == w[0, 2] * y0 + w[0, 0] * y1
        and out[2, 2] == w[2, 2] * y0 + w[2, 0] * y1 + w[0, 2] * y2 + w[0, 0] * y3
        and out[3, 0] == w[1, 0] * y2
        and out[4, 4] == w[2, 2] * y3
    )
    return Check(
        PADDLE_COURSE,
        "transposed convolution 2x2 -> 5x5, stride 2",
        ok,
        "o' = s(i' - 1) + k = 5; the overlaps add at the centre (w22*y0 + w20*y1 + w02*y2 + w00*y3)",
    )


def _seed003() -> Check:
    out = conv(np.random.default_rng(6).random((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))
    formula = (4 - 3 + 2 * 0) // 1 + 1
    ok = out.shape[-2:] == (2, 2) and formula == 2
    return Check(
        CONV_INTRO,
        "F.conv2d: 4x4 input, 3x3 kernel",
        ok,
        f"{out.shape[-2]}x{out.shape[-1]}; O = (I - K + 2P)/S + 1 = (4 - 3 + 0)/1 + 1 = {formula}",
    )


def _seed000_generator() -> Check:
    rng = np.random.default_rng(7)
    h = rng.standard_normal((2, 7, 7, 256)).astype(np.float32)
    seen = [h.shape[1:]]
    for filters, stride in ((128, 1), (64, 2), (1, 2)):
        kernel = rng.standard_normal((5, 5, filters, h.shape[-1])).astype(np.float32) * 0.01
        h = np.asarray(ckeras.conv_transpose(h, kernel, stride, "same"))
        seen.append(h.shape[1:])
    expected = [(7, 7, 256), (7, 7, 128), (14, 14, 64), (28, 28, 1)]
    ok = seen == expected
    return Check(
        KERAS_TUTORIAL,
        "DCGAN generator, Conv2DTranspose k5 'same', strides 1, 2, 2",
        ok,
        " -> ".join("x".join(map(str, s)) for s in seen),
    )


def _seed000_padding() -> Check:
    first = shapes.solve_conv_transpose_padding(7, 7, 5, stride=1)
    second = shapes.solve_conv_transpose_padding(7, 14, 5, stride=2)
    # The seed's case analysis: (o + 2p - k) % s is 0 for the first layer, 1 for the second,
    # and the transposed output adds it back: o = s(i - 1) - 2p + k + (o + 2p - k) % s.
    r1, r2 = (7 + 4 - 5) % 1, (14 + 4 - 5) % 2
    ok = (
        first == [(2, 0)]
        and second == [(2, 1)]
        and (r1, r2) == (0, 1)
        and shapes.conv_transpose_output_size(7, 5, stride=2, padding=2, output_padding=r2) == 14
        and shapes.conv_output_size(14, 5, stride=2, padding=2) == 7
    )
    return Check(
        KERAS_TUTORIAL,
        "solving for the padding of 7 -> 7 and 7 -> 14",
        ok,
        f"p = 2 for both ((padding, output_padding): {first} and {second}); (o + 2p - k) % s = {r1} and {r2}",
    )


CHECKS: list[Callable[[], Check]] = [
    _seed000_generator,
    _seed000_padding,
    _seed001_flipped,
    _seed001_stride3,
    _seed001_round_trip,
    _seed001_output_padding,
    _seed001_crop,
    _seed001_full_padding,
    _seed002_one_by_one,
    _seed002_inception,
    _seed002_bottleneck,
    _seed002_matrix,
    _seed002_stride1,
    _seed002_stride2,
    _seed003,
    _seed004,
]


def run_checks() -> list[Check]:
    """Run every check; a check that raises is a failed check, reported with its reason."""
    checks = []
    for fn in CHECKS:
        try:
            checks.append(fn())
        except Exception as err:
            checks.append(Check("?", fn.__name__, False, f"raised {type(err).__name__}: {err}"))
    return checks


def _figure_layers() -> dict[str, Any]:
    from ..spec import ConvSpec

    one: dict[str, Any] = dict(in_channels=1, out_channels=1)
    return {
        "seed004": ConvSpec.build(transposed=True, input_size=(2, 2), kernel_size=(3, 3), stride=2, **one),
        "dcgan": ConvSpec.build(
            transposed=True, input_size=(7, 7), kernel_size=(5, 5), stride=2, padding="same", **one
        ),
        "seed002": ConvSpec.build(transposed=False, input_size=(4, 4), kernel_size=(3, 3), **one),
    }


def figure_count() -> int:
    """How many files :func:`write_figures` writes."""
    from . import figures as fig

    return fig.figure_count(_figure_layers()["seed004"]) + 2


def write_figures(
    out: str | pathlib.Path, progress: Callable[[pathlib.Path, float], None] | None = None
) -> list[pathlib.Path]:
    """The figures of the most instructive examples into ``out``, each reported to ``progress(path, seconds)``:
    seed 004's layer (all of them), the DCGAN layer's checkerboard, seed 002's matrix."""
    from . import figures as fig

    directory = pathlib.Path(out)
    layers = _figure_layers()
    written = fig.save_all(
        directory, layers["seed004"], SEED004_X, SEED004_KERNEL, prefix="seed004_", progress=progress
    )
    singles: list[Callable[[], pathlib.Path | None]] = [
        lambda: fig.save_overlap(directory / "dcgan_checkerboard.png", layers["dcgan"]),
        lambda: fig.save_matrix(
            directory / "seed002_matrix.png", layers["seed002"], np.arange(1.0, 10.0).reshape(3, 3)
        ),
    ]
    return written + fig.save_each(singles, progress)


def run_tour(out: str | pathlib.Path | None = None) -> tuple[list[Check], list[pathlib.Path]]:
    """Run every check; with ``out``, also write the figures of the most instructive examples there."""
    checks = run_checks()
    return checks, ([] if out is None else write_figures(out))
