"""The ``tconv demo`` command: build and train the seeds' models with tconv.nn, report what they reach.

========== ==============================================================  ============
demo       what it does                                                      time here
========== ==============================================================  ============
blocks     seed 002's Inception and bottleneck blocks: their weight counts   < 1 s
           against the seed's, and the Inception block's summary
upsampling learned x2 ConvTranspose2d vs nearest and bilinear, held-out PSNR  ~ 35 s
unet       U-Net segmentation of synthetic shapes, held-out IoU             ~ 1 min
dcgan      seed 000's generator (filters / 4 by default) against its         ~ 3 min
           discriminator on digits
volume     a 3-D volume larger than the workers' memory upsampled Zarr to    ~ 1-2 min
           Zarr on a LocalCluster (tconv.dask), against overlap-and-blend
========== ==============================================================  ============
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["DEMOS", "SEED_BLOCK_COUNTS", "run_demo"]

# seed 002's counts of convolution weights (no biases)
SEED_BLOCK_COUNTS = {
    "naive Inception (192 -> 64 + 128 + 32 + pool)": 387072,
    "Inception with 1x1 reductions": 163328,
    "two 3x3 convolutions, 256 channels": 1179648,
    "bottleneck 256 -> 64 -> 64 -> 256": 69632,
}

DEMOS = ("blocks", "upsampling", "unet", "dcgan", "volume")


def _blocks(stream: TextIO, verbose: bool) -> tuple[bool, dict[str, Any]]:
    from .. import models

    shape = (None, 192, 28, 28)
    built = {
        "naive Inception (192 -> 64 + 128 + 32 + pool)": models.naive_inception_block(192, 64, 128, 32, bias=False),
        "Inception with 1x1 reductions": models.inception_block(192, 64, (96, 128), (16, 32), 32, bias=False),
        "two 3x3 convolutions, 256 channels": models.plain_residual_block(256, batch_norm=False),
        "bottleneck 256 -> 64 -> 64 -> 256": models.bottleneck_block(256, 64, batch_norm=False),
    }
    counts = {}
    for name, block in built.items():
        block.build_from_shape(shape if "Inception" in name else (None, 256, 14, 14))
        counts[name] = block.count_params()
    ok = counts == SEED_BLOCK_COUNTS
    if verbose:
        print("Seed 002's blocks, weights without biases (tconv count vs the seed's)", file=stream)
        for name, count in counts.items():
            seed = SEED_BLOCK_COUNTS[name]
            print(f"  {name:<46} {count:>10,}  seed {seed:>10,}  {'ok' if count == seed else 'WRONG'}", file=stream)
        built["Inception with 1x1 reductions"].summary(print_fn=lambda table: print(table, file=stream))
    return ok, {"counts": counts, "seed": SEED_BLOCK_COUNTS}


def _upsampling(
    out: Path | None, epochs: int | None, seed: int, stream: TextIO, verbose: bool
) -> tuple[bool, dict[str, Any]]:
    from ..models import compare_upsampling

    result = compare_upsampling(epochs=epochs or 40, seed=seed, out=out, verbose=verbose)
    ok = result.psnr["learned"] > result.psnr["bilinear"]
    if verbose:
        print("x2 super-resolution of held-out digits (4x4 -> 8x8), PSNR", file=stream)
        for name, value in result.psnr.items():
            print(f"  {name:<9} {value:6.2f} dB", file=stream)
        print(f"  learned {'beats' if ok else 'does NOT beat'} bilinear ({result.seconds:.0f}s)", file=stream)
    return ok, {"psnr": result.psnr, "loss": result.history, "seconds": result.seconds, "files": result.files}


def _unet(
    out: Path | None, epochs: int | None, seed: int, stream: TextIO, verbose: bool
) -> tuple[bool, dict[str, Any]]:
    from ..models import train_unet

    result = train_unet(epochs=epochs or 15, seed=seed, out=out, verbose=verbose)
    ok = result.iou > result.baseline_iou
    if verbose:
        print(
            f"U-Net on synthetic shapes: held-out IoU {result.iou:.3f} (best global threshold "
            f"{result.baseline_iou:.3f}), {result.seconds:.0f}s",
            file=stream,
        )
    return ok, {"iou": result.iou, "baseline_iou": result.baseline_iou, "loss": result.history, "files": result.files}


def _dcgan(
    out: Path | None, epochs: int | None, seed: int, stream: TextIO, verbose: bool, width: int = 4
) -> tuple[bool, dict[str, Any]]:
    from ..models import dcgan_generator, train_dcgan

    exact = dcgan_generator().count_params()  # seed 000's model as written; Keras counts 2,330,944
    result = train_dcgan(epochs=epochs or 30, width=width, seed=seed, out=out, verbose=verbose)
    trained = result.generator.count_params()
    ok = exact == 2330944 and all(np.isfinite(result.generator_loss)) and all(np.isfinite(result.discriminator_loss))
    if verbose:
        print(f"seed 000's generator as written: {exact:,} parameters (Keras: 2,330,944)", file=stream)
        print(
            f"trained with filters / {width} ({trained:,} parameters; --width 1 trains the seed's exact model) "
            f"for {len(result.generator_loss)} epochs on digits:",
            file=stream,
        )
        rows = zip(result.generator_loss, result.discriminator_loss, result.real_score, result.fake_score)
        for epoch, (g, d, real, fake) in enumerate(rows, 1):
            if epoch == 1 or epoch % 5 == 0 or epoch == len(result.generator_loss):
                print(
                    f"  epoch {epoch}: G loss {g:.3f}  D loss {d:.3f}  D calls real: real {real:.2f}, fake {fake:.2f}",
                    file=stream,
                )
        print(f"  {result.seconds:.0f}s; figures: {', '.join(result.files) or 'none (no --out)'}", file=stream)
    return ok, {
        "parameters": exact,
        "trained_parameters": trained,
        "generator_loss": result.generator_loss,
        "discriminator_loss": result.discriminator_loss,
        "seconds": result.seconds,
        "files": result.files,
    }


def verdict(name: str, good: bool, data: dict[str, Any]) -> str:
    """One line: ``PASS``/``FAIL``, the demo, and what it reached against its goal (the reason when it fails)."""
    if name == "blocks":
        wrong = [f"{k}: {v:,} (seed {data['seed'][k]:,})" for k, v in data["counts"].items() if v != data["seed"][k]]
        reason = "the weight counts match seed 002's" if not wrong else "weight counts differ: " + "; ".join(wrong)
    elif name == "upsampling":
        psnr = data["psnr"]
        reason = f"learned {psnr['learned']:.2f} dB against bilinear {psnr['bilinear']:.2f} dB (goal: above it)"
    elif name == "unet":
        reason = (
            f"held-out IoU {data['iou']:.3f} against the best global threshold's {data['baseline_iou']:.3f} "
            "(goal: above it)"
        )
    elif name == "dcgan":
        finite = all(np.isfinite(data["generator_loss"])) and all(np.isfinite(data["discriminator_loss"]))
        reason = f"{data['parameters']:,} parameters (Keras: 2,330,944), losses " + (
            "finite" if finite else "NOT finite"
        )
    else:
        reason = "reached its goal" if good else "missed its goal (see the report above)"
    hint = "" if good or name == "blocks" else "; more --epochs may reach it"
    return f"{'PASS' if good else 'FAIL'}  {name}: {reason}{hint}"


def run_demo(
    names: Sequence[str],
    *,
    out: str | Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
    width: int = 4,
    verbose: bool = True,
    stream: TextIO | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Run the named demos (``'all'`` for every one); returns whether each reached its goal, and the figures."""
    stream = stream or sys.stdout
    chosen = list(DEMOS) if "all" in names else list(names)
    for name in chosen:
        if name not in DEMOS:
            raise ValueError(f"demo must be one of {', '.join(DEMOS)} or all; received {name!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a positive int; received {epochs!r}")
    path = None if out is None else Path(out)
    report: dict[str, Any] = {}
    ok = True
    for name in chosen:
        if name == "blocks":
            good, data = _blocks(stream, verbose)
        elif name == "dcgan":
            good, data = _dcgan(path, epochs, seed, stream, verbose, width)
        elif name == "volume":  # tconv.dask on a LocalCluster: needs the dask extra
            from .volume import run_volume

            good, data = run_volume(out=path, seed=seed, stream=stream, verbose=verbose)
        else:
            runner = {"upsampling": _upsampling, "unet": _unet}[name]
            good, data = runner(path, epochs, seed, stream, verbose)
        report[name] = {"ok": good, "verdict": verdict(name, good, data), **data}
        if verbose:
            print(report[name]["verdict"], file=stream, flush=True)
        ok &= good
    return ok, report
