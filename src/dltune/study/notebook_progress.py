"""What a study shows while it runs in a Jupyter notebook: one output area in the cell, updated
in place (IPython's display handles), instead of the terminal's live panel.

`tune()` and `sweep()` use it by themselves when they run in a Jupyter kernel and no listener
was given (`default_progress`); anywhere else nothing is shown, as before. IPython is present
wherever a notebook is, and imported only there: no widget library is needed.
"""

from __future__ import annotations

import html
import sys
import time
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..storage.urls import display_url
from .progress import ProgressListener, ProgressTracker, clock

if TYPE_CHECKING:
    from ..engine import EpochReport
    from ..storage import TrialRecord
    from .start import StudyStart

# Redrawn at most this often: an epoch of a small population can end every few milliseconds,
# and each redraw is a message to the browser.
REFRESH_SECONDS = 0.5

STYLE = (
    "<style>.dltune-progress{font-family:system-ui,sans-serif;font-size:13px}"
    ".dltune-progress td{padding:1px 10px 1px 0;text-align:left;vertical-align:top}"
    ".dltune-progress td:first-child{color:#777}</style>"
)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (as tqdm.auto tells): IPython already imported, a shell
    running, and that shell started by a kernel app, not a terminal's IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def default_progress() -> ProgressListener:
    """The listener of a run given none: the notebook's display in a Jupyter kernel, else one
    that shows nothing."""
    return NotebookProgress() if in_notebook() else ProgressListener()


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def short(params: dict[str, Any]) -> str:
    """A configuration in one line (Config.short), or its keys and values where it is not one."""
    try:
        return Config.from_dict(params).short()
    except (KeyError, TypeError, ValueError):
        return ", ".join(f"{k}={v}" for k, v in params.items())


class NotebookProgress(ProgressTracker):
    """A small table in the running cell: the study and its storage (password masked), trials
    done and running, the best so far, time elapsed and left; at the end, one closing line."""

    def __init__(self, refresh: float = REFRESH_SECONDS) -> None:
        super().__init__()
        self.refresh = refresh
        self.handle: Any = None  # IPython's DisplayHandle of the output area
        self.drawn_at = -float("inf")
        self.finished = False

    def study_started(self, start: StudyStart) -> None:
        super().study_started(start)
        from IPython.display import HTML, display

        self.handle = display(HTML(self.render()), display_id=True)
        self.drawn_at = time.perf_counter()

    def trial_started(self, number: int, config: Config) -> None:
        super().trial_started(number, config)
        self._draw()

    def epoch_done(self, number: int, report: EpochReport) -> None:
        super().epoch_done(number, report)
        self._draw()

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        super().trial_finished(record, best)
        self._draw()

    def study_finished(self) -> None:
        self.running.clear()
        self.finished = True
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.handle is None or (not force and now - self.drawn_at < self.refresh):
            return
        from IPython.display import HTML

        self.handle.update(HTML(self.render()))
        self.drawn_at = now

    def render(self) -> str:
        """The display's HTML; every value from the study or the user escaped."""
        start = self.start
        rows = []
        if start is not None:
            where = esc(display_url(start.storage))
            rows.append(("study", f"<b>{esc(start.study)}</b> in {where}"))
            rows.append(("data", esc(start.data)))
        rows.append(("trials", esc(self._trials_text())))
        if self.running:
            rows.append(("running", esc(self._running_text())))
        if self.best is not None:
            rows.append(("best", self._best_text()))
        rows.append(("time", esc(self._time_text())))
        cells = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
        closing = f"<p>{esc(self.closing_line())}</p>" if self.finished else ""
        return f'{STYLE}<div class="dltune-progress"><table>{cells}</table>{closing}</div>'

    def _trials_text(self) -> str:
        budget = self.start.trials if self.start else None
        done = f"{self.done} of {budget}" if budget else str(self.done)
        return f"{done} done ({self.counts_text() or 'none yet'}), {len(self.running)} running"

    def _running_text(self) -> str:
        """The latest trial in flight and its last epoch (how many others run beside it)."""
        number, run = list(self.running.items())[-1]
        metric = self.start.metric if self.start else "value"
        where = f" on worker {run.worker}" if self.several else ""
        if run.epoch is None:
            text = f"#{number}{where} starting"
        else:
            text = (
                f"#{number}{where} epoch {run.epoch.epoch} of {run.config.epochs}, "
                f"{metric} {run.epoch.val_metric:.4f}"
            )
        others = len(self.running) - 1
        return text + (f" (and {others} more)" if others else "")

    def _best_text(self) -> str:
        best = self.best or {}
        value = "-" if best.get("value") is None else f"{best['value']:.4f}"
        return (
            f"<b>{esc(best.get('metric') or 'value')} {esc(value)}</b> "
            f"(trial #{esc(best.get('trial'))}, epoch {esc(best.get('best_epoch'))}) "
            f"{esc(short(best.get('params') or {}))}"
        )

    def _time_text(self) -> str:
        remaining = self.remaining()
        left = "" if self.finished or remaining is None else f", about {clock(remaining)} left"
        return f"{clock(self.elapsed())} elapsed{left}"

    def closing_line(self) -> str:
        """What the run did, in one sentence: trials by state, the best, the time."""
        best = self.best
        found = (
            f"; best {best.get('metric') or 'value'} {best['value']:.4f} (trial #{best['trial']})"
            if best is not None and best.get("value") is not None
            else "; no trial completed"
        )
        return (
            f"Search finished: {self.done} trial{'s' * (self.done != 1)} "
            f"({self.counts_text() or 'none'}){found}, in {clock(self.elapsed())}."
        )
