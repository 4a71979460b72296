"""The HTML report: sections, escaping, offline, and a real study rendered in headless Chromium;
`dltune report` and `dltune dashboard` on the command line.

The report reads only the study it is given, so its studies live in Optuna's in-memory storage;
the command line and the dashboard server are given a SQLite URL."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest

from dltune.report import write_report
from dltune.report.html import SECTIONS

from .helpers import dltune, dltune_command, require_or_skip
from .synthetic_studies import Run, config, in_memory, mixed_runs, rising, varied_runs, write_study

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def test_the_report_has_every_section_and_draws_without_script(tmp_path):
    page = write_report(in_memory(mixed_runs()), tmp_path / "r.html").read_text()
    for key, title in SECTIONS:
        if key != "front":
            assert f'<section id="{key}"><h2>{title}</h2>' in page
    assert 'id="front"' not in page  # a study of one objective has no front
    assert page.count("<svg") >= 10  # importance, 9 effects, epochs, history, curves
    assert "<script" not in page
    # nothing to fetch: no external src or href (SVG namespaces are names, not requests)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # only references within the page (clip paths)
    assert re.search(r"sgd runs? with learning_rate ≥ 0.3 diverged", page)


def test_user_strings_are_escaped(tmp_path):
    runs = varied_runs(10)
    runs.append(Run(config(activation=HOSTILE), rising(0.99, 9)))  # the best trial
    study = in_memory(runs, name=HOSTILE)
    page = write_report(study, tmp_path / "r.html").read_text()
    assert HOSTILE not in page
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_a_study_without_finished_trials_still_gets_a_report(tmp_path):
    study = in_memory([])
    page = write_report(study, tmp_path / "r.html").read_text()
    assert "No trial has finished yet" in page


def test_report_command_errors_name_the_study_and_the_folder(storage_url, tmp_path):
    write_study(storage_url, varied_runs(5), name="only")
    cli = ("report", "--storage", storage_url)
    missing = dltune(*cli, "--study", "onyl", cwd=tmp_path)
    assert missing.returncode == 2
    assert "'onyl' is not in" in missing.stderr and "only" in missing.stderr
    folder = dltune(*cli, "-o", str(tmp_path / "nowhere" / "r.html"), cwd=tmp_path)
    assert folder.returncode == 2 and "does not exist" in folder.stderr


@pytest.mark.parametrize("name", ["r.json", "r.html"])
def test_a_report_is_replaced_whole_or_not_at_all(storage_url, tmp_path, monkeypatch, name):
    from dltune import atomic

    write_study(storage_url, varied_runs(5), name="only")
    (tmp_path / "reports").mkdir()  # a folder of its own: SQLite's files change beside it
    out = tmp_path / "reports" / name
    out.write_text("the previous report")
    inode = out.stat().st_ino

    def crash(path):  # written, not yet renamed into place: the process dies here
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic, "_fsync_file", crash)
    with pytest.raises(OSError, match="Input/output error"):
        dltune("report", "--storage", storage_url, "-o", str(out), cwd=tmp_path)
    assert out.read_text() == "the previous report"  # not half of the new one
    assert list(out.parent.iterdir()) == [out]  # no temporary file left
    monkeypatch.undo()
    ran = dltune("report", "--storage", storage_url, "-o", str(out), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert out.stat().st_ino != inode  # a new file took the name: a reader keeps the old
    assert list(out.parent.iterdir()) == [out]
    text = out.read_text()
    assert json.loads(text)["study"] if name.endswith(".json") else "<html" in text


# ---- in a real browser ----


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_or_skip() -> str:
    """Debian's chromium (installed by `make test`) and playwright, or a skip; CI sets
    DLTUNE_REQUIRE_BROWSER=1 so that a missing browser fails instead."""
    path = _chromium()
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    require_or_skip(
        None if path is not None else "chromium or playwright is not installed",
        "DLTUNE_REQUIRE_BROWSER",
    )
    assert path is not None
    return path


@pytest.mark.slow
def test_a_real_study_report_renders_in_headless_chromium_offline(blobs, tmp_path):
    import optuna
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from dltune.study import tune

    chromium = browser_or_skip()
    space = {
        "layers": [1, 2],
        "units": [8, 64],
        "activation": ["relu", "sigmoid"],
        "optimizer": ["adam", "sgd"],
        "learning_rate": {"low": 1e-3, "high": 3.0, "log": True},
        "batch_size": [32, 64],
        "epochs": 4,
        "objectives": ["accuracy", "parameters"],  # every section, the front's too
    }
    # Trained for real, kept in memory: in a SQLite file the same 12 trials take 20x longer.
    result = tune(space, blobs, storage=optuna.storages.InMemoryStorage(), trials=12, seed=0)
    path = write_report(result.study, tmp_path / "report.html")

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        headings = page.locator("h2").all_inner_texts()
        figures = page.locator("figure svg").count()
        front_figures = page.locator("section#front figure svg").count()
        front_rows = page.locator("section#front table tr").count()
        screenshot = tmp_path / "report.png"
        page.screenshot(path=str(screenshot), full_page=True)
        # where each section lies on the page, to check that each is drawn (not blank)
        boxes = page.evaluate(
            """keys => keys.map(key => {
                const r = document.querySelector(`section#${key}`).getBoundingClientRect();
                return [r.left + window.scrollX, r.top + window.scrollY, r.right + window.scrollX,
                        r.bottom + window.scrollY];
            })""",
            [key for key, _ in SECTIONS],
        )
        browser.close()

    assert problems == []
    assert requests == [path.as_uri()]  # the page itself, nothing else
    assert headings == [title for _, title in SECTIONS]
    assert figures >= 5
    # the front's figure, and its table: a header and one row per point
    assert front_figures == 1 and front_rows == len(result.front) + 1
    image = Image.open(screenshot).convert("L")
    assert image.height > 2000  # a long page, not an error stub
    assert _ink(image) > 0.02
    for (key, _), box in zip(SECTIONS, boxes, strict=True):
        section = image.crop(tuple(round(v) for v in box))
        assert section.height > 20 and _ink(section) > 0.005, key


def _ink(image) -> float:
    """The share of pixels that are not near-white."""
    histogram = image.histogram()
    return sum(histogram[:200]) / (image.width * image.height)


# ---- dashboard ----


def test_dashboard_without_the_extra_names_it(storage_url):
    # A fresh interpreter, where optuna_dashboard can be blocked before anything imports it.
    code = "import sys; sys.modules['optuna_dashboard'] = None; from dltune.cli import main; main()"
    run = subprocess.run(
        [sys.executable, "-c", code, "dashboard", "--storage", storage_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "pip install 'dltune[dashboard]'" in run.stderr


def _serve_dashboard(storage_url: str, port: int) -> None:
    """`dltune dashboard` in the server's own process (a fork of this one)."""
    from dltune.cli import main

    main(["dashboard", "--storage", storage_url, "--port", str(port)])


