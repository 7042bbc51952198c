"""Pictures of a transposed convolution: grids, the scatter and gather animations, tap counts, the matrix C.

Every value drawn is computed by tconv (the operations, :func:`tconv.conv_matrix`, :mod:`tconv.shapes`);
this module only draws. Needs matplotlib (``pip install 'tconv[plot]'``), imported when a figure is made.

What is drawn, by the layer's number of spatial axes:

* 1-D and 2-D layers as they are (1-D as a single row);
* a 3-D layer truthfully: the grids, the tap counts and the matrix C are computed on the 3-D layer itself and
  the grids and tap counts drawn as the slice through the middle of the depth axis (the title says which);
  the two animations show the 2-D layer of the height and width axes, and say so.

Cells carry their values (up to :data:`_MAX_ANNOTATED` per side) on a colour map centred on zero; the
zero-inserted input tells its input values, the zeros inserted between them (the stride) and the padding apart;
the matrix has a colour bar. The animations draw one figure and update its artists frame by frame, and PIL
writes the GIF; :func:`save_all` reports each file written to a ``progress`` callback.

The module is long because the five figures share one way of drawing a grid (:class:`_Grid`) and one
fast animation writer (:class:`_Frames`); split apart, each figure would need both.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import shapes
from .._plotting import pyplot
from ..matrix import conv_matrix
from ..ops import conv_transpose
from ..spec import ConvSpec

__all__ = [
    "example_arrays",
    "figure_count",
    "save_all",
    "save_each",
    "save_gather_gif",
    "save_grids",
    "save_matrix",
    "save_overlap",
    "save_scatter_gif",
    "tap_counts",
]

_MAX_ANNOTATED = 20  # cells per side up to which values are written on the cells
_MAX_FRAMES = 64
_MATRIX_ANNOTATED = 40  # columns (and rows) up to which the matrix's values are written
_DPI = 80
_CMAP = "RdBu_r"  # diverging, white at zero: the sign reads from the hue, the size from the depth
_INSERTED = (0.93, 0.93, 0.93, 1.0)  # zeros inserted between the inputs (the stride)
_PADDING = (0.80, 0.86, 0.74, 1.0)  # the padding d*(k-1) - crop around them
_CATEGORY_INPUT, _CATEGORY_INSERTED, _CATEGORY_PADDING = 0, 1, 2

Progress = Callable[[pathlib.Path, float], None]


def _figure(width: float, height: float) -> Any:
    """A matplotlib figure with its own Agg canvas (no pyplot state to close)."""
    pyplot()  # selects Agg and raises the ImportError naming the extra when matplotlib is missing
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | pathlib.Path) -> pathlib.Path:
    target = pathlib.Path(path)
    fig.savefig(target, dpi=_DPI)
    return target


def _one_channel(spec: ConvSpec, axes: tuple[int, ...] | None = None) -> ConvSpec:
    """The layer's spatial axes ``axes`` (all by default), one channel, no groups."""
    keep = tuple(range(spec.ndim)) if axes is None else axes

    def pick(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(values[a] for a in keep)

    return ConvSpec.build(
        transposed=spec.transposed,
        input_size=pick(spec.input_size),
        kernel_size=pick(spec.kernel_size),
        in_channels=1,
        out_channels=1,
        stride=pick(spec.stride),
        padding=pick(spec.padding),
        dilation=pick(spec.dilation),
        output_padding=pick(spec.output_padding) if spec.transposed else 0,
    )


def _plane(spec: ConvSpec) -> tuple[ConvSpec, str]:
    """The 2-D layer the animations show, and what it is: a 1-D layer as one row, a 3-D layer's H, W axes."""
    if spec.ndim == 1:
        one = _one_channel(spec)
        row = ConvSpec.build(
            transposed=spec.transposed,
            input_size=(1, *one.input_size),
            kernel_size=(1, *one.kernel_size),
            in_channels=1,
            out_channels=1,
            stride=(1, *one.stride),
            padding=((0, 0), *one.padding),
            dilation=(1, *one.dilation),
            output_padding=(0, *one.output_padding) if spec.transposed else 0,
        )
        return row, ""
    if spec.ndim == 2:
        return _one_channel(spec), ""
    axes = (spec.ndim - 2, spec.ndim - 1)
    return _one_channel(spec, axes), " (the 3-D layer's H, W axes as a 2-D layer)"


def _as_grid(a: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(a, dtype=float).reshape(shape)


def _animated(
    spec: ConvSpec, x: np.ndarray | None, w: np.ndarray | None
) -> tuple[ConvSpec, str, np.ndarray, np.ndarray]:
    """What an animation of ``spec`` shows (:func:`_plane`), and its input and kernel: ``x`` and ``w`` where
    both are given for a 1-D or 2-D layer, the example arrays otherwise."""
    plane, shown_as = _plane(spec)
    if x is None or w is None or spec.ndim == 3:
        x, w = example_arrays(plane)
    return plane, shown_as, _as_grid(x, plane.input_size), _as_grid(w, plane.kernel_size)


def example_arrays(spec: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """Small integer example data for a one-channel layer: input 1, 2, 3, ... and kernel 1, 2, 3, ..."""
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


def _spread_axes(spec: ConvSpec) -> list[np.ndarray]:
    """Per axis, each position of the zero-inserted, padded input: the input index it holds, or -1 for an
    inserted zero, or -2 for padding (a negative padding crops the zero-inserted input instead)."""
    labels = []
    for axis in range(spec.ndim):
        s = spec.stride[axis]
        eq = shapes.equivalent_conv(
            spec.input_size[axis],
            spec.kernel_size[axis],
            stride=s,
            padding=spec.padding[axis],
            output_padding=spec.output_padding[axis],
            dilation=spec.dilation[axis],
        )
        lo, hi = eq.padding
        q = np.arange(eq.dilated_input_size + lo + hi) - lo  # index into the zero-inserted input
        inside = (q >= 0) & (q < eq.dilated_input_size)
        labels.append(np.where(inside, np.where(q % s == 0, q // s, -1), -2))
    return labels


def _spread_input(spec: ConvSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The zero-inserted, padded input of the equivalent direct convolution, and each cell's category
    (input value, inserted zero, padding)."""
    labels = _spread_axes(spec)
    grids = np.meshgrid(*labels, indexing="ij")
    padding = np.zeros(grids[0].shape, bool)
    inserted = np.zeros(grids[0].shape, bool)
    for g in grids:
        padding |= g == -2
        inserted |= g == -1
    inserted &= ~padding
    category = np.full(grids[0].shape, _CATEGORY_INPUT)
    category[inserted] = _CATEGORY_INSERTED
    category[padding] = _CATEGORY_PADDING
    values = np.zeros(grids[0].shape)
    real = category == _CATEGORY_INPUT
    values[real] = x[tuple(g[real] for g in grids)]
    return values, category


def _text(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2g}"


def _font(rows: int, cols: int, width_inches: float) -> float:
    """A font size that fits a value in a cell of a panel ``width_inches`` wide."""
    cell_points = 72 * width_inches / max(cols, rows, 1)
    return float(np.clip(cell_points * 0.36, 4.5, 10))


class _Grid:
    """One panel: values as coloured cells (a colour map centred on zero) with grid lines, their values
    written on them, the inserted zeros and the padding of a zero-inserted input told apart."""

    def __init__(
        self,
        ax: Any,
        values: np.ndarray,
        title: str,
        *,
        limit: float | None = None,
        category: np.ndarray | None = None,
        annotate: bool = True,
    ) -> None:
        self.ax = ax
        rows, cols = values.shape
        self.limit = limit if limit is not None else max(float(np.abs(values).max()), 1e-12)
        shown = np.array(values, dtype=float)
        if category is not None:
            shown[category != _CATEGORY_INPUT] = np.nan
        ax.imshow(shown, cmap=_CMAP, vmin=-self.limit, vmax=self.limit, interpolation="nearest")
        if category is not None and (category != _CATEGORY_INPUT).any():
            overlay = np.zeros((rows, cols, 4))
            overlay[category == _CATEGORY_INSERTED] = _INSERTED
            overlay[category == _CATEGORY_PADDING] = _PADDING
            ax.imshow(overlay, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)
        if max(rows, cols) <= 48:
            ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
            ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
            ax.grid(which="minor", color="0.55", linewidth=0.5)
            ax.tick_params(which="minor", length=0)
        self.font = _font(rows, cols, ax.get_position().width * ax.figure.get_figwidth())
        self.annotated = annotate and rows <= _MAX_ANNOTATED and cols <= _MAX_ANNOTATED
        if not self.annotated:
            return
        for (r, c), value in np.ndenumerate(values):
            if np.isnan(value):
                continue
            muted = category is not None and category[r, c] != _CATEGORY_INPUT
            ax.text(
                c,
                r,
                "0" if muted else _text(value),
                ha="center",
                va="center",
                fontsize=self.font,
                color="0.45" if muted else _ink(value, self.limit),
                style="italic" if muted else "normal",
            )


def _ink(value: float, limit: float) -> str:
    """Text colour readable on the cell's colour: white on the dark ends of the colour map."""
    return "white" if abs(value) > 0.6 * limit else "black"


class _Frames:
    """An animation drawn fast: matplotlib draws the still parts once; each frame copies that picture and
    paints the cells that change, the boxes and the titles with PIL (the same font and colour map), and PIL
    writes the GIF with one palette."""

    def __init__(self, fig: Any) -> None:
        from matplotlib import colormaps, font_manager
        from PIL import Image

        fig.canvas.draw()
        self.fig = fig
        self.state = Image.fromarray(np.array(fig.canvas.buffer_rgba())[..., :3])
        self.height = self.state.height
        self.scale = fig.dpi / 72.0
        self.cmap = colormaps[_CMAP]
        self.font_path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
        self.fonts: dict[int, Any] = {}
        self.frames: list[Any] = []

    def _font(self, points: float) -> Any:
        from PIL import ImageFont

        size = max(round(points * self.scale), 6)
        if size not in self.fonts:
            self.fonts[size] = ImageFont.truetype(self.font_path, size)
        return self.fonts[size]

    def cell(self, ax: Any, row: float, col: float, height: float = 1, width: float = 1) -> tuple[int, int, int, int]:
        """The pixel box (left, top, right, bottom) of cells ``row .. row + height``, ``col .. col + width``."""
        (x0, y0), (x1, y1) = ax.transData.transform([(col - 0.5, row - 0.5), (col + width - 0.5, row + height - 0.5)])
        top, bottom = sorted((self.height - y0, self.height - y1))
        return round(min(x0, x1)), round(top), round(max(x0, x1)), round(bottom)

    def paint(self, grid: _Grid, row: int, col: int, value: float) -> None:
        """Colour one cell of ``grid`` on the lasting picture and write its value."""
        from PIL import ImageDraw

        draw = ImageDraw.Draw(self.state)
        left, top, right, bottom = self.cell(grid.ax, row, col)
        rgba = self.cmap(0.5 + 0.5 * float(np.clip(value / grid.limit, -1, 1)))
        draw.rectangle((left + 1, top + 1, right - 1, bottom - 1), fill=tuple(int(255 * v) for v in rgba[:3]))
        if grid.annotated:
            ink = _ink(value, grid.limit)
            draw.text(
                ((left + right) / 2, (top + bottom) / 2),
                _text(value),
                fill=ink,
                font=self._font(grid.font),
                anchor="mm",
            )

    def frame(self, boxes: list[tuple[Any, tuple[int, int, int, int], str]], titles: list[tuple[Any, str]]) -> None:
        """Add a frame: the lasting picture, with ``boxes`` (axes, (row, col, height, width), colour) and
        ``titles`` (axes, text) drawn on it."""
        from PIL import ImageDraw

        image = self.state.copy()
        draw = ImageDraw.Draw(image)
        for ax, (row, col, height, width), color in boxes:
            draw.rectangle(self.cell(ax, row, col, height, width), outline=color, width=2)
        for ax, text in titles:
            bbox = ax.get_window_extent()
            x0, x1 = round(bbox.x0), round(bbox.x1)
            y = self.height - bbox.y1 - 4
            draw.rectangle((x0, y - 16 * self.scale, x1, y), fill="white")
            draw.text(((x0 + x1) / 2, y), text, fill="black", font=self._font(9), anchor="md")
        self.frames.append(image)

    def save(self, path: str | pathlib.Path, duration_ms: int) -> pathlib.Path:
        from PIL import Image

        palette = self.frames[-1].quantize(colors=255, dither=Image.Dither.NONE)
        images = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in self.frames]
        target = pathlib.Path(path)
        images[0].save(target, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
        return target


def _legend(fig: Any, spread_category: np.ndarray) -> None:
    import matplotlib.patches as patches

    handles = [patches.Patch(facecolor="white", edgecolor="0.5", label="input value")]
    if (spread_category == _CATEGORY_INSERTED).any():
        handles.append(patches.Patch(facecolor=_INSERTED, edgecolor="0.5", label="zero inserted (stride - 1 between)"))
    if (spread_category == _CATEGORY_PADDING).any():
        handles.append(patches.Patch(facecolor=_PADDING, edgecolor="0.5", label="padding: d*(k-1) - crop"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)


def _sizes(values: tuple[int, ...]) -> str:
    return "x".join(map(str, values))


def _layer_line(spec: ConvSpec) -> str:
    """The layer's options, for a figure's title."""
    line = (
        f"input {_sizes(spec.input_size)}, kernel {_sizes(spec.kernel_size)}, stride {_sizes(spec.stride)}, "
        f"padding (crop) {', '.join(f'({lo}, {hi})' for lo, hi in spec.padding)}"
    )
    if spec.transposed and any(spec.output_padding):
        line += f", output padding {_sizes(spec.output_padding)}"
    if any(d > 1 for d in spec.dilation):
        line += f", dilation {_sizes(spec.dilation)}"
    return line + f" -> output {_sizes(spec.output_size)}"


def _middle(a: np.ndarray, depth: int | None = None) -> tuple[np.ndarray, str]:
    """A 3-D array's slice through the middle of its first (depth) axis, and how to name it; 2-D as is,
    1-D as one row."""
    if a.ndim == 1:
        return a[None, :], ""
    if a.ndim == 2:
        return a, ""
    index = a.shape[0] // 2 if depth is None else depth
    return a[index], f", depth slice {index} of {a.shape[0]}"


def save_grids(
    path: str | pathlib.Path, spec: ConvSpec, x: np.ndarray | None = None, w: np.ndarray | None = None
) -> pathlib.Path:
    """Input, kernel, the zero-inserted padded input and the output, as one PNG (a 3-D layer: each one's
    slice through the middle of the depth axis, computed on the 3-D layer)."""
    one = _one_channel(spec)
    if x is None or w is None:
        x, w = example_arrays(one)
    x, w = _as_grid(x, one.input_size), _as_grid(w, one.kernel_size)
    out = _layer_output(one, x, w)
    spread, category = _spread_input(one, x)
    spread_depth = None
    if spread.ndim == 3:  # the slice holding input values nearest the middle (the others are all zeros)
        holding = np.flatnonzero((category == _CATEGORY_INPUT).any(axis=(1, 2)))
        if holding.size:
            spread_depth = int(holding[np.argmin(np.abs(holding - spread.shape[0] // 2))])
    panels = [_middle(x), _middle(w), _middle(spread, spread_depth), _middle(out)]
    spread_category = _middle(category, spread_depth)[0]
    fig = _figure(14, 4.6)
    axes = fig.subplots(1, 4, gridspec_kw={"left": 0.01, "right": 0.99, "top": 0.78, "bottom": 0.1, "wspace": 0.08})
    pads = [
        shapes.equivalent_conv(n, k, stride=s, padding=p, output_padding=op, dilation=d).padding
        for n, k, s, p, op, d in zip(
            one.input_size, one.kernel_size, one.stride, one.padding, one.output_padding, one.dilation
        )
    ]
    (xs, x_note), (ws, w_note), (ss, s_note), (os_, o_note) = panels
    zeros = ", ".join(str(s - 1) for s in one.stride)
    _Grid(axes[0], xs, f"input {_sizes(x.shape)}{x_note}")
    _Grid(axes[1], ws, f"kernel {_sizes(w.shape)}{w_note}")
    _Grid(
        axes[2],
        ss,
        f"zero-inserted ({zeros} between), padded {', '.join(map(str, pads))}\n{_sizes(spread.shape)}{s_note}: "
        "the flipped kernel slides here",
        category=spread_category,
    )
    _Grid(axes[3], os_, f"output {_sizes(out.shape)}{o_note}")
    fig.suptitle(f"transposed convolution: {_layer_line(spec)}", fontsize=10)
    _legend(fig, spread_category)
    return _save(fig, path)


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

    One frame per input element (at most 64, evenly chosen), then a last frame with the crop to the
    layer's output marked.
    """
    plane, shown_as, x, w = _animated(spec, x, w)
    (s0, s1), (d0, d1) = plane.stride, plane.dilation
    k_eff = [shapes.dilated_kernel_size(k, d) for k, d in zip(plane.kernel_size, plane.dilation)]
    full_shape = tuple(
        shapes.transposed_full_size(n, k, s, d) + op
        for n, k, s, d, op in zip(
            plane.input_size, plane.kernel_size, plane.stride, plane.dilation, plane.output_padding
        )
    )
    final = _layer_output(
        ConvSpec.build(
            transposed=True,
            input_size=plane.input_size,
            kernel_size=plane.kernel_size,
            in_channels=1,
            out_channels=1,
            stride=plane.stride,
            dilation=plane.dilation,
            output_padding=plane.output_padding,
        ),
        x,
        w,
    )
    limit = max(float(np.abs(final).max()), float(np.abs(x).max() * np.abs(w).max()), 1e-12)
    fig = _figure(9, 4.2)
    axes = fig.subplots(1, 2, gridspec_kw={"left": 0.02, "right": 0.98, "top": 0.8, "bottom": 0.03, "wspace": 0.1})
    left = _Grid(axes[0], x, " ")
    right = _Grid(axes[1], np.full(full_shape, np.nan), " ", limit=limit)
    fig.suptitle(f"scatter: each input stamps the kernel, {s0}x{s1} apart{shown_as}", fontsize=10)
    frames = _Frames(fig)
    canvas = np.zeros(full_shape)
    changed: set[tuple[int, int]] = set()
    inputs = [(r, c) for r in range(x.shape[0]) for c in range(x.shape[1])]
    chosen = set(_frame_indices(len(inputs)))
    for i, (r, c) in enumerate(inputs):
        rows = range(r * s0, r * s0 + k_eff[0], d0)
        cols = range(c * s1, c * s1 + k_eff[1], d1)
        canvas[r * s0 : r * s0 + k_eff[0] : d0, c * s1 : c * s1 + k_eff[1] : d1] += x[r, c] * w
        changed.update((a, b) for a in rows for b in cols)
        if i not in chosen:
            continue
        for a, b in sorted(changed):
            frames.paint(right, a, b, canvas[a, b])
        changed.clear()
        frames.frame(
            [(left.ax, (r, c, 1, 1), "black"), (right.ax, (r * s0, c * s1, k_eff[0], k_eff[1]), "black")],
            [
                (left.ax, f"input: element ({r}, {c}) = {x[r, c]:g}"),
                (right.ax, f"x[{r},{c}] * kernel added at ({r * s0}, {c * s1})"),
            ],
        )
    crop = (plane.padding[0][0], plane.padding[1][0], plane.output_size[0], plane.output_size[1])
    frames.frame(
        [(right.ax, crop, "green")],
        [
            (left.ax, "input"),
            (right.ax, f"the sum; the green box is the output (crop {plane.padding[0]}, {plane.padding[1]})"),
        ],
    )
    return frames.save(path, duration_ms)


def save_gather_gif(
    path: str | pathlib.Path,
    spec: ConvSpec,
    x: np.ndarray | None = None,
    w: np.ndarray | None = None,
    duration_ms: int = 400,
) -> pathlib.Path:
    """The flipped kernel slides over the zero-inserted, padded input: one frame per output element (at most 64)."""
    plane, shown_as, x, w = _animated(spec, x, w)
    spread, category = _spread_input(plane, x)
    out = _layer_output(plane, x, w)
    k_eff = [shapes.dilated_kernel_size(k, d) for k, d in zip(plane.kernel_size, plane.dilation)]
    positions = [(r, c) for r in range(out.shape[0]) for c in range(out.shape[1])]
    fig = _figure(12, 4.4)
    axes = fig.subplots(
        1,
        3,
        gridspec_kw={"left": 0.01, "right": 0.99, "top": 0.8, "bottom": 0.1, "wspace": 0.08, "width_ratios": [3, 2, 3]},
    )
    left = _Grid(axes[0], spread, "zero-inserted, padded input", category=category)
    _Grid(axes[1], w[::-1, ::-1], "flipped kernel")
    right = _Grid(axes[2], np.full(out.shape, np.nan), " ", limit=max(float(np.abs(out).max()), 1e-12))
    right.annotated = out.shape[0] <= _MAX_ANNOTATED and out.shape[1] <= _MAX_ANNOTATED
    fig.suptitle(f"gather: the flipped kernel slides over the zero-inserted input{shown_as}", fontsize=10)
    _legend(fig, category)
    frames = _Frames(fig)
    done = 0
    for i in _frame_indices(len(positions)):
        r, c = positions[i]
        for j in range(done, i + 1):
            frames.paint(right, *positions[j], out[positions[j]])
        done = i + 1
        frames.frame(
            [(left.ax, (r, c, k_eff[0], k_eff[1]), "black"), (right.ax, (r, c, 1, 1), "black")],
            [(right.ax, f"output ({r}, {c}) = {out[r, c]:g}")],
        )
    return frames.save(path, duration_ms)


def tap_counts(spec: ConvSpec) -> np.ndarray:
    """How many (input element, kernel tap) pairs reach each output element: the layer applied to ones,
    with all of its spatial axes (a 3-D layer's centre gets the product of its axes' counts)."""
    one = _one_channel(spec)
    return _layer_output(one, np.ones(one.input_size), np.ones(one.kernel_size))


def save_overlap(path: str | pathlib.Path, spec: ConvSpec) -> pathlib.Path:
    """A heatmap of :func:`tap_counts`: a checkerboard when the kernel is not divisible by the stride (a 3-D
    layer: the slice through the middle of the depth axis, where the most taps meet)."""
    counts = tap_counts(spec)
    depth = None
    if counts.ndim == 3:  # the depth slice holding the most taps, the middle one among equals
        totals = counts.max(axis=(1, 2))
        best = np.flatnonzero(totals == totals.max())
        depth = int(best[np.argmin(np.abs(best - counts.shape[0] // 2))])
    plane, note = _middle(counts, depth)
    fig = _figure(5.6, 5.2)
    ax = fig.add_axes((0.04, 0.04, 0.74, 0.78))
    image = ax.imshow(plane, cmap="viridis", vmin=0, vmax=max(float(counts.max()), 1))
    ax.set_xticks([])
    ax.set_yticks([])
    colorbar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    colorbar.set_label("kernel taps reaching the element", fontsize=8)
    ax.set_title(
        f"taps per output element{note}\nkernel {_sizes(spec.kernel_size)}, stride {_sizes(spec.stride)}, "
        f"output {_sizes(counts.shape)}; most: {counts.max():.0f}, least: {counts.min():.0f}",
        fontsize=9,
    )
    rows, cols = plane.shape
    if max(rows, cols) <= _MAX_ANNOTATED:
        size = _font(rows, cols, 0.74 * 5.6)
        high = float(counts.max())
        for (r, c), value in np.ndenumerate(plane):
            color = "black" if value > 0.6 * high else "white"
            ax.text(c, r, f"{value:.0f}", ha="center", va="center", color=color, fontsize=size)
    return _save(fig, path)


def _matrix_input_size(spec: ConvSpec) -> tuple[int, ...]:
    return spec.output_size if spec.transposed else spec.input_size


def _matrix_fits(spec: ConvSpec, max_side: int) -> bool:
    one = _one_channel(spec)
    return int(np.prod(_matrix_input_size(one))) <= max_side and int(np.prod(_matrix_output_size(one))) <= max_side


def _matrix_output_size(spec: ConvSpec) -> tuple[int, ...]:
    return spec.input_size if spec.transposed else spec.output_size


def save_matrix(
    path: str | pathlib.Path, spec: ConvSpec, w: np.ndarray | None = None, max_side: int = 4096
) -> pathlib.Path | None:
    """The matrix C of the forward convolution, one channel, all spatial axes (its transpose is the layer);
    ``None`` if a side would exceed ``max_side``."""
    one = _one_channel(spec)
    if w is None:
        _, w = example_arrays(one)
    if not _matrix_fits(spec, max_side):
        return None
    C = conv_matrix(
        (1, *_matrix_input_size(one)),
        np.asarray(w, float).reshape(1, 1, *one.kernel_size),
        stride=one.stride,
        padding=one.padding,
        dilation=one.dilation,
    )
    dense = C.toarray()
    rows, cols = dense.shape
    width = float(np.clip(0.32 * cols + 1.8, 6, 14))
    height = float(np.clip(width * rows / max(cols, 1) + 1.6, 2.8, 9))
    fig = _figure(width, height)
    ax = fig.add_axes((0.08, 0.2, 0.8, 0.66))
    limit = max(float(np.abs(dense).max()), 1e-12)
    image = ax.imshow(
        np.where(dense == 0, np.nan, dense),
        cmap=_CMAP,
        vmin=-limit,
        vmax=limit,
        aspect="auto",
        interpolation="nearest",
    )
    colorbar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    colorbar.set_label("weight (blank: 0)", fontsize=8)
    what = "the layer is C^T" if one.transposed else "the layer is y = C x"
    ax.set_title(
        f"C: {rows}x{cols}, {C.nnz} nonzeros ({what}); input {_sizes(_matrix_input_size(one))} flattened -> "
        f"output {_sizes(_matrix_output_size(one))}",
        fontsize=9,
    )
    ax.set_xlabel("input element (flattened)")
    ax.set_ylabel("output element")
    if cols <= _MATRIX_ANNOTATED and rows <= _MATRIX_ANNOTATED:
        ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="0.8", linewidth=0.4)
        ax.tick_params(which="minor", length=0)
        size = _font(rows, cols, 0.8 * width)
        for (r, c), value in np.ndenumerate(dense):
            if value != 0:
                ax.text(c, r, _text(value), ha="center", va="center", fontsize=size, color=_ink(value, limit))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def figure_count(spec: ConvSpec, max_side: int = 4096) -> int:
    """How many files :func:`save_all` writes for ``spec``."""
    return 1 + (3 if spec.transposed else 0) + (1 if _matrix_fits(spec, max_side) else 0)


def save_all(
    directory: str | pathlib.Path,
    spec: ConvSpec,
    x: np.ndarray | None = None,
    w: np.ndarray | None = None,
    prefix: str = "",
    progress: Progress | None = None,
) -> list[pathlib.Path]:
    """Every figure of a layer into ``directory``; returns the files written, each reported to
    ``progress(path, seconds)`` as it is written."""
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[Callable[[], pathlib.Path | None]] = [lambda: save_overlap(out / f"{prefix}overlap.png", spec)]
    if spec.transposed:
        jobs.append(lambda: save_grids(out / f"{prefix}grids.png", spec, x, w))
        jobs.append(lambda: save_scatter_gif(out / f"{prefix}scatter.gif", spec, x, w))
        jobs.append(lambda: save_gather_gif(out / f"{prefix}gather.gif", spec, x, w))
    jobs.append(lambda: save_matrix(out / f"{prefix}matrix.png", spec, w))
    return save_each(jobs, progress)


def save_each(jobs: list[Callable[[], pathlib.Path | None]], progress: Progress | None = None) -> list[pathlib.Path]:
    """Run each figure-writing job; returns the files written, each reported to ``progress(path, seconds)``."""
    written = []
    for job in jobs:
        start = time.perf_counter()
        path = job()
        if path is not None:
            written.append(path)
            if progress is not None:
                progress(path, time.perf_counter() - start)
    return written
