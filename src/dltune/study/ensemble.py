"""Greedy ensemble selection with replacement (Caruana et al. 2004, "Ensemble selection from
libraries of models"), as AutoGluon and auto-sklearn do it by default.

    selection = select_ensemble({7: p7, 3: p3, 12: p12}, truth, "accuracy", task="classification")
    selection.weights   # {7: 0.6, 12: 0.4}: what the model folder averages

The candidates are trials' predictions on rows none of them trained on: out-of-fold predictions
of a k-fold study (each row predicted by the fold model that did not see it), or validation
predictions of a holdout one. Classification: class probabilities (N, C); regression: values
(N,) in the target's units. The ensemble is their weighted average.

The rule, kept simple:

- start from the empty ensemble (no "sorted initialisation" with the best few, as Caruana
  offers and AutoGluon leaves off too: the first round adds the best single candidate anyway);
- each of `rounds` rounds adds the candidate, repeats allowed, whose addition makes the average
  best on the metric; ties go to the finer score (classification: the average's log loss;
  regression: its mean squared error), then to the candidate given first (the caller lists
  them best first);
- the ensemble kept is the best prefix over the rounds (ties: the earlier, smaller one), so
  that a later round that only made things worse does not count; its weights are how often
  each candidate was added, over the rounds of that prefix.

The metric is dltune's one definition of it (`dltune.engine.losses.reduce_metric`), on terms in
float64. Pure NumPy arithmetic: no torch tensors, no Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.losses import reduce_metric
from ..errors import StudyError, param
from ..vocabulary import METRICS

ROUNDS = 25  # Caruana's libraries needed more; on a few dozen trials 25 rounds settle
LOG_FLOOR = 1e-15  # the smallest probability the log loss takes (as scikit-learn's log_loss)


@dataclass(frozen=True)
class Selection:
    """The ensemble chosen, and what it scored.

    `weights`: trial -> weight (summing to 1), the heaviest first (ties: the candidate given
    first). `score`: the ensemble's metric on the rows it was chosen on. `single`: each
    candidate's own metric. `best_single`: the candidate with the best own metric (ties as in a
    round: finer score, then order). `path`: the metric after each round (the kept prefix ends at
    the round whose score is best). `metric`: its name.
    """

    weights: dict[int, float]
    score: float
    single: dict[int, float]
    best_single: int
    path: list[float]
    metric: str

    @property
    def rounds(self) -> int:
        """Rounds in the kept prefix (the members counted with repeats)."""
        return self.path.index(self.score) + 1 if self.path else 0

    def to_json(self) -> dict[str, Any]:
        """Plain data for JSON (trial numbers kept as numbers: pairs, not objects)."""
        values = [self.score, *self.single.values(), *self.weights.values(), *self.path]
        if not all(math.isfinite(v) for v in values):
            raise StudyError(f"the ensemble selection holds a value that is not finite: {self}")
        return {
            "metric": self.metric,
            "weights": [[int(t), float(w)] for t, w in self.weights.items()],
            "score": float(self.score),
            "single": [[int(t), float(v)] for t, v in self.single.items()],
            "best_single": int(self.best_single),
            "path": [float(v) for v in self.path],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selection:
        """Read back `to_json`'s output."""
        try:
            return cls(
                weights={int(t): float(w) for t, w in data["weights"]},
                score=float(data["score"]),
                single={int(t): float(v) for t, v in data["single"]},
                best_single=int(data["best_single"]),
                path=[float(v) for v in data["path"]],
                metric=str(data["metric"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StudyError(f"a stored ensemble selection cannot be read ({e!r})") from None


def mixture(predictions: Mapping[int, np.ndarray], weights: Mapping[int, float]) -> np.ndarray:
    """The weighted average of the candidates in `weights` (float64; weights normalised to sum
    to 1): probabilities (N, C) or values (N,). For a selection's weights it is the average the
    selection scored, to float64 rounding (the selection sums its members in the order added)."""
    total = float(sum(weights.values()))
    if not weights or not total > 0 or min(weights.values()) < 0:
        raise StudyError(
            f"{param('weights')} must be weights >= 0 with a positive sum; got {dict(weights)}"
        )
    missing = [t for t in weights if t not in predictions]
    if missing:
        raise StudyError(f"{param('weights')} names trial(s) {missing} without predictions")
    terms = [np.asarray(predictions[t], dtype=np.float64) * (w / total) for t, w in weights.items()]
    return np.sum(terms, axis=0)


def score_of(mix: np.ndarray, truth: np.ndarray, metric: str) -> tuple[float, float]:
    """(the metric, the finer score) of an average: accuracy and log loss for class
    probabilities (N, C) and class indices; rmse or mae and the mean squared error for values."""
    if mix.ndim == 2:
        hits = (mix.argmax(axis=1) == truth).astype(np.float64)
        picked = mix[np.arange(len(truth)), truth]
        log_loss = float(-np.mean(np.log(np.maximum(picked, LOG_FLOOR))))
        return float(reduce_metric(metric, hits)), log_loss
    errors = mix - truth
    return float(reduce_metric(metric, errors)), float(np.mean(np.square(errors)))


def select_ensemble(
    predictions: Mapping[int, np.ndarray],
    truth: np.ndarray,
    metric: str,
    *,
    task: str,
    rounds: int = ROUNDS,
    candidates: int | None = None,
) -> Selection:
    """Greedy selection with replacement of an ensemble from `predictions` (trial -> class
    probabilities (N, C) or values (N,), best trial first) against `truth` (class indices or
    values (N,)); `candidates`: only the first so many are considered (None: all)."""
    stack, y, sign, trials = _checked(predictions, truth, metric, task, rounds, candidates)
    # One candidate's key in a round: (metric oriented so that lower is better, finer, rank).
    single = {t: score_of(stack[i], y, metric) for i, t in enumerate(trials)}
    best_single = min(trials, key=lambda t: (sign * single[t][0], single[t][1], trials.index(t)))
    total = np.zeros_like(stack[0])  # the running sum of the chosen (float64)
    chosen: list[int] = []  # indices into trials, one per round
    path: list[float] = []
    for k in range(1, rounds + 1):
        keys = []
        for i in range(len(trials)):
            value, finer = score_of((total + stack[i]) / k, y, metric)
            keys.append((sign * value, finer, i))
        best = min(keys)
        chosen.append(best[2])
        total += stack[best[2]]
        path.append(sign * best[0])
    kept = min(range(rounds), key=lambda r: (sign * path[r], r)) + 1
    counts: dict[int, int] = {}
    for i in chosen[:kept]:
        counts[trials[i]] = counts.get(trials[i], 0) + 1
    order = sorted(counts, key=lambda t: (-counts[t], trials.index(t)))
    return Selection(
        weights={t: counts[t] / kept for t in order},
        score=path[kept - 1],
        single={t: v for t, (v, _) in single.items()},
        best_single=best_single,
        path=path,
        metric=metric,
    )


def _checked(
    predictions: Mapping[int, np.ndarray],
    truth: np.ndarray,
    metric: str,
    task: str,
    rounds: int,
    candidates: int | None,
) -> tuple[np.ndarray, np.ndarray, int, list[int]]:
    """(predictions stacked (M, N[, C]) float64, truth, +1 or -1 (minimize, maximize), trials),
    or a StudyError naming what does not fit."""
    if metric not in METRICS:
        raise StudyError(
            f"{param('metric', metric)} is not known; choose from {', '.join(METRICS)}"
        )
    if METRICS[metric][0] != task:
        raise StudyError(
            f"{param('metric', metric)} is a {METRICS[metric][0]} metric, but {param('task', task)}"
        )
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise StudyError(f"{param('rounds', rounds)} must be a whole number of at least 1")
    if candidates is not None and (isinstance(candidates, bool) or candidates < 1):
        raise StudyError(f"{param('candidates', candidates)} must be at least 1, or None (all)")
    trials = list(predictions)[:candidates]
    if not trials:
        raise StudyError(
            f"{param('predictions')} is empty: no candidate to choose an ensemble from"
        )
    y = np.asarray(truth)
    if y.ndim != 1 or len(y) == 0:
        raise StudyError(f"{param('truth')} must be one value per row (N,), N >= 1; got {y.shape}")
    arrays = [np.asarray(predictions[t], dtype=np.float64) for t in trials]
    if task == "classification":
        first = arrays[0].shape
        if len(first) != 2 or first[1] < 2:
            raise StudyError(
                f"{param('predictions')}[{trials[0]}] has shape {first}; a classifier's are class "
                f"probabilities (N, C), C >= 2"
            )
        want: tuple[int, ...] = (len(y), first[1])
    else:
        want = (len(y),)
    for t, a in zip(trials, arrays, strict=True):
        if a.shape != want:
            shown = "(N, C) class probabilities" if task == "classification" else "(N,) values"
            raise StudyError(
                f"{param('predictions')}[{t}] has shape {a.shape}; expected {want}: {shown}, "
                f"one row per row of {param('truth')} ({len(y)} rows), as the other candidates"
            )
        if not np.isfinite(a).all():
            raise StudyError(
                f"{param('predictions')}[{t}] holds values that are not finite (a diverged "
                f"trial?); leave that trial out of the candidates"
            )
    if task == "classification":
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= want[1]:
            raise StudyError(
                f"{param('truth')} must hold class indices 0..{want[1] - 1} (integers); got "
                f"{y.dtype} values from {y.min()} to {y.max()}"
            )
    else:
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise StudyError(f"{param('truth')} holds values that are not finite")
    sign = -1 if METRICS[metric][1] == "maximize" else 1
    return np.stack(arrays), y, sign, trials
