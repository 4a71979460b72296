"""A sweep's page: one self-contained HTML file (inline CSS and SVG; no script, no fetch).

What was held and what varied, how long it took, the readings, the score against the value,
a table per value and every value's learning curves. As in html.py, every string from the
user or from storage goes through `esc`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import fields
from typing import TYPE_CHECKING

from ..analysis.sweep_data import mean_of, sd_of
from ..analysis.sweeps import timing_sentences
from ..config import Config
from ..version import __version__
from ..vocabulary import CATEGORICAL
from . import sweep_figures
from .html import CSS, esc

if TYPE_CHECKING:
    from ..analysis.sweep_data import Row, SweepAnalysis

SWEEP_CSS = """
.reading { border-left: 4px solid #bbb; padding: .45rem .9rem; margin: .6rem 0;
  background: #fafafa; }
.reading.diverged { border-color: #d62728; background: #fff5f5; }
.reading.slow, .reading.stalls { border-color: #e0a800; background: #fffaf0; }
.reading.overfit { border-color: #ff7f0e; background: #fff8f0; }
.reading.gap { border-color: #9467bd; background: #faf7ff; }
.reading.best { border-color: #2ca02c; background: #f5fff5; }
.reading.behind, .reading.noise { border-color: #1f77b4; background: #f5f9ff; }
td.swept { font-weight: 600; color: #1f77b4; }
tr.best-row td { font-weight: 600; }
td.bad { color: #d62728; }
footer { margin-top: 2.5rem; font-size: .85rem; }
"""


def render_sweep(a: SweepAnalysis) -> str:
    """The whole page of one sweep as an HTML string."""
    body = [
        f"<h1>Sweep of {esc(a.param)}</h1>",
        _meta(a),
        _base(a),
        _section("Timing", _timing(a)),
        _section("What it shows", _readings(a) + _metric_figure(a)),
        _section("Per value", _table(a)),
        _section("Learning curves", _curves_figure(a)),
        f'<footer class="meta">Written by dltune {esc(__version__)}.</footer>',
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>dltune sweep of {esc(a.param)}: {esc(a.study)}</title>"
        f"<style>{CSS}{SWEEP_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _section(title: str, content: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{content}</section>"


def _meta(a: SweepAnalysis) -> str:
    data = a.data.get("description") or a.data.get("name") or "?"
    better = "higher" if a.maximize else "lower"
    seeds = a.plan.seeds
    return (
        f'<p class="meta">Study {esc(a.study)} · data: {esc(data)} · metric: validation '
        f"{esc(a.metric)} ({better} is better) · {seeds} seed{'s' if seeds != 1 else ''} per "
        f"value · {a.plan.epochs} epochs per run</p>"
    )


# ---- what was held --------------------------------------------------------------------------


def _base(a: SweepAnalysis) -> str:
    """The base configuration as one row of a table, the swept key's cell naming its values."""
    keys = [f.name for f in fields(Config)]
    cells = []
    for key in keys:
        if key == a.param:
            cells.append(f'<td class="swept">swept: {esc(_values(a))}</td>')
        else:
            cells.append(f"<td>{esc(_held(a.plan.base, key))}</td>")
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    return (
        "<p>Every run holds this configuration and changes only "
        f"{esc(a.param)}:</p><table><tr>{head}</tr><tr>{''.join(cells)}</tr></table>"
    )


def _held(config: Config, key: str) -> str:
    value = getattr(config, key)
    if key == "units":
        return ",".join(str(u) for u in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _values(a: SweepAnalysis) -> str:
    labels = a.plan.labels()
    if a.param in CATEGORICAL or len(labels) <= 8:
        return ", ".join(labels)
    return f"{len(labels)} values from {labels[0]} to {labels[-1]}"


# ---- timing ---------------------------------------------------------------------------------


def _timing(a: SweepAnalysis) -> str:
    return f"<p>{esc(' '.join(timing_sentences(a.timing)))}</p>"


# ---- readings and figures -------------------------------------------------------------------


def _readings(a: SweepAnalysis) -> str:
    if not a.readings:
        return "<p>No reading applies: too few values have trained to say anything yet.</p>"
    return "".join(f'<p class="reading {esc(r.kind)}">{esc(r.text)}</p>' for r in a.readings)


def _metric_figure(a: SweepAnalysis) -> str:
    score = (
        f"the validation {a.metric} after that many epochs"
        if a.param == "epochs"
        else f"each run's best validation {a.metric} over its epochs"
    )
    caption = (
        f"Blue: {score}, the mean over seeds, its range over seeds (shaded) and each seed (dots)."
    )
    if a.param != "epochs":
        caption += " Grey dashed: the value at the last epoch."
    caption += (
        " Orange dotted: the training metric at the last epoch, on a sample of the training "
        "rows. A red x marks a value whose every seed diverged; a grey dotted line, chance "
        "(drawn when it is near the scores)."
    )
    return _figure(sweep_figures.metric_vs_value(a), esc(caption))


def _curves_figure(a: SweepAnalysis) -> str:
    if a.param == "epochs":
        caption = (
            "Each seed's run of the most epochs; training for fewer epochs is the start of "
            "the same run, so each value swept (thin lines) is read off these curves. Solid: "
            "validation; dashed: training."
        )
    else:
        caption = (
            f"One panel per value of {a.param}: each seed's validation {a.metric} per epoch "
            "(solid) and training (dashed) in the seed's colour; a red dotted line marks the "
            "epoch where a run diverged."
        )
    return _figure(sweep_figures.curves_grid(a), esc(caption))


def _figure(svg: str, caption: str) -> str:
    """`caption` must already be escaped; the SVG is matplotlib's own output."""
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


# ---- the table ------------------------------------------------------------------------------


def _table(a: SweepAnalysis) -> str:
    headers = [
        a.param,
        f"final {a.metric}",
        f"best {a.metric}",
        "best epoch (median)",
        "train − validation",
        "diverged",
        "seconds per run",
        "parameters",
        "ms per prediction",
    ]
    ranked = [r for r in a.ranked if not r.all_diverged]
    best = ranked[0] if ranked else None
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
    body = "".join(_table_row(row, row is best, a.plan.seeds) for row in a.rows)
    note = (
        "<p>Mean ± standard deviation over seeds; the gap is the training metric minus the "
        "validation metric at the last epoch, positive when the training rows score better. "
        "Seconds: a run's share of its population's time (the time of each step divided "
        "among the runs stacked in it). Parameters: the value's network's; ms per prediction: "
        "the median milliseconds of one prediction of one example on the sweep's device, "
        "measured alone before training. Bold: the best value.</p>"
    )
    return f"{note}<table>{head}{body}</table>"


def _table_row(row: Row, best: bool, seeds: int) -> str:
    if not row.runs:
        cells = [_cell(row.label), '<td colspan="8">not trained yet</td>']
        return f"<tr>{''.join(cells)}</tr>"
    trained = f" ({len(row.runs)} of {seeds} trained)" if len(row.runs) < seeds else ""
    diverged = f"{row.diverged} of {len(row.runs)}{trained}"
    cells = [
        _cell(row.label),
        _cell(_spread(row.final), numeric=True),
        # a value whose every seed diverged has no best: its runs' values came from NaN weights
        _cell("-" if row.all_diverged else _spread(row.best), numeric=True),
        _cell(_median(row.best_epochs), numeric=True),
        _cell(_number(mean_of(row.gap)), numeric=True),
        _cell(diverged, numeric=True, bad=row.diverged > 0),
        _cell(_number(row.seconds), numeric=True),
        _cell("-" if row.parameters is None else f"{row.parameters:,}", numeric=True),
        _cell("-" if row.latency is None else _number(row.latency), numeric=True),
    ]
    opening = '<tr class="best-row">' if best else "<tr>"
    return f"{opening}{''.join(cells)}</tr>"


def _cell(text: str, numeric: bool = False, bad: bool = False) -> str:
    classes = " ".join(c for c, on in (("num", numeric), ("bad", bad)) if on)
    return f'<td class="{classes}">{esc(text)}</td>' if classes else f"<td>{esc(text)}</td>"


def _spread(values: list[float]) -> str:
    mean, sd = mean_of(values), sd_of(values)
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.3g} ± {sd:.2g}" if math.isfinite(sd) else f"{mean:.3g}"


def _median(values: list[int]) -> str:
    return f"{statistics.median(values):g}" if values else "-"


def _number(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"
