"""What a tuner prints, in Keras Tuner's words: the search space, the results, the progress.

search_space_summary() lists what build(hp) asks for on its defaults (a dry build, as Keras
Tuner's first build fills its space); results_summary() the best trials with their
hyperparameters and score; while search() runs (verbose), the notes of the run and one line a
trial, instead of Keras's progress bars.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..study.progress import ProgressListener

if TYPE_CHECKING:
    from ..storage import TrialRecord
    from ..study.start import StudyStart
    from .hypermodel import HyperParameters
    from .objective import Objective


def search_space_summary(hp: HyperParameters) -> str:
    """Keras Tuner's summary of a space: its size, then each hyperparameter and its arguments."""
    specs = hp.specs()
    lines = ["Search space summary", f"Default search space size: {len(specs)}"]
    for name, spec in specs.items():
        lines.append(f"{name} ({spec.kind})")
        lines.append(repr(dict(spec.args)))
    return "\n".join(lines)


def results_summary(
    records: list[TrialRecord], project_dir: str, objective: Objective, shown: int
) -> str:
    """Keras Tuner's summary of results: the `shown` best trials, each with its values."""
    lines = [
        "Results summary",
        f"Results in {project_dir}",
        f"Showing {shown} best trials",
        repr(objective),
    ]
    for record in records[:shown]:
        lines += ["", f"Trial {record.number} summary", "Hyperparameters:"]
        lines += [f"{name}: {value}" for name, value in record.config.get("model", {}).items()]
        best_epoch = f" (epoch {record.best_epoch})" if record.best_epoch else ""
        lines.append(f"Score: {record.value}{best_epoch}")
    return "\n".join(lines)


class SearchProgress(ProgressListener):
    """search(verbose=1): the run's notes, then one line a trial as it ends."""

    def __init__(self, objective: Objective, notes: list[str], say: Any = print) -> None:
        self.objective = objective
        self.notes = notes
        self.say = say
        self.started = time.perf_counter()

    def study_started(self, start: StudyStart) -> None:
        for note in [*self.notes, *start.notes]:
            self.say(f"note: {note}")
        count = "until the timeout" if start.trials is None else f"{start.trials} trial(s)"
        schedule = "each trained to its epochs" if start.schedule == "none" else start.schedule
        self.say(f"Search: {count}, {schedule} (engine: {start.engine})")

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        name = self.objective.name
        measured = [v for v in record.curve if v == v]  # without NaN
        if record.value is not None:
            value = record.value
        elif measured:
            pick = max if self.objective.direction == "max" else min
            value = pick(measured)
        else:
            value = None
        shown = "no value" if value is None else f"{name} {value:.4f}"
        so_far = f"; best {name} so far {best['value']:.4f}" if best else ""
        elapsed = time.perf_counter() - self.started
        self.say(
            f"Trial {record.number} {record.state} after {record.epochs} epoch(s): "
            f"{shown}{so_far}; {elapsed:.0f}s elapsed"
        )
