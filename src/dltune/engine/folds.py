"""Cross-validated trials: each trial is K fold members, trained by another engine, seen by the
study loop as one trial.

`FoldEngine` wraps any engine (sequential, population, Ray) over cross-validated data
(data.folds). Adding a trial adds its K fold members to the inner engine at once, each with its
own seed (weights and dropout), its fold's training rows and data order; they share one
configuration, so the population engine stacks them into one bucket (the same shape), and they
stay in step: the same segments, the same rungs. The loop sees one trial whose every epoch is
the mean over its folds: that mean is what it reports, what successive halving ranks at a rung,
and what patience watches. Pausing, resuming, stopping, checkpointing and restoring a trial do
the same to its K members; its result carries each fold's own (`TrainResult.folds`), whose best
outputs are the trial's out-of-fold predictions.

A fold member that diverges makes its trial diverged (the others are stopped): a configuration
that diverges on one fold of the data is not one to deliver.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .result import Checkpoint, EpochReport, TrainResult
from .snapshot import Snapshot, SnapshotError, fold_parts, folds_snapshot

if TYPE_CHECKING:
    from ..config import Config
    from .losses import Metric
    from .protocol import EpochCallback, LocalEngine

FOLD_SEED_STRIDE = 7_919_179  # fold f's seed: the trial's + f x this, mod 2**31 - 1


@dataclass(frozen=True)
class FoldKey:
    """A fold member's name in the inner engine: its trial's key and its fold."""

    trial: Any
    fold: int


def fold_seed(seed: int, fold: int) -> int:
    """Fold `fold`'s seed of a trial of seed `seed` (fold 0 keeps the trial's own)."""
    return (seed + fold * FOLD_SEED_STRIDE) % (2**31 - 1)


@dataclass
class _Trial:
    """What the wrapper knows of a trial beyond its members: each fold's curve so far, the
    mean curve reported, its best, its patience, and the folds that already ended."""

    patience: int | None
    folds: dict[int, list[EpochReport]] = field(default_factory=dict)  # fold -> its epochs
    history: list[EpochReport] = field(default_factory=list)  # the means reported
    best_value: float | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    ended: dict[int, TrainResult] = field(default_factory=dict)  # fold -> its result


class FoldTrial:
    """A paused (or snapshot) cross-validated trial: its K members' handles and its state."""

    def __init__(self, key: Any, parts: list[Any], state: _Trial, metric: Metric) -> None:
        self.key = key
        self.parts = parts
        self.state = state
        self.metric = metric

    @property
    def result(self) -> TrainResult:
        return combine([p.result for p in self.parts], self.state, "pruned")

    def snapshot(self) -> Snapshot:
        """Its members' snapshots as one (snapshot.folds_snapshot)."""
        from .capture import snapshot_of

        parts = [snapshot_of(p) for p in self.parts]
        return folds_snapshot(parts, self.state.history, self.state.patience)


def mean(values: list[float]) -> float:
    """The mean of the folds' values; NaN if any is not a number (unknown or diverged)."""
    return statistics.fmean(values) if all(math.isfinite(v) for v in values) else math.nan


def mean_report(reports: list[EpochReport]) -> EpochReport:
    """One epoch of a trial from its folds' reports of it: means, and the folds' seconds."""
    return EpochReport(
        reports[0].epoch,
        mean([r.train_loss for r in reports]),
        mean([r.val_loss for r in reports]),
        mean([r.val_metric for r in reports]),
        sum(r.seconds for r in reports),
        mean([r.train_metric for r in reports]),
    )


