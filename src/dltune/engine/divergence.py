"""When a run has diverged: the one rule, for every family (dense, convolutional, a user's
model) and every loss. The engines apply it at the end of each epoch and end a run that meets
it as diverged; the analysis applies it to the curves storage holds (an older study's trials, a
pruned trial), so that both call the same runs diverged.

A run has diverged at an epoch when

- its training or validation loss is not a number (NaN) or infinite; or
- its training loss over the epoch is above what a fresh network costs (the loss of a network
  that learnt nothing, uniform outputs over the classes or the training targets' mean, by
  ABOVE_CHANCE or by what outputs of FRESH_SPREAD's spread add, whichever is more; and never
  below ABOVE_CHANCE times the run's own loss on its first batch, before its first step), and
  either
  its validation metric is at chance (accuracy within CHANCE_BAND of guessing; in regression a
  validation loss no lower than the mean's) or its training loss rose EXPLODED times above its
  lowest epoch before.

Why these and not "the loss became NaN" alone: a network whose steps are too large does not
always overflow. Batch normalization rescales what would overflow; mean squared error on
softmax outputs is bounded (a network sure of the wrong class scores 2K / (K - 1) times the
loss of one that learnt nothing, never more); sigmoid layers saturate. Such a run stays finite
and ends where it predicts one class, its training loss above where it started. Where the loss
does become huge with a metric still well above chance (Adam at a learning rate of 1 on digits:
144 times the starting loss, 94% accuracy), the network's few wrong answers are confidently
wrong; it still learns, and the rule leaves it be unless the loss keeps climbing (EXPLODED).

Why the run's own first loss as well: the fresh level above assumes standardized inputs, as
dltune's data gives them. Arrays given as they are (Keras Tuner's search(), a user's model on
pixels of 0 to 255) make a fresh network's outputs spread far wider, so its first epochs cost
more than the level while it learns well; such a run is measured against where it started.

Torch-free: the analysis, which never imports torch, reads it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import TrainResult

# A fresh network does not output exactly uniform probabilities: its outputs (logits) spread
# around zero, which costs a little more than the uniform outputs' loss. PyTorch's default
# initialization on standardized inputs gives outputs of variance up to about 0.8 (measured: a
# Linear, a Dense-ReLU and a Dense-sigmoid network, 30 seeds each, start at most 1.28 times ln 2
# in cross-entropy for two classes, 1.16 times ln 3 for three, 1.09 times ln 10 for ten). The
# rule allows for outputs of variance 1 (FRESH_SPREAD), and never less than ABOVE_CHANCE times
# the uniform outputs' loss.
FRESH_SPREAD = 1.0
# An epoch's mean includes what the network learnt in it, so a mean 20% above the uniform
# outputs' loss (and above what a fresh network's spread adds) means the steps made it worse
# than one that learnt nothing. Measured on digits (dense, convolutional, with and without
# batch normalization; every loss; SGD and Adam from 1e-3 to 1e3; 3 epochs): no run that met
# the rule at an epoch reached 30% accuracy afterwards; at 1.1 one did (a slow start at 1.11
# times ln 10, at 17% accuracy).
ABOVE_CHANCE = 1.2
# "At chance": an accuracy at most a tenth of the way from guessing (1/K) to perfect (0.19 for
# ten classes): what a network that predicts one or two classes reaches by the luck of the split.
CHANCE_BAND = 0.1
# A training loss a hundred times its lowest earlier epoch's (and above a fresh network's) is
# no noise of the batches: the steps are throwing the network away.
EXPLODED = 100.0

# How a run diverged, as the analysis tells it
NOT_FINITE = "not finite"
AT_CHANCE = "at chance"
EXPLODING = "exploded"


@dataclass(frozen=True)
class Chance:
    """What a network that learnt nothing scores: its training loss (uniform outputs; the
    targets' mean), the most a fresh network's may be (`fresh`), and its accuracy. None where
    unknown: a loss of an older study with no number of classes; the accuracy of a regression,
    whose metric is in the target's units (its validation loss then says it)."""

    loss: float | None
    fresh: float | None
    accuracy: float | None


def chance(loss: str, task: str, outputs: int | None) -> Chance:
    """The chance level of a run with loss `loss` on `task` with `outputs` classes (None where
    the number of classes is unknown: an older study's)."""
    spread = FRESH_SPREAD
    if task == "regression":
        # Targets are standardized on the training rows: predicting their mean costs 1 in mean
        # squared error, at most 1 in absolute error and at most 1/2 in Huber (upper bounds:
        # the rule asks the training loss to exceed them, so a bound too high only makes it
        # stricter); outputs of variance s add s, at most sqrt(1 + s) - 1 and s / 2.
        levels = {
            "mean_squared_error": (1.0, 1.0 + spread),
            "mean_absolute_error": (1.0, math.sqrt(1.0 + spread)),
            "huber": (0.5, (1.0 + spread) / 2),
        }
        level, fresh = levels.get(loss, (None, None))
        return Chance(level, fresh, None)
    if not outputs or outputs < 2 or loss not in _UNIFORM:
        return Chance(None, None, None)
    k = float(outputs)
    uniform, added = _UNIFORM[loss](k), _SPREAD_COSTS[loss](k) * spread
    return Chance(uniform, max(ABOVE_CHANCE * uniform, uniform + added), 1.0 / k)


# The losses of uniform outputs (zero logits) against one-hot targets, as engine.losses
# computes them: cross-entropy ln K; the vector losses on softmax outputs, averaged over the K
# classes; binary cross-entropy on each output's sigmoid (1/2), ln 2.
_UNIFORM = {
    "categorical_crossentropy": math.log,
    "mean_squared_error": lambda k: (k - 1) / k**2,
    "mean_absolute_error": lambda k: 2 * (k - 1) / k**2,
    "huber": lambda k: (k - 1) / (2 * k**2),
    "binary_crossentropy": lambda k: math.log(2.0),
}
# What logits spread with variance 1 around zero add to it (to second order): half their
# variance less its mean's share in cross-entropy, an eighth of it per sigmoid in binary
# cross-entropy, (K - 1) / K^3 of it in squared error on softmax outputs (half in Huber, whose
# errors here are under 1), nothing in absolute error (it moves linearly either way).
_SPREAD_COSTS = {
    "categorical_crossentropy": lambda k: (1 - 1 / k) / 2,
    "mean_squared_error": lambda k: (k - 1) / k**3,
    "mean_absolute_error": lambda k: 0.0,
    "huber": lambda k: (k - 1) / (2 * k**3),
    "binary_crossentropy": lambda k: 1 / 8,
}


def with_start(level: Chance, start_loss: float) -> Chance:
    """`level` for a run whose first batch cost `start_loss` before its first step (NaN where
    unknown): its fresh loss is never below ABOVE_CHANCE times what the run itself started at
    (one batch's loss: an epoch's mean at a tiny rate lies near it, on either side; 15% above,
    4.02 against 3.51, in tests/test_divergence.py's slow run on inputs 30 times standardized)."""
    if level.fresh is None or not math.isfinite(start_loss):
        return level
    return replace(level, fresh=max(level.fresh, ABOVE_CHANCE * start_loss))


def divergence(
    train_loss: Sequence[float],
    val_loss: Sequence[float],
    val_metric: Sequence[float],
    level: Chance,
    start_loss: float = math.nan,
) -> tuple[int, str] | None:
    """The first epoch (1-based) at which a run's curves meet the rule, and how (NOT_FINITE,
    AT_CHANCE, EXPLODING); None if they never do. `start_loss`: the run's loss before its
    first step (NaN where unknown). Missing values count as unknown, not as broken: lists may
    be shorter than the training loss's."""
    level = with_start(level, start_loss)
    for i, train in enumerate(train_loss):
        val = val_loss[i] if i < len(val_loss) else 0.0
        metric = val_metric[i] if i < len(val_metric) else math.nan
        how = _epoch(train, val, metric, min(train_loss[:i], default=math.inf), level)
        if how is not None:
            return i + 1, how
    return None


def diverged(result: TrainResult, loss: str, data: Any) -> bool:
    """The engines' check after an epoch: whether the run whose result is `result` (its
    history, the latest epoch last, and its start loss) diverged at its latest epoch. `data`:
    the engine's data (its task and n_outputs); `loss`: the run's."""
    history = result.history
    latest = history[-1]
    level = with_start(chance(loss, data.task, data.n_outputs), result.start_loss)
    lowest = min((r.train_loss for r in history[:-1]), default=math.inf)
    return _epoch(latest.train_loss, latest.val_loss, latest.val_metric, lowest, level) is not None


def _epoch(train: float, val: float, metric: float, lowest: float, level: Chance) -> str | None:
    """How one epoch meets the rule (`lowest`: the lowest training loss before it), or None."""
    if not math.isfinite(train) or not math.isfinite(val):
        return NOT_FINITE
    if level.loss is None or level.fresh is None or train < level.fresh:
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
