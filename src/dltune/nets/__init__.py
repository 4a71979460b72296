"""The networks a configuration describes, as torch modules: the dense network, the
convolutional one for signals and images, and how a trainer builds either (`BuiltinNetworks`).
Imports nothing of dltune but config and vocabulary; no Optuna, storage or command line."""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from ..config import Config
from .conv import ConvNet
from .dense import DenseNet

__all__ = ["BuiltinNetworks", "ConvNet", "DenseNet", "NetworkFactory"]


class NetworkFactory(Protocol):
    """What a trainer builds its models with: a configuration and seed in, a module out that
    maps a batch of flat examples (n, n_features) to outputs (n, n_outputs)."""

    def __call__(
        self, config: Config, n_outputs: int, *, seed: int, device: torch.device | str
    ) -> nn.Module: ...


class BuiltinNetworks:
    """dltune's own families: convolutional where the configuration has conv_layers, else dense."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = tuple(input_shape)

    def __call__(
        self, config: Config, n_outputs: int, *, seed: int, device: torch.device | str
    ) -> nn.Module:
        if config.convolutional:
            return ConvNet(config, self.input_shape, n_outputs, seed=seed, device=device)
        n_features = math.prod(self.input_shape)  # the dense network sees flat examples
        return DenseNet(config, n_features, n_outputs, seed=seed, device=device)
