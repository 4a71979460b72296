"""Trial checkpoints in a study: when they are taken, and how an interrupted trial resumes.

Taken (Checkpointer.take):
- at every pause (a rung of successive halving): the paused trial's whole state;
- after any segment once `every` seconds have passed since the trial's last checkpoint;
- for every running trial when a stop is requested (SIGTERM, the parent's death: stopping.py).

A checkpoint is stored before the trial's attribute names it, and the previous one is removed
only once that attribute is in storage (storage.checkpoints). A trial's last checkpoint file is
removed once its end is stored (complete, pruned, diverged); an interrupted trial keeps it.

Resumed: when a study is opened, each trial a previous run left interrupted (Ctrl-C, SIGTERM,
a crash, kill -9: failed at once by its owner check, storage.heartbeats) and not resumed yet
is enqueued again with its params, its seed and the number it resumes (`enqueue_interrupted`).
When the loop asks that trial, `restore` loads the checkpoint into the engine; the new trial
gets the old one's curve up to there and its rung record, and goes on training, paused at its
rung or running, as if it had never stopped. Without a checkpoint (interrupted before its
first), or one this engine cannot take, it starts again from its seed: the same curve, at the
cost of the epochs retrained.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..storage import schema

if TYPE_CHECKING:
    import optuna

    from ..engine import Engine
    from ..engine.snapshot import Snapshot
    from ..schedule import Scheduler
    from ..storage import Storage
    from ..storage.checkpoints import CheckpointStore
    from .lifecycle import TrialLifecycle

RESUMABLE_STATES = (None, "running", "paused", "interrupted")  # not "failed": an error's
# How fast a checkpoint is serialized and written before this process has measured its own
# (here: 2,230 MiB in 19 s, and 1,146 MiB in 20.5 s with another process writing, the k-fold
# trials of GunPoint studies). A checkpoint that would take longer to write and read back
# than its trial took to train is not written: retraining from the seed is the cheaper
# recovery, and the study's time goes to training.
WRITTEN_BYTES_PER_SECOND = 60e6


class Checkpointer:
    """Takes, replaces and removes the checkpoints of one process's trials."""

    def __init__(
        self,
        store: CheckpointStore,
        lifecycle: TrialLifecycle,
        every: float,
    ) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.every = every
        self.ids: dict[int, str] = {}  # trial number -> its latest checkpoint's id
        self.taken_at: dict[int, float] = {}  # trial number -> time.monotonic() of it
        self.written = 0  # checkpoints written by this process
        self.skipped = 0  # not written: cheaper to retrain than to write
        self.bytes_written = 0
        self.seconds = 0.0  # spent writing them
        # the study's namespace in every id written (None: a study made before them)
        self.namespace = store.namespace(schema.read_checkpoint_token(lifecycle.study))

    def started(self, number: int) -> None:
        """A trial began training here: its first periodic checkpoint is `every` from now."""
        self.taken_at.setdefault(number, time.monotonic())

    def take(self, number: int, handle: Any, *, stopping: bool = False) -> None:
        """Store `handle`'s state (a paused trial, or an engine's snapshot of a running one)
        as trial `number`'s latest checkpoint, and remove the previous one. Not when writing
        it would take longer than retraining it (`worth`), unless the run is `stopping` (a
        stop request: every trial is kept where it stopped, whatever that costs once)."""
        from ..engine.capture import snapshot_of
        from ..engine.snapshot import NothingToKeep, to_bytes

        started = time.perf_counter()
        try:
            snapshot = snapshot_of(handle)
        except NothingToKeep:
            return
        if not stopping and not self.worth(snapshot):
            self.skipped += 1  # its seed retrains it faster than this would write
            self.taken_at[number] = time.monotonic()
            return
        data = to_bytes(snapshot)
        artifact_id = self.store.save(data, self.namespace)
        self.taken_at[number] = time.monotonic()
        if artifact_id is None:  # the store stopped taking them (one warning said why)
            return
        trial = self.lifecycle.running[number]
        record = {"id": artifact_id, "epochs": snapshot.epochs, "bytes": len(data)}
        schema.write_checkpoint(trial, record)
        self.lifecycle.flush()  # the new id is stored before the old file goes
        previous = self.ids.get(number)
        self.ids[number] = artifact_id
        if previous is not None:
            self.store.remove(previous)
        self.written += 1
        self.bytes_written += len(data)
        self.seconds += time.perf_counter() - started

    def worth(self, snapshot: Snapshot) -> bool:
        """Whether a checkpoint saves more than it costs: writing and reading it back takes
        less than the training it holds. Always, where checkpoints were asked after every
        segment (`every` 0)."""
        if self.every <= 0:
            return True
        return 2 * snapshot.nbytes / self.write_rate() <= trained_seconds(snapshot)

    def write_rate(self) -> float:
        """Bytes a second this process has written its checkpoints at (the prior before)."""
        if self.written and self.seconds > 0:
            return max(self.bytes_written / self.seconds, 1e6)
        return WRITTEN_BYTES_PER_SECOND

    def take_due(self, engine: Engine[Any], numbers: list[int]) -> None:
        """Checkpoint the running trials whose last one is `every` seconds old or more."""
        now = time.monotonic()
        for number in numbers:
            if now - self.taken_at.get(number, now) >= self.every:
                self.take_running(engine, number)

    def take_running(self, engine: Engine[Any], number: int, *, stopping: bool = False) -> None:
        handle = engine.snapshot(number)
        if handle is not None:  # nothing trained yet: nothing to keep
            self.take(number, handle, stopping=stopping)

    def forget(self, number: int) -> str | None:
        """The trial ends (before it is told): the id to remove once the end is stored
        (`remove`). Its attribute keeps naming it: cleared before the tell, a crash between
        the two would leave a running trial without a checkpoint, retrained from its seed;
        once the trial has ended nothing reads it (a finished trial holds none)."""
        self.taken_at.pop(number, None)
        return self.ids.pop(number, None)

    def remove(self, artifact_id: str | None) -> None:
        if artifact_id is not None:
            self.store.remove(artifact_id)

    def adopt(self, number: int, record: dict[str, Any]) -> None:
        """A resumed trial takes over the checkpoint it resumed from (until its next)."""
        self.ids[number] = record["id"]
        self.taken_at[number] = time.monotonic()
        schema.write_checkpoint(self.lifecycle.running[number], record)

    def tally(self) -> tuple[int, int, float]:
        """(checkpoints written, their bytes, seconds spent taking them) by this process."""
        return self.written, self.bytes_written, self.seconds


