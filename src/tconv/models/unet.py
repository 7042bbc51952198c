"""A small U-Net: transposed-convolution upsampling with skip connections, segmenting synthetic shapes.

Encoder: two 3x3 convolutions per level, 2x2 max pooling; decoder: a 2x2
stride-2 ``ConvTranspose2d`` (the U-Net upsampler), concatenation with the
encoder's features at that scale, two 3x3 convolutions; a 1x1 head gives one
logit per pixel. The forward and backward passes are written out, which is how
a model with skip connections is built from tconv.nn's modules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import nn
from .data import synthetic_shapes

__all__ = ["UNet", "UNetResult", "iou", "train_unet"]


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU()]
    )


class UNet(nn.Module):
    """Two-level U-Net, channels-first; ``width`` is the first level's channel count.

    >>> import numpy as np
    >>> UNet(4)(np.zeros((2, 1, 16, 16))).shape
    (2, 1, 16, 16)
    """

    def __init__(self, width: int = 8, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        w = width
        self.enc1 = _double_conv(in_channels, w)
        self.pool1 = nn.MaxPool2d(2)
        self.enc2 = _double_conv(w, 2 * w)
        self.pool2 = nn.MaxPool2d(2)
        self.middle = _double_conv(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _double_conv(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _double_conv(2 * w, w)
        self.head = nn.Conv2d(w, out_channels, 1)
        self.width = w

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"UNet expects (N, C, H, W) with H and W divisible by 4; received shape {x.shape}")
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        m = self.middle(self.pool2(e2))
        d2 = self.dec2(np.concatenate([self.up2(m), e2], axis=1))
        d1 = self.dec1(np.concatenate([self.up1(d2), e1], axis=1))
        return self.head(d1)

    def _backward(self, grad: np.ndarray) -> np.ndarray | None:
        w = self.width
        g = self.dec1.backward(self.head.backward(grad))
        g_up1, g_e1 = g[:, :w], g[:, w:]
        g = self.dec2.backward(self.up1.backward(g_up1))
        g_up2, g_e2 = g[:, : 2 * w], g[:, 2 * w :]
        g = self.pool2.backward(self.middle.backward(self.up2.backward(g_up2)))
        g = self.pool1.backward(self.enc2.backward(g + g_e2))  # e2 feeds the pool and the skip
        if not self.needs_input_grad:  # the images' gradient: not wanted (Module.backward's input_grad)
            return self.enc1.backward(g + g_e1, input_grad=False)
        return self.enc1.backward(g + g_e1)


def iou(logits: np.ndarray, masks: np.ndarray) -> float:
    """Intersection over union of ``logits > 0`` with the true masks, over the whole set.

    >>> iou(np.array([1.0, 1.0, -1.0]), np.array([1.0, 0.0, 0.0]))
    0.5
    """
    predicted, truth = logits > 0, masks > 0.5
    union = np.logical_or(predicted, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, truth).sum() / union)


@dataclass
class UNetResult:
    """The trained U-Net, held-out IoU and the threshold baseline's, per-epoch losses, seconds, figures."""

    model: UNet
    iou: float
    baseline_iou: float
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    logits: np.ndarray | None = None  # held-out predictions
    masks: np.ndarray | None = None  # held-out truth


def train_unet(
    *,
    epochs: int = 15,
    count: int = 600,
    size: int = 32,
    width: int = 8,
    batch_size: int = 16,
    seed: int = 0,
    out: str | Path | None = None,
    verbose: bool = True,
) -> UNetResult:
    """Train on ``count`` synthetic images, report IoU on 200 held-out ones.

    The baseline is the best global threshold of the raw image, chosen on the
    training images (objects may be darker or brighter than the background,
    so it is poor). With ``out``, writes ``unet.png`` (image, truth, prediction).
    """
    nn.manual_seed(seed)
    images, masks = synthetic_shapes(count + 200, size, seed=seed)
    x_train, y_train, x_test, y_test = images[:count], masks[:count], images[count:], masks[count:]
    start = time.perf_counter()
    model = UNet(width)
    model.compile(optimizer=nn.Adam(lr=3e-3), loss=nn.BCEWithLogitsLoss())
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=int(verbose))
    logits = model.predict(x_test)
    thresholds = np.linspace(images.min(), images.max(), 41)
    best = max(thresholds, key=lambda t: iou(x_train - t, y_train))
    result = UNetResult(
        model, iou(logits, y_test), iou(x_test - best, y_test), history["loss"], time.perf_counter() - start
    )
    result.logits = logits
    result.masks = y_test
    if out is not None:
        result.files = [_figure(Path(out), x_test[:6], y_test[:6], logits[:6], result.iou)]
    return result


def _figure(out: Path, images: np.ndarray, masks: np.ndarray, logits: np.ndarray, score: float) -> str:
    from .._plotting import pyplot

    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, len(images), figsize=(1.6 * len(images), 5))
    for col in range(len(images)):
        for row, (title, image) in enumerate(
            (("image", images[col, 0]), ("truth", masks[col, 0]), ("U-Net", logits[col, 0] > 0))
        ):
            axes[row, col].imshow(image, cmap="gray")
            axes[row, col].axis("off")
            if col == 0:
                axes[row, col].set_title(title, fontsize=8, loc="left")
    fig.suptitle(f"U-Net with ConvTranspose2d upsampling, held-out IoU {score:.3f}", fontsize=9)
    path = out / "unet.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)
