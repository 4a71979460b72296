"""Plain sentences about a sweep, in the terms people use when they tune one knob.

Each reading states a finding with its numbers: where training diverges, where it barely
learns in the epochs given (too slow, or stuck low), where it starts to overfit and at which
epoch, how the train-validation gap moves with the value, which value is best and by how much
more than the noise between seeds, and which choices fall behind the others.

A numeric sweep's set of values is told as a region when it is one end of the range
("learning_rate >= 3.16"), otherwise listed.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from ..vocabulary import CATEGORICAL
from .diagnostics import LINEAR_LESSON
from .sweep_data import BARELY, EXPLODED, STILL_MOVING, TREND, Reading, mean_of, sd_of

if TYPE_CHECKING:
    from .sweep_data import Row, SweepAnalysis

# Why things happen, by (param, kind); read after the finding.
WHY: dict[tuple[str, str], str] = {
    ("learning_rate", "diverged"): (
        "Steps that large overshoot the minimum, and the loss grows until it is no longer a number."
    ),
    ("learning_rate", "slow"): (
        "Steps that small move the weights too little per epoch: it would get there, later."
    ),
    ("activation", "behind"): LINEAR_LESSON,  # a study shows it too (diagnostics.linear_model)
    ("dropout", "gap"): (
        "Dropout trains each unit to work without the others, which keeps the network from "
        "memorising the training rows."
    ),
}


def read(analysis: SweepAnalysis) -> list[Reading]:
    """Every reading that applies, in the order people ask: what broke, what is slow, what
    overfits, what the gap does, what is best, what falls behind."""
    readings: list[Reading] = []
    readings += _diverged(analysis)
    readings += _exploded(analysis)
    readings += _barely_learns(analysis)
    readings += _overfits(analysis)
    readings += _gap_trend(analysis)
    readings += _best(analysis)
    readings += _behind(analysis, {v for r in readings for v in r.values})
    return readings


# ---- what broke -------------------------------------------------------------------------------


def _diverged(a: SweepAnalysis) -> list[Reading]:
    bad = [r for r in a.rows if r.diverged]
    if not bad:
        return []
    every = [r for r in bad if r.all_diverged]
    some = [r for r in bad if not r.all_diverged]
    epochs = sorted(e for r in bad for run in r.runs if (e := run.diverged_epoch) is not None)
    text = ""
    if every:
        where = _region(a, every)
        text = (
            f"Training diverges at {where} in every seed, by epoch {epochs[-1]} at the "
            "latest: the loss became NaN or infinite, or the network fell to chance with its "
            "training loss above a fresh network's."
        )
    if some:
        partly = ", ".join(f"{r.label} ({r.diverged} of {len(r.runs)} seeds)" for r in some)
        text += (" It" if text else "It") + f" diverges in some seeds at {a.param} {partly}: "
        text += "the edge of the stable region."
    trained = [r for r in a.rows if not r.diverged]
    if every and trained and not categorical(a):
        safe = [r for r in trained if r.index < min(x.index for x in every)]
        if safe:
            text += f" The largest value that trained in every seed is {safe[-1].label}."
    text = _with_why(a, "diverged", text)
    return [Reading("diverged", text, [r.value for r in bad])]


def _exploded(a: SweepAnalysis) -> list[Reading]:
    """Values whose training loss ends EXPLODED times above the lowest first-epoch training
    loss of any value (the loss's scale on this problem) without becoming NaN: Adam at a huge
    learning rate, whose weights grow huge while the argmax still works (and may even rank
    best in a short run)."""
    if a.param == "loss":  # different losses have different scales
        return []
    starts = [
        (first, r)
        for r in a.rows
        if math.isfinite(first := mean_of([run.train_loss[0] for run in r.runs if run.train_loss]))
    ]
    if not starts:
        return []
    reference, calm = min(starts, key=lambda pair: pair[0])
    if reference <= 0:
        return []
    rows = [
        r
        for r in a.rows
        if not r.diverged
        and r.runs
        and mean_of([_last(run.train_loss) for run in r.runs]) > EXPLODED * reference
    ]
    if not rows:
        return []
    worst = max(mean_of([_last(run.train_loss) for run in r.runs]) for r in rows)
    text = (
        f"At {_region(a, rows)} the loss explodes without becoming NaN: the training loss "
        f"ends as high as {worst:.2g}; at {calm.label} it was {reference:.2g} after the "
        "first epoch and fell from there. The "
        "weights have grown huge; the accuracy holds up only because it depends on which "
        "output is largest, not by how much, and the predicted probabilities are useless."
    )
    return [Reading("exploded", text, [r.value for r in rows])]


def _last(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return finite[-1] if finite else math.nan


# ---- what barely learns -----------------------------------------------------------------------


def _barely_learns(a: SweepAnalysis) -> list[Reading]:
    """Values whose best run got less than BARELY of the way from chance to the sweep's best:
    too slow when still rising at the end, stuck when flat."""
    ranked = a.ranked
    if not ranked or a.chance is None:
        return []
    sign = 1.0 if a.maximize else -1.0
    top = mean_of(ranked[0].score)
    span = sign * (top - a.chance)
    if span <= 0:
        return []
    slow: list[tuple[Row, float]] = []
    stuck: list[tuple[Row, float]] = []
    for row in a.rows:
        if row.diverged or not row.runs:
            continue
        progress = sign * (mean_of(row.best) - a.chance) / span
        if progress >= BARELY:
            continue
        moving = statistics.fmean(_late_share(run.train_loss) for run in row.runs)
        (slow if moving > STILL_MOVING else stuck).append((row, progress))
    epochs = a.plan.epochs
    found = []
    for kind, group, how in (
        ("slow", slow, f"barely learns in {epochs} epochs"),
        ("stalls", stuck, "barely learns and has stopped improving"),
    ):
        if not group:
            continue
        rows = [r for r, _ in group]
        reached = (max if a.maximize else min)(mean_of(r.best) for r in rows)
        text = (
            f"At {_region(a, rows)} it {how}: validation {a.metric} reaches at most "
            f"{reached:.3g} (chance is {a.chance:.3g}; the best value reaches {top:.3g})"
            + (
                ", and it is still improving at the end: too slow, not broken."
                if kind == "slow"
                else "."
            )
        )
        found.append(Reading(kind, _with_why(a, kind, text), [r.value for r in rows]))
    return found


def _late_share(train_loss: list[float]) -> float:
    """The share of the run's fall in training loss that came in its last quarter of epochs:
    about a quarter for a run still moving at a steady pace (too small a step), near zero for
    one that levelled off, zero for one that never moved."""
    finite = [v for v in train_loss if math.isfinite(v)]
    if len(finite) < 2 or finite[0] <= finite[-1]:
        return 0.0
    back = max(1, len(finite) // 4)
    return (finite[-1 - back] - finite[-1]) / (finite[0] - finite[-1])


# ---- overfitting ------------------------------------------------------------------------------


def _overfits(a: SweepAnalysis) -> list[Reading]:
    """Values where most seeds overfit (diagnostics.overfit_start), with the median epoch."""
    over: list[tuple[Row, list[int]]] = []
    clean: list[tuple[Row, list[int]]] = []
    for row in a.rows:
        runs = [r for r in row.runs if not r.diverged]
        if not runs:
            continue
        starts = [r.overfit_epoch for r in runs if r.overfit_epoch is not None]
        (over if len(starts) * 2 > len(runs) else clean).append((row, starts))
    if not over:
        return []
    epochs = a.plan.epochs
    if a.param == "epochs":
        return _epochs_overfit(a, [r.value for r, _ in over])
    rows = [r for r, _ in over]
    detail = "; ".join(f"{r.label}: epoch {round(statistics.median(s))}" for r, s in over[:6])
    text = (
        f"It overfits at {_region(a, rows)}: the validation loss is lowest at an epoch and rises "
        f"after it while the training loss keeps falling (median epoch over seeds: {detail})."
    )
    if clean:
        where = _region(a, [r for r, _ in clean], others=True)
        text += f" At {where} it does not overfit within {epochs} epochs."
    return [Reading("overfit", _with_why(a, "overfit", text), [r.value for r in rows])]


def _epochs_overfit(a: SweepAnalysis, values: list[Any]) -> list[Reading]:
    """An epochs sweep's overfitting, read off its longest runs: where the validation loss
    turns, where the metric peaks, and whether it falls after: a loss that rises while the
    metric still improves is over-confidence on the examples it gets wrong, not yet a worse
    model, and the advice differs."""
    longest = max(a.rows, key=lambda r: r.value)
    runs = [r for r in longest.runs if not r.diverged and r.val_loss and r.best_epoch]
    if not runs:
        return []
    turn = round(
        statistics.median(min(range(len(r.val_loss)), key=r.val_loss.__getitem__) + 1 for r in runs)
    )
    peak = round(statistics.median(r.best_epoch or 0 for r in runs))
    text = (
        f"The validation loss is lowest at epoch {turn} (median over seeds) and rises after it "
        "while the training loss keeps falling: from there it overfits."
    )
    if peak > turn + 1:
        text += (
            f" The validation {a.metric} still improves until about epoch {peak}: at first the "
            "network only grows over-confident on the examples it gets wrong, later it gets "
            "more of them wrong."
        )
    best, final = mean_of(longest.best), mean_of(longest.final)
    sign = 1.0 if a.maximize else -1.0
    if sign * (best - final) > (a.noise or 0.0):
        text += (
            f" After its peak the {a.metric} falls: from {best:.3g} at its best epoch to "
            f"{final:.3g} at epoch {longest.value}."
        )
    text += (
        f" Train about {peak} epochs (or keep the best epoch's weights, as dltune does for "
        f"every trial); stop near epoch {turn} when the predicted probabilities matter."
    )
    return [Reading("overfit", text, values)]


def _gap_trend(a: SweepAnalysis) -> list[Reading]:
    """How the train-validation gap moves with a numeric value, when it moves clearly."""
    if categorical(a) or a.param == "epochs":
        return []
    rows = [r for r in a.rows if not r.diverged and math.isfinite(mean_of(r.gap))]
    if len(rows) < 3:
        return []
    gaps = [mean_of(r.gap) for r in rows]
    rho = _rank_correlation([float(r.value) for r in rows], gaps)
    spread = max(gaps) - min(gaps)
    noise = (
        statistics.fmean(s for r in rows if math.isfinite(s := sd_of(r.gap)))
        if any(math.isfinite(sd_of(r.gap)) for r in rows)
        else 0.0
    )
    if abs(rho) < TREND or spread <= 2 * noise:
        return []
    way = "shrinks" if rho < 0 else "grows"
    first, last = rows[0], rows[-1]
    text = (
        f"The train-validation gap in {a.metric} at the last epoch {way} as {a.param} grows: "
        f"from {mean_of(first.gap):.3g} at {first.label} to {mean_of(last.gap):.3g} at "
        f"{last.label}."
    )
    return [Reading("gap", _with_why(a, "gap", text), [r.value for r in rows])]


# ---- what is best -----------------------------------------------------------------------------


def _best(a: SweepAnalysis) -> list[Reading]:
    ranked = a.ranked
    if not ranked:
        return []
    best = ranked[0]
    what = "final" if a.param == "epochs" else "best"
    name = "number of epochs" if a.param == "epochs" else a.param
    head = (
        f"The best {name} is {best.label}: {what} validation {a.metric} "
        f"{_spread(best.score)} over {len(best.runs)} seed{'s' if len(best.runs) > 1 else ''}."
    )
    if len(ranked) == 1:
        return [Reading("best", head, [best.value])]
    second = ranked[1]
    margin = abs(mean_of(best.score) - mean_of(second.score))
    if margin == 0:
        ties = [r for r in ranked if mean_of(r.score) == mean_of(best.score)]
        names = ", ".join(r.label for r in ties[:-1]) + f" and {ties[-1].label}"
        return [Reading("best", f"{head} {names} tie for the best.", [r.value for r in ties])]
    text = (
        f"{head} It beats the next best, {second.label} ({_spread(second.score)}), by {margin:.3g}"
    )
    if a.noise is None:
        text += "; with one seed per value there is no measure of the noise (use --seeds 3)."
        return [Reading("best", text, [best.value])]
    if a.noise == 0:
        text += "; its seeds agreed exactly, so the noise is below what the validation rows show."
        return [Reading("best", text, [best.value])]
    times = margin / a.noise
    text += f": {times:.1f} times the spread between seeds ({a.noise:.2g})"
    if times >= 2:
        return [Reading("best", text + ", a real difference.", [best.value])]
    ties = [r for r in ranked if abs(mean_of(best.score) - mean_of(r.score)) < a.noise]
    if len(ties) > 1:
        names = ", ".join(r.label for r in ties[:-1]) + f" and {ties[-1].label}"
        text += f", within the noise: {names} do about equally well here."
    else:
        text += ", about the size of the noise: rerun with more --seeds to be sure."
    return [Reading("best", text, [r.value for r in ties] or [best.value])]


def _behind(a: SweepAnalysis, told: set[Any]) -> list[Reading]:
    """Choices of a categorical clearly below the others (not already told as broken/slow)."""
    if not categorical(a):
        return []
    rows = [r for r in a.ranked if r.value not in told]
    if len(rows) < 3:
        return []
    middle = statistics.median(mean_of(r.score) for r in rows)
    sign = 1.0 if a.maximize else -1.0
    margin = 3 * (a.noise or 0.0) + 1e-9
    below = [
        r for r in rows if sign * (middle - mean_of(r.score)) > max(margin, 0.01 * abs(middle))
    ]
    if not below:
        return []
    names = ", ".join(f"{r.label} ({_spread(r.score)})" for r in below)
    verb = "falls" if len(below) == 1 else "fall"
    text = (
        f"{a.param.capitalize()} {names} {verb} behind the others: median validation "
        f"{a.metric} {middle:.3g}."
    )
    return [Reading("behind", _with_why(a, "behind", text, below), [r.value for r in below])]


# ---- words ------------------------------------------------------------------------------------


def categorical(a: SweepAnalysis) -> bool:
    return a.param in CATEGORICAL


def _region(a: SweepAnalysis, rows: list[Row], others: bool = False) -> str:
    """`param >= v` / `param <= v` when the rows are one end of a numeric sweep, else a list;
    `others`: "the other values" for a list longer than four (the rest of the sweep)."""
    indices = sorted(r.index for r in rows)
    n = len(a.rows)
    contiguous = indices == list(range(indices[0], indices[-1] + 1))
    if not categorical(a) and contiguous and len(rows) > 1:
        if indices[-1] == n - 1:
            return f"{a.param} ≥ {a.rows[indices[0]].label}"
        if indices[0] == 0:
            return f"{a.param} ≤ {a.rows[indices[-1]].label}"
    labels = [a.rows[i].label for i in indices]
    if others and len(labels) > 4:
        return "the other values"
    return f"{a.param} " + (
        labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + f" and {labels[-1]}"
    )


def _spread(values: list[float]) -> str:
    mean, sd = mean_of(values), sd_of(values)
    return f"{mean:.3g} ± {sd:.2g}" if math.isfinite(sd) else f"{mean:.3g}"


def _with_why(a: SweepAnalysis, kind: str, text: str, rows: list[Row] | None = None) -> str:
    why = WHY.get((a.param, kind))
    if kind == "behind" and a.param == "activation" and rows:
        why = why if any(r.value == "linear" for r in rows) else None
    return f"{text} {why}" if why else text


def _rank_correlation(xs: list[float], ys: list[float]) -> float:
    """Spearman's rho (ties get their mean rank)."""

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((x - mx) * (y - my) for x, y in zip(rx, ry, strict=True))
    den = math.sqrt(sum((x - mx) ** 2 for x in rx) * sum((y - my) ** 2 for y in ry))
    return num / den if den > 0 else 0.0
