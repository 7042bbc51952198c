"""Learned (ConvTranspose2d) versus nearest and bilinear x2 upsampling of held-out digits, by PSNR.

pip install -e ".[models]"
python examples/learned_upsampling.py --out upsampling
"""

import argparse

from tconv.models import compare_upsampling

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--out", default="upsampling")
args = parser.parse_args()
result = compare_upsampling(epochs=args.epochs, out=args.out)
for name, value in result.psnr.items():
    print(f"{name:<9} {value:6.2f} dB")
print("wrote", ", ".join(result.files))
