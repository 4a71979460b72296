"""A sweep's figures: the score against the swept value, and each value's learning curves.

Drawn with matplotlib from a SweepAnalysis, as inline SVG for the sweep's page or as one PNG
(`-o sweep.png`; the score alone as PNG for a notebook's view). The drawing functions fill
axes they are given, so the page's two figures and the PNG's one picture are the same drawings.

Curves of diverged runs hold NaN (and a value may have no runs yet, in an interrupted sweep):
matplotlib leaves a gap at a NaN, so every series is plotted with its non-finite points as NaN.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analysis.sweep_data import mean_of
from ..vocabulary import BOOLEAN, CATEGORICAL, LOG_SCALE
from .figures import HEIGHT, WIDTH, _png, _pyplot, _svg

if TYPE_CHECKING:
    from ..analysis.sweep_data import Row, Run, SweepAnalysis

SCORE = "#1f77b4"
FINAL = "#555555"
TRAIN = "#ff7f0e"
DIVERGED = "#d62728"
CHANCE = "#7f7f7f"
# tab10 without its red: red means diverged everywhere in the report
SEED_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
PANEL_WIDTH, PANEL_HEIGHT = 2.1, 1.7  # inches per small multiple
TICKED_VALUES = 9  # up to this many values, each gets its own labelled tick
DPI = 110


def metric_vs_value(a: SweepAnalysis) -> str:
    """The score per value: mean over seeds, min..max band, each seed; final and train means."""
    return _svg(_metric_figure(a))


def metric_png(a: SweepAnalysis) -> bytes:
    """The same figure as a PNG, for a notebook's view of the sweep."""
    return _png(_metric_figure(a), DPI)


def _metric_figure(a: SweepAnalysis) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    draw_metric(ax, a)
    return fig


def curves_grid(a: SweepAnalysis) -> str:
    """Every value's learning curves, one small panel per value (one panel for epochs)."""
    plt = _pyplot()
    fig = plt.figure(figsize=_curves_size(a))
    draw_curves(fig, a)
    return _svg(fig)


def write_png(a: SweepAnalysis, path: str | Path) -> Path:
    """Both figures in one PNG, the score on top and the curves below, under a title line."""
    plt = _pyplot()
    width, height = _curves_size(a)
    fig = plt.figure(
        figsize=(max(width, WIDTH), HEIGHT + height + 0.4), dpi=DPI, layout="constrained"
    )
    top, bottom = fig.subfigures(2, 1, height_ratios=[HEIGHT, height])
    draw_metric(top.subplots(), a)
    draw_curves(bottom, a)
    fig.suptitle(title(a), fontsize=11)
    # format given: the caller writes to a temporary name (dltune.atomic), not by suffix
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def title(a: SweepAnalysis) -> str:
    data = a.data.get("name") or "?"
    seeds = a.plan.seeds
    return f"Sweep of {a.param} on {data}: {seeds} seed{'s' if seeds != 1 else ''} per value"


# ---- the score against the value ------------------------------------------------------------


def draw_metric(ax: Any, a: SweepAnalysis) -> None:
    xs = positions(a)
    categorical = a.param in CATEGORICAL or a.param in BOOLEAN
    ax.set_xlabel(a.param)
    ax.set_ylabel(f"validation {a.metric}")
    if not any(row.runs for row in a.rows):
        _note(ax, "nothing trained yet", CHANCE)
        _x_axis(ax, a, xs)
        return
    _draw_score(ax, a, xs, categorical)
    if a.param != "epochs":  # there the score is already the value at the last epoch
        _draw_mean(ax, xs, [_final_mean(r) for r in a.rows], categorical, "final")
    _draw_mean(ax, xs, [_train_mean(r) for r in a.rows], categorical, "train")
    _draw_diverged(ax, a, xs)
    _draw_chance(ax, a)
    _x_axis(ax, a, xs)
    ax.legend(fontsize=7, frameon=False, loc="best")


