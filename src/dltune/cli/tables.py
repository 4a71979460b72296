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


def best_table(best: dict[str, Any], title: str, holdout_rows: int | None = None) -> Table:
    """The best configuration and its metrics, as a two-column table: how it was validated
    (`holdout_rows`: the validation split's size, where known), chosen, what the study
    delivers (the ensemble, or the best trial: its bag in k-fold) and how optimistic its
    validation was."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    metric = best.get("metric") or "value"
    table.add_row("trial", f"#{best['trial']}")
    table.add_row(f"validation {metric}", fmt_value(best["value"]))
    table.add_row(f"test {metric}", fmt_value(best["test"]) if best["test"] is not None else "-")
    table.add_row("best epoch", f"{best['best_epoch']} of {best['epochs']} run")
    table.add_row("validation", validation_text(best, holdout_rows))
    table.add_row("chosen by", str(best.get("chosen_by") or "the best validation value"))
    table.add_row("delivers", delivered_text(best))
    ensemble = ensemble_text(best)
    if ensemble is not None:
        table.add_row("ensemble", ensemble)
    optimism = optimism_text(best)
    if optimism is not None:
        table.add_row("optimism", optimism)
    for key, value in param_rows(best["params"]):
        table.add_row(key, value)
    return table


def param_rows(params: dict[str, Any]) -> list[tuple[str, str]]:
    """A configuration's hyperparameters as (name, value) text, dltune's in their usual order;
    for a user's build(hp), its own hyperparameters instead of dltune's network keys."""
    params = dict(params)
    model = params.pop("model", None)
    if model:
        for key in ("layers", "units", "dropout", "activation"):
            params.pop(key, None)
    rows = []
    for key in HYPERPARAMETERS:
        if key in params:
            value = params.pop(key)
            rows.append((key, f"{value:.4g}" if isinstance(value, float) else str(value)))
    for key, value in (model or {}).items():
        rows.append((key, f"{value:.4g}" if isinstance(value, float) else str(value)))
    rows.extend((key, str(value)) for key, value in params.items())
    return rows


def _figure(value: float) -> str:
    """A metric in a sentence: 0.954, or 12.35 for a larger error."""
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.4g}"


def _kfold(best: dict[str, Any]) -> int | None:
    validation = best.get("validation") or {}
    return int(validation["k"]) if validation.get("kind") == "kfold" else None


def validation_text(best: dict[str, Any], holdout_rows: int | None = None) -> str:
    """'5-fold cross-validation over 1527 examples: fold values 0.954-0.980, spread 0.010', or
    'holdout: 270 validation examples'."""
    k = _kfold(best)
    if k is None:
        return f"holdout: {holdout_rows} validation examples" if holdout_rows else "holdout"
    examples = (best.get("validation") or {}).get("examples")
    text = f"{k}-fold cross-validation" + (f" over {examples} examples" if examples else "")
    folds = best.get("folds") or {}
    values = [float(v) for v in folds.get("values") or [] if v is not None]
    if values:
        text += f": fold values {_figure(min(values))}-{_figure(max(values))}"
        if folds.get("spread") is not None:
            text += f", spread {_figure(float(folds['spread']))}"
    return text


def delivered_text(best: dict[str, Any]) -> str:
    """What train-best builds by default: the ensemble, the best trial's bag, or the trial."""
    k, ensemble = _kfold(best), best.get("ensemble")
    if ensemble is not None:
        count = len(ensemble["members"])
        networks = f", {count * k} fold models" if k else ""
        return f"its ensemble ({count} configuration{'s' * (count != 1)}{networks})"
    if k is not None:
        return f"trial #{best['trial']}'s bag (its {k} fold models, averaged)"
    return f"trial #{best['trial']}"


def ensemble_text(best: dict[str, Any]) -> str | None:
    """The ensemble's members and weights, its out-of-fold (or validation) score beside the
    best single member's, and its test; None without one."""
    ensemble = best.get("ensemble")
    if ensemble is None:
        return None
    metric = best.get("metric") or "value"
    where = "out-of-fold" if _kfold(best) else "validation"
    members = ", ".join(f"#{m['trial']} x{float(m['weight']):.2f}" for m in ensemble["members"])
    text = f"{members}; {where} {metric} {fmt_value(ensemble.get('score'))}"
    single = ensemble.get("best_single") or {}
    if single.get("score") is not None:
        text += f" against {fmt_value(single['score'])} for the best single (#{single['trial']})"
    if ensemble.get("test") is not None:
        text += f"; test {fmt_value(ensemble['test'])}"
    return text


def optimism_text(best: dict[str, Any]) -> str | None:
    """The optimism of the choice (storage.records.delivered_optimism), with what it compares."""
    optimism = best.get("optimism")
    if optimism is None:
        return None
    ensemble = best.get("ensemble")
    if ensemble is not None and ensemble.get("test") is not None:
        where = "out-of-fold" if _kfold(best) else "validation"
        compared = f"the ensemble's {where} {fmt_value(ensemble.get('score'))}"
        compared += f", its test {fmt_value(ensemble['test'])}"
    else:
        what = "the bag's" if _kfold(best) else "its"
        compared = f"validation {fmt_value(best['value'])}, {what} test {fmt_value(best['test'])}"
    return f"{optimism:+.4f} ({compared}; positive: validation promised more than the test gave)"


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
