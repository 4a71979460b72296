"""What storage holds, read back as typed records: trials, the best trial, state counts.

:func:`read_trial` is the one reader that turns a stored Optuna trial into dltune's terms (a
:class:`TrialRecord`): the CLI's `best`, `trials` and `studies`, the live display, the analysis,
the sweeps and the exports all read trials through it.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..vocabulary import COSTS, FINISHED_STATES
from . import schema

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def trial_state(trial: FrozenTrial) -> str:
    """dltune's state of a trial: complete, pruned, diverged, failed, running, paused,
    interrupted or waiting."""
    from optuna.trial import TrialState

    marked = trial.user_attrs.get(schema.STATE)
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


@dataclass
class TrialRecord:
    """One stored trial in dltune's terms (lists hold NaN where an epoch has no value)."""

    number: int
    state: str  # see trial_state
    value: float | None = None  # the objective of a complete trial (its best epoch's value)
    config: dict[str, Any] = field(default_factory=dict)  # as stored (Config.to_dict)
    seed: int | None = None
    curve: list[float] = field(default_factory=list)  # validation metric after epoch 1, 2, ...
    partial: float | None = None  # a value measured inside the first epoch (sub-epoch rung)
    train_loss: list[float] = field(default_factory=list)
    start_loss: float = math.nan  # the first batch's training loss, before any step; NaN: unknown
    val_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)  # when tracked (sweeps)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    diverged_epoch: int | None = None
    stopped_early: bool = False
    seconds: float | None = None  # wall time from start to end
    started: datetime.datetime | None = None  # Optuna's datetime_start (naive local time)
    error: str | None = None
    worker: int | None = None
    sweep_member: tuple[int | None, int] | None = None  # (value index, seed index)
    parameters: int | None = None  # its network's, counted before it trained
    flops: int | None = None  # of one prediction (Linear and convolution layers)
    # median milliseconds of one prediction on a batch of 1 and of 256; None: not measured
    latency: float | None = None
    latency_256: float | None = None
    # a complete trial's told values: the metric, then the study's costs (one: [value])
    values: list[float] | None = None
    # a cross-validated trial's folds (schema.FOLDS: values at its best epoch, spread, each
    # fold's best epoch, value, seed and curve); None in holdout
    folds: dict[str, Any] | None = None

    def cost(self, name: str) -> float | None:
        """One of vocabulary.COSTS as this trial measured it (None: not measured)."""
        value = getattr(self, name) if name in COSTS else None
        return float(value) if value is not None else None

    @property
    def epochs(self) -> int:
        """Whole epochs trained (a value inside the first epoch is not one)."""
        return len(self.curve)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def widths(self) -> list[int]:
        """Every hidden layer's width."""
        return [int(u) for u in self.config.get("units", [])]

    def to_json(self) -> dict[str, Any]:
        """The trial as `dltune trials --json` prints it."""
        return {
            "trial": self.number,
            "state": self.state,
            "value": self.value,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "diverged_epoch": self.diverged_epoch,
            "params": self.config,
            "seed": self.seed,
            "seconds": self.seconds,
            "parameters": self.parameters,
            "flops": self.flops,
            "latency": self.latency,
            "latency_256": self.latency_256,
            "values": self.values,
            "folds": self.folds,
            "error": self.error,
        }


R = TypeVar("R", bound=TrialRecord)


@overload
def read_trial(trial: FrozenTrial) -> TrialRecord: ...
@overload
def read_trial(trial: FrozenTrial, as_type: type[R]) -> R: ...


