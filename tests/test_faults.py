"""Faults: the driver killed with SIGKILL mid-study loses no finished trial, and the same command
resumes the study with no trial left 'running' for ever. The killed driver is a real process
(forked from this one, so that it starts at once); the command that resumes runs in this one."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from dltune.storage import grace_period, heartbeat_seconds

from .helpers import SMALL_SPACE, Forked, dltune

FINISHED = ("COMPLETE", "PRUNED")
BEAT = 1  # seconds between heartbeats in the killed driver (DLTUNE_HEARTBEAT_SECONDS)


def trial_rows(db: Path) -> dict[int, tuple[str, float | None]]:
    """number -> (state, value), read with sqlite3 alone (no Optuna in the reader)."""
    with sqlite3.connect(db, timeout=30) as connection:
        rows = connection.execute(
            "SELECT t.number, t.state, v.value FROM trials t "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id"
        ).fetchall()
    return {number: (state, value) for number, state, value in rows}


# A user's own model (build(hp) in a file of the test's): the resumed run names no --model,
# so it rebuilds the build from the study's record.
USER_BUILD = """\
from torch import nn


def build(hp):
    width = hp.Int("width", 8, 32)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
"""
USER_SPACE = "optimizer: adam\nlearning_rate: 0.01\nbatch_size: [32, 64]\nepochs: 3\n"


@pytest.mark.slow
@pytest.mark.parametrize("model", [False, True], ids=["built-in", "user-model"])
def test_a_driver_killed_with_sigkill_resumes_with_nothing_finished_lost(tmp_path, model):
    space = tmp_path / "small.yaml"
    space.write_text(USER_SPACE if model else SMALL_SPACE)
    db = tmp_path / "dltune.db"
    # Without successive halving every trial trains all its epochs: one is always in flight.
    # One process: its trials are left for the heartbeats' grace period (the default's workers
    # are test_the_default_workers_stop_with_every_finished_trial_kept's).
    command = ["run", str(space), "--seed", "0", "--schedule", "none", "--workers", "1"]
    if model:  # the resumed run imports the build the study records: allowed here
        command.append("--trust-source")
    first = list(command)
    if model:
        (tmp_path / "mine.py").write_text(USER_BUILD)
        first += ["--model", f"{tmp_path / 'mine.py'}:build"]
    # Heartbeats every second, so a trial silent 3 s is a dead process's (10 s and 30 s by
    # default): the same rule, a shorter wait.
    beats = {"DLTUNE_HEARTBEAT_SECONDS": str(BEAT)}
    driver = Forked(*first, "--trials", "500", cwd=tmp_path, env=beats)
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
            if len(finished) >= 3 and running:
                break
            assert time.monotonic() < deadline, "the study never got going"
            assert driver.alive(), "the driver ended before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
        driver.process.join(30)
    finally:
        if driver.alive():
            driver.process.kill()
    before = trial_rows(db)
    done_before = {n: row for n, row in before.items() if row[0] in FINISHED}
    orphans = [n for n, (state, _) in before.items() if state == "RUNNING"]
    assert done_before and orphans

    # Past the grace period, the same command tells the dead driver's trials from live ones.
    after = run_again_past_the_grace(command, tmp_path, beats, db, done_before)
    for number in orphans:
        assert after[number][0] == "FAIL"  # shown as 'interrupted' by dltune
    assert not [n for n, (state, _) in after.items() if state == "RUNNING"]
    assert len(after) >= len(before) + 2
    # what the CLI reads back agrees with the database, trial by trial
    rows = json.loads(dltune("trials", "--json", cwd=tmp_path).stdout)
    assert len(rows) == len(after)
    assert sum(r["state"] == "complete" for r in rows) == sum(
        state == "COMPLETE" for state, _ in after.values()
    )
    assert {r["trial"] for r in rows if r["state"] == "interrupted"} >= set(orphans)
    assert grace_period() > heartbeat_seconds()  # a live driver is never mistaken for a dead one
    if model:  # the resumed run trained the user's network again, from the study's record
        assert all("width" in r["params"]["model"] for r in rows if r["state"] == "complete")


def _group(pgid: int) -> set[int]:
    """The live processes of process group `pgid` (read from /proc: no psutil here)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.add(int(stat.parent.name))
    return members


def _worker_rows(db: Path) -> dict[int, int]:
    """number -> the local worker that asked it (0 when untagged)."""
    with sqlite3.connect(db, timeout=30) as connection:
        rows = connection.execute(
            "SELECT t.number, a.value_json FROM trials t JOIN trial_user_attributes a "
            "ON a.trial_id = t.trial_id WHERE a.key = 'worker'"
        ).fetchall()
    return {number: int(json.loads(value)) for number, value in rows}