def positions(a: SweepAnalysis) -> list[float]:
    """Where each value sits on the x axis: its index for a categorical, else the value."""
    if a.param in CATEGORICAL or a.param in BOOLEAN:
        return [float(i) for i in range(len(a.rows))]
    return [float(r.value) for r in a.rows]


def _scored(row: Row) -> bool:
    return bool(row.runs) and not row.all_diverged


def _draw_score(ax: Any, a: SweepAnalysis, xs: list[float], categorical: bool) -> None:
    what = "validation after E epochs" if a.param == "epochs" else "best over epochs"
    means = [mean_of(r.score) if _scored(r) else math.nan for r in a.rows]
    lows = [_extreme(r.score, min) if _scored(r) else math.nan for r in a.rows]
    highs = [_extreme(r.score, max) if _scored(r) else math.nan for r in a.rows]
    wide = any(h > lo for lo, h in zip(lows, highs, strict=True))
    spread = "min to max over seeds" if wide else None  # one seed: no band to name
    if categorical:  # no line between categories: their order means nothing
        ax.vlines(xs, lows, highs, color=SCORE, alpha=0.25, lw=8, label=spread)
        ax.scatter(xs, means, marker="_", s=400, c=SCORE, label=f"{what} (mean)", zorder=3)
    else:
        present = [math.isfinite(v) for v in means]
        ax.fill_between(xs, lows, highs, where=present, color=SCORE, alpha=0.15, lw=0, label=spread)
        ax.plot(xs, means, c=SCORE, lw=1.6, marker="o", ms=3.5, label=f"{what} (mean)")
    for x, row in zip(xs, a.rows, strict=True):
        if _scored(row):
            _draw_seeds(ax, x, row)


def _draw_seeds(ax: Any, x: float, row: Row) -> None:
    for run, score in zip(row.runs, row.score, strict=True):
        if math.isfinite(score):
            colour, marker = (DIVERGED, "x") if run.diverged else (SCORE, "o")
            ax.scatter([x], [score], s=10, c=colour, marker=marker, alpha=0.6, lw=1, zorder=2)


def _draw_mean(ax: Any, xs: list[float], means: list[float], categorical: bool, which: str) -> None:
    if not any(math.isfinite(v) for v in means):
        return
    colour, style, marker, name = {
        "final": (FINAL, "--", "s", "at the last epoch (mean)"),
        "train": (TRAIN, ":", "^", "train, at the last epoch (mean)"),
    }[which]
    if categorical:
        ax.scatter(xs, means, s=14, c=colour, marker=marker, label=name, zorder=3)
    else:
        ax.plot(xs, means, c=colour, ls=style, lw=1.2, label=name)


def _final_mean(row: Row) -> float:
    return mean_of(row.final) if row.runs else math.nan


def _train_mean(row: Row) -> float:
    return mean_of([run.train_metric[-1] for run in row.runs if _has_train(run)])


def _has_train(run: Run) -> bool:
    return bool(run.train_metric) and not run.diverged


def _draw_diverged(ax: Any, a: SweepAnalysis, xs: list[float]) -> None:
    """An x at the worse end of the axis for each value whose every seed diverged: it has no
    score to plot, and leaving a gap would hide why."""
    broken = [x for x, row in zip(xs, a.rows, strict=True) if row.all_diverged]
    if not broken:
        return
    y = 0.04 if a.maximize else 0.96
    where = ax.get_xaxis_transform()  # x in data, y in axes: independent of the y limits
    ax.scatter(
        broken,
        [y] * len(broken),
        transform=where,
        marker="x",
        s=40,
        c=DIVERGED,
        lw=1.5,
        clip_on=False,  # the last value sits on the axis' edge
    )
    for x in broken:
        ax.text(
            x,
            y + (0.05 if a.maximize else -0.05),
            "diverged",
            transform=where,
            rotation=90,
            ha="center",
            va="bottom" if a.maximize else "top",
            fontsize=7,
            color=DIVERGED,
        )


