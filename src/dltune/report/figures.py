"""The report's figures, drawn with matplotlib from the analysis' plain data, as inline SVG.

SVG keeps the report one self-contained file that renders without JavaScript and without any
network fetch; text stays text (svg.fonttype "none"), so figures are small and searchable.
Every function takes plain data (see dltune.analysis) and returns an SVG string; a notebook's
view of a result takes the history as PNG (history_png: the same drawing).
"""

from __future__ import annotations

import io
import math
import os
import sys
from typing import Any

STATE_STYLE = {  # colour and marker per trial state
    "complete": ("#1f77b4", "o"),
    "pruned": ("#9a9a9a", "o"),
    "diverged": ("#d62728", "x"),
}
CURVE_COLOURS = {
    "best": "#1f77b4",
    "overfit": "#ff7f0e",
    "pruned": "#9a9a9a",
    "diverged": "#d62728",
}
WIDTH, HEIGHT = 6.4, 3.4  # inches: two figures fit side by side on a laptop screen


def _pyplot() -> Any:
    import matplotlib

    # No display, no GUI toolkit; but a backend already chosen stays: a notebook's (its kernel
    # sets MPLBACKEND), where switching would close the user's figures and stop inline plots.
    if "matplotlib.pyplot" not in sys.modules and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "dltune",  # the same study gives the same file
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def _svg(fig: Any) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue and DOCTYPE: inline in HTML


def _png(fig: Any, dpi: int = 110) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def importance_bars(values: dict[str, float]) -> str:
    plt = _pyplot()
    names = list(values)[::-1]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.35 * len(names) + 0.9))
    ax.barh(names, [values[n] for n in names], color="#1f77b4")
    for i, name in enumerate(names):
        ax.text(values[name], i, f" {values[name]:.0%}", va="center")
    ax.set_xlabel("share of the score's variance (fANOVA)")
    ax.set_xlim(0, max(values.values()) * 1.2 or 1)
    return _svg(fig)


