"""Pictures of a transposed convolution: grids, the scatter and gather animations, tap counts, the matrix C.

Every value drawn is computed by tconv (the operations, :func:`tconv.conv_matrix`,
:mod:`tconv.shapes`); this module only draws. Needs matplotlib (``pip install
'tconv[plot]'``), imported when a figure is made. Layers with one or two spatial
axes are drawn as they are (1-D as a single row); of a 3-D layer the tap counts and
the matrix are drawn for its first two axes.
"""

from __future__ import annotations

import io
import pathlib
from typing import Any

import numpy as np

from .. import shapes
from .._plotting import pyplot
from ..matrix import conv_matrix
from ..ops import conv_transpose
from ..spec import ConvSpec

__all__ = ["save_all", "save_gather_gif", "save_grids", "save_matrix", "save_overlap", "save_scatter_gif"]

_MAX_ANNOTATED = 14  # cells per side up to which values are written on the cells
_MAX_FRAMES = 64


def _save(plt: Any, fig: Any, path: str | pathlib.Path) -> pathlib.Path:
    """Lay ``fig`` out, write it to ``path`` and close it."""
    fig.tight_layout()
    target = pathlib.Path(path)
    fig.savefig(target)
    plt.close(fig)
    return target


def _two_d(spec: ConvSpec) -> ConvSpec:
    """The first two spatial axes of a layer (a 1-D layer as one row), one channel, no groups."""
    keep: tuple[int, ...] = (0,) if spec.ndim == 1 else (0, 1)
    lead: tuple[int, ...] = (1,) if spec.ndim == 1 else ()

    def pick(values: tuple[Any, ...], one: Any) -> tuple[Any, ...]:
        return tuple(one for _ in lead) + tuple(values[a] for a in keep)

    return ConvSpec.build(
        transposed=spec.transposed,
        input_size=pick(spec.input_size, 1),
        kernel_size=pick(spec.kernel_size, 1),
        in_channels=1,
        out_channels=1,
        stride=pick(spec.stride, 1),
        padding=pick(spec.padding, (0, 0)),
        dilation=pick(spec.dilation, 1),
        output_padding=pick(spec.output_padding, 0) if spec.transposed else 0,
    )


def _as_grid(a: Any, shape: tuple[int, ...]) -> Any:
    return np.asarray(a, dtype=float).reshape(shape)


