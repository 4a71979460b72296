"""Asynchronous successive halving (ASHA) with promotion, over epochs; Hyperband as brackets.

Plain data in, decisions out: no model, no Optuna (stored.py keeps the rung results in storage).

How a trial moves (Li et al., "A System for Massively Parallel Hyperparameter Tuning", 2020):
every trial starts at the lowest rung of its bracket. When it reaches a rung, its value there is
recorded; if it is among the top 1/reduction of the values recorded at that rung so far it goes
on to the next rung at once, otherwise it is paused, its weights and optimizer state kept. When
a slot frees, a paused trial that has since entered the top 1/reduction of its rung (because
worse trials arrived after it) is promoted and resumes where it stopped; only when none can be
promoted does a new configuration start. The top rung is max_epochs: a trial that reaches it is
complete.

Why promotion rather than ASHA's stopping variant (each trial runs on until it is not in the top
of a rung, as Optuna's SuccessiveHalvingPruner does): the stopping variant judges the first
trials at a rung against nobody and lets them all through, so early bad configurations train to
the end; promotion keeps them waiting until they have earned their place. And resuming from the
kept state (not retraining from scratch) makes a promotion cost only the new epochs.

Several objectives (issue 18: the metric and, known before training, size or latency): a
trial's point at a rung is its metric there and its static objectives (`RungRecord.static`,
with `static_directions`). The rung's entries are ranked by non-dominated sorting and crowding
distance (pareto.py, as MO-ASHA's NSGA-II selection), and the top 1/reduction by that order go
on. A trial that a rival at the same rung beats on the metric and on size or latency ranks
below it (its front comes later), so it goes on only once every trial that dominates it has.
(An earlier rule let on only the members of the top that none of the others dominated: in
effect the first front alone. Measured on MNIST-10k in 300 s, it stopped 144 of 148 trials at
the first rung and completed 2; RESULTS.md, issue 18.) Diverged trials (NaN) are ranked last,
after every front.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .pareto import pareto_order
from .rungs import Rungs

# "stop": the trial ends pruned at once (a StoppingRule's word, rule.py; ASHA pauses instead)
Decision = Literal["continue", "pause", "complete", "stop"]


@dataclass
class RungRecord:
    """One trial as the scheduler sees it: its bracket, its value at each rung reached."""

    number: int
    bracket: int
    values: dict[int, float] = field(default_factory=dict)  # rung index in its bracket -> value
    promoted: int = -1  # the highest rung it was let past (it may train to rung promoted + 1)
    seconds_per_epoch: float | None = None  # measured cost, for cost-aware promotion
    static: tuple[float, ...] = ()  # objectives known before training (size, latency)


class Scheduler:
    """ASHA over the rungs of `rungs` (Hyperband brackets when rungs.hyperband)."""

    def __init__(
        self,
        rungs: Rungs,
        *,
        direction: Literal["maximize", "minimize"] = "maximize",
        cost_aware: bool = False,
        static_directions: tuple[str, ...] = (),
    ) -> None:
        self.rungs = rungs
        self.maximize = direction == "maximize"
        self.cost_aware = cost_aware
        # the directions of the objectives known before training; empty: one objective
        self.static_directions = tuple(static_directions)
        self.trials: dict[int, RungRecord] = {}
        # trials that go on at every rung whatever their rank (their values still count for
        # the others): a cross-validated study's first trial (study/first_trial.py)
        self.protected: set[int] = set()

    # ---- state ---------------------------------------------------------------------------

    def load(self, records: Iterable[RungRecord]) -> None:
        """Take rung results from storage (a resumed study, or other workers' trials)."""
        for record in records:
            mine = self.trials.get(record.number)
            # A trial this process is deciding on is newer here than in storage.
            if mine is None or len(record.values) > len(mine.values):
                self.trials[record.number] = record

    def start(self, number: int, static: tuple[float, ...] = ()) -> RungRecord:
        """A new trial enters its bracket's lowest rung, with its objectives known before
        training (one per static direction)."""
        if len(static) != len(self.static_directions):
            raise ValueError(
                f"trial {number}: {len(static)} static objectives for "
                f"{len(self.static_directions)} directions"
            )
        record = RungRecord(number, self.rungs.bracket_of(number), static=tuple(static))
        self.trials[number] = record
        return record

    def ladder(self, number: int) -> tuple[float, ...]:
        return self.rungs.of_bracket(self.trials[number].bracket)

    def target(self, number: int) -> float:
        """How many epochs the trial may train before its next decision."""
        return self.ladder(number)[self.trials[number].promoted + 1]

    # ---- decisions -----------------------------------------------------------------------

    def record(self, number: int, value: float, seconds_per_epoch: float | None = None) -> Decision:
        """The trial reached its target rung with `value`: go on, pause, or it is complete."""
        trial, rung = self._reached(number, value, seconds_per_epoch)
        if rung == len(self.ladder(number)) - 1:
            return "complete"
        if number in self._top(trial.bracket, rung) or number in self.protected:
            trial.promoted = rung
            return "continue"
        return "pause"

    def _reached(
        self, number: int, value: float, seconds_per_epoch: float | None
    ) -> tuple[RungRecord, int]:
        """Note the trial's `value` at its target rung (and its pace): its record, that rung."""
        trial = self.trials[number]
        rung = trial.promoted + 1
        trial.values[rung] = value
        if seconds_per_epoch is not None:
            trial.seconds_per_epoch = seconds_per_epoch
        return trial, rung

    def promotion(self, held: Iterable[int], *, draining: bool = False) -> int | None:
        """A paused trial among `held` (those whose state this process keeps) that has earned
        the next rung, marked promoted; None when none has.

        `draining`: no new trial will start, so a rung will see no more entries; its top
        1/reduction is then rounded up rather than down (the best of two goes on), so that the
        best trials of a small study finish instead of all waiting for rivals that never come.

        Higher rungs first (they are closest to a finished result); within a rung the best
        value, or with cost_aware the cheapest epoch, since any trial in the top
        1/reduction has earned its rung and the cheaper one reaches the next result sooner.
        """
        candidates = [
            self.trials[number]
            for number in held
            if number in self.trials and self.is_promotable(number, draining=draining)
        ]
        if not candidates:
            return None
        chosen = min(candidates, key=self._promotion_order)
        chosen.promoted += 1
        return chosen.number

    def is_promotable(self, number: int, *, draining: bool = False) -> bool:
        """Whether a paused trial has earned its next rung (see promotion)."""
        trial = self.trials[number]
        rung = trial.promoted + 1
        return (
            rung in trial.values
            and rung < len(self.ladder(number)) - 1
            and number in self._top(trial.bracket, rung, round_up=draining)
        )

    def _promotion_order(self, trial: RungRecord) -> tuple[float, float, int]:
        rung = trial.promoted + 1
        epochs = self.ladder(trial.number)[rung]
        if self.cost_aware and trial.seconds_per_epoch is not None:
            second = trial.seconds_per_epoch
        elif self.static_directions:
            second = float(self._ranked(trial.bracket, rung).index(trial.number))
        else:
            second = self._sort_value(trial.values[rung])
        return (-epochs, second, trial.number)

    def paused_hopeless(self, held: Iterable[int]) -> list[int]:
        """Held trials that are paused below the top of their rung, worst first: the ones to
        let go when their kept state no longer fits."""
        paused = [
            self.trials[n]
            for n in held
            if n in self.trials and self.trials[n].promoted + 1 in self.trials[n].values
        ]
        return [
            t.number
            for t in sorted(
                paused,
                key=lambda t: (
                    self.ladder(t.number)[t.promoted + 1],
                    -self._position(t, t.promoted + 1),
                ),
            )
        ]

    def _position(self, trial: RungRecord, rung: int) -> float:
        """Where a trial stands at a rung, smaller better: its value, or its place in the
        rung's Pareto order."""
        if self.static_directions:
            return float(self._ranked(trial.bracket, rung).index(trial.number))
        return self._sort_value(trial.values[rung])

    # ---- ranking -------------------------------------------------------------------------

    def _sort_value(self, value: float) -> float:
        """Smaller sorts first (better); NaN (diverged) last."""
        if math.isnan(value):
            return math.inf
        return -value if self.maximize else value

    def _top(self, bracket: int, rung: int, *, round_up: bool = False) -> set[int]:
        """The trials in the top 1/reduction of a rung of a bracket: floor(n / reduction) of
        the n values recorded there (none while fewer than `reduction`), or ceil with
        `round_up`. Ties: earlier first."""
        entries = [
            (self._sort_value(t.values[rung]), t.number)
            for t in self.trials.values()
            if t.bracket == bracket and rung in t.values
        ]
        k = len(entries) // self.rungs.reduction
        if round_up:
            k = -(-len(entries) // self.rungs.reduction)
        if self.static_directions:
            top = self._ranked(bracket, rung)[:k]
            return {n for n in top if not math.isnan(self.trials[n].values[rung])}
        return {number for _, number in sorted(entries)[:k]}

    def _ranked(self, bracket: int, rung: int) -> list[int]:
        """A rung's entries by Pareto order (fronts, then crowding distance, then number);
        the diverged last."""
        entries = sorted(
            (t for t in self.trials.values() if t.bracket == bracket and rung in t.values),
            key=lambda t: t.number,
        )
        finite = [t for t in entries if not math.isnan(t.values[rung])]
        directions = ("maximize" if self.maximize else "minimize", *self.static_directions)
        points = [(t.values[rung], *t.static) for t in finite]
        order = [finite[i].number for i in pareto_order(points, directions)]
        return order + [t.number for t in entries if math.isnan(t.values[rung])]

    def cutoff(self, bracket: int, rung: int) -> float | None:
        """The worst value still in the top of a rung (None while nobody is, and with several
        objectives, where no single value is the line)."""
        if self.static_directions:
            return None
        top = self._top(bracket, rung)
        values = [self.trials[n].values[rung] for n in top]
        if not values:
            return None
        return min(values) if self.maximize else max(values)
