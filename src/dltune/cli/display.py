"""What the command line shows while a study or a sweep runs: a live display on a terminal, one
plain line per trial (or epoch of a sweep) in logs and pipes. tables.py has the tables.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from ..config import Config
from ..engine.result import EpochReport
from ..storage import TrialRecord, display_url
from ..study.progress import ProgressListener, ProgressTracker, RunningTrial, clock
from ..sweep.values import label
from .tables import config_text, fmt_value

if TYPE_CHECKING:
    from ..study.start import StudyStart


class _Tracker(ProgressTracker):
    """The tracker's counts, and the tag of a worker's lines when several workers train."""

    def tag(self, worker: int | None) -> str:
        """`[w1] ` before a line of worker 1's when several workers train, else nothing."""
        return f"[w{worker or 0}] " if self.several else ""


class PlainProgress(_Tracker):
    """One line per trial, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def study_started(self, start: StudyStart) -> None:
        super().study_started(start)
        budget = start.trials if start.trials is not None else "until timeout"
        self.console.print(
            f"study {start.study!r} in {display_url(start.storage)} · {start.data} · "
            f"metric {start.metric} · {start.existing_trials} trials so far · "
            f"this run: {budget} trials"
            + (f", timeout {start.timeout:g}s" if start.timeout else ""),
            highlight=False,
        )
        _print_schedule_and_notes(self.console, start)

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        super().trial_finished(record, best)
        best_text = f"best {fmt_value(best['value'])} (#{best['trial']})" if best else "no best"
        self.console.print(
            f"{self.tag(self.worker or record.worker)}trial {record.number:>4} {record.state:<9} "
            f"{fmt_value(record.value)} after {record.epochs} epochs "
            f"in {record.seconds or 0:.1f}s · {best_text} · {config_text(record.config)}",
            highlight=False,
            markup=False,  # "[w1]" is no style
        )


class LiveProgress(_Tracker):
    """A live panel on a terminal: trials done, the best so far, time elapsed and left."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def _render(self) -> Group:
        start = self.start
        lines = [
            Text.assemble(
                ("study ", "dim"),
                (str(start.study if start else None), "bold"),
                ("  storage ", "dim"),
                display_url(str(start.storage if start else None)),
            ),
            Text.assemble(("data ", "dim"), str(start.data if start else None)),
        ]
        budget = start.trials if start else None
        done = f"{self.done}/{budget}" if budget else str(self.done)
        remaining = self.remaining()
        lines.append(
            Text.assemble(
                ("trials ", "dim"),
                (done, "bold"),
                f"  ({self.counts_text() or 'none yet'})",
                ("  elapsed ", "dim"),
                clock(self.elapsed()),
                ("  left ", "dim"),
                "~" + clock(remaining) if remaining is not None else "?",
            )
        )
        lines.extend(self._now_lines())
        if self.best:
            lines.append(
                Text.assemble(
                    ("best ", "dim"),
                    (f"{self.best['metric']} {fmt_value(self.best['value'])}", "bold green"),
                    f" (#{self.best['trial']}, epoch {self.best['best_epoch']})  ",
                    config_text(self.best["params"]),
                )
            )
        return Group(*lines)

    def _now_lines(self) -> list[Text]:
        """One line per worker: its latest trial in flight (and how many more it trains)."""
        by_worker: dict[int, list[tuple[int, RunningTrial]]] = {}
        for number, run in self.running.items():
            by_worker.setdefault(run.worker, []).append((number, run))
        metric = self.start.metric if self.start else None
        lines = []
        for worker in sorted(by_worker):
            number, run = by_worker[worker][-1]
            epoch, config = run.epoch, run.config
            progress = (
                f"epoch {epoch.epoch}/{config.epochs} {metric} {epoch.val_metric:.4f}"
                if epoch
                else "starting"
            )
            more = len(by_worker[worker]) - 1
            extra = f" (+{more} more)" if more else ""
            label = f"w{worker} " if self.several else "now "
            lines.append(
                Text.assemble((label, "dim"), f"#{number} {progress}{extra}  {config.short()}")
            )
        return lines

    def study_started(self, start: StudyStart) -> None:
        super().study_started(start)
        _print_schedule_and_notes(self.console, start)
        self.live.update(self._render())
        self.live.start()

    def trial_started(self, number: int, config: Config) -> None:
        super().trial_started(number, config)
        self.live.update(self._render())

    def epoch_done(self, number: int, report: EpochReport) -> None:
        super().epoch_done(number, report)
        self.live.update(self._render())

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        super().trial_finished(record, best)
        self.live.update(self._render())

    def study_finished(self) -> None:
        self.running.clear()
        self.live.update(self._render())
        self.live.stop()


def _print_schedule_and_notes(console: Console, start: StudyStart) -> None:
    if start.schedule:
        console.print(f"schedule: {start.schedule}", highlight=False)
    for note in start.notes:
        console.print(f"note: {note}", highlight=False)


def make_progress(console: Console) -> ProgressListener:
    return LiveProgress(console) if console.is_terminal else PlainProgress(console)


class SweepProgress(ProgressListener):
    """One line per epoch of the population: runs training, the best value so far, time."""

    def __init__(self, console: Console, param: str) -> None:
        self.console = console
        self.param = param
        self.values: dict[int, str] = {}  # trial number -> the value it trains
        self.latest: dict[int, EpochReport] = {}  # running trial -> its last epoch
        self.epochs = 0
        self.shown = 0  # the last epoch printed
        self.diverged = 0
        self.started = time.perf_counter()
        self.metric = "value"

    def study_started(self, start: StudyStart) -> None:
        self.started = time.perf_counter()
        self.metric = str(start.metric)
        self.console.print(
            f"sweep {start.study!r} in {display_url(start.storage)} · {start.data} · "
            f"{start.trials} runs to train",
            highlight=False,
            markup=False,
        )

    def trial_started(self, number: int, config: Config) -> None:
        self.epochs = max(self.epochs, config.epochs)
        value = getattr(config, self.param, None) if self.param != "epochs" else None
        if self.param == "units":
            value = config.units[0]
        self.values[number] = "all" if value is None else label(value)

    def epoch_done(self, number: int, report: EpochReport) -> None:
        self.latest[number] = report
        self._maybe_print()

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        self.diverged += record.state == "diverged"
        self.latest.pop(record.number, None)
        self._maybe_print()

    def _maybe_print(self) -> None:
        """Print an epoch once every running run has finished it."""
        if not self.latest:
            return
        epoch = min(r.epoch for r in self.latest.values())
        if epoch <= self.shown:
            return
        self.shown = epoch
        scores = [(r.val_metric, n) for n, r in self.latest.items() if math.isfinite(r.val_metric)]
        best = ""
        if scores:
            value, number = max(scores) if self.metric == "accuracy" else min(scores)
            best = f" · best now {self.param}={self.values.get(number)} {self.metric} {value:.4f}"
        elapsed = time.perf_counter() - self.started
        self.console.print(
            f"epoch {epoch}/{self.epochs} · {len(self.latest)} runs training{best}"
            + (f" · {self.diverged} diverged" if self.diverged else "")
            + f" · {elapsed:.0f}s",
            highlight=False,
            markup=False,
        )
