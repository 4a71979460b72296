"""Losses and metrics, by their Keras names, on a network's raw outputs.

Classification targets are class indices; the losses that compare vectors (mean squared error,
mean absolute error, huber, binary cross-entropy) compare against one-hot targets, as Keras does
with ``to_categorical`` labels. Regression targets arrive standardized with the training split's
statistics; metrics are reported in the target's original units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..vocabulary import METRICS

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_function(name: str, task: str, n_outputs: int) -> LossFn:
    """The loss `name` for `task`, as f(outputs, targets) -> scalar mean over the batch."""
    if task == "classification":

        def one_hot(targets: torch.Tensor) -> torch.Tensor:
            return F.one_hot(targets, n_outputs).to(torch.float32)

        if name == "categorical_crossentropy":
            return F.cross_entropy
        if name == "binary_crossentropy":
            return lambda out, y: F.binary_cross_entropy_with_logits(out, one_hot(y))
        if name == "mean_squared_error":
            return lambda out, y: F.mse_loss(F.softmax(out, dim=-1), one_hot(y))
        if name == "mean_absolute_error":
            return lambda out, y: F.l1_loss(F.softmax(out, dim=-1), one_hot(y))
        if name == "huber":
            return lambda out, y: F.huber_loss(F.softmax(out, dim=-1), one_hot(y), delta=1.0)
    else:
        if name == "mean_squared_error":
            return lambda out, y: F.mse_loss(out.squeeze(-1), y)
        if name == "mean_absolute_error":
            return lambda out, y: F.l1_loss(out.squeeze(-1), y)
        if name == "huber":
            return lambda out, y: F.huber_loss(out.squeeze(-1), y, delta=1.0)
    raise ValueError(f"loss {name!r} does not apply to {task}")


@dataclass(frozen=True)
class Metric:
    """A validation metric: its name, whether higher is better, and how to compute it."""

    name: str
    direction: str  # "maximize" or "minimize"
    task: str

    def worse_than(self, a: float, b: float) -> bool:
        """True when value `a` is strictly worse than `b`."""
        return a < b if self.direction == "maximize" else a > b

    def compute(
        self,
        outputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> float:
        """The metric over a whole split. `targets` as the loss gets them (standardized)."""
        if self.name == "accuracy":
            return float((outputs.argmax(dim=-1) == targets).to(torch.float32).mean())
        error = (outputs.squeeze(-1) - targets) * target_std
        if self.name == "rmse":
            return float(error.pow(2).mean().sqrt())
        if self.name == "mae":
            return float(error.abs().mean())
        raise ValueError(f"unknown metric {self.name!r}")


def metric_named(name: str) -> Metric:
    task, direction = METRICS[name]
    return Metric(name, direction, task)
