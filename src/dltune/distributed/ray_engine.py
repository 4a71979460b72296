"""Trials trained on a Ray cluster, behind the study loop's engine interface.

The study loop, the sampler and the scheduler stay in this process (the driver): it asks the
study for configurations, decides at rungs, and tells results to storage. Each Ray actor
(ray_worker.py) holds the data and an engine: by default a population (PopulationTrainer), one
actor per node with all its CPU threads, or one per GPU on nodes with GPUs (placement.py); or,
the old arrangement, a SequentialEngine per CPU. The driver's slots are the sum of the actors'
slots; it routes each trial's add, pause, resume and stop to the actor that holds it, and at
every checkpoint sends one `advance` to each busy actor, all in flight at once, which trains a
segment of all that actor's trials. It sends plain data (a configuration as a dict, a seed, a
target epoch) and gets back each epoch's report, checkpoints at rungs and finished results.
Paused trials keep their weights on their actor and are promoted there.

Faults: when an actor dies (its node lost, its process killed), each of its trials, running or
paused, is *restarted from scratch* on a live actor with the same configuration and seed (the
epoch-boundary state lived in the dead process; a trial's seed fixes its initial weights,
dropout and data order, so its curve is reproduced, up to the float rounding of the population
it joins, not changed); a paused one waits there, unstarted, until promoted. The study goes on
while one actor lives; the notes say how many trials were restarted.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..engine import TrainResult
from ..engine.result import Checkpoint
from ..errors import StudyError, param
from .placement import ActorPlan, plan_actors
from .ray_worker import TrialWorker

if TYPE_CHECKING:
    from ..engine.snapshot import Snapshot

CALL_TIMEOUT_S = 900  # one segment of one actor's trials per call: minutes at most
# A segment is given this many times the longest one its actor has taken, when that is more
# than CALL_TIMEOUT_S: a slow actor (a large population, a slow node) is not taken for a dead
# one; past it, the actor is killed (its CPUs and GPU freed) and its trials go on elsewhere.
SLOW_FACTOR = 10.0
CONNECT_TIMEOUT_S = 10
START_TIMEOUT_S = 300  # every actor placed and its data loaded (import torch, copy the arrays)


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

    def snapshot(self) -> Snapshot | None:
        """Its state, fetched from its actor (a checkpoint: engine.snapshot_of takes it)."""
        return self.engine.snapshot(self.key)


class RayEngine:
    """The study loop's engine over Ray actors (see the module's note)."""

    def __init__(self, actors: list[Any], plans: list[ActorPlan]) -> None:
        self.actors: dict[int, Any] = dict(enumerate(actors))
        self.plans: dict[int, ActorPlan] = dict(enumerate(plans))
        self.trials: dict[Any, _Trial] = {}
        self.done_epochs: dict[int, float] = {}  # per actor, including dead ones
        self.restarted: list[Any] = []  # keys restarted after their actor died
        self.resumed: list[Any] = []  # of those, the ones that went on from a checkpoint
        self.saved: dict[Any, bytes] = {}  # each trial's last checkpoint (snapshot)
        self.nodes: list[dict[str, Any]] = []  # where each actor runs (host, pid)
        self.peak: dict[int, int] = {}  # per actor: the most trials it trained in one call
        self.engine_notes: list[str] = []  # the actors' engines' (an unstackable module...)
        self.busy: dict[int, float] = {}  # per actor: seconds in its advance calls
        self.longest: dict[int, float] = {}  # per actor: its longest segment's seconds
        self.killed: list[int] = []  # actors killed after a call timed out
        self.started = time.perf_counter()
        self._placed: tuple[Config, int] | None = None  # has_room's choice, for add

    @classmethod
    def start(
        cls,
        address: str,
        dataset: Any,
        metric: str,
        shuffle_seed: int,
        segments: int,
        model: dict[str, Any] | None = None,
        *,
        kind: str = "population",
        population: int = 16,
        memory: int | str | None = None,
        device: str = "auto",
    ) -> RayEngine:
        """Actors on the cluster at `address` (placement.py: `kind`, `population` trials
        each, `memory` per node, `device`); `model`: a user model's source record
        (dltune.usermodel.source), which each actor imports again."""
        ray = _ray()
        connect(address)
        plans = plan_actors(
            ray.nodes(), kind=kind, device=device, population=population, memory=memory
        )
        if not plans:
            raise StudyError(
                f"{param('ray', address)}: the cluster has no node with a CPU or GPU to train on"
            )
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(max_restarts=0)(TrialWorker)
        data = ray.put(dataset)
        actors = [
            remote.options(
                num_cpus=plan.cpus,
                num_gpus=plan.gpus,
                scheduling_strategy=NodeAffinitySchedulingStrategy(plan.node, soft=False),
            ).remote(data, metric, shuffle_seed, segments, model, plan.to_dict())
            for plan in plans
        ]
        engine = cls(actors, plans)
        try:
            engine.nodes = ray.get([a.where.remote() for a in actors], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise StudyError(
                f"{param('ray', address)}: the workers did not start within {START_TIMEOUT_S} s; "
                "each takes a whole node's CPUs (or one GPU): are other jobs holding them? "
                "`ray status` shows what is in use"
            ) from None
        return engine

    @property
    def slots(self) -> int:
        """Trials trained at once: the live actors' slots."""
        return sum(self.plans[i].slots for i in self.actors)

    @property
    def stacks(self) -> bool:
        """Whether its actors train populations (stacked buckets that trials of one shape
        fill: the study loop's shape filling helps here as with a PopulationTrainer)."""
        return any(self.plans[i].kind == "population" for i in self.actors)

    def describe(self, address: str) -> str:
        """The note of where the study trains, e.g. "Ray at HOST:PORT: 2 workers, 32 trials
        at once: host:pid (a population of 16, cpu, 8 threads), ..."."""
        where = ", ".join(
            f"{n['host']}:{n['pid']} ({self.plans[i].describe()})" for i, n in enumerate(self.nodes)
        )
        return f"Ray at {address}: {len(self.actors)} workers, {self.slots} trials at once: {where}"

    @property
    def notes(self) -> list[str]:
        """What the user should know at the end: how many trials each actor trained at once,
        trials restarted after a worker died, the actors' engines' own notes."""
        peaks = ", ".join(
            f"{n['host']}:{n['pid']} {self.peak.get(i, 0)}" for i, n in enumerate(self.nodes)
        )
        notes = [f"Ray workers, the most trials each trained at once: {peaks}"]
        elapsed = time.perf_counter() - self.started
        if self.busy and elapsed > 0:  # the rest: waiting on the driver (ask, decide, store)
            shares = ", ".join(f"{100 * self.busy.get(i, 0) / elapsed:.0f}%" for i in self.plans)
            notes.append(f"Ray workers training, of the study's time: {shares}")
        scratch = set(self.restarted) - set(self.resumed)
        if self.resumed:
            notes.append(
                f"{len(set(self.resumed))} trials resumed from their last checkpoint on another "
                "Ray worker after theirs died"
            )
        if scratch:
            notes.append(
                f"{len(scratch)} trials restarted from scratch after their Ray worker died "
                "(same configuration and seed; no checkpoint taken yet)"
            )
        return notes + self.engine_notes

    # ---- the engine interface ----

    @property
    def epochs_trained(self) -> float:
        return sum(self.done_epochs.values())

    def __len__(self) -> int:
        return sum(not t.paused for t in self.trials.values())

    def has_room(self, config: Config) -> bool:
        """A live actor with a free slot whose population has memory for `config` (asked of
        it); add() then places the trial there."""
        self._placed = None
        for index in self._free(config):
            if self.plans[index].kind == "sequential" or self._ask(index, config):
                self._placed = (config, index)
                return True
        return False

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
        placed, self._placed = self._placed, None
        if placed is not None and placed[0] is config and placed[1] in self.actors:
            index = placed[1]
        else:
            index = self._idlest()
        spec = {"seed": seed, "patience": patience, "keep_best_state": keep_best_state}
        trial = _Trial(config.to_dict(), spec, until or float(config.epochs), index)
        self.trials[key] = trial
        # on a lost actor, _lose has already started it again elsewhere
        self._try(trial.actor, "add", key, trial.config, spec, trial.until)

    def set_until(self, key: Any, until: float) -> None:
        self.trials[key].until = until
        self._try(self.trials[key].actor, "set_until", key, until)

    def pause(self, key: Any) -> RemotePaused:
        trial = self.trials[key]
        trial.paused = True  # should its actor die now, _lose holds it, unstarted, elsewhere
        self._try(trial.actor, "pause", key)
        return RemotePaused(self, key)

    def resume(self, paused: RemotePaused, until: float | None = None) -> None:
        trial = self.trials[paused.key]
        trial.until = until if until is not None else trial.until
        trial.paused = False  # should its actor die now, _lose starts it again elsewhere
        self._try(trial.actor, "resume", paused.key, trial.until)

    def snapshot(self, key: Any) -> Snapshot | None:
        """A trial's state, fetched from its actor, paused or running; kept here too, so that
        if its actor dies the trial resumes from it on another (_lose)."""
        from ..engine.snapshot import from_bytes

        try:
            data = self._call(self.trials[key].actor, "snapshot", key)
        except _WorkerLost:
            return None
        if data is None:
            return None
        self.saved[key] = data
        return from_bytes(data)

    def restore(self, snapshot: Snapshot, key: Any) -> RemotePaused | None:
        """A checkpoint's trial, held paused on the idlest actor (to resume), or None when
        that actor's engine cannot take the checkpoint's kind."""
        from ..engine.snapshot import to_bytes

        meta = snapshot.meta
        spec = {
            "seed": meta["seed"],
            "patience": meta["patience"],
            "keep_best_state": meta["keep_best_state"],
        }
        trial = _Trial(meta["config"], spec, float(meta["max_epochs"]), self._idlest(), True)
        data = to_bytes(snapshot)
        self.trials[key] = trial
        self.saved[key] = data
        if not self._hold_saved(key, trial):
            del self.trials[key], self.saved[key]
            return None
        return RemotePaused(self, key)

    def _hold_saved(self, key: Any, trial: _Trial) -> bool:
        """Put a trial's saved checkpoint on its actor, paused; False if it cannot take it."""
        try:
            ok = self._call(trial.actor, "restore", key, self.saved[key], trial.config, trial.spec)
        except _WorkerLost:  # _lose placed it on another actor already
            return True
        return bool(ok)

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        self.saved.pop(key, None)
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
        self.saved.pop(key, None)
        trial = self.trials[key]
        try:
            result = self._call(trial.actor, "release", key)
        except _WorkerLost:  # its state died with its actor; drop the copy held elsewhere
            result = TrainResult(status="pruned")
            self._try(self.trials[key].actor, "release", key)
        del self.trials[key]
        return result

    def advance(
        self, on_epoch: Any = None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """One segment of every running trial: one call per busy actor, all in flight at
        once, each training all of its trials."""
        ray = _ray()
        busy = sorted({t.actor for t in self.trials.values() if not t.paused})
        calls = {i: self.actors[i].advance.remote() for i in busy}
        finished: list[tuple[Any, TrainResult]] = []
        checkpoints: list[Checkpoint] = []
        started = time.perf_counter()
        for i, ref in calls.items():
            try:
                reports, done, reached, epochs, trained, notes, busy = ray.get(
                    ref, timeout=self.timeout(i)
                )
            except _lost_errors(ray) as exc:
                self._kill_if_hung(i, exc)
                self._lose(i, exc)
                continue
            # an upper bound of its segment: the calls run at once, collected in turn
            self.longest[i] = max(self.longest.get(i, 0.0), time.perf_counter() - started)
            self.done_epochs[i] = epochs
            self.busy[i] = busy
            self.peak[i] = max(self.peak.get(i, 0), trained)
            self.engine_notes += [n for n in notes if n not in self.engine_notes]
            for key, report in reports:
                if on_epoch is not None:
                    on_epoch(key, report)
            for key, result in done:
                del self.trials[key]
                self.saved.pop(key, None)
                finished.append((key, result))
            checkpoints.extend(reached)
        return finished, checkpoints

    # ---- placing trials ----

    def _load(self) -> dict[int, int]:
        """Running (not paused) trials per live actor."""
        load = {i: 0 for i in self.actors}
        for t in self.trials.values():
            if t.actor in load and not t.paused:
                load[t.actor] += 1
        return load

    def _free(self, config: Config) -> list[int]:
        """Live actors with a free slot: first those training the most trials of `config`'s
        shape (which it may share a bucket with), then the least full (by share of slots)."""
        load = self._load()
        shape = _shape(config.to_dict())
        alike = {i: 0 for i in self.actors}
        for t in self.trials.values():
            if t.actor in alike and not t.paused and _shape(t.config) == shape:
                alike[t.actor] += 1
        free = [i for i in self.actors if load[i] < self.plans[i].slots]
        return sorted(free, key=lambda i: (-alike[i], load[i] / self.plans[i].slots, i))

    def _idlest(self) -> int:
        """The live actor one more trial fills least (a full cluster's too: after a loss)."""
        load = self._load()
        return min(load, key=lambda i: ((load[i] + 1) / self.plans[i].slots, i))

    def _ask(self, index: int, config: Config) -> bool:
        """Whether actor `index` has memory for `config`; False when it was lost."""
        try:
            return bool(self._call(index, "room", config.to_dict()))
        except _WorkerLost:
            return False

    # ---- faults ----

    def _lose(self, index: int, exc: BaseException) -> None:
        """An actor died: its trials go on on the live ones, from their last checkpoint where
        one was taken (snapshot), else from scratch (a paused one is held there, to go on when
        promoted)."""
        self.actors.pop(index, None)
        if not self.actors:
            raise StudyError(f"every Ray worker is gone; the last died with: {exc}") from exc
        for key, trial in self.trials.items():
            if trial.actor != index:
                continue
            trial.actor = self._idlest()
            self.restarted.append(key)
            # should that actor be lost too, the nested _lose places this trial again
            if key in self.saved and self._hold_saved(key, trial):
                self.resumed.append(key)
                if not trial.paused:
                    self._try(trial.actor, "resume", key, trial.until)
            elif trial.paused:
                self._try(trial.actor, "hold", key, trial.config, trial.spec)
            else:
                self._try(trial.actor, "add", key, trial.config, trial.spec, trial.until)

    def timeout(self, index: int) -> float:
        """How long a call to actor `index` may take before it counts as hung."""
        return max(CALL_TIMEOUT_S, SLOW_FACTOR * self.longest.get(index, 0.0))

    def _kill_if_hung(self, index: int, exc: BaseException) -> None:
        """A call that timed out: its actor may still be alive, holding its CPUs and GPU (a
        hung call, a node cut off): kill it, so that Ray frees them, before its trials go on
        elsewhere. A dead actor's error needs nothing more."""
        ray = _ray()
        if not isinstance(exc, ray.exceptions.GetTimeoutError) or index not in self.actors:
            return
        with contextlib.suppress(Exception):  # already gone: nothing holds its resources
            ray.kill(self.actors[index], no_restart=True)
        self.killed.append(index)

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
                getattr(self.actors[index], method).remote(*args), timeout=self.timeout(index)
            )
        except _lost_errors(ray) as exc:
            self._kill_if_hung(index, exc)
            self._lose(index, exc)
            raise _WorkerLost(str(exc)) from exc


def _shape(config: dict[str, Any]) -> tuple[Any, ...]:
    """What trials must share to train in one bucket of a population, roughly: batch size,
    depth, convolutional blocks (bucket.py and module_bucket.py ask more: widths, filters)."""
    return (config.get("batch_size"), config.get("layers"), config.get("conv_layers", 0))


class _WorkerLost(Exception):
    pass


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    return (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError)


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
