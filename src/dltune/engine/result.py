"""What an engine reports about a trained configuration: plain data, no tensors but the weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch's batches
    val_loss: float
    val_metric: float
    seconds: float  # wall time of this epoch, evaluation included
    # The metric on a fixed sample of the training rows, in evaluation mode (no dropout), when
    # the trainer tracks it: against val_metric it is the train-validation gap. NaN otherwise.
    train_metric: float = math.nan


@dataclass
class TrainResult:
    """The outcome of training one configuration.

    status: "complete" (ran its epochs or stopped on a plateau), "pruned" (stopped by the
    scheduler), "diverged" (divergence.py's rule: the loss became NaN or infinite, or the
    network fell to chance above a fresh network's loss), "failed" (a user's model raised
    while it trained: `error` says what).
    """

    status: str
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    diverged_epoch: int | None = None
    stopped_early: bool = False  # stopped on a validation plateau (patience)
    seconds: float = 0.0
    best_state: dict[str, Any] | None = None  # weights at the best epoch, when asked for
    # Raw outputs (V, C) on its validation rows at the best epoch, kept with best_state: a
    # fold member's out-of-fold predictions, a holdout trial's validation predictions (the
    # ensemble is selected on them)
    best_outputs: Any = None
    # A cross-validated trial's fold members' own results (folds.py), fold by fold; [] else
    folds: list[TrainResult] = field(default_factory=list)
    # A fold member's weights and outputs at its latest epoch (kept with keep_best_state): its
    # trial makes them its best_state and best_outputs at the epochs where the folds' mean
    # improves, so that each fold's model is delivered at its trial's best epoch
    last_state: dict[str, Any] | None = None
    last_outputs: Any = None
    # status "failed": what a user's model raised while it trained (the study goes on)
    error: str | None = None
    # The training loss of the run's first batch before its first step: what this network
    # cost fresh, on the inputs as given (divergence.py's rule measures a run against it, so
    # that inputs far from standardized, whose fresh loss is high, do not read as diverged).
    # NaN where unknown (a result from before it was kept); the mean of the folds' in a
    # cross-validated trial.
    start_loss: float = math.nan

    @property
    def epochs_run(self) -> int:
        return len(self.history)


@dataclass(frozen=True)
class Checkpoint:
    """A run at the point where its caller wanted a say (a rung): epochs trained, possibly a
    fraction; the validation metric there; training seconds so far (its cost)."""

    key: Any
    epochs: float
    value: float
    seconds: float
