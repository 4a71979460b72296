"""A sweep's result as a notebook shows it: what it trained, its readings, the score against the
value (a PNG of the sweep page's figure) and a row per value, all read from storage."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..analysis.sweep_data import mean_of, sd_of
from ..analysis.sweeps import analyze_sweep, timing_sentences
from ..report import sweep_figures
from .parts import drawn, esc, notes, png_image, stored_in, view

if TYPE_CHECKING:
    from ..analysis.sweep_data import Row, SweepAnalysis
    from ..sweep.runner import SweepResult


def sweep_html(result: SweepResult) -> str:
    """The sweep's view: self-contained HTML, every value from the user or storage escaped."""
    a = analyze_sweep(result.study)
    seeds = a.plan.seeds
    meta = (
        f"Data: {a.data.get('description') or a.data.get('name') or '?'} · validation "
        f"{a.metric} ({'higher' if a.maximize else 'lower'} is better) · {seeds} "
        f"seed{'s' * (seeds != 1)} per value · {a.plan.epochs} epochs per run · this call "
        f"trained {result.trained} runs in {result.seconds:.0f} s"
        + (" (interrupted: the same call trains the rest)" if result.interrupted else "")
    )
    readings = "".join(
        f'<div class="finding {esc(r.kind)}">{esc(r.text)}</div>' for r in a.readings
    )
    png = drawn(sweep_figures.metric_png, a)
    alt = f"validation {a.metric} against {a.param}: mean over seeds, range and each seed"
    parts = [
        f'<p class="meta">{esc(meta)}</p>',
        f"<p>{esc(' '.join(timing_sentences(a.timing)))}</p>",
        f"<h4>What it shows</h4>{readings}" if readings else "",
        png_image(png, alt),
        "<h4>Per value</h4>",
        _table(a),
        notes(result.notes),
        stored_in(result.storage.shown, result.study.study_name),
        '<p class="meta"><code>result.report()</code> shows the sweep\'s page, with every '
        "value's learning curves.</p>",
    ]
    return view(f"dltune: sweep of {a.param} (study {a.study})", parts)


def _table(a: SweepAnalysis) -> str:
    """Per value: its best validation metric over seeds, divergence, seconds per run; the best
    value's row in bold."""
    ranked = [r for r in a.ranked if not r.all_diverged]
    best = ranked[0] if ranked else None
    heads = [a.param, f"best {a.metric} (mean ± sd)", "diverged", "seconds per run"]
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr>"
    body = "".join(_row(row, row is best) for row in a.rows)
    return f"<table>{head}{body}</table>"


def _row(row: Row, best: bool) -> str:
    if not row.runs:
        cells = [row.label, "not trained yet", "", ""]
    else:
        mean, sd = mean_of(row.best), sd_of(row.best)
        score = "-" if row.all_diverged or not math.isfinite(mean) else f"{mean:.4f}"
        if score != "-" and math.isfinite(sd):
            score += f" ± {sd:.3f}"
        seconds = f"{row.seconds:.2f}" if math.isfinite(row.seconds) else "-"
        cells = [row.label, score, f"{row.diverged} of {len(row.runs)}", seconds]
    tds = "".join(f"<td>{esc(c)}</td>" for c in cells)
    return f'<tr style="font-weight: 600">{tds}</tr>' if best else f"<tr>{tds}</tr>"
