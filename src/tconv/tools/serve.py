"""``tconv serve``: the explorer, a page in the browser over a small JSON API, on 127.0.0.1.

The page (``tools/explorer/``: one HTML file, one style sheet, one script; no build step, nothing fetched from
elsewhere) draws and animates; every number it shows comes from this module's API, which answers with the objects
``tconv explain --json`` and ``tconv translate --json`` print and with data computed by tconv's public functions
(:func:`tconv.tools.explain.explain`, :func:`tconv.conv_transpose`, :func:`tconv.conv_matrix`,
:func:`tconv.shapes.equivalent_conv`):

=====================  ============================================================================================
``GET /api/meta``      version, frameworks, what ``padding`` means in each, the size limits
``GET /api/explain``   ``Explanation.to_dict()``, as ``tconv explain --json`` prints it
``GET /api/translate`` the layer in every framework, as ``tconv translate --json`` prints it
``GET /api/steps``     with values ``x`` and ``w``: the output, the scatter (each input stamps the kernel) and the
                       gather (the flipped kernel over the zero-inserted, padded input), step by step
``GET /api/taps``      kernel taps reaching each output element (the checkerboard)
``GET /api/matrix``    the matrix C of the forward convolution, dense, with ``C^T x`` beside the layer's output
=====================  ============================================================================================

The query options have the command's names (``input``, ``kernel``, ``stride``, ``padding``, ``output-padding``,
``output-size``, ``dilation``, ``groups``, ``in-channels``, ``out-channels``, ``framework``, ``conv``; ``_`` may
stand for ``-``): ``/api/explain?input=7x7&kernel=5&stride=2&padding=same&framework=keras``. Without ``padding``
a framework's own default applies (``'valid'`` for TensorFlow and Keras, 0 elsewhere). Values: ``x`` and ``w``
are ``count`` (1, 2, 3, ...; the default), ``ones``, ``random`` (integers -9..9, ``seed``) or a JSON array of
the input's or kernel's shape (``[[-67, -77], [-117, -127]]``).

Why the standard library's :mod:`http.server` (``ThreadingHTTPServer``) and not a web framework: the explorer is
a handful of GET endpoints for one user on the loopback interface, so a framework would add a runtime dependency
(and its own release cycle) to a library whose dependencies are NumPy and three small packages, for routing that
fits in one function. What a framework would otherwise give is done here explicitly: the server listens on
127.0.0.1 only; a request is bounded before any work starts (the URL at most :data:`MAX_URL` characters, a
request body is refused, sizes beyond :data:`LIMITS` get a 422 saying so), at most :data:`MAX_CONCURRENT`
requests compute at once (the others wait up to :data:`QUEUE_SECONDS`, then get a 503), and a connection that
sends nothing for :data:`IDLE_SECONDS` is closed. Bad input gets a 4xx with ``{"error": message}``; an
unexpected failure gets a 500 with the message and the server carries on.

The module is long because it holds the whole server in one place: reading a query (with the command's rules and
the limits), the six endpoints and the handler; the page's files are in ``tools/explorer/``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import webbrowser
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .. import __version__, shapes
from ..matrix import conv_matrix
from ..ops import conv_transpose
from ..spec import ConvSpec
from .explain import FRAMEWORK_CHOICES, Explanation, explain

__all__ = [
    "IDLE_SECONDS",
    "LIMITS",
    "MAX_CONCURRENT",
    "MAX_URL",
    "PADDING_MEANINGS",
    "QUEUE_SECONDS",
    "RequestError",
    "answer",
    "main",
    "make_server",
]

HOST = "127.0.0.1"
#: the longest request target accepted (typed values travel in the query)
MAX_URL = 8192
#: requests computing at once; the rest wait
MAX_CONCURRENT = 8
#: how long a request waits for its turn before a 503
QUEUE_SECONDS = 10.0
#: a connection silent for this long is closed
IDLE_SECONDS = 15.0

#: what one request may ask for. ``explain``/``translate`` are integer arithmetic (any size up to ``size``);
#: ``steps``, ``taps`` and ``matrix`` compute and send arrays, so they draw only layers small enough to look at.
LIMITS: dict[str, int] = {
    "dims": 3,
    "size": 100_000,  # any size, stride, dilation, padding or channel count
    "kernel_elements": 10_000,  # the report counts the matrix's nonzeros tap by tap
    "draw_input_elements": 1_024,
    "draw_output_elements": 4_096,
    "draw_kernel_elements": 729,
    "draw_scatter_cells": 20_000,  # input elements x kernel elements
    "draw_gather_cells": 40_000,  # output elements x kernel elements
    "matrix_cells": 40_000,
    "value_magnitude": 1_000_000,
}

#: what ``padding`` means in each framework's terms (shown beside the padding field)
PADDING_MEANINGS: dict[str, str] = {
    "tconv": "tconv's own: same (TensorFlow's rule: output n*s, an odd crop's extra element at the end), "
    "same_lower (the extra element at the start), valid, an int, ints per axis (1,2) or lo:hi pairs (1:2,0:1): "
    "the forward convolution's padding, cropped from the full output",
    "torch": "an int per axis: PyTorch crops that many from both ends of the full output (the forward "
    "convolution's padding); output_padding adds at the end. No 'same' for transposed convolutions",
    "tensorflow": "same or valid (SAME: output n*s, the odd element cropped at the end), or explicit lo:hi pairs; "
    "the output size (output_shape) picks among the sizes a stride makes ambiguous",
    "keras": "same or valid only; output_padding picks the size (with it, Keras 3 uses "
    "(n-1)*s + k - 2*(k//2) + output_padding)",
    "onnx": "pads as lo:hi pairs, or auto_pad: same (SAME_UPPER: extra crop at the end), same_lower (SAME_LOWER: "
    "at the start), valid; output_shape or output_padding for the size",
    "jax": "SAME, VALID or lo:hi pairs of the forward convolution (use_consistent_padding); "
    "lax.conv_transpose pads the zero-inserted input, the translation shows its pairs",
    "paddle": "an int, ints per axis or lo:hi pairs, or SAME/VALID; Paddle's SAME is the forward SAME padding of "
    "the input itself (it differs from TensorFlow's) and resets dilation to 1",
}

_LAYER_OPTIONS = (
    "input",
    "kernel",
    "stride",
    "padding",
    "output-padding",
    "output-size",
    "dilation",
    "groups",
    "in-channels",
    "out-channels",
    "framework",
    "conv",
)
_VALUE_OPTIONS = ("x", "w", "seed")
_DEFAULT_PADDING = {"keras": "valid", "tensorflow": "valid"}


class RequestError(Exception):
    """A request the API refuses: ``status`` (4xx or 503) and a message for the page."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


