"""Hyperband, RandomSearch and BayesianOptimization: Keras Tuner's tuners on tuner.Tuner, each
with its schedule, sampler and count of trials:

- Hyperband(max_epochs, factor, hyperband_iterations) -> schedule "hyperband" with the space's
  epochs = max_epochs, reduction = factor and min_epochs = max_epochs / factor**s (the lowest of
  Keras Tuner's rounds), TPE sampling in the brackets (a model of the results so far, as BOHB
  pairs them; Keras Tuner samples at random), and as many trials as Keras Tuner's Hyperband
  starts (its brackets' sizes, dltune's by the same formula) times hyperband_iterations;
- RandomSearch(max_trials) -> sampler "random", schedule "none" (every trial trains its epochs);
- BayesianOptimization(max_trials, num_initial_points) -> Optuna's GPSampler (a Gaussian
  process, as Keras Tuner's is; "tpe" would be another method under its name), its random
  start num_initial_points (Keras Tuner's default: 3 per hyperparameter), schedule "none".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .arguments import oracle_arguments, whole_number
from .tuner import Tuner

if TYPE_CHECKING:
    from .hypermodel import HyperParameters


class Hyperband(Tuner):
    """Keras Tuner's Hyperband on dltune's Hyperband schedule (see the module's notes)."""

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_epochs: int = 100,
        factor: int = 3,
        hyperband_iterations: int | None = 1,
        seed: int | None = None,
        hyperparameters: Any = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        self.max_epochs = whole_number(max_epochs, "max_epochs", "Hyperband()")
        self.factor = whole_number(factor, "factor", "Hyperband()", low=2)
        iterations = hyperband_iterations or None  # Keras Tuner: None or 0 is without end
        if iterations is not None:
            iterations = whole_number(iterations, "hyperband_iterations", "Hyperband()")
        self.hyperband_iterations = iterations
        oracle = oracle_arguments(
            hyperparameters, tune_new_entries, allow_new_entries, max_retries_per_trial,
            max_consecutive_failed_trials,
        )  # fmt: skip
        super().__init__(hypermodel, objective, seed, oracle, kwargs)

    def _schedule(self) -> tuple[str, dict[str, Any]]:
        rounds = hyperband_brackets(self.max_epochs, self.factor) - 1
        lowest = self.max_epochs / self.factor**rounds
        keys = {"epochs": self.max_epochs, "min_epochs": lowest, "reduction": self.factor}
        return "hyperband", keys

    def _sampler(self, hp: HyperParameters) -> Any:
        return "tpe"

    def _trials(self) -> int | None:
        if self.hyperband_iterations is None:
            return None
        return hyperband_trials(self.max_epochs, self.factor) * self.hyperband_iterations

    def _notes(
        self, monitor: str | None, patience: int | None, epochs: int | None, existing: int
    ) -> list[str]:
        notes = super()._notes(monitor, patience, epochs, existing)
        if epochs is not None and epochs != self.max_epochs:
            notes.append(
                f"search(epochs={epochs}) is not used: Hyperband trains each trial up to "
                f"max_epochs={self.max_epochs}, as in Keras Tuner"
            )
        return notes


class RandomSearch(Tuner):
    """Keras Tuner's RandomSearch: random sampling, every trial trained to its epochs."""

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 10,
        seed: int | None = None,
        hyperparameters: Any = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        self.max_trials = whole_number(max_trials, "max_trials", f"{type(self).__name__}()")
        oracle = oracle_arguments(
            hyperparameters, tune_new_entries, allow_new_entries, max_retries_per_trial,
            max_consecutive_failed_trials,
        )  # fmt: skip
        super().__init__(hypermodel, objective, seed, oracle, kwargs)

    def _trials(self) -> int | None:
        return self.max_trials


class BayesianOptimization(RandomSearch):
    """Keras Tuner's BayesianOptimization on Optuna's Gaussian-process sampler."""

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 10,
        num_initial_points: int | None = None,
        alpha: float = 1e-4,
        beta: float = 2.6,
        seed: int | None = None,
        hyperparameters: Any = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        if num_initial_points is not None:
            num_initial_points = whole_number(
                num_initial_points, "num_initial_points", "BayesianOptimization()"
            )
        self.num_initial_points = num_initial_points
        super().__init__(
            hypermodel, objective, max_trials, seed, hyperparameters, tune_new_entries,
            allow_new_entries, max_retries_per_trial, max_consecutive_failed_trials,
            alpha=alpha, beta=beta, **kwargs,
        )  # fmt: skip

    def _sampler(self, hp: HyperParameters) -> Any:
        import optuna

        # Keras Tuner's default random start: 3 points per hyperparameter, at least 3
        tuned = [name for name, spec in hp.specs().items() if spec.kind != "Fixed"]
        start = self.num_initial_points or max(3 * len(tuned), 3)
        study = self._stored_study()
        # a continued study's sampler moves on, so that it does not propose its start again
        seed = None if self.seed is None else self.seed + (len(study.trials) if study else 0)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=start)


def hyperband_brackets(max_epochs: int, factor: int) -> int:
    """Keras Tuner's count of Hyperband's brackets: how often max_epochs divides by factor
    before it falls under one epoch."""
    epochs, brackets = float(max_epochs), 0
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    return brackets


def hyperband_trials(max_epochs: int, factor: int) -> int:
    """The configurations one iteration of Keras Tuner's Hyperband starts: bracket b (b
    halvings below max_epochs) starts ceil(ceil(1 + log_factor(max_epochs)) / (b + 1) *
    factor**b) of them (its _get_size; dltune's Hyperband cycle weighs its brackets the same)."""
    end = math.ceil(1 + math.log(max_epochs, factor))
    return sum(
        math.ceil(end / (b + 1) * factor**b) for b in range(hyperband_brackets(max_epochs, factor))
    )
