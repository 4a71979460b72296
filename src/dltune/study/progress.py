"""Hooks through which a running study tells the outside world what it is doing.

The library calls these; each does nothing by default. With several local workers, the other
processes' events reach the caller's listener too, through `worker_event`, from one relay
thread (calls are serialized: a listener need not be thread-safe). The command line plugs in a
live display (dltune.cli.display); a notebook or a custom loop can plug in its own.
"""

from __future__ import annotations

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
