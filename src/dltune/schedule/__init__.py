"""Successive halving over epochs: where the rungs are (rungs.py) and who goes on (asha.py).

Pure decisions on numbers: imports nothing of dltune's engines, storage, study or Optuna (the
study loop keeps the rung tables in storage: dltune.study.stored_rungs).
"""

from __future__ import annotations

from .asha import Decision, RungRecord, Scheduler
from .rungs import Rungs

SCHEDULES = ("asha", "hyperband", "none")


def make_scheduler(
    name: str,
    *,
    min_epochs: float,
    max_epochs: int,
    reduction: int,
    direction: str,
    cost_aware: bool = False,
    static_directions: tuple[str, ...] = (),
) -> Scheduler:
    """The scheduler `name`: 'asha', 'hyperband' (ASHA in Hyperband's brackets) or 'none'
    (every trial trains max_epochs, a single rung). `static_directions`: those of the
    objectives known before training (several objectives: successive halving on the front)."""
    from ..errors import DLTuneError, param

    if name not in SCHEDULES:
        raise DLTuneError(
            f"{param('schedule', name)} is not known; choose from {', '.join(SCHEDULES)}"
        )
    if name == "none":
        rungs = Rungs(max_epochs, max_epochs, reduction)
    else:
        rungs = Rungs(min(min_epochs, max_epochs), max_epochs, reduction, name == "hyperband")
    return Scheduler(
        rungs,
        direction="maximize" if direction == "maximize" else "minimize",
        cost_aware=cost_aware,
        static_directions=static_directions,
    )


__all__ = ["SCHEDULES", "Decision", "RungRecord", "Rungs", "Scheduler", "make_scheduler"]
