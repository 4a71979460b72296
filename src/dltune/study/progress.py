"""Hooks through which a running study tells the outside world what it is doing.

The library calls these; each does nothing by default. With several local workers, the other
processes' events reach the caller's listener too, through `worker_event`, from one relay
thread (calls are serialized: a listener need not be thread-safe). The command line plugs in a
live display (dltune.cli.display), a notebook its own (notebook_progress.py); a custom loop can
plug in its own. ProgressTracker keeps the counts such a display shows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import EpochReport
    from ..storage import TrialRecord
    from .start import StudyStart


class ProgressListener:
    """Override the hooks you need; the others do nothing."""

    def study_started(self, start: StudyStart) -> None:
        """Once, before the first trial: the study's name, storage, data, metric, budget,
        engine, schedule and notes (dltune.study.start.StudyStart)."""

    def trial_started(self, number: int, config: Config) -> None:
        """A trial is about to train."""

    def epoch_done(self, number: int, report: EpochReport) -> None:
        """A trial finished an epoch (its validation metric is in the report)."""

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        """A trial ended, as storage now holds it; `best` is the best so far (as
        dltune.storage.best_record gives it), or None."""

    def study_finished(self) -> None:
        """The loop ended (budget spent, interrupted or failed)."""

    def worker_event(self, worker: int, event: str, args: tuple[Any, ...]) -> None:
        """One of the hooks above ("trial_started", "epoch_done" or "trial_finished", with its
        arguments) for a trial of another local worker process (`worker` 1, 2, ...): by default
        the same hook as this process's own, so that a listener counts every worker's trials;
        a display that tags them by worker overrides this."""
        getattr(self, event)(*args)


class RunningTrial:
    """A trial in flight, as a display knows it: who trains it, its last epoch."""

    def __init__(self, worker: int, config: Config) -> None:
        self.worker, self.config = worker, config
        self.epoch: EpochReport | None = None


class ProgressTracker(ProgressListener):
    """The counts a display shows, over every local worker's trials (the other workers' events
    arrive through worker_event, tagged): trials done by state, those in flight, the best so
    far, time elapsed and left."""

    def __init__(self) -> None:
        self.start: StudyStart | None = None  # what the study said before its first trial
        self.started = time.perf_counter()
        self.done = 0
        self.counts: dict[str, int] = {}
        self.best: dict[str, Any] | None = None
        self.running: dict[int, RunningTrial] = {}  # trial number -> in flight, in start order
        self.workers_seen: set[int] = {0}
        self.worker = 0  # whose event is being handled: 0 this process, 1.. the others

    def study_started(self, start: StudyStart) -> None:
        self.start = start
        self.started = time.perf_counter()

    def worker_event(self, worker: int, event: str, args: tuple[Any, ...]) -> None:
        self.worker = worker
        self.workers_seen.add(worker)
        try:
            super().worker_event(worker, event, args)
        finally:
            self.worker = 0

    def trial_started(self, number: int, config: Config) -> None:
        self.running[number] = RunningTrial(self.worker, config)

    def epoch_done(self, number: int, report: EpochReport) -> None:
        if number in self.running:
            self.running[number].epoch = report

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        self.done += 1
        self.counts[record.state] = self.counts.get(record.state, 0) + 1
        self.best = better_best(self.best, best)
        self.running.pop(record.number, None)

    @property
    def several(self) -> bool:
        return len(self.workers_seen) > 1

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float | None:
        """Seconds left, by the timeout or by the pace of the trials done so far; None when
        neither tells."""
        timeout = self.start.timeout if self.start else None
        budget = self.start.trials if self.start else None
        left = []
        if timeout:
            left.append(timeout - self.elapsed())
        if budget and self.done:
            left.append(self.elapsed() / self.done * (budget - self.done))
        return min(left) if left else None

    def counts_text(self) -> str:
        return ", ".join(f"{n} {state}" for state, n in sorted(self.counts.items()))


def better_best(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """The better of two bests (each worker reports the study's best as it last read it: a
    late report from one must not hide a better one from another)."""
    if old is None or new is None:
        return new if new is not None else old
    if old["value"] is None or new["value"] is None:
        return new if new["value"] is not None else old
    if new["trial"] == old["trial"]:
        return new
    sign = -1 if new.get("direction") == "minimize" else 1
    return new if sign * new["value"] >= sign * old["value"] else old


def clock(seconds: float) -> str:
    """Seconds as minutes:seconds, e.g. 2:05."""
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
