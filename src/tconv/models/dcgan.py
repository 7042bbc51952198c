"""Seed 000's DCGAN generator, exactly as written there, its discriminator, and a training run on digits.

The generator (Keras-flavoured, channels-last) is ``Dense(7*7*256) -> BN ->
LeakyReLU -> Reshape(7, 7, 256) -> Conv2DTranspose(128, 5, s1, same) -> BN ->
LeakyReLU -> Conv2DTranspose(64, 5, s2, same) -> BN -> LeakyReLU ->
Conv2DTranspose(1, 5, s2, same, tanh)``; the seed's shape assertions are run
as the model is built, and Keras counts 2,330,944 parameters for it.

Examples
--------
>>> from tconv.models import dcgan_generator
>>> model = dcgan_generator()
>>> model.output_shape, model.count_params()
((None, 28, 28, 1), 2330944)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import nn
from .data import load_digits

__all__ = ["DCGANResult", "dcgan_discriminator", "dcgan_generator", "train_dcgan"]


class ShapeAssertionError(AssertionError):
    """The seed's ``assert model.output_shape == ...`` failed."""


def _expect(model: nn.Sequential, shape: tuple[int | None, ...]) -> None:
    if model.output_shape != shape:  # the seed's own assertion, on the model we build, not on user input
        raise ShapeAssertionError(f"expected output_shape {shape}, got {model.output_shape}")


