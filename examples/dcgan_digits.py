"""Train seed 000's DCGAN generator on scikit-learn's digits with tconv.nn (about 3 minutes on 2 cores).

    pip install -e ".[models]"
    python examples/dcgan_digits.py --epochs 30 --out dcgan

Writes dcgan/dcgan_digits.png (16 generated digits) and dcgan/dcgan_losses.png.
"""

import argparse

from tconv.models import train_dcgan

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--width", type=int, default=4, help="divide the filter counts (1 = the seed's exact model)")
parser.add_argument("--out", default="dcgan")
args = parser.parse_args()
result = train_dcgan(epochs=args.epochs, width=args.width, out=args.out)
print(f"generator: {result.generator.count_params():,} parameters")
for epoch, (g, d) in enumerate(zip(result.generator_loss, result.discriminator_loss), 1):
    print(f"epoch {epoch}: generator loss {g:.3f}, discriminator loss {d:.3f}")
print("wrote", ", ".join(result.files))
