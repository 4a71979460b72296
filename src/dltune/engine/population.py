"""The population engine: many configurations trained at once, joining and leaving at epochs.

Members are grouped into buckets (bucket.py) by batch size and depth, with each hidden layer's
width rounded up to a point of a ladder (four points per octave: 16, 20, 24, 28, 32, 40, ...),
so that similar shapes share a bucket and padding wastes at most a quarter of a layer's width.
Padding with masks beats exact-shape buckets here because the default space's widths are so
diverse that exact buckets would hold one member each; see benchmarks/RESULTS.md.

Every epoch boundary is a decision point: each member's validation metric is reported through a
callback, which may stop it (pruned); members that ran their epochs, stopped on a plateau or
diverged leave; new members may join. No member's results depend on the others: each draws
from its own generators and data order, and stacked members share no parameters.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from ..config import Config
from .bucket import Bucket, Member
from .device_data import DeviceData
from .memory import member_bytes, resolve_memory
from .result import EpochReport, TrainResult

if TYPE_CHECKING:
    from ..data import Dataset

EpochDecision = Callable[[Any, EpochReport], bool]  # (member key, report) -> keep training?


def ladder_width(width: int) -> int:
    """The smallest point of the width ladder at or above `width` (4 points per octave)."""
    if width <= 4:
        return width
    octave = 1 << (width.bit_length() - 1)  # the power of two at or below width
    for quarter in (4, 5, 6, 7, 8):
        point = octave * quarter // 4
        if point >= width:
            return point
    return 2 * octave  # pragma: no cover - 8 quarters of an octave reach the next octave


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
    ) -> None:
        self.tensors = DeviceData(data, metric=metric, device=device)
        self.data = data
        self.metric = self.tensors.metric
        self.shuffle_seed = shuffle_seed
        self.memory_budget = resolve_memory(memory, self.tensors.device)
        self.pad_widths = pad_widths
        # How many times its own arithmetic a member may cost once padded into a wider bucket
        # (1: only the width ladder's rounding). See _plan.
        self.max_padding = max_padding
        self.buckets: dict[tuple[int, tuple[int, ...]], Bucket] = {}
        self.pending: list[Member] = []  # join at the next epoch boundary
        self.bucket_seconds: dict[tuple[int, tuple[int, ...]], float] = {}

    # ---- membership -----------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        return [m for b in self.buckets.values() for m in b.members] + self.pending

    def __len__(self) -> int:
        return len(self.members)

    def memory_in_use(self) -> int:
        return sum(self._member_bytes(m.config) for m in self.members)

    def _member_bytes(self, config: Config) -> int:
        return member_bytes(
            config, self.tensors.n_features, self.tensors.n_outputs, self._bucket_key(config)[1]
        )

    def has_room(self, config: Config) -> bool:
        """Whether `config` fits in the memory budget beside the current members."""
        return self.memory_in_use() + self._member_bytes(config) <= self.memory_budget

    def _bucket_key(self, config: Config) -> tuple[int, tuple[int, ...]]:
        widths = tuple(ladder_width(u) for u in config.units) if self.pad_widths else config.units
        return config.batch_size, widths

    def add(
        self,
        key: Any,
        config: Config,
        *,
        seed: int,
        epochs: int | None = None,
        patience: int | None = None,
        keep_best_state: bool = False,
    ) -> None:
        """Add a member; it starts training at the next epoch boundary."""
        self.pending.append(
            Member(key, config, seed, epochs or config.epochs, patience, keep_best_state)
        )

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        """Remove a member now (between epochs) and return its result."""
        for bucket in self.buckets.values():
            gone = bucket.remove({key})
            if gone:
                self._drop_empty()
                return self._finish(gone[0], status)
        for member in self.pending:
            if member.key == key:
                self.pending.remove(member)
                return self._finish(member, status)
        raise KeyError(key)

    def _drop_empty(self) -> None:
        self.buckets = {k: b for k, b in self.buckets.items() if b.members}

    @staticmethod
    def _finish(member: Member, status: str) -> TrainResult:
        result = member.result
        result.status = status
        return result

    def _admit_pending(self) -> None:
        """Place the waiting members: into an open bucket of their batch size and depth whose
        widths hold theirs at a bounded padding cost, or into new buckets (see _plan)."""
        for member in self.pending:
            bucket = self._bucket_for(member.config)
            if bucket is not None:
                bucket.add([member])
        rest = [m for m in self.pending if not any(m in b.members for b in self.buckets.values())]
        for widths, members in self._plan(rest):
            key = (members[0].config.batch_size, widths)
            if key in self.buckets:
                self.buckets[key].add(members)
            else:
                self.buckets[key] = Bucket(self.tensors, key[0], widths)
                self.buckets[key].add(members)
        self.pending = []

    def _own_widths(self, config: Config) -> tuple[int, ...]:
        return tuple(ladder_width(u) for u in config.units) if self.pad_widths else config.units

    def _cost(self, widths: tuple[int, ...]) -> int:
        """Multiply-adds per row of a network of these widths (the padding's measure)."""
        dims = (self.tensors.n_features, *widths, self.tensors.n_outputs)
        return sum(a * b for a, b in itertools.pairwise(dims))

    def _fits(self, config: Config, widths: tuple[int, ...]) -> bool:
        own = self._own_widths(config)
        return (
            len(own) == len(widths)
            and all(a <= b for a, b in zip(own, widths, strict=True))
            and self._cost(widths) <= self.max_padding * self._cost(own)
        )

    def _bucket_for(self, config: Config) -> Bucket | None:
        candidates = [
            b
            for (batch, widths), b in self.buckets.items()
            if batch == config.batch_size and self._fits(config, widths)
        ]
        return min(candidates, key=lambda b: self._cost(b.widths), default=None)

    def _plan(self, members: list[Member]) -> list[tuple[tuple[int, ...], list[Member]]]:
        """Group members of one batch size and depth into buckets, widest first: a bucket takes
        every member whose cost padded to its widths is at most max_padding times its own.

        Padding wastes arithmetic but shares the per-step overhead, which is what small
        networks spend their time on; max_padding bounds the waste.
        """
        groups: dict[tuple[int, int], list[Member]] = {}
        for member in members:
            groups.setdefault((member.config.batch_size, member.config.layers), []).append(member)
        plan = []
        for group in groups.values():
            left = sorted(group, key=lambda m: -self._cost(self._own_widths(m.config)))
            while left:
                widths = self._own_widths(left[0].config)
                taken = [m for m in left if self._fits(m.config, widths)]
                plan.append((widths, taken))
                left = [m for m in left if m not in taken]
        return plan

    # ---- training -------------------------------------------------------------------------

    def run_epoch(self, on_epoch: EpochDecision | None = None) -> list[tuple[Any, TrainResult]]:
        """One epoch of every member; returns the members that finished, with their results.

        For each member that did not diverge, `on_epoch(key, report)` decides whether it goes
        on (False: pruned), as the sequential trainer's callback does.
        """
        self._admit_pending()
        finished: list[tuple[Any, TrainResult]] = []
        for key, bucket in list(self.buckets.items()):
            started = time.perf_counter()
            train_losses = bucket.train_epoch(self.shuffle_seed).tolist()
            val_losses, values = (t.tolist() for t in bucket.evaluate("val"))
            seconds = time.perf_counter() - started
            self.bucket_seconds[key] = self.bucket_seconds.get(key, 0.0) + seconds
            leaving: dict[Any, str] = {}
            for i, member in enumerate(bucket.members):
                member.epoch += 1
                report = EpochReport(
                    member.epoch,
                    train_losses[i],
                    val_losses[i],
                    values[i],
                    seconds / len(bucket.members),
                )
                status = self._record(bucket, member, report, on_epoch)
                if status is not None:
                    leaving[member.key] = status
            for member in bucket.remove(set(leaving)):
                finished.append((member.key, self._finish(member, leaving[member.key])))
        self._drop_empty()
        return finished

    def _record(
        self, bucket: Bucket, member: Member, report: EpochReport, on_epoch: EpochDecision | None
    ) -> str | None:
        """Add an epoch to a member's curve; the status it leaves with, or None to go on.

        The order of the checks is the sequential trainer's, so both engines agree on every
        member's fate.
        """
        result = member.result
        result.history.append(report)
        result.seconds += report.seconds
        if not math.isfinite(report.train_loss):
            result.diverged_epoch = report.epoch
            return "diverged"
        if self.metric.improves(result.best_value, report.val_metric):
            result.best_value, result.best_epoch = report.val_metric, report.epoch
            if member.keep_best_state:
                result.best_state = bucket.member_state(member)
        if on_epoch is not None and not on_epoch(member.key, report):
            return "pruned"
        patience = member.patience
        if patience is not None and report.epoch - (result.best_epoch or 0) >= patience:
            result.stopped_early = True
            return "complete"
        if member.epoch >= member.max_epochs:
            return "complete"
        return None

    def train(
        self,
        configs: Iterable[tuple[Any, Config, int]],
        *,
        on_epoch: EpochDecision | None = None,
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
