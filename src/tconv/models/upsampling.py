"""Learned versus fixed upsampling, the seeds' central claim, measured on held-out digits.

The task is x2 super-resolution of scikit-learn's 8x8 digits from their 4x4
block averages. Nearest and bilinear interpolation (``nn.Upsample``) have no
parameters; the learned network's only upsampler is one x2
``ConvTranspose2d(k=4, s=2, p=1)``, with 3x3 convolutions before and after.
Quality is the PSNR (images in ``[0, 1]``) on the 20% of digits not trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import nn
from .data import load_digits

__all__ = ["UpsamplingResult", "compare_upsampling", "psnr", "super_resolution_net"]


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in ``[0, 1]``: ``10 log10(1 / MSE)``.

    >>> psnr(np.zeros(4), np.full(4, 0.1))
    20.0
    """
    mse = float(np.mean((np.clip(prediction, 0, 1) - target) ** 2))
    return float("inf") if mse == 0 else round(float(10 * np.log10(1.0 / mse)), 10)


def super_resolution_net(features: int = 32) -> nn.Sequential:
    """Conv 3x3 -> ReLU -> ConvTranspose2d x2 -> ReLU -> Conv 3x3 (channels-first, 1 channel in and out)."""
    return nn.Sequential(
        [
            nn.Conv2d(1, features, 3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(features, features, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(features, 1, 3, padding=1),
        ]
    )


@dataclass
class UpsamplingResult:
    """Held-out PSNR per method (``nearest``, ``bilinear``, ``learned``), training losses, seconds, figures."""

    psnr: dict[str, float]
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)


def compare_upsampling(
    *, epochs: int = 40, seed: int = 0, out: str | Path | None = None, verbose: bool = True
) -> UpsamplingResult:
    """Train the learned upsampler and report held-out PSNR for ``nearest``, ``bilinear`` and ``learned``.

    With ``out``, writes ``upsampling.png``: low resolution, nearest, bilinear,
    learned and the original, side by side, for eight held-out digits.
    """
    nn.manual_seed(seed)
    images, _ = load_digits()
    high = images[:, None]  # (N, 1, 8, 8)
    low = high.reshape(-1, 1, 4, 2, 4, 2).mean(axis=(3, 5))  # 2x2 block averages
    order = np.random.default_rng(seed).permutation(len(high))
    split = int(0.8 * len(high))
    train, test = order[:split], order[split:]
    start = time.perf_counter()
    model = super_resolution_net()
    model.compile(optimizer=nn.Adam(lr=3e-3), loss="mse")
    history = model.fit(low[train], high[train], epochs=epochs, batch_size=32, verbose=int(verbose))
    predictions = {
        "nearest": nn.Upsample(scale_factor=2, mode="nearest")(low[test]),
        "bilinear": nn.Upsample(scale_factor=2, mode="bilinear")(low[test]),
        "learned": model.predict(low[test]),
    }
    result = UpsamplingResult(
        {name: psnr(p, high[test]) for name, p in predictions.items()},
        history["loss"],
        time.perf_counter() - start,
    )
    if out is not None:
        result.files = [_figure(Path(out), low[test][:8], predictions, high[test][:8], result.psnr)]
    return result


def _figure(
    out: Path, low: np.ndarray, predictions: dict[str, np.ndarray], high: np.ndarray, scores: dict[str, float]
) -> str:
    from .._plotting import pyplot

    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    columns = [("input 4x4", low), *((f"{k} {scores[k]:.1f} dB", v[: len(low)]) for k, v in predictions.items())]
    columns.append(("original 8x8", high))
    fig, axes = plt.subplots(len(low), len(columns), figsize=(1.6 * len(columns), 1.6 * len(low)))
    for col, (title, stack) in enumerate(columns):
        for row in range(len(low)):
            ax = axes[row, col]
            ax.imshow(np.clip(stack[row, 0], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
            if row == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("x2 upsampling of held-out digits (PSNR over the whole held-out set)", fontsize=9)
    path = out / "upsampling.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)
