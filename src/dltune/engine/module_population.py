"""The module part of a population: the networks that are not the padded dense network
(convolutional networks, users' modules), stacked in exact-shape buckets (module_bucket.py).

Each configuration's architecture is read once from a module the trainer's factory builds
(functional.signature: parameter and buffer names and shapes, the submodules, the
configuration's architecture keys), with what a member costs in memory. Members of one
signature, batch size and segment share a bucket. The first time a signature comes to join, one
vmapped step on copies (StackedModule.problem) checks that its forward can be stacked; where
it cannot, that architecture's members are not this part's but the one-at-a-time part's
(one_at_a_time.py), and a note says why, once per architecture (`notes`, and a RuntimeWarning).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ..config import Config
from ..nets import NetworkFactory
from .device_data import DeviceData
from .functional import TRAINING_FIELDS, StackedModule, signature
from .module_bucket import ModuleBucket, ModuleMember
from .stacked_optim import UpdateKernel
from .stacked_population import StackedPopulation, Tally

if TYPE_CHECKING:
    from .snapshot import Snapshot


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


class ModulePopulation(StackedPopulation[ModuleBucket]):
    """Module buckets and the architectures they stack (see the module)."""

    kind = "module"

    def __init__(
        self,
        tensors: DeviceData,
        kernel: UpdateKernel,
        tally: Tally,
        network: NetworkFactory,
        *,
        builtin: bool,
        shuffle_seed: int,
        segments: int,
        track_train: bool,
    ) -> None:
        super().__init__(
            tensors,
            kernel,
            tally,
            shuffle_seed=shuffle_seed,
            segments=segments,
            track_train=track_train,
        )
        self.network = network
        self.builtin = builtin  # dltune's own families: dropout is fed in any case
        self.user_code = not builtin
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
            # the user's model, not a wrapper of dltune's (usermodel: `described`)
            name = getattr(module, "described", type(module).__name__)
            label = f"{name} of {n_params:,} parameters"
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

    def stacks(self, member: ModuleMember) -> bool:
        """Whether the member's architecture can be trained stacked (its signature is read
        here, and the architecture checked on its first member)."""
        if member.signature is None:
            member.signature = self.architecture(member.config).signature
        return self._verdict(member).stacked is not None

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
            # at the caller of PopulationTrainer.add or resume (through _taker, takes, stacks)
            warnings.warn(f"dltune: {note}", RuntimeWarning, stacklevel=6)
        return verdict

    # ---- membership -----------------------------------------------------------------------

    def takes(self, member: Any) -> bool:
        return isinstance(member, ModuleMember) and self.stacks(member)

    def restore(self, snapshot: Snapshot, key: Any) -> ModuleMember:
        member = cast(ModuleMember, super().restore(snapshot, key))  # a "module" checkpoint's
        member.signature = self.architecture(member.config).signature
        return member

    def admit(self) -> None:
        """Place the waiting members: into an open bucket of their signature, batch size and
        segment, or a new one."""
        for member in cast(list[ModuleMember], self.pending):  # takes() let no other kind in
            stacked = self._verdict(member).stacked
            if stacked is None:  # pragma: no cover - takes() let no such architecture in
                raise RuntimeError(f"member {member.key!r} cannot be trained stacked")
            bucket = next(
                (
                    b
                    for b in self.buckets
                    if b.stacked is stacked
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
                    stacked,
                    lambda m: self.build(m.config, m.seed),
                    row_floats=arch.row_floats,
                    label=(arch.label,),
                    kernel=self.kernel,
                )
                self.buckets.append(bucket)
            bucket.add([member])
        self.pending = []
