"""Example data that ships with packages: scikit-learn's handwritten digits, and synthetic shapes.

``load_digits`` needs scikit-learn (the ``models`` extra); the 1,797 digits are
8x8 with 17 grey levels, bundled inside scikit-learn (no download).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.layers import Resize

__all__ = ["load_digits", "resize", "synthetic_shapes"]


def load_digits(size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as float32 images in ``[0, 1]``, shape ``(1797, size, size)``, and their labels.

    ``size`` other than 8 resizes bilinearly (half-pixel centres), e.g. 28 for
    seed 000's MNIST-shaped generator.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError("the digits come with scikit-learn: pip install 'tconv[models]' (or scikit-learn)") from error
    bunch: Any = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    if size != 8:
        images = resize(images, size)
    return images, bunch.target.astype(np.int64)


def resize(images: np.ndarray, size: int, mode: str = "bilinear") -> np.ndarray:
    """Resize ``(N, H, W)`` images to ``size x size`` with :class:`tconv.nn.Upsample`'s interpolation."""
    layer = Resize(size=size, mode=mode)
    return layer(images[:, None].astype(np.float32))[:, 0]


def synthetic_shapes(count: int, size: int = 32, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy grey images with 1-3 filled discs, squares and triangles, and their masks, for segmentation.

    Returns ``images`` (``count, 1, size, size``, float32) and ``masks`` (same
    shape, 0 or 1). The background carries a random gradient and noise, and
    objects have random contrast, so a threshold alone does not segment them.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((count, 1, size, size), np.float32)
    masks = np.zeros((count, 1, size, size), np.float32)
    for i in range(count):
        mask = np.zeros((size, size), bool)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(size * 0.2, size * 0.8, 2)
            r = rng.uniform(size * 0.08, size * 0.2)
            kind = rng.integers(3)
            if kind == 0:
                shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            elif kind == 1:
                shape = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
            else:
                shape = (yy - cy <= r) & (yy - cy >= -r) & (np.abs(xx - cx) <= (yy - cy + r) / 2)
            mask |= shape
        gradient = rng.uniform(-0.3, 0.3) * (xx / size) + rng.uniform(-0.3, 0.3) * (yy / size)
        contrast = rng.uniform(0.35, 0.8) * rng.choice([-1.0, 1.0])
        image = 0.5 + gradient + contrast * mask + rng.normal(0, 0.12, (size, size))
        images[i, 0] = image
        masks[i, 0] = mask
    return images, masks
