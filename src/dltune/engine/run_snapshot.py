"""A sequential training run's snapshot, and a run rebuilt from one (the format: snapshot.py).

Apart from capture.py so that the sequential engine restores its runs without importing the
population's modules (they import it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..config import Config
from .snapshot import (
    Snapshot,
    as_float,
    as_json_number,
    dropout_generators,
    owned,
    prefixed,
    progress_meta,
    put_best,
    result_from,
)

if TYPE_CHECKING:
    from .sequential import SequentialTrainer, TrainingRun


def snapshot_of_run(run: TrainingRun) -> Snapshot:
    """Its weights, optimizer state, dropout generators, position and curve."""
    tensors = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    optimizer = run.optimizer.state_dict()
    for index, state in optimizer["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
    for i, generator in enumerate(dropout_generators(run.model)):
        tensors[f"rng.{i}"] = generator.get_state()
    tensors["loss_sum"] = run.loss_sum.reshape(1)
    put_best(tensors, run.result)
    meta = progress_meta(run.config, run.max_epochs, run.patience, run.keep_best_state, run.result)
    meta |= {
        "seed": run.seed,
        "epoch": run.epoch,
        "segment": run.segment,
        "segments": run.segments,
        "epoch_seconds": run.epoch_seconds,
        "checkpoint_value": as_json_number(run.checkpoint_value),
    }
    return Snapshot("run", meta, owned(tensors))


def restore_run(snapshot: Snapshot, trainer: SequentialTrainer, key: Any) -> TrainingRun:
    """A TrainingRun of `trainer` in the snapshot's state, named `key`."""
    if snapshot.kind != "run":
        raise ValueError(f"a {snapshot.kind!r} snapshot is not a training run's")
    meta, tensors = snapshot.meta, snapshot.tensors
    run = trainer.start(
        Config.from_dict(meta["config"]),
        seed=int(meta["seed"]),
        epochs=int(meta["max_epochs"]),
        patience=meta["patience"],
        keep_best_state=bool(meta["keep_best_state"]),
        segments=int(meta["segments"]),
    )
    run.model.load_state_dict(prefixed(tensors, "model."))
    optimizer = run.optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in prefixed(tensors, "optim.").items():
        index, field_name = name.split(".", 1)
        state.setdefault(int(index), {})[field_name] = tensor.clone()
    run.optimizer.load_state_dict({"state": state, "param_groups": optimizer["param_groups"]})
    for i, generator in enumerate(dropout_generators(run.model)):
        generator.set_state(tensors[f"rng.{i}"])
    run.epoch, run.segment = int(meta["epoch"]), int(meta["segment"])
    run.loss_sum = tensors["loss_sum"].reshape(()).to(trainer.device).clone()
    run.epoch_seconds = float(meta["epoch_seconds"])
    run.checkpoint_value = as_float(meta["checkpoint_value"])
    run.result = result_from(meta, tensors)
    run.key = key
    return run
