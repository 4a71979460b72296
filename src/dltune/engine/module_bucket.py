"""A bucket of members whose modules share one architecture exactly: stacked, not padded.

The convolutional family and a user's modules cannot be padded as the dense network is (a
wider filter bank is not a narrower one with zeros), so their members stack only with members
of the same shapes (functional.signature) and batch size. Each member keeps its own

- initial weights and buffers, from its own module built by the trainer's factory with its seed
  (the module a sequential run of it builds);
- batch normalization statistics (stacked buffers, updated per member inside vmap);
- data order, dropout masks (functional.py), loss, optimizer, learning rate, weight decay and
  step count (the fused update of stacked_optim.py over (P, numel) rows of every parameter).

Members join and leave between segments, as in the padded bucket (bucket.py): the stacked
tensors are rebuilt then, and a paused member leaves with its weights, buffers, moments and
step count (ModuleKeptState).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .bucket import KeptState, Measured, Member, measure_members, segment_orders
from .device_data import DeviceData
from .functional import MaskSource, StackedModule, mask_sources
from .losses import MemberLosses
from .sequential import DIVERGENCE_CHECK_EVERY, batch_rows
from .stacked_optim import MemberOptimizer, StackedOptimizer, UpdateKernel

EVAL_BUDGET_FLOATS = 32 * 2**20  # activations held at once while evaluating (128 MiB)

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


class ModuleBucket:
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
        self.data = data
        self.batch_size = batch_size
        self.stacked = stacked
        self.build = build
        self.row_floats = max(1, row_floats)  # activation floats per example (evaluation chunks)
        self.label = label  # how timings name this bucket (in place of the padded widths)
        self.kernel = kernel if kernel is not None else UpdateKernel()
        self.members: list[ModuleMember] = []
        self.params: list[torch.Tensor] = []
        self.buffers: list[torch.Tensor] = []
        self.optimizer = StackedOptimizer([], [], kernel=self.kernel)
        self._layout()

    @property
    def segment(self) -> int | None:
        return self.members[0].segment if self.members else None

    # ---- membership -----------------------------------------------------------------------

    def add(self, new: list[ModuleMember]) -> None:
        """Add members (between segments): their own initial state, or the state they were
        paused with."""
        rows, m, v, buffers, steps = [], [], [], [], []
        for member in new:
            kept = member.kept
            if isinstance(kept, ModuleKeptState):
                own_rows, own_m, own_v = kept.params, kept.m, kept.v
                own_buffers, own_steps = kept.buffers, kept.steps
            else:
                module = self.build(member)
                own_rows = self.stacked.rows_of(module)
                own_buffers = self.stacked.buffers_of(module)
                own_m = [torch.zeros_like(r) for r in own_rows]
                own_v = [torch.zeros_like(r) for r in own_rows]
                own_steps = 0
                member.sources = mask_sources(module)
            member.kept = None
            rows.append(own_rows)
            m.append(own_m)
            v.append(own_v)
            buffers.append(own_buffers)
            steps.append(own_steps)

        def joined(old: list[torch.Tensor], fresh: list[list[torch.Tensor]]) -> list[torch.Tensor]:
            columns = zip(*fresh, strict=True)
            if not old:
                return [torch.stack(list(c)) for c in columns]
            return [
                torch.cat([o.detach(), torch.stack(list(c))])
                for o, c in zip(old, columns, strict=True)
            ]

        moments_m, moments_v = self.optimizer.moments()
        self._rebuild(
            joined(self.params, rows),
            joined(self.buffers, buffers),
            self.members + new,
            self.optimizer.steps + steps,
            joined(moments_m if self.members else [], m),
            joined(moments_v if self.members else [], v),
        )

    def keep(self, member: Member) -> ModuleKeptState:
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

    def remove(self, keys: set[Any]) -> list[ModuleMember]:
        """Take members out (between segments); the others keep their state."""
        gone = [m for m in self.members if m.key in keys]
        if not gone:
            return []
        keep = [i for i, m in enumerate(self.members) if m.key not in keys]
        index = torch.tensor(keep, dtype=torch.long, device=self.data.device)

        def rows(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            return [t.detach().index_select(0, index) for t in tensors]

        old = self.optimizer
        moments_m, moments_v = old.moments()
        self._rebuild(
            rows(self.params),
            rows(self.buffers),
            [self.members[i] for i in keep],
            [old.steps[i] for i in keep],
            rows(moments_m),
            rows(moments_v),
        )
        return gone

    def _rebuild(
        self,
        params: list[torch.Tensor],
        buffers: list[torch.Tensor],
        members: list[ModuleMember],
        steps: list[int],
        m: list[torch.Tensor],
        v: list[torch.Tensor],
    ) -> None:
        self.params = [p.contiguous().requires_grad_(True) for p in params]
        self.buffers = [b.contiguous() for b in buffers]
        self.members = members
        optimizers = [MemberOptimizer.of(x.config) for x in members]
        self.optimizer = StackedOptimizer(
            self.params, optimizers, steps=steps, m=m, v=v, kernel=self.kernel
        )
        self._layout()

    def _layout(self) -> None:
        """Per-member tables the step needs: the loss groups."""
        self.member_losses = MemberLosses(
            [m.config.loss for m in self.members], self.data.task, self.data.n_outputs
        )

    def _index(self, member: Member) -> int:
        return next(i for i, m in enumerate(self.members) if m is member)

    # ---- computing ------------------------------------------------------------------------

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

    def train_segment(self, shuffle_seed: int, segments: int) -> torch.Tensor:
        """The members' current segment (of `segments` per epoch); returns (P,) the sum of the
        training loss over the segment's rows (NaN/inf: diverged)."""
        x_train, y_train = self.data.splits["train"]
        n, device = self.data.n_train, self.data.device
        steps, orders = segment_orders(self.members, n, self.batch_size, shuffle_seed, segments)
        orders = self.data.member_orders([m.fold for m in self.members], orders.to(device))
        loss_sums = torch.zeros(len(self.members), device=device)
        active = torch.tensor([math.isfinite(m.loss_sum) for m in self.members], device=device)
        self.stacked.template.train()
        self.optimizer.plan(len(steps))
        for step in steps:
            start, end = batch_rows(step - 1, n, self.batch_size)
            rows = orders[:, start:end]  # (P, B)
            loss_sums += self._step(x_train[rows], y_train[rows], active) * rows.shape[1]
            if step % DIVERGENCE_CHECK_EVERY == 0:
                active &= torch.isfinite(loss_sums)
        return loss_sums

    def evaluate(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) loss and (P,) metric of every member on a split, in chunks of rows."""
        measured = self.measure(split)
        return measured.losses, measured.values

    def measure(self, split: str) -> Measured:
        """evaluate's losses and metrics, and the outputs they came from."""
        self.stacked.template.eval()
        chunk = max(1, EVAL_BUDGET_FLOATS // (len(self.members) * self.row_floats))
        return measure_members(
            self.data,
            split,
            self.members,
            lambda x: self.stacked.forward(self.params, self.buffers, x),
            chunk,
            self.member_losses,
        )

    def member_state(self, member: Member) -> dict[str, torch.Tensor]:
        """A member's weights and buffers, as the state_dict of its own module."""
        i = self._index(member)
        return self.stacked.state_dict([p[i] for p in self.params], [b[i] for b in self.buffers])
