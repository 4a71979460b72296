"""The command line's tables: the best trial, the Pareto front, the trials, the studies and a
sweep, built from the library's records (display.py has the displays of a study running).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.table import Table

from ..config import Config
from ..storage import TrialRecord
from ..vocabulary import HYPERPARAMETERS

if TYPE_CHECKING:
    from ..analysis.sweep_data import SweepAnalysis
    from ..study.front import Front


def fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def config_text(params: dict[str, Any]) -> str:
    try:
        return Config.from_dict(params).short()
    except (KeyError, TypeError, ValueError):
        return ", ".join(f"{k}={v}" for k, v in params.items())


def best_table(best: dict[str, Any], title: str) -> Table:
    """The best configuration and its metrics, as a two-column table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    metric = best.get("metric") or "value"
    table.add_row("trial", f"#{best['trial']}")
    table.add_row(f"validation {metric}", fmt_value(best["value"]))
    table.add_row(f"test {metric}", fmt_value(best["test"]) if best["test"] is not None else "-")
    table.add_row("best epoch", f"{best['best_epoch']} of {best['epochs']} run")
    table.add_row("chosen by", str(best.get("chosen_by") or "the best validation value"))
    params = dict(best["params"])
    model = params.pop("model", None)
    if model:  # a user's build(hp): its own hyperparameters instead of dltune's network keys
        for key in ("layers", "units", "dropout", "activation"):
            params.pop(key, None)
    for key in HYPERPARAMETERS:
        if key in params:
            value = params.pop(key)
            if isinstance(value, float):
                value = f"{value:.4g}"
            table.add_row(key, str(value))
    for key, value in (model or {}).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    for key, value in params.items():
        table.add_row(key, str(value))
    return table


def front_table(front: Front, study_name: str) -> Table:
    """The Pareto front: one row per point, its objectives and configuration."""
    table = Table(
        title=f"Pareto front of study {study_name!r} ({len(front.points)} of "
        f"{len(front.points) + len(front.dominated)} trials trained a whole epoch or more)",
        title_justify="left",
    )
    table.add_column("trial", justify="right")
    for name, direction in zip(front.names, front.directions, strict=True):
        table.add_column(f"{name} {'↑' if direction == 'maximize' else '↓'}", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("configuration")
    for record in front.points:
        values = [_fmt_objective(v) for v in front.values(record)]
        # a stopped trial's point is its best epoch's model; train-best retrains that many
        epochs = f"{record.best_epoch}" + ("" if record.state == "complete" else " (stopped)")
        table.add_row(f"#{record.number}", *values, epochs, config_text(record.config))
    return table


def _fmt_objective(value: float) -> str:
    """A metric to 4 decimals, a count as a whole number, a latency in ms to 3 figures."""
    if value.is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.4g}" if abs(value) >= 1 else f"{value:.4f}"


def trials_table(study_name: str, records: list[TrialRecord]) -> Table:
    """One row per trial: state, value, epochs, best epoch, seconds, configuration."""
    table = Table(title=f"Trials of study {study_name!r}", title_justify="left")
    for column in ("trial", "state", "value", "epochs", "best epoch", "seconds", "configuration"):
        table.add_column(column, justify="right" if column != "configuration" else "left")
    for r in records:
        table.add_row(
            str(r.number),
            r.state,
            "-" if r.value is None else f"{r.value:.4f}",
            str(r.epochs),
            "-" if r.best_epoch is None else str(r.best_epoch),
            "-" if r.seconds is None else f"{r.seconds:.1f}",
            config_text(r.config),
        )
    return table


def study_rows(summaries: list[Any]) -> list[dict[str, Any]]:
    """Optuna's study summaries as `dltune studies --json` prints them."""
    from ..storage import study_summary_meta

    return [
        {
            "study": s.study_name,
            "trials": s.n_trials,
            # the metric's (the first objective's); a study of several has no single best
            "direction": s.directions[0].name.lower(),
            "best": s.best_trial.values[0] if s.best_trial else None,
            "metric": study_summary_meta(s).get("metric"),
            "started": s.datetime_start.isoformat(timespec="seconds") if s.datetime_start else None,
        }
        for s in summaries
    ]


def studies_table(shown_url: str, rows: list[dict[str, Any]]) -> Table:
    """One row per study of a storage (rows as study_rows gives them)."""
    table = Table(title=f"Studies in {shown_url}", title_justify="left")
    for column in ("study", "trials", "metric", "best", "started", "checkpoints"):
        table.add_column(column)
    for row in rows:
        best_value = "-" if row["best"] is None else f"{row['best']:.4f}"
        held = row.get("checkpoints") or {"count": 0, "bytes": 0}
        table.add_row(
            str(row["study"]),
            str(row["trials"]),
            str(row["metric"] or "-"),
            best_value,
            str(row["started"] or "-"),
            f"{held['count']} ({held['bytes'] / 2**20:.1f} MiB)" if held["count"] else "none",
        )
    return table


def sweep_table(a: SweepAnalysis) -> Table:
    """One row per value: final and best validation metric with their spread over seeds, the
    median best epoch, the train-validation gap, divergence, seconds per run, and what the
    value's network costs: its parameters and its latency."""
    from rich import box

    from ..analysis.sweep_data import mean_of, median_of, sd_of

    seeds = a.plan.seeds
    table = Table(
        title=(
            f"Sweep of {a.param}: validation {a.metric} (mean ± sd over {seeds} seed"
            f"{'s' * (seeds > 1)}), {a.plan.epochs} epochs; * best"
        ),
        title_justify="left",
        caption=(
            "gap: train minus validation metric at the last epoch; s/run: a run's share of "
            "the population's seconds; ms/pred: median milliseconds of one prediction of one "
            "example"
        ),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column(a.param, no_wrap=True)
    for head in ("final", "best", "best ep.", "gap", "diverged", "s/run", "params", "ms/pred"):
        table.add_column(head, justify="right", no_wrap=True)
    best = a.ranked[0].index if a.ranked else None
    for row in a.rows:
        gap = mean_of(row.gap)
        epochs = row.best_epochs
        table.add_row(
            row.label + (" *" if row.index == best else ""),
            _spread(mean_of(row.final), sd_of(row.final)),
            _spread(mean_of(row.best), sd_of(row.best)),
            f"{median_of(epochs):g}" if epochs else "-",
            f"{gap:+.3f}" if math.isfinite(gap) else "-",
            f"{row.diverged}/{len(row.runs)}" if row.diverged else "no",
            f"{row.seconds:.1f}" if math.isfinite(row.seconds) else "-",
            f"{row.parameters:,}" if row.parameters is not None else "-",
            f"{row.latency:.3g}" if row.latency is not None else "-",
        )
    return table


def _spread(mean: float, sd: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.3f}±{sd:.3f}" if math.isfinite(sd) else f"{mean:.3f}"
