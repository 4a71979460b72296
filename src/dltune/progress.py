"""Hooks through which a running study tells the outside world what it is doing.

The library calls these; each does nothing by default. The command line plugs in a live display
(see dltune.cli_display); a notebook or a custom loop can plug in its own.
"""

from __future__ import annotations

from typing import Any

from .config import Config
from .engine.result import EpochReport


class ProgressListener:
    """Override the hooks you need; the others do nothing."""

    def study_started(self, info: dict[str, Any]) -> None:
        """Once, before the first trial: study name, storage, data, metric, budget."""

    def trial_started(self, number: int, config: Config) -> None:
        """A trial is about to train."""

    def epoch_done(self, number: int, report: EpochReport) -> None:
        """A trial finished an epoch (its validation metric is in the report)."""

    def trial_finished(self, record: dict[str, Any], best: dict[str, Any] | None) -> None:
        """A trial ended (record as dltune.records.trial_record); best is the best so far."""

    def study_finished(self) -> None:
        """The loop ended (budget spent, interrupted or failed)."""
