"""The population engine: many configurations trained at once, joining and leaving at epochs.

Members are grouped into buckets (bucket.py) by batch size and depth, with each hidden layer's
width rounded up to a point of a ladder (four points per octave: 16, 20, 24, 28, 32, 40, ...),
so that similar shapes share a bucket and padding wastes at most a quarter of a layer's width.
Padding with masks beats exact-shape buckets here because the default space's widths are so
diverse that exact buckets would hold one member each; see benchmarks/RESULTS.md.

Every epoch boundary is a decision point: each member's validation metric is reported through a
callback, which may stop it (pruned); members that ran their epochs, stopped on a plateau or
diverged leave; new members may join. A member may also be given a point (`until`, in epochs,
possibly inside an epoch: see `segments`) where it waits for its caller to let it go on, pause
it with its state kept, or stop it: successive halving's rungs. No member's results depend on
the others: each draws from its own generators and data order, and stacked members share no
parameters.

Networks that cannot be padded (the convolutional family, a user's module from a
NetworkFactory) stack only with members of exactly their shapes, through torch.func
(module_population.py, module_bucket.py, functional.py); an architecture whose forward cannot
be stacked trains one member at a time, and `notes` says why. Dense configurations of the
built-in family take the padded path as before.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from ..config import Config
from ..nets import BuiltinNetworks, NetworkFactory
from .bucket import Bucket, Member, pause_member
from .device_data import DeviceData, check_fold
from .memory import member_bytes, resolve_memory
from .module_bucket import ModuleBucket, ModuleMember
from .module_population import ModulePopulation
from .protocol import EpochCallback
from .result import Checkpoint, EpochReport, TrainResult
from .sequential import TrainingRun, failed
from .stacked_optim import UpdateKernel

if TYPE_CHECKING:
    from ..data import Dataset
    from .snapshot import Snapshot


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
        self.pad_widths = pad_widths
        # How many times its own arithmetic a member may cost once padded into a wider bucket
        # (1: only the width ladder's rounding). See _plan.
        self.max_padding = max_padding
        self.segments = segments  # an epoch's parts: the finest point where a member can stop
        # The optimizer update, compiled once this trainer has done enough eager work.
        self.kernel = UpdateKernel()
        self.buckets: list[Bucket] = []
        self.pending: list[Member] = []  # join at the next segment boundary
        # Seconds per bucket: (batch size, padded widths), or (batch size, (architecture,))
        self.bucket_seconds: dict[tuple[int, tuple[Any, ...]], float] = {}
        self._epochs = 0.0  # member-epochs of the buckets, fractions included
        # What builds every configuration's module, as SequentialTrainer's `network`; the
        # padded path serves the built-in dense network only.
        self.network: NetworkFactory = network or BuiltinNetworks(data.input_shape)
        self.modules = ModulePopulation(
            data,
            self.tensors,
            self.network,
            builtin=isinstance(self.network, BuiltinNetworks),
            kernel=self.kernel,
            shuffle_seed=shuffle_seed,
            segments=segments,
            track_train=track_train,
        )

    @property
    def epochs_trained(self) -> float:
        """Member-epochs trained (the epoch budget's), the one-at-a-time members' included."""
        alone = self.modules.sequential
        return self._epochs + (alone.epochs_trained if alone is not None else 0.0)

    @property
    def notes(self) -> list[str]:
        """What the user should know about how members trained (an architecture that could
        not be stacked, and why), once each."""
        return self.modules.notes

    def padded(self, config: Config) -> bool:
        """Whether `config` takes the padded dense path (else an exact-shape module bucket)."""
        return isinstance(self.network, BuiltinNetworks) and not config.convolutional

    # ---- membership -----------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        """Every member trained stacked, padded or not (not those trained one at a time)."""
        return [m for b in self.buckets for m in b.members] + self.pending + self.modules.members

    def __len__(self) -> int:
        return len([m for b in self.buckets for m in b.members] + self.pending) + len(self.modules)

    def memory_in_use(self) -> int:
        dense = [m for b in self.buckets for m in b.members] + self.pending
        return sum(self._member_bytes(m.config) for m in dense) + self.modules.memory_in_use()

    def _member_bytes(self, config: Config) -> int:
        if not self.padded(config):
            return self.modules.member_bytes(config)
        return member_bytes(
            config, self.tensors.n_features, self.tensors.n_outputs, self._own_widths(config)
        )

    def has_room(self, config: Config) -> bool:
        """Whether `config` fits in the memory budget beside the current members."""
        return self.memory_in_use() + self._member_bytes(config) <= self.memory_budget

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
        kind = Member if self.padded(config) else ModuleMember
        member = kind(key, config, seed, epochs or config.epochs, patience, keep_best_state)
        member.fold = fold
        member.until = math.inf if until is None else until
        member.segments_per_epoch = self.segments
        if isinstance(member, ModuleMember):
            self.modules.add(member)
        else:
            self.pending.append(member)

    def pause(self, key: Any) -> Member | TrainingRun:
        """Take a member out with its training state kept (member.kept), to resume later; a
        member trained one at a time pauses as its TrainingRun."""
        member = pause_member(self.buckets, key)
        if member is not None:
            self._drop_empty()
            return member
        paused = self.modules.pause(key)
        if paused is None:
            raise KeyError(key)
        return paused

    def resume(self, member: Member | TrainingRun, until: float | None = None) -> None:
        """Bring a paused member back; it goes on from where it stopped."""
        if isinstance(member, TrainingRun):  # paused from, or restored into, the one-at-a-time
            self.modules.alone().resume(member, until)
            return
        member.until = math.inf if until is None else until
        if isinstance(member, ModuleMember):
            self.modules.pending.append(member)
        else:
            self.pending.append(member)

    def snapshot(self, key: Any) -> Member | TrainingRun | None:
        """A copy of a running member's state, as pause() would give it, the member left
        training; None for one that has not trained yet (nothing to keep)."""
        from .capture import copy_member

        buckets: list[Bucket | ModuleBucket] = [*self.buckets, *self.modules.buckets]
        for bucket in buckets:
            for member in bucket.members:
                if member.key == key:
                    return copy_member(member, bucket.keep(member))
        for member in [*self.pending, *self.modules.pending]:
            if member.key == key:
                return copy_member(member, member.kept) if member.kept is not None else None
        alone = self.modules.sequential
        if alone is not None and key in alone.runs:
            return alone.snapshot(key)
        raise KeyError(key)

    def restore(self, snapshot: Snapshot, key: Any) -> Member | TrainingRun | None:
        """A paused member in a checkpoint's state, named `key`, for resume(): a member's
        into a bucket of this population, a training run's into its one-at-a-time engine."""
        from .capture import restore_member

        if snapshot.kind == "run":
            return self.modules.alone().restore(snapshot, key)
        member = restore_member(snapshot, key, self.tensors.device)
        if isinstance(member, ModuleMember):
            member.signature = self.modules.architecture(member.config).signature
        return member

    def running_result(self, key: Any) -> TrainResult:
        """A member's result so far, in place (its curve grows as it trains)."""
        for member in [*self.members]:
            if member.key == key:
                return member.result
        alone = self.modules.sequential
        if alone is not None and key in alone.runs:
            return alone.runs[key].result
        raise KeyError(key)

    def set_until(self, key: Any, until: float) -> None:
        for member in [m for b in self.buckets for m in b.members] + self.pending:
            if member.key == key:
                member.until = until
                return
        if not self.modules.set_until(key, until):
            raise KeyError(key)

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        """Remove a member now (between segments) and return its result."""
        for bucket in self.buckets:
            gone = bucket.remove({key})
            if gone:
                self._drop_empty()
                return self._finish(gone[0], status)
        for member in self.pending:
            if member.key == key:
                self.pending.remove(member)
                return self._finish(member, status)
        result = self.modules.stop(key, status)
        if result is None:
            raise KeyError(key)
        return result

    def _drop_empty(self) -> None:
        self.buckets = [b for b in self.buckets if b.members]
        self.modules.drop_empty()

    @staticmethod
    def _finish(member: Member, status: str) -> TrainResult:
        result = member.result
        result.status = status
        return result

    def _admit_pending(self) -> None:
        """Place the waiting members: into an open bucket of their batch size, depth and
        segment whose widths hold theirs at a bounded padding cost, or into new buckets."""
        rest = []
        for member in self.pending:
            bucket = self._bucket_for(member)
            if bucket is not None:
                bucket.add([member])
            else:
                rest.append(member)
        for widths, members in self._plan(rest):
            bucket = Bucket(self.tensors, members[0].config.batch_size, widths, self.kernel)
            bucket.add(members)
            self.buckets.append(bucket)
        self.pending = []
        self.modules.admit()

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

    def _bucket_for(self, member: Member) -> Bucket | None:
        candidates = [
            b
            for b in self.buckets
            if b.batch_size == member.config.batch_size
            and b.segment == member.segment
            and self._fits(member.config, b.widths)
        ]
        return min(candidates, key=lambda b: self._cost(b.widths), default=None)

    def _plan(self, members: list[Member]) -> list[tuple[tuple[int, ...], list[Member]]]:
        """Group members of one batch size, depth and segment into buckets, widest first: a
        bucket takes every member whose cost padded to its widths is at most max_padding
        times its own.

        Padding wastes arithmetic but shares the per-step overhead, which is what small
        networks spend their time on; max_padding bounds the waste.
        """
        groups: dict[tuple[int, int, int], list[Member]] = {}
        for member in members:
            config = member.config
            groups.setdefault((config.batch_size, config.layers, member.segment), []).append(member)
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
        self._admit_pending()
        finished: list[tuple[Any, TrainResult]] = []
        at_target: list[Checkpoint] = []
        buckets: list[Bucket | ModuleBucket] = [*self.buckets, *self.modules.buckets]
        for bucket in buckets:
            try:
                done, waiting = self._advance_bucket(bucket, on_epoch)
            except (Exception, SystemExit) as exc:
                if isinstance(bucket, Bucket) or self.modules.builtin:
                    raise
                # a user's modules raised (or called sys.exit()) as they trained: the members
                # of this bucket share its architecture and hp values, and fail with it
                done, waiting = [(m.key, failed(m.result, exc)) for m in bucket.members], []
                bucket.remove({m.key for m in bucket.members})
            finished.extend(done)
            at_target.extend(waiting)
        self._drop_empty()
        if self.modules.sequential is not None:  # the architectures that train one at a time
            done, waiting = self.modules.sequential.advance(on_epoch)
            finished.extend(done)
            at_target.extend(waiting)
        return finished, at_target

    def _advance_bucket(
        self, bucket: Bucket | ModuleBucket, on_epoch: EpochCallback | None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """One segment of one bucket's members: those that left and those at their `until`."""
        finished: list[tuple[Any, TrainResult]] = []
        at_target: list[Checkpoint] = []
        n_train = self.tensors.n_train
        members: list[Member] = list(bucket.members)
        if any(m.epochs_done >= m.until - 1e-9 for m in members):
            raise RuntimeError("a member waits at its checkpoint: set_until, pause or stop it")
        started = time.perf_counter()
        segment_losses = bucket.train_segment(self.shuffle_seed, self.segments).tolist()
        ends_epoch = members[0].segment + 1 == self.segments
        needs_validation = ends_epoch or any(
            m.epoch + (m.segment + 1) / self.segments >= m.until - 1e-9 for m in members
        )
        measured = bucket.measure("val") if needs_validation else None
        val_losses, values = (
            (measured.losses.tolist(), measured.values.tolist())
            if measured is not None
            else ([math.nan] * len(members), [math.nan] * len(members))
        )
        train_values = (
            bucket.evaluate("train_sample")[1].tolist()
            if ends_epoch and self.track_train
            else [math.nan] * len(members)
        )
        seconds = time.perf_counter() - started
        label = bucket.widths if isinstance(bucket, Bucket) else bucket.label
        seconds_key = (bucket.batch_size, label)
        self.bucket_seconds[seconds_key] = self.bucket_seconds.get(seconds_key, 0.0) + seconds
        self._epochs += len(members) / self.segments
        leaving: dict[Any, str] = {}
        for i, member in enumerate(members):
            member.segment += 1
            member.loss_sum += segment_losses[i]
            member.epoch_seconds += seconds / len(members)
            status = None
            outputs = (lambda i=i: measured.own(i)) if measured is not None else None
            if member.segment == self.segments:
                status = self._end_epoch(
                    bucket, member, n_train, (val_losses[i], values[i], train_values[i]), outputs
                )
                status = status or self._decide(member, on_epoch)
            elif not math.isfinite(member.loss_sum):  # diverged inside an epoch
                status = self._end_epoch(
                    bucket, member, n_train, (val_losses[i], values[i], math.nan), outputs
                )
            if status is not None:
                leaving[member.key] = status
            elif member.epochs_done >= member.until - 1e-9:
                spent = member.result.seconds + member.epoch_seconds
                at_target.append(Checkpoint(member.key, member.epochs_done, values[i], spent))
        for gone in bucket.remove(set(leaving)):
            finished.append((gone.key, self._finish(gone, leaving[gone.key])))
        return finished, at_target

    def _end_epoch(
        self,
        bucket: Bucket | ModuleBucket,
        member: Member,
        n_train: int,
        measured: tuple[float, float, float],
        outputs: Callable[[], torch.Tensor] | None = None,
    ) -> str | None:
        """Record the member's epoch from its measured (validation loss, validation metric,
        train metric); "diverged" when its training loss is not finite. `outputs`: its
        validation outputs, kept with its best state."""
        member.epoch += 1
        member.segment = 0
        val_loss, value, train_metric = measured
        train_loss = member.loss_sum / n_train
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
        if not math.isfinite(report.train_loss):
            result.diverged_epoch = report.epoch
            return "diverged"
        improved = self.metric.improves(result.best_value, report.val_metric)
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

    @staticmethod
    def _decide(member: Member, on_epoch: EpochCallback | None) -> str | None:
        """The end-of-epoch rules, in the sequential trainer's order, so both engines agree
        on every member's fate: the caller's callback, patience, the last epoch."""
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
