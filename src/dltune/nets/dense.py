"""The dense network as a torch module, built from one :class:`~dltune.config.Config`.

Dense -> Activation -> Dropout per hidden layer, then an output layer fitted to the task: one
output per class for classification (the loss decides softmax or sigmoid), one for regression.

Randomness is drawn from generators seeded per trial, never from torch's global generator, so
that a configuration trained with a given seed gives the same result wherever it runs, alone or
beside other trials. The initial weights and dropout masks are defined here once and used by
every engine.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..config import Config

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


def dropout_scale(
    shape: torch.Size | tuple[int, ...],
    rate: float,
    generator: torch.Generator | None,
    device: torch.device | str,
) -> torch.Tensor:
    """Inverted dropout's multiplier: 0 for dropped units, 1 / (1 - rate) for kept ones.

    One definition for every engine, so that a member of a population draws exactly the mask
    its configuration draws when trained alone.
    """
    keep = torch.rand(shape, generator=generator, device=device) >= rate
    return keep.to(torch.float32) * (1.0 / (1.0 - rate))


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
        return x * dropout_scale(x.shape, self.rate, self.generator, x.device)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def initial_weights(
    widths: tuple[int, ...], n_features: int, n_outputs: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight (out, in), bias (out,)) of every layer, hidden then output, drawn from `seed`.

    nn.Linear's own initialization: uniform in +-1/sqrt(fan_in) for weights and biases (what
    kaiming_uniform_(a=sqrt(5)) reduces to), drawn on the CPU in layer order from one generator,
    so that a seed gives the same network on every device and in every engine.
    """
    generator = torch.Generator().manual_seed(seed)
    layers = []
    fan_in = n_features
    for width in (*widths, n_outputs):
        bound = 1.0 / math.sqrt(fan_in)
        weight = torch.empty(width, fan_in).uniform_(-bound, bound, generator=generator)
        bias = torch.empty(width).uniform_(-bound, bound, generator=generator)
        layers.append((weight, bias))
        fan_in = width
    return layers


def dropout_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """The generator of a trial's dropout masks, on the training device."""
    return torch.Generator(device=device).manual_seed(seed + 1)


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
        self.dropout_generator = dropout_generator(seed, device)
        layers: list[nn.Module] = []
        width_in = n_features
        for width in config.units:
            layers += [nn.Linear(width_in, width), activation_module(config.activation)]
            if config.dropout > 0:
                layers.append(SeededDropout(config.dropout, self.dropout_generator))
            width_in = width
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width_in, n_outputs)
        weights = initial_weights(config.units, n_features, n_outputs, seed)
        with torch.no_grad():
            for linear, (weight, bias) in zip(self.linears(), weights, strict=True):
                linear.weight.copy_(weight)
                linear.bias.copy_(bias)
        self.to(device)

    def linears(self) -> list[nn.Linear]:
        """The Dense layers in order, the output layer last."""
        return [m for m in self.hidden if isinstance(m, nn.Linear)] + [self.output]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(x))


def probabilities(outputs: torch.Tensor, loss: str) -> torch.Tensor:
    """Class probabilities from a classifier's raw outputs, as its loss reads them."""
    if loss == "binary_crossentropy":
        p = torch.sigmoid(outputs)
        return p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return F.softmax(outputs, dim=-1)
