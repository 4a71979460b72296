"""Any paused or running handle's snapshot, and population members rebuilt from theirs.

A member's state is its own, unpadded and without its bucket, so it restores into any
population, not only the one it came from (the format: snapshot.py).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..config import Config
from .bucket_base import KeptState, Member
from .module_bucket import ModuleKeptState, ModuleMember
from .snapshot import (
    NothingToKeep,
    Snapshot,
    generator_from,
    owned,
    progress_meta,
    put_best,
    result_from,
)


def snapshot_of(handle: Any) -> Snapshot:
    """The state of a paused handle (or a copy of a running one: Engine.snapshot). A handle
    whose state is not a member's (a TrainingRun, a Ray actor's trial) gives it by its own
    snapshot()."""
    if isinstance(handle, Snapshot):
        return handle
    if isinstance(handle, ModuleMember):
        return _of_member(handle, "module")
    if isinstance(handle, Member):
        return _of_member(handle, "member")
    fetched = handle.snapshot()
    if fetched is None:
        raise NothingToKeep(f"{type(handle).__name__} holds no state to checkpoint yet")
    return fetched


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
    put_best(tensors, member.result)
    meta = progress_meta(
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
        "fold": member.fold,
    }
    return Snapshot(kind, meta, owned(tensors))


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
            MaskSource(rate, generator_from(tensors.get(f"rng.{i}"), device))
            for i, rate in enumerate(meta["rates"])
        ]
    else:
        member = Member(*fields, bool(meta["keep_best_state"]))
        member.kept = KeptState(*kept_args)
        member.generator = generator_from(tensors.get("rng.0"), device)
    member.epoch, member.segment = int(meta["epoch"]), int(meta["segment"])
    member.fold = meta.get("fold")
    member.segments_per_epoch = int(meta["segments"])
    member.loss_sum = float(meta["loss_sum"])
    member.epoch_seconds = float(meta["epoch_seconds"])
    member.result = result_from(meta, tensors)
    return member


def copy_member(member: Member, kept: KeptState) -> Member:
    """A running member's snapshot handle: a shallow copy holding a copy of its state (the
    running member trains on, untouched)."""
    twin = copy.copy(member)
    twin.kept = kept
    return twin
