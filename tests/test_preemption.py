"""Faults injected on purpose: the driver of a study killed with SIGKILL, or stopped with
SIGTERM, at random (seeded) moments, each time started again with the same command. At the end
no finished trial is lost, none is left running, every trial's curve is the one an
uninterrupted run of its seed gives, and the epochs trained twice are at most the checkpoint
interval (here: every segment, so at most one epoch) per kill, none per SIGTERM.

DLTUNE_FAULT_KILLS sets how many faults (3 by default, in CI; the issue's figure is 20)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest

from .helpers import SMALL_SPACE, Forked, assert_curves_unbroken

FAULTS = int(os.environ.get("DLTUNE_FAULT_KILLS", "3"))
# The sequential engine (bit-for-bit curves on a CPU), one process, a checkpoint after every
# segment of training; the default successive halving, so that trials pause at rungs too.
COMMAND = ["run", "small.yaml", "--seed", "0", "--workers", "1", "--engine", "sequential"]
COMMAND += ["--cv", "holdout"]
COMMAND += ["--checkpoint-every", "0", "--trials", "5"]
SIGTERM_BOUND_S = 40  # the stop's grace (stopping.STOP_GRACE_S) and a margin for the exit


def rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(query).fetchall()


def epochs_reported(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return rows(db, "SELECT COUNT(*) FROM trial_intermediate_values WHERE step > 0")[0][0]
    except sqlite3.OperationalError:  # Optuna's tables not yet made
        return 0


def owns_running(db: Path, pid: int) -> bool:
    """Whether process `pid` has a trial running (the study's loop is not over)."""
    owners = rows(
        db,
        "SELECT a.value_json FROM trial_user_attributes a JOIN trials t "
        "ON t.trial_id = a.trial_id WHERE t.state = 'RUNNING' AND a.key = 'owner'",
    )
    return any(json.loads(value).get("pid") == pid for (value,) in owners)


def finished_trials(db: Path) -> dict[int, tuple[str, float | None]]:
    found = rows(
        db,
        "SELECT t.number, t.state, v.value FROM trials t "
        "LEFT JOIN trial_values v ON v.trial_id = t.trial_id "
        "WHERE t.state IN ('COMPLETE', 'PRUNED')",
    )
    return {number: (state, value) for number, state, value in found}


def retrained_by(db: Path, pid: int) -> tuple[int, int, float]:
    """Epochs the stopped process `pid` had reported past each of its unfinished trials' last
    checkpoint (running ones, or failed as interrupted by the process itself on SIGTERM):
    what the next run trains again (a trial in its first segment: all it reported); and how
    many of its trials were in flight, with how many epochs checkpointed in all. (The part of
    a segment in training when it died is lost too: under one segment, by construction.)"""
    attrs: dict[int, dict[str, object]] = {}
    for trial_id, key, value in rows(
        db,
        "SELECT a.trial_id, a.key, a.value_json FROM trial_user_attributes a "
        "JOIN trials t ON t.trial_id = a.trial_id WHERE t.state IN ('RUNNING', 'FAIL') "
        "AND a.key IN ('owner', 'checkpoint')",
    ):
        attrs.setdefault(trial_id, {})[key] = json.loads(value)
    lost, in_flight, checkpointed = 0, 0, 0.0
    for trial_id, found in attrs.items():
        owner = found.get("owner")
        if not isinstance(owner, dict) or owner.get("pid") != pid:
            continue
        in_flight += 1
        reported = rows(
            db,
            f"SELECT MAX(step) FROM trial_intermediate_values WHERE trial_id = {trial_id}",
        )[0][0]
        checkpoint = found.get("checkpoint")
        kept = checkpoint["epochs"] if isinstance(checkpoint, dict) else 0
        lost += max(0, (reported or 0) - int(kept))
        checkpointed += float(kept)
    return lost, in_flight, checkpointed


@dataclass
class Faults:
    """What the faults did: each one's retrained epochs, and the finished trials seen."""

    retrained: list[int] = field(default_factory=list)
    in_flight: int = 0  # trials the faults caught unfinished
    caught: list[int] = field(default_factory=list)  # per fault, its trials unfinished
    checkpointed: float = 0.0  # epochs those had checkpointed (resumed, not retrained)
    finished: dict[int, tuple[str, float | None]] = field(default_factory=dict)
    exits: list[int | None] = field(default_factory=list)
    stop_seconds: list[float] = field(default_factory=list)


def inject(tmp_path: Path, sig: signal.Signals, count: int, seed: int) -> Faults:
    """Start the command, wait until it trains, a random moment more, then send `sig`; again,
    `count` times (fewer if the study ran to its end first)."""
    db, rng, faults = tmp_path / "dltune.db", random.Random(seed), Faults()
    for _ in range(count):
        driver = Forked(*COMMAND, cwd=tmp_path)
        start = epochs_reported(db)
        deadline = time.monotonic() + 120
        while epochs_reported(db) == start and driver.alive():
            assert time.monotonic() < deadline, driver.err.read_text()
            time.sleep(0.05)
        for _ in range(5):  # a moment with a trial in flight: training, a checkpoint, a pause
            time.sleep(rng.uniform(0.0, 1.0))
            if not driver.alive() or owns_running(db, driver.pid):
                break
        if not driver.alive() or not owns_running(db, driver.pid):
            driver.process.join(60)  # its trials done (a loaded machine): no fault this time
            continue
        sent = time.monotonic()
        os.kill(driver.pid, sig)
        driver.process.join(SIGTERM_BOUND_S + 20)
        assert not driver.alive(), f"still running {SIGTERM_BOUND_S + 20} s after {sig.name}"
        faults.stop_seconds.append(time.monotonic() - sent)
        faults.exits.append(driver.process.exitcode)
        lost, in_flight, checkpointed = retrained_by(db, driver.pid)
        faults.retrained.append(lost)
        faults.in_flight += in_flight
        faults.caught.append(in_flight)
        faults.checkpointed += checkpointed
        seen = finished_trials(db)
        for number, row in faults.finished.items():  # nothing finished lost, or changed
            assert seen.get(number) == row, (number, row, seen.get(number))
        faults.finished = seen
    return faults


def finish(tmp_path: Path, faults: Faults) -> optuna.Study:
    """The same command once more, to its end; the study as stored then."""
    ran = Forked(*COMMAND, cwd=tmp_path).wait(300)
    assert ran.returncode == 0, ran.stderr
    db = tmp_path / "dltune.db"
    seen = finished_trials(db)
    for number, row in faults.finished.items():
        assert seen.get(number) == row, (number, row, seen.get(number))
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{db}")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert not list((tmp_path / "dltune.db.checkpoints").glob("ckpt-*"))
    assert_curves_unbroken(study, threads=1)
    return study


def interrupted_left_behind(study: optuna.Study) -> list[int]:
    """Interrupted trials that no later trial continues."""
    from dltune.storage import schema

    continued = {schema.read_resumes(t) for t in study.trials}
    return [
        t.number
        for t in study.trials
        if t.state == optuna.trial.TrialState.FAIL
        and schema.read_state(t) == "interrupted"
        and t.number not in continued
    ]


@pytest.mark.slow
@pytest.mark.xdist_group("faults")
def test_a_driver_killed_at_random_moments_retrains_at_most_a_segment_per_kill(tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    faults = inject(tmp_path, signal.SIGKILL, FAULTS, seed=17)
    assert faults.retrained, "no kill landed"
    assert all(code == -signal.SIGKILL for code in faults.exits)
    assert max(faults.retrained) <= 1, faults.retrained  # a checkpoint after every segment
    assert faults.in_flight and faults.checkpointed > 0  # the kills caught trials mid-way
    study = finish(tmp_path, faults)
    assert interrupted_left_behind(study) == []
    print(
        f"\n{len(faults.retrained)} kills caught {faults.in_flight} trials unfinished, "
        f"{faults.checkpointed:g} epochs checkpointed; retrained per kill {faults.retrained}"
    )


@pytest.mark.slow
@pytest.mark.xdist_group("faults")
def test_a_driver_stopped_with_sigterm_checkpoints_its_trials_and_retrains_nothing(tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    faults = inject(tmp_path, signal.SIGTERM, max(2, FAULTS // 2), seed=23)
    assert faults.retrained, "no SIGTERM landed"
    # A SIGTERM while trials train ends the run as interrupted (130). One that lands after the
    # training loop (the test split, the summary) finds nothing unfinished: SIGTERM's default,
    # or the run's own end (0) when it was already exiting.
    stopped = [code for code, caught in zip(faults.exits, faults.caught, strict=True) if caught]
    assert stopped and all(code == 130 for code in stopped), (faults.exits, faults.caught)
    assert all(code in (0, 130, -signal.SIGTERM) for code in faults.exits), faults.exits
    assert max(faults.stop_seconds) < SIGTERM_BOUND_S, faults.stop_seconds
    assert faults.retrained == [0] * len(faults.retrained)  # each checkpointed where it stopped
    assert faults.in_flight and faults.checkpointed > 0
    study = finish(tmp_path, faults)
    assert interrupted_left_behind(study) == []
    print(
        f"\n{len(faults.stop_seconds)} SIGTERMs caught {faults.in_flight} trials unfinished, "
        f"exits after {max(faults.stop_seconds):.2f} s at most; retrained {faults.retrained}"
    )
