"""What a network costs to deploy, known before it trains (issue 18's size and speed
objectives): its parameters, the floating-point operations of one prediction, and the median
latency of a prediction.

Any torch module that maps flat examples (n, n_features) to outputs counts, dltune's own
networks and a user's build alike.

- parameters: every element of every parameter (trainable or not; buffers such as batch-norm
  statistics are not parameters).
- flops: 2 x the multiply-accumulates of the Linear and convolution layers for one example,
  counted by forward hooks on one pass. Activations, pooling and normalisation are left out,
  as the usual counters (fvcore, ptflops) leave them: they are a small share of these networks'
  arithmetic. A module whose forward runs no Linear or convolution module (a Keras model on
  torch, a module of functional calls) is counted by torch's FLOP counter instead: its matrix
  products and convolutions, the same arithmetic.
- latency: the median wall time in milliseconds of `model(x)` for a batch of `batch` examples
  in evaluation mode without gradients, on the given device, after warm-up calls, with the
  process's torch threads; on CUDA each call is synchronised. The same procedure for every
  trial of a study, so the figures compare within it.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch
from torch import nn

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
WARMUP = 3  # calls before timing: first-call allocations and kernel selection
REPEATS = 21  # timed calls; the median is robust to a stray slow one
# The latencies a study measures when an objective asks for one (vocabulary.COSTS): the
# batch of one prediction (a request) and of 256 (a batch job).
LATENCIES = {"latency": 1, "latency_256": 256}


def parameter_count(model: nn.Module) -> int:
    """Elements of every parameter of the model."""
    return sum(p.numel() for p in model.parameters())


def flops(model: nn.Module, n_features: int, device: torch.device | str = "cpu") -> int:
    """2 x the multiply-accumulates of the Linear and convolution layers for one example."""
    counted = [0]

    def on_linear(module: nn.Linear, inputs: Any, output: torch.Tensor) -> None:
        rows = output.numel() // module.out_features
        counted[0] += 2 * rows * module.in_features * module.out_features

    def on_conv(module: Any, inputs: Any, output: torch.Tensor) -> None:
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        counted[0] += 2 * output.numel() * per_output

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(on_linear))
        elif isinstance(module, CONVOLUTIONS):
            hooks.append(module.register_forward_hook(on_conv))
    try:
        _predict(model, torch.zeros(1, n_features, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    if counted[0] == 0:  # no Linear or convolution module ran: the products the forward made
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            _predict(model, torch.zeros(1, n_features, device=device))
        return int(counter.get_total_flops())
    return counted[0]


def latency_ms(
    model: nn.Module,
    n_features: int,
    batch: int = 1,
    device: torch.device | str = "cpu",
    repeats: int = REPEATS,
) -> float:
    """The median milliseconds of one prediction on `batch` examples (see the module's note)."""
    x = torch.randn(batch, n_features, device=device)
    cuda = torch.device(device).type == "cuda"
    for _ in range(WARMUP):
        _predict(model, x)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        _predict(model, x)
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def footprint_of(
    network: Any,
    config: Any,
    n_outputs: int,
    n_features: int,
    latency_on: torch.device | str | None = None,
) -> dict[str, float]:
    """The parameters and flops of the network a factory (nets.NetworkFactory) builds for a
    configuration: built once more on the CPU, untrained (the counts do not depend on the
    weights); with `latency_on` (a device), also its latencies there (LATENCIES: the name
    of each, and its batch), in milliseconds rounded to a microsecond."""
    model = network(config, n_outputs, seed=0, device="cpu")
    counted: dict[str, float] = {
        "parameters": parameter_count(model),
        "flops": flops(model, n_features),
    }
    if latency_on is not None:
        model = model.to(latency_on)
        for name, batch in LATENCIES.items():
            counted[name] = round(latency_ms(model, n_features, batch, latency_on), 3)
    return counted


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One forward pass in evaluation mode, no gradients; the model's mode as it was after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)
