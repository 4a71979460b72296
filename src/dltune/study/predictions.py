"""What a study keeps of each complete trial for the ensemble chosen at its end: its
predictions on the rows that validated it (stored), and, in memory, the weights of its best
epoch (of each fold's member in k-fold) for the best trials this process trained.

In k-fold, a trial's predictions are out-of-fold: every example outside the test split
predicted by the fold member that did not train on it, at that member's best epoch (the model
the bag delivers). In holdout, they are its predictions on the validation split at its best
epoch. Classification stores class probabilities (each member's by its own loss: softmax, or
normalized sigmoids), regression values in the target's units, so that any trials' predictions
average into an ensemble's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..data import Dataset
    from ..engine import TrainResult

# The most floats a trial's stored predictions may hold (rows x classes): 200,000 float16 are
# 400 kB (533 kB as base64) a trial; beyond it (large data), none are stored and the study
# delivers its best single model.
MAX_STORED_FLOATS = 200_000
# Trials whose weights are kept in memory for the ensemble (the best by value), and the most
# bytes they may hold: the candidates of the selection (ensemble_choice.CANDIDATES).
KEPT_TRIALS = 20
KEPT_BYTES = 512 * 2**20


class ValidationRows:
    """The rows a study validates on (its pool in k-fold, its validation split in holdout),
    their truth, and how a trial's result becomes predictions on them."""

    def __init__(self, dataset: Dataset) -> None:
        self.folds = dataset.folds
        self.task = dataset.task
        if self.folds is not None:
            self.truth = dataset.pool()[1]
        else:
            self.truth = np.asarray(dataset.y_val)
        self.n_classes = dataset.n_classes
        self.target_mean = float(dataset.target_mean or 0.0)
        self.target_std = float(dataset.target_std or 1.0)

    @property
    def storable(self) -> bool:
        return len(self.truth) * (self.n_classes or 1) <= MAX_STORED_FLOATS

    def predictions(self, result: TrainResult, loss: str) -> np.ndarray | None:
        """The trial's predictions on these rows (None: a member kept no outputs)."""
        if self.folds is None:
            outputs = result.best_outputs
            return None if outputs is None else self.head(np.asarray(outputs), loss)
        if len(result.folds) != self.folds.k or any(f.best_outputs is None for f in result.folds):
            return None
        width = int(np.asarray(result.folds[0].best_outputs).shape[-1])
        raw = np.zeros((self.folds.n_pool, width), dtype=np.float32)
        for fold, member in enumerate(result.folds):
            raw[self.folds.val_rows(fold)] = np.asarray(member.best_outputs)
        return self.head(raw, loss)

    def head(self, outputs: np.ndarray, loss: str) -> np.ndarray:
        """Probabilities (classification) or values in the target's units (regression)."""
        if self.task == "regression":
            return (outputs[:, 0] * self.target_std + self.target_mean).astype(np.float32)
        import torch

        from ..nets.dense import probabilities

        return probabilities(torch.as_tensor(outputs), loss).numpy().astype(np.float32)


class KeptModels:
    """The best trials' weights, kept in memory while the study runs (see the module's note):
    trial number -> one state per member (K folds, or the one model)."""

    def __init__(self, maximize: bool, capacity: int = KEPT_TRIALS, max_bytes: int = KEPT_BYTES):
        self.maximize = maximize
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.states: dict[int, list[dict[str, Any]]] = {}
        self.values: dict[int, float] = {}

    def offer(self, number: int, value: float | None, result: TrainResult) -> None:
        """Keep a complete trial's weights if it is among the best so far."""
        members = result.folds or [result]
        states = [m.best_state for m in members]
        if value is None or not math.isfinite(value) or any(s is None for s in states):
            return
        self.states[number] = [_on_cpu(s) for s in states if s is not None]
        self.values[number] = float(value)
        while len(self.states) > self.capacity or (
            len(self.states) > 1 and self.nbytes() > self.max_bytes
        ):
            del self.states[self._worst()]

    def _worst(self) -> int:
        """The kept trial of the worst value (ties: the later one)."""
        sign = 1 if self.maximize else -1
        return min(self.states, key=lambda n: (sign * self.values[n], -n))

    def nbytes(self) -> int:
        return sum(
            t.numel() * t.element_size()
            for states in self.states.values()
            for state in states
            for t in state.values()
            if hasattr(t, "numel")
        )


def _on_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().to("cpu") if hasattr(v, "detach") else v for k, v in state.items()}
