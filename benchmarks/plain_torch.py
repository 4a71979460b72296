"""The plain PyTorch pieces of the benchmarks' Optuna arms (space.py, multiobjective.py,
tasks.py): the default space's activations and optimizers as torch classes, the network a
trial suggests, the classification losses and accuracy, written the way Optuna's own PyTorch
example (optuna-examples/pytorch/pytorch_simple.py) writes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import default_space as space

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def classification_splits(data: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The dataset's float32 features and int64 labels per split, as tensors."""
    x = {
        s: torch.from_numpy(np.asarray(getattr(data, f"x_{s}"), dtype=np.float32))
        for s in space.SPLITS
    }
    y = {
        s: torch.from_numpy(np.asarray(getattr(data, f"y_{s}"), dtype=np.int64))
        for s in space.SPLITS
    }
    return x, y


def dense_network(trial: Any, n_features: int, n_outputs: int) -> nn.Module:
    """As in pytorch_simple.py, but with the default space's one width and one dropout rate for
    all hidden layers (the example draws them per layer). Suggested in this order: layers,
    units, activation, dropout (the sampler's draws depend on it)."""
    n_layers = trial.suggest_int("layers", *space.LAYERS)
    units = trial.suggest_int("units", *space.UNITS, log=True)
    activation = trial.suggest_categorical("activation", space.ACTIVATIONS)
    dropout = trial.suggest_float("dropout", *space.DROPOUT)
    layers: list[nn.Module] = []
    width = n_features
    for _ in range(n_layers):
        layers += [nn.Linear(width, units), ACTIVATIONS[activation](), nn.Dropout(dropout)]
        width = units
    layers.append(nn.Linear(width, n_outputs))  # logits; the loss applies softmax
    return nn.Sequential(*layers)


def classification_loss(
    name: str, logits: torch.Tensor, target: torch.Tensor, n_classes: int
) -> torch.Tensor:
    if name == "categorical_crossentropy":
        return F.cross_entropy(logits, target)
    # As dltune (engine/losses.py) and Keras compute it: the mean over batch and classes of the
    # squared difference between softmax probabilities and one-hot targets.
    return F.mse_loss(logits.softmax(dim=1), F.one_hot(target, n_classes).float())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    return float((predicted == y).float().mean())
