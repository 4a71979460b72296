"""Successive halving over epochs: where the rungs are (rungs.py) and who goes on (asha.py); or
an expert's own rule for stopping trials early (rule.py: StoppingRule, one method).

Pure decisions on numbers: imports nothing of dltune's engines, storage, study or Optuna (the
study loop keeps the rung tables in storage: dltune.study.stored_rungs).
"""

from __future__ import annotations

from .asha import Decision, RungRecord, Scheduler
from .rule import RuleScheduler, StoppingRule, TrialCurve
from .rungs import Rungs

SCHEDULES = ("asha", "hyperband", "none")


def make_scheduler(
    schedule: str | StoppingRule,
    *,
    min_epochs: float,
    max_epochs: int,
    reduction: int,
    direction: str,
    cost_aware: bool = False,
    static_directions: tuple[str, ...] = (),
) -> Scheduler:
    """The scheduler `schedule` names: 'asha', 'hyperband' (ASHA in Hyperband's brackets) or
    'none' (every trial trains max_epochs, a single rung); or a StoppingRule object, asked
    after every epoch. `static_directions`: those of the objectives known before training
    (several objectives: successive halving on the front). The name was checked with the
    other settings (TuneSettings.validate)."""
    maximize = direction == "maximize"
    if not isinstance(schedule, str):
        return RuleScheduler(
            schedule,
            max_epochs,
            direction="maximize" if maximize else "minimize",
            static_directions=static_directions,
        )
    if schedule == "none":
        rungs = Rungs(max_epochs, max_epochs, reduction)
    else:  # a KeyError for a name nobody checked: a bug, not a user's mistake
        hyperband = {"asha": False, "hyperband": True}[schedule]
        rungs = Rungs(min(min_epochs, max_epochs), max_epochs, reduction, hyperband)
    return Scheduler(
        rungs,
        direction="maximize" if maximize else "minimize",
        cost_aware=cost_aware,
        static_directions=static_directions,
    )


__all__ = [
    "SCHEDULES",
    "Decision",
    "RuleScheduler",
    "RungRecord",
    "Rungs",
    "Scheduler",
    "StoppingRule",
    "TrialCurve",
    "make_scheduler",
]
