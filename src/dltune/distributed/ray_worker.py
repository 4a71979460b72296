"""The body of a Ray actor: the data and one engine, driven by RayEngine one call at a time.

A population actor (placement.py) holds a PopulationTrainer on its device with the node's
threads, so one `advance` trains a segment of all its trials at once, stacked; a user's module
that torch.func cannot stack trains one at a time inside it (its notes say so). A sequential
actor holds a SequentialEngine, one trial. Everything crossing to the driver is plain data:
configurations as dicts, reports, results (their best weights moved to the CPU, so a driver
without a GPU can take them).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ..config import Config
from ..engine import EpochReport, TrainResult
from ..engine.result import Checkpoint
from .placement import ActorPlan

# What one advance call gives back: each epoch's report, the trials that ended, the checkpoints
# reached, the actor's member-epochs so far, the trials it trained in the call, its notes, and
# the seconds it has spent in advance calls so far.
Advanced = tuple[
    list[tuple[Any, EpochReport]],
    list[tuple[Any, TrainResult]],
    list[Checkpoint],
    float,
    int,
    list[str],
    float,
]


class TrialWorker:
    """A Ray actor's state: its engine, its paused trials, the trials it holds unstarted."""

    def __init__(
        self,
        dataset: Any,
        metric: str,
        shuffle_seed: int,
        segments: int,
        model: dict[str, Any] | None,
        plan: dict[str, Any],
    ) -> None:
        import torch

        self.plan = ActorPlan(**plan)
        torch.set_num_threads(self.plan.threads)
        network = None
        if model is not None:  # a user's build, imported on the actor from its record
            from ..usermodel import ModelSource, UserNetworks

            network = UserNetworks(ModelSource.from_dict(model).build, dataset.input_shape)
        self.engine: Any
        if self.plan.kind == "population":
            self.engine = _population(dataset, metric, shuffle_seed, segments, network, self.plan)
        else:
            from ..engine.sequential import SequentialEngine, SequentialTrainer

            trainer = SequentialTrainer(
                dataset,
                metric=metric,
                device=self.plan.device,
                shuffle_seed=shuffle_seed,
                network=network,
            )
            self.engine = SequentialEngine(trainer, segments)
        if getattr(dataset, "folds", None) is not None:
            # cross-validated: the actor trains each trial's K fold members stacked and
            # hands the driver whole trials (their fold means), as a local worker does
            from ..engine.folds import FoldEngine
            from ..engine.losses import metric_named

            if self.plan.kind != "population":
                self.engine = _population(
                    dataset, metric, shuffle_seed, segments, network, self.plan
                )
            self.engine = FoldEngine(self.engine, dataset.folds.k, metric_named(metric))
        self.specs: dict[Any, tuple[dict[str, Any], dict[str, Any]]] = {}  # config, spec
        self.paused: dict[Any, Any] = {}
        # Restarted here after their actor died while they were paused: they start when resumed
        self.unstarted: dict[Any, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.busy = 0.0  # seconds in advance calls: training, and evaluating at epochs

    def where(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def room(self, config: dict[str, Any]) -> bool:
        """Whether a trial of `config` fits beside the running ones (an empty engine takes
        any one, as the study loop's rule)."""
        return len(self.engine) == 0 or bool(self.engine.has_room(Config.from_dict(config)))

    def add(self, key: Any, config: dict[str, Any], spec: dict[str, Any], until: float) -> None:
        self.specs[key] = (config, spec)
        self.engine.add(key, Config.from_dict(config), until=until, **spec)

    def hold(self, key: Any, config: dict[str, Any], spec: dict[str, Any]) -> None:
        """Keep a trial paused without state: it starts from scratch when resumed."""
        self.specs[key] = (config, spec)
        self.unstarted[key] = (config, spec)

    def resume(self, key: Any, until: float) -> None:
        if key in self.unstarted:
            config, spec = self.unstarted.pop(key)
            self.engine.add(key, Config.from_dict(config), until=until, **spec)
        else:
            self.engine.resume(self.paused.pop(key), until)

    def set_until(self, key: Any, until: float) -> None:
        self.engine.set_until(key, until)

    def pause(self, key: Any) -> None:
        try:
            self.paused[key] = self.engine.pause(key)
        except KeyError:  # added but not trained yet (a population's pending member)
            self.engine.stop(key, "pruned")
            self.unstarted[key] = self.specs[key]

    def snapshot(self, key: Any) -> bytes | None:
        """A trial's whole state as checkpoint bytes (engine.snapshot), paused or running;
        None for one that has not trained yet."""
        from ..engine.capture import snapshot_of
        from ..engine.snapshot import to_bytes

        if key in self.unstarted:
            return None
        handle = self.paused[key] if key in self.paused else self.engine.snapshot(key)
        return to_bytes(snapshot_of(handle)) if handle is not None else None

    def restore(self, key: Any, data: bytes, config: dict[str, Any], spec: dict[str, Any]) -> bool:
        """Hold a trial paused in a checkpoint's state (to resume); False when this engine
        cannot take that kind of checkpoint."""
        from ..engine.snapshot import from_bytes

        handle = self.engine.restore(from_bytes(data), key)
        if handle is None:
            return False
        self.specs[key] = (config, spec)
        self.paused[key] = handle
        return True

    def stop(self, key: Any, status: str) -> TrainResult:
        self.specs.pop(key, None)
        return _portable(self.engine.stop(key, status))

    def release(self, key: Any) -> TrainResult:
        """A paused trial let go: its result so far."""
        self.specs.pop(key, None)
        if self.unstarted.pop(key, None) is not None:
            return TrainResult(status="pruned")
        return _portable(self.paused.pop(key).result)

    def advance(self) -> Advanced:
        reports: list[tuple[Any, EpochReport]] = []

        def on_epoch(key: Any, report: EpochReport) -> bool:
            reports.append((key, report))
            return True

        started = time.perf_counter()
        trained = len(self.engine)
        finished, checkpoints = self.engine.advance(on_epoch)
        for key, _result in finished:
            self.specs.pop(key, None)
        done = [(key, _portable(result)) for key, result in finished]
        notes = list(getattr(self.engine, "notes", []))
        self.busy += time.perf_counter() - started
        epochs = self.engine.epochs_trained
        return reports, done, checkpoints, epochs, trained, notes, self.busy


def _population(
    dataset: Any,
    metric: str,
    shuffle_seed: int,
    segments: int,
    network: Any,
    plan: ActorPlan,
) -> Any:
    """A PopulationTrainer on the plan's device, with its share of the memory budget."""
    import torch

    from ..engine.memory import resolve_memory
    from ..engine.population import PopulationTrainer

    device = torch.device(plan.device)
    budget = resolve_memory(plan.memory, device) // max(1, plan.share)
    return PopulationTrainer(
        dataset,
        metric=metric,
        device=device,
        shuffle_seed=shuffle_seed,
        memory=budget,
        segments=segments,
        network=network,
    )


def _portable(result: TrainResult) -> TrainResult:
    """`result` with its best weights on the CPU (they may be on the actor's GPU), its fold
    members' too."""
    for fold in result.folds:
        _portable(fold)
    if result.best_state is not None:
        result.best_state = {
            name: value.detach().cpu() if hasattr(value, "detach") else value
            for name, value in result.best_state.items()
        }
    return result