def _start_dashboard(storage_url: str, port: int) -> tuple[Callable[[], bool], Callable[[], None]]:
    """The server started as a process of its own: (is it running, stop it). Forked where the
    platform can, so that it starts in milliseconds with optuna_dashboard (and the scikit-learn
    that it imports) already loaded; elsewhere `python -m dltune.cli dashboard` (seconds)."""
    if "fork" in multiprocessing.get_all_start_methods():
        child = multiprocessing.get_context("fork").Process(
            target=_serve_dashboard, args=(storage_url, port), daemon=True
        )
        child.start()

        def stop_child() -> None:
            child.terminate()
            child.join(timeout=30)

        return child.is_alive, stop_child
    server = subprocess.Popen(
        dltune_command("dashboard", "--storage", storage_url, "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop_server() -> None:
        server.terminate()
        server.wait(timeout=30)

    return lambda: server.poll() is None, stop_server


def test_dashboard_serves_the_study(storage_url):
    pytest.importorskip("optuna_dashboard")
    write_study(storage_url, varied_runs(3), name="served")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    running, stop = _start_dashboard(storage_url, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/studies", timeout=5
                ) as response:
                    studies = json.loads(response.read())
                break
            except OSError:
                if time.monotonic() > deadline or not running():
                    raise
                time.sleep(0.02)  # not listening yet
        assert [s["study_name"] for s in studies["study_summaries"]] == ["served"]
    finally:
        stop()
