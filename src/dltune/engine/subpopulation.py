"""One part of a population: members trained one way, behind what the population needs of it.

A population (population.PopulationTrainer) trains its members in three ways: the built-in
dense networks padded into buckets (padded_population.py), other networks stacked in buckets of
one exact architecture (module_population.py), and architectures that cannot be stacked one at
a time (one_at_a_time.py). Each is a SubPopulation; the population keeps one map from a
member's key to the part that owns it, and asks that part alone.

A paused member is a handle of its part's own kind (a Member, or a TrainingRun trained one at a
time); `takes` says which part a handle goes back to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .bucket_base import Member
    from .protocol import EpochCallback
    from .result import Checkpoint, TrainResult
    from .snapshot import Snapshot


class NoMember(KeyError):
    """A key that names no member where one was asked for. A KeyError, as the Engine
    protocol's callers expect; `key` is the key asked for."""

    def __init__(self, key: Any, why: str = "is not in this population") -> None:
        super().__init__(key)
        self.key = key
        self.why = why

    def __str__(self) -> str:
        return f"member {self.key!r} {self.why}"


class SubPopulation(ABC):
    """Members trained one way: they join, train a segment at a time, wait at their `until`
    and leave, as population.PopulationTrainer describes. Keys are the population's; a part
    is only asked about keys it owns."""

    # The kind of checkpoint (snapshot.Snapshot.kind) this part restores its members from
    kind: ClassVar[str]

    @abstractmethod
    def __len__(self) -> int:
        """Members here, training or waiting to join (paused ones not counted)."""

    @abstractmethod
    def memory_in_use(self) -> int:
        """The estimated footprint of these members, in bytes."""

    @abstractmethod
    def takes(self, member: Any) -> bool:
        """Whether `member` (a new member, or a paused handle) trains here."""

    @abstractmethod
    def add(self, member: Member) -> None:
        """A new member, from its seed; it joins at the next segment boundary."""

    @abstractmethod
    def resume(self, paused: Any, until: float | None) -> None:
        """A paused handle back, training on to `until` (None: to its end)."""

    def admit(self) -> None:  # noqa: B027 - a hook, nothing by default
        """Place the members that joined since the last segment. The population admits every
        part's members before any part trains."""

    @abstractmethod
    def advance(
        self, on_epoch: EpochCallback | None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """One segment of every admitted member: those that finished, with their results, and
        the checkpoints of those at their `until` (see PopulationTrainer.advance)."""

    @abstractmethod
    def set_until(self, key: Any, until: float) -> None:
        """Move a member's next checkpoint."""

    @abstractmethod
    def pause(self, key: Any) -> Any:
        """Take a member out with its training state kept: a handle for resume()."""

    @abstractmethod
    def stop(self, key: Any, status: str) -> TrainResult:
        """Take a member out now: its result so far, with `status`."""

    @abstractmethod
    def snapshot(self, key: Any) -> Any:
        """A copy of a running member's state, as pause() would give it, the member left
        training; None when it has nothing to keep yet."""

    @abstractmethod
    def restore(self, snapshot: Snapshot, key: Any) -> Any:
        """A paused handle in the state of a checkpoint of this part's `kind`, named `key`."""

    @abstractmethod
    def running_result(self, key: Any) -> TrainResult:
        """A member's result so far, in place (its curve grows as it trains)."""