def trained_seconds(snapshot: Snapshot) -> float:
    """The training a snapshot holds, in seconds (its fold members' together)."""
    from ..engine.snapshot import fold_parts

    if snapshot.kind == "folds":
        return sum(trained_seconds(part) for part in fold_parts(snapshot))
    return float(snapshot.meta["result"]["seconds"]) + float(snapshot.meta.get("epoch_seconds", 0))


def checkpoint_note(location: str, tallies: list[tuple[int, int, float]]) -> str | None:
    """What the study's processes wrote (their Checkpointer.tally()s), in one line."""
    written = sum(t[0] for t in tallies)
    if not written:
        return None
    size, seconds = sum(t[1] for t in tallies) / 2**20, sum(t[2] for t in tallies)
    return f"checkpoints: {written} written ({size:.1f} MiB in {seconds:.1f} s) to {location}"


# ---- resuming --------------------------------------------------------------------------------


def enqueue_interrupted(study: optuna.Study) -> list[int]:
    """Enqueue a continuation of every trial a previous run left interrupted and no trial
    resumes yet; their numbers."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    taken = {schema.read_resumes(t) for t in trials}
    # Enqueued but not yet asked continuations hold their RESUMES too (WAITING trials).
    resumed = []
    for trial in trials:
        if trial.state != optuna.trial.TrialState.FAIL or trial.number in taken:
            continue
        if schema.read_state(trial) not in RESUMABLE_STATES or not trial.params:
            continue
        seed = schema.read_enqueued_seed(trial)  # its seed, written when it started
        if seed is None:
            continue  # never started training: nothing to continue
        schema.enqueue_resume(study, trial, seed)
        resumed.append(trial.number)
    return resumed


def held_checkpoints(study: optuna.Study) -> list[dict[str, Any]]:
    """The checkpoint records the study's unfinished trials hold: running or paused ones, and
    interrupted ones no later trial continues (a continuation holds the one it adopted)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    continued = {schema.read_resumes(t) for t in trials}
    held = []
    for trial in trials:
        record = schema.read_checkpoint(trial)
        if record is None:
            continue
        running = trial.state == optuna.trial.TrialState.RUNNING
        waiting = (
            trial.state == optuna.trial.TrialState.FAIL
            and schema.read_state(trial) in RESUMABLE_STATES
            and trial.number not in continued
        )
        if running or waiting:
            held.append(record)
    return held


