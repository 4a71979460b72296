"""dltune in a Jupyter notebook, without a kernel: the detection, the live display driven by a
study's events, and what a run's result, a sweep's result and a report show as HTML.
(test_notebook_example.py executes the example notebook in a real kernel.)"""

from __future__ import annotations

import base64
import html
import re
import sys
import types
from typing import Any

import pytest

from dltune.engine.result import EpochReport
from dltune.storage import TrialRecord
from dltune.study import ProgressListener, tune
from dltune.study.notebook_progress import NotebookProgress, default_progress, in_notebook
from dltune.study.start import StudyStart

from .helpers import make_config, small_space

SMALL = small_space()
QUICK = {"seed": 0, "schedule": "none", "cv": "holdout", "choose": "max", "workers": 1}
PNG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


# ---- where a notebook is ---------------------------------------------------------------------


def _fake_ipython(monkeypatch: pytest.MonkeyPatch, config: dict[str, Any] | None) -> None:
    """IPython as if imported, its get_ipython() giving a shell with `config` (None: none)."""
    shell = None if config is None else types.SimpleNamespace(config=config)
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)


def test_pytest_is_no_notebook_and_a_run_there_shows_nothing():
    assert in_notebook() is False
    assert type(default_progress()) is ProgressListener


@pytest.mark.parametrize(
    ("config", "notebook"),
    [
        ({"IPKernelApp": {"connection_file": "k.json"}}, True),  # a Jupyter kernel
        ({"TerminalIPythonApp": {}}, False),  # IPython in a terminal
        (None, False),  # IPython imported, no shell running
    ],
)
def test_a_notebook_is_a_shell_started_by_a_kernel(monkeypatch, config, notebook):
    _fake_ipython(monkeypatch, config)
    assert in_notebook() is notebook
    assert isinstance(default_progress(), NotebookProgress) is notebook


# ---- the live display ------------------------------------------------------------------------


class Handle:
    """IPython's DisplayHandle as the listener uses it: every HTML it was shown, in order."""

    def __init__(self, shown: list[str]) -> None:
        self.shown = shown

    def update(self, obj: Any) -> None:
        self.shown.append(obj.data)


