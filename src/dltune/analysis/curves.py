"""Learning curves worth looking at, and the optimization history, as plain data."""

from __future__ import annotations

import math
from typing import Any

from .diagnostics import overfit_start
from .trials import StudyTrials, TrialView

MAX_PRUNED = 3
MAX_DIVERGED = 2
MAX_OVERFIT = 2


def history(study: StudyTrials) -> list[dict[str, Any]]:
    """Per trial in order: its score and the best score so far (the optimization history)."""
    rows, best = [], None
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.score is not None and t.finished and (best is None or study.better(t.score, best)):
            best = t.score
        rows.append({"trial": t.number, "state": t.state, "score": t.score, "best": best})
    return rows


def learning_curves(study: StudyTrials) -> list[dict[str, Any]]:
    """The best trial's curves, and representative pruned, diverged and overfitting ones.

    Pruned trials are picked at spread-out ranks (a good, a middling and a poor one), so the
    figure shows what the scheduler cut and when, not only the worst.
    """
    chosen: list[tuple[TrialView, str]] = []
    best = study.best()
    if best is not None:
        chosen.append((best, "best"))
    taken = {best.number} if best is not None else set()

    def take(trials: list[TrialView], label: str, limit: int) -> None:
        for t in trials[:limit]:
            if t.number not in taken:
                chosen.append((t, label))
                taken.add(t.number)

    overfit = [t for t in study.ranked() if overfit_start(t) is not None]
    take(overfit, "overfit", MAX_OVERFIT)
    pruned = [t for t in study.ranked() if t.state == "pruned" and t.curve]
    if len(pruned) > MAX_PRUNED:
        step = (len(pruned) - 1) / (MAX_PRUNED - 1)
        pruned = [pruned[round(i * step)] for i in range(MAX_PRUNED)]
    take(pruned, "pruned", MAX_PRUNED)
    take([t for t in study.trials if t.state == "diverged"], "diverged", MAX_DIVERGED)
    return [_curve(t, label) for t, label in chosen]


def _curve(t: TrialView, label: str) -> dict[str, Any]:
    return {
        "trial": t.number,
        "label": label,
        "state": t.state,
        "params": t.params,
        "widths": t.widths,
        "val_metric": [_plain(v) for v in t.curve],
        "train_loss": [_plain(v) for v in t.train_loss],
        "val_loss": [_plain(v) for v in t.val_loss],
        "best_epoch": t.best_epoch,
        "diverged_epoch": t.diverged_epoch,
        "fold_band": fold_band(t),
    }


def fold_band(t: TrialView) -> dict[str, list[float | None]] | None:
    """A cross-validated trial's spread over its folds, epoch by epoch: the lowest and the
    highest fold's validation metric (None: not cross-validated)."""
    curves = (t.folds or {}).get("curves")
    if not curves:
        return None
    epochs = min(len(c) for c in curves)
    low, high = [], []
    for e in range(epochs):
        values = [c[e] for c in curves if c[e] is not None and math.isfinite(c[e])]
        low.append(min(values) if values else None)
        high.append(max(values) if values else None)
    return {"low": low, "high": high}


def _plain(value: float) -> float | None:
    """JSON has no NaN: a diverged epoch's value becomes null."""
    return value if math.isfinite(value) else None