# ----------------------------------------------------------------------------------------------- reading a query


def _single(query: Mapping[str, list[str]], allowed: tuple[str, ...]) -> dict[str, str]:
    """One value per option, ``_`` read as ``-``; unknown or repeated options are refused."""
    options: dict[str, str] = {}
    for raw, values in query.items():
        name = raw.replace("_", "-")
        if name not in allowed:
            raise RequestError(f"unknown option {raw!r}; expected some of {', '.join(allowed)}")
        if len(values) != 1 or name in options:
            raise RequestError(f"option {name!r} was given more than once")
        options[name] = values[0].strip()
    return options


def _sizes(text: str, name: str) -> tuple[int, ...]:
    """``7``, ``7x7`` or ``7x7x7`` (commas work too)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise RequestError(f"{name} must be sizes like 7, 7x7 or 7x7x7; received {text!r}") from None
    if not 1 <= len(values) <= LIMITS["dims"]:
        raise RequestError(f"{name} must have 1 to {LIMITS['dims']} axes; received {text!r}")
    if any(v < 0 or v > LIMITS["size"] for v in values):
        raise RequestError(f"{name} must be between 0 and {LIMITS['size']:,} on every axis; received {text!r}")
    return values


def _integer(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise RequestError(f"{name} must be a whole number; received {text!r}") from None
    if not 0 <= value <= LIMITS["size"]:
        raise RequestError(f"{name} must be between 0 and {LIMITS['size']:,}; received {text!r}")
    return value


def _padding(text: str) -> Any:
    """A word (``same``, ``valid``, ``same_lower``), ``2``, ``1,2`` (per axis) or ``1:2,0:1`` (pairs)."""
    word = text.strip().lower().replace("-", "_")
    if word in ("same", "valid", "same_lower", "causal"):
        return word
    try:
        if ":" in word:
            pairs = [tuple(int(v) for v in part.split(":")) for part in word.split(",")]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError
            values = [v for pair in pairs for v in pair]
        else:
            values = [int(v) for v in word.replace("x", ",").split(",")]
    except ValueError:
        raise RequestError(
            f"padding must be same, valid, same_lower, an int, ints per axis (1,2) or pairs (1:2,0:1); "
            f"received {text!r}"
        ) from None
    if len(values) > 2 * LIMITS["dims"] or any(v < 0 or v > LIMITS["size"] for v in values):
        raise RequestError(f"padding must be at most {LIMITS['dims']} entries from 0 to {LIMITS['size']:,}")
    if ":" in word:
        return pairs
    return values[0] if len(values) == 1 else values


def _flag(text: str, name: str) -> bool:
    if text.lower() in ("", "1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise RequestError(f"{name} must be 1 or 0; received {text!r}")


def _layer(options: Mapping[str, str]) -> Explanation:
    """The layer of a query, through the same :func:`explain` as ``tconv explain``."""
    for required in ("input", "kernel"):
        if not options.get(required):
            raise RequestError(f"the option {required!r} is required (sizes like 7, 7x7 or 7x7x7)")
    framework = options.get("framework", "torch") or "torch"
    if framework not in FRAMEWORK_CHOICES:
        raise RequestError(f"framework must be one of {', '.join(FRAMEWORK_CHOICES)}; received {framework!r}")
    input_size = _sizes(options["input"], "input")
    kernel = _sizes(options["kernel"], "kernel")
    if math.prod(kernel) ** (len(input_size) if len(kernel) == 1 else 1) > LIMITS["kernel_elements"]:
        raise RequestError(
            f"kernel {options['kernel']} has more than {LIMITS['kernel_elements']:,} taps: too large to explain",
            HTTPStatus.UNPROCESSABLE_ENTITY,
        )
    padding_text = options.get("padding", "")
    padding = _padding(padding_text) if padding_text else _DEFAULT_PADDING.get(framework, 0)
    optional_sizes = {
        name: _sizes(options[name], name) if options.get(name) else None
        for name in ("stride", "output-padding", "output-size", "dilation")
    }
    groups = _integer(options["groups"], "groups") if options.get("groups") else 1
    channels = {
        name: _integer(options[name], name) if options.get(name) else None for name in ("in-channels", "out-channels")
    }
    try:
        return explain(
            framework,
            input_size=input_size,
            kernel_size=kernel,
            stride=(optional_sizes["stride"] or (1,)),
            padding=padding,
            output_padding=optional_sizes["output-padding"],
            output_size=optional_sizes["output-size"],
            dilation=(optional_sizes["dilation"] or (1,)),
            groups=groups,
            in_channels=channels["in-channels"],
            out_channels=channels["out-channels"],
            transposed=not _flag(options.get("conv", "0"), "conv"),
        )
    except (ValueError, TypeError) as err:
        raise RequestError(" ".join(str(err).split())) from None


def _values(text: str | None, shape: tuple[int, ...], name: str, seed: int) -> np.ndarray:
    """``count``, ``ones``, ``random`` or a JSON array with ``shape`` (or its number of elements)."""
    what = "the input" if name == "x" else "the kernel"
    size = math.prod(shape)
    word = (text or "count").strip().lower()
    if word == "count":
        return np.arange(1, size + 1, dtype=np.float64).reshape(shape)
    if word == "ones":
        return np.ones(shape)
    if word == "random":
        return np.random.default_rng(seed).integers(-9, 10, size=shape).astype(np.float64)
    try:
        parsed = json.loads(text or "")
        array = np.asarray(parsed, dtype=np.float64)
    except (ValueError, TypeError):
        raise RequestError(
            f"{name} must be count, ones, random or a JSON array such as [[1, 2], [3, 4]]; received {text!r}"
        ) from None
    shown = "x".join(map(str, shape))
    if array.shape != shape and array.size != size:
        raise RequestError(
            f"{name} must have the shape of {what}, {shown} ({size} values); "
            f"received {'x'.join(map(str, array.shape)) or 'one value'} ({array.size} values)"
        )
    if not np.all(np.isfinite(array)) or np.abs(array).max(initial=0) > LIMITS["value_magnitude"]:
        raise RequestError(f"{name}'s values must be finite numbers of magnitude at most {LIMITS['value_magnitude']:,}")
    return array.reshape(shape)


def _drawable(spec: ConvSpec, *, need_transposed: bool = True) -> None:
    """Refuse (422) a layer too large to draw, and (400) a forward convolution where the view is a transposed one."""
    if need_transposed and not spec.transposed:
        raise RequestError("the scatter, gather, tap and matrix views are drawn for transposed convolutions")
    n_in, n_out, k = math.prod(spec.input_size), math.prod(spec.output_size), math.prod(spec.kernel_size)
    checks = (
        (n_in, "draw_input_elements", f"input {'x'.join(map(str, spec.input_size))}"),
        (n_out, "draw_output_elements", f"output {'x'.join(map(str, spec.output_size))}"),
        (k, "draw_kernel_elements", f"kernel {'x'.join(map(str, spec.kernel_size))}"),
        (n_in * k, "draw_scatter_cells", "input elements x kernel taps"),
        (n_out * k, "draw_gather_cells", "output elements x kernel taps"),
    )
    for value, limit, what in checks:
        if value > LIMITS[limit]:
            raise RequestError(
                f"{what} = {value:,} is too large to draw (at most {LIMITS[limit]:,}); the size and the code "
                f"still hold, choose a smaller layer to see the steps",
                HTTPStatus.UNPROCESSABLE_ENTITY,
            )
    if 0 in spec.output_size or 0 in spec.input_size:
        raise RequestError("an empty input or output has nothing to draw")


# ------------------------------------------------------------------------------------------------ the endpoints


def _layer_output(spec: ConvSpec, x: np.ndarray, w: np.ndarray, *, crop: bool = True) -> np.ndarray:
    """One channel of the layer (``crop=False``: the full output, nothing cropped, no output padding)."""
    y = conv_transpose(
        x[None, None],
        w[None, None],
        stride=spec.stride,
        padding=spec.padding if crop else 0,
        output_padding=spec.output_padding if crop else 0,
        dilation=spec.dilation,
    )
    return np.asarray(y)[0, 0]


def _number(value: float) -> float | int:
    """JSON numbers: whole values as ints (the page shows 67, not 67.0)."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def _nested(array: np.ndarray) -> Any:
    return np.vectorize(_number, otypes=[object])(array).tolist() if array.size else array.tolist()


