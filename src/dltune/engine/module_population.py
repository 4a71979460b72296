"""The part of a population that is not the padded dense network: convolutional networks and
users' modules, stacked in exact-shape buckets (module_bucket.py), or trained one at a time
where their forward cannot be stacked.

Each configuration's architecture is read once from a module the trainer's factory builds
(functional.signature: parameter and buffer names and shapes, the submodules, the
configuration's architecture keys), with what a member costs in memory. Members of one
signature, batch size and segment share a bucket. The first time a signature trains, one
vmapped step on copies (StackedModule.problem) checks that its forward can be stacked; where
it cannot, that architecture's members train in a sequential engine (the sequential trainer's
TrainingRun, with the same factory), and a note says why, once per architecture (`notes`, and
a RuntimeWarning).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..config import Config
from ..nets import NetworkFactory
from .bucket import Member, pause_member
from .device_data import DeviceData
from .functional import TRAINING_FIELDS, StackedModule, signature
from .module_bucket import ModuleBucket, ModuleMember
from .result import TrainResult
from .sequential import SequentialEngine, SequentialTrainer, TrainingRun
from .stacked_optim import UpdateKernel

if TYPE_CHECKING:
    from ..data import Dataset


# As memory.py counts a dense member: per parameter its weight, gradient, two moments and two
# temporaries; per activation its value, gradient and the products around it.
FLOATS_PER_PARAMETER = 6
FLOATS_PER_ACTIVATION = 8


def module_member_bytes(n_params: int, row_floats: int, n_features: int, batch_size: int) -> int:
    """An estimate of one stacked member's footprint: its parameters and the activations of a
    batch (`row_floats`: every layer's outputs for one example)."""
    activations = batch_size * (n_features + FLOATS_PER_ACTIVATION * row_floats)
    return 4 * (FLOATS_PER_PARAMETER * n_params + activations)


@dataclass
class Architecture:
    """What one architecture is: the signature members must share to stack, its size, and a
    name for notes."""

    signature: Any
    n_params: int
    row_floats: int  # activation floats per example, measured on one forward
    label: str


@dataclass
class Verdict:
    """A signature's template, once its first members came to train; `problem`: why it
    cannot stack (None: it can)."""

    stacked: StackedModule | None
    problem: str | None


def _activation_floats(module: nn.Module, n_features: int, device: torch.device) -> int:
    """Floats of every leaf module's output per example, on one forward of two zero rows (a
    measure of the activations training keeps)."""
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    hooks = [m.register_forward_hook(count) for m in module.modules() if not list(m.children())]
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(2, n_features, device=device))
    except Exception:  # the forward's own errors surface when it trains, with its trial
        return 0
    finally:
        for hook in hooks:
            hook.remove()
    return total // 2


