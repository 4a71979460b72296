"""A sweep's results as plain data: per value (Row) its runs (Run), the readings (Reading) and
the whole (SweepAnalysis), with the numbers they are summarised by. sweeps.py builds them from
storage; sweep_readings.py turns them into sentences; report/ draws them."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from ..sweep.plan import SweepPlan

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
    parameters: int | None = None  # its network's, counted before it trained
    latency: float | None = None  # median ms of one prediction of one example (None: not measured)

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

    @property
    def parameters(self) -> int | None:
        """The value's network size (its seeds' networks are the same size)."""
        counted = [r.parameters for r in self.runs if r.parameters is not None]
        return counted[0] if counted else None

    @property
    def latency(self) -> float | None:
        """The median over its seeds of the latency at batch 1, in ms."""
        measured = [r.latency for r in self.runs if r.latency is not None]
        return statistics.median(measured) if measured else None


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
                    "parameters": r.parameters,
                    "latency": r.latency,
                    "runs": [_run_dict(run) for run in r.runs],
                }
                for r in self.rows
            ],
            "readings": [asdict(x) for x in self.readings],
        }


# ---- numbers --------------------------------------------------------------------------------


def _finite(values: list[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def mean_of(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def sd_of(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.stdev(finite) if len(finite) > 1 else math.nan


def pooled_sd(groups: list[list[float]]) -> float | None:
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
