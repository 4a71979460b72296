"""The effect of each hyperparameter on the score, and the region where the best trials lie.

Plain data for the report to draw: for a categorical hyperparameter one row per value; for a
numeric one the trials' points and bins along its axis (log-spaced where the space samples on a
log scale). The "best region" is where the top trials (the best tenth, at least three) lie.
"""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

from ..vocabulary import LOG_SCALE
from .trials import StudyTrials, TrialView

MAX_BINS = 6
# few distinct values: shown per value, like categories
LEVELS = ("layers", "batch_size", "conv_layers", "kernel_size", "pool")


def top_trials(study: StudyTrials, share: float = 0.1, least: int = 3) -> list[TrialView]:
    ranked = study.ranked()
    return ranked[: max(least, math.ceil(share * len(ranked)))]


def effects(study: StudyTrials) -> dict[str, dict[str, Any]]:
    """{param: effect} for every varied hyperparameter except epochs (see epoch_effect)."""
    return {name: effect(study, name) for name in study.varied() if name != "epochs"}


def effect(study: StudyTrials, name: str) -> dict[str, Any]:
    trials = [t for t in study.scored if t.params.get(name) is not None]
    top = [t for t in top_trials(study) if t.params.get(name) is not None]
    points = [
        {"trial": t.number, "x": t.params[name], "score": t.score, "state": t.state} for t in trials
    ]
    if study.categorical(name) or (name in LEVELS and len({t.params[name] for t in trials}) <= 8):
        levels = sorted({t.params[name] for t in trials}, key=_sort_key)
        groups = [_group(study, [t for t in trials if t.params[name] == v]) for v in levels]
        for value, group in zip(levels, groups, strict=True):
            group["value"] = value
        counts: dict[Any, int] = {}
        for t in top:
            counts[t.params[name]] = counts.get(t.params[name], 0) + 1
        best_values = sorted(counts, key=lambda v: -counts[v])
        return {
            "kind": "categorical",
            "points": points,
            "groups": groups,
            "best_region": {"values": best_values, "top_trials": len(top)},
        }
    log = name in LOG_SCALE and all(t.params[name] > 0 for t in trials)
    xs = [float(t.params[name]) for t in trials]
    groups = []
    bins = _bins(xs, log)
    for i, (low, high) in enumerate(bins):
        last = i == len(bins) - 1  # the last bin holds its upper edge; the others do not
        inside = [
            t
            for t in trials
            if low <= float(t.params[name]) and (float(t.params[name]) < high or last)
        ]
        if inside:
            group = _group(study, inside)
            group.update({"low": low, "high": high})
            groups.append(group)
    top_x = [float(t.params[name]) for t in top]
    return {
        "kind": "numeric",
        "log": log,
        "points": points,
        "groups": groups,
        "best_region": {
            "low": min(top_x) if top_x else None,
            "high": max(top_x) if top_x else None,
            "top_trials": len(top),
        },
    }


def epoch_effect(study: StudyTrials) -> dict[str, Any]:
    """What more epochs did: per epoch, how many trials got there and their median and best
    value; and the best epochs of the complete trials (how many epochs good runs needed)."""
    longest = max((t.epochs for t in study.trials), default=0)
    rows = []
    for epoch in range(1, longest + 1):
        values = [
            t.curve[epoch - 1]
            for t in study.trials
            if t.epochs >= epoch and math.isfinite(t.curve[epoch - 1])
        ]
        if values:
            rows.append(
                {
                    "epoch": epoch,
                    "trials": len(values),
                    "median": statistics.median(values),
                    "best": study.best_of(values),
                }
            )
    best_epochs = [
        t.best_epoch for t in study.trials if t.state == "complete" and t.best_epoch is not None
    ]
    return {"by_epoch": rows, "best_epochs": sorted(best_epochs)}


def _group(study: StudyTrials, trials: list[TrialView]) -> dict[str, Any]:
    scores = [float(t.score) for t in trials if t.score is not None]
    return {
        "trials": len(trials),
        "median": statistics.median(scores) if scores else None,
        "best": study.best_of(scores) if scores else None,
        "diverged": sum(t.state == "diverged" for t in trials),
        "epochs": sum(t.epochs for t in trials),
    }


def _bins(xs: list[float], log: bool) -> list[tuple[float, float]]:
    low, high = min(xs), max(xs)
    if high <= low:
        return [(low, high)]
    count = max(1, min(MAX_BINS, len(xs) // 3))
    if log:
        a, b = math.log10(low), math.log10(high)
        edges = [10 ** (a + (b - a) * i / count) for i in range(count + 1)]
    else:
        edges = [low + (high - low) * i / count for i in range(count + 1)]
    edges[0], edges[-1] = low, high  # exact ends, so that rounding loses no trial
    return list(itertools.pairwise(edges))


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))
