"""A bucket of members whose modules share one architecture exactly: stacked, not padded.

The convolutional family and a user's modules cannot be padded as the dense network is (a
wider filter bank is not a narrower one with zeros), so their members stack only with members
of the same shapes (functional.signature) and batch size. Each member keeps its own

- initial weights and buffers, from its own module built by the trainer's factory with its seed
  (the module a sequential run of it builds);
- batch normalization statistics (stacked buffers, updated per member inside vmap);
- data order, dropout masks (functional.py), loss, optimizer, learning rate, weight decay and
  step count (the fused update of stacked_optim.py over (P, numel) rows of every parameter).

What every bucket does alike (joining and leaving between segments, the training loop of a
segment, evaluation) is bucket_base.StackedBucket's. A paused member leaves with its weights,
buffers, moments and step count (ModuleKeptState).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .bucket_base import Joining, KeptState, Member, StackedBucket
from .device_data import DeviceData
from .functional import MaskSource, StackedModule, mask_sources
from .stacked_optim import UpdateKernel

Build = Callable[[Member], nn.Module]  # a member's own module, as its sequential run builds it


@dataclass
class ModuleKeptState(KeptState):
    """A paused member's state: as the padded bucket's, plus its buffers (batch norm)."""

    buffers: list[torch.Tensor] = field(default_factory=list)


@dataclass
class ModuleMember(Member):
    """A member trained through a template: its architecture's signature and where its own
    dropout modules draw their masks (kept across pauses, generators and all)."""

    signature: Any = None
    sources: list[MaskSource] = field(default_factory=list)


class ModuleBucket(StackedBucket[ModuleMember]):
    """Members of one architecture and batch size, their modules stacked (see the module)."""

    def __init__(
        self,
        data: DeviceData,
        batch_size: int,
        stacked: StackedModule,
        build: Build,
        *,
        row_floats: int,
        label: tuple[Any, ...],
        kernel: UpdateKernel | None = None,
    ) -> None:
        self.stacked = stacked
        self.build = build
        self.row_floats = max(1, row_floats)  # activation floats per example (evaluation chunks)
        self.label = label  # how timings name this bucket (in place of the padded widths)
        super().__init__(data, batch_size, [], kernel)

    # ---- membership -----------------------------------------------------------------------

    def _joining(self, member: ModuleMember) -> Joining:
        """The member's own initial state, from its own module, or the one it was paused with."""
        kept = member.kept
        if isinstance(kept, ModuleKeptState):
            return Joining(kept.params, kept.m, kept.v, kept.buffers, kept.steps)
        module = self.build(member)
        rows = self.stacked.rows_of(module)
        buffers = self.stacked.buffers_of(module)
        member.sources = mask_sources(module)
        zeros = [torch.zeros_like(r) for r in rows]
        return Joining(rows, zeros, [torch.zeros_like(r) for r in rows], buffers, 0)

    def keep(self, member: ModuleMember) -> ModuleKeptState:
        """A copy of a member's training state, to pause it (remove it afterwards)."""
        i = self._index(member)
        moments_m, moments_v = self.optimizer.moments()

        def own(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            return [t[i].detach().clone() for t in tensors]

        return ModuleKeptState(
            own(self.params),
            own(moments_m),
            own(moments_v),
            self.optimizer.steps[i],
            buffers=own(self.buffers),
        )

    # ---- computing ------------------------------------------------------------------------

    def _mode(self, training: bool) -> None:
        self.stacked.template.train(training)

    def _step(self, x: torch.Tensor, y: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """One training step of every member on its own rows x (P, B, F); (P,) losses.
        Members frozen after diverging keep their weights and their buffers."""
        all_active = bool(active.all())
        before = None if all_active else [b.clone() for b in self.buffers]
        calls = self.stacked.dropout_calls(self.params, self.buffers, x[0])
        masks = self.stacked.masks_for(calls, [m.sources for m in self.members], x.device)
        losses = self.member_losses(self.stacked.forward(self.params, self.buffers, x, masks), y)
        losses.sum().backward()  # members share no parameters: each gets its own gradient
        self.optimizer.step(None if all_active else active)
        if before is not None:
            with torch.no_grad():
                for buffer, old in zip(self.buffers, before, strict=True):
                    frozen = ~active.view(-1, *([1] * (buffer.dim() - 1)))
                    buffer.copy_(torch.where(frozen, old, buffer))
        return losses.detach()

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.stacked.forward(self.params, self.buffers, x)

    def _row_floats(self) -> int:
        return self.row_floats

    def member_state(self, member: ModuleMember) -> dict[str, torch.Tensor]:
        """A member's weights and buffers, as the state_dict of its own module."""
        i = self._index(member)
        return self.stacked.state_dict([p[i] for p in self.params], [b[i] for b in self.buffers])
