"""Pairs of hyperparameters whose joint effect is more than the sum of their own.

Each varied hyperparameter is cut into a few levels (its values, or bins along its axis); for a
pair, a model with one mean per joint cell is compared with the additive model (one effect per
level of each). The share of the score's variance that only the joint cells explain is the
pair's interaction strength: e.g. a learning rate that suits Adam but makes SGD diverge.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..vocabulary import LOG_SCALE
from .trials import StudyTrials, TrialView

LEVELS_PER_AXIS = 4
MIN_TRIALS = 12
MIN_STRENGTH = 0.03  # below this share of variance, a pair is not worth a figure
MAX_P_VALUE = 0.01  # and the joint cells must beat the additive model by an F-test at 1%
SHOWN = 4


def interactions(study: StudyTrials) -> list[dict[str, Any]]:
    """The strongest pairs, strongest first: {"params", "strength", "points"}."""
    names = [n for n in study.varied() if n != "epochs"]
    trials = [t for t in study.scored if all(t.params.get(n) is not None for n in names)]
    if len(trials) < MIN_TRIALS or len(names) < 2:
        return []
    scores = np.array([float(t.score) for t in trials if t.score is not None])
    levels = {n: _levels(n, trials) for n in names}
    pairs = []
    for a, b in itertools.combinations(names, 2):
        strength = _strength(levels[a], levels[b], scores)
        if strength >= MIN_STRENGTH:
            pairs.append((strength, a, b))
    pairs.sort(reverse=True)
    return [
        {
            "params": [a, b],
            "strength": round(strength, 4),
            "points": [
                {"trial": t.number, "x": t.params[a], "y": t.params[b], "score": t.score}
                for t in trials
            ],
        }
        for strength, a, b in pairs[:SHOWN]
    ]


def _levels(name: str, trials: list[TrialView]) -> np.ndarray:
    values = [t.params[name] for t in trials]
    distinct = sorted({str(v) for v in values})
    if any(isinstance(v, str | bool) for v in values) or len(distinct) <= LEVELS_PER_AXIS:
        return np.array([distinct.index(str(v)) for v in values])
    xs = np.array([float(v) for v in values])
    if name in LOG_SCALE and xs.min() > 0:
        xs = np.log(xs)
    # quantile cuts: levels with about as many trials each
    cuts = np.quantile(xs, [i / LEVELS_PER_AXIS for i in range(1, LEVELS_PER_AXIS)])
    return np.searchsorted(cuts, xs, side="right")


def _strength(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    """Adjusted R² of the joint cells minus that of the additive model: adjusting charges each
    model for its parameters, so cells holding one or two trials do not pass for an effect.
    Zero unless the F-test of the nested models says the joint cells are no accident."""
    from scipy.stats import f as f_distribution

    n = len(y)
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    additive_x = np.hstack([_one_hot(a), _one_hot(b)])
    joint_x = _one_hot(a * (int(b.max()) + 1) + b)
    p_additive = additive_x.shape[1] - 1  # the two blocks share one intercept
    p_joint = joint_x.shape[1]
    if n - p_joint < 2:
        return 0.0
    rss_additive, rss_joint = _residual(additive_x, y), _residual(joint_x, y)
    extra = p_joint - p_additive
    if extra <= 0 or rss_additive <= rss_joint:
        return 0.0
    f_value = ((rss_additive - rss_joint) / extra) / max(rss_joint / (n - p_joint), 1e-300)
    if f_distribution.sf(f_value, extra, n - p_joint) > MAX_P_VALUE:
        return 0.0
    additive = 1 - (rss_additive / (n - p_additive)) / (total / (n - 1))
    joint = 1 - (rss_joint / (n - p_joint)) / (total / (n - 1))
    return max(0.0, joint - additive)


def _one_hot(codes: np.ndarray) -> np.ndarray:
    _, index = np.unique(codes, return_inverse=True)
    index = index.reshape(-1)
    matrix = np.zeros((len(codes), int(index.max()) + 1))
    matrix[np.arange(len(codes)), index] = 1.0
    return matrix


def _residual(x: np.ndarray, y: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(((y - x @ coef) ** 2).sum())
