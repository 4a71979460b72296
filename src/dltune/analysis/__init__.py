"""What a study shows, as plain data computed from storage alone (no drawing, no engine).
Reads storage (and a sweep's plan); never imports torch, the engines, the report or the CLI.

    analysis = analyze(study)          # an optuna.Study made by dltune
    analysis.diagnostics[:3]           # the three most important findings
    analysis.to_dict()                 # JSON-ready, for the report or your own plots

trials.py reads the trials (a pruned trial that meets the engines' divergence rule reads as
diverged); importance.py, effects.py, interactions.py and curves.py summarise them;
diagnostics.py turns them into findings with evidence (findings.py: what a finding is; edges.py:
the best value at an end of a range, checked against the key's rule); tradeoffs.py reads the
Pareto front of a study of several objectives. report/ draws the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .curves import history, learning_curves
from .diagnostics import Diagnosis, diagnose
from .effects import effects, epoch_effect
from .importance import importance
from .interactions import interactions
from .tradeoffs import front_view, read_front
from .trials import StudyTrials, TrialView, load_trials

if TYPE_CHECKING:
    import optuna

__all__ = ["Diagnosis", "StudyAnalysis", "StudyTrials", "TrialView", "analyze", "load_trials"]


@dataclass
class StudyAnalysis:
    study: str
    metric: str
    maximize: bool
    data: dict[str, Any]
    space: dict[str, Any]
    counts: dict[str, int]  # trials per state
    best: dict[str, Any] | None  # the best trial: number, score, params, best_epoch, test
    importance: dict[str, Any]
    effects: dict[str, dict[str, Any]]
    epochs: dict[str, Any]  # the effect of training longer (effects.epoch_effect)
    interactions: list[dict[str, Any]]
    history: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    diagnostics: list[Diagnosis]
    trials: list[dict[str, Any]] = field(default_factory=list)
    # a study of several objectives: its Pareto front (tradeoffs.front_view); None for one
    front: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        plain = dict(self.__dict__)
        plain["diagnostics"] = [d.to_dict() for d in self.diagnostics]
        return plain


def analyze(study: optuna.Study) -> StudyAnalysis:
    """Everything the report shows, from what `study`'s storage holds."""
    trials = load_trials(study)
    return analyze_trials(trials)


def analyze_trials(trials: StudyTrials) -> StudyAnalysis:
    counts: dict[str, int] = {}
    for t in trials.trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    best = trials.best()
    best_plain = None
    if best is not None:
        best_plain = best.to_dict()
        best_plain["test"] = trials.tests.get(best.number)
        best_plain["state"] = best.state
    return StudyAnalysis(
        study=trials.name,
        metric=trials.metric,
        maximize=trials.maximize,
        data=trials.data,
        space=trials.space,
        counts=counts,
        best=best_plain,
        importance=importance(trials),
        effects=effects(trials),
        epochs=epoch_effect(trials),
        interactions=interactions(trials),
        history=history(trials),
        curves=learning_curves(trials),
        diagnostics=sorted(diagnose(trials) + read_front(trials), key=lambda d: -d.weight),
        trials=[t.to_dict() for t in trials.trials],
        front=front_view(trials),
    )
