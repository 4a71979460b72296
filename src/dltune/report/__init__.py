"""The study report: drawing and HTML from dltune.analysis' plain data.
Draws only what analysis computed; never reads storage itself or imports the CLI.

from dltune.report import write_report
write_report(study, "report.html")   # a sweep's study gets the sweep's page
write_report(sweep_study, "sweep.png")   # a sweep's figures as one picture
render_report(study)   # the same page as a string (a notebook shows it inline)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_file, write_text
from ..errors import StudyError

if TYPE_CHECKING:
    import optuna


def write_report(study: optuna.Study, path: str | Path) -> Path:
    """Analyse `study` from its storage and write its report to `path`: the self-contained
    HTML page (a sweep's own page for a sweep's study), or for a sweep, a PNG when `path`
    ends with .png. Written beside `path` and renamed onto it once whole (dltune.atomic): an
    interrupted run never leaves half a report, and a previous one stays until replaced."""
    from ..analysis.sweeps import analyze_sweep, is_sweep

    target = Path(path)
    sweep = is_sweep(study)
    if target.suffix.lower() == ".png":
        if not sweep:
            raise StudyError(
                f"{target}: study {study.study_name!r} is not a sweep, and only a sweep's "
                "report is drawn as PNG; write its report as .html"
            )
        from .sweep_figures import write_png

        analysis = analyze_sweep(study)
        write_file(target, lambda temp: write_png(analysis, temp))
        return target
    write_text(target, render_report(study))
    return target


def render_report(study: optuna.Study) -> str:
    """The report page of `study` as an HTML string (a sweep's own page for a sweep's study),
    as write_report writes it."""
    from ..analysis.sweeps import is_sweep

    return _sweep_page(study) if is_sweep(study) else _study_page(study)


def _study_page(study: optuna.Study) -> str:
    from ..analysis import analyze
    from .html import render

    return render(analyze(study))


def _sweep_page(study: optuna.Study) -> str:
    from ..analysis.sweeps import analyze_sweep
    from .sweep_page import render_sweep

    return render_sweep(analyze_sweep(study))
