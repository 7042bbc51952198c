"""A small U-Net (ConvTranspose2d upsampling, skip connections) segmenting synthetic shapes, with IoU.

pip install -e ".[models]"
python examples/unet_shapes.py --out unet
"""

import argparse

from tconv.models import train_unet

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--out", default="unet")
args = parser.parse_args()
result = train_unet(epochs=args.epochs, out=args.out)
print(f"held-out IoU {result.iou:.3f} (best global threshold {result.baseline_iou:.3f})")
print("wrote", ", ".join(result.files))