def effect_plot(name: str, effect: dict[str, Any], metric: str) -> str:
    """Each trial's score against the hyperparameter; medians per bin or value; the region of
    the best trials shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH / 1.3, HEIGHT))
    if effect["kind"] == "categorical":
        levels = [g["value"] for g in effect["groups"]]
        position = {str(v): i for i, v in enumerate(levels)}
        for state, (colour, marker) in STATE_STYLE.items():
            pts = [p for p in effect["points"] if p["state"] == state]
            xs = [position[str(p["x"])] + _jitter(p["trial"]) for p in pts]
            ax.scatter(
                xs, [p["score"] for p in pts], s=14, c=colour, marker=marker, alpha=0.7, label=state
            )
        medians = [g["median"] for g in effect["groups"]]
        ax.scatter(range(len(levels)), medians, marker="_", s=900, c="black", label="median")
        ax.set_xticks(range(len(levels)))
        ax.set_xticklabels(
            [f"{v}\n({g['trials']})" for v, g in zip(levels, effect["groups"], strict=True)]
        )
        for value in effect["best_region"]["values"][:1]:
            i = position[str(value)]
            ax.axvspan(i - 0.45, i + 0.45, color="#2ca02c", alpha=0.12, lw=0)
    else:
        for state, (colour, marker) in STATE_STYLE.items():
            pts = [p for p in effect["points"] if p["state"] == state]
            ax.scatter(
                [p["x"] for p in pts],
                [p["score"] for p in pts],
                s=14,
                c=colour,
                marker=marker,
                alpha=0.7,
                label=state,
            )
        groups = [g for g in effect["groups"] if g["median"] is not None]
        centres = [
            math.sqrt(g["low"] * g["high"]) if effect["log"] else (g["low"] + g["high"]) / 2
            for g in groups
        ]
        ax.plot(centres, [g["median"] for g in groups], c="black", lw=1.5, label="median")
        region = effect["best_region"]
        if region["low"] is not None:
            low, high = region["low"], region["high"]
            if high <= low:  # one value: a visible band around it
                low, high = (
                    (low / 1.05, high * 1.05) if effect["log"] else (low - 0.01, high + 0.01)
                )
            ax.axvspan(low, high, color="#2ca02c", alpha=0.12, lw=0, label="best trials")
        if effect["log"]:
            ax.set_xscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return _svg(fig)


def epoch_plot(epochs: dict[str, Any], metric: str) -> str:
    """The median and best value after each epoch, with how many trials got that far."""
    plt = _pyplot()
    rows = epochs["by_epoch"]
    fig, ax = plt.subplots(figsize=(WIDTH / 1.3, HEIGHT))
    xs = [r["epoch"] for r in rows]
    ax.plot(xs, [r["best"] for r in rows], c="#1f77b4", marker=".", label="best")
    ax.plot(xs, [r["median"] for r in rows], c="#7f7f7f", marker=".", label="median")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    counts = ax.twinx()
    counts.bar(xs, [r["trials"] for r in rows], color="#bbbbbb", alpha=0.3, label="trials")
    counts.set_ylabel("trials that trained this long")
    counts.spines["top"].set_visible(False)
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return _svg(fig)


def history_plot(history: list[dict[str, Any]], metric: str) -> str:
    return _svg(_history_figure(history, metric))


def history_png(history: list[dict[str, Any]], metric: str) -> bytes:
    """The history as a PNG, for a notebook: an image that every notebook viewer shows."""
    return _png(_history_figure(history, metric))


def _history_figure(history: list[dict[str, Any]], metric: str) -> Any:
    """Each trial's score in the order trials started, by state, and the best so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    for state, (colour, marker) in STATE_STYLE.items():
        rows = [h for h in history if h["state"] == state and h["score"] is not None]
        ax.scatter(
            [h["trial"] for h in rows],
            [h["score"] for h in rows],
            s=12,
            c=colour,
            marker=marker,
            alpha=0.7,
            label=state,
        )
    steps = [h for h in history if h["best"] is not None]
    ax.step(
        [h["trial"] for h in steps],
        [h["best"] for h in steps],
        where="post",
        c="black",
        lw=1.2,
        label="best so far",
    )
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return fig


