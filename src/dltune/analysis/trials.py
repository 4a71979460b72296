"""The trials of a study as the analysis sees them: one plain record per trial, read from storage.

Everything in dltune.analysis starts from these views, so the analysis needs nothing but what
storage holds (no engine, no data, no weights).

A trial's *score* is the best validation value it reached, at whatever epoch it stopped: under
successive halving most trials stop early, and leaving them out would hide exactly the regions
that did not work. A diverged trial that never reported a finite value scores as the worst value
seen in the study, so that it counts against its region instead of vanishing.

A trial is diverged by the engines' one rule (dltune.engine.divergence, torch-free), applied here
to the curves storage holds: a pruned trial that meets it (trained before the engines applied
the whole rule, or stopped by the scheduler at the epoch it met it) counts as diverged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..engine.divergence import NOT_FINITE, chance, divergence
from ..space.rules import NETWORK_KEYS
from ..storage import TrialRecord, directions, maximizes, objective_names, read_trials, schema
from ..storage.records import current_choice
from ..vocabulary import BOOLEAN, CATEGORICAL, HYPERPARAMETERS

if TYPE_CHECKING:
    import optuna


@dataclass
class TrialView(TrialRecord):
    """A stored trial (storage's TrialRecord) with what the analysis adds: its score."""

    score: float | None = None  # the best finite validation value (see the module's note)
    # How a diverged trial diverged (engine.divergence: "not finite", "at chance", "exploded")
    diverged_how: str | None = None

    @cached_property
    def params(self) -> dict[str, Any]:
        """The hyperparameters as the analysis compares them: the widest layer's units (and
        the most filters, the largest kernel), and "epochs" as what the trial needed (its best
        epoch). A network without hidden layers (layers 0) has units None."""
        params = {key: self.config.get(key) for key in HYPERPARAMETERS if key != "units"}
        widths = self.widths
        params["units"] = max(widths) if widths else None
        params["epochs"] = self.best_epoch
        # A dense network has no blocks: conv_layers 0, and the block keys unset
        params["conv_layers"] = int(self.config.get("conv_layers", 0))
        filters = self.config.get("filters") or []
        params["filters"] = max(filters) if filters else None
        kernels = self.config.get("kernel_size")  # one int for every block, or one per block
        params["kernel_size"] = max(kernels) if isinstance(kernels, list) and kernels else kernels
        # A user model's own hyperparameters, as its build(hp) named them. The network keys
        # are dltune's placeholders there (layers 0, activation linear): none of them is the
        # build's unless it names one itself.
        own = self.config.get("model")
        if own:
            params.update(dict.fromkeys([k for k in NETWORK_KEYS if k in params], None))
            params.update(own)
        return params

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
            "diverged_how": self.diverged_how,
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
    # The trial chosen at the study's end (storage.best_trial's choice), while it is current
    chosen: int | None = None
    # A study of several objectives: their names (the metric first) and directions; [] for one
    objectives: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)

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
        """The chosen trial (as storage.best_trial: the one every command reports), else the
        best complete trial, else the best scored one."""
        complete = [t for t in self.ranked() if t.state == "complete"]
        chosen = next((t for t in complete if t.number == self.chosen), None)
        if chosen is not None:
            return chosen
        if complete:
            return complete[0]
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def varied(self) -> list[str]:
        """The hyperparameters that took more than one value among the finished trials."""
        names = []
        own = {n: None for t in self.finished for n in t.config.get("model") or {}}
        for name in [*HYPERPARAMETERS, *(n for n in own if n not in HYPERPARAMETERS)]:
            values = {_hashable(t.params.get(name)) for t in self.finished}
            values.discard(None)
            if len(values) > 1:
                names.append(name)
        return names

    def categorical(self, name: str) -> bool:
        """Whether `name`'s values are names or true/false rather than numbers: dltune's own
        by the vocabulary, a user model's by the values its trials took."""
        if name in CATEGORICAL or name in BOOLEAN:
            return True
        values = [t.params.get(name) for t in self.finished]
        return any(isinstance(v, str | bool) for v in values if v is not None)


def load_trials(study: optuna.Study) -> StudyTrials:
    """Every trial of `study` as a TrialView, with scores; storage is read once."""
    from ..vocabulary import METRICS

    attrs = schema.study_attrs(study)  # one read for the metadata and the tests
    meta = schema.read_study_meta(attrs)
    maximize = maximizes(study)
    metric = meta.get("metric") or "value"
    if metric in METRICS:
        maximize = METRICS[metric][1] == "maximize"
    views = read_trials(study, TrialView)
    _mark_diverged(views, meta.get("data", {}))
    _score(views, maximize)
    return StudyTrials(
        name=study.study_name,
        maximize=maximize,
        metric=metric,
        trials=views,
        space=meta.get("space", {}),
        data=meta.get("data", {}),
        tests=schema.read_test_values(attrs),
        chosen=_chosen(attrs, views),
        objectives=objective_names(study) if len(study.directions) > 1 else [],
        directions=directions(study) if len(study.directions) > 1 else [],
    )


def _chosen(attrs: Any, views: list[TrialView]) -> int | None:
    choice = current_choice(attrs, sum(v.state == "complete" for v in views))
    return None if choice is None else int(choice["trial"])


def _mark_diverged(views: list[TrialView], data: dict[str, Any]) -> None:
    """The divergence rule on each stopped trial's stored curves: a pruned trial that meets it
    becomes diverged (from the epoch it met it), and each diverged trial says how."""
    task, classes = data.get("task", "classification"), data.get("classes")
    for view in views:
        if view.state not in ("pruned", "diverged"):
            continue
        level = chance(str(view.config.get("loss", "")), task, classes)
        found = divergence(view.train_loss, view.val_loss, view.curve, level, view.start_loss)
        if view.state == "diverged":
            view.diverged_how = found[1] if found else NOT_FINITE
        elif found is not None:
            view.state = "diverged"
            view.diverged_epoch, view.diverged_how = found


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


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
