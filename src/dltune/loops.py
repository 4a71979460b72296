"""The study loops: trials trained one at a time, or as a population whose free slots are
refilled at every epoch boundary (continuous batching of trials).

Both are Optuna's ask/tell around an engine; the trial's life in storage is lifecycle.py's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Config

if TYPE_CHECKING:
    import optuna

    from .engine import EpochReport, SequentialTrainer
    from .engine.population import PopulationTrainer
    from .lifecycle import TrialLifecycle


@dataclass
class Budget:
    """How many more trials may start, and until when (time.perf_counter() seconds)."""

    trials: int | None
    deadline: float | None
    started: int = 0

    def allows_another(self, study: optuna.Study) -> bool:
        import optuna

        if self.trials is not None and self.started >= self.trials:
            return False
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return False
        sampler = study.sampler
        return not (
            isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)
        )


def run_sequential(
    lifecycle: TrialLifecycle, trainer: SequentialTrainer, budget: Budget, patience: int | None
) -> None:
    """One trial at a time until the budget is spent."""
    while budget.allows_another(lifecycle.study):
        trial, config, seed = lifecycle.ask()
        budget.started += 1
        number = trial.number

        def on_epoch(report: EpochReport, number: int = number) -> bool:
            return lifecycle.report(number, report)

        result = trainer.train(
            config, seed=seed, patience=patience, on_epoch=on_epoch, keep_best_state=True
        )
        lifecycle.end(trial.number, result)


def run_population(
    lifecycle: TrialLifecycle,
    trainer: PopulationTrainer,
    budget: Budget,
    patience: int | None,
    slots: int,
) -> None:
    """Up to `slots` trials at once; each epoch boundary tells the finished ones and asks new
    ones for their slots, so the population stays full until the budget is spent."""
    waiting: list[tuple[int, Config, int]] = []  # asked, but no memory for them yet
    while True:
        while len(trainer) + len(waiting) < slots and budget.allows_another(lifecycle.study):
            trial, config, seed = lifecycle.ask()
            budget.started += 1
            waiting.append((trial.number, config, seed))
        for entry in list(waiting):
            number, config, seed = entry
            # An empty population always admits one member, however large it is.
            if trainer.has_room(config) or len(trainer) == 0:
                trainer.add(number, config, seed=seed, patience=patience, keep_best_state=True)
                waiting.remove(entry)
        if len(trainer) == 0:
            return
        for number, result in trainer.run_epoch(lifecycle.report):
            lifecycle.end(number, result)
