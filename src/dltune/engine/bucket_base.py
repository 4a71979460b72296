"""What every bucket of a population shares: its members, their stacked state, the training
loop of a segment and the evaluation of a split.

A bucket holds P members that train as one: each of its tensors has one row per member, and
one training step of every member is one forward, one backward and one fused optimizer update
(stacked_optim.py). The padded bucket (bucket.py) stacks dense networks of different widths
padded to one; the module bucket (module_bucket.py) stacks modules of one exact architecture
through torch.func. They differ only in how a member's rows are laid out, how the stack computes
its outputs and what a member's own state is; what they share is here.

Members join and leave only between segments of an epoch; the stacked tensors are rebuilt then.
A bucket's members are always at the same segment of their epochs, so they all take the same
number of steps.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from ..config import Config
from .device_data import DeviceData
from .losses import MemberLosses
from .result import TrainResult
from .sequential import DIVERGENCE_CHECK_EVERY, batch_rows, epoch_order, steps_per_epoch
from .stacked_optim import MemberOptimizer, StackedOptimizer, UpdateKernel

EVAL_BUDGET_FLOATS = 32 * 2**20  # activations held at once while evaluating (128 MiB)


@dataclass
class KeptState:
    """A paused member's training state, unpadded: per stacked tensor its own block of the
    weights and of the two moment buffers, and its optimizer step count."""

    params: list[torch.Tensor]
    m: list[torch.Tensor]
    v: list[torch.Tensor]
    steps: int


@dataclass
class Member:
    """One configuration in a population, with its progress and its learning curve."""

    key: Any
    config: Config
    seed: int
    max_epochs: int
    patience: int | None = None
    keep_best_state: bool = False
    epoch: int = 0  # epochs completed
    segment: int = 0  # segments completed of the current epoch
    segments_per_epoch: int = 1
    until: float = math.inf  # where the caller wants a say (a rung), in epochs
    loss_sum: float = 0.0  # training loss summed over the current epoch's rows so far
    epoch_seconds: float = 0.0
    result: TrainResult = field(default_factory=lambda: TrainResult(status="running"))
    generator: torch.Generator | None = None  # dropout masks
    kept: KeptState | None = None  # set while paused
    fold: int | None = None  # a fold member of cross-validated data (DeviceData's folds)

    @property
    def widths(self) -> tuple[int, ...]:
        return self.config.units

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.segment / max(1, self.segments_per_epoch)


@dataclass
class Joining:
    """A member's rows of every stacked tensor as it joins a bucket: its weights, moments and
    buffers (fresh, or the state it was paused with), and its optimizer step count."""

    params: list[torch.Tensor]
    m: list[torch.Tensor]
    v: list[torch.Tensor]
    buffers: list[torch.Tensor]
    steps: int


def segment_orders(
    members: Sequence[Member], n: int, batch_size: int, shuffle_seed: int, segments: int
) -> tuple[range, torch.Tensor]:
    """The steps (numbered from 1 in the epoch) of the members' current segment, and (P, n)
    each member's row order for its own next epoch (members in step share a segment)."""
    n_steps = steps_per_epoch(n, batch_size)
    segment = members[0].segment
    first, last = n_steps * segment // segments, n_steps * (segment + 1) // segments
    perms = {e: epoch_order(n, shuffle_seed, e) for e in {m.epoch + 1 for m in members}}
    return range(first + 1, last + 1), torch.as_tensor(
        np.stack([perms[m.epoch + 1] for m in members])
    )


M = TypeVar("M", bound=Member)


