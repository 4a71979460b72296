"""Your own PyTorch model for dltune: a small convolutional network for scikit-learn's 8x8 digits,
its hyperparameters asked for as in Keras Tuner.

    dltune run examples/my_model.yaml --model examples/my_model.py:build

or from Python:

    import dltune
    from my_model import build
    result = dltune.tune(build, data="digits", space="examples/my_model.yaml")

build(hp) returns a torch.nn.Module that maps a batch of examples to one output per class
(logits; the space's loss decides softmax or sigmoid). dltune hands the module each batch in the
data's own shape: (n, 1, 8, 8) for digits as images, (n, 64) for flat rows; the module reshapes
to (n, 1, 8, 8) itself, so it works on either.
"""

from __future__ import annotations

import torch
from torch import nn

N_CLASSES = 10  # the digits 0-9


class DigitsNet(nn.Module):
    """Convolutions over the 8x8 image, then a Dense head."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, 8, 8)  # (n, 64) or (n, 1, 8, 8) -> (n, 1, 8, 8); any n (ONNX)
        return self.head(self.features(x))


def build(hp) -> nn.Module:
    filters = hp.Int("filters", 8, 32, step=8, default=16)
    blocks: list[nn.Module] = [nn.Conv2d(1, filters, 3, padding=1), nn.ReLU()]
    size = 8
    if hp.Boolean("pool"):  # a conditional parameter: the second block exists only when pooling
        blocks.append(nn.MaxPool2d(2))
        size = 4
        if hp.Boolean("second_block"):
            blocks += [nn.Conv2d(filters, 2 * filters, 3, padding=1), nn.ReLU()]
            filters *= 2
    units = hp.Choice("units", [32, 64, 128], default=64)
    head = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(hp.Float("dropout", 0.0, 0.5, default=0.1)),
        nn.Linear(filters * size * size, units),
        nn.ReLU(),
        nn.Linear(units, N_CLASSES),
    )
    return DigitsNet(nn.Sequential(*blocks), head)
