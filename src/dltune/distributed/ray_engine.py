"""Trials trained on a Ray cluster, behind the study loop's engine interface.

The study loop, the sampler and the scheduler stay in this process (the driver): it asks the
study for configurations, decides at rungs, and tells results to storage. Each Ray actor is a
worker holding the data and a SequentialEngine (one CPU, one torch thread); the driver sends
it plain data (a configuration as a dict, a seed, a target epoch) and gets back each epoch's
report, checkpoints at rungs and finished results. Paused trials keep their weights on their
actor and are promoted there.

Faults: when an actor dies (its node lost, its process killed), each of its trials, running or
paused, is *restarted from scratch* on a live actor with the same configuration and seed (the
epoch-boundary state lived in the dead process; a trial's seed makes the rerun identical on a
CPU, so its curve is reproduced, not changed). The study goes on while one actor lives.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..engine import EpochReport, TrainResult
from ..engine.result import Checkpoint
from ..errors import StudyError, param

CALL_TIMEOUT_S = 900  # one segment of one trial per call: minutes at most on any sane node
CONNECT_TIMEOUT_S = 10


class TrialWorker:
    """The body of a Ray actor: trains trials one segment per call (see RayEngine)."""

    def __init__(
        self,
        dataset: Any,
        metric: str,
        shuffle_seed: int,
        segments: int,
        model: dict[str, Any] | None = None,
    ) -> None:
        import torch

        from ..engine.sequential import SequentialEngine, SequentialTrainer

        torch.set_num_threads(1)  # one actor per CPU
        network = None
        if model is not None:  # a user's build, imported on the actor from its record
            from ..usermodel import ModelSource, UserNetworks

            network = UserNetworks(ModelSource.from_dict(model).build, dataset.input_shape)
        trainer = SequentialTrainer(
            dataset, metric=metric, shuffle_seed=shuffle_seed, network=network
        )
        self.engine = SequentialEngine(trainer, segments)
        self.paused: dict[Any, Any] = {}

    def where(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def add(self, key: Any, config: dict[str, Any], spec: dict[str, Any], until: float) -> None:
        self.engine.add(key, Config.from_dict(config), until=until, **spec)

    def resume(self, key: Any, until: float) -> None:
        self.engine.resume(self.paused.pop(key), until)

    def set_until(self, key: Any, until: float) -> None:
        self.engine.set_until(key, until)

    def pause(self, key: Any) -> None:
        self.paused[key] = self.engine.pause(key)

    def stop(self, key: Any, status: str) -> TrainResult:
        return self.engine.stop(key, status)

    def release(self, key: Any) -> TrainResult:
        """A paused trial let go: its result so far."""
        return self.paused.pop(key).result

    def advance(
        self,
    ) -> tuple[
        list[tuple[Any, EpochReport]], list[tuple[Any, TrainResult]], list[Checkpoint], float
    ]:
        reports: list[tuple[Any, EpochReport]] = []

        def on_epoch(key: Any, report: EpochReport) -> bool:
            reports.append((key, report))
            return True

        finished, checkpoints = self.engine.advance(on_epoch)
        return reports, finished, checkpoints, self.engine.epochs_trained


@dataclass
class _Trial:
    config: dict[str, Any]
    spec: dict[str, Any]  # seed, patience, keep_best_state
    until: float
    actor: int
    paused: bool = False


class RemotePaused:
    """The loop's handle on a paused trial that lives on an actor."""

    def __init__(self, engine: RayEngine, key: Any) -> None:
        self.engine = engine
        self.key = key

    @property
    def result(self) -> TrainResult:
        return self.engine.release(self.key)


