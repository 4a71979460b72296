"""The HTML report: sections, escaping, offline, and a real study rendered in headless Chromium;
`dltune report` and `dltune dashboard` on the command line."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from dltune.report import write_report
from dltune.report.html import SECTIONS

from .synthetic_studies import Run, config, rising, varied_runs, write_study
from .test_analysis import overfitting_runs, sgd_runs_diverging_above

HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


def test_the_report_has_every_section_and_draws_without_script(storage_url, tmp_path):
    runs = sgd_runs_diverging_above(0.3) + varied_runs(30) + overfitting_runs()
    page = write_report(write_study(storage_url, runs), tmp_path / "r.html").read_text()
    for key, title in SECTIONS:
        assert f'<section id="{key}"><h2>{title}</h2>' in page
    assert page.count("<svg") >= 10  # importance, 9 effects, epochs, history, curves
    assert "<script" not in page
    # nothing to fetch: no external src or href (SVG namespaces are names, not requests)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # only references within the page (clip paths)
    assert re.search(r"sgd runs? with learning_rate ≥ 0.3 diverged", page)


def test_user_strings_are_escaped(storage_url, tmp_path):
    runs = varied_runs(10)
    runs.append(Run(config(activation=HOSTILE), rising(0.99, 9)))  # the best trial
    study = write_study(storage_url, runs, name=HOSTILE)
    page = write_report(study, tmp_path / "r.html").read_text()
    assert HOSTILE not in page
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_a_study_without_finished_trials_still_gets_a_report(storage_url, tmp_path):
    study = write_study(storage_url, [])
    page = write_report(study, tmp_path / "r.html").read_text()
    assert "No trial has finished yet" in page


def test_report_command_errors_name_the_study_and_the_folder(storage_url, tmp_path):
    write_study(storage_url, varied_runs(5), name="only")
    cli = [sys.executable, "-m", "dltune.cli", "report", "--storage", storage_url]
    missing = subprocess.run([*cli, "--study", "onyl"], capture_output=True, text=True)
    assert missing.returncode == 2
    assert "'onyl' is not in" in missing.stderr and "only" in missing.stderr
    folder = subprocess.run(
        [*cli, "-o", str(tmp_path / "nowhere" / "r.html")], capture_output=True, text=True
    )
    assert folder.returncode == 2 and "does not exist" in folder.stderr


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
    if path is None:
        if os.environ.get("DLTUNE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and playwright are required (DLTUNE_REQUIRE_BROWSER=1)")
        pytest.skip("chromium or playwright is not installed")
    return path


@pytest.mark.slow
def test_a_real_study_report_renders_in_headless_chromium_offline(blobs, storage_url, tmp_path):
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
    }
    result = tune(space, blobs, storage=storage_url, trials=12, seed=0)
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
        screenshot = tmp_path / "report.png"
        page.screenshot(path=str(screenshot), full_page=True)
        sections = {}
        for key, _ in SECTIONS:  # each section drawn: its own screenshot is not blank
            shot = tmp_path / f"{key}.png"
            page.locator(f"section#{key}").screenshot(path=str(shot))
            sections[key] = shot
        browser.close()

    assert problems == []
    assert requests == [path.as_uri()]  # the page itself, nothing else
    assert headings == [title for _, title in SECTIONS]
    assert figures >= 5
    image = Image.open(screenshot).convert("L")
    assert image.height > 2000  # a long page, not an error stub
    assert _ink(image) > 0.02
    for key, shot in sections.items():
        assert _ink(Image.open(shot).convert("L")) > 0.005, key


def _ink(image) -> float:
    """The share of pixels that are not near-white."""
    histogram = image.histogram()
    return sum(histogram[:200]) / (image.width * image.height)


# ---- dashboard ----


def test_dashboard_without_the_extra_names_it(storage_url):
    code = "import sys; sys.modules['optuna_dashboard'] = None; from dltune.cli import main; main()"
    run = subprocess.run(
        [sys.executable, "-c", code, "dashboard", "--storage", storage_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "pip install 'dltune[dashboard]'" in run.stderr


def test_dashboard_serves_the_study(storage_url):
    pytest.importorskip("optuna_dashboard")
    write_study(storage_url, varied_runs(3), name="served")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dltune.cli",
            "dashboard",
            "--storage",
            storage_url,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
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
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        assert [s["study_name"] for s in studies["study_summaries"]] == ["served"]
    finally:
        server.terminate()
        server.wait(timeout=30)
