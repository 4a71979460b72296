"""When a run has diverged: the one rule, for every family (dense, convolutional, a user's
model) and every loss. The engines apply it at the end of each epoch and end a run that meets
it as diverged; the analysis applies it to the curves storage holds (an older study's trials, a
pruned trial), so that both call the same runs diverged.

A run has diverged at an epoch when

- its training or validation loss is not a number (NaN) or infinite; or
- its training loss over the epoch is ABOVE_CHANCE times (or more) the loss of a network that
  learnt nothing (uniform outputs over the classes; the training targets' mean in regression),
  and either its validation metric is at chance (accuracy within CHANCE_BAND of guessing; in
  regression a validation loss no lower than the mean's) or its training loss rose EXPLODED
  times above its lowest epoch before.

Why these and not "the loss became NaN" alone: a network whose steps are too large does not
always overflow. Batch normalization rescales what would overflow; mean squared error on
softmax outputs is bounded (a network sure of the wrong class scores twice the loss of one that
learnt nothing, never more); sigmoid layers saturate. Such a run stays finite and ends where it
predicts one class, its training loss above where it started. Where the loss does become huge
with a metric still well above chance (Adam at a learning rate of 1 on digits: 144 times the
starting loss, 94% accuracy), the network's few wrong answers are confidently wrong; it still
learns, and the rule leaves it be unless the loss keeps climbing (EXPLODED).

Torch-free: the analysis, which never imports torch, reads it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import EpochReport

# A fresh network's training loss lies within about 10% of the loss of uniform outputs (its
# outputs are not quite uniform: measured on digits for every family and loss, 1.00-1.06 times
# it, 1.10 for binary cross-entropy after sigmoid layers), and an epoch's mean includes what the
# network learnt in it, so a mean 20% above that loss means the steps made the network worse than
# one that learnt nothing. Measured on digits (dense, convolutional, with and without batch
# normalization; every loss; SGD and Adam from 1e-3 to 1e3; 3 epochs): no run that met the rule
# at an epoch reached 30% accuracy afterwards; at 1.1 one did (a slow start at 1.11).
ABOVE_CHANCE = 1.2
# "At chance": an accuracy at most a tenth of the way from guessing (1/K) to perfect (0.19 for
# ten classes): what a network that predicts one or two classes reaches by the luck of the split.
CHANCE_BAND = 0.1
# A training loss a hundred times its lowest earlier epoch's (and above the chance loss) is no
# noise of the batches: the steps are throwing the network away.
EXPLODED = 100.0

# How a run diverged, as the analysis tells it
NOT_FINITE = "not finite"
AT_CHANCE = "at chance"
EXPLODING = "exploded"


@dataclass(frozen=True)
class Chance:
    """What a network that learnt nothing scores: its training loss (None: unknown) and its
    accuracy (None: a regression, whose metric is in the target's units; its validation loss
    then says it)."""

    loss: float | None
    accuracy: float | None


def chance(loss: str, task: str, outputs: int | None) -> Chance:
    """The chance level of a run with loss `loss` on `task` with `outputs` classes (None where
    the number of classes is unknown: an older study's)."""
    if task == "regression":
        # Targets are standardized on the training rows: predicting their mean costs 1 in mean
        # squared error, at most 1 in absolute error and at most 1/2 in Huber (upper bounds:
        # the rule asks the training loss to exceed it, so a bound too high only makes it
        # stricter).
        bounds = {"mean_squared_error": 1.0, "mean_absolute_error": 1.0, "huber": 0.5}
        return Chance(bounds.get(loss), None)
    if not outputs or outputs < 2:
        return Chance(None, None)
    k = float(outputs)
    # The losses of uniform outputs (zero logits) against one-hot targets, as engine.losses
    # computes them: cross-entropy ln K; the vector losses on softmax outputs, averaged over
    # the K classes; binary cross-entropy on each output's sigmoid (1/2), ln 2.
    uniform = {
        "categorical_crossentropy": math.log(k),
        "mean_squared_error": (k - 1) / k**2,
        "mean_absolute_error": 2 * (k - 1) / k**2,
        "huber": (k - 1) / (2 * k**2),
        "binary_crossentropy": math.log(2.0),
    }
    return Chance(uniform.get(loss), 1.0 / k)


def divergence(
    train_loss: Sequence[float],
    val_loss: Sequence[float],
    val_metric: Sequence[float],
    level: Chance,
) -> tuple[int, str] | None:
    """The first epoch (1-based) at which a run's curves meet the rule, and how (NOT_FINITE,
    AT_CHANCE, EXPLODING); None if they never do. Missing values count as unknown, not as
    broken: lists may be shorter than the training loss's."""
    for i, train in enumerate(train_loss):
        val = val_loss[i] if i < len(val_loss) else 0.0
        metric = val_metric[i] if i < len(val_metric) else math.nan
        how = _epoch(train, val, metric, min(train_loss[:i], default=math.inf), level)
        if how is not None:
            return i + 1, how
    return None


def diverged(history: Sequence[EpochReport], loss: str, data: Any) -> bool:
    """The engines' check after an epoch: whether the run whose reports are `history` (the
    latest last) diverged at its latest epoch. `data`: the engine's data (its task and
    n_outputs); `loss`: the run's."""
    latest = history[-1]
    level = chance(loss, data.task, data.n_outputs)
    lowest = min((r.train_loss for r in history[:-1]), default=math.inf)
    return _epoch(latest.train_loss, latest.val_loss, latest.val_metric, lowest, level) is not None


def _epoch(train: float, val: float, metric: float, lowest: float, level: Chance) -> str | None:
    """How one epoch meets the rule (`lowest`: the lowest training loss before it), or None."""
    if not math.isfinite(train) or not math.isfinite(val):
        return NOT_FINITE
    if level.loss is None or train < ABOVE_CHANCE * level.loss:
        return None
    if level.accuracy is not None:
        at_chance = math.isfinite(metric) and metric <= _chance_band(level.accuracy)
    else:
        at_chance = val >= level.loss
    if at_chance:
        return AT_CHANCE
    return EXPLODING if train >= EXPLODED * lowest else None


def _chance_band(guess: float) -> float:
    return guess + CHANCE_BAND * (1.0 - guess)
