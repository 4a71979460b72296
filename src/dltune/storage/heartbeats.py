"""Heartbeats: how a later run tells a trial whose process was killed (no heartbeat for the
grace period) from one still running elsewhere, and fails the dead ones.

A trial trained on this machine is recognised sooner: each records its owner (host, pid and
the process's start time, and the boot id and pid namespace that say which machine and which
pids those are: schema.OWNER), and a running trial whose owner here is gone (no such pid, or a
pid reused by a later process) is failed at once, without waiting for the grace period, so that
a quick rerun after `kill -9` neither shows it running nor leaves it unresumed. A host name
alone is no proof of "here": containers and cloned machines share one, and a container's pids
are not the host's. So an owner whose boot id or pid namespace differs from this process's is
left to the heartbeats; a record written before those were kept is judged by its host alone.

Optuna's own heartbeats serve the databases; the journal, whose storage has none, gets a trial
system attribute (schema.HEARTBEAT). The interval is read from DLTUNE_HEARTBEAT_SECONDS when a
study starts (when its storage is opened, when its heartbeat thread starts), never at import.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

from . import internals, schema

if TYPE_CHECKING:
    import optuna

DEFAULT_HEARTBEAT_SECONDS = 10
BEATS_OF_GRACE = 3  # a running trial silent for this many beats is a dead process's


def heartbeat_seconds() -> int:
    """Seconds between heartbeats of a running trial: DLTUNE_HEARTBEAT_SECONDS (a whole number
    >= 1), else 10. Shorter: a dead process's trials are found sooner, at the cost of a
    database write per running trial that often."""
    text = os.environ.get("DLTUNE_HEARTBEAT_SECONDS", "").strip()
    if not text:
        return DEFAULT_HEARTBEAT_SECONDS
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        warnings.warn(
            f"DLTUNE_HEARTBEAT_SECONDS={text!r} is not a whole number of seconds >= 1; "
            f"using {DEFAULT_HEARTBEAT_SECONDS}",
            RuntimeWarning,
            stacklevel=2,
        )
        return DEFAULT_HEARTBEAT_SECONDS
    return seconds


def grace_period() -> int:
    """Seconds without a heartbeat after which a running trial's process is taken for dead."""
    return BEATS_OF_GRACE * heartbeat_seconds()


def record_heartbeat(study: optuna.Study, trial: optuna.Trial) -> None:
    """Note that the trial's process is alive: Optuna's heartbeat where the storage has one
    (the databases), else a trial attribute (the journal)."""
    if internals.heartbeats_enabled(study):
        internals.record_optuna_heartbeat(study, trial)
    else:
        schema.write_heartbeat(study, trial, time.time())


def this_process() -> dict[str, Any]:
    """The owner record of a trial trained here: host, pid, the process's start time, and the
    boot id and pid namespace (None where they cannot be read)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid), **_machine()}


def _machine() -> dict[str, str | None]:
    """What makes a pid this machine's: its boot (Linux's boot id, new at every boot) and the
    pid namespace this process sees pids in (a container has its own)."""
    boot: str | None
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            boot = file.read().strip() or None
    except OSError:
        boot = None
    try:
        namespace: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    return {"boot": boot, "pidns": namespace}


def _stat(pid: int) -> list[bytes] | None:
    """Linux's /proc/PID/stat from field 3 (the state) on, or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat), or
    None where that cannot be read: with the pid, it names one process for ever."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def owner_gone(owner: dict[str, Any]) -> bool:
    """Whether a trial's owner ran here and is no longer alive (its pid is free, or now
    another process's). Here: this host, and, where the record has them, this boot and this
    pid namespace; another machine's owner (or a container's) is never taken for gone."""
    if owner.get("host") != socket.gethostname():
        return False
    machine = _machine()
    if any(key in owner and owner[key] != machine[key] for key in machine):
        return False
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    fields = _stat(pid)
    if fields is not None and fields[0] == b"Z":  # killed, not yet reaped by its parent
        return True
    started = owner.get("started")
    return started is not None and _start_time(pid) not in (None, started)


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """Fail at once the running trials whose owner here is gone; their numbers."""
    import optuna

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = schema.read_owner(trial)
        if owner is not None and owner_gone(owner):
            internals.fail_trial(study, internals.trial_id(trial))
            failed.append(trial.number)
    return failed


def fail_stale_trials(study: optuna.Study, *, everyone_gone: bool = False) -> None:
    """Mark trials whose process died as failed: at once for this machine's (their owner is
    gone), after the grace period without a heartbeat for the others. `everyone_gone`: no
    other process uses the storage (presence.py): every running trial is a dead one's."""
    import optuna

    if everyone_gone:
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            internals.fail_trial(study, internals.trial_id(trial))
        return
    fail_orphaned_trials(study)
    if internals.heartbeats_enabled(study):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        _fail_never_beaten(study)
        return
    if not isinstance(internals.storage_of(study), optuna.storages.JournalStorage):
        return  # in memory: no other process to have died
    # The journal: the last heartbeat attribute, compared with this machine's clock (machines
    # sharing a file system should agree on the time within a few seconds).
    now, grace = time.time(), grace_period()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = schema.read_heartbeat(trial)
        if beat is None and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()
        if beat is not None and now - beat > grace:
            internals.fail_trial(study, internals.trial_id(trial))


def _fail_never_beaten(study: optuna.Study) -> None:
    """Fail the RUNNING trials of a database that never recorded a heartbeat and started more
    than the grace period ago: their process was killed between creating the trial and its
    first beat (milliseconds apart). Optuna's fail_stale_trials skips a trial without
    heartbeats, so such a trial would stay 'running' for ever (a SIGKILL test caught one)."""
    # datetime_start is the creating process's local time (Optuna's datetime.now()).
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_period())
    for trial_id in internals.running_trials_never_beaten(study, started_before=cutoff):
        internals.fail_trial(study, trial_id)


class Heartbeats:
    """Records the heartbeat of every running trial, from one background thread."""

    def __init__(self, study: optuna.Study, running: dict[int, Any]) -> None:
        self._study = study
        self._running = running  # trial number -> optuna.Trial, kept up to date by the owner
        self._interval = heartbeat_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dltune-heartbeat", daemon=True)
        self._thread.start()

    def beat(self, trial: optuna.Trial) -> None:
        record_heartbeat(self._study, trial)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            trials = list(self._running.values())
            # A missed beat only delays stale detection; it must not end the trial.
            if internals.heartbeats_enabled(self._study):  # the databases: one transaction
                with contextlib.suppress(Exception):
                    internals.record_optuna_heartbeats(self._study, trials)
                continue
            for trial in trials:
                with contextlib.suppress(Exception):
                    self.beat(trial)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval)