class RayEngine:
    """The study loop's engine over Ray actors (see the module's note)."""

    def __init__(self, actors: list[Any]) -> None:
        self.actors: dict[int, Any] = dict(enumerate(actors))
        self.trials: dict[Any, _Trial] = {}
        self.done_epochs: dict[int, float] = {}  # per actor, including dead ones
        self.restarted: list[Any] = []  # keys restarted after their actor died
        self.nodes: list[dict[str, Any]] = []  # where each actor runs (host, pid)

    @classmethod
    def start(
        cls,
        address: str,
        dataset: Any,
        metric: str,
        shuffle_seed: int,
        segments: int,
        model: dict[str, Any] | None = None,
    ) -> RayEngine:
        """Actors on the cluster at `address`, one per CPU; `model`: a user model's source
        record (dltune.usermodel.source), which each actor imports again."""
        ray = _ray()
        connect(address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        remote = ray.remote(num_cpus=1, max_restarts=0)(TrialWorker)
        data = ray.put(dataset)
        actors = [remote.remote(data, metric, shuffle_seed, segments, model) for _ in range(cpus)]
        engine = cls(actors)
        engine.nodes = _call_all(ray, [a.where.remote() for a in actors])
        return engine

    # ---- the engine interface ----

    @property
    def epochs_trained(self) -> float:
        return sum(self.done_epochs.values())

    def __len__(self) -> int:
        return sum(not t.paused for t in self.trials.values())

    def has_room(self, config: Config) -> bool:
        return len(self) < len(self.actors)

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
        spec = {"seed": seed, "patience": patience, "keep_best_state": keep_best_state}
        trial = _Trial(config.to_dict(), spec, until or float(config.epochs), self._idlest())
        self.trials[key] = trial
        # on a lost actor, _lose has already started it again elsewhere
        self._try(trial.actor, "add", key, trial.config, spec, trial.until)

    def set_until(self, key: Any, until: float) -> None:
        self.trials[key].until = until
        self._try(self.trials[key].actor, "set_until", key, until)

    def pause(self, key: Any) -> RemotePaused:
        if not self._try(self.trials[key].actor, "pause", key):
            self._call(self.trials[key].actor, "pause", key)  # restarted elsewhere: pause there
        self.trials[key].paused = True
        return RemotePaused(self, key)

    def resume(self, paused: RemotePaused, until: float | None = None) -> None:
        trial = self.trials[paused.key]
        trial.until = until if until is not None else trial.until
        trial.paused = False
        self._try(trial.actor, "resume", paused.key, trial.until)

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        trial = self.trials[key]
        if trial.paused:
            raise KeyError(key)
        try:
            result = self._call(trial.actor, "stop", key, status)
        except _WorkerLost:  # its state died with its actor: discard the restarted copy
            result = TrainResult(status="pruned")
            self._try(self.trials[key].actor, "stop", key, status)
        del self.trials[key]
        return result

    def release(self, key: Any) -> TrainResult:
        trial = self.trials.pop(key)
        try:
            return self._call(trial.actor, "release", key)
        except _WorkerLost:
            return TrainResult(status="pruned")  # its state died with its actor

    def advance(
        self, on_epoch: Any = None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """One segment of every running trial, all actors at once."""
        ray = _ray()
        busy = sorted({t.actor for t in self.trials.values() if not t.paused})
        calls = {i: self.actors[i].advance.remote() for i in busy}
        finished: list[tuple[Any, TrainResult]] = []
        checkpoints: list[Checkpoint] = []
        for i, ref in calls.items():
            try:
                reports, done, reached, epochs = ray.get(ref, timeout=CALL_TIMEOUT_S)
            except _lost_errors(ray) as exc:
                self._lose(i, exc)
                continue
            self.done_epochs[i] = epochs
            for key, report in reports:
                if on_epoch is not None:
                    on_epoch(key, report)
            for key, result in done:
                del self.trials[key]
                finished.append((key, result))
            checkpoints.extend(reached)
        return finished, checkpoints

    # ---- faults ----

    def _lose(self, index: int, exc: BaseException) -> None:
        """An actor died: restart its trials from scratch on the live ones."""
        self.actors.pop(index, None)
        if not self.actors:
            raise StudyError(f"every Ray worker is gone; the last died with: {exc}") from exc
        for key, trial in self.trials.items():
            if trial.actor == index:
                trial.actor = self._idlest()
                self.restarted.append(key)
                self._call(trial.actor, "add", key, trial.config, trial.spec, trial.until)
                if trial.paused:  # it was paused: it waits again, now on its new actor
                    self._call(trial.actor, "pause", key)

    def _idlest(self) -> int:
        load = {i: 0 for i in self.actors}
        for t in self.trials.values():
            if t.actor in load:
                load[t.actor] += 1
        return min(load, key=lambda i: (load[i], i))

    def _try(self, index: int, method: str, *args: Any) -> bool:
        """Call; False when the actor was lost (its trials then restarted by _lose)."""
        try:
            self._call(index, method, *args)
        except _WorkerLost:
            return False
        return True

    def _call(self, index: int, method: str, *args: Any) -> Any:
        ray = _ray()
        try:
            return ray.get(
                getattr(self.actors[index], method).remote(*args), timeout=CALL_TIMEOUT_S
            )
        except _lost_errors(ray) as exc:
            self._lose(index, exc)
            raise _WorkerLost(str(exc)) from exc


class _WorkerLost(Exception):
    pass


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    return (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError)


def _call_all(ray: Any, refs: list[Any]) -> list[Any]:
    return ray.get(refs, timeout=CALL_TIMEOUT_S)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise StudyError(
            f"{param('ray')} needs Ray, which is not installed; install the extra: "
            "pip install 'dltune[ray]'"
        ) from None
    return ray


def check_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT address, None for "auto"; an error for anything else.
    Checked with the other settings, before any data is loaded or storage opened."""
    if address == "auto":
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(
            f"{param('ray', address)} is not an address; give HOST:PORT of the head node "
            "(e.g. 127.0.0.1:6379) or 'auto'"
        )
    return host, int(port)


def connect(address: str) -> None:
    """Join the cluster at `address` ("auto" or HOST:PORT), or a clear error within seconds."""
    ray = _ray()
    if ray.is_initialized():
        return
    where = check_address(address)
    if where is not None:
        host, port = where
        try:  # ray.init may retry for a minute or more: check that something listens first
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise StudyError(
                f"{param('ray', address)}: nothing answers there ({exc}); start the cluster with "
                "`ray start --head` or check the address"
            ) from None
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StudyError(f"{param('ray', address)}: cannot join the cluster: {exc}") from None
