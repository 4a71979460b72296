"""The one-at-a-time part of a population: members whose architecture cannot be stacked (its
forward defeats vmap: module_population.py says which, and why), trained in a sequential
engine (the sequential trainer's TrainingRun, with the population's network factory). The
engine is made when the first such member comes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..nets import NetworkFactory
from .bucket_base import Member
from .device_data import DeviceData
from .module_bucket import ModuleMember
from .result import Checkpoint, TrainResult
from .sequential import SequentialEngine, SequentialTrainer, TrainingRun
from .subpopulation import NoMember, SubPopulation

if TYPE_CHECKING:
    from ..data import Dataset
    from .protocol import EpochCallback
    from .snapshot import Snapshot


class OneAtATime(SubPopulation):
    """Members trained one at a time, each a TrainingRun of a sequential engine."""

    kind = "run"

    def __init__(
        self,
        data: Dataset,
        tensors: DeviceData,
        network: NetworkFactory,
        member_bytes: Callable[[Config], int],
        *,
        shuffle_seed: int,
        segments: int,
        track_train: bool,
    ) -> None:
        self.data = data
        self.tensors = tensors
        self.network = network
        self.member_bytes = member_bytes  # the module part's estimate (one architecture's)
        self.shuffle_seed = shuffle_seed
        self.segments = segments
        self.track_train = track_train
        self._engine: SequentialEngine | None = None

    @property
    def engine(self) -> SequentialEngine:
        """The sequential engine of these members, made when the first comes."""
        if self._engine is None:
            trainer = SequentialTrainer(
                self.data,
                metric=self.tensors.metric.name,
                device=self.tensors.device,
                shuffle_seed=self.shuffle_seed,
                track_train=self.track_train,
                network=self.network,
            )
            self._engine = SequentialEngine(trainer, self.segments)
        return self._engine

    @property
    def runs(self) -> dict[Any, TrainingRun]:
        return self._engine.runs if self._engine is not None else {}

    @property
    def epochs_trained(self) -> float:
        return self._engine.epochs_trained if self._engine is not None else 0.0

    def __len__(self) -> int:
        return len(self.runs)

    def memory_in_use(self) -> int:
        return sum(self.member_bytes(run.config) for run in self.runs.values())

    def takes(self, member: Any) -> bool:
        """A training run, or a module member the module part would not take."""
        return isinstance(member, (TrainingRun, ModuleMember))

    def add(self, member: Member) -> None:
        config = member.config
        if member.max_epochs != config.epochs:
            config = config.replace(epochs=member.max_epochs)
        self.engine.add(
            member.key,
            config,
            seed=member.seed,
            patience=member.patience,
            keep_best_state=member.keep_best_state,
            until=None if math.isinf(member.until) else member.until,
            fold=member.fold,
        )

    def resume(self, paused: Any, until: float | None) -> None:
        if isinstance(paused, TrainingRun):
            self.engine.resume(paused, until)
            return
        # A stacked member's state does not fit a training run: it starts again from its seed
        # (a checkpoint of a stacked member, restored where its architecture cannot stack).
        paused.until = math.inf if until is None else until
        self.add(paused)

    def advance(
        self, on_epoch: EpochCallback | None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        if self._engine is None:
            return [], []
        return self._engine.advance(on_epoch)

    def _run(self, key: Any) -> TrainingRun:
        run = self.runs.get(key)
        if run is None:
            raise NoMember(key)
        return run

    def set_until(self, key: Any, until: float) -> None:
        self._run(key).until = until

    def pause(self, key: Any) -> TrainingRun:
        self._run(key)
        return self.engine.pause(key)

    def stop(self, key: Any, status: str) -> TrainResult:
        self._run(key)
        return self.engine.stop(key, status)

    def snapshot(self, key: Any) -> TrainingRun | None:
        self._run(key)
        return self.engine.snapshot(key)

    def restore(self, snapshot: Snapshot, key: Any) -> TrainingRun | None:
        return self.engine.restore(snapshot, key)

    def running_result(self, key: Any) -> TrainResult:
        return self._run(key).result
