"""The seeds' models built from :mod:`tconv.nn`, and the demos that train them on NumPy.

- :func:`dcgan_generator` / :func:`dcgan_discriminator` / :func:`train_dcgan`: seed 000's DCGAN on digits;
- :func:`inception_block`, :func:`naive_inception_block`, :func:`bottleneck_block`,
  :func:`plain_residual_block`: seed 002's blocks and their parameter counts;
- :func:`compare_upsampling`: learned (``ConvTranspose2d``) versus nearest and bilinear upsampling, PSNR;
- :class:`UNet` / :func:`train_unet`: encoder-decoder segmentation of synthetic shapes, IoU.

The digits come from scikit-learn (``pip install 'tconv[models]'``).
"""

from .blocks import bottleneck_block, inception_block, naive_inception_block, plain_residual_block
from .data import load_digits, synthetic_shapes
from .dcgan import DCGANResult, dcgan_discriminator, dcgan_generator, train_dcgan
from .unet import UNet, UNetResult, iou, train_unet
from .upsampling import UpsamplingResult, compare_upsampling, psnr, super_resolution_net

__all__ = [
    "DCGANResult",
    "UNet",
    "UNetResult",
    "UpsamplingResult",
    "bottleneck_block",
    "compare_upsampling",
    "dcgan_discriminator",
    "dcgan_generator",
    "inception_block",
    "iou",
    "load_digits",
    "naive_inception_block",
    "plain_residual_block",
    "psnr",
    "super_resolution_net",
    "synthetic_shapes",
    "train_dcgan",
    "train_unet",
]
