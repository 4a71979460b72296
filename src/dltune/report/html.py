"""The report: one self-contained HTML file (inline CSS and SVG; no script, no fetch).

Every string that comes from the user or from storage (study and file names, parameter values,
notes) goes through `esc` before it reaches the page.
"""

from __future__ import annotations

import html
import math
from typing import Any

from ..analysis import StudyAnalysis
from ..config import Config
from ..version import __version__
from ..vocabulary import HYPERPARAMETERS
from . import figures

SECTIONS = (
    ("best", "Best configuration"),
    ("front", "Trade-offs: the Pareto front"),  # a study of several objectives only
    ("diagnostics", "Diagnostics"),
    ("importance", "What mattered"),
    ("effects", "Effect of each hyperparameter"),
    ("interactions", "Interactions"),
    ("history", "Optimization history"),
    ("curves", "Learning curves"),
    ("trials", "Trials"),
)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 1180px; padding: 1.5rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { border-bottom: 2px solid #e3e3e3; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.02rem; margin: .2rem 0 .4rem; }
nav a { margin-right: .9rem; }
.meta { color: #555; }
table { border-collapse: collapse; font-size: .88rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: left;
  vertical-align: top; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.diagnosis { border-left: 4px solid #e0a800; background: #fffaf0; padding: .6rem .9rem;
  margin: .8rem 0; }
.diagnosis.diverged { border-color: #d62728; background: #fff5f5; }
.diagnosis.overfit { border-color: #ff7f0e; }
.diagnosis.few_trials, .diagnosis.edge, .diagnosis.limit { border-color: #1f77b4;
  background: #f5f9ff; }
.diagnosis.front { border-color: #2ca02c; background: #f5fff5; }
.suggestion { font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #444; max-width: 36rem; }
.state-complete { color: #1f77b4; } .state-diverged { color: #d62728; }
.state-pruned { color: #777; }
details summary { cursor: pointer; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def sections(analysis: StudyAnalysis) -> list[tuple[str, str]]:
    """The report's sections for this study: the front's only with several objectives."""
    return [(k, t) for k, t in SECTIONS if k != "front" or analysis.front is not None]


def render(analysis: StudyAnalysis) -> str:
    """The whole report of one study as an HTML string."""
    a = analysis
    shown = sections(a)
    body = [
        f"<h1>dltune report: study {esc(a.study)}</h1>",
        f'<p class="meta">Data: {esc(a.data.get("description") or a.data.get("name") or "?")}'
        f" · metric: validation {esc(a.metric)} ({'higher' if a.maximize else 'lower'} is"
        f" better) · trials: {esc(_counts(a.counts))} · dltune {esc(__version__)}</p>",
        "<nav>" + "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in shown) + "</nav>",
        _section("best", _best(a)),
        _section("front", _front(a)) if a.front is not None else "",
        _section("diagnostics", _diagnostics(a)),
        _section("importance", _importance(a)),
        _section("effects", _effects(a)),
        _section("interactions", _interactions(a)),
        _section("history", _history(a)),
        _section("curves", _curves(a)),
        _section("trials", _trials(a)),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>dltune report: {esc(a.study)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _section(key: str, content: str) -> str:
    title = dict(SECTIONS)[key]
    return f'<section id="{key}"><h2>{esc(title)}</h2>{content}</section>'


def _counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{total} (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _best(a: StudyAnalysis) -> str:
    best = a.best
    if best is None:
        return "<p>No trial has finished yet.</p>"
    test = (
        _num(best["test"])
        if best.get("test") is not None
        else "not evaluated (the test split is evaluated once, by the run that found the best)"
    )
    rows = [
        ("trial", f"#{best['trial']} ({best['state']})"),
        (f"validation {a.metric}", _num(best["score"])),
        (f"test {a.metric}", test),
        ("best epoch", f"{_num(best['best_epoch'])} of {best['epochs']} trained"),
    ]
    config = best.get("config") or {}
    for key in HYPERPARAMETERS:
        if key in config:
            value = config[key]
            rows.append((key, _num(value) if isinstance(value, float) else value))
    return _table(["", ""], rows, header=False)


def _front(a: StudyAnalysis) -> str:
    """The front drawn, and its points as a table: objectives and configuration."""
    front = a.front or {}
    if not front.get("points"):
        return "<p>No trial has completed yet: there is no front.</p>"
    names = front["names"]
    arrows = ["↑" if d == "maximize" else "↓" for d in front["directions"]]
    total = len(front["points"]) + len(front["dominated"])
    caption = (
        f"Each trial's best validation {esc(names[0])} (complete, or stopped after a whole "
        f"epoch) against its "
        f"{esc(', '.join(names[1:]))}: the {len(front['points'])} of {total} that no other "
        "trial beats on every objective form the front (blue); the dominated are faded. "
        f'To train a point: <code>dltune train-best --pick "{esc(front["pick"])}"</code> '
        "or --pick TRIAL."
    )
    rows = []
    for point in front["points"]:
        try:
            text = Config.from_dict(point["config"]).short()
        except (KeyError, TypeError, ValueError):
            text = ", ".join(f"{k}={v}" for k, v in point["config"].items())
        rows.append([point["trial"], *(_objective(point["values"][n]) for n in names), text])
    headers = ["trial", *(f"{n} {arrow}" for n, arrow in zip(names, arrows, strict=True))]
    return _figure(figures.front_plot(front), caption) + _table([*headers, "configuration"], rows)


def _objective(value: float) -> str:
    """A count (parameters, flops) whole and grouped; a metric or latency to 4 figures."""
    if float(value).is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return _num(float(value))


def _diagnostics(a: StudyAnalysis) -> str:
    if not a.diagnostics:
        return "<p>No diagnostic fired: nothing diverged, overfitted or stalled clearly.</p>"
    parts = []
    for d in a.diagnostics:
        evidence = ""
        if d.evidence:
            keys = list(dict.fromkeys(k for e in d.evidence for k in e))
            rows = [[_num(e.get(k)) for k in keys] for e in d.evidence]
            evidence = f"<details><summary>Evidence</summary>{_table(keys, rows)}</details>"
        parts.append(
            f'<article class="diagnosis {esc(d.kind)}"><h3>{esc(d.title)}</h3>'
            f"<p>{esc(d.explanation)}</p>"
            f'<p class="suggestion">Try: {esc(d.suggestion)}</p>{evidence}</article>'
        )
    return "".join(parts)


def _importance(a: StudyAnalysis) -> str:
    values = a.importance.get("values") or {}
    if not values:
        note = a.importance.get("note", "not enough trials")
        return f"<p>Importance is not available: {esc(note)}.</p>"
    top = next(iter(values))
    caption = (
        f"{esc(top)} mattered most: it explains {values[top]:.0%} of the variance of the "
        f"trials' best validation {esc(a.metric)} (fANOVA over {a.importance['trials']} "
        "finished trials; each trial's best value, at whatever epoch it stopped)."
    )
    return _figure(figures.importance_bars(values), caption)


def _effects(a: StudyAnalysis) -> str:
    order = list(a.importance.get("values") or {}) + [n for n in a.effects]
    parts = []
    for name in dict.fromkeys(order):
        if name not in a.effects:
            continue
        effect = a.effects[name]
        parts.append(_figure(figures.effect_plot(name, effect, a.metric), _region(name, effect)))
    if a.epochs["by_epoch"]:
        best_epochs = a.epochs["best_epochs"]
        needed = (
            f" Complete trials reached their best after {min(best_epochs)} to "
            f"{max(best_epochs)} epochs (median {sorted(best_epochs)[len(best_epochs) // 2]})."
            if best_epochs
            else ""
        )
        caption = (
            "epochs: the best and median validation value after each epoch, among the trials "
            f"that trained that long (bars).{needed}"
        )
        parts.append(_figure(figures.epoch_plot(a.epochs, a.metric), caption))
    if not parts:
        return "<p>No hyperparameter was varied.</p>"
    return '<div class="grid">' + "".join(parts) + "</div>"


def _region(name: str, effect: dict[str, Any]) -> str:
    region = effect["best_region"]
    n = region["top_trials"]
    if effect["kind"] == "categorical":
        values = ", ".join(str(v) for v in region["values"])
        return f"{esc(name)}: the best {n} trials used {esc(values or '-')}."
    if region["low"] is None:
        return esc(name)
    return (
        f"{esc(name)}: the best {n} trials lie in [{_num(region['low'], 3)}, "
        f"{_num(region['high'], 3)}] (shaded); the line joins the median of each bin."
    )


def _interactions(a: StudyAnalysis) -> str:
    if not a.interactions:
        return (
            "<p>No pair of hyperparameters showed an effect beyond the sum of their own "
            "(or there are too few trials to tell).</p>"
        )
    log = {name: bool(e.get("log")) for name, e in a.effects.items()}
    parts = []
    for pair in a.interactions:
        x, y = pair["params"]
        caption = (
            f"{esc(x)} × {esc(y)}: together they explain {pair['strength']:.0%} more of the "
            "variance than the sum of their separate effects (adjusted R²)."
        )
        parts.append(_figure(figures.interaction_plot(pair, a.metric, log), caption))
    return '<div class="grid">' + "".join(parts) + "</div>"


def _history(a: StudyAnalysis) -> str:
    if not any(h["score"] is not None for h in a.history):
        return "<p>No trial has a score yet.</p>"
    caption = "Each trial's best validation value in the order trials started, and the best so far."
    return _figure(figures.history_plot(a.history, a.metric), caption)


def _curves(a: StudyAnalysis) -> str:
    if not a.curves:
        return "<p>No learning curve yet.</p>"
    caption = (
        "Left: validation metric per epoch of the best trial and of representative overfitting, "
        "pruned and diverged ones (a dotted line marks where a run diverged). Right: training "
        "(dashed) against validation loss; a validation loss rising while the training loss "
        "falls is overfitting."
    )
    return _figure(figures.curves_plot(a.curves, a.metric), caption)


def _trials(a: StudyAnalysis) -> str:
    rows = []
    for t in sorted(a.trials, key=lambda t: t["trial"]):
        try:
            text = Config.from_dict(t["config"]).short()
        except (KeyError, TypeError, ValueError):
            text = ", ".join(f"{k}={v}" for k, v in t["config"].items())
        rows.append(
            [
                t["trial"],
                f'<span class="state-{esc(t["state"])}">{esc(t["state"])}</span>',
                _num(t["score"]),
                t["epochs"],
                _num(t["best_epoch"]),
                _num(t["seconds"], 3),
                text,
            ]
        )
    headers = ["trial", "state", a.metric, "epochs", "best epoch", "seconds", "configuration"]
    return _table(headers, rows, raw_columns={1})


def _table(
    headers: list[str],
    rows: list[Any],
    header: bool = True,
    raw_columns: set[int] | None = None,
) -> str:
    """An HTML table; cells are escaped except the columns in raw_columns (built here)."""
    raw_columns = raw_columns or set()
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>" if header else ""
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell) if i in raw_columns else esc(cell)
            numeric = isinstance(cell, int | float) or _looks_numeric(str(cell))
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _figure(svg: str, caption: str) -> str:
    """`caption` must already be escaped; the SVG is matplotlib's own output."""
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"