class ModulePopulation:
    """Module buckets, the architectures they stack, and the one-at-a-time fallback."""

    def __init__(
        self,
        data: Dataset,
        tensors: DeviceData,
        network: NetworkFactory,
        *,
        builtin: bool,
        kernel: UpdateKernel,
        shuffle_seed: int,
        segments: int,
        track_train: bool,
    ) -> None:
        self.data = data
        self.tensors = tensors
        self.network = network
        self.builtin = builtin  # dltune's own families: dropout is fed in any case
        self.kernel = kernel
        self.shuffle_seed = shuffle_seed
        self.segments = segments
        self.track_train = track_train
        self.buckets: list[ModuleBucket] = []
        self.pending: list[ModuleMember] = []
        self.sequential: SequentialEngine | None = None  # made for the first unstackable one
        self.notes: list[str] = []
        self._architectures: dict[Any, Architecture] = {}
        self._verdicts: dict[Any, Verdict] = {}

    # ---- architectures --------------------------------------------------------------------

    def build(self, config: Config, seed: int) -> nn.Module:
        return self.network(config, self.tensors.n_outputs, seed=seed, device=self.tensors.device)

    def architecture(self, config: Config) -> Architecture:
        """The architecture of `config`, read from one module built for it (cached by the
        configuration's architecture keys and dropout)."""
        plain = {k: v for k, v in config.to_dict().items() if k not in TRAINING_FIELDS}
        cache_key = (repr(sorted(plain.items())), config.dropout)
        if cache_key not in self._architectures:
            module = self.build(config, seed=0)
            n_params = sum(p.numel() for p in module.parameters())
            label = f"{type(module).__name__} of {n_params:,} parameters"
            if config.model:
                label += " (" + ", ".join(f"{k}={v}" for k, v in config.model) + ")"
            self._architectures[cache_key] = Architecture(
                signature(module, config, self.builtin),
                n_params,
                _activation_floats(module, self.tensors.n_features, self.tensors.device),
                label,
            )
        return self._architectures[cache_key]

    def member_bytes(self, config: Config) -> int:
        arch = self.architecture(config)
        return module_member_bytes(
            arch.n_params, arch.row_floats, self.tensors.n_features, config.batch_size
        )

    def _verdict(self, member: ModuleMember) -> Verdict:
        """Whether the member's architecture stacks: checked once, on its first members."""
        if member.signature in self._verdicts:
            return self._verdicts[member.signature]
        stacked = StackedModule(self.build(member.config, member.seed))
        template = stacked.template
        rows = [torch.stack([r, r]) for r in stacked.rows_of(template)]  # two members
        buffers = [torch.stack([b, b]) for b in stacked.buffers_of(template)]
        x = self.tensors.splits["train"][0][: member.config.batch_size]
        problem = stacked.problem(
            rows, buffers, x.unsqueeze(0).expand(2, -1, -1), lambda out: out.square().mean()
        )
        verdict = Verdict(None if problem else stacked, problem)
        self._verdicts[member.signature] = verdict
        if problem:
            label = self.architecture(member.config).label
            note = f"{label} cannot be trained stacked ({problem}); its trials train one at a time"
            self.notes.append(note)
            warnings.warn(f"dltune: {note}", RuntimeWarning, stacklevel=4)
        return verdict

    # ---- membership -----------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        return [*(m for b in self.buckets for m in b.members), *self.pending]

    def __len__(self) -> int:
        return len(self.members) + (len(self.sequential) if self.sequential else 0)

    def memory_in_use(self) -> int:
        running = [m.config for m in self.members]
        alone = [run.config for run in self.sequential.runs.values()] if self.sequential else []
        return sum(self.member_bytes(c) for c in running + alone)

    def add(self, member: ModuleMember) -> None:
        member.signature = self.architecture(member.config).signature
        self.pending.append(member)

    def admit(self) -> None:
        """Place the waiting members: into an open bucket of their signature, batch size and
        segment, or a new one; those of an architecture that cannot stack, into the
        sequential engine."""
        for member in self.pending:
            verdict = self._verdict(member)
            if verdict.stacked is None:
                self._train_alone(member)
                continue
            bucket = next(
                (
                    b
                    for b in self.buckets
                    if b.stacked is verdict.stacked
                    and b.batch_size == member.config.batch_size
                    and b.segment == member.segment
                ),
                None,
            )
            if bucket is None:
                arch = self.architecture(member.config)
                bucket = ModuleBucket(
                    self.tensors,
                    member.config.batch_size,
                    verdict.stacked,
                    lambda m: self.build(m.config, m.seed),
                    row_floats=arch.row_floats,
                    label=(arch.label,),
                    kernel=self.kernel,
                )
                self.buckets.append(bucket)
            bucket.add([member])
        self.pending = []

    def alone(self) -> SequentialEngine:
        """The engine of the members trained one at a time, made when the first comes."""
        if self.sequential is None:
            trainer = SequentialTrainer(
                self.data,
                metric=self.tensors.metric.name,
                device=self.tensors.device,
                shuffle_seed=self.shuffle_seed,
                track_train=self.track_train,
                network=self.network,
            )
            self.sequential = SequentialEngine(trainer, self.segments)
        return self.sequential

    def _train_alone(self, member: ModuleMember) -> None:
        alone = self.alone()
        config = member.config
        if member.max_epochs != config.epochs:
            config = config.replace(epochs=member.max_epochs)
        alone.add(
            member.key,
            config,
            seed=member.seed,
            patience=member.patience,
            keep_best_state=member.keep_best_state,
            until=None if math.isinf(member.until) else member.until,
            fold=member.fold,
        )

    def drop_empty(self) -> None:
        self.buckets = [b for b in self.buckets if b.members]

    def pause(self, key: Any) -> Member | TrainingRun | None:
        """A paused member (its state kept), or None when `key` is not one of these."""
        member = pause_member(self.buckets, key)
        if member is not None:
            self.drop_empty()
            return member
        if self.sequential is not None and key in self.sequential.runs:
            return self.sequential.pause(key)
        return None

    def set_until(self, key: Any, until: float) -> bool:
        for member in self.members:
            if member.key == key:
                member.until = until
                return True
        if self.sequential is not None and key in self.sequential.runs:
            self.sequential.set_until(key, until)
            return True
        return False

    def stop(self, key: Any, status: str) -> TrainResult | None:
        """Take a member out now: its result with `status`; None when `key` is not here."""
        for bucket in self.buckets:
            gone = bucket.remove({key})
            if gone:
                self.drop_empty()
                gone[0].result.status = status
                return gone[0].result
        for member in self.pending:
            if member.key == key:
                self.pending.remove(member)
                member.result.status = status
                return member.result
        if self.sequential is not None and key in self.sequential.runs:
            return self.sequential.stop(key, status)
        return None