def read_trial(trial: FrozenTrial, as_type: type[Any] = TrialRecord) -> Any:
    """The one reader of a stored trial (`as_type`: a TrialRecord subclass, e.g. the
    analysis's, that adds fields with defaults)."""
    attrs = trial.user_attrs
    points = schema.read_curve(trial)
    steps = sorted(step for step in points if step >= 1)
    partial = points.get(0)
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    footprint = schema.read_footprint(trial)
    return as_type(
        number=trial.number,
        state=trial_state(trial),
        value=_finite_or_none(trial.values[0]) if trial.values else None,
        config=attrs.get(schema.CONFIG, dict(trial.params)),
        seed=attrs.get(schema.SEED),
        curve=[_float(points[step]) for step in steps],
        partial=_float(partial) if partial is not None else None,
        train_loss=[_float(v) for v in attrs.get(schema.TRAIN_LOSS, [])],
        start_loss=_float(attrs.get(schema.START_LOSS, math.nan)),
        val_loss=[_float(v) for v in attrs.get(schema.VAL_LOSS, [])],
        train_metric=[_float(v) for v in attrs.get(schema.TRAIN_METRIC, [])],
        epoch_seconds=[float(v) for v in attrs.get(schema.EPOCH_SECONDS, [])],
        best_epoch=attrs.get(schema.BEST_EPOCH),
        diverged_epoch=attrs.get(schema.DIVERGED_EPOCH),
        stopped_early=bool(attrs.get(schema.STOPPED_EARLY, False)),
        seconds=duration,
        started=trial.datetime_start,
        error=attrs.get(schema.ERROR),
        worker=attrs.get(schema.WORKER),
        sweep_member=schema.read_sweep_member(trial),
        parameters=_whole(footprint.get("parameters")),
        flops=_whole(footprint.get("flops")),
        latency=footprint.get("latency"),
        latency_256=footprint.get("latency_256"),
        values=[_float(v) for v in trial.values] if trial.values else None,
        folds=schema.read_folds(trial),
    )


@overload
def read_trials(study: optuna.Study) -> list[TrialRecord]: ...
@overload
def read_trials(study: optuna.Study, as_type: type[R]) -> list[R]: ...


def read_trials(study: optuna.Study, as_type: type[Any] = TrialRecord) -> list[Any]:
    """Every trial of `study`, read once."""
    return [read_trial(t, as_type) for t in study.get_trials(deepcopy=False)]


def _whole(value: float | None) -> int | None:
    return int(value) if value is not None else None


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def study_meta(study: optuna.Study) -> dict[str, Any]:
    """The study's dltune metadata (space, data, metric, seeds), or {} if it has none."""
    return schema.read_study_meta(study)


def study_summary_meta(summary: Any) -> dict[str, Any]:
    """The dltune metadata of one of Optuna's study summaries (Storage.summaries)."""
    return schema.read_study_meta(summary)


def test_result(study: optuna.Study, trial_number: int) -> dict[str, Any] | None:
    return schema.read_test_result(study, trial_number)


def best_trial(study: optuna.Study) -> TrialRecord | None:
    """The study's best trial, or None when no trial completed: the one chosen at the study's
    end (schema.CHOICE, e.g. among the top candidates re-evaluated with other seeds) while the
    trials it chose among are still all the complete ones; otherwise (no choice made yet, or
    trials completed since) the complete trial with the best value, the first of the best.
    Every reader (best, the test, train-best, export, sweeps, the report) goes through here,
    so all see the same trial."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    choice = current_choice(study, len(complete))
    if choice is not None:
        chosen = next((t for t in complete if t.number == choice["trial"]), None)
        if chosen is not None:
            return read_trial(chosen)
    return read_trial(max_trial(complete, maximizes(study)))


def max_trial(complete: list[FrozenTrial], maximize: bool) -> FrozenTrial:
    """As Optuna's study.best_trial (the first of the best), without reading the trials twice:
    the choice by one run's validation value alone."""
    pick = max if maximize else min
    return pick(complete, key=lambda t: t.values[0] if t.values else math.nan)


def directions(study: optuna.Study) -> list[str]:
    """The study's objectives' directions ("maximize" or "minimize"): the metric's first, then
    its costs' (a study of several objectives; Optuna's study.direction raises for those)."""
    return [d.name.lower() for d in study.directions]


