"""Losses and metrics, by their Keras names, on raw network outputs, for one model or many.

Every function takes outputs of shape (..., B, C) and targets of shape (..., B) (or (B,) shared
by all) and reduces over the batch only, so the same code serves one network (no leading
dimension: a scalar) and a stacked population (a leading member dimension P: one value per
member). Classification targets are class indices; the losses that compare vectors (mean squared
error, mean absolute error, huber, binary cross-entropy) compare against one-hot targets, as
Keras does with ``to_categorical`` labels. Regression targets arrive standardized with the
training split's statistics; metrics are reported in the target's original units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import torch
from torch.nn import functional as F

from ..vocabulary import METRICS

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _mean_over_batch(per_element: torch.Tensor, per_class: bool) -> torch.Tensor:
    """Average over the batch (and the class axis when the loss compares vectors)."""
    return per_element.mean(dim=(-2, -1)) if per_class else per_element.mean(dim=-1)


# Element-wise distances of the vector losses (Huber with Keras's delta of 1).
_DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean_squared_error": lambda a, b: (a - b).square(),
    "mean_absolute_error": lambda a, b: (a - b).abs(),
    "huber": lambda a, b: F.huber_loss(a, b.expand_as(a), reduction="none", delta=1.0),
}


def loss_function(name: str, task: str, n_outputs: int) -> LossFn:
    """The loss `name` for `task`: f(outputs (..., B, C), targets (..., B)) -> (...)."""
    if task == "classification":

        def one_hot(targets: torch.Tensor) -> torch.Tensor:
            return F.one_hot(targets, n_outputs).to(torch.float32)

        if name == "categorical_crossentropy":

            def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                log_p = F.log_softmax(out, dim=-1)
                picked = log_p.gather(-1, y.expand(out.shape[:-1]).unsqueeze(-1)).squeeze(-1)
                return -picked.mean(dim=-1)

            return cross_entropy
        if name == "binary_crossentropy":
            return lambda out, y: _mean_over_batch(
                F.binary_cross_entropy_with_logits(
                    out, one_hot(y).expand_as(out), reduction="none"
                ),
                per_class=True,
            )
        if name in _DISTANCES:
            distance = _DISTANCES[name]
            return lambda out, y: _mean_over_batch(
                distance(F.softmax(out, dim=-1), one_hot(y)), per_class=True
            )
    elif name in _DISTANCES:
        distance = _DISTANCES[name]
        return lambda out, y: _mean_over_batch(distance(out.squeeze(-1), y), per_class=False)
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

    def improves(self, best: float | None, value: float) -> bool:
        """True when `value` beats the best so far (None: nothing yet). Ties keep the earlier."""
        return best is None or self.worse_than(best, value)

    def compute(
        self,
        outputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> torch.Tensor:
        """The metric over a split: outputs (..., N, C), targets (N,) as the loss gets them."""
        if self.name == "accuracy":
            terms = (outputs.argmax(dim=-1) == targets).to(torch.float32)
        else:  # errors in the target's units (its mean cancels out of the difference)
            terms = (outputs.squeeze(-1) - targets) * target_std
        return reduce_metric(self.name, terms)


@overload
def reduce_metric(name: str, terms: torch.Tensor) -> torch.Tensor: ...
@overload
def reduce_metric(name: str, terms: np.ndarray) -> np.floating[Any] | np.ndarray: ...
def reduce_metric(name: str, terms: Any) -> Any:
    """The metric `name` over the last axis of its per-row terms: hits (1.0 or 0.0) for
    accuracy, errors in the target's units for rmse and mae.

    The one definition of each metric, for the engine (float32 tensors (..., N), every epoch)
    and for train-best and predict (float64 NumPy arrays (N,)). It calls the terms' own library,
    so each computes with the kernels it always used: the engine's values stay bit for bit
    (and copy nothing more), and so do the float64 ones, which NumPy sums pairwise.
    """
    xp: Any = torch if isinstance(terms, torch.Tensor) else np
    if name == "accuracy":
        return xp.mean(terms, -1)
    if name == "rmse":
        return xp.sqrt(xp.mean(xp.square(terms), -1))
    if name == "mae":
        return xp.mean(xp.abs(terms), -1)
    raise ValueError(f"unknown metric {name!r}")


def metric_named(name: str) -> Metric:
    task, direction = METRICS[name]
    return Metric(name, direction, task)


class MemberLosses:
    """Each stacked member's own loss: members grouped by loss name (in order of first
    appearance), one call per group on that group's rows of the stacked outputs (P, B, K)."""

    def __init__(self, names: list[str], task: str, n_outputs: int) -> None:
        order: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            order.setdefault(name, []).append(i)
        self.groups = [(name, torch.tensor(index)) for name, index in order.items()]
        self.functions = {name: loss_function(name, task, n_outputs) for name in order}
        self.members = len(names)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(P,) each member's loss; `targets` (B,) shared or (P, B) per member."""
        if len(self.groups) == 1:
            return self.functions[self.groups[0][0]](outputs, targets)
        losses = outputs.new_zeros(self.members)
        for name, index in self.groups:
            index = index.to(outputs.device)
            own_targets = targets if targets.dim() == 1 else targets.index_select(0, index)
            value = self.functions[name](outputs.index_select(0, index), own_targets)
            losses = losses.index_copy(0, index, value)
        return losses
