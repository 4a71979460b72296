"""A trial's whole training state as plain data: tensors and JSON, to checkpoint and resume.

A snapshot is everything a paused or running trial needs to go on as if it had never stopped:
its weights (and batch-norm buffers), the optimizer's moments and step counts, the state of
its dropout generators, its epoch and segment (the data order follows from the shuffle seed
and the epoch alone, see sequential.epoch_order), the training loss summed so far in the
current epoch, its learning curve and its best-epoch weights. It is written as one safetensors
file whose header carries the JSON (`to_bytes`); reading it runs no code and unpickles nothing.

Three kinds, one per handle an engine pauses:

- "run": a TrainingRun (the sequential engine, and a population's one-at-a-time members);
- "member": a padded dense member of a population (bucket.Member with its KeptState);
- "module": a stacked module member (module_bucket.ModuleMember with its ModuleKeptState).

A member's state is its own, unpadded and without its bucket, so it restores into any
population (`restore`), not only the one it came from.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import torch

from ..config import Config
from ..nets.dense import SeededDropout
from .bucket import KeptState, Member
from .module_bucket import ModuleKeptState, ModuleMember
from .result import EpochReport, TrainResult
from .sequential import SequentialEngine, TrainingRun

FORMAT = 1  # the layout of the JSON below; a reader refuses others
META_KEY = "dltune_snapshot"
KINDS = ("run", "member", "module")


class SnapshotError(ValueError):
    """A checkpoint that cannot be read back (another format, a damaged file)."""


class NothingToKeep(ValueError):
    """A handle with no training state yet (a trial held to start from scratch)."""


@dataclass
class Snapshot:
    """One trial's state: `kind` (KINDS), `meta` (JSON) and its tensors by name."""

    kind: str
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def epochs(self) -> float:
        """Epochs trained, a fraction where it stopped inside an epoch."""
        segments = max(1, int(self.meta["segments"]))
        return self.meta["epoch"] + self.meta["segment"] / segments

    @property
    def history(self) -> list[EpochReport]:
        return [_report(r) for r in self.meta["result"]["history"]]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


# ---- handles to snapshots --------------------------------------------------------------------


def snapshot_of(handle: Any) -> Snapshot:
    """The state of a paused handle (or a copy of a running one: Engine.snapshot). A handle
    whose state lives elsewhere (a Ray actor's) gives it by its own snapshot()."""
    if isinstance(handle, Snapshot):
        return handle
    if isinstance(handle, TrainingRun):
        return _of_run(handle)
    if isinstance(handle, ModuleMember):
        return _of_member(handle, "module")
    if isinstance(handle, Member):
        return _of_member(handle, "member")
    fetched = handle.snapshot()
    if fetched is None:
        raise NothingToKeep(f"{type(handle).__name__} holds no state to checkpoint yet")
    return fetched


