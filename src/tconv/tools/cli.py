"""The ``tconv`` command (also ``python -m tconv``).

* ``tconv tour``: every worked example of the seeds, computed and checked, with figures (``--out``);
* ``tconv shape``: output sizes in any framework's terms; the paddings that give a wanted size; the
  input sizes a convolution maps to the same output;
* ``tconv explain``: the full report on one layer, and its figures (``--out``);
* ``tconv translate``: one framework's layer in every other's, with the code to paste;
* ``tconv dcgan``: seed 000's DCGAN generator walked through tconv on random weights;
* ``tconv serve``: the explorer in the browser, on 127.0.0.1 (:mod:`tconv.tools.serve`);
* ``tconv bench``: the speed benchmark against PyTorch and the other frameworks (:mod:`tconv.bench`).

Tables use rich when it is installed and the output is a terminal; ``--json`` prints
machine-readable output; a bad argument (or an ``--out`` that cannot be written) prints one line and exits
with status 2. Reports are printed before any figure is drawn; drawing shows one line per figure on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import numpy as np

from .. import __version__, shapes
from ..ops import conv_transpose
from .demo import DEMOS
from .explain import FRAMEWORK_CHOICES, TILEABLE_MODELS, Explanation, explain
from .parser import Parser
from .reach import answers, report_lines

_EPILOG = f"""examples:
  tconv tour --out tour                       the worked examples, checked, with their figures
  tconv shape --input 7 --kernel 5 --stride 2 --framework keras --want 14
                                              Keras's ways to get 14, and who starts elsewhere
  tconv explain --input 7x7 --kernel 5 --stride 2 --padding same --framework keras --out figs
  tconv explain --model volume-decoder --input 4x160x160x160
                                              a model's tiling arithmetic: receptive field, halo, alignment
  tconv translate --input 4 --kernel 4 --stride 2 --padding 1
  tconv demo blocks upsampling                demos: {", ".join(DEMOS)} (or all)

