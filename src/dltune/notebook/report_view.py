"""A study's full report in a notebook: the page `dltune report` writes, shown in a frame of its
own (an iframe's srcdoc), so that its style stays inside it and the notebook's stays out, and
written to a file on request."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from ..report import render_report, write_report

if TYPE_CHECKING:
    import optuna

FRAME_HEIGHT = "80vh"  # the report scrolls inside: a page of figures is longer than a screen

# A page in a srcdoc frame takes the notebook's address as its base, so its own links
# (#diagnostics) would load the notebook into the frame; this base keeps them in the page.
BASE = '<base href="about:srcdoc">'


class ReportView:
    """The report of one study (a sweep's page for a sweep), made when first shown or saved."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self._page: str | None = None

    @property
    def html(self) -> str:
        """The report page, as `dltune report` writes it."""
        if self._page is None:
            self._page = render_report(self.study)
        return self._page

    def save(self, path: str | Path) -> Path:
        """Write the report to `path` (whole or not at all, as `dltune report` does): the HTML
        page, or a sweep's figures as one picture where `path` ends with .png."""
        return write_report(self.study, path)

    def _repr_html_(self) -> str:
        page = self.html.replace("<head>", "<head>" + BASE, 1)
        # sandbox: the page runs no script, and may not; escaped whole into the attribute
        return (
            f'<iframe srcdoc="{html.escape(page, quote=True)}" sandbox '
            f'style="width: 100%; height: {FRAME_HEIGHT}; border: 1px solid #ddd" '
            f'title="dltune report of study {html.escape(self.study.study_name, quote=True)}">'
            "</iframe>"
        )

    def __repr__(self) -> str:
        return f"<dltune report of study {self.study.study_name!r}: .save('report.html') writes it>"


def report_of(study: optuna.Study, path: str | Path | None = None) -> ReportView:
    """The report view of `study`, written to `path` first where one is given."""
    shown = ReportView(study)
    if path is not None:
        shown.save(path)
    return shown