def _of_run(run: TrainingRun) -> Snapshot:
    tensors = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    optimizer = run.optimizer.state_dict()
    for index, state in optimizer["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
    for i, generator in enumerate(_generators(run.model)):
        tensors[f"rng.{i}"] = generator.get_state()
    tensors["loss_sum"] = run.loss_sum.reshape(1)
    _put_best(tensors, run.result)
    meta = _progress(run.config, run.max_epochs, run.patience, run.keep_best_state, run.result)
    meta |= {
        "seed": run.seed,
        "epoch": run.epoch,
        "segment": run.segment,
        "segments": run.segments,
        "epoch_seconds": run.epoch_seconds,
        "checkpoint_value": _number(run.checkpoint_value),
    }
    return Snapshot("run", meta, _owned(tensors))


def _of_member(member: Member, kind: str) -> Snapshot:
    kept = member.kept
    if kept is None:
        raise ValueError(f"member {member.key!r} holds no kept state to snapshot")
    tensors: dict[str, torch.Tensor] = {}
    for part in ("params", "m", "v"):
        for i, tensor in enumerate(getattr(kept, part)):
            tensors[f"{part}.{i}"] = tensor
    rates: list[float] = []
    if isinstance(member, ModuleMember):
        assert isinstance(kept, ModuleKeptState)
        for i, tensor in enumerate(kept.buffers):
            tensors[f"buffers.{i}"] = tensor
        for i, source in enumerate(member.sources):
            rates.append(source.rate)
            if source.generator is not None:
                tensors[f"rng.{i}"] = source.generator.get_state()
    elif member.generator is not None:
        tensors["rng.0"] = member.generator.get_state()
    _put_best(tensors, member.result)
    meta = _progress(
        member.config, member.max_epochs, member.patience, member.keep_best_state, member.result
    )
    meta |= {
        "seed": member.seed,
        "epoch": member.epoch,
        "segment": member.segment,
        "segments": member.segments_per_epoch,
        "epoch_seconds": member.epoch_seconds,
        "loss_sum": member.loss_sum,
        "steps": kept.steps,
        "counts": {p: len(getattr(kept, p)) for p in ("params", "m", "v")},
        "buffers": len(kept.buffers) if isinstance(kept, ModuleKeptState) else 0,
        "rates": rates,
    }
    return Snapshot(kind, meta, _owned(tensors))


def _progress(
    config: Config,
    max_epochs: int,
    patience: int | None,
    keep_best_state: bool,
    result: TrainResult,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config": config.to_dict(),
        "max_epochs": max_epochs,
        "patience": patience,
        "keep_best_state": keep_best_state,
        "result": {
            "history": [_row(r) for r in result.history],
            "best_epoch": result.best_epoch,
            "best_value": _number(result.best_value),
            "diverged_epoch": result.diverged_epoch,
            "stopped_early": result.stopped_early,
            "seconds": result.seconds,
            "has_best_state": result.best_state is not None,
        },
    }


def _put_best(tensors: dict[str, torch.Tensor], result: TrainResult) -> None:
    for name, value in (result.best_state or {}).items():
        tensors[f"best.{name}"] = value


def _generators(model: torch.nn.Module) -> list[torch.Generator]:
    """The dropout generators a built-in network owns, each once, in module order."""
    seen: list[torch.Generator] = []
    for module in model.modules():
        generator = module.generator if isinstance(module, SeededDropout) else None
        if generator is not None and not any(generator is g for g in seen):
            seen.append(generator)
    return seen


# ---- snapshots back to handles ---------------------------------------------------------------


def restore_run(snapshot: Snapshot, engine: SequentialEngine, key: Any) -> TrainingRun:
    """A TrainingRun of `engine`'s trainer in the snapshot's state, named `key`."""
    if snapshot.kind != "run":
        raise ValueError(f"a {snapshot.kind!r} snapshot is not a training run's")
    meta, tensors = snapshot.meta, snapshot.tensors
    run = engine.trainer.start(
        Config.from_dict(meta["config"]),
        seed=int(meta["seed"]),
        epochs=int(meta["max_epochs"]),
        patience=meta["patience"],
        keep_best_state=bool(meta["keep_best_state"]),
        segments=int(meta["segments"]),
    )
    run.model.load_state_dict(_prefixed(tensors, "model."))
    optimizer = run.optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in _prefixed(tensors, "optim.").items():
        index, field_name = name.split(".", 1)
        state.setdefault(int(index), {})[field_name] = tensor.clone()
    run.optimizer.load_state_dict({"state": state, "param_groups": optimizer["param_groups"]})
    for i, generator in enumerate(_generators(run.model)):
        generator.set_state(tensors[f"rng.{i}"])
    run.epoch, run.segment = int(meta["epoch"]), int(meta["segment"])
    run.loss_sum = tensors["loss_sum"].reshape(()).to(engine.trainer.device).clone()
    run.epoch_seconds = float(meta["epoch_seconds"])
    run.checkpoint_value = _float(meta["checkpoint_value"])
    run.result = _result(meta, tensors)
    run.key = key
    return run


def restore_member(snapshot: Snapshot, key: Any, device: torch.device | str) -> Member:
    """A paused population member in the snapshot's state, named `key`: it joins any
    population's bucket through PopulationTrainer.resume."""
    if snapshot.kind not in ("member", "module"):
        raise ValueError(f"a {snapshot.kind!r} snapshot is not a population member's")
    meta, tensors = snapshot.meta, snapshot.tensors
    counts = meta["counts"]

    def part(name: str) -> list[torch.Tensor]:
        return [tensors[f"{name}.{i}"].to(device).clone() for i in range(counts[name])]

    kept_args = (part("params"), part("m"), part("v"), int(meta["steps"]))
    config = Config.from_dict(meta["config"])
    fields = (key, config, int(meta["seed"]), int(meta["max_epochs"]), meta["patience"])
    member: Member
    if snapshot.kind == "module":
        from .functional import MaskSource

        buffers = [tensors[f"buffers.{i}"].to(device).clone() for i in range(meta["buffers"])]
        member = ModuleMember(*fields, bool(meta["keep_best_state"]))
        member.kept = ModuleKeptState(*kept_args, buffers=buffers)
        member.sources = [
            MaskSource(rate, _generator(tensors.get(f"rng.{i}"), device))
            for i, rate in enumerate(meta["rates"])
        ]
    else:
        member = Member(*fields, bool(meta["keep_best_state"]))
        member.kept = KeptState(*kept_args)
        member.generator = _generator(tensors.get("rng.0"), device)
    member.epoch, member.segment = int(meta["epoch"]), int(meta["segment"])
    member.segments_per_epoch = int(meta["segments"])
    member.loss_sum = float(meta["loss_sum"])
    member.epoch_seconds = float(meta["epoch_seconds"])
    member.result = _result(meta, tensors)
    return member


def copy_member(member: Member, kept: KeptState) -> Member:
    """A running member's snapshot handle: a shallow copy holding a copy of its state (the
    running member trains on, untouched)."""
    twin = copy.copy(member)
    twin.kept = kept
    return twin


def _generator(state: torch.Tensor | None, device: torch.device | str) -> torch.Generator | None:
    if state is None:
        return None
    generator = torch.Generator(device=device)
    generator.set_state(state)
    return generator


def _result(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TrainResult:
    stored = meta["result"]
    best = _prefixed(tensors, "best.") if stored["has_best_state"] else None
    return TrainResult(
        status="running",
        history=[_report(r) for r in stored["history"]],
        best_epoch=stored["best_epoch"],
        best_value=None if stored["best_value"] is None else _float(stored["best_value"]),
        diverged_epoch=stored["diverged_epoch"],
        stopped_early=bool(stored["stopped_early"]),
        seconds=float(stored["seconds"]),
        best_state={k: v.clone() for k, v in best.items()} if best is not None else None,
    )


# ---- bytes -----------------------------------------------------------------------------------


def to_bytes(snapshot: Snapshot) -> bytes:
    """One safetensors file: the tensors, and the kind and JSON in its header's metadata."""
    from safetensors.torch import save

    header = json.dumps({"kind": snapshot.kind, "meta": snapshot.meta}, allow_nan=False)
    return save(snapshot.tensors, metadata={META_KEY: header})


def from_bytes(data: bytes) -> Snapshot:
    """The snapshot `to_bytes` wrote; SnapshotError for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        stored = json.loads(header["__metadata__"][META_KEY])
        tensors = load(data)
    except (struct.error, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise SnapshotError(f"not a dltune checkpoint ({type(exc).__name__}: {exc})") from exc
    if stored.get("kind") not in KINDS or stored.get("meta", {}).get("format") != FORMAT:
        raise SnapshotError(
            f"a checkpoint of another format ({stored.get('kind')!r}, format "
            f"{stored.get('meta', {}).get('format')!r}); this dltune reads format {FORMAT}"
        )
    return Snapshot(stored["kind"], stored["meta"], tensors)


# ---- helpers ---------------------------------------------------------------------------------


def _owned(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors wants tensors that share no memory)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _row(report: EpochReport) -> dict[str, Any]:
    return {
        "epoch": report.epoch,
        "train_loss": _number(report.train_loss),
        "val_loss": _number(report.val_loss),
        "val_metric": _number(report.val_metric),
        "seconds": report.seconds,
        "train_metric": _number(report.train_metric),
    }


def _report(row: dict[str, Any]) -> EpochReport:
    return EpochReport(
        int(row["epoch"]),
        _float(row["train_loss"]),
        _float(row["val_loss"]),
        _float(row["val_metric"]),
        float(row["seconds"]),
        _float(row["train_metric"]),
    )


def _number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: they are written as strings and read back exactly."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def _float(value: float | str | None) -> float:
    return math.nan if value is None else float(value)
