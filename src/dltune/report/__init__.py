"""The study report: drawing and HTML from dltune.analysis' plain data.

from dltune.report import write_report
write_report(study, "report.html")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


def write_report(study: optuna.Study, path: str | Path) -> Path:
    """Analyse `study` from its storage and write the self-contained HTML report to `path`."""
    from ..analysis import analyze
    from .html import render

    target = Path(path)
    page = render(analyze(study))
    # written beside the target and renamed: an interrupted run never leaves half a report
    partial = target.with_name(target.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(target)
    return target
