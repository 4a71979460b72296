"""Members trained stacked in buckets: what the padded and the module parts of a population
share (padded_population.py, module_population.py).

New and resumed members wait in `pending` until the next segment boundary, when `admit` (each
part's own) places them into buckets. Every segment, each bucket trains its members one segment
(bucket_base.StackedBucket), measures them where an epoch or a member's `until` ends, and records
each member's epoch as the sequential trainer would: the same report, the same rules in the same
order (the caller's callback, patience, the last epoch), so that both engines agree on every
member's fate.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch

from ..config import Config
from .bucket_base import Member, StackedBucket
from .device_data import DeviceData
from .divergence import diverged
from .result import Checkpoint, EpochReport, TrainResult
from .sequential import failed
from .stacked_optim import UpdateKernel
from .subpopulation import NoMember, SubPopulation

if TYPE_CHECKING:
    from .protocol import EpochCallback
    from .snapshot import Snapshot

B = TypeVar("B", bound=StackedBucket[Any])

Finished = list[tuple[Any, TrainResult]]


@dataclass
class Tally:
    """What the stacked parts of one population count together: seconds per bucket, by (batch
    size, label: the padded widths, or the architecture), and member-epochs trained."""

    seconds: dict[tuple[int, tuple[Any, ...]], float] = field(default_factory=dict)
    epochs: float = 0.0  # fractions of an epoch included


@dataclass
class Segment:
    """What one bucket's segment measured, member by member: validation loss and metric (NaN
    where nothing was measured), the train metric (NaN unless tracked at an epoch's end), and
    each member's validation outputs (None where not measured)."""

    losses: list[float]
    val_losses: list[float]
    values: list[float]
    train_values: list[float]
    outputs: Callable[[int], torch.Tensor] | None
    seconds: float


class StackedPopulation(SubPopulation, Generic[B]):
    """Buckets of stacked members and the members waiting to join them (see the module)."""

    # A bucket that raises fails its members (a user's modules: their trials fail, the study
    # goes on) rather than the run
    user_code = False

    def __init__(
        self,
        tensors: DeviceData,
        kernel: UpdateKernel,
        tally: Tally,
        *,
        shuffle_seed: int,
        segments: int,
        track_train: bool,
    ) -> None:
        self.tensors = tensors
        self.kernel = kernel  # the population's: one optimizer kernel, compiled once
        self.tally = tally
        self.shuffle_seed = shuffle_seed
        self.segments = segments
        self.track_train = track_train
        self.buckets: list[B] = []
        self.pending: list[Member] = []  # join at the next segment boundary

    @abstractmethod
    def member_bytes(self, config: Config) -> int:
        """An estimate of one member's footprint here."""

    # ---- membership -----------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        return [*(m for b in self.buckets for m in b.members), *self.pending]

    def __len__(self) -> int:
        return sum(len(b.members) for b in self.buckets) + len(self.pending)

    def memory_in_use(self) -> int:
        return sum(self.member_bytes(m.config) for m in self.members)

    def add(self, member: Member) -> None:
        self.pending.append(member)

    def resume(self, paused: Member, until: float | None) -> None:
        paused.until = math.inf if until is None else until
        self.pending.append(paused)

    def _find(self, key: Any) -> tuple[Member, B | None]:
        """The member named `key` and its bucket (None while it waits to join)."""
        for bucket in self.buckets:
            for member in bucket.members:
                if member.key == key:
                    return member, bucket
        for member in self.pending:
            if member.key == key:
                return member, None
        raise NoMember(key)

    def set_until(self, key: Any, until: float) -> None:
        self._find(key)[0].until = until

    def running_result(self, key: Any) -> TrainResult:
        return self._find(key)[0].result

    def pause(self, key: Any) -> Member:
        """The member out of its bucket, its state kept (member.kept). One still waiting to
        join has trained nothing: pausing it is a NoMember error (stop it instead)."""
        member, bucket = self._find(key)
        if bucket is None:
            raise NoMember(key, "has not trained yet: there is no state to pause (stop it)")
        member.kept = bucket.keep(member)
        bucket.remove({key})
        self._drop_empty()
        return member

    def stop(self, key: Any, status: str) -> TrainResult:
        member, bucket = self._find(key)
        if bucket is None:
            self.pending.remove(member)
        else:
            bucket.remove({key})
            self._drop_empty()
        return _finish(member, status)

    def snapshot(self, key: Any) -> Member | None:
        from .capture import copy_member

        member, bucket = self._find(key)
        if bucket is not None:
            return copy_member(member, bucket.keep(member))
        return copy_member(member, member.kept) if member.kept is not None else None

    def restore(self, snapshot: Snapshot, key: Any) -> Member:
        from .capture import restore_member

        return restore_member(snapshot, key, self.tensors.device)

    def _drop_empty(self) -> None:
        self.buckets = [b for b in self.buckets if b.members]

    # ---- training -------------------------------------------------------------------------

    def advance(self, on_epoch: EpochCallback | None) -> tuple[Finished, list[Checkpoint]]:
        finished: Finished = []
        at_target: list[Checkpoint] = []
        for bucket in self.buckets:
            try:
                done, waiting = self._advance_bucket(bucket, on_epoch)
            except (Exception, SystemExit) as exc:
                if not self.user_code:
                    raise
                # a user's modules raised (or called sys.exit()) as they trained: the members
                # of this bucket share its architecture and hp values, and fail with it
                done, waiting = [(m.key, failed(m.result, exc)) for m in bucket.members], []
                bucket.remove({m.key for m in bucket.members})
            finished.extend(done)
            at_target.extend(waiting)
        self._drop_empty()
        return finished, at_target

    def _train_segment(self, bucket: B) -> Segment:
        """Train one segment of the bucket's members and measure what its end asks for:
        validation where an epoch or a member's `until` ends there, the train metric at an
        epoch's end when tracked."""
        members: list[Member] = list(bucket.members)
        nan = [math.nan] * len(members)
        started = time.perf_counter()
        losses = bucket.train_segment(self.shuffle_seed, self.segments).tolist()
        ends_epoch = members[0].segment + 1 == self.segments
        needs_validation = ends_epoch or any(
            m.epoch + (m.segment + 1) / self.segments >= m.until - 1e-9 for m in members
        )
        measured = bucket.measure("val") if needs_validation else None
        train_values = (
            bucket.evaluate("train_sample")[1].tolist() if ends_epoch and self.track_train else nan
        )
        if measured is None:
            return Segment(losses, nan, nan, train_values, None, time.perf_counter() - started)
        return Segment(
            losses,
            measured.losses.tolist(),
            measured.values.tolist(),
            train_values,
            measured.own,
            time.perf_counter() - started,
        )

    def _advance_bucket(
        self, bucket: B, on_epoch: EpochCallback | None
    ) -> tuple[Finished, list[Checkpoint]]:
        """One segment of one bucket's members: those that left and those at their `until`."""
        members: list[Member] = list(bucket.members)
        if any(m.epochs_done >= m.until - 1e-9 for m in members):
            raise RuntimeError("a member waits at its checkpoint: set_until, pause or stop it")
        segment = self._train_segment(bucket)
        seconds_key = (bucket.batch_size, bucket.label)
        self.tally.seconds[seconds_key] = self.tally.seconds.get(seconds_key, 0.0) + segment.seconds
        self.tally.epochs += len(members) / self.segments
        leaving: dict[Any, str] = {}
        at_target: list[Checkpoint] = []
        for i, member in enumerate(members):
            member.segment += 1
            member.loss_sum += segment.losses[i]
            member.epoch_seconds += segment.seconds / len(members)
            status = None
            own = segment.outputs
            outputs = (lambda i=i, own=own: own(i)) if own is not None else None
            if member.segment == self.segments:
                measured = (segment.val_losses[i], segment.values[i], segment.train_values[i])
                status = self._end_epoch(bucket, member, measured, outputs)
                status = status or _decide(member, on_epoch)
            elif not math.isfinite(member.loss_sum):  # diverged inside an epoch
                measured = (segment.val_losses[i], segment.values[i], math.nan)
                status = self._end_epoch(bucket, member, measured, outputs)
            if status is not None:
                leaving[member.key] = status
            elif member.epochs_done >= member.until - 1e-9:
                spent = member.result.seconds + member.epoch_seconds
                value = segment.values[i]
                at_target.append(Checkpoint(member.key, member.epochs_done, value, spent))
        finished = [(m.key, _finish(m, leaving[m.key])) for m in bucket.remove(set(leaving))]
        return finished, at_target

    def _end_epoch(
        self,
        bucket: B,
        member: Member,
        measured: tuple[float, float, float],
        outputs: Callable[[], torch.Tensor] | None = None,
    ) -> str | None:
        """Record the member's epoch from its measured (validation loss, validation metric,
        train metric); "diverged" when its training loss is not finite. `outputs`: its
        validation outputs, kept with its best state."""
        member.epoch += 1
        member.segment = 0
        val_loss, value, train_metric = measured
        train_loss = member.loss_sum / self.tensors.n_train
        report = EpochReport(
            member.epoch,
            train_loss,
            val_loss,
            value,
            member.epoch_seconds,
            train_metric if math.isfinite(train_loss) else math.nan,
        )
        member.loss_sum, member.epoch_seconds = 0.0, 0.0
        result = member.result
        result.history.append(report)
        result.seconds += report.seconds
        if diverged(result, member.config.loss, self.tensors):
            result.diverged_epoch = report.epoch
            return "diverged"
        improved = self.tensors.metric.improves(result.best_value, report.val_metric)
        if improved:
            result.best_value, result.best_epoch = report.val_metric, report.epoch
        if member.keep_best_state and (improved or member.fold is not None):
            state = bucket.member_state(member)
            kept = outputs().detach().cpu().numpy() if outputs is not None else None
            # a fold member keeps its latest epoch: its trial (folds.py) says which it delivers
            if member.fold is not None:
                result.last_state, result.last_outputs = state, kept
            else:
                result.best_state, result.best_outputs = state, kept
        return None


def _decide(member: Member, on_epoch: EpochCallback | None) -> str | None:
    """The end-of-epoch rules, in the sequential trainer's order, so both engines agree on
    every member's fate: the caller's callback, patience, the last epoch."""
    result = member.result
    report = result.history[-1]
    if on_epoch is not None and not on_epoch(member.key, report):
        return "pruned"
    patience = member.patience
    if patience is not None and report.epoch - (result.best_epoch or 0) >= patience:
        result.stopped_early = True
        return "complete"
    if member.epoch >= member.max_epochs:
        return "complete"
    return None


def _finish(member: Member, status: str) -> TrainResult:
    result = member.result
    result.status = status
    return result