def sweep_strays(store: CheckpointStore, storage: Storage) -> int:
    """Remove the checkpoints in `store` that no unfinished trial of `storage`'s studies holds
    (this process alone on the storage, in its turn: presence.py); how many. In the storage's
    own folder every such file; in a place other storages may share (a folder given, a
    bucket), only those in the namespace of one of its studies (CheckpointStore.sweep)."""
    keep: set[str] = set()
    namespaces: set[str | None] = set()
    for summary in storage.summaries():
        keep |= {r["id"] for r in held_checkpoints(storage.load_study(summary.study_name))}
        namespaces.add(store.namespace(schema.read_checkpoint_token(summary)))
    return store.sweep(keep, None if store.own_folder else namespaces)


@dataclass
class Restored:
    """A resumed trial's state loaded into an engine: its handle, and whether it waits at its
    rung (paused) or trains on."""

    handle: Any
    paused: bool
    epochs: float


def restore(
    trial: optuna.Trial,
    old: int,
    engine: Engine[Any],
    scheduler: Scheduler,
    checkpointer: Checkpointer | None,
) -> Restored | None:
    """Trial `trial`, which continues interrupted trial `old`: its checkpoint loaded into
    `engine`, its curve and rung record copied, the scheduler told. None when it must start
    again from its seed (no checkpoint, gone, unreadable, or of a kind this engine cannot
    take); a warning says why where something was expected."""
    import warnings

    from . import stored_rungs

    previous = trial.study.get_trials(deepcopy=False)[old]
    record = schema.read_checkpoint(previous)
    if record is None or checkpointer is None:
        return None
    snapshot, problem = _load(checkpointer, record)
    handle = engine.restore(snapshot, trial.number) if snapshot is not None else None
    if handle is None or snapshot is None:
        if snapshot is not None:
            problem = f"this engine cannot take its {snapshot.kind!r} checkpoint"
        warnings.warn(
            f"dltune: trial {trial.number} continues trial {old} from its seed, not from its "
            f"checkpoint: {problem}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    _copy_curve(trial, previous, snapshot, checkpointer.lifecycle)
    rungs = stored_rungs.read(previous, scheduler)
    if rungs is not None:
        rungs.number = trial.number
        scheduler.trials[trial.number] = rungs
    else:
        scheduler.start(trial.number, checkpointer.lifecycle.cost_values(trial.number))
    checkpointer.adopt(trial.number, record)
    paused = scheduler.target(trial.number) <= snapshot.epochs + 1e-9
    return Restored(handle, paused, snapshot.epochs)


def _load(checkpointer: Checkpointer, record: dict[str, Any]) -> tuple[Snapshot | None, str]:
    from ..engine.snapshot import SnapshotError, from_bytes
    from ..errors import StudyError

    try:
        data = checkpointer.store.load(record["id"])
    except StudyError as exc:  # an id of no form of ours: never a path; the trial goes on
        return None, str(exc)
    if data is None:
        return None, f"checkpoint {record['id']} is not in {checkpointer.store.location}"
    try:
        return from_bytes(data), ""
    except SnapshotError as exc:
        return None, f"checkpoint {record['id']}: {exc}"


def _copy_curve(
    trial: optuna.Trial, previous: Any, snapshot: Snapshot, lifecycle: TrialLifecycle
) -> None:
    """The old trial's curve up to the checkpoint, reported again on the new one: its value
    inside the first epoch (step 0), if any, then each epoch's validation metric."""
    partial = schema.read_curve(previous).get(0)
    if partial is not None and math.isfinite(partial):
        lifecycle.report_value(trial, partial, 0)
    for report in snapshot.history:
        lifecycle.report_value(trial, report.val_metric, report.epoch)