class StackedBucket(ABC, Generic[M]):
    """Members of one batch size stacked into one network (see the module's note).

    A subclass says how a joining member's rows are made (`_joining`), how a member's own
    state is copied out (`keep`, `member_state`), one training step (`_step`) and the stack's
    outputs in evaluation (`_predict`, `_row_floats`)."""

    label: tuple[Any, ...]  # how timings name this bucket (with its batch size)

    def __init__(
        self,
        data: DeviceData,
        batch_size: int,
        params: list[torch.Tensor],
        kernel: UpdateKernel | None,
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.kernel = kernel if kernel is not None else UpdateKernel()  # the trainer's
        self.members: list[M] = []
        # One row per member of every stacked tensor: (P, numel) parameters, (P, ...) buffers.
        self.params = params
        self.buffers: list[torch.Tensor] = []
        self.optimizer = StackedOptimizer(self.params, [], kernel=self.kernel)
        self._layout()

    @property
    def segment(self) -> int | None:
        """The segment of their epochs that the members are at (all the same)."""
        return self.members[0].segment if self.members else None

    def _index(self, member: Member) -> int:
        return next(i for i, m in enumerate(self.members) if m is member)

    # ---- membership -----------------------------------------------------------------------

    @abstractmethod
    def _joining(self, member: M) -> Joining:
        """The member's rows as it joins: its initial state, or the one it was paused with."""

    @abstractmethod
    def keep(self, member: M) -> KeptState:
        """A copy of a member's training state, to pause it (remove it afterwards)."""

    @abstractmethod
    def member_state(self, member: M) -> dict[str, torch.Tensor]:
        """A member's weights (and buffers), as the state_dict of its own network."""

    def add(self, new: list[M]) -> None:
        """Add members (between segments): their initial state, or the state they were paused
        with, joins the stack."""
        joining = [self._joining(member) for member in new]
        for member in new:
            member.kept = None

        def joined(old: list[torch.Tensor], fresh: list[list[torch.Tensor]]) -> list[torch.Tensor]:
            columns = [torch.stack(list(c)) for c in zip(*fresh, strict=True)]
            if not old:
                return columns
            return [torch.cat([o.detach(), c]) for o, c in zip(old, columns, strict=True)]

        moments_m, moments_v = self.optimizer.moments()
        self._rebuild(
            joined(self.params, [j.params for j in joining]),
            joined(self.buffers, [j.buffers for j in joining]),
            self.members + new,
            self.optimizer.steps + [j.steps for j in joining],
            joined(moments_m if self.members else [], [j.m for j in joining]),
            joined(moments_v if self.members else [], [j.v for j in joining]),
        )

    def remove(self, keys: set[Any]) -> list[M]:
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
        members: list[M],
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
        """Per-member tables the step needs, derived from the member list: the loss groups
        (a subclass adds its own)."""
        self.member_losses = MemberLosses(
            [m.config.loss for m in self.members], self.data.task, self.data.n_outputs
        )

    # ---- computing ------------------------------------------------------------------------

    @abstractmethod
    def _step(self, x: torch.Tensor, y: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """One training step of every member on its own rows x (P, B, F); (P,) losses.
        Members where `active` is False (diverged) keep their state."""

    @abstractmethod
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs (P, N, C) in evaluation mode of shared rows (N, F) or own rows (P, N, F)."""

    @abstractmethod
    def _row_floats(self) -> int:
        """Activation floats one member holds per row in evaluation (sizes its chunks)."""

    def _mode(self, training: bool) -> None:
        """Put the stack in training or evaluation mode (a hook: nothing by default)."""

    def train_segment(self, shuffle_seed: int, segments: int) -> torch.Tensor:
        """The members' current segment (of `segments` per epoch); returns (P,) the sum of the
        training loss over the segment's rows (NaN/inf: diverged)."""
        x_train, y_train = self.data.splits["train"]
        n, device = self.data.n_train, self.data.device
        steps, orders = segment_orders(self.members, n, self.batch_size, shuffle_seed, segments)
        orders = self.data.member_orders([m.fold for m in self.members], orders.to(device))
        loss_sums = torch.zeros(len(self.members), device=device)
        # A member that diverged earlier in the epoch stays frozen.
        active = torch.tensor([math.isfinite(m.loss_sum) for m in self.members], device=device)
        self._mode(training=True)
        self.optimizer.plan(len(steps))  # the coefficients of this segment's steps
        for step in steps:
            start, end = batch_rows(step - 1, n, self.batch_size)
            rows = orders[:, start:end]  # (P, B)
            losses = self._step(x_train[rows], y_train[rows], active)
            if step == 1:
                self._keep_start_losses(losses)
            loss_sums += losses * rows.shape[1]
            if step % DIVERGENCE_CHECK_EVERY == 0:
                # A diverged member is frozen where it stopped, as the sequential trainer stops.
                active &= torch.isfinite(loss_sums)
        return loss_sums

    def _keep_start_losses(self, losses: torch.Tensor) -> None:
        """Keep, for each member that has not trained yet, its loss on its first batch (taken
        before the step): what it cost fresh (TrainResult.start_loss)."""
        fresh = [i for i, m in enumerate(self.members) if m.epoch == 0 and m.segment == 0]
        if fresh:
            values = losses.detach().cpu().tolist()
            for i in fresh:
                self.members[i].result.start_loss = values[i]

    def evaluate(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) loss and (P,) metric of every member on a split, in chunks of rows."""
        measured = self.measure(split)
        return measured.losses, measured.values

    def measure(self, split: str) -> Measured:
        """evaluate's losses and metrics, and the outputs they came from."""
        self._mode(training=False)
        per_row = len(self.members) * self._row_floats()
        chunk = max(1, EVAL_BUDGET_FLOATS // max(1, per_row))
        return measure_members(
            self.data, split, self.members, self._predict, chunk, self.member_losses
        )


@dataclass
class Measured:
    """Every member's (P,) loss and (P,) metric on a split, and the (P, V, C) outputs they
    came from; `lengths`: each member's own rows of the outputs (fold members), or None
    (every member has all V)."""

    losses: torch.Tensor
    values: torch.Tensor
    outputs: torch.Tensor
    lengths: list[int] | None

    def own(self, i: int) -> torch.Tensor:
        """Member i's outputs on its own rows."""
        return self.outputs[i] if self.lengths is None else self.outputs[i, : self.lengths[i]]


@torch.no_grad()
def measure_members(
    data: DeviceData,
    split: str,
    members: Sequence[Member],
    forward: Any,
    chunk: int,
    member_losses: MemberLosses,
) -> Measured:
    """Outputs, losses and metrics of stacked members on a split, `chunk` rows at a time:
    one forward of the shared rows, or each fold member's own rows (padded to the longest
    fold; each member's loss and metric counted on its own rows only)."""
    own = data.member_rows(split, [m.fold for m in members])
    if own is None:
        x, y = data.splits[split]
        outputs = torch.cat([forward(x[i : i + chunk]) for i in range(0, len(x), chunk)], dim=1)
        return Measured(member_losses(outputs, y), data.metric_value(outputs, y), outputs, None)
    x, y, lengths = own
    width = x.shape[1]
    outputs = torch.cat([forward(x[:, i : i + chunk]) for i in range(0, width, chunk)], dim=1)
    if len(set(lengths)) == 1:
        return Measured(member_losses(outputs, y), data.metric_value(outputs, y), outputs, lengths)
    losses = outputs.new_empty(len(members))
    values = outputs.new_empty(len(members))
    for length in sorted(set(lengths)):  # members of one fold size together
        picked = [i for i, n in enumerate(lengths) if n == length]
        index = torch.tensor(picked, device=outputs.device)
        own_losses = MemberLosses(
            [members[i].config.loss for i in picked], data.task, data.n_outputs
        )
        out, target = outputs[index, :length], y[index, :length]
        losses[index] = own_losses(out, target)
        values[index] = data.metric_value(out, target)
    return Measured(losses, values, outputs, lengths)
