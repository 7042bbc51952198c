"""Port a PyTorch decoder to tconv.nn through its state_dict, and check both give the same output.

pip install -e . torch==2.13.0
python examples/port_from_pytorch.py
"""

import numpy as np
import torch

from tconv import nn

torch.manual_seed(0)
reference = torch.nn.Sequential(
    torch.nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1, bias=False),
    torch.nn.BatchNorm2d(32),
    torch.nn.ReLU(),
    torch.nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1),
    torch.nn.Tanh(),
).eval()
model = nn.Sequential(
    [
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1),
        nn.Tanh(),
    ]
).eval()
model.load_state_dict(reference.state_dict())
x = np.random.default_rng(0).standard_normal((2, 64, 8, 8)).astype(np.float32)
difference = np.abs(model(x) - reference(torch.from_numpy(x)).detach().numpy()).max()
model.summary()  # prints the table, as Keras and torchinfo do
print(f"largest difference from PyTorch: {difference:.2e}")
