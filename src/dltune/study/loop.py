"""The study loop: asynchronous successive halving over a population of trials.

One loop drives both engines (one run at a time, or a stacked population). At every checkpoint
(a segment of an epoch, or a whole one) it

1. stores each finished epoch's validation metric (lifecycle.report);
2. asks the scheduler about each trial that reached its rung: go on, pause (its state kept),
   complete, or stop (a stopping rule's word: pruned at once);
3. tells the finished ones to the study;
4. fills the free slots: first with paused trials the scheduler promotes, then with new
   configurations asked from the sampler, so the population stays full until the budget is
   spent (continuous batching of trials).

Trials paused at a rung stay RUNNING in storage (state attribute "paused") until promoted; when
the study ends they are told as pruned. Rung results are written to storage at each decision
(stored_rungs.py), so a resumed study or another worker decides from the same tables.

With a Checkpointer (checkpointing.py), paused trials and, every so often, running ones are
checkpointed, and a trial asked as the continuation of an interrupted one resumes from its
checkpoint. A stop request (stopping.py) ends the loop at the next checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..storage import schema
from . import stored_rungs
from .checkpointing import restore
from .stopping import Preempted

if TYPE_CHECKING:
    import optuna

    from ..config import Config
    from ..engine import Checkpoint, Engine, TrainResult
    from ..schedule import Scheduler
    from .checkpointing import Checkpointer
    from .filling import ShapeFiller
    from .lifecycle import TrialLifecycle
    from .stopping import StopRequest

SYNC_SECONDS = 5.0  # how often rung tables are re-read from storage (other workers' results)


@dataclass
class Budget:
    """How many more trials may start, until when (a time.time() instant: the plan's, plan.py),
    and how many member-epochs may be trained in all."""

    trials: int | None
    deadline: float | None
    epochs: float | None = None
    started: int = 0
    epochs_spent: float = 0.0

    def allows_another(self, study: optuna.Study) -> bool:
        import optuna

        if self.trials is not None and self.started >= self.trials:
            return False
        if self.spent():
            return False
        sampler = study.sampler
        return not (
            isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)
        )

    def spent(self) -> bool:
        """The time or the epoch budget is used up: training stops at the next checkpoint."""
        if self.deadline is not None and time.time() >= self.deadline:
            return True
        return self.epochs is not None and self.epochs_spent >= self.epochs - 1e-9


class StudyLoop:
    """Runs trials through `engine` under `scheduler` until `budget` is spent."""

    def __init__(
        self,
        lifecycle: TrialLifecycle,
        engine: Engine[Any],
        scheduler: Scheduler,
        budget: Budget,
        *,
        patience: int | None,
        slots: int,
        max_paused: int | None = None,
        protect_baseline: bool = False,
        filler: ShapeFiller | None = None,
        checkpointer: Checkpointer | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.engine = engine
        self.scheduler = scheduler
        self.budget = budget
        self.patience = patience
        self.slots = slots
        self.filler = filler  # new trials asked in cohorts of one shape (a population's)
        # the study's first trial goes on at every rung (first_trial.py: in k-fold)
        self.protect_baseline = protect_baseline
        self.checkpointer = checkpointer
        self.stop = stop  # asked to stop at the next checkpoint (SIGTERM, a dead parent)
        # Paused trials whose state is kept. Each holds memory (weights and moments) and stays
        # RUNNING in storage, where every read of the study (each ask) re-reads all unfinished
        # trials: measured 60-80 ms an ask with 40 paused. Beyond the cap the least promising
        # are let go (pruned), which ASHA would rarely have promoted: a trial in the bottom of
        # its rung needs several times as many worse trials to arrive before it earns a place.
        self.max_paused = max_paused if max_paused is not None else max(8, 2 * slots)
        self.paused: dict[int, Any] = {}  # trial number -> the engine's paused run
        self.waiting: list[tuple[int, Config, int]] = []  # asked, but no memory for them yet
        self.overhead_seconds = 0.0  # asking, storing, scheduling: not training
        self._synced = -math.inf

    def run(self) -> None:
        while True:
            with self._overhead():
                self._sync()
                self._fill()
            if len(self.engine) == 0:
                break
            with self._overhead():  # what the last checkpoint and the new trials wrote
                self.lifecycle.flush()
            finished, checkpoints = self.engine.advance(self.lifecycle.report)
            with self._overhead():
                self.budget.epochs_spent = self.engine.epochs_trained
                for number, result in finished:
                    self._record_last_rung(number, result)
                    self._end(number, result)
                for checkpoint in checkpoints:
                    self._decide(checkpoint)
                if self.budget.spent():
                    self._stop_running()
                self._checkpoint_running()
        with self._overhead():
            self._release_paused()

    # ---- filling slots --------------------------------------------------------------------

    def _fill(self) -> None:
        """Fill free slots: promoted trials first, then new ones from the sampler."""
        if self.budget.spent():
            return
        while len(self.engine) < self.slots:
            number = self.scheduler.promotion(self.paused)
            if number is not None:
                self._promote(number)
                continue
            if not self._admit_waiting() or len(self.engine) >= self.slots:
                return
            if not self.budget.allows_another(self.lifecycle.study):
                self._drain()
                return
            fixed = self._cohort_shape()
            asked = self.lifecycle.ask(fixed)
            self.budget.started += 1
            if asked is None:  # failed before training (a user model's build): the next one
                continue
            trial, config, seed = asked
            if self.protect_baseline and schema.read_baseline(trial):
                self.scheduler.protected.add(trial.number)
            if self._resumed(trial):
                self.budget.started -= 1  # a continuation, not a new trial
                continue
            if self.filler is not None:
                self.filler.asked(trial.params, fixed)
            self.scheduler.start(trial.number, self.lifecycle.cost_values(trial.number))
            self._save_rungs(trial.number)
            self.waiting.append((trial.number, config, seed))

    def _resumed(self, trial: optuna.Trial) -> bool:
        """Whether `trial` continues an interrupted one from its checkpoint (checkpointing.py):
        then it is back in the engine, or paused at its rung, as it was."""
        old = schema.read_resumes(trial)
        if old is None:
            return False
        restored = restore(trial, old, self.engine, self.scheduler, self.checkpointer)
        if restored is None:
            return False  # from its seed, as a new trial (the same curve, retrained)
        number = trial.number
        if restored.paused:
            self.paused[number] = restored.handle
            self.lifecycle.mark(number, "paused")
        else:
            self.engine.resume(restored.handle, self.scheduler.target(number))
            self.lifecycle.mark(number, "running")
        self._save_rungs(number)
        return True

    def _cohort_shape(self) -> dict[str, Any] | None:
        """The shape the next trial joins (populations that fill, filling.py), or None."""
        if self.filler is None:
            return None
        running = self.lifecycle.running
        return self.filler.fixed_params(running[n].params for n in running if n not in self.paused)

    def _drain(self) -> None:
        """No new trial may start: fill the free slots with the best paused trials, the rung
        cut-offs rounded up, so that a small study still finishes its best ones."""
        while not self.waiting and len(self.engine) < self.slots:
            number = self.scheduler.promotion(self.paused, draining=True)
            if number is None:
                return
            self._promote(number)

    def _admit_waiting(self) -> bool:
        """Start waiting trials that fit in memory; False when one still does not fit."""
        for entry in list(self.waiting):
            number, config, seed = entry
            # An empty population always admits one member, however large it is.
            if not (self.engine.has_room(config) or len(self.engine) == 0):
                return False
            self.engine.add(
                number,
                config,
                seed=seed,
                patience=self.patience,
                keep_best_state=True,
                until=self.scheduler.target(number),
            )
            if self.checkpointer is not None:
                self.checkpointer.started(number)
            self.waiting.remove(entry)
        return True

    def _promote(self, number: int) -> None:
        run = self.paused.pop(number)
        self.engine.resume(run, self.scheduler.target(number))
        self.lifecycle.mark(number, "running")
        self._save_rungs(number)

    # ---- decisions ------------------------------------------------------------------------

    def _decide(self, checkpoint: Checkpoint) -> None:
        number = checkpoint.key
        cost = checkpoint.seconds / checkpoint.epochs if checkpoint.epochs > 0 else None
        decision = self.scheduler.record(number, checkpoint.value, cost)
        self._save_rungs(number)
        if decision == "continue":
            self.engine.set_until(number, self.scheduler.target(number))
        elif decision == "complete":
            self._end(number, self.engine.stop(number, "complete"))
        elif decision == "stop":  # a stopping rule's (schedule/rule.py): pruned, not kept
            self._end(number, self.engine.stop(number, "pruned"))
        else:
            self.paused[number] = self.engine.pause(number)
            self.lifecycle.mark(number, "paused")
            if self.checkpointer is not None:
                self.checkpointer.take(number, self.paused[number])
            self._forget_hopeless()

    def _record_last_rung(self, number: int, result: TrainResult) -> None:
        """A trial that trained to its last rung (max_epochs) ends in the engine, not at a
        checkpoint: its value there completes its rung record."""
        target = self.scheduler.target(number)
        if result.status == "complete" and result.history and result.epochs_run >= target:
            self.scheduler.record(number, result.history[-1].val_metric)
            self._save_rungs(number)

    def _forget_hopeless(self) -> None:
        """Beyond max_paused kept states, let the least promising paused trials go (pruned)."""
        excess = len(self.paused) - self.max_paused
        if excess <= 0:
            return
        for number in self.scheduler.paused_hopeless(self.paused)[:excess]:
            self._end_paused(number)

    def _end_paused(self, number: int, status: str = "pruned") -> None:
        result = self.paused.pop(number).result
        result.status = status if result.best_value is not None else "pruned"
        self._end(number, result)

    def _end(self, number: int, result: TrainResult) -> None:
        """Tell a trial's end. One stopped inside its first epoch has no epoch on its curve:
        its rung value is reported at step 0, so that the sampler can tell a promising quarter
        epoch from a hopeless one (Optuna's TPE ranks pruned trials by their last report)."""
        record = self.scheduler.trials.get(number)
        if not result.history and record is not None and record.values:
            value = record.values[max(record.values)]
            if math.isfinite(value):
                self.lifecycle.report_partial(number, value)
        gone = self.checkpointer.forget(number) if self.checkpointer is not None else None
        self.lifecycle.end(number, result)
        if self.checkpointer is not None:
            self.checkpointer.remove(gone)  # once the end is stored

    # ---- checkpoints ----------------------------------------------------------------------

    def _training(self) -> list[int]:
        """The trials in the engine now (not paused, not waiting for memory)."""
        waiting = {w[0] for w in self.waiting}
        return [n for n in self.lifecycle.running if n not in self.paused and n not in waiting]

    def _checkpoint_running(self) -> None:
        """After a segment: checkpoint the running trials that are due; on a stop request,
        all of them, then stop (Preempted: they end as interrupted, to resume)."""
        reason = self.stop.reason if self.stop is not None else None
        if self.checkpointer is not None:
            if reason is not None:
                for number in self._training():
                    self.checkpointer.take_running(self.engine, number, stopping=True)
            else:
                self.checkpointer.take_due(self.engine, self._training())
        if reason is not None:
            raise Preempted(reason)

    # ---- the end --------------------------------------------------------------------------

    def _stop_running(self) -> None:
        """The budget is spent: every running trial ends where it is; one with a finished
        epoch is complete (its best epoch is a real result), one without is pruned."""
        for number in list(self.lifecycle.running):
            if number in self.paused or any(number == w[0] for w in self.waiting):
                continue
            try:
                result = self.engine.stop(number, "complete")
            except KeyError:
                continue
            if result.best_value is None:
                result.status = "pruned"
            self.lifecycle.mark_stopped_by_budget(number)
            self._end(number, result)

    def _release_paused(self) -> None:
        """The study ends: a paused trial that would have been promoted had there been a slot
        (it is in its rung's top 1/reduction, rounded up) ends complete, since its best epoch
        is a result the budget, not the scheduler, cut short; the others end pruned. Trials
        asked but never started end pruned."""
        for number in list(self.paused):
            earned = self.scheduler.is_promotable(number, draining=True)
            if earned:
                self.lifecycle.mark_stopped_by_budget(number)
            self._end_paused(number, "complete" if earned else "pruned")
        from ..engine import TrainResult

        for number, _config, _seed in self.waiting:
            self.lifecycle.end(number, TrainResult(status="pruned"))
        self.waiting.clear()

    # ---- storage --------------------------------------------------------------------------

    def _save_rungs(self, number: int) -> None:
        trial = self.lifecycle.running.get(number)
        if trial is not None:
            stored_rungs.save(trial, self.scheduler.trials[number], self.scheduler.ladder(number))

    def _sync(self) -> None:
        """Re-read rung results from storage now and then (other workers add to them)."""
        now = time.perf_counter()
        if now - self._synced >= SYNC_SECONDS:
            stored_rungs.load(self.lifecycle.study, self.scheduler)
            self._synced = now

    def _overhead(self) -> _Timer:
        return _Timer(self)


class _Timer:
    """Adds the time spent in a `with` block to the loop's overhead."""

    def __init__(self, loop: StudyLoop) -> None:
        self.loop = loop

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.loop.overhead_seconds += time.perf_counter() - self.started