def _draw_chance(ax: Any, a: SweepAnalysis) -> None:
    """Chance as a dotted line, when it is near the scores: far below them it would squash the
    differences between values that all learned into a sliver."""
    if a.chance is None or not math.isfinite(a.chance):
        return
    low, high = ax.get_ylim()
    margin = 0.25 * (high - low)
    if not low - margin <= a.chance <= high + margin:
        return
    ax.axhline(a.chance, ls=":", lw=1, c=CHANCE)
    where = ax.get_yaxis_transform()
    # outside the right edge: inside, the label would sit on the points near chance
    ax.text(1.005, a.chance, "chance", transform=where, ha="left", va="center", fontsize=7)


def _x_axis(ax: Any, a: SweepAnalysis, xs: list[float]) -> None:
    labels = [r.label for r in a.rows]
    if a.param in CATEGORICAL or a.param in BOOLEAN:
        crowded = len(labels) > 6
        ax.set_xticks(
            xs, labels, rotation=30 if crowded else 0, ha="right" if crowded else "center"
        )
        ax.set_xlim(-0.5, len(xs) - 0.5)
        return
    positive = [x for x in xs if x > 0]
    if a.param in LOG_SCALE and len(positive) == len(xs):
        ax.set_xscale("log")
    elif a.param in LOG_SCALE or (positive and min(positive) < 0.01 * max(positive)):
        # a zero among values spread over decades (weight decay): linear near 0, log beyond
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    if len(xs) <= TICKED_VALUES:
        ax.set_xticks(xs, labels)
        ax.minorticks_off()


def _extreme(values: list[float], pick: Any) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(pick(finite)) if finite else math.nan


# ---- learning curves ------------------------------------------------------------------------


def draw_curves(container: Any, a: SweepAnalysis) -> None:
    """`container`: a matplotlib Figure or SubFigure to lay the panels out in."""
    if a.param == "epochs":
        _epochs_panel(container.subplots(), a)
        return
    count = len(a.rows)
    columns = _columns(count)
    rows = math.ceil(count / columns)
    axes = container.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    flat = [ax for line in axes for ax in line]
    best = _best_row(a)
    for ax, row in zip(flat, a.rows, strict=False):
        _curves_panel(ax, row)
        ax.set_title(row.label + (" (best)" if row is best else ""), fontsize=9)
        if row is best:
            ax.title.set_fontweight("bold")
    _label_panels(flat, count, columns, a.metric)
    spare = flat[count:]
    for ax in spare:
        ax.axis("off")
    legend_at = spare[0] if spare else flat[0]
    _curves_legend(legend_at, a, inside=not spare)


def _curves_panel(ax: Any, row: Row) -> None:
    if not row.runs:
        _note(ax, "not trained", CHANCE)
        return
    for run in row.runs:
        _draw_run(ax, run)
    if row.diverged:
        epochs = sorted(e for run in row.runs if (e := run.diverged_epoch) is not None)
        first, last = epochs[0], epochs[-1]
        when = f"epoch {first}" if first == last else f"epochs {first}-{last}"
        _note(ax, f"diverged in {row.diverged} of {len(row.runs)} seeds\n({when})", DIVERGED)


def _draw_run(ax: Any, run: Run) -> None:
    colour = SEED_COLOURS[run.seed % len(SEED_COLOURS)]
    curve = _finite_or_nan(run.curve)
    # a run that diverged in its first epochs has one or two points: a line alone would vanish
    marker = "." if len(curve) <= 2 else None
    ax.plot(range(1, len(curve) + 1), curve, c=colour, lw=1.2, marker=marker)
    if run.train_metric:
        train = _finite_or_nan(run.train_metric)
        ax.plot(range(1, len(train) + 1), train, c=colour, lw=0.9, ls="--", marker=marker)
    if run.diverged_epoch is not None:
        ax.axvline(run.diverged_epoch, c=DIVERGED, ls=":", lw=0.8)