@pytest.mark.slow
@pytest.mark.xdist_group("workers")
@pytest.mark.parametrize("stop", ["ctrl-c", "sigkill"])
def test_the_default_workers_stop_with_every_finished_trial_kept(tmp_path, stop):
    """`dltune run` with its default arrangement (several workers, on two or more cores):
    Ctrl-C (SIGINT to the process group) ends every process cleanly, exit 130; SIGKILL of the
    parent makes the children stop within seconds, their running trials ended as interrupted.
    Either way every finished trial is kept and the same command continues the study."""
    import subprocess

    from dltune.study.arrangement import cpu_count

    from .helpers import default_signals, dltune_command

    if cpu_count() < 2:
        pytest.skip("one core: the default is one worker")
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    db = tmp_path / "dltune.db"
    command = ["run", "small.yaml", "--seed", "0", "--schedule", "none"]
    beats = {"DLTUNE_HEARTBEAT_SECONDS": str(BEAT)}
    with (tmp_path / "out.txt").open("w") as out:
        driver = subprocess.Popen(
            dltune_command(*command, "--trials", "500"),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: Ctrl-C's signal reaches all of it
            preexec_fn=default_signals,  # as a terminal starts it, whatever this one has
            env={**os.environ, "COLUMNS": "200", **beats},
        )
    try:
        deadline = time.monotonic() + 300  # a worker's start is slow on a loaded machine
        while True:
            time.sleep(0.5)
            try:
                rows = trial_rows(db) if db.exists() else {}
                workers = _worker_rows(db) if rows else {}
            except sqlite3.OperationalError:
                rows, workers = {}, {}
            finished = [n for n, (state, _) in rows.items() if state in FINISHED]
            running = [n for n, (state, _) in rows.items() if state == "RUNNING"]
            helped = [n for n in finished if workers.get(n, 0) > 0]
            # the parent shows the other worker's trials (relayed: a moment after storage)
            shown = "[w1] trial" in (tmp_path / "out.txt").read_text()
            if len(finished) >= 4 and helped and running and shown:
                break
            assert time.monotonic() < deadline, (tmp_path / "out.txt").read_text()
            assert driver.poll() is None, (tmp_path / "out.txt").read_text()
        group = _group(driver.pid)
        assert len(group) >= 2, group  # the parent and at least one worker
        if stop == "ctrl-c":
            os.killpg(driver.pid, signal.SIGINT)
            assert driver.wait(120) == 130, (tmp_path / "out.txt").read_text()
        else:
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(30)
        gone_by = time.monotonic() + 60
        while _group(driver.pid) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert not _group(driver.pid), "a worker outlived its study"
    finally:
        for pid in _group(driver.pid):
            os.kill(pid, signal.SIGKILL)
    printed = (tmp_path / "out.txt").read_text()
    before = trial_rows(db)
    workers = _worker_rows(db)
    done_before = {n: row for n, row in before.items() if row[0] in FINISHED}
    still = [n for n, (state, _) in before.items() if state == "RUNNING"]
    if stop == "ctrl-c":
        assert not still, printed  # every process ended its own running trials
        assert "finished trials are kept" in printed
        assert any(state == "FAIL" for state, _ in before.values())  # interrupted, not lost
    else:  # the children ended theirs (at their next checkpoint: between two trials, perhaps,
        # with none to end); the parent's are failed at once by the next run (owner gone)
        assert all(workers.get(n, 0) == 0 for n in still), (still, workers)

    after = run_again_past_the_grace(command, tmp_path, beats, db, done_before)
    assert not [n for n, (state, _) in after.items() if state == "RUNNING"]
    assert all(after[n][0] == "FAIL" for n in still)  # interrupted, not lost: resumed anew
    assert len(after) >= len(before) + 2


def run_again_past_the_grace(command, tmp_path, beats, db, done_before):
    """The same command, once the dead run's heartbeats are stale: it succeeds and every trial
    finished before is kept as it was (state and value); the trials as stored after it."""
    time.sleep(3 * BEAT + 1.5)
    again = dltune(*command, "--trials", "2", cwd=tmp_path, env=beats)
    assert again.returncode == 0, again.stderr
    after = trial_rows(db)
    for number, row in done_before.items():
        assert after[number] == row  # every finished trial kept, state and value
    return after