def maximizes(study: optuna.Study) -> bool:
    """Whether the study's metric (its first objective) is to maximize."""
    return directions(study)[0] == "maximize"


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objectives by name (its metric names), "objective k" where unnamed."""
    names = schema.read_metric_names(study) or []
    count = len(study.directions)
    return [names[k] if k < len(names) else f"objective {k}" for k in range(count)]


def current_choice(source: Any, complete: int) -> dict[str, Any] | None:
    """The stored choice, if it was made among `complete` complete trials (the study's count
    now): a trial completed since makes it stale until the next study end chooses again."""
    choice = schema.read_choice(source)
    if choice is None or choice.get("complete") != complete:
        return None
    return choice


SINGLE_RUN = "the best validation value of a single run"  # how a trial is chosen without a choice


def best_record(study: optuna.Study) -> dict[str, Any] | None:
    """The best trial as plain data (what `dltune best --json` prints), with the study's name,
    metric, test result and how it was chosen (`chosen_by`, a sentence; `choice`, the stored
    choice's figures, or None when it was the single-run maximum)."""
    best = best_trial(study)
    if best is None:
        return None
    attrs = schema.study_attrs(study)  # one read for the metadata, the test and the choice
    meta = schema.read_study_meta(attrs)
    test = schema.read_test_result(attrs, best.number)
    complete = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE")
    choice = current_choice(attrs, complete)
    if choice is not None and choice.get("trial") != best.number:
        choice = None
    record = {
        "study": study.study_name,
        "trial": best.number,
        "value": best.value,
        "metric": meta.get("metric"),
        "direction": directions(study)[0],
        "params": best.config,
        "best_epoch": best.best_epoch,
        "epochs": best.epochs,
        "seed": best.seed,
        "test": test.get("value") if test else None,
        "data": meta.get("data", {}).get("name"),
        "chosen_by": choice.get("how", SINGLE_RUN) if choice else SINGLE_RUN,
        "choice": _choice_fields(choice),
        "validation": schema.read_validation(attrs) or {"kind": "holdout"},
        "folds": _fold_fields(best.folds),
        "ensemble": _ensemble_fields(schema.read_ensemble(attrs), complete),
        # the test of what the study delivers: its ensemble's, else its best trial's
        "delivered_test": _delivered_test(schema.read_ensemble(attrs), test, complete),
    }
    record["optimism"] = delivered_optimism(record)
    return record


def _fold_fields(folds: dict[str, Any] | None) -> dict[str, Any] | None:
    """The best trial's folds for `best --json`: each fold's value at its best epoch, spread."""
    if folds is None:
        return None
    return {"values": folds.get("values"), "spread": folds.get("spread")}


def current_ensemble(ensemble: dict[str, Any] | None, complete: int) -> dict[str, Any] | None:
    """The stored ensemble while it stands: chosen among the complete trials there are now
    (trials completed since, by a continued study, call for a new choice)."""
    if ensemble is None:
        return None
    members = ensemble.get("members") or []
    return ensemble if members and ensemble.get("complete", complete) == complete else None


def _ensemble_fields(ensemble: dict[str, Any] | None, complete: int) -> dict[str, Any] | None:
    ensemble = current_ensemble(ensemble, complete)
    if ensemble is None:
        return None
    keys = ("members", "score", "best_single", "test", "rows", "weights_from")
    return {key: ensemble.get(key) for key in keys}


def _delivered_test(
    ensemble: dict[str, Any] | None, test: dict[str, Any] | None, complete: int
) -> float | None:
    ensemble = current_ensemble(ensemble, complete)
    if ensemble is not None and ensemble.get("test") is not None:
        return float(ensemble["test"])
    return test.get("value") if test else None


def _choice_fields(choice: dict[str, Any] | None) -> dict[str, Any] | None:
    """The choice's figures for `best --json` (None: chosen by a single run's maximum)."""
    if choice is None or choice.get("rule") == "max":
        return None
    keys = ("rule", "candidates", "seeds", "rounds", "single", "reevaluated", "optimism")
    return {key: choice.get(key) for key in (*keys, "extra_epochs")}


def delivered_optimism(record: dict[str, Any]) -> float | None:
    """The optimism of the choice, from `best_record`'s fields: the validation value of what
    the study delivers minus its test, signed so that positive means the validation promised
    more than the test gave (for a minimized metric, test minus validation). What is delivered
    is compared with itself: the ensemble's out-of-fold (or validation) score and its test
    where the study delivers one, else the best trial's value and its test (in k-fold, its
    bag's). None until that test is measured."""
    ensemble = record.get("ensemble")
    if ensemble is not None and ensemble.get("test") is not None:
        validation, test = ensemble.get("score"), ensemble.get("test")
    else:
        validation, test = record.get("value"), record.get("test")
    if validation is None or test is None:
        return None
    gap = float(validation) - float(test)
    if record.get("direction") == "minimize":
        gap = -gap
    return gap if math.isfinite(gap) else None


def trial_records(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial as `dltune trials --json` prints it."""
    return [record.to_json() for record in read_trials(study)]


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        state = trial_state(t)
        counts[state] = counts.get(state, 0) + 1
    return counts
