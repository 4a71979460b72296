"""The convolutional network, in the vocabulary of Keras code.

Per block: Conv1D or Conv2D (the block's own kernel size, padding "same", stride 1) ->
BatchNormalization (optional) -> Activation -> MaxPooling (optional, size and stride `pool`);
then GlobalAveragePooling or Flatten; then the Dense layers of the dense network (its dropout
included) and the output layer, or the output layer alone where `layers` is 0 (the fully
convolutional network of Wang et al. 2017: three blocks, global average pooling, the output).
Signals (C, L) get Conv1D, images (C, H, W) Conv2D. An even kernel is padded "same" as Keras
pads it: one more step after than before.

The weights are drawn from the trial's seed, as the dense network's are: the Dense part exactly
as a DenseNet of the same seed draws it, the convolutions from a generator of their own, in
block order, with torch's own initialization (uniform in +-1/sqrt(fan_in)).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..config import Config, conv_shape_problem, pooled_size
from .dense import DenseNet, activation_module

# The convolutions' generator is seeded apart from the Dense part's (seed) and dropout's (seed+1).
_CONV_SEED_OFFSET = 2


def same_conv(two_d: bool, channels: int, filters: int, kernel: int, bias: bool) -> nn.Module:
    """A convolution padded "same": torch's own for an odd kernel, EvenSameConv for an even one."""
    if kernel % 2:
        conv = nn.Conv2d if two_d else nn.Conv1d
        return conv(channels, filters, kernel, padding="same", bias=bias)
    even = EvenSameConv2d if two_d else EvenSameConv1d
    return even(channels, filters, kernel, bias=bias)


# Padding "same" for an even kernel, done before the convolution: one step more after than
# before on each axis, as Keras (and torch's padding="same") pad. torch would make the same
# padded copy of the input itself, with a warning; here without one. The state dict is the
# torch convolution's (weight, bias), so models saved before load as they were.


def _same_pads(kernel: int, axes: int) -> tuple[int, ...]:
    before, after = (kernel - 1) // 2, kernel // 2
    return (before, after) * axes  # F.pad's order: last axis first, each (before, after)


class EvenSameConv1d(nn.Conv1d):
    def __init__(self, channels: int, filters: int, kernel: int, bias: bool = True) -> None:
        super().__init__(channels, filters, kernel, bias=bias)
        self.pads = _same_pads(kernel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads))


class EvenSameConv2d(nn.Conv2d):
    def __init__(self, channels: int, filters: int, kernel: int, bias: bool = True) -> None:
        super().__init__(channels, filters, kernel, bias=bias)
        self.pads = _same_pads(kernel, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads))


class ConvNet(nn.Module):
    """Convolutional blocks, then the Dense layers of `config`, for one configuration."""

    def __init__(
        self,
        config: Config,
        input_shape: tuple[int, ...],
        n_outputs: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        problem = conv_shape_problem(input_shape, config.conv_layers, config.pool)
        if problem:
            raise ValueError(problem)
        self.config = config
        self.input_shape = tuple(input_shape)
        two_d = len(input_shape) == 3
        norm, pool = (nn.BatchNorm2d, nn.MaxPool2d) if two_d else (nn.BatchNorm1d, nn.MaxPool1d)
        blocks: list[nn.Module] = []
        channels = input_shape[0]
        for filters, kernel in zip(config.filters, config.kernel_size, strict=True):
            # no bias before batch normalization: its shift does the bias's work (as Keras
            # users write Conv(use_bias=False) there), and a bias it cancels gets only noise
            bias = not config.batch_norm
            blocks.append(same_conv(two_d, channels, filters, kernel, bias))
            if config.batch_norm:
                blocks.append(norm(filters))
            blocks.append(activation_module(config.activation))
            if config.pool > 1:
                blocks.append(pool(config.pool))
            channels = filters
        self.features = nn.Sequential(*blocks)
        size = pooled_size(input_shape, config.conv_layers, config.pool)
        flat = channels if config.global_pool else channels * math.prod(size)
        self.head = DenseNet(config, flat, n_outputs, seed=seed, device=device)
        self._draw_conv_weights(seed + _CONV_SEED_OFFSET)  # on the CPU, as the head's are
        self.features.to(device)

    @torch.no_grad()
    def _draw_conv_weights(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for module in self.features:
            if isinstance(module, nn.Conv1d | nn.Conv2d):
                bound = 1.0 / math.sqrt(module.weight[0].numel())  # fan_in: in x kernel
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x.unflatten(1, self.input_shape))  # the batch stays symbolic (ONNX)
        x = x.mean(dim=tuple(range(2, x.dim()))) if self.config.global_pool else x.flatten(1)
        return self.head(x)