Without --padding each framework's own default applies (Keras 'valid', TensorFlow 'SAME' for a transposed
convolution, JAX none: it must be given; 0 elsewhere). 'tconv SUBCOMMAND -h' lists a subcommand's options.
"""

# Seed 000's generator after its Dense + Reshape: (filters, kernel, stride, activation).
_DCGAN_LAYERS = ((128, 5, 1, "leaky_relu"), (64, 5, 2, "leaky_relu"), (1, 5, 2, "tanh"))
_DCGAN_EXPECTED = ((7, 7, 256), (7, 7, 128), (14, 14, 64), (28, 28, 1))


def _leaky_relu(x: np.ndarray, slope: float = 0.3) -> np.ndarray:
    return np.where(x > 0, x, slope * x)


def _glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def run_dcgan(batch: int = 16, seed: int = 0, out: TextIO | None = None) -> bool:
    """Run seed 000's DCGAN generator on random weights; print and check every shape.

    Returns whether every shape matches the seed's assertions.
    """
    stream = out if out is not None else sys.stdout
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, 100)).astype(np.float32)
    dense = _glorot_uniform(rng, (100, 7 * 7 * 256), 100, 7 * 7 * 256)
    h = _leaky_relu(z @ dense).reshape(batch, 7, 7, 256)
    rows = [("Dense + Reshape", h.shape[1:], dense.size, 0.0)]
    for filters, k, s, activation in _DCGAN_LAYERS:
        c_in = h.shape[-1]
        # tconv's transposed-convolution layout: (C_in, C_out, *kernel).
        w = _glorot_uniform(rng, (c_in, filters, k, k), c_in * k * k, filters * k * k)
        start = time.perf_counter()
        h = conv_transpose(h, w, stride=s, padding="same", channels_last=True)
        elapsed = time.perf_counter() - start
        h = np.tanh(h) if activation == "tanh" else _leaky_relu(h)
        rows.append((f"conv_transpose k{k} s{s} same", h.shape[1:], w.size, elapsed))

    ok = True
    print(f"Seed 000's DCGAN generator through tconv (batch {batch}, float32, channels last)", file=stream)
    print(f"{'layer':<30} {'output (H, W, C)':<18} {'weights':>10} {'time':>9}  check", file=stream)
    for (name, shape, params, seconds), expected in zip(rows, _DCGAN_EXPECTED):
        good = tuple(shape) == expected
        ok &= good
        verdict = "ok" if good else f"WRONG, expected {expected}"
        timing = f"{seconds * 1000:7.1f}ms" if seconds else ""
        print(f"{name:<30} {shape!s:<18} {params:>10,} {timing:>9}  {verdict}", file=stream)
    value_range = (float(h.min()), float(h.max()))
    print(f"output range after tanh: [{value_range[0]:.3f}, {value_range[1]:.3f}]", file=stream)
    print("all shapes match seed 000" if ok else "SHAPE MISMATCH", file=stream)
    return ok


def _sizes(text: str) -> tuple[int, ...]:
    """``7``, ``7x7`` or ``7x7x7``."""
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 7, 7x7 or 7x7x7; received {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative sizes like 7 or 7x7; received {text!r}")
    return values


def _padding(text: str) -> Any:
    """A word (``same``, ``valid``, ``same_lower``, ``causal``), ``2``, ``1,2`` (per axis) or ``1:2,0:1`` (pairs)."""
    word = text.strip().lower()
    if word in ("same", "valid", "same_lower", "causal"):
        return word
    try:
        if ":" in word:
            pairs = [tuple(int(v) for v in part.split(":")) for part in word.split(",")]
            for pair in pairs:
                if len(pair) != 2:
                    raise argparse.ArgumentTypeError(
                        f"a padding pair is two ints lo:hi (the crop at the start and at the end of an axis), one "
                        f"pair per axis separated by commas (1:2,0:1); received {text!r}"
                    )
            return pairs
        values = [int(v) for v in word.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"padding must be same, valid, same_lower, an int, ints per axis (1,2) or pairs (1:2,0:1); "
            f"received {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def _layer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=_sizes, required=True, help="spatial input size: 7, 7x7 or 7x7x7")
    parser.add_argument("--kernel", type=_sizes, required=True, help="kernel size: 5 or 5x5")
    parser.add_argument("--stride", type=_sizes, default=(1,), help="stride (default 1)")
    parser.add_argument(
        "--padding",
        type=_padding,
        default=None,
        help="same, valid, same_lower, an int, ints per axis (1,2) or pairs (1:2,0:1); default: the framework's",
    )
    parser.add_argument("--output-padding", type=_sizes, default=None, help="output padding (transposed)")
    parser.add_argument("--output-size", type=_sizes, default=None, help="wanted output size (transposed)")
    parser.add_argument("--dilation", type=_sizes, default=(1,), help="dilation (default 1)")
    parser.add_argument("--groups", type=int, default=1, help="groups (default 1)")
    parser.add_argument("--in-channels", type=int, default=None, help="input channels (default: groups)")
    parser.add_argument("--out-channels", type=int, default=None, help="output channels (default: groups)")
    parser.add_argument(
        "--framework",
        default="torch",
        choices=FRAMEWORK_CHOICES,
        help="whose meaning the arguments have (default torch; tconv = tconv's own)",
    )
    parser.add_argument("--conv", action="store_true", help="a forward convolution instead of a transposed one")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _layer(args: argparse.Namespace) -> Explanation:
    return explain(
        args.framework,
        input_size=args.input,
        kernel_size=args.kernel,
        stride=args.stride,
        padding=args.padding,
        output_padding=args.output_padding,
        output_size=args.output_size,
        dilation=args.dilation,
        groups=args.groups,
        in_channels=args.in_channels,
        out_channels=args.out_channels,
        transposed=not args.conv,
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO) -> None:
    """A table: rich's when installed and writing to a terminal, plain aligned text otherwise."""
    if stream.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(*headers)
            for row in rows:
                table.add_row(*(str(v) for v in row))
            Console(file=stream).print(table)
            return
    cells = [[str(h) for h in headers]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip(), file=stream)
        if n == 0:
            print("  ".join("-" * width for width in widths), file=stream)