def curves_plot(curves: list[dict[str, Any]], metric: str) -> str:
    """Validation metric per epoch (left) and training against validation loss (right)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * WIDTH / 1.3, HEIGHT))
    for c in curves:
        colour = CURVE_COLOURS.get(c["label"], "#555555")
        label = f"#{c['trial']} {c['label']}"
        xs = range(1, len(c["val_metric"]) + 1)
        left.plot(
            xs,
            c["val_metric"],
            c=colour,
            marker=".",
            lw=1.2,
            label=label,
            alpha=1.0 if c["label"] == "best" else 0.7,
        )
        band = c.get("fold_band")
        if band and c["label"] == "best":  # k-fold: the folds' lowest to highest
            low, high = band["low"], band["high"]
            folds_xs = range(1, len(low) + 1)
            nan = float("nan")
            left.fill_between(
                folds_xs,
                [nan if v is None else v for v in low],
                [nan if v is None else v for v in high],
                color=colour,
                alpha=0.18,
                lw=0,
                label=f"#{c['trial']} folds (lowest to highest)",
            )
        if c["label"] in ("best", "overfit") and c["train_loss"]:
            xs = range(1, len(c["train_loss"]) + 1)
            right.plot(xs, c["train_loss"], c=colour, ls="--", lw=1, label=f"{label} train")
            right.plot(xs, c["val_loss"], c=colour, lw=1.2, label=f"{label} validation")
        if c["diverged_epoch"]:
            left.axvline(c["diverged_epoch"], c=colour, ls=":", lw=1)
    left.set_xlabel("epoch")
    left.set_ylabel(f"validation {metric}")
    left.legend(fontsize=7, frameon=False, loc="best")
    right.set_xlabel("epoch")
    right.set_ylabel("loss")
    right.set_yscale("log")
    right.legend(fontsize=7, frameon=False, loc="best")
    return _svg(fig)


def interaction_plot(pair: dict[str, Any], metric: str, log: dict[str, bool]) -> str:
    """Trials placed by the two hyperparameters, coloured by score."""
    plt = _pyplot()
    a, b = pair["params"]
    fig, ax = plt.subplots(figsize=(WIDTH / 1.3, HEIGHT))
    xs = _axis(ax, "x", [p["x"] for p in pair["points"]], [p["trial"] for p in pair["points"]])
    ys = _axis(ax, "y", [p["y"] for p in pair["points"]], [p["trial"] + 7 for p in pair["points"]])
    shown = ax.scatter(xs, ys, c=[p["score"] for p in pair["points"]], cmap="viridis", s=16)
    fig.colorbar(shown, ax=ax, label=metric)
    if log.get(a) and all(isinstance(x, float | int) for x in xs):
        ax.set_xscale("log")
    if log.get(b) and all(isinstance(y, float | int) for y in ys):
        ax.set_yscale("log")
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    return _svg(fig)


def front_plot(front: dict[str, Any]) -> str:
    """The metric against each cost, one panel per cost: the front's points drawn and joined
    (a step, as the front is a staircase), the dominated trials faded, the pick ringed."""
    plt = _pyplot()
    metric, costs = front["names"][0], front["names"][1:]
    fig, axes = plt.subplots(1, len(costs), figsize=(WIDTH * min(len(costs), 2) / 1.1, HEIGHT))
    axes = list(axes) if len(costs) > 1 else [axes]
    for ax, cost in zip(axes, costs, strict=True):
        faded = front["dominated"]
        ax.scatter(
            [p["values"][cost] for p in faded],
            [p["values"][metric] for p in faded],
            s=14, c="#9a9a9a", alpha=0.35, label=f"dominated ({len(faded)})",
        )  # fmt: skip
        points = sorted(front["points"], key=lambda p: p["values"][cost])
        xs = [p["values"][cost] for p in points]
        ys = [p["values"][metric] for p in points]
        if len(costs) == 1:  # on one cost, the front is a staircase: draw it
            ax.step(xs, ys, where="post", c="#1f77b4", lw=1, alpha=0.6)
        ax.scatter(xs, ys, s=22, c="#1f77b4", label=f"Pareto front ({len(points)})", zorder=3)
        labels: dict[tuple[float, float], list[str]] = {}  # equal points share one label
        for p, x, y in zip(points, xs, ys, strict=True):
            labels.setdefault((x, y), []).append(f"#{p['trial']}")
        for (x, y), names in labels.items():
            ax.annotate(", ".join(names), (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        every = xs + [p["values"][cost] for p in faded]
        if every and min(every) > 0 and max(every) / min(every) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(f"{cost} (ms)" if cost.startswith("latency") else cost)
        ax.set_ylabel(f"validation {metric}")
        ax.legend(fontsize=7, frameon=False, loc="best")
    return _svg(fig)


def _axis(ax: Any, which: str, values: list[Any], seeds: list[int]) -> list[float]:
    """Numbers as they are; categories as 0, 1, 2 ... with a little jitter and their names."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    levels = sorted({str(v) for v in values})
    ticks = getattr(ax, f"set_{which}ticks")
    labels = getattr(ax, f"set_{which}ticklabels")
    ticks(range(len(levels)))
    labels(levels)
    return [levels.index(str(v)) + _jitter(s) for v, s in zip(values, seeds, strict=True)]


def _jitter(seed: int) -> float:
    """A fixed small offset per trial, so that points of one category do not hide each other."""
    return ((seed * 2654435761) % 1000 / 1000 - 0.5) * 0.5
