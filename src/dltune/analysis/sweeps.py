"""A stored sweep, read back: per value its runs, their spread, and plain readings of the result.

Everything is read from the sweep's study (the plan in study attribute "dltune_sweep", each
member's curves in its trial), so `dltune sweep` and `dltune report` show the same thing.

A value's *score* is the best validation value its run reached (as a study's trials are
scored); an epochs sweep scores each number of epochs E by the value at epoch E, what training
for E epochs gives. The *gap* is the train metric minus the validation metric at the last
epoch, oriented so that positive means better on the training rows.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..sweep.plan import SEED_ATTR, SWEEP_ATTR, VALUE_ATTR, SweepPlan
from ..sweep.values import label
from .diagnostics import overfit_start
from .trials import StudyTrials, TrialView, load_trials

if TYPE_CHECKING:
    import optuna

BARELY = 0.5  # a value that gained less than half of what the best value gained over chance
STILL_MOVING = 0.1  # ... whose training loss fell by 10% of its fall in its last quarter: slow
NEAR_BEST = 0.9  # the values whose seeds measure the noise: 90% of the way from chance to the best
EXPLODED = 100.0  # a training loss this many times the best value's, yet finite
TREND = 0.7  # a rank correlation this strong between value and gap is a trend worth a sentence


@dataclass
class Run:
    """One seed's run of one value (for an epochs sweep, its first E epochs)."""

    seed: int
    state: str
    curve: list[float]  # validation metric per epoch
    train_metric: list[float]
    train_loss: list[float]
    val_loss: list[float]
    best_epoch: int | None
    diverged_epoch: int | None
    seconds: float
    overfit_epoch: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None

    def best(self, maximize: bool) -> float:
        finite = [v for v in self.curve if math.isfinite(v)]
        return (max if maximize else min)(finite) if finite else math.nan

    @property
    def final(self) -> float:
        return self.curve[-1] if self.curve and not self.diverged else math.nan

    def gap(self, maximize: bool) -> float:
        if self.diverged or not self.train_metric or not self.curve:
            return math.nan
        sign = 1.0 if maximize else -1.0
        return sign * (self.train_metric[-1] - self.curve[-1])


@dataclass
class Row:
    """One value of the swept hyperparameter, over its seeds."""

    index: int
    value: Any
    label: str
    runs: list[Run]
    score: list[float] = field(default_factory=list)  # per seed, what ranks the value
    best: list[float] = field(default_factory=list)
    final: list[float] = field(default_factory=list)
    gap: list[float] = field(default_factory=list)

    @property
    def diverged(self) -> int:
        return sum(1 for r in self.runs if r.diverged)

    @property
    def all_diverged(self) -> bool:
        return bool(self.runs) and self.diverged == len(self.runs)

    @property
    def best_epochs(self) -> list[int]:
        return [r.best_epoch for r in self.runs if r.best_epoch is not None]

    @property
    def seconds(self) -> float:
        return statistics.fmean(r.seconds for r in self.runs) if self.runs else math.nan


@dataclass
class Reading:
    """One plain sentence about the sweep, and the values it is about."""

    kind: str  # diverged, exploded, slow, stalls, overfit, gap, best, behind
    text: str
    values: list[Any] = field(default_factory=list)


@dataclass
class SweepAnalysis:
    study: str
    param: str
    plan: SweepPlan
    metric: str
    maximize: bool
    data: dict[str, Any]
    chance: float | None
    rows: list[Row]
    readings: list[Reading]
    timing: dict[str, Any]
    noise: float | None  # pooled standard deviation of the score between seeds

    @property
    def ranked(self) -> list[Row]:
        """Rows with a score, best first (a value whose every run diverged has none)."""
        scored = [r for r in self.rows if _finite(r.score)]
        return sorted(scored, key=lambda r: mean_of(r.score), reverse=self.maximize)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "param": self.param,
            "plan": self.plan.to_dict(),
            "metric": self.metric,
            "direction": "maximize" if self.maximize else "minimize",
            "data": self.data,
            "chance": self.chance,
            "noise": _plain(self.noise),
            "timing": self.timing,
            "rows": [
                {
                    "value": r.value,
                    "label": r.label,
                    "score": summary(r.score),
                    "best": summary(r.best),
                    "final": summary(r.final),
                    "gap": summary(r.gap),
                    "best_epoch": median_of(r.best_epochs),
                    "diverged": r.diverged,
                    "seeds": len(r.runs),
                    "seconds": _plain(r.seconds),
                    "runs": [_run_dict(run) for run in r.runs],
                }
                for r in self.rows
            ],
            "readings": [asdict(x) for x in self.readings],
        }


def is_sweep(study: optuna.Study) -> bool:
    return isinstance(study.user_attrs.get(SWEEP_ATTR), dict)


def analyze_sweep(study: optuna.Study) -> SweepAnalysis:
    stored = study.user_attrs[SWEEP_ATTR]
    plan = SweepPlan.from_dict(stored["plan"])
    trials = load_trials(study)
    members = {
        t.number: (t.user_attrs.get(VALUE_ATTR), int(t.user_attrs[SEED_ATTR]))
        for t in study.get_trials(deepcopy=False)
        if SEED_ATTR in t.user_attrs
    }
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
    analysis.noise = _pooled_sd([r.score for r in _near_best(analysis)])
    from .sweep_readings import read

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


# ---- numbers --------------------------------------------------------------------------------


def _finite(values: list[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def mean_of(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def sd_of(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.stdev(finite) if len(finite) > 1 else math.nan


def _pooled_sd(groups: list[list[float]]) -> float | None:
    """The spread between seeds of one value, pooled over the values with two or more."""
    variances, weights = [], []
    for values in groups:
        finite = [v for v in values if math.isfinite(v)]
        if len(finite) > 1:
            variances.append(statistics.variance(finite) * (len(finite) - 1))
            weights.append(len(finite) - 1)
    if not weights:
        return None
    return math.sqrt(sum(variances) / sum(weights))


def summary(values: list[float]) -> dict[str, float | None]:
    """Mean, standard deviation, lowest and highest of the finite values (JSON-ready)."""
    finite = [v for v in values if math.isfinite(v)]
    return {
        "mean": _plain(mean_of(values)),
        "sd": _plain(sd_of(values)),
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
        "n": len(finite),
    }


def median_of(values: list[int]) -> float | None:
    """The median (6.5 for two seeds at epochs 6 and 7), or None."""
    return float(statistics.median(values)) if values else None


def _plain(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _run_dict(run: Run) -> dict[str, Any]:
    return {
        "seed": run.seed,
        "state": run.state,
        "val_metric": [_plain(v) for v in run.curve],
        "train_metric": [_plain(v) for v in run.train_metric],
        "best_epoch": run.best_epoch,
        "diverged_epoch": run.diverged_epoch,
        "overfit_epoch": run.overfit_epoch,
        "seconds": run.seconds,
    }


# ---- timing ---------------------------------------------------------------------------------


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
