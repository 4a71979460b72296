"""Rung results kept as trial attributes in storage, so that a resumed study, or another worker
on the same study, makes its decisions from the same tables (as Optuna's SuccessiveHalvingPruner
keeps its rungs as trial system attributes)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..schedule import RungRecord, Scheduler
from ..storage import schema

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def save(trial: optuna.Trial, record: RungRecord, ladder: tuple[float, ...]) -> None:
    """Write a trial's rung results (after each decision about it): one attribute, one write:
    {"bracket": b, "promoted": k, "values": {"<epochs>": value, ...}}, promoted being the
    highest rung index the trial was let past."""
    values = {
        f"{ladder[rung]:g}": (None if math.isnan(value) else value)
        for rung, value in sorted(record.values.items())
    }
    stored: dict[str, object] = {
        "bracket": record.bracket,
        "promoted": record.promoted,
        "values": values,
    }
    if record.static:  # the objectives known before training (several objectives)
        stored["static"] = list(record.static)
    schema.write_rungs(trial, stored)


def read(trial: FrozenTrial, scheduler: Scheduler) -> RungRecord | None:
    """A stored trial's rung record, or None when it holds none (or another ladder's)."""
    stored = schema.read_rungs(trial)
    if stored is None:
        return None
    bracket = int(stored["bracket"])
    if bracket >= scheduler.rungs.n_brackets:
        return None
    ladder = scheduler.rungs.of_bracket(bracket)
    index = {f"{epochs:g}": i for i, epochs in enumerate(ladder)}
    values = {}
    for epochs, value in stored.get("values", {}).items():
        if epochs in index:
            values[index[epochs]] = math.nan if value is None else float(value)
    promoted = min(int(stored.get("promoted", -1)), len(ladder) - 2)
    static = tuple(float(v) for v in stored.get("static", ()))
    if len(static) != len(scheduler.static_directions):
        return None  # another set of objectives' record
    return RungRecord(trial.number, bracket, values, promoted, static=static)


def load(study: optuna.Study, scheduler: Scheduler) -> None:
    """Bring the scheduler's tables up to date with storage."""
    records = (read(t, scheduler) for t in study.get_trials(deepcopy=False))
    scheduler.load(r for r in records if r is not None)
