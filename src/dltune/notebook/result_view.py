"""A run's result as a notebook shows it: what the run did, the best configuration with its
validation and test figures, how it was chosen, the top diagnostics and the optimization
history, all read from storage (as `dltune run` ends, in the same words)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..analysis import load_trials
from ..analysis.curves import history
from ..analysis.diagnostics import diagnose
from ..cli.tables import (
    delivered_text,
    ensemble_text,
    fmt_value,
    optimism_text,
    param_rows,
    validation_text,
)
from ..report import figures
from ..storage import state_counts
from .parts import drawn, esc, key_table, notes, png_image, stored_in, view

if TYPE_CHECKING:
    from ..analysis import Diagnosis, StudyTrials
    from ..study.result import TuneResult

TOP_DIAGNOSTICS = 3


def result_html(result: TuneResult) -> str:
    """The result's view: self-contained HTML, every value from the user or storage escaped."""
    study = result.study
    trials = load_trials(study)
    parts = [_summary(result)]
    if result.best is None:
        parts.append("<p>No trial completed yet: there is no best configuration.</p>")
    else:
        holdout = len(result.data.y_val) if result.data.folds is None else None
        parts += [
            "<h4>Best configuration</h4>",
            _best(result.best),
            "<h4>How it was chosen</h4>",
            _choice(result.best, holdout),
        ]
    parts += [_diagnostics(diagnose(trials)[:TOP_DIAGNOSTICS]), _history(trials)]
    parts += [
        notes(result.notes),
        stored_in(result.storage.shown, study.study_name),
        '<p class="meta"><code>result.report()</code> shows the full report; '
        "<code>dltune.train_best(study=result.study)</code> trains the delivered model.</p>",
    ]
    return view(f"dltune: study {study.study_name}", parts)


def _summary(result: TuneResult) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(state_counts(result.study).items()))
    text = (
        f"{result.trials_run} trials in {result.seconds:.0f} s this run; the study holds "
        f"{len(result.study.trials)} ({counts or 'none'}). Data: {result.data.describe()}."
    )
    if result.front:
        text += f" Pareto front: {len(result.front)} trials."
    if result.interrupted:
        text += " Interrupted: run the same call again to continue."
    return f'<p class="meta">{esc(text)}</p>'


def _best(best: dict[str, Any]) -> str:
    """Its figures first, then its hyperparameters."""
    metric = best.get("metric") or "value"
    rows = [
        ("trial", f"#{best['trial']}"),
        (f"validation {metric}", fmt_value(best["value"])),
        (f"test {metric}", fmt_value(best["test"]) if best.get("test") is not None else "-"),
        ("best epoch", f"{best['best_epoch']} of {best['epochs']} run"),
    ]
    return key_table(rows + param_rows(best["params"]))


def _choice(best: dict[str, Any], holdout: int | None) -> str:
    """The validation, the rule that chose, what the study delivers and how optimistic its
    validation was (cli.tables says each in the terminal's words)."""
    rows = [
        ("validation", validation_text(best, holdout)),
        ("chosen by", str(best.get("chosen_by") or "the best validation value")),
        ("delivers", delivered_text(best)),
    ]
    ensemble, optimism = ensemble_text(best), optimism_text(best)
    if ensemble is not None:
        rows.append(("ensemble", ensemble))
    if optimism is not None:
        rows.append(("optimism", optimism))
    return key_table(rows)


def _diagnostics(found: list[Diagnosis]) -> str:
    if not found:
        return ""
    items = "".join(
        f'<div class="finding {esc(d.kind)}"><b>{esc(d.title)}.</b> Try: {esc(d.suggestion)}</div>'
        for d in found
    )
    return f"<h4>What the study shows</h4>{items}"


def _history(trials: StudyTrials) -> str:
    rows = history(trials)
    if not any(h["score"] is not None for h in rows):
        return ""
    png = drawn(figures.history_png, rows, trials.metric)
    alt = f"Optimization history: each trial's validation {trials.metric} and the best so far"
    return f"<h4>Optimization history</h4>{png_image(png, alt)}"
