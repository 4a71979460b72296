"""A trial's life in storage: begun (its configuration and seed), reported epoch by epoch,
ended (its curve, its state), whichever engine trains it.

Every study (a tuning run, a sweep) goes through this one path, so a trial looks the same in
storage whether it was trained alone or in a population. What is written where is
dltune.storage.schema's business; this module says when.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..storage import best_record, internals, read_trial, schema
from ..storage.heartbeats import Heartbeats, this_process
from .predictions import KeptModels, ValidationRows
from .progress import ProgressListener
from .validation import fold_record

if TYPE_CHECKING:
    import optuna

    from ..config import Config
    from ..engine import EpochReport, TrainResult
    from ..space import SearchSpace
    from ..usermodel.network import BuildError


def trial_seed(base_seed: int, number: int) -> int:
    """Each trial's seed (weights, dropout): a function of the study's seed and its number."""
    return (base_seed * 1_000_003 + number) % (2**31 - 1)


def earlier_continuation(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of a trial enqueued before `trial` to continue the same interrupted trial,
    or None (`trial` continues none, or is its one continuation). The first enqueued is the
    continuation, whichever process asks it: a rule every process applies alike."""
    old = schema.read_resumes(trial)
    if old is None:
        return None
    for other in study.get_trials(deepcopy=False):
        if other.number < trial.number and schema.read_resumes(other) == old:
            return other.number
    return None


