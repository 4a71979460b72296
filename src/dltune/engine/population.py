"""The population engine: many configurations trained at once, joining and leaving at epochs.

Every epoch boundary is a decision point: each member's validation metric is reported through a
callback, which may stop it (pruned); members that ran their epochs, stopped on a plateau or
diverged leave; new members may join. A member may also be given a point (`until`, in epochs,
possibly inside an epoch: see `segments`) where it waits for its caller to let it go on, pause
it with its state kept, or stop it: successive halving's rungs. No member's results depend on
the others: each draws from its own generators and data order, and stacked members share no
parameters.

A population has three parts, each a SubPopulation (subpopulation.py), and one map from a
member's key to the part that owns it:

- the built-in family's dense networks, padded into buckets of shared widths
  (padded_population.py, bucket.py);
- networks that cannot be padded (the convolutional family, a user's module from a
  NetworkFactory), stacked only with members of exactly their shapes through torch.func
  (module_population.py, module_bucket.py, functional.py);
- architectures whose forward cannot be stacked, trained one member at a time
  (one_at_a_time.py); `notes` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from ..config import Config
from ..nets import BuiltinNetworks, NetworkFactory
from .bucket import Bucket
from .bucket_base import Member
from .device_data import DeviceData, check_fold
from .memory import resolve_memory
from .module_bucket import ModuleMember
from .module_population import ModulePopulation
from .one_at_a_time import OneAtATime
from .padded_population import PaddedPopulation, ladder_width
from .protocol import EpochCallback
from .result import Checkpoint, TrainResult
from .sequential import TrainingRun
from .stacked_optim import UpdateKernel
from .stacked_population import Tally
from .subpopulation import NoMember, SubPopulation

if TYPE_CHECKING:
    from ..data import Dataset
    from .snapshot import Snapshot

__all__ = ["PopulationTrainer", "ladder_width"]


class PopulationTrainer:
    """Trains a changing population of configurations, one epoch of every member at a time."""

    def __init__(
        self,
        data: Dataset,
        *,
        metric: str | None = None,
        device: str | torch.device = "cpu",
        shuffle_seed: int = 0,
        memory: int | str | None = None,
        pad_widths: bool = True,
        max_padding: float = 1.0,
        segments: int = 1,
        track_train: bool = False,
        network: NetworkFactory | None = None,
    ) -> None:
        self.tensors = DeviceData(data, metric=metric, device=device)
        self.track_train = track_train  # as SequentialTrainer's: the train metric every epoch
        if track_train:
            self.tensors.add_train_sample()
        self.data = data
        self.metric = self.tensors.metric
        self.shuffle_seed = shuffle_seed
        self.memory_budget = resolve_memory(memory, self.tensors.device)
        self.segments = segments  # an epoch's parts: the finest point where a member can stop
        # The optimizer update, compiled once this trainer has done enough eager work.
        self.kernel = UpdateKernel()
        self.tally = Tally()  # seconds per bucket and member-epochs of the stacked parts
        # What builds every configuration's module, as SequentialTrainer's `network`; the
        # padded part serves the built-in dense network only.
        self.network: NetworkFactory = network or BuiltinNetworks(data.input_shape)
        self.builtin = isinstance(self.network, BuiltinNetworks)
        self.dense = PaddedPopulation(
            self.tensors,
            self.kernel,
            self.tally,
            shuffle_seed=shuffle_seed,
            segments=segments,
            track_train=track_train,
            pad_widths=pad_widths,
            max_padding=max_padding,
        )
        self.modules = ModulePopulation(
            self.tensors,
            self.kernel,
            self.tally,
            self.network,
            builtin=self.builtin,
            shuffle_seed=shuffle_seed,
            segments=segments,
            track_train=track_train,
        )
        self.alone = OneAtATime(
            data,
            self.tensors,
            self.network,
            self.modules.member_bytes,
            shuffle_seed=shuffle_seed,
            segments=segments,
            track_train=track_train,
        )
        # In this order: a paused handle goes back to the first that takes it, and the stacked
        # parts train before the one-at-a-time part
        self.parts: tuple[SubPopulation, ...] = (self.dense, self.modules, self.alone)
        self._owners: dict[Any, SubPopulation] = {}  # every member's part, by key

    @property
    def epochs_trained(self) -> float:
        """Member-epochs trained (the epoch budget's), the one-at-a-time members' included."""
        return self.tally.epochs + self.alone.epochs_trained

    @property
    def bucket_seconds(self) -> dict[tuple[int, tuple[Any, ...]], float]:
        """Seconds per bucket: (batch size, padded widths), or (batch size, (architecture,))."""
        return self.tally.seconds

    @property
    def notes(self) -> list[str]:
        """What the user should know about how members trained (an architecture that could
        not be stacked, and why), once each."""
        return self.modules.notes

    @property
    def buckets(self) -> list[Bucket]:
        """The padded part's buckets (the module part's: self.modules.buckets)."""
        return self.dense.buckets

    def padded(self, config: Config) -> bool:
        """Whether `config` takes the padded dense path (else an exact-shape module bucket)."""
        return self.builtin and not config.convolutional

    # ---- membership -----------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        """Every member trained stacked, padded or not (not those trained one at a time)."""
        return [*self.dense.members, *self.modules.members]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def owner(self, key: Any) -> SubPopulation:
        """The part that trains the member named `key`; NoMember (a KeyError) if none does."""
        part = self._owners.get(key)
        if part is None:
            raise NoMember(key)
        return part

    def memory_in_use(self) -> int:
        return sum(part.memory_in_use() for part in self.parts)

    def has_room(self, config: Config) -> bool:
        """Whether `config` fits in the memory budget beside the current members."""
        part = self.dense if self.padded(config) else self.modules
        return self.memory_in_use() + part.member_bytes(config) <= self.memory_budget

    def add(
        self,
        key: Any,
        config: Config,
        *,
        seed: int,
        epochs: int | None = None,
        patience: int | None = None,
        keep_best_state: bool = False,
        until: float | None = None,
        fold: int | None = None,
    ) -> None:
        """Add a member; it starts training at the next segment boundary. `until`: stop at
        that many epochs for the caller's decision (see advance). `fold`: the fold it trains
        on, on cross-validated data (which every member of such data needs)."""
        check_fold(self.tensors, fold)
        if key in self._owners:
            raise ValueError(f"member {key!r} is already in this population")
        kind = Member if self.padded(config) else ModuleMember
        member = kind(key, config, seed, epochs or config.epochs, patience, keep_best_state)
        member.fold = fold
        member.until = math.inf if until is None else until
        member.segments_per_epoch = self.segments
        part = self._taker(member)
        part.add(member)
        self._owners[key] = part

    def _taker(self, member: Member | TrainingRun) -> SubPopulation:
        """The part a new member or a paused handle trains in."""
        for part in self.parts:
            if part.takes(member):
                return part
        raise TypeError(f"a {type(member).__name__} is not a member of a population")

    def pause(self, key: Any) -> Member | TrainingRun:
        """Take a member out with its training state kept (member.kept), to resume later; a
        member trained one at a time pauses as its TrainingRun. One that has not trained yet
        has no state to keep: NoMember (a KeyError); stop it instead."""
        paused = self.owner(key).pause(key)
        del self._owners[key]
        return paused

    def resume(self, member: Member | TrainingRun, until: float | None = None) -> None:
        """Bring a paused member back; it goes on from where it stopped."""
        part = self._taker(member)
        if member.key in self._owners:
            raise ValueError(f"member {member.key!r} is already in this population")
        part.resume(member, until)
        self._owners[member.key] = part

    def snapshot(self, key: Any) -> Member | TrainingRun | None:
        """A copy of a running member's state, as pause() would give it, the member left
        training; None for one that has not trained yet (nothing to keep)."""
        return self.owner(key).snapshot(key)

    def restore(self, snapshot: Snapshot, key: Any) -> Member | TrainingRun | None:
        """A paused member in a checkpoint's state, named `key`, for resume(): a member's
        into a bucket of this population, a training run's into its one-at-a-time part."""
        part = next((p for p in self.parts if p.kind == snapshot.kind), None)
        if part is None:
            raise ValueError(f"a {snapshot.kind!r} snapshot is not a population member's")
        return part.restore(snapshot, key)

    def running_result(self, key: Any) -> TrainResult:
        """A member's result so far, in place (its curve grows as it trains)."""
        return self.owner(key).running_result(key)

    def set_until(self, key: Any, until: float) -> None:
        self.owner(key).set_until(key, until)

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        """Remove a member now (between segments) and return its result."""
        result = self.owner(key).stop(key, status)
        del self._owners[key]
        return result

    # ---- training -------------------------------------------------------------------------

    def run_epoch(self, on_epoch: EpochCallback | None = None) -> list[tuple[Any, TrainResult]]:
        """One epoch of every member (members with no `until`); returns those that finished."""
        finished: list[tuple[Any, TrainResult]] = []
        for _ in range(self.segments):
            done, _at_target = self.advance(on_epoch)
            finished.extend(done)
        return finished

    def advance(
        self, on_epoch: EpochCallback | None = None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """One segment of every member. Returns the members that finished, with their
        results, and the checkpoints of those that reached their `until`: they wait, still in
        the population, for the caller to set_until, pause or stop them.

        For each member that did not diverge, `on_epoch(key, report)` decides at the end of
        each epoch whether it goes on (False: pruned), as the sequential trainer's callback.
        """
        for part in self.parts:
            part.admit()
        finished: list[tuple[Any, TrainResult]] = []
        at_target: list[Checkpoint] = []
        for part in self.parts:
            done, waiting = part.advance(on_epoch)
            finished.extend(done)
            at_target.extend(waiting)
        for key, _result in finished:
            del self._owners[key]
        return finished, at_target

    def train(
        self,
        configs: Iterable[tuple[Any, Config, int]],
        *,
        on_epoch: EpochCallback | None = None,
        patience: int | None = None,
        keep_best_state: bool = False,
    ) -> dict[Any, TrainResult]:
        """Train (key, config, seed) triples together until each finishes; results by key."""
        for key, config, seed in configs:
            self.add(key, config, seed=seed, patience=patience, keep_best_state=keep_best_state)
        results: dict[Any, TrainResult] = {}
        while len(self):
            results.update(self.run_epoch(on_epoch))
        return results
