"""Running a study: its settings, opening it, the loop (ask, train, report, tell), a trial's
life in storage, local workers, samplers, progress hooks, the test used once; tune() on top.

May import engine, schedule, space, data, models and storage; never analysis, report, export,
sweep or the command line. Names load lazily, so that the CLI's choices (settings.py) need no
torch.

    from dltune.study import tune
    result = tune(data="digits", trials=30)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .loop import Budget, StudyLoop
    from .progress import ProgressListener
    from .result import TuneResult
    from .run import run_study
    from .settings import TuneSettings
    from .start import StudyStart
    from .tuning import tune

_EXPORTS = {
    "Budget": ".loop",
    "StudyLoop": ".loop",
    "ProgressListener": ".progress",
    "StudyStart": ".start",
    "run_study": ".run",
    "TuneSettings": ".settings",
    "TuneResult": ".result",
    "tune": ".tuning",
}

__all__ = [
    "Budget",
    "ProgressListener",
    "StudyLoop",
    "StudyStart",
    "TuneResult",
    "TuneSettings",
    "run_study",
    "tune",
]


__getattr__ = lazy_names(__name__, _EXPORTS)
