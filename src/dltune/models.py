"""The dense network as a torch module, built from one :class:`~dltune.config.Config`.

Dense -> Activation -> Dropout per hidden layer, then an output layer fitted to the task: one
output per class for classification (the loss decides softmax or sigmoid), one for regression.

Randomness is drawn from a generator seeded per trial, never from torch's global generator, so
that a configuration trained with a given seed gives the same result wherever it runs, alone or
beside other trials.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import Config

_ACTIVATIONS: dict[str, nn.Module] = {
    "relu": nn.ReLU(),
    "sigmoid": nn.Sigmoid(),
    "tanh": nn.Tanh(),
    "elu": nn.ELU(),
    "selu": nn.SELU(),
    "gelu": nn.GELU(),
    "leaky_relu": nn.LeakyReLU(0.01),
    "softplus": nn.Softplus(),
    "swish": nn.SiLU(),
    "linear": nn.Identity(),
}


def activation_module(name: str) -> nn.Module:
    """The torch module for a canonical activation name (see dltune.vocabulary)."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation {name!r} has no torch module") from None


class SeededDropout(nn.Module):
    """Inverted dropout whose masks come from a generator owned by the trial.

    nn.Dropout draws from torch's global generator, which other trials (or the user) also draw
    from; a generator of its own makes a trial's masks depend on its seed alone.
    """

    def __init__(self, rate: float, generator: torch.Generator | None) -> None:
        super().__init__()
        self.rate = float(rate)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.rate
        return x * keep / (1.0 - self.rate)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def init_linear_(layer: nn.Linear, generator: torch.Generator) -> None:
    """nn.Linear's own initialization (uniform in +-1/sqrt(fan_in)), drawn from `generator`.

    torch's kaiming_uniform_(a=sqrt(5)) bound reduces to 1/sqrt(fan_in) for weights and biases;
    drawing it ourselves lets the population engine reproduce it member by member.
    """
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


class DenseNet(nn.Module):
    """A multilayer perceptron for one configuration."""

    def __init__(
        self,
        config: Config,
        n_features: int,
        n_outputs: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.config = config
        # Weights are drawn on the CPU so that a seed gives the same network on every device.
        init_gen = torch.Generator().manual_seed(seed)
        # Dropout masks are drawn on the training device; the generator lives there.
        self.dropout_generator = torch.Generator(device=device).manual_seed(seed + 1)
        layers: list[nn.Module] = []
        width_in = n_features
        for width in config.units:
            linear = nn.Linear(width_in, width)
            init_linear_(linear, init_gen)
            layers += [linear, activation_module(config.activation)]
            if config.dropout > 0:
                layers.append(SeededDropout(config.dropout, self.dropout_generator))
            width_in = width
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width_in, n_outputs)
        init_linear_(self.output, init_gen)
        self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(x))


def probabilities(outputs: torch.Tensor, loss: str) -> torch.Tensor:
    """Class probabilities from a classifier's raw outputs, as its loss reads them."""
    if loss == "binary_crossentropy":
        p = torch.sigmoid(outputs)
        return p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return F.softmax(outputs, dim=-1)