@pytest.fixture
def cell(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The output area of a cell: what IPython.display.display and its handle were given."""
    display = pytest.importorskip("IPython.display")
    shown: list[str] = []

    def fake_display(obj: Any, display_id: bool = False) -> Handle:
        assert display_id  # one output area, updated in place
        shown.append(obj.data)
        return Handle(shown)

    monkeypatch.setattr(display, "display", fake_display)
    return shown


START = StudyStart(
    study="s<1>",
    storage="postgresql://me:hunter2@db.example/studies",
    data="blobs: classification (3 classes)",
    metric="accuracy",
    trials=2,
    timeout=None,
    existing_trials=0,
    engine="sequential",
    schedule="none",
)
BEST = {
    "trial": 0,
    "value": 0.875,
    "metric": "accuracy",
    "direction": "maximize",
    "best_epoch": 2,
    "params": make_config().to_dict(),
}


def _run_two_trials(progress: NotebookProgress) -> None:
    config = make_config()
    progress.study_started(START)
    progress.trial_started(0, config)
    progress.epoch_done(0, EpochReport(1, 0.5, 0.6, 0.75, 0.4))
    progress.trial_finished(TrialRecord(0, "complete", 0.875), BEST)
    progress.trial_started(1, config)
    progress.trial_finished(TrialRecord(1, "pruned", 0.5), BEST)
    progress.study_finished()


def test_the_display_is_one_output_area_redrawn_as_the_study_runs(cell):
    progress = NotebookProgress(refresh=0)
    config = make_config()
    progress.study_started(START)
    assert len(cell) == 1 and "0 of 2 done (none yet), 0 running" in cell[0]
    progress.trial_started(0, config)
    progress.epoch_done(0, EpochReport(1, 0.5, 0.6, 0.75, 0.4))
    assert f"#0 epoch 1 of {config.epochs}, accuracy 0.7500" in cell[-1]
    progress.trial_finished(TrialRecord(0, "complete", 0.875), BEST)
    assert "1 of 2 done (1 complete), 0 running" in cell[-1]
    assert "accuracy 0.8750</b> (trial #0, epoch 2)" in cell[-1]
    assert "Search finished" not in cell[-1]
    progress.study_finished()
    assert "Search finished: 1 trial (1 complete); best accuracy 0.8750 (trial #0)" in cell[-1]
    assert len(cell) == 5  # the first display and one update per event


def test_the_display_redraws_at_most_every_half_second_but_always_at_the_end(cell):
    progress = NotebookProgress(refresh=3600)
    _run_two_trials(progress)
    assert len(cell) == 2  # the first display, and the end's
    assert "2 of 2 done (1 complete, 1 pruned), 0 running" in cell[-1]
    assert "Search finished: 2 trials (1 complete, 1 pruned)" in cell[-1]


def test_the_display_masks_the_password_and_escapes_what_it_shows(cell):
    _run_two_trials(NotebookProgress(refresh=0))
    assert not any("hunter2" in shown for shown in cell)
    assert "s&lt;1&gt;" in cell[-1] and "s<1>" not in cell[-1]


def test_a_run_in_a_notebook_shows_its_progress_in_the_cell(monkeypatch, cell, blobs, tmp_path):
    _fake_ipython(monkeypatch, {"IPKernelApp": {}})
    tune(SMALL, blobs, storage=f"sqlite:///{tmp_path / 's.db'}", trials=2, **QUICK)
    assert "study" in cell[0] and "0 running" in cell[0]
    assert "Search finished: 2 trials (2 complete); best accuracy" in cell[-1]


# ---- what a result shows ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory, blobs: Any) -> Any:
    folder = tmp_path_factory.mktemp("notebook")
    return tune(
        SMALL, blobs, storage=f"sqlite:///{folder / 's.db'}", study_name="a<b>&c", trials=3, **QUICK
    )


def _png_images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in PNG.findall(page)]


def test_a_result_shows_its_best_configuration_choice_diagnostics_and_history(result):
    from dltune.analysis import load_trials
    from dltune.analysis.diagnostics import diagnose
    from dltune.cli.tables import param_rows, validation_text

    page = result._repr_html_()
    best = result.best
    assert "<h4>Best configuration</h4>" in page
    for key, value in param_rows(best["params"]):
        assert f'<td class="key">{key}</td><td>{html.escape(value)}</td>' in page
    assert f"<td>{best['test']:.4f}</td>" in page and f"<td>{best['value']:.4f}</td>" in page
    assert html.escape(validation_text(best, len(result.data.y_val))) in page
    assert html.escape(best["chosen_by"]) in page
    for found in diagnose(load_trials(result.study))[:3]:
        assert html.escape(found.title) in page
    (image,) = _png_images(page)
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert "sqlite:///" in page and "result.report()" in page


def test_a_result_escapes_what_the_study_and_user_named(result):
    page = result._repr_html_()
    assert "a&lt;b&gt;&amp;c" in page and "a<b>&c" not in page


def test_drawing_for_a_notebook_leaves_its_matplotlib_settings_and_backend_alone(result):
    import matplotlib

    backend = matplotlib.get_backend()
    with matplotlib.rc_context({"font.size": 17.0}):
        result._repr_html_()
        assert matplotlib.rcParams["font.size"] == 17.0
    assert matplotlib.get_backend() == backend


def test_the_report_shows_inline_in_its_own_frame_and_still_writes_its_file(result, tmp_path):
    shown = result.report(tmp_path / "report.html")  # written at once, and shown
    page = shown._repr_html_()
    assert page.startswith('<iframe srcdoc="') and " sandbox " in page
    srcdoc = html.unescape(page[len('<iframe srcdoc="') : page.index('" sandbox')])
    # the page as written, its links kept inside the frame
    written = (tmp_path / "report.html").read_text()
    assert srcdoc == written.replace("<head>", '<head><base href="about:srcdoc">', 1)
    assert "<h1>dltune report: study a&lt;b&gt;&amp;c</h1>" in srcdoc
    assert "<script" not in srcdoc.lower()


def test_a_sweep_shows_its_readings_figure_and_a_row_per_value(blobs, tmp_path):
    from dltune.sweep import sweep

    swept = sweep(
        "units",
        values="8,32",
        data=blobs,
        storage=f"sqlite:///{tmp_path / 's.db'}",
        epochs=2,
        seeds=1,
        estimate=False,
    )
    page = swept._repr_html_()
    assert "dltune: sweep of units" in page
    assert page.count("<tr") == 3  # the head and one row per value
    (image,) = _png_images(page)
    assert image.startswith(b"\x89PNG")
    assert "result.report()" in page
    assert swept.report()._repr_html_().startswith("<iframe srcdoc=")


def test_where_a_view_shows_the_storage_or_a_note_a_password_is_masked():
    from dltune.notebook.parts import notes, stored_in

    url = "postgresql://me:hunter2@db.example/studies"
    shown = stored_in(url, "s") + notes([f"opened {url}"])
    assert "hunter2" not in shown and "db.example/studies" in shown