def api_meta(options: Mapping[str, str]) -> dict[str, Any]:
    """What the page needs before the first layer: the frameworks, what padding means in each, the limits."""
    return {
        "version": __version__,
        "frameworks": list(FRAMEWORK_CHOICES),
        "padding_meanings": PADDING_MEANINGS,
        "default_padding": {name: _DEFAULT_PADDING.get(name, 0) for name in FRAMEWORK_CHOICES},
        "limits": LIMITS,
    }


def api_explain(options: Mapping[str, str]) -> dict[str, Any]:
    return _layer(options).to_dict()


def api_translate(options: Mapping[str, str]) -> dict[str, Any]:
    return _layer(options).translation_dict()


def _layer_and_values(options: Mapping[str, str]) -> tuple[ConvSpec, np.ndarray, np.ndarray]:
    layer_options = {k: v for k, v in options.items() if k not in _VALUE_OPTIONS}
    spec = _layer(layer_options).spec
    _drawable(spec)
    seed = _integer(options["seed"], "seed") if options.get("seed") else 0
    x = _values(options.get("x"), spec.input_size, "x", seed)
    w = _values(options.get("w"), spec.kernel_size, "w", seed + 1)
    return spec, x, w


def api_steps(options: Mapping[str, str]) -> dict[str, Any]:
    """The output, the scatter and the gather of one channel of the layer, step by step."""
    spec, x, w = _layer_and_values(options)
    y = _layer_output(spec, x, w)
    full = _layer_output(spec, x, w, crop=False)
    # The output is the full output from ``lo`` on, ``output_size`` long; output padding past its end reads zeros.
    starts = [lo for lo, _ in spec.padding]
    canvas_shape = tuple(max(f, lo + n) for f, lo, n in zip(full.shape, starts, spec.output_size))
    kernel_cells = list(np.ndindex(*spec.kernel_size))

    # Scatter: input element i adds x[i] * w[j] at i*s + j*d; ``sums`` are the canvas's values after the step.
    canvas = np.zeros(canvas_shape)
    scatter = []
    for i in np.ndindex(*spec.input_size):
        origin = [a * s for a, s in zip(i, spec.stride)]
        cells, products, sums = [], [], []
        for j in kernel_cells:
            position = tuple(o + b * d for o, b, d in zip(origin, j, spec.dilation))
            product = x[i] * w[j]
            canvas[position] += product
            cells.append(list(position))
            products.append(_number(product))
            sums.append(_number(canvas[position]))
        scatter.append(
            {
                "index": list(i),
                "value": _number(x[i]),
                "origin": origin,
                "cells": cells,
                "products": products,
                "sums": sums,
            }
        )

    # Gather: the zero-inserted input, padded (a negative padding crops), under the flipped kernel at stride 1.
    axes = [
        shapes.equivalent_conv(n, k, stride=s, padding=pad, output_padding=op, dilation=d)
        for n, k, s, pad, op, d in zip(
            spec.input_size, spec.kernel_size, spec.stride, spec.padding, spec.output_padding, spec.dilation
        )
    ]
    per_axis_source = []  # per axis: for each spread position, the input index, -1 (inserted zero) or -2 (padding)
    for eq, s in zip(axes, spec.stride):
        lo, hi = eq.padding
        sources = []
        for q in range(lo + eq.dilated_input_size + hi):
            t = q - lo  # position in the zero-inserted input (a negative lo starts inside it)
            if t < 0 or t >= eq.dilated_input_size:
                sources.append(-2)
            elif t % s:
                sources.append(-1)
            else:
                sources.append(t // s)
        per_axis_source.append(sources)
    spread_shape = tuple(len(sources) for sources in per_axis_source)
    spread = np.zeros(spread_shape)
    kind = np.zeros(spread_shape, dtype=np.int64)  # 0 padding, 1 inserted zero, 2 input
    for q in np.ndindex(*spread_shape):
        source = [per_axis_source[a][b] for a, b in enumerate(q)]
        if -2 in source:
            kind[q] = 0
        elif -1 in source:
            kind[q] = 1
        else:
            kind[q] = 2
            spread[q] = x[tuple(source)]
    flipped = w[tuple(slice(None, None, -1) for _ in spec.kernel_size)]
    gather = []
    for o in np.ndindex(*spec.output_size):
        cells, products = [], []
        for j in kernel_cells:
            position = tuple(a + b * d for a, b, d in zip(o, j, spec.dilation))
            cells.append(list(position))
            products.append(_number(spread[position] * flipped[j]))
        gather.append({"index": list(o), "cells": cells, "products": products, "value": _number(y[o])})

    return {
        "shown": "one input and one output channel" + (f" (of groups={spec.groups})" if spec.groups > 1 else ""),
        "input_size": spec.input_size,
        "kernel_size": spec.kernel_size,
        "output_size": spec.output_size,
        "x": _nested(x),
        "w": _nested(w),
        "flipped": _nested(flipped),
        "output": _nested(y),
        "full_size": list(full.shape),
        "canvas": _nested(canvas),
        "crop": [[lo, lo + n] for lo, n in zip(starts, spec.output_size)],
        "padding": spec.padding,
        "output_padding": spec.output_padding,
        "scatter": scatter,
        "zeros_between": [eq.zeros_between for eq in axes],
        "spread_padding": [list(eq.padding) for eq in axes],
        "spread": _nested(spread),
        "spread_kind": kind.tolist(),
        "gather": gather,
    }


def api_taps(options: Mapping[str, str]) -> dict[str, Any]:
    """How many (input element, kernel tap) pairs reach each output element: the layer applied to ones."""
    spec = _layer(options).spec
    _drawable(spec)
    counts = _layer_output(spec, np.ones(spec.input_size), np.ones(spec.kernel_size))
    return {
        "output_size": spec.output_size,
        "taps": _nested(counts),
        "min": _number(counts.min()),
        "max": _number(counts.max()),
        "even": bool(counts.min() == counts.max()),
    }


def api_matrix(options: Mapping[str, str]) -> dict[str, Any]:
    """The matrix C of the forward convolution that this layer transposes (one channel), with ``C^T x``."""
    spec, x, w = _layer_and_values(options)
    rows, columns = math.prod(spec.input_size), math.prod(spec.output_size)
    if rows * columns > LIMITS["matrix_cells"]:
        raise RequestError(
            f"the matrix C is {rows:,} x {columns:,} = {rows * columns:,} cells: too large to draw (at most "
            f"{LIMITS['matrix_cells']:,}); its size and sparsity are in the report",
            HTTPStatus.UNPROCESSABLE_ENTITY,
        )
    try:
        C = conv_matrix(
            (1, *spec.output_size),
            w[None, None],
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
        )
    except ImportError as err:
        raise RequestError(str(err), HTTPStatus.NOT_IMPLEMENTED) from None
    if C.shape != (rows, columns):  # pragma: no cover - conv_matrix's contract
        raise RequestError(f"the forward convolution of {spec.output_size} does not give {spec.input_size}")
    dense = C.toarray()
    transposed_product = C.T @ x.ravel()
    y = _layer_output(spec, x, w)
    return {
        "rows": rows,
        "columns": columns,
        "nonzeros": int(C.nnz),
        "C": _nested(dense),
        "x": [_number(v) for v in x.ravel()],
        "CT_x": [_number(v) for v in transposed_product],
        "output": [_number(v) for v in y.ravel()],
        "equal": bool(np.allclose(transposed_product, y.ravel())),
    }


ENDPOINTS: dict[str, Callable[[Mapping[str, str]], dict[str, Any]]] = {
    "meta": api_meta,
    "explain": api_explain,
    "translate": api_translate,
    "steps": api_steps,
    "taps": api_taps,
    "matrix": api_matrix,
}
_ALLOWED = {
    "meta": (),
    "explain": _LAYER_OPTIONS,
    "translate": _LAYER_OPTIONS,
    "steps": _LAYER_OPTIONS + _VALUE_OPTIONS,
    "taps": _LAYER_OPTIONS,
    "matrix": _LAYER_OPTIONS + _VALUE_OPTIONS,
}


def answer(target: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of ``GET target`` for an ``/api/...`` target (what the server sends)."""
    parts = urlsplit(target)
    name = parts.path.removeprefix("/api/").strip("/")
    if name not in ENDPOINTS:
        return HTTPStatus.NOT_FOUND, {
            "error": f"no endpoint {parts.path!r}; the API has /api/{', /api/'.join(ENDPOINTS)}"
        }
    try:
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False, max_num_fields=40)
        except ValueError as err:
            raise RequestError(f"the query could not be read: {err}") from None
        options = _single(query, _ALLOWED[name])
        return HTTPStatus.OK, ENDPOINTS[name](options)
    except RequestError as err:
        return err.status, {"error": err.message}
    except (ValueError, TypeError, IndexError, OverflowError) as err:  # tconv refusing what slipped past the checks
        return HTTPStatus.BAD_REQUEST, {"error": " ".join(str(err).split())}
    except MemoryError:
        return HTTPStatus.UNPROCESSABLE_ENTITY, {"error": "this request needs more memory than the server allows"}


# ---------------------------------------------------------------------------------------------------- the server

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/explorer.css": ("explorer.css", "text/css; charset=utf-8"),
    "/explorer.js": ("explorer.js", "text/javascript; charset=utf-8"),
}


def _static_file(name: str) -> bytes:
    return (resources.files("tconv.tools") / "explorer" / name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    """GET (and HEAD) only; JSON answers for ``/api/``, the page's three files otherwise."""

    server_version = "tconv-explorer"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    server: ExplorerServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, *, head: bool = False, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any], **kwargs: Any) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8", **kwargs)

    def _get(self, head: bool) -> None:
        if len(self.path) > MAX_URL:
            self._json(
                HTTPStatus.REQUEST_URI_TOO_LONG,
                {"error": f"the request is longer than {MAX_URL:,} characters; type fewer values"},
                head=head,
                close=True,
            )
            return
        if int(self.headers.get("Content-Length") or 0) > 0:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "GET takes no body"}, head=head, close=True)
            return
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            if not self.server.work.acquire(timeout=QUEUE_SECONDS):
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the server is busy; try again"}, head=head)
                return
            try:
                status, payload = answer(self.path)
            except Exception as err:  # the server never goes down on a request
                status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"}
            finally:
                self.server.work.release()
            self._json(status, payload, head=head)
            return
        if path in _STATIC:
            name, content_type = _STATIC[path]
            self._send(HTTPStatus.OK, self.server.files[name], content_type, head=head)
            return
        if path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", head=head)
            return
        self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path!r}; the explorer is at /"}, head=head)

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def _refuse(self) -> None:
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported; use GET"}, close=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class ExplorerServer(ThreadingHTTPServer):
    """The explorer's HTTP server: one thread per connection, the page's files read once."""

    daemon_threads = True
    # A small listen backlog would refuse bursts of connections (the load test opens 20 at once).
    request_queue_size = 64

    def __init__(self, port: int = 0, *, verbose: bool = False) -> None:
        super().__init__((HOST, port), _Handler)
        self.verbose = verbose
        self.work = threading.BoundedSemaphore(MAX_CONCURRENT)
        self.files = {name: _static_file(name) for name, _ in _STATIC.values()}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


def make_server(port: int = 0, *, verbose: bool = False) -> ExplorerServer:
    """An :class:`ExplorerServer` on 127.0.0.1 (``port=0``: a free port); call ``serve_forever()`` to run it."""
    return ExplorerServer(port, verbose=verbose)


def main(args: argparse.Namespace) -> int:
    """``tconv serve``: run the explorer until interrupted."""
    try:
        server = make_server(args.port, verbose=args.verbose)
    except OSError as err:
        raise ValueError(f"cannot listen on {HOST}:{args.port}: {err.strerror or err}") from None
    print(f"tconv explorer at {server.url} (Ctrl+C stops it)", flush=True)
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
