"""dltune in a Jupyter notebook: how a run's result, a sweep's result and a study's report show
themselves in a cell, as self-contained HTML (every value escaped, figures as inline PNG).

    result = dltune.tune(build, data="digits", trials=20)
    result            # the best configuration, how it was chosen, diagnostics, the history
    result.report()   # the full report, inline; .save("report.html") writes it

A face, like the command line: may import every layer below it, and nothing imports it. The
results find these views through dltune.views, where the front door names this package; the
live display of a run in a cell is dltune.study.notebook_progress, which tune() uses itself.
result_view.py draws a TuneResult, sweep_view.py a SweepResult, report_view.py the report in
a frame; parts.py what they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .report_view import ReportView, report_of
    from .result_view import result_html
    from .sweep_view import sweep_html

__all__ = ["ReportView", "report_of", "result_html", "sweep_html"]

__getattr__ = lazy_names(
    __name__,
    {
        "ReportView": ".report_view",
        "report_of": ".report_view",
        "result_html": ".result_view",
        "sweep_html": ".sweep_view",
    },
)