def combine(results: list[TrainResult], state: _Trial, status: str) -> TrainResult:
    """A trial's result from its folds': the mean curve reported, its best, each fold's own."""
    history = list(state.history)
    diverged = [r for r in results if r.status == "diverged"]
    broken = [r for r in results if r.status == "failed"]
    combined = TrainResult(
        status="failed" if broken else "diverged" if diverged else status,
        error=broken[0].error if broken else None,
        history=history,
        best_epoch=state.best_epoch,
        best_value=state.best_value,
        stopped_early=state.stopped_early,
        seconds=sum(r.seconds for r in results),
        folds=list(results),
        start_loss=mean([r.start_loss for r in results]),
    )
    if diverged:
        epoch = min(r.diverged_epoch or r.epochs_run for r in diverged)
        combined.diverged_epoch = epoch
        rows = [r.history[epoch - 1] for r in results if len(r.history) >= epoch]
        if len(history) < epoch and rows:
            combined.history = [*history, mean_report(rows)]
    return combined


class FoldEngine:
    """Trains cross-validated trials as K fold members of `inner` (see the module's note)."""

    def __init__(self, inner: LocalEngine[Any], k: int, metric: Metric) -> None:
        self.inner = inner
        self.k = k
        self.metric = metric
        self.running: dict[Any, _Trial] = {}

    @property
    def epochs_trained(self) -> float:
        """Member-epochs: a trial's epoch counts K (the folds' compute)."""
        return float(self.inner.epochs_trained)

    @property
    def notes(self) -> list[str]:
        return list(getattr(self.inner, "notes", []))

    @property
    def slots(self) -> int:
        return int(getattr(self.inner, "slots", 1))

    def __len__(self) -> int:
        return len(self.running)

    def has_room(self, config: Config) -> bool:
        return self.inner.has_room(config)

    def _keys(self, key: Any) -> list[FoldKey]:
        state = self.running[key]
        return [FoldKey(key, f) for f in range(self.k) if f not in state.ended]

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
        """Start the trial's K fold members; patience is applied to their mean (here)."""
        for fold in range(self.k):
            self.inner.add(  # type: ignore[call-arg]
                FoldKey(key, fold),
                config,
                seed=fold_seed(seed, fold),
                keep_best_state=keep_best_state,
                until=until,
                fold=fold,
            )
        self.running[key] = _Trial(patience)

    def advance(
        self, on_epoch: EpochCallback | None = None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """One segment of every member; the trials that ended and those at a checkpoint,
        each epoch's fold mean reported to `on_epoch` once all its folds have it."""

        def collect(key: FoldKey, report: EpochReport) -> bool:
            self.running[key.trial].folds.setdefault(key.fold, []).append(report)
            return True

        ended, at_target = self.inner.advance(collect)
        for fold_key, result in ended:
            state = self.running[fold_key.trial]
            state.ended[fold_key.fold] = result
            state.folds[fold_key.fold] = list(result.history)  # a diverged epoch included
        finished: list[tuple[Any, TrainResult]] = []
        for key in list(self.running):
            outcome = self._epochs(key, on_epoch)
            if outcome is not None:
                finished.append((key, outcome))
        return finished, self._checkpoints(at_target, {k for k, _ in finished})

    def _epochs(self, key: Any, on_epoch: EpochCallback | None) -> TrainResult | None:
        """Report the trial's new mean epochs; its result when it ended (every fold ended, a
        fold diverged, the caller or patience stopped it), else None."""
        state = self.running[key]
        histories = [state.folds.get(f, []) for f in range(self.k)]
        while all(len(h) > len(state.history) for h in histories):
            rows = [h[len(state.history)] for h in histories]
            if any(
                r.status == "diverged" and r.diverged_epoch == rows[0].epoch
                for r in state.ended.values()
            ):
                break  # a fold diverged there: the trial ends diverged, below
            report = mean_report(rows)
            state.history.append(report)
            if self.metric.improves(state.best_value, report.val_metric):
                state.best_value, state.best_epoch = report.val_metric, report.epoch
                self._deliver_epoch(key, report.epoch)
            if on_epoch is not None and not on_epoch(key, report):
                return self._end(key, "pruned")
            waited = report.epoch - (state.best_epoch or 0)
            if state.patience is not None and waited >= state.patience:
                state.stopped_early = True
                return self._end(key, "complete")
        if any(r.status == "failed" for r in state.ended.values()):
            return self._end(key, "failed")  # a user's model raised on a fold
        if any(r.status == "diverged" for r in state.ended.values()):
            return self._end(key, "pruned")
        if len(state.ended) == self.k:
            statuses = {r.status for r in state.ended.values()}
            return self._end(key, "complete" if statuses == {"complete"} else "pruned")
        return None

    def _deliver_epoch(self, key: Any, epoch: int) -> None:
        """The folds' mean improved at `epoch`: each fold member's weights and outputs there
        become the ones its bag delivers (each fold at its trial's best epoch, the one epoch
        the mean of K validations chose, rather than its own on a K-th of the rows)."""
        state = self.running[key]
        for fold in range(self.k):
            result = state.ended.get(fold) or self.inner.running_result(FoldKey(key, fold))
            if result.last_state is not None and len(result.history) == epoch:
                result.best_state, result.best_outputs = result.last_state, result.last_outputs

    def _end(self, key: Any, status: str) -> TrainResult:
        """Stop the trial's members still training; its combined result."""
        state = self.running.pop(key)
        results = dict(state.ended)
        for fold in range(self.k):
            if fold not in results:
                results[fold] = self.inner.stop(FoldKey(key, fold), status)
        return combine([results[f] for f in range(self.k)], state, status)

    def _checkpoints(self, at_target: list[Checkpoint], gone: set[Any]) -> list[Checkpoint]:
        """A trial's checkpoint once all its running members are at it: the mean value."""
        by_trial: dict[Any, list[Checkpoint]] = {}
        for checkpoint in at_target:
            key = checkpoint.key.trial
            if key in gone:
                continue
            by_trial.setdefault(key, []).append(checkpoint)
        out = []
        for key, points in by_trial.items():
            if len(points) != len(self._keys(key)):
                raise RuntimeError(
                    f"the fold members of trial {key!r} reached their checkpoint apart "
                    f"({len(points)} of {len(self._keys(key))}); they must train in step"
                )
            values = [p.value for p in points]
            value = statistics.fmean(values) if all(math.isfinite(v) for v in values) else math.nan
            out.append(Checkpoint(key, points[0].epochs, value, sum(p.seconds for p in points)))
        return out

    def set_until(self, key: Any, until: float) -> None:
        for fold_key in self._keys(key):
            self.inner.set_until(fold_key, until)

    def pause(self, key: Any) -> FoldTrial:
        parts = [self.inner.pause(fold_key) for fold_key in self._keys(key)]
        state = self.running.pop(key)
        if state.ended:
            raise RuntimeError(f"trial {key!r} was paused with some of its folds ended")
        return FoldTrial(key, parts, state, self.metric)

    def resume(self, paused: FoldTrial, until: float | None = None) -> None:
        for part in paused.parts:
            self.inner.resume(part, until)
        self.running[paused.key] = paused.state

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        if key not in self.running:
            raise KeyError(key)
        return self._end(key, status)

    def snapshot(self, key: Any) -> FoldTrial | None:
        parts = [self.inner.snapshot(fold_key) for fold_key in self._keys(key)]
        if any(p is None for p in parts) or len(parts) != self.k:
            return None
        return FoldTrial(key, parts, self.running[key], self.metric)

    def restore(self, snapshot: Snapshot, key: Any) -> FoldTrial | None:
        """A paused trial from a "folds" checkpoint of K members; None for any other."""
        if snapshot.kind != "folds":
            return None
        parts = fold_parts(snapshot)
        if len(parts) != self.k:
            raise SnapshotError(
                f"a checkpoint of {len(parts)} folds cannot resume a study of {self.k}"
            )
        handles = [self.inner.restore(part, FoldKey(key, f)) for f, part in enumerate(parts)]
        if any(h is None for h in handles):
            return None
        state = _Trial(patience=snapshot.meta.get("patience"))
        state.folds = {f: part.history for f, part in enumerate(parts)}
        for report in snapshot.history:
            state.history.append(report)
            if self.metric.improves(state.best_value, report.val_metric):
                state.best_value, state.best_epoch = report.val_metric, report.epoch
        return FoldTrial(key, handles, state, self.metric)