def _cmd_shape(args: argparse.Namespace, stream: TextIO) -> int:
    e = _layer(args)
    spec = e.spec
    result: dict[str, Any] = {
        "output_size": spec.output_size,
        "formula": e.formula_lines(),
        "padding": spec.padding,
        "output_padding": spec.output_padding,
    }
    rows = []
    for axis in range(spec.ndim):
        n, k, s, d = spec.input_size[axis], spec.kernel_size[axis], spec.stride[axis], spec.dilation[axis]
        row: list[Any] = [axis, n, k, s, d, spec.padding[axis]]
        if spec.transposed:
            row += [spec.output_padding[axis], spec.output_size[axis]]
        else:
            same = list(
                shapes.conv_input_sizes(spec.output_size[axis], k, stride=s, padding=spec.padding[axis], dilation=d)
            )
            row += [spec.output_size[axis], same]
        rows.append(row)
    reached = answers(spec, args.want) if args.want is not None else []
    if reached:
        result["ways"] = [answer.to_dict() for answer in reached]
    if not spec.transposed:
        result["input_sizes_with_same_output"] = [row[-1] for row in rows]
    if args.json:
        print(json.dumps(result), file=stream)
        return 0
    kind = "transposed convolution" if spec.transposed else "convolution"
    print(f"{kind} ({args.framework}) -> output {'x'.join(map(str, spec.output_size))}", file=stream)
    headers = ["axis", "input", "kernel", "stride", "dilation", "padding (lo, hi)"]
    headers += ["output padding", "output"] if spec.transposed else ["output", "inputs with this output"]
    _table(headers, rows, stream)
    for line in e.formula_lines():
        print(line, file=stream)
    for answer in reached:
        print("", file=stream)
        for line in report_lines(answer, args.framework, spec.ndim):
            print(line, file=stream)
    return 0


def _writable_directory(out: str) -> pathlib.Path:
    """``out``, created if needed; ``ValueError`` with the reason when figures cannot be written there."""
    path = pathlib.Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"--out {out!r} cannot be created: {err.strerror or err}; choose a writable directory"
        ) from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out!r} is not a writable directory; choose another")
    return path


def _progress(total: int, stream: TextIO) -> Callable[[pathlib.Path, float], None]:
    """A callback printing one line per figure written (``[2/5] out/grids.png 0.3s``) on ``stream``."""
    done = [0]

    def report(path: pathlib.Path, seconds: float) -> None:
        done[0] += 1
        print(f"[{done[0]}/{total}] wrote {path} ({seconds:.1f}s)", file=stream, flush=True)

    return report


def _cmd_explain(args: argparse.Namespace, stream: TextIO) -> int:
    e = _layer(args)
    directory = None if args.out is None else _writable_directory(args.out)
    if not args.json:
        print(e, end="", file=stream, flush=True)
    written: list[str] = []
    if directory is not None:
        from . import figures

        count = figures.figure_count(e.spec)
        print(f"drawing {count} figures into {directory}", file=sys.stderr, flush=True)
        written = [str(p) for p in figures.save_all(directory, e.spec, progress=_progress(count, sys.stderr))]
    if args.json:
        print(json.dumps({**e.to_dict(), "figures": written}), file=stream)
    return 0


