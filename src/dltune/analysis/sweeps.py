"""A stored sweep, read back: per value its runs, their spread, and plain readings of the result.

Everything is read from the sweep's study (the plan in storage.schema.SWEEP, each member's
curves in its trial), so `dltune sweep` and `dltune report` show the same thing.

A value's *score* is the best validation value its run reached (as a study's trials are
scored); an epochs sweep scores each number of epochs E by the value at epoch E, what training
for E epochs gives. The *gap* is the train metric minus the validation metric at the last
epoch, oriented so that positive means better on the training rows.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError
from ..storage import schema
from ..sweep.plan import SweepPlan
from ..sweep.values import label
from .diagnostics import overfit_start
from .sweep_data import NEAR_BEST, Row, Run, SweepAnalysis, mean_of, pooled_sd
from .sweep_readings import read
from .trials import StudyTrials, TrialView, load_trials

if TYPE_CHECKING:
    import optuna


def is_sweep(study: optuna.Study) -> bool:
    return schema.read_sweep(study) is not None


def analyze_sweep(study: optuna.Study) -> SweepAnalysis:
    stored = schema.read_sweep(study)
    if stored is None:
        raise InvalidParameterError(f"study {study.study_name!r} is not a sweep")
    plan = SweepPlan.from_dict(stored["plan"])
    trials = load_trials(study)
    members = {t.number: t.sweep_member for t in trials.trials if t.sweep_member is not None}
    rows = _rows(plan, trials, members)
    chance = stored.get("chance")
    analysis = SweepAnalysis(
        study=study.study_name,
        param=plan.param,
        plan=plan,
        metric=trials.metric,
        maximize=trials.maximize,
        data=trials.data,
        chance=float(chance) if isinstance(chance, int | float) else None,
        rows=rows,
        readings=[],
        timing=dict(stored.get("timing") or {}),
        noise=None,
    )
    analysis.noise = pooled_sd([r.score for r in _near_best(analysis)])
    analysis.readings = read(analysis)
    return analysis


def _near_best(a: SweepAnalysis) -> list[Row]:
    """The values that got at least NEAR_BEST of the way from chance to the best value: the
    noise between seeds that matters when comparing the best values is measured on these (a
    value still climbing, or on the edge of diverging, differs far more between seeds)."""
    ranked = a.ranked
    if not ranked or a.chance is None:
        return ranked
    sign = 1.0 if a.maximize else -1.0
    span = sign * (mean_of(ranked[0].score) - a.chance)
    if span <= 0:
        return ranked
    return [r for r in ranked if sign * (mean_of(r.score) - a.chance) >= NEAR_BEST * span]


# ---- rows -----------------------------------------------------------------------------------


def _rows(
    plan: SweepPlan, trials: StudyTrials, members: dict[int, tuple[int | None, int]]
) -> list[Row]:
    """One row per value; each with the finished run of every seed (the first, if a member was
    trained twice after an interruption). `members`: trial number -> (value, seed) index."""
    views: dict[tuple[int | None, int], TrialView] = {}
    for view in sorted(trials.finished, key=lambda t: t.number):
        key = members.get(view.number)
        if key is not None and key not in views:
            views[key] = view
    rows = []
    for index, value in enumerate(plan.values):
        runs = []
        for seed in range(plan.seeds):
            found = views.get((None if plan.param == "epochs" else index, seed))
            if found is None:
                continue  # not trained yet (an interrupted sweep)
            if plan.param == "epochs":
                found = _first_epochs(found, int(value), trials.maximize)
            runs.append(_run(found, seed))
        row = Row(index, value, label(value), runs)
        maximize = trials.maximize
        row.best = [r.best(maximize) for r in runs]
        row.final = [r.final for r in runs]
        row.gap = [r.gap(maximize) for r in runs]
        row.score = row.final if plan.param == "epochs" else row.best
        rows.append(row)
    return rows


def _run(view: TrialView, seed: int) -> Run:
    seconds = sum(view.epoch_seconds) if view.epoch_seconds else (view.seconds or 0.0)
    curve = list(view.curve)
    if view.diverged_epoch is not None:
        # the epoch it diverged in was validated with broken (NaN) weights: no value
        for i in range(view.diverged_epoch - 1, len(curve)):
            curve[i] = math.nan
    return Run(
        seed=seed,
        state=view.state,
        curve=curve,
        train_metric=list(view.train_metric),
        train_loss=list(view.train_loss),
        val_loss=list(view.val_loss),
        best_epoch=view.best_epoch,
        diverged_epoch=view.diverged_epoch,
        seconds=seconds,
        overfit_epoch=overfit_start(view),
        parameters=view.parameters,
        latency=view.latency,
    )


def _first_epochs(view: TrialView, epochs: int, maximize: bool) -> TrialView:
    """The view of a run as if it had trained `epochs` epochs (an epochs sweep's value)."""
    curve = view.curve[:epochs]
    finite = [(v, i + 1) for i, v in enumerate(curve) if math.isfinite(v)]
    best_epoch = None
    if finite:
        top = (max if maximize else min)(v for v, _ in finite)
        best_epoch = next(e for v, e in finite if v == top)  # the first epoch to reach it
    diverged = (
        view.diverged_epoch if view.diverged_epoch and view.diverged_epoch <= epochs else None
    )
    return replace(
        view,
        state="diverged" if diverged else view.state,
        curve=curve,
        train_metric=view.train_metric[:epochs],
        train_loss=view.train_loss[:epochs],
        val_loss=view.val_loss[:epochs],
        epoch_seconds=view.epoch_seconds[:epochs],
        best_epoch=best_epoch,
        diverged_epoch=diverged,
    )


def timing_sentences(timing: dict[str, Any]) -> list[str]:
    """The population's time against the one-at-a-time estimate, in words (the CLI's summary
    and the page say the same). Training times are compared with training times: storing
    the curves costs both ways alike."""
    seconds = timing.get("seconds")
    if not isinstance(seconds, int | float):
        return [
            "No timing is stored: the sweep was interrupted before its last run finished "
            "(the same command again trains the runs still missing)."
        ]
    train = float(timing.get("train_seconds") or seconds)
    buckets = int(timing.get("buckets") or 1)
    how = "as one population" if buckets == 1 else f"as {buckets} populations, one per shape,"
    sentences = [
        f"Trained {timing.get('members')} runs {how} in {duration(seconds)} "
        f"({duration(train)} of it training and evaluating, the rest storing the curves; "
        f"{float(timing.get('member_epochs') or 0):.0f} run-epochs)."
    ]
    if timing.get("earlier"):
        sentences.append(
            f"({timing['earlier']} more runs were trained by an earlier, interrupted run; "
            "these times are for the rest.)"
        )
    alone = timing.get("one_at_a_time")
    if isinstance(alone, dict) and isinstance(alone.get("seconds"), int | float):
        estimate = float(alone["seconds"])
        sample = alone.get("sample") or []
        epochs = sorted({int(x.get("epochs", 0)) for x in sample}) or [0]
        each = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
        ratio = estimate / train if train > 0 else math.inf
        compared = f"{ratio:.1f}x the population's" if ratio >= 1 else f"{1 / ratio:.1f}x faster"
        alone_how = (
            "trained one at a time, a run per value and seed (as tools that tune epochs like any "
            "other hyperparameter do), training would take"
            if timing.get("param") == "epochs"
            else "one at a time, their training would take"
        )
        sentences.append(
            f"{alone_how[0].upper()}{alone_how[1:]} about {duration(estimate)} ({compared}), "
            f"measured by training {len(sample)} of them alone for {each} epochs each."
        )
    return sentences


def duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
