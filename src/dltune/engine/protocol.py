"""What the study loop needs of an engine: add trials, advance them to their next checkpoint,
pause, resume and stop them, and hand over or take back a trial's whole state (snapshot.py).
SequentialEngine, PopulationTrainer and distributed.RayEngine implement it; the loop
(dltune.study.loop) knows nothing else about them.

Trials are named by a key the caller chooses (the study loop uses the trial's number). A paused
trial is a handle of the engine's own type `P`, which only that engine can resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from ..config import Config
    from .result import Checkpoint, EpochReport, TrainResult
    from .snapshot import Snapshot

# Called after each finished epoch of a trial: (key, report) -> keep training?
EpochCallback = Callable[[Any, "EpochReport"], bool]

P = TypeVar("P")


class PausedRun(Protocol):
    """A trial paused at a rung, its state kept: what it trained so far."""

    @property
    def result(self) -> TrainResult: ...


class Engine(Protocol[P]):
    """Trains the trials it was given, checkpoint by checkpoint (see the module's note)."""

    @property
    def epochs_trained(self) -> float:
        """Member-epochs trained so far, in all trials (fractions count)."""
        ...

    def __len__(self) -> int:
        """Trials training now (paused ones not counted)."""
        ...

    def has_room(self, config: Config) -> bool:
        """Whether a trial of `config` may join now (slots, memory)."""
        ...

    def add(
        self,
        key: Any,
        config: Config,
        *,
        seed: int,
        patience: int | None = None,
        keep_best_state: bool = False,
        until: float | None = None,
    ) -> None:
        """Start training `config` from `seed`; it checkpoints at `until` epochs (a rung)."""
        ...

    def advance(
        self, on_epoch: EpochCallback | None = None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """Train every running trial to its next epoch or checkpoint: the trials that ended
        (ran their epochs, stopped on a plateau, diverged) and the ones at a checkpoint."""
        ...

    def set_until(self, key: Any, until: float) -> None:
        """Move a running trial's next checkpoint (it earned the next rung)."""
        ...

    def pause(self, key: Any) -> P:
        """Take a trial out of training with its state kept."""
        ...

    def resume(self, paused: P, until: float | None = None) -> None:
        """Put a paused trial back, training on to `until`."""
        ...

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        """End a running trial: its result so far, with `status`."""
        ...

    def snapshot(self, key: Any) -> P | None:
        """A running trial's state as a paused handle, the trial left training (a checkpoint
        serializes it at once: snapshot.snapshot_of); None when it has nothing to keep yet."""
        ...

    def restore(self, snapshot: Snapshot, key: Any) -> P | None:
        """A paused handle in a checkpoint's state, named `key`, for resume(); None when this
        engine cannot take that kind of checkpoint (the trial starts again from its seed)."""
        ...


class LocalEngine(Engine[P], Protocol[P]):
    """An engine that trains in this process and reads a running trial's result in place:
    what cross-validated trials train on (folds.FoldEngine; a Ray actor wraps its own)."""

    def running_result(self, key: Any) -> TrainResult:
        """The trial's result so far, the object itself (its curve grows as it trains)."""
        ...
