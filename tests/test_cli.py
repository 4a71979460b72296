"""The command line end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SMALL_SPACE = """\
# a tiny space that trains in a fraction of a second per trial
layers: [1, 2]
units: [16, 32]
activation: [relu, tanh]
optimizer: [adam, sgd]
lr: {low: 1.0e-3, high: 0.3, log: true}
batch_size: [32, 64]
epochs: 3
"""


def dltune(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dltune.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPACE)
    return path


def test_run_then_best_trials_and_studies(tmp_path, space_file):
    run = dltune("run", str(space_file), "--trials", "3", "--seed", "0", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Best configuration" in run.stdout
    assert "test accuracy" in run.stdout
    assert "sqlite:///dltune.db" in run.stdout  # the default storage, in the working folder
    assert "'small-digits'" in run.stdout  # the study's name: the space's and the data's
    assert (tmp_path / "dltune.db").exists()
    # the summary ends with the most important diagnostics: 3 trials are too few to conclude
    assert "What the study shows" in run.stdout
    assert "Only 3 finished trials" in run.stdout.split("What the study shows")[1]

    best = dltune("best", "--json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    record = json.loads(best.stdout)
    assert {"study", "trial", "value", "metric", "params", "best_epoch", "test"} <= set(record)
    assert record["study"] == "small-digits"
    assert record["metric"] == "accuracy"
    assert 0.5 < record["value"] <= 1 and 0.5 < record["test"] <= 1

    trials = dltune("trials", "--json", cwd=tmp_path)
    rows = json.loads(trials.stdout)
    assert len(rows) == 3
    for row in rows:
        assert {"trial", "state", "value", "epochs", "params", "seconds"} <= set(row)
        assert row["state"] in {"complete", "pruned"}
    assert record["value"] == max(r["value"] for r in rows if r["state"] == "complete")

    studies = dltune("studies", "--json", cwd=tmp_path)
    assert [s["study"] for s in json.loads(studies.stdout)] == ["small-digits"]

    table = dltune("trials", cwd=tmp_path)
    assert table.returncode == 0 and "small-digits" in table.stdout

    report = dltune("report", "-o", "report.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report.html").read_text()
    assert "small-digits" in page and "Diagnostics" in page
    as_json = dltune("report", "-o", "analysis.json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["best"]["trial"] == record["trial"]
    assert analysis["best"]["test"] == record["test"]


def test_output_that_is_not_a_terminal_gets_one_plain_line_per_trial(tmp_path, space_file):
    run = dltune("run", str(space_file), "--trials", "2", "--seed", "1", cwd=tmp_path)
    lines = [line for line in run.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2
    assert "best" in lines[-1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["space", "--show", "bad.yaml"], ["bad.yaml", "rleu", "did you mean 'relu'"]),
        (["run", "bad.yaml", "--trials", "1"], ["bad.yaml", "rleu"]),
        (["run", "--data", "missing.csv", "--trials", "1"], ["missing.csv"]),
        (["best", "--storage", "nosuch://x"], ["nosuch://x", "sqlite:///"]),
        (["best"], ["holds no study", "dltune run"]),
    ],
)
def test_user_errors_exit_2_with_a_message_and_no_traceback(tmp_path, args, words):
    (tmp_path / "bad.yaml").write_text("activation: rleu\n")
    result = dltune(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_space_show_prints_the_parsed_space(tmp_path, space_file):
    result = dltune("space", "--show", str(space_file), cwd=tmp_path)
    assert result.returncode == 0
    for key in ("layers", "units", "learning_rate", "batch_size", "epochs"):
        assert key in result.stdout


def _complete_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()
        return int(n)
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_a_study_killed_between_trials_loses_nothing_and_continues(tmp_path, space_file):
    db = tmp_path / "dltune.db"
    cmd = [
        sys.executable,
        "-m",
        "dltune.cli",
        "run",
        str(space_file),
        "--trials",
        "200",
        "--seed",
        "0",
        "--schedule",
        "none",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while _complete_trials(db) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    before = _complete_trials(db)
    assert before >= 3

    again = dltune(
        "run", str(space_file), "--trials", "2", "--seed", "0", "--schedule", "none", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert _complete_trials(db) >= before + 1  # nothing lost, new trials added
    rows = json.loads(dltune("trials", "--json", cwd=tmp_path).stdout)
    assert sum(r["state"] == "complete" for r in rows) == _complete_trials(db)
