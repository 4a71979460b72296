"""Faults: the driver killed with SIGKILL mid-study loses no finished trial, and the same command
resumes the study with no trial left 'running' for ever."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dltune.storage import grace_period, heartbeat_seconds

from .test_cli import SMALL_SPACE

FINISHED = ("COMPLETE", "PRUNED")
BEAT = 2  # seconds between heartbeats in the killed driver (DLTUNE_HEARTBEAT_SECONDS)


def trial_rows(db: Path) -> dict[int, tuple[str, float | None]]:
    """number -> (state, value), read with sqlite3 alone (no Optuna in the reader)."""
    with sqlite3.connect(db, timeout=30) as connection:
        rows = connection.execute(
            "SELECT t.number, t.state, v.value FROM trials t "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id"
        ).fetchall()
    return {number: (state, value) for number, state, value in rows}


@pytest.mark.slow
def test_a_driver_killed_with_sigkill_resumes_with_nothing_finished_lost(tmp_path):
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_SPACE.replace("epochs: 3", "epochs: 9"))
    db = tmp_path / "dltune.db"
    command = [sys.executable, "-m", "dltune.cli", "run", str(space), "--seed", "0"]
    # Heartbeats every 2 s, so a trial silent 6 s is a dead process's (10 s and 30 s by
    # default): the same rule, a shorter wait.
    env = {**os.environ, "DLTUNE_HEARTBEAT_SECONDS": str(BEAT)}
    driver = subprocess.Popen(
        [*command, "--trials", "500"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # wait until several trials have finished and one is in flight
            time.sleep(0.3)
            try:
                rows = trial_rows(db) if db.exists() else {}
            except sqlite3.OperationalError:  # the file exists, Optuna's tables not yet
                rows = {}
            finished = [n for n, (state, _) in rows.items() if state in FINISHED]
            running = [n for n, (state, _) in rows.items() if state == "RUNNING"]
            if len(finished) >= 4 and running:
                break
            assert time.monotonic() < deadline, "the study never got going"
            assert driver.poll() is None, "the driver ended before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    before = trial_rows(db)
    done_before = {n: row for n, row in before.items() if row[0] in FINISHED}
    orphans = [n for n, (state, _) in before.items() if state == "RUNNING"]
    assert done_before and orphans

    # Past the grace period, the same command tells the dead driver's trials from live ones.
    time.sleep(3 * BEAT + 1.5)
    again = subprocess.run(
        [*command, "--trials", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    after = trial_rows(db)
    for number, row in done_before.items():
        assert after[number] == row  # every finished trial kept, state and value
    for number in orphans:
        assert after[number][0] == "FAIL"  # shown as 'interrupted' by dltune
    assert not [n for n, (state, _) in after.items() if state == "RUNNING"]
    assert len(after) >= len(before) + 2
    assert grace_period() > heartbeat_seconds()  # a live driver is never mistaken for a dead one
