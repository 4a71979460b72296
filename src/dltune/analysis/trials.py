"""The trials of a study as the analysis sees them: one plain record per trial, read from storage.

Everything in dltune.analysis starts from these views, so the analysis needs nothing but what
storage holds (no engine, no data, no weights).

A trial's *score* is the best validation value it reached, at whatever epoch it stopped: under
successive halving most trials stop early, and leaving them out would hide exactly the regions
that did not work. A diverged trial that never reported a finite value scores as the worst value
seen in the study, so that it counts against its region instead of vanishing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import vocabulary
from ..records import study_meta, trial_state

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

HYPERPARAMETERS = vocabulary.HYPERPARAMETERS  # "epochs" here: each trial's best epoch
CATEGORICAL = ("activation", "loss", "optimizer")
LOG_SCALE = ("units", "learning_rate", "batch_size")
FINISHED = ("complete", "pruned", "diverged")


@dataclass
class TrialView:
    number: int
    state: str  # complete, pruned, diverged, paused, running, failed, interrupted
    params: dict[str, Any]  # the eight hyperparameters (units: the widest layer)
    widths: list[int]  # every hidden layer's width
    config: dict[str, Any]  # the configuration as stored (Config.to_dict)
    curve: list[float]  # the validation metric after epoch 1, 2, ... (NaN where diverged)
    partial: float | None = None  # a value measured inside the first epoch (sub-epoch rung)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)  # when tracked (sweeps)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    diverged_epoch: int | None = None
    seconds: float | None = None
    score: float | None = None  # the best finite validation value (see the module's note)

    @property
    def epochs(self) -> int:
        return len(self.curve)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.number,
            "state": self.state,
            "params": self.params,
            "widths": self.widths,
            "config": self.config,
            "score": self.score,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "diverged_epoch": self.diverged_epoch,
            "seconds": self.seconds,
        }


@dataclass
class StudyTrials:
    """The trials of one study, with what the analysis needs to read them."""

    name: str
    maximize: bool
    metric: str
    trials: list[TrialView]
    space: dict[str, Any]  # the space as stored (SearchSpace.to_dict)
    data: dict[str, Any]  # name, task, description, fingerprint
    tests: dict[int, float]  # trial number -> test metric, where evaluated

    @property
    def finished(self) -> list[TrialView]:
        return [t for t in self.trials if t.finished]

    @property
    def scored(self) -> list[TrialView]:
        return [t for t in self.trials if t.finished and t.score is not None]

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def best_of(self, values: list[float]) -> float:
        return max(values) if self.maximize else min(values)

    def ranked(self) -> list[TrialView]:
        """Scored trials, best first."""
        return sorted(self.scored, key=lambda t: t.score or 0.0, reverse=self.maximize)

    def best(self) -> TrialView | None:
        """The best complete trial (as Optuna's best_trial), else the best scored one."""
        complete = [t for t in self.ranked() if t.state == "complete"]
        if complete:
            return complete[0]
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def varied(self) -> list[str]:
        """The hyperparameters that took more than one value among the finished trials."""
        names = []
        for name in HYPERPARAMETERS:
            values = {_hashable(t.params.get(name)) for t in self.finished}
            values.discard(None)
            if len(values) > 1:
                names.append(name)
        return names


def load_trials(study: optuna.Study) -> StudyTrials:
    """Every trial of `study` as a TrialView, with scores; storage is read once."""
    from ..vocabulary import METRICS

    meta = study_meta(study)
    maximize = study.direction.name == "MAXIMIZE"
    metric = meta.get("metric") or "value"
    if metric in METRICS:
        maximize = METRICS[metric][1] == "maximize"
    views = [_view(t) for t in study.get_trials(deepcopy=False)]
    _score(views, maximize)
    tests = {}
    for key, value in study.user_attrs.items():
        if key.startswith("test:") and isinstance(value, dict) and value.get("value") is not None:
            tests[int(key.split(":", 1)[1])] = float(value["value"])
    return StudyTrials(
        name=study.study_name,
        maximize=maximize,
        metric=metric,
        trials=views,
        space=meta.get("space", {}),
        data=meta.get("data", {}),
        tests=tests,
    )


def _view(trial: FrozenTrial) -> TrialView:
    attrs = trial.user_attrs
    config = attrs.get("config") or {}
    widths = [int(u) for u in config.get("units", [])]
    params = {key: config.get(key) for key in HYPERPARAMETERS if key != "units"}
    params["units"] = max(widths) if widths else None
    # "epochs" as a hyperparameter is what the trial needed: its best epoch.
    params["epochs"] = attrs.get("best_epoch")
    steps = sorted(step for step in trial.intermediate_values if step >= 1)
    curve = [_float(trial.intermediate_values[step]) for step in steps]
    partial = trial.intermediate_values.get(0)
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialView(
        number=trial.number,
        state=trial_state(trial),
        params=params,
        widths=widths,
        config=config,
        curve=curve,
        partial=_float(partial) if partial is not None else None,
        train_loss=[_float(v) for v in attrs.get("train_loss", [])],
        val_loss=[_float(v) for v in attrs.get("val_loss", [])],
        train_metric=[_float(v) for v in attrs.get("train_metric", [])],
        epoch_seconds=[float(v) for v in attrs.get("epoch_seconds", [])],
        best_epoch=attrs.get("best_epoch"),
        diverged_epoch=attrs.get("diverged_epoch"),
        seconds=duration,
    )


def _score(views: list[TrialView], maximize: bool) -> None:
    pick = max if maximize else min
    for view in views:
        finite = [v for v in view.curve if math.isfinite(v)]
        if not finite and view.partial is not None and math.isfinite(view.partial):
            finite = [view.partial]  # stopped inside its first epoch: judged on that value
        view.score = pick(finite) if finite else None
    seen = [v.score for v in views if v.score is not None]
    worst = (min if maximize else max)(seen) if seen else None
    for view in views:
        if view.score is None and view.state == "diverged":
            view.score = worst


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
