"""A trial's life in storage: begun (its configuration and seed), reported epoch by epoch,
ended (its curve, its state), whichever engine trains it.

Both study loops (loops.py) go through this one path, so a trial looks the same in storage
whether it was trained alone or in a population.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from typing import TYPE_CHECKING, Any

from .config import Config
from .engine import EpochReport, TrainResult
from .progress import ProgressListener
from .records import STATE_ATTR, best_record, trial_record
from .storage import HEARTBEAT_INTERVAL, record_heartbeat

if TYPE_CHECKING:
    import optuna

    from .space import SearchSpace


def trial_seed(base_seed: int, number: int) -> int:
    """Each trial's seed (weights, dropout): a function of the study's seed and its number."""
    return (base_seed * 1_000_003 + number) % (2**31 - 1)


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
        self.running: dict[int, optuna.Trial] = {}
        # The weights of the best trial trained in this process, kept for its one test.
        self.best_state: tuple[int, dict[str, Any]] | None = None
        self._heartbeat = _Heartbeats(study, self.running)
        self._best: dict[str, Any] | None = None  # the best trial's record, as last read
        self._best_read = False

    def ask(self) -> tuple[optuna.Trial, Config, int]:
        """A new trial with its configuration and seed, stored before it trains."""
        # Optuna warns that heartbeats are meant for Study.optimize; this loop records them
        # itself (_Heartbeats), so the warning does not apply.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            trial = self.study.ask()
        self.running[trial.number] = trial
        self._heartbeat.beat(trial)
        config = self.space.suggest(trial)
        # A trial enqueued with its seed (a sweep's member: seed k is shared by every value)
        # keeps it; otherwise the seed follows from the trial's number.
        enqueued = trial.user_attrs.get("seed")
        seed = enqueued if isinstance(enqueued, int) else trial_seed(self.base_seed, trial.number)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("seed", seed)
        if self.worker is not None:
            trial.set_user_attr("worker", self.worker)
        self.progress.trial_started(trial.number, config)
        return trial, config, seed

    def report(self, number: int, report: EpochReport) -> bool:
        """Store an epoch's validation metric (the learning curve). The scheduler decides at
        rungs (loops.py), so the trial always goes on from here: True."""
        trial = self.running[number]
        trial.report(report.val_metric, report.epoch)
        self.progress.epoch_done(number, report)
        return True

    def report_partial(self, number: int, value: float) -> None:
        """A value measured inside the first epoch, stored at step 0 of the curve."""
        self.running[number].report(value, 0)

    def mark(self, number: int, value: str, attr: str = STATE_ATTR) -> None:
        """Note a running trial's state in storage ("paused" at a rung, "running" again)."""
        self.running[number].set_user_attr(attr, value)

    def end(self, number: int, result: TrainResult) -> None:
        """Store the trial's curve and tell its outcome: complete, pruned or diverged."""
        import optuna

        trial = self.running.pop(number)
        history = result.history
        # The validation metric per epoch is stored as intermediate values by report().
        trial.set_user_attr("train_loss", [r.train_loss for r in history])
        trial.set_user_attr("val_loss", [r.val_loss for r in history])
        trial.set_user_attr("epoch_seconds", [round(r.seconds, 4) for r in history])
        if any(math.isfinite(r.train_metric) for r in history):  # tracked (sweeps)
            trial.set_user_attr("train_metric", [_json_float(r.train_metric) for r in history])
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("stopped_early", result.stopped_early)
        if result.status == "complete":
            self.study.tell(trial, result.best_value)
        else:
            if result.status == "diverged":
                trial.set_user_attr(STATE_ATTR, "diverged")
                trial.set_user_attr("diverged_epoch", result.diverged_epoch)
                last = history[-1]
                if math.isfinite(last.val_metric):  # a score for the sampler
                    trial.report(last.val_metric, last.epoch)
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
        stored = self.study._storage.get_trial(trial._trial_id)  # this trial alone, not all
        self.progress.trial_finished(trial_record(stored), self._best)

    def fail_running(self, state: str, error: str) -> None:
        """End every trial still running (Ctrl-C: 'interrupted'; an error: 'failed')."""
        import optuna

        for trial in list(self.running.values()):
            try:
                trial.set_user_attr(STATE_ATTR, state)
                trial.set_user_attr("error", error[:500])
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            except Exception:  # already told, or the storage is gone: nothing more to keep
                pass
        self.running.clear()

    def close(self) -> None:
        self._heartbeat.stop()


def _json_float(value: float) -> float | None:
    """Storage holds JSON, which has no NaN: an epoch without a value is null."""
    return value if math.isfinite(value) else None


class _Heartbeats:
    """Records the heartbeat of every running trial, from one background thread.

    A later run tells a trial whose process died (no heartbeat for storage.GRACE_PERIOD) from
    one still running elsewhere.
    """

    def __init__(self, study: optuna.Study, running: dict[int, optuna.Trial]) -> None:
        self._storage = study._storage
        self._running = running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dltune-heartbeat", daemon=True)
        self._thread.start()

    def beat(self, trial: optuna.Trial) -> None:
        record_heartbeat(self._storage, trial._trial_id)

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            for trial in list(self._running.values()):
                # A missed beat only delays stale detection; it must not end the trial.
                with contextlib.suppress(Exception):
                    self.beat(trial)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_INTERVAL)