class TrialLifecycle:
    """Begins, reports and ends the trials of one study run; keeps the best trial's weights."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        base_seed: int,
        progress: ProgressListener,
        worker: int | None = None,
    ) -> None:
        self.study = study
        self.worker = worker  # which local worker process asked the trials (several: workers.py)
        self.space = space
        self.base_seed = base_seed
        self.progress = progress
        # A database's study reads this process's running trials from memory and gathers its
        # writes to them into one transaction per flush() (storage.own_trials_cache.OwnTrialsCache):
        # before its first ask, so that every trial it asks is its own.
        internals.use_own_trials_cache(study)
        self.running: dict[int, optuna.Trial] = {}
        # The weights of the best trial trained in this process, kept for its one test.
        self.best_state: tuple[int, dict[str, Any]] | None = None
        self._heartbeats = Heartbeats(study, self.running)
        self._owner = this_process()  # each trial's, so a rerun here knows when it died
        self._best: dict[str, Any] | None = None  # the best trial's record, as last read
        # What a configuration's network costs (nets.footprint.footprint_of), stored with
        # each trial before it trains; None: not counted
        self.footprint: Callable[[Config], dict[str, float]] | None = None
        # The study's objectives beside its metric (space.costs), told with a complete trial
        # and known to the scheduler from the start; each running trial's values of them.
        self.costs: tuple[str, ...] = tuple(getattr(space, "costs", ()))
        self._cost_values: dict[int, tuple[float, ...]] = {}
        self._best_read = False
        # Each running trial's configuration and seed (its folds' seeds derive from it).
        self._started: dict[int, tuple[Config, int]] = {}
        # Where the ensemble's inputs go (predictions.py): the rows that validate the trials,
        # and the best trials' weights; None in a sweep, which delivers no model.
        self.rows: ValidationRows | None = None
        self.kept: KeptModels | None = None
        from .user_model import EarlyFailures

        self.early_failures = EarlyFailures()  # a user model's first trials, failing alike

    def ask(
        self, fixed: Mapping[str, Any] | None = None
    ) -> tuple[optuna.Trial, Config, int] | None:
        """A new trial with its configuration and seed, stored before it trains; None when it
        failed before training (a user model's build failed: the trial is told as failed).
        `fixed`: Optuna params given, not sampled (a cohort's shape: filling.py)."""
        from ..usermodel.network import BuildError
        from .filling import fixing

        with fixing(self.study, fixed):
            trial = self._ask()
            self.running[trial.number] = trial
            self._heartbeats.beat(trial)
            try:
                config = self.space.suggest(trial)
            except BuildError as failure:
                self._fail_before_training(trial, failure)
                return None
        self.early_failures.passed()
        # A trial enqueued with its seed (a sweep's member: seed k is shared by every value)
        # keeps it; otherwise the seed follows from the trial's number.
        seed = schema.read_enqueued_seed(trial)
        if seed is None:
            seed = trial_seed(self.base_seed, trial.number)
        schema.write_trial_start(trial, config.to_dict(), seed, self.worker)
        schema.write_owner(trial, self._owner)
        self._started[trial.number] = (config, seed)
        self._count_costs(trial, config)
        self.progress.trial_started(trial.number, config)
        return trial, config, seed

    def _ask(self) -> optuna.Trial:
        """Optuna's next trial; a second continuation of an interrupted trial (two drivers
        that enqueued them together on a storage without turns, storage.presence) is dropped,
        told as failed, and the next one asked."""
        import optuna

        while True:
            # Optuna warns that heartbeats are meant for Study.optimize; this loop records
            # them itself (storage.heartbeats), so the warning does not apply.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
                trial = self.study.ask()
            first = earlier_continuation(self.study, trial)
            if first is None:
                return trial
            schema.write_failure(
                trial,
                "failed",
                f"a second continuation of interrupted trial {schema.read_resumes(trial)}, "
                f"which trial {first} continues: dropped",
            )
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _count_costs(self, trial: optuna.Trial, config: Config) -> None:
        """Store what the trial's network costs, and keep its values of the study's costs."""
        if self.footprint is None:
            if self.costs:
                raise RuntimeError("a study of several objectives needs its footprint counted")
            return
        footprint = self.footprint(config)
        schema.write_footprint(trial, footprint)
        self._cost_values[trial.number] = tuple(float(footprint[name]) for name in self.costs)

    def cost_values(self, number: int) -> tuple[float, ...]:
        """A running trial's values of the study's costs (empty: one objective)."""
        return self._cost_values.get(number, ())

    def _fail_before_training(self, trial: optuna.Trial, failure: BuildError) -> None:
        """Tell a trial whose build failed as failed, with its message; the study goes on,
        unless the first trials of this run all failed the same way (EarlyFailures raises)."""
        import optuna

        self.running.pop(trial.number, None)
        schema.write_failure(trial, "failed", str(failure))
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        stored = internals.read_trial(self.study, trial)
        self.progress.trial_finished(read_trial(stored), self._best)
        self.early_failures.failed(failure)

    def flush(self) -> None:
        """Write what this run's trials gathered since the last flush (the epochs' reports,
        rung results, state marks, a new trial's parameters and configuration) in one
        transaction. The loop flushes before each segment trains: a finished epoch is in
        storage before the next one starts. A tell or another process's trial flushes first,
        so storage sees every write in order."""
        internals.flush_trial_writes(self.study)

    def report(self, number: int, report: EpochReport) -> bool:
        """Store an epoch's validation metric (the learning curve; in a database, written at
        the next flush()). The scheduler decides at rungs (loop.py), so the trial always goes
        on from here: True."""
        self.report_value(self.running[number], report.val_metric, report.epoch)
        self.progress.epoch_done(number, report)
        return True

    def report_value(self, trial: optuna.Trial, value: float, step: int) -> None:
        """A point of the trial's learning curve: Optuna's intermediate value, or, in a study
        of several objectives (whose Trial.report Optuna refuses), schema.CURVE."""
        if self.costs:
            schema.write_curve_point(trial, step, value)
        else:
            trial.report(value, step)

    def report_partial(self, number: int, value: float) -> None:
        """A value measured inside the first epoch, stored at step 0 of the curve."""
        self.report_value(self.running[number], value, 0)

    def mark(self, number: int, state: str) -> None:
        """Note a running trial's state in storage ("paused" at a rung, "running" again)."""
        schema.write_state(self.running[number], state)

    def mark_stopped_by_budget(self, number: int) -> None:
        """The budget, not the scheduler, ends this trial (its best epoch is a real result)."""
        schema.write_stopped_by_budget(self.running[number])

    def end(self, number: int, result: TrainResult) -> None:
        """Store the trial's curve and tell its outcome: complete, pruned or diverged."""
        import optuna

        trial = self.running.pop(number)
        costs = self._cost_values.pop(number, ())
        if result.status == "failed":  # a user's model raised as it trained
            self._fail_in_training(trial, result)
            return
        schema.write_trial_end(trial, result)
        self._write_outcome(trial, result)
        if result.status == "complete":
            told = result.best_value if not costs else [float(result.best_value or 0.0), *costs]
            self.study.tell(trial, told)
        else:
            if result.status == "diverged":
                last = result.history[-1]
                if math.isfinite(last.val_metric):  # a score for the sampler
                    self.report_value(trial, last.val_metric, last.epoch)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        if result.status == "complete" or not self._best_read:
            # Only a complete trial can become the best: skip reading them all otherwise.
            self._best = best_record(self.study)
            self._best_read = True
            if (
                self._best is not None
                and self._best["trial"] == number
                and result.best_state is not None
            ):
                self.best_state = (number, result.best_state)
        stored = internals.read_trial(self.study, trial)  # this trial alone, not all
        self.progress.trial_finished(read_trial(stored), self._best)

    def _fail_in_training(self, trial: optuna.Trial, result: TrainResult) -> None:
        """Tell a trial whose model raised (or called sys.exit()) while it trained as failed,
        with the error and its values; the study goes on."""
        import optuna

        from ..usermodel.network import shown

        started = self._started.pop(trial.number, None)
        values = shown(dict(started[0].model)) if started is not None else "unknown values"
        message = f"{result.error or 'training failed'} (with {values})"
        schema.write_trial_end(trial, result)
        schema.write_failure(trial, "failed", message)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        stored = internals.read_trial(self.study, trial)
        self.progress.trial_finished(read_trial(stored), self._best)

    def _write_outcome(self, trial: optuna.Trial, result: TrainResult) -> None:
        """A cross-validated trial's folds; a complete trial's predictions on its validating
        rows, and its weights kept if it is among the best (the ensemble's candidates)."""
        started = self._started.pop(trial.number, None)
        if started is None:
            return
        config, seed = started
        if result.folds:
            from ..engine.folds import fold_seed

            seeds = [fold_seed(seed, f) for f in range(len(result.folds))]
            schema.write_folds(trial, fold_record(result, seeds))
        if result.status != "complete" or self.rows is None:
            return
        if self.rows.storable:
            predictions = self.rows.predictions(result, config.loss)
            if predictions is not None:
                schema.write_predictions(trial, predictions)
        if self.kept is not None:
            self.kept.offer(trial.number, result.best_value, result)

    def fail_running(self, state: str, error: str) -> None:
        """End every trial still running (Ctrl-C: 'interrupted'; an error: 'failed')."""
        import optuna

        for trial in list(self.running.values()):
            try:
                schema.write_failure(trial, state, error)
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            except Exception:  # already told, or the storage is gone: nothing more to keep
                pass
        self.running.clear()

    def close(self) -> None:
        self._heartbeats.stop()
        self.flush()
