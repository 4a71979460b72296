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
- "module": a stacked module member (module_bucket.ModuleMember with its ModuleKeptState);
- "folds": a cross-validated trial (folds.py): its K fold members' snapshots, each's tensors
  under "<fold>/", and the mean curve reported so far.

This module is the format alone: a TrainingRun makes its own snapshot and loads one
(sequential.py), and capture.py does it for any handle and for population members (apart, so
that no engine module imports one that imports it back).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import torch

from ..config import Config
from ..nets.dense import SeededDropout
from .result import EpochReport, TrainResult

FORMAT = 1  # the layout of the JSON below; a reader refuses others
META_KEY = "dltune_snapshot"
KINDS = ("run", "member", "module", "folds")


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


# ---- parts the handles' snapshots share (sequential.py, capture.py) ----------------------


def progress_meta(
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
            "best_value": as_json_number(result.best_value),
            "diverged_epoch": result.diverged_epoch,
            "stopped_early": result.stopped_early,
            "seconds": result.seconds,
            "start_loss": as_json_number(result.start_loss),
            "has_best_state": result.best_state is not None,
        },
    }


def put_best(tensors: dict[str, torch.Tensor], result: TrainResult) -> None:
    for name, value in (result.best_state or {}).items():
        tensors[f"best.{name}"] = value
    if result.best_outputs is not None:
        tensors["best_outputs"] = torch.as_tensor(result.best_outputs)


def dropout_generators(model: torch.nn.Module) -> list[torch.Generator]:
    """The dropout generators a built-in network owns, each once, in module order."""
    seen: list[torch.Generator] = []
    for module in model.modules():
        generator = module.generator if isinstance(module, SeededDropout) else None
        if generator is not None and not any(generator is g for g in seen):
            seen.append(generator)
    return seen


def generator_from(
    state: torch.Tensor | None, device: torch.device | str
) -> torch.Generator | None:
    if state is None:
        return None
    generator = torch.Generator(device=device)
    generator.set_state(state)
    return generator


def result_from(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TrainResult:
    stored = meta["result"]
    best = prefixed(tensors, "best.") if stored["has_best_state"] else None
    return TrainResult(
        status="running",
        history=[_report(r) for r in stored["history"]],
        best_epoch=stored["best_epoch"],
        best_value=None if stored["best_value"] is None else as_float(stored["best_value"]),
        diverged_epoch=stored["diverged_epoch"],
        stopped_early=bool(stored["stopped_early"]),
        seconds=float(stored["seconds"]),
        start_loss=as_float(stored.get("start_loss")),  # absent (NaN) before it was kept
        best_state={k: v.clone() for k, v in best.items()} if best is not None else None,
        best_outputs=tensors["best_outputs"].numpy().copy() if "best_outputs" in tensors else None,
    )


def folds_snapshot(
    parts: list[Snapshot], history: list[EpochReport], patience: int | None
) -> Snapshot:
    """A cross-validated trial's snapshot: its fold members' (in fold order) as one."""
    first = parts[0].meta
    meta = {
        "format": FORMAT,
        # what a trial's checkpoint tells its reader (a Ray driver): fold 0's configuration,
        # seed (the trial's own) and length; the trial's patience (its folds train without)
        "config": first["config"],
        "seed": first["seed"],
        "max_epochs": first["max_epochs"],
        "keep_best_state": first["keep_best_state"],
        "epoch": first["epoch"],
        "segment": first["segment"],
        "segments": first["segments"],
        "patience": patience,
        "result": {"history": [_row(r) for r in history]},
        "parts": [{"kind": p.kind, "meta": p.meta} for p in parts],
    }
    tensors = {f"{i}/{name}": t for i, p in enumerate(parts) for name, t in p.tensors.items()}
    return Snapshot("folds", meta, tensors)


def fold_parts(snapshot: Snapshot) -> list[Snapshot]:
    """The fold members' snapshots a "folds" snapshot holds, in fold order."""
    parts = []
    for i, part in enumerate(snapshot.meta["parts"]):
        tensors = prefixed(snapshot.tensors, f"{i}/")
        parts.append(Snapshot(part["kind"], part["meta"], tensors))
    return parts


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


def owned(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (safetensors wants tensors that share no memory)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _row(report: EpochReport) -> dict[str, Any]:
    return {
        "epoch": report.epoch,
        "train_loss": as_json_number(report.train_loss),
        "val_loss": as_json_number(report.val_loss),
        "val_metric": as_json_number(report.val_metric),
        "seconds": report.seconds,
        "train_metric": as_json_number(report.train_metric),
    }


def _report(row: dict[str, Any]) -> EpochReport:
    return EpochReport(
        int(row["epoch"]),
        as_float(row["train_loss"]),
        as_float(row["val_loss"]),
        as_float(row["val_metric"]),
        float(row["seconds"]),
        as_float(row["train_metric"]),
    )


def as_json_number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: they are written as strings and read back exactly."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def as_float(value: float | str | None) -> float:
    return math.nan if value is None else float(value)