def example_arrays(spec: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """Small integer example data for a 2-D one-channel layer: input 1, 2, 3, ... and kernel 1, 2, 3, ..."""
    x = np.arange(1, 1 + int(np.prod(spec.input_size)), dtype=np.float64).reshape(spec.input_size)
    w = np.arange(1, 1 + int(np.prod(spec.kernel_size)), dtype=np.float64).reshape(spec.kernel_size)
    return x, w


def _layer_output(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    result = conv_transpose(
        x[None, None],
        w[None, None],
        stride=spec.stride,
        padding=spec.padding,
        output_padding=spec.output_padding,
        dilation=spec.dilation,
    )
    return np.asarray(result)[0, 0]


def _spread_input(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    """The zero-inserted, padded input of the equivalent direct convolution (negative padding crops)."""
    out = x
    for axis in range(2):
        eq = shapes.equivalent_conv(
            spec.input_size[axis],
            spec.kernel_size[axis],
            stride=spec.stride[axis],
            padding=spec.padding[axis],
            output_padding=spec.output_padding[axis],
            dilation=spec.dilation[axis],
        )
        spread_shape = list(out.shape)
        spread_shape[axis] = eq.dilated_input_size
        spread = np.zeros(spread_shape)
        index: list[Any] = [slice(None), slice(None)]
        index[axis] = slice(None, None, spec.stride[axis])
        spread[tuple(index)] = out
        lo, hi = eq.padding
        length = spread.shape[axis]
        window = np.zeros([*spread.shape[:axis], length + lo + hi, *spread.shape[axis + 1 :]])
        for p in range(length + lo + hi):
            src = p - lo
            if 0 <= src < length:
                dst_index: list[Any] = [slice(None), slice(None)]
                dst_index[axis] = p
                src_index: list[Any] = [slice(None), slice(None)]
                src_index[axis] = src
                window[tuple(dst_index)] = spread[tuple(src_index)]
        out = window
    return out


def _draw_grid(
    ax: Any,
    values: np.ndarray,
    title: str,
    *,
    cmap: str = "coolwarm",
    mask: np.ndarray | None = None,
    highlight: tuple[int, int, int, int] | None = None,
    vmax: float | None = None,
) -> None:
    limit = vmax if vmax is not None else max(float(np.abs(values).max()), 1e-12)
    ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    rows, cols = values.shape
    if rows <= _MAX_ANNOTATED and cols <= _MAX_ANNOTATED:
        for r in range(rows):
            for c in range(cols):
                if mask is not None and not mask[r, c]:
                    continue
                value = values[r, c]
                text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2g}"
                ax.text(c, r, text, ha="center", va="center", fontsize=max(4, 9 - max(rows, cols) // 3))
    if highlight is not None:
        import matplotlib.patches as patches

        r0, c0, h, wd = highlight
        ax.add_patch(patches.Rectangle((c0 - 0.5, r0 - 0.5), wd, h, fill=False, edgecolor="black", linewidth=2))


def save_grids(
    path: str | pathlib.Path, spec: ConvSpec, x: np.ndarray | None = None, w: np.ndarray | None = None
) -> pathlib.Path:
    """Input, kernel, the zero-inserted padded input, and the output, as one PNG."""
    plt = pyplot()
    spec2 = _two_d(spec)
    if x is None or w is None:
        x, w = example_arrays(spec2)
    x, w = _as_grid(x, spec2.input_size), _as_grid(w, spec2.kernel_size)
    out = _layer_output(spec2, x, w)
    spread = _spread_input(spec2, x)
    fig, axes = plt.subplots(1, 4, figsize=(12, 4.0), dpi=100)
    _draw_grid(axes[0], x, f"input {x.shape[0]}x{x.shape[1]}")
    _draw_grid(axes[1], w, f"kernel {w.shape[0]}x{w.shape[1]}")
    _draw_grid(
        axes[2],
        spread,
        f"zeros inserted, padded {spread.shape[0]}x{spread.shape[1]}\n(the flipped kernel slides here)",
        mask=spread != 0,
    )
    _draw_grid(axes[3], out, f"output {out.shape[0]}x{out.shape[1]}")
    return _save(plt, fig, path)


def _frames_to_gif(frames: list[bytes], path: pathlib.Path, duration_ms: int) -> pathlib.Path:
    from PIL import Image

    images = [Image.open(io.BytesIO(frame)).convert("P", palette=Image.Palette.ADAPTIVE) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def _render(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _frame_indices(count: int) -> list[int]:
    if count <= _MAX_FRAMES:
        return list(range(count))
    return sorted({round(i * (count - 1) / (_MAX_FRAMES - 1)) for i in range(_MAX_FRAMES)})


def save_scatter_gif(
    path: str | pathlib.Path,
    spec: ConvSpec,
    x: np.ndarray | None = None,
    w: np.ndarray | None = None,
    duration_ms: int = 600,
) -> pathlib.Path:
    """Each input element stamps a scaled copy of the kernel, ``stride`` apart; the copies add up.

    One frame per input element (at most 64, evenly chosen), then a last frame with the crop
    to the layer's output marked.
    """
    plt = pyplot()
    spec2 = _two_d(spec)
    if x is None or w is None:
        x, w = example_arrays(spec2)
    x, w = _as_grid(x, spec2.input_size), _as_grid(w, spec2.kernel_size)
    (s0, s1), (d0, d1) = spec2.stride, spec2.dilation
    k_eff = [shapes.dilated_kernel_size(k, d) for k, d in zip(spec2.kernel_size, spec2.dilation)]
    full_shape = [
        shapes.transposed_full_size(n, k, s, d) + op
        for n, k, s, d, op in zip(
            spec2.input_size, spec2.kernel_size, spec2.stride, spec2.dilation, spec2.output_padding
        )
    ]
    canvas = np.zeros(full_shape)
    stamps = []
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            stamp = np.zeros(full_shape)
            stamp[r * s0 : r * s0 + k_eff[0] : d0, c * s1 : c * s1 + k_eff[1] : d1] = x[r, c] * w
            stamps.append(((r, c), stamp))
    final = sum(stamp for _, stamp in stamps)
    vmax = max(float(np.abs(final).max()), float(np.abs(x).max() * np.abs(w).max()), 1e-12)
    chosen = set(_frame_indices(len(stamps)))
    frames = []
    crop = (spec2.padding[0][0], spec2.padding[1][0], spec2.output_size[0], spec2.output_size[1])
    for i, ((r, c), stamp) in enumerate(stamps):
        canvas = canvas + stamp
        if i not in chosen:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), dpi=80)
        _draw_grid(axes[0], x, f"input: element ({r}, {c}) = {x[r, c]:g}", highlight=(r, c, 1, 1))
        _draw_grid(
            axes[1],
            canvas,
            f"x[{r},{c}] * kernel added at ({r * s0}, {c * s1})",
            vmax=vmax,
            highlight=(r * s0, c * s1, k_eff[0], k_eff[1]),
        )
        fig.tight_layout()
        frames.append(_render(fig))
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), dpi=80)
    _draw_grid(axes[0], x, "input")
    _draw_grid(
        axes[1],
        canvas,
        f"sum; the box is the output (crop {spec2.padding[0]}, {spec2.padding[1]})",
        vmax=vmax,
        highlight=crop,
    )
    fig.tight_layout()
    frames.append(_render(fig))
    plt.close(fig)
    return _frames_to_gif(frames, pathlib.Path(path), duration_ms)


def save_gather_gif(
    path: str | pathlib.Path,
    spec: ConvSpec,
    x: np.ndarray | None = None,
    w: np.ndarray | None = None,
    duration_ms: int = 400,
) -> pathlib.Path:
    """The flipped kernel slides over the zero-inserted, padded input: one frame per output element (at most 64)."""
    plt = pyplot()
    spec2 = _two_d(spec)
    if x is None or w is None:
        x, w = example_arrays(spec2)
    x, w = _as_grid(x, spec2.input_size), _as_grid(w, spec2.kernel_size)
    spread = _spread_input(spec2, x)
    out = _layer_output(spec2, x, w)
    flipped = w[::-1, ::-1]
    k_eff = [shapes.dilated_kernel_size(k, d) for k, d in zip(spec2.kernel_size, spec2.dilation)]
    positions = [(r, c) for r in range(out.shape[0]) for c in range(out.shape[1])]
    shown = np.full(out.shape, np.nan)
    frames = []
    for i in _frame_indices(len(positions)):
        r, c = positions[i]
        for j in range(i + 1):
            shown[positions[j]] = out[positions[j]]
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), dpi=80)
        _draw_grid(
            axes[0], spread, "zeros inserted, padded input", mask=spread != 0, highlight=(r, c, k_eff[0], k_eff[1])
        )
        _draw_grid(axes[1], flipped, "flipped kernel")
        _draw_grid(
            axes[2],
            np.nan_to_num(shown),
            f"output ({r}, {c}) = {out[r, c]:g}",
            mask=~np.isnan(shown),
            vmax=max(float(np.abs(out).max()), 1e-12),
            highlight=(r, c, 1, 1),
        )
        fig.tight_layout()
        frames.append(_render(fig))
        plt.close(fig)
    return _frames_to_gif(frames, pathlib.Path(path), duration_ms)


