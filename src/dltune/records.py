"""What storage holds, read back as plain data: trials, the best trial, a study's metadata.

The CLI's `best`, `trials` and `studies`, the end-of-run summary and (later) the report all read
studies through these functions, so there is one mapping from Optuna's trials to dltune's terms.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

# Keys of dltune's attributes in storage.
STUDY_META = "dltune"  # study user attr: space, data, metric, direction, seeds, version
TEST_PREFIX = "test:"  # study user attr per trial number: the test metric, evaluated once
STATE_ATTR = "dltune_state"  # trial user attr: "diverged", "failed", "interrupted", "paused"


def trial_state(trial: FrozenTrial) -> str:
    """dltune's state of a trial: complete, pruned, diverged, failed, running, interrupted."""
    from optuna.trial import TrialState

    marked = trial.user_attrs.get(STATE_ATTR)
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "diverged" if marked == "diverged" else "pruned"
    if trial.state == TrialState.FAIL:
        # A trial failed without dltune's mark was found stale: its process died mid-trial.
        return "failed" if marked == "failed" else "interrupted"
    if trial.state == TrialState.RUNNING:
        return "paused" if marked == "paused" else "running"
    return "waiting"


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def trial_record(trial: FrozenTrial) -> dict[str, Any]:
    """One trial as plain data (JSON-ready)."""
    attrs = trial.user_attrs
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return {
        "trial": trial.number,
        "state": trial_state(trial),
        "value": _finite_or_none(trial.value) if trial.values else None,
        # whole epochs (step 0 holds a value measured inside the first epoch, see loops.py)
        "epochs": sum(1 for step in trial.intermediate_values if step >= 1),
        "best_epoch": attrs.get("best_epoch"),
        "diverged_epoch": attrs.get("diverged_epoch"),
        "params": attrs.get("config", dict(trial.params)),
        "seed": attrs.get("seed"),
        "seconds": duration,
        "error": attrs.get("error"),
    }


def study_meta(study: optuna.Study) -> dict[str, Any]:
    meta = study.user_attrs.get(STUDY_META)
    return meta if isinstance(meta, dict) else {}


def test_result(study: optuna.Study, trial_number: int) -> dict[str, Any] | None:
    result = study.user_attrs.get(f"{TEST_PREFIX}{trial_number}")
    return result if isinstance(result, dict) else None


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial with the best value, or None when no trial completed."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    # As Optuna's study.best_trial (the first of the best), without reading the trials twice.
    pick = max if study.direction.name == "MAXIMIZE" else min
    return pick(complete, key=lambda t: t.value if t.value is not None else math.nan)


def best_record(study: optuna.Study) -> dict[str, Any] | None:
    """The best trial as plain data, with the study's name, metric and test result."""
    best = best_trial(study)
    if best is None:
        return None
    meta = study_meta(study)
    record = trial_record(best)
    test = test_result(study, best.number)
    return {
        "study": study.study_name,
        "trial": best.number,
        "value": record["value"],
        "metric": meta.get("metric"),
        "direction": study.direction.name.lower(),
        "params": record["params"],
        "best_epoch": record["best_epoch"],
        "epochs": record["epochs"],
        "seed": record["seed"],
        "test": test.get("value") if test else None,
        "data": meta.get("data", {}).get("name"),
    }


def trial_records(study: optuna.Study) -> list[dict[str, Any]]:
    return [trial_record(t) for t in study.get_trials(deepcopy=False)]


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        state = trial_state(t)
        counts[state] = counts.get(state, 0) + 1
    return counts