def _label_panels(flat: list[Any], count: int, columns: int, metric: str) -> None:
    """Epoch labels on the lowest panel of each column (shared x hides the others' tick
    labels, also above an empty slot), the metric on the first panel of each row."""
    for index, ax in enumerate(flat[:count]):
        if index + columns >= count:
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch")
        if index % columns == 0:
            ax.set_ylabel(metric)


def _curves_legend(ax: Any, a: SweepAnalysis, inside: bool) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], c=SEED_COLOURS[k % len(SEED_COLOURS)], lw=1.2, label=f"seed {k}")
        for k in range(a.plan.seeds)
    ]
    handles.append(Line2D([], [], c="black", lw=1.2, label="validation"))
    if any(run.train_metric for row in a.rows for run in row.runs):
        handles.append(Line2D([], [], c="black", lw=0.9, ls="--", label="train"))
    if any(row.diverged for row in a.rows):
        handles.append(Line2D([], [], c=DIVERGED, lw=0.8, ls=":", label="diverged"))
    where = "best" if inside else "center"
    ax.legend(handles=handles, fontsize=6 if inside else 7, frameon=False, loc=where)


def _epochs_panel(ax: Any, a: SweepAnalysis) -> None:
    """One panel: the longest value's runs span every shorter one (each value is read off the
    same curves), with a thin line at each value swept."""
    trained = [r for r in a.rows if r.runs]
    if trained:
        longest = max(trained, key=lambda r: float(r.value))
        for run in longest.runs:
            _draw_run(ax, run)
        _draw_val_loss(ax, longest)
    else:
        _note(ax, "not trained", CHANCE)
    for row in a.rows:
        ax.axvline(float(row.value), c="#bbbbbb", lw=0.6, zorder=0)
    if len(a.rows) <= TICKED_VALUES * 2:
        ax.set_xticks([float(r.value) for r in a.rows], [r.label for r in a.rows])
    ax.set_xlabel("epoch (thin lines: the values swept)")
    ax.set_ylabel(f"{a.metric}")
    _curves_legend(ax, a, inside=True)


def _draw_val_loss(ax: Any, row: Row) -> None:
    """The validation loss on a right-hand axis, thin and dotted: where it turns is where the
    epochs sweep's reading says overfitting starts, often before the metric peaks."""
    losses = [run for run in row.runs if run.val_loss]
    if not losses:
        return
    right = ax.twinx()
    for run in losses:
        loss = _finite_or_nan(run.val_loss)
        colour = SEED_COLOURS[run.seed % len(SEED_COLOURS)]
        right.plot(range(1, len(loss) + 1), loss, c=colour, lw=0.8, ls=":", alpha=0.8)
    right.set_ylabel("validation loss (dotted)")
    right.spines["right"].set_visible(True)


def _columns(count: int) -> int:
    """Four or five panels a row, whichever leaves fewer empty slots (five on a tie)."""
    if count <= 5:
        return max(count, 1)
    return min((5, 4), key=lambda c: (-count % c, -c))


def _curves_size(a: SweepAnalysis) -> tuple[float, float]:
    if a.param == "epochs":
        return WIDTH, HEIGHT
    columns = _columns(len(a.rows))
    rows = math.ceil(len(a.rows) / columns)
    return columns * PANEL_WIDTH + 0.6, rows * PANEL_HEIGHT + 0.5


def _best_row(a: SweepAnalysis) -> Row | None:
    ranked = [r for r in a.ranked if not r.all_diverged]
    return ranked[0] if ranked else None


def _note(ax: Any, text: str, colour: str) -> None:
    backing = {"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1}  # readable over curves
    ax.text(
        0.5,
        0.95,
        text,
        transform=ax.transAxes,
        ha="center",
        va="top",
        fontsize=7,
        color=colour,
        bbox=backing,
    )


def _finite_or_nan(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]
