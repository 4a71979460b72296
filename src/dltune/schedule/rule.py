"""Your own rule for stopping trials early, as Optuna takes a pruner: the interface an expert
implements (:class:`StoppingRule`, one method), and the adapter that lets the study loop run it
as its scheduler (:class:`RuleScheduler`).

The rule is asked after every epoch of every trial but its last: given the trial's validation
values so far and the other trials' (this run's, other workers' and earlier runs', as far as
each has got), it says whether the trial stops there. A stopped trial ends pruned at once, with
its curve so far; one that is never stopped trains all its epochs and completes. No trial is
paused or promoted: that is ASHA's way (asha.py), not a rule's.

    class StopBelow:
        def should_stop(self, trial, others):
            return len(trial.values) == 2 and trial.values[-1] < 0.5

    dltune.tune(data="digits", schedule=StopBelow())

The rule object travels to every worker process (pickled, as the other settings): its state is
each worker's own copy. The study's metric decides what a value means (`direction`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol, runtime_checkable

from .asha import Decision, Scheduler
from .rungs import Rungs


@dataclass(frozen=True)
class TrialCurve:
    """One trial as a stopping rule sees it."""

    number: int  # the trial's number in the study
    # its validation metric after epoch 1, 2, ... (NaN where it diverged)
    values: tuple[float, ...]
    direction: Literal["maximize", "minimize"]  # which way the metric is better
    max_epochs: int  # the epochs it trains unless stopped

    @property
    def best(self) -> float | None:
        """Its best value so far (None before its first epoch, or when every value is NaN)."""
        finite = [v for v in self.values if not math.isnan(v)]
        if not finite:
            return None
        return max(finite) if self.direction == "maximize" else min(finite)


@runtime_checkable
class StoppingRule(Protocol):
    """What ``tune(schedule=...)`` takes besides a name: any object with this one method (a
    subclass of this class, or any class that has it).

    ``should_stop(trial, others)`` is called after each epoch of `trial` but its last, with
    `trial`'s values so far (``trial.values[-1]``: the epoch just trained) and every other
    trial of the study known to this process, as far as each got. True stops the trial there
    (it ends pruned, its best epoch so far kept with its curve); False lets it train one more
    epoch. It must not train or store anything: the study loop does both.
    """

    def should_stop(self, trial: TrialCurve, others: Sequence[TrialCurve]) -> bool: ...


def rule_name(rule: object) -> str:
    """How a rule is named in the study's start line: its class's name."""
    return type(rule).__name__


@dataclass(frozen=True)
class EveryEpoch(Rungs):
    """A rung at every whole epoch (1, 2, ..., max_epochs): where a rule decides."""

    rule: str = "a stopping rule"  # its name, for describe()

    @cached_property
    def base(self) -> tuple[float, ...]:
        return tuple(float(epoch) for epoch in range(1, self.max_epochs + 1))

    def describe(self) -> str:
        return f"{self.rule}: asked after every epoch up to {self.max_epochs}"


class RuleScheduler(Scheduler):
    """A StoppingRule as the study loop's scheduler: a decision after every epoch, "stop" where
    the rule says so. Trials the loop protects (a cross-validated study's first) go on."""

    def __init__(
        self,
        rule: StoppingRule,
        max_epochs: int,
        *,
        direction: Literal["maximize", "minimize"] = "maximize",
        static_directions: tuple[str, ...] = (),
    ) -> None:
        rungs = EveryEpoch(1.0, max(1, int(max_epochs)), rule=rule_name(rule))
        super().__init__(rungs, direction=direction, static_directions=static_directions)
        self.rule = rule
        self.direction: Literal["maximize", "minimize"] = direction

    def record(self, number: int, value: float, seconds_per_epoch: float | None = None) -> Decision:
        trial, rung = self._reached(number, value, seconds_per_epoch)
        if rung >= len(self.ladder(number)) - 1:
            return "complete"
        if number not in self.protected and self._stops(number):
            return "stop"
        trial.promoted = rung
        return "continue"

    def _stops(self, number: int) -> bool:
        curves = {n: self._curve(n) for n in self.trials}
        mine = curves.pop(number)
        return bool(self.rule.should_stop(mine, tuple(curves.values())))

    def _curve(self, number: int) -> TrialCurve:
        values = self.trials[number].values
        ordered = []
        for rung in range(len(self.rungs.base)):  # the epochs it reached, in order
            if rung not in values:
                break
            ordered.append(values[rung])
        return TrialCurve(number, tuple(ordered), self.direction, self.rungs.max_epochs)

    # A rule never pauses a trial: nothing is waiting for a promotion.

    def promotion(self, held: Iterable[int], *, draining: bool = False) -> int | None:
        return None

    def is_promotable(self, number: int, *, draining: bool = False) -> bool:
        return False

    def paused_hopeless(self, held: Iterable[int]) -> list[int]:
        return list(held)

    def cutoff(self, bracket: int, rung: int) -> float | None:
        return None