def _explain_model(arguments: Sequence[str], stream: TextIO) -> int:
    """``tconv explain --model NAME [--input SIZES] [--json]``: a built-in model's tiling arithmetic per layer
    (:func:`tconv.tools.explain.explain_model`), a path of its own beside the one-layer report."""
    from .explain import explain_model, model_input_shape

    parser = Parser(prog="tconv explain", description="The tiling arithmetic of a built-in model, layer by layer.")
    parser.add_argument("--model", required=True, choices=tuple(TILEABLE_MODELS), help="a tileable built-in model")
    parser.add_argument(
        "--input", type=_sizes, default=None, help="input: spatial sizes, CxSPATIAL or NxCxSPATIAL (4x160x160x160)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(list(arguments))
    try:
        table = explain_model(args.model, args.input)
    except (ValueError, TypeError, ImportError) as err:
        sys.stderr.write(f"tconv explain: error: {' '.join(str(err).split())}\n")
        return 2
    if args.json:
        shape = list(model_input_shape(args.model, args.input))
        print(json.dumps({"model": args.model, "input_shape": shape, **table.to_dict()}), file=stream)
    else:
        print(table, file=stream)
    return 0


def _cmd_translate(args: argparse.Namespace, stream: TextIO) -> int:
    e = _layer(args)
    if args.json:
        print(json.dumps(e.translation_dict()), file=stream)
        return 0
    print(e.translation, end="", file=stream)
    return 0


def _cmd_tour(args: argparse.Namespace, stream: TextIO) -> int:
    from .tour import figure_count, run_checks, write_figures

    directory = None if args.out is None else _writable_directory(args.out)
    start = time.perf_counter()
    checks = run_checks()
    passed = sum(c.passed for c in checks)
    if not args.json:
        print(
            "The worked examples of five tutorials and Q&A threads on transposed convolution, computed by tconv "
            "and checked against their numbers",
            file=stream,
        )
        for check in checks:
            print(check.line(), file=stream, flush=True)
    written: list[pathlib.Path] = []
    if directory is not None:
        count = figure_count()
        print(f"drawing {count} figures into {directory}", file=sys.stderr, flush=True)
        written = write_figures(directory, progress=_progress(count, sys.stderr))
    elapsed = time.perf_counter() - start
    if args.json:
        print(
            json.dumps(
                {
                    "checks": [c.__dict__ for c in checks],
                    "figures": [str(p) for p in written],
                    "passed": passed,
                    "failed": len(checks) - passed,
                    "seconds": elapsed,
                }
            ),
            file=stream,
        )
    else:
        print(f"{passed} passed, {len(checks) - passed} failed ({elapsed:.1f}s)", file=stream)
    return 0 if passed == len(checks) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tconv`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        from .bench import main as bench_main

        return bench_main(arguments[1:])
    if arguments[:1] == ["explain"] and any(a == "--model" or a.startswith("--model=") for a in arguments):
        return _explain_model(arguments[1:], sys.stdout)
    parser = Parser(
        prog="tconv",
        description="Convolution and transposed convolution, explained.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tconv {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    tour = sub.add_parser("tour", help="reproduce every worked example of the seeds (the main job)")
    tour.add_argument("--out", default=None, help="directory for the figures")
    tour.add_argument("--json", action="store_true", help="machine-readable output")
    shape = sub.add_parser("shape", help="output sizes; paddings for a wanted size; inputs sharing an output")
    _layer_arguments(shape)
    shape.add_argument("--want", type=_sizes, default=None, help="wanted output size: list every padding giving it")
    explain_cmd = sub.add_parser(
        "explain",
        help="the full report on one layer, with figures in --out",
        epilog=f"tconv explain --model {{{','.join(TILEABLE_MODELS)}}} [--input SIZES] [--json]: a built-in model's "
        "tiling arithmetic (receptive field, halo, alignment per layer)",
    )
    _layer_arguments(explain_cmd)
    explain_cmd.add_argument("--out", default=None, help="directory for the figures")
    translate_cmd = sub.add_parser("translate", help="one framework's layer in every framework, with the code")
    _layer_arguments(translate_cmd)
    sub.add_parser("bench", help="the speed benchmark against PyTorch and the other frameworks (see tconv bench -h)")
    dcgan = sub.add_parser("dcgan", help="walk seed 000's DCGAN generator through tconv")
    dcgan.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    dcgan.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo = sub.add_parser("demo", help=f"train the seeds' models with tconv.nn: {', '.join(DEMOS)}")
    demo.add_argument(
        "names", nargs="*", default=["blocks", "upsampling"], help=f"demos to run: {', '.join(DEMOS)}, or all"
    )
    demo.add_argument("--out", default=None, help="directory for the figures")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (each demo has its default)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--width", type=int, default=4, help="dcgan: divide the filters by 1, 2, 4 or 8 (default 4)")
    demo.add_argument("--json", action="store_true", help="machine-readable output (no progress bars)")
    serve = sub.add_parser("serve", help="the explorer: every option live in the browser, on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 picks a free one)")
    serve.add_argument("--open", action="store_true", help="open the page in the web browser")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(arguments)
    stream = sys.stdout
    if args.command is None:
        parser.print_help(stream)
        return 0
    try:
        if args.command == "dcgan":
            if args.batch < 1:
                parser.error(f"--batch must be a positive int; received {args.batch}")
            return 0 if run_dcgan(batch=args.batch, seed=args.seed) else 1
        if args.command == "demo":
            from .demo import run_demo

            ok, report = run_demo(
                args.names, out=args.out, epochs=args.epochs, seed=args.seed, width=args.width, verbose=not args.json
            )
            if args.json:
                print(json.dumps(report), file=stream)
            return 0 if ok else 1
        if args.command == "serve":
            from .serve import main as serve_main

            if not 0 <= args.port <= 65535:
                parser.error(f"--port must be between 0 and 65535; received {args.port}")
            return serve_main(args)
        command = {"tour": _cmd_tour, "shape": _cmd_shape, "explain": _cmd_explain, "translate": _cmd_translate}
        return command[args.command](args, stream)
    except (ValueError, TypeError, ImportError) as err:
        message = " ".join(str(err).split())
        sys.stderr.write(f"tconv {args.command}: error: {message}\n")
        return 2
    except OSError as err:  # a file that cannot be written: say which and why, not a traceback
        where = f" {err.filename!r}" if err.filename else ""
        sys.stderr.write(f"tconv {args.command}: error: cannot write{where}: {err.strerror or err}\n")
        return 2