def dcgan_generator(noise_dim: int = 100, width: int = 1) -> nn.Sequential:
    """Seed 000's generator; ``width`` divides the filter counts (1 is the seed's model, exactly).

    A smaller ``width`` (2, 4) keeps every shape and layer and trains faster on a
    2-core machine.
    """
    if width not in (1, 2, 4, 8):
        raise ValueError(f"width must be 1, 2, 4 or 8; received {width!r}")
    c1, c2, c3 = 256 // width, 128 // width, 64 // width
    model = nn.Sequential()
    model.add(nn.Dense(7 * 7 * c1, use_bias=False, input_shape=(noise_dim,)))
    model.add(nn.BatchNormalization())
    model.add(nn.keras.LeakyReLU())
    model.add(nn.Reshape((7, 7, c1)))
    _expect(model, (None, 7, 7, c1))
    model.add(nn.Conv2DTranspose(c2, (5, 5), strides=(1, 1), padding="same", use_bias=False))
    _expect(model, (None, 7, 7, c2))
    model.add(nn.BatchNormalization())
    model.add(nn.keras.LeakyReLU())
    model.add(nn.Conv2DTranspose(c3, (5, 5), strides=(2, 2), padding="same", use_bias=False))
    _expect(model, (None, 14, 14, c3))
    model.add(nn.BatchNormalization())
    model.add(nn.keras.LeakyReLU())
    model.add(nn.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"))
    _expect(model, (None, 28, 28, 1))
    return model


def dcgan_discriminator(width: int = 1) -> nn.Sequential:
    """The discriminator that goes with it (TensorFlow's DCGAN tutorial): two strided 5x5 convolutions with
    LeakyReLU and dropout 0.3, then one logit."""
    model = nn.Sequential()
    model.add(nn.Conv2D(64 // width, (5, 5), strides=(2, 2), padding="same", input_shape=(28, 28, 1)))
    model.add(nn.keras.LeakyReLU())
    model.add(nn.keras.Dropout(0.3))
    model.add(nn.Conv2D(128 // width, (5, 5), strides=(2, 2), padding="same"))
    model.add(nn.keras.LeakyReLU())
    model.add(nn.keras.Dropout(0.3))
    model.add(nn.keras.Flatten())
    model.add(nn.Dense(1))
    return model


@dataclass
class DCGANResult:
    """The trained networks, per-epoch mean losses and discriminator scores, seconds, and figures written."""

    generator: nn.Sequential
    discriminator: nn.Sequential
    generator_loss: list[float] = field(default_factory=list)
    discriminator_loss: list[float] = field(default_factory=list)
    real_score: list[float] = field(default_factory=list)
    fake_score: list[float] = field(default_factory=list)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)


def train_dcgan(
    *,
    epochs: int = 30,
    batch_size: int = 64,
    width: int = 4,
    seed: int = 0,
    out: str | Path | None = None,
    verbose: bool = True,
    limit: int | None = None,
) -> DCGANResult:
    """Train the generator against the discriminator on scikit-learn's digits, resized to 28x28 in ``[-1, 1]``.

    The loop is written by hand with tconv.nn's backward/step API: binary
    cross-entropy on logits, Adam (learning rate 2e-4, beta1 0.5, as in the
    DCGAN paper) for both networks. ``width=4`` (filters divided by 4, every
    layer and shape kept) reaches digit-like samples in about 3 minutes on 2
    cores; ``width=1`` is the seed's exact model (about 35 s per epoch there).
    With ``out``, writes ``dcgan_digits.png``
    (a grid of 16 generated digits) and ``dcgan_losses.png``.
    """
    nn.manual_seed(seed)
    images, _ = load_digits(28)
    if limit is not None:
        images = images[:limit]
    real_all = (images[..., None] * 2 - 1).astype(np.float32)
    generator, discriminator = dcgan_generator(width=width), dcgan_discriminator(width=width)
    g_opt = nn.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = nn.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    fixed_noise = rng.standard_normal((16, 100)).astype(np.float32)
    result = DCGANResult(generator, discriminator)
    start = time.perf_counter()
    steps = len(real_all) // batch_size
    from ..nn.training import progress

    for epoch in range(epochs):
        generator.train()
        discriminator.train()
        order = rng.permutation(len(real_all))
        bar = progress(steps, f"dcgan epoch {epoch + 1}/{epochs}", enabled=verbose)
        sums = np.zeros(4)
        for step in range(steps):
            real = real_all[order[step * batch_size : (step + 1) * batch_size]]
            n = len(real)
            ones, zeros = np.ones((n, 1), np.float32), np.zeros((n, 1), np.float32)
            fake = generator(rng.standard_normal((n, 100)).astype(np.float32))
            # discriminator: real -> 1, fake -> 0 (the fake is a constant here)
            discriminator.zero_grad()
            real_logits = discriminator(real)
            d_loss = bce(real_logits, ones)
            discriminator.backward(bce.backward(), input_grad=False)  # the images' gradient: of no use here
            fake_logits = discriminator(fake)
            d_loss += bce(fake_logits, zeros)
            discriminator.backward(bce.backward(), input_grad=False)
            d_opt.step()
            # generator: make the discriminator say 1; the gradient flows through D into G
            discriminator.zero_grad()
            generator.zero_grad()
            g_loss = bce(discriminator(fake), ones)
            generator.backward(discriminator.backward(bce.backward()), input_grad=False)
            g_opt.step()
            sums += (g_loss, d_loss, float(np.mean(real_logits > 0)), float(np.mean(fake_logits > 0)))
            if bar is not None:
                bar.set_postfix_str(f"G {sums[0] / (step + 1):.3f} D {sums[1] / (step + 1):.3f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        means = sums / max(1, steps)
        result.generator_loss.append(float(means[0]))
        result.discriminator_loss.append(float(means[1]))
        result.real_score.append(float(means[2]))
        result.fake_score.append(float(means[3]))
    result.seconds = time.perf_counter() - start
    if out is not None:
        generator.eval()
        samples = generator(fixed_noise)[..., 0]
        result.files = _write_figures(Path(out), samples, result)
    return result


def _write_figures(out: Path, samples: np.ndarray, result: DCGANResult) -> list[str]:
    from .._plotting import pyplot

    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(4, 4, figsize=(4, 4))
    for ax, image in zip(axes.flat, samples):
        ax.imshow(image, cmap="gray", vmin=-1, vmax=1)
        ax.axis("off")
    fig.suptitle("DCGAN (seed 000) on digits, tconv")
    grid = out / "dcgan_digits.png"
    fig.savefig(grid, dpi=100, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    epochs = np.arange(1, len(result.generator_loss) + 1)
    ax.plot(epochs, result.generator_loss, marker="o", label="generator")
    ax.plot(epochs, result.discriminator_loss, marker="o", label="discriminator")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean BCE loss")
    ax.legend()
    fig.tight_layout()
    losses = out / "dcgan_losses.png"
    fig.savefig(losses, dpi=100)
    plt.close(fig)
    return [str(grid), str(losses)]
