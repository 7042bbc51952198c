"""``tconv bench --models``: one training step (forward, backward, Adam step; float32) of whole networks built
with :mod:`tconv.nn` against the same networks in ``torch.nn`` (same layers, same shapes).

* ``dcgan-generator``: seed 000's generator (:func:`tconv.models.dcgan_generator`, Dense -> BN -> LeakyReLU ->
  three transposed convolutions), noise ``(64, 100)`` -> ``(64, 28, 28, 1)``;
* ``dcgan-discriminator``: its discriminator (two 5x5 stride-2 convolutions, dropout, Dense), ``(64, 28, 28, 1)``;
* ``unet``: :class:`tconv.models.UNet` of width 16 on ``(8, 1, 64, 64)``.

tconv's models are Keras-flavoured and channels-last where the seed's are (the DCGAN); PyTorch's are written
channels-first, as a PyTorch user writes them. The gradient fed back is a constant (the step's loss is the
output's mean), so both sides do the same work per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MODELS", "ModelCase", "prepare"]


@dataclass(frozen=True)
class ModelCase:
    name: str
    batch: int
    size: int = 0  # the U-Net's image side
    width: int = 1  # the DCGAN's divisor of the filter counts, the U-Net's first width


MODELS = [
    ModelCase("dcgan-generator", 64),
    ModelCase("dcgan-discriminator", 64),
    ModelCase("unet", 8, size=64, width=16),
]


def _input(case: ModelCase) -> np.ndarray:
    rng = np.random.default_rng(0)
    if case.name == "dcgan-generator":
        return rng.standard_normal((case.batch, 100), dtype=np.float32)
    if case.name == "dcgan-discriminator":
        return rng.standard_normal((case.batch, 28, 28, 1), dtype=np.float32)
    return rng.standard_normal((case.batch, 1, case.size, case.size), dtype=np.float32)


def _tconv_step(case: ModelCase) -> Any:
    from .. import nn
    from ..models import UNet, dcgan_discriminator, dcgan_generator

    nn.manual_seed(0)
    model: Any
    if case.name == "dcgan-generator":
        model = dcgan_generator(width=case.width)
    elif case.name == "dcgan-discriminator":
        model = dcgan_discriminator(width=case.width)
    else:
        model = UNet(case.width)
    x = _input(case)
    model.train()
    out = model(x)  # builds any lazily built parameters
    grad = np.full(out.shape, 1.0 / out.size, dtype=np.float32)
    optimizer = nn.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        model.zero_grad()
        model(x)
        model.backward(grad, input_grad=False)  # as PyTorch's step: its input does not require grad
        optimizer.step()

    return step


def _torch_models(case: ModelCase) -> Any:
    import torch
    from torch import nn

    class Reshape(nn.Module):
        def __init__(self, *shape: int) -> None:
            super().__init__()
            self.shape = shape

        def forward(self, x: Any) -> Any:
            return x.reshape(x.shape[0], *self.shape)

    w = case.width
    if case.name == "dcgan-generator":
        c1, c2, c3 = 256 // w, 128 // w, 64 // w
        return nn.Sequential(
            nn.Linear(100, 7 * 7 * c1, bias=False),
            nn.BatchNorm1d(7 * 7 * c1),
            nn.LeakyReLU(0.3),
            Reshape(c1, 7, 7),
            nn.ConvTranspose2d(c1, c2, 5, stride=1, padding=2, bias=False),
            nn.BatchNorm2d(c2),
            nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(c2, c3, 5, stride=2, padding=2, output_padding=1, bias=False),
            nn.BatchNorm2d(c3),
            nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(c3, 1, 5, stride=2, padding=2, output_padding=1, bias=False),
            nn.Tanh(),
        )
    if case.name == "dcgan-discriminator":
        return nn.Sequential(
            nn.Conv2d(1, 64 // w, 5, stride=2, padding=2),
            nn.LeakyReLU(0.3),
            nn.Dropout(0.3),
            nn.Conv2d(64 // w, 128 // w, 5, stride=2, padding=2),
            nn.LeakyReLU(0.3),
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(128 // w * 7 * 7, 1),
        )

    def double(c_in: int, c_out: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU()
        )

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc1, self.enc2, self.middle = double(1, w), double(w, 2 * w), double(2 * w, 4 * w)
            self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2), double(4 * w, 2 * w)
            self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2), double(2 * w, w)
            self.head = nn.Conv2d(w, 1, 1)

        def forward(self, x: Any) -> Any:
            e1 = self.enc1(x)
            e2 = self.enc2(torch.nn.functional.max_pool2d(e1, 2))
            m = self.middle(torch.nn.functional.max_pool2d(e2, 2))
            d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
            return self.head(self.dec1(torch.cat([self.up1(d2), e1], 1)))

    return UNet()


def _torch_step(case: ModelCase) -> Any:
    import torch

    torch.manual_seed(0)
    model = _torch_models(case)
    x = _input(case)
    if case.name == "dcgan-discriminator":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    xt = torch.from_numpy(x)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        model(xt).mean().backward()
        optimizer.step()

    return step


def prepare(framework: str, case: ModelCase) -> Any:
    """A function running one training step of ``case`` in ``framework`` (``tconv`` or ``torch``), or ``None``."""
    if framework == "tconv":
        return _tconv_step(case)
    if framework == "torch":
        return _torch_step(case)
    return None
