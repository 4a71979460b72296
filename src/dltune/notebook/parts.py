"""What the notebook's views share: their style (scoped to their own elements, so that nothing
of it reaches the rest of the notebook), escaping, tables and inline PNG images."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from typing import Any

from ..storage.urls import display_url

# Every rule starts with the view's own class: a notebook's styles are global to its page.
STYLE = """<style>
.dltune-view { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px;
  line-height: 1.4; color: #222; max-width: 60rem; }
.dltune-view h3 { font-size: 15px; margin: .2rem 0 .3rem; }
.dltune-view h4 { font-size: 13px; margin: .8rem 0 .2rem; border-bottom: 1px solid #e3e3e3; }
.dltune-view .meta { color: #555; margin: .1rem 0; }
.dltune-view table { border-collapse: collapse; margin: .2rem 0; font-size: inherit; }
.dltune-view td, .dltune-view th { padding: 2px 12px 2px 0; text-align: left;
  vertical-align: top; border: none; }
.dltune-view td.key { color: #666; white-space: nowrap; }
.dltune-view td.num { text-align: right; font-variant-numeric: tabular-nums; }
.dltune-view .finding { border-left: 3px solid #e0a800; padding: .1rem .6rem; margin: .3rem 0; }
.dltune-view .finding.diverged { border-color: #d62728; }
.dltune-view .finding.overfit { border-color: #ff7f0e; }
.dltune-view .finding.best { border-color: #2ca02c; }
.dltune-view img { max-width: 100%; height: auto; }
.dltune-view code { background: #f4f4f4; padding: 0 3px; }
</style>"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def view(title: str, parts: Iterable[str]) -> str:
    """One view: its style, its title (text, escaped here) and its parts (HTML already)."""
    return f'{STYLE}<div class="dltune-view"><h3>{esc(title)}</h3>{"".join(parts)}</div>'


def key_table(rows: Iterable[tuple[str, str]]) -> str:
    """Two columns, a name and its value, both text (escaped here)."""
    cells = "".join(f'<tr><td class="key">{esc(k)}</td><td>{esc(v)}</td></tr>' for k, v in rows)
    return f"<table>{cells}</table>"


def png_image(png: bytes, alt: str, width: int = 640) -> str:
    """A PNG inline, as a data URI: the output stays one piece, shown by every notebook viewer."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}" width="{width}">'


def stored_in(shown_url: str, study: str) -> str:
    """Where the study lives, its storage's password masked."""
    return (
        f'<p class="meta">Stored in <code>{esc(display_url(shown_url))}</code> as study '
        f"<code>{esc(study)}</code>.</p>"
    )


def notes(lines: list[str]) -> str:
    """The run's notes, folded (each masked: a note may quote a URL)."""
    if not lines:
        return ""
    items = "".join(f"<li>{esc(display_url(line))}</li>" for line in lines)
    return f"<details><summary>Notes ({len(lines)})</summary><ul>{items}</ul></details>"


def drawn(draw: Any, *args: Any) -> bytes:
    """A figure drawn by the report's builders without touching the notebook's own matplotlib
    settings: the report's style applies inside, and the user's comes back after."""
    import matplotlib

    with matplotlib.rc_context():
        return bytes(draw(*args))