def tap_counts(spec: ConvSpec) -> np.ndarray:
    """How many (input element, kernel tap) pairs reach each output element: the layer applied to ones."""
    spec2 = _two_d(spec)
    return _layer_output(spec2, np.ones(spec2.input_size), np.ones(spec2.kernel_size))


def save_overlap(path: str | pathlib.Path, spec: ConvSpec) -> pathlib.Path:
    """A heatmap of :func:`tap_counts`: a checkerboard when the kernel is not divisible by the stride."""
    plt = pyplot()
    counts = tap_counts(spec)
    fig, ax = plt.subplots(figsize=(5, 4.4), dpi=100)
    image = ax.imshow(counts, cmap="viridis")
    fig.colorbar(image, ax=ax, label="kernel taps reaching the pixel")
    ax.set_title(f"taps per output pixel (k={spec.kernel_size}, s={spec.stride})", fontsize=9)
    if max(counts.shape) <= _MAX_ANNOTATED:
        for (r, c), value in np.ndenumerate(counts):
            ax.text(c, r, f"{value:.0f}", ha="center", va="center", color="white", fontsize=7)
    return _save(plt, fig, path)


def save_matrix(
    path: str | pathlib.Path, spec: ConvSpec, w: np.ndarray | None = None, max_side: int = 4096
) -> pathlib.Path | None:
    """The matrix C of the forward convolution, one channel (its transpose is the layer); ``None`` if too large."""
    plt = pyplot()
    spec2 = _two_d(spec)
    if w is None:
        _, w = example_arrays(spec2)
    size = spec2.output_size if spec2.transposed else spec2.input_size
    if int(np.prod(size)) > max_side:
        return None
    C = conv_matrix(
        (1, *size),
        np.asarray(w, float).reshape(1, 1, *spec2.kernel_size),
        stride=spec2.stride,
        padding=spec2.padding,
        dilation=spec2.dilation,
    )
    if max(C.shape) > max_side:
        return None
    dense = C.toarray()
    fig, ax = plt.subplots(figsize=(7, max(2.5, 7 * dense.shape[0] / max(dense.shape[1], 1))), dpi=100)
    limit = max(float(np.abs(dense).max()), 1e-12)
    ax.imshow(
        np.where(dense == 0, np.nan, dense),
        cmap="coolwarm",
        vmin=-limit,
        vmax=limit,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_title(
        f"C: {dense.shape[0]}x{dense.shape[1]}, {C.nnz} nonzeros (the layer is C^T)"
        if spec2.transposed
        else f"C: {dense.shape[0]}x{dense.shape[1]}, {C.nnz} nonzeros",
        fontsize=9,
    )
    ax.set_xlabel("input element")
    ax.set_ylabel("output element")
    return _save(plt, fig, path)


def save_all(
    directory: str | pathlib.Path,
    spec: ConvSpec,
    x: np.ndarray | None = None,
    w: np.ndarray | None = None,
    prefix: str = "",
) -> list[pathlib.Path]:
    """Every figure of a layer into ``directory``; returns the files written."""
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = [save_overlap(out / f"{prefix}overlap.png", spec)]
    if spec.transposed:
        written.append(save_grids(out / f"{prefix}grids.png", spec, x, w))
        written.append(save_scatter_gif(out / f"{prefix}scatter.gif", spec, x, w))
        written.append(save_gather_gif(out / f"{prefix}gather.gif", spec, x, w))
    matrix = save_matrix(out / f"{prefix}matrix.png", spec, w)
    if matrix is not None:
        written.append(matrix)
    return written
