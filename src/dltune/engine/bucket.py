"""A bucket: members of a population that share a batch size and a (padded) shape.

Each layer's weights of the P members live in one tensor (P, in*out) with one row per member,
viewed as (P, in, out) for the products, so one training step of every member is a few batched
matrix products (torch.baddbmm) instead of P separate small ones, and a fused optimizer update
per tensor.
Each member keeps its own

- data order: the rows of its batch are gathered per member, (P, B, in), from its own epoch's
  permutation, so members that joined at different times stay exact;
- width: narrower members are zero-padded to the bucket's widths and their padded units are
  masked to zero after the activation, so padding changes neither their outputs nor their
  gradients (padded weights start at zero and receive zero gradient);
- activation, loss, dropout rate and dropout generator, optimizer and learning rate, weight
  decay and step count (see stacked_optim.py).

Members join and leave only between segments of an epoch (whole epochs unless a rung of
successive halving falls inside one); the stacked tensors are rebuilt then. A bucket's members
are always at the same segment of their epochs, so they all take the same number of steps.
A member paused by the scheduler leaves with its weights, moments and step count (KeptState)
and rejoins a bucket with them when promoted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..nets.dense import activation_module, dropout_generator, dropout_scale, initial_weights
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


def _runs(names: list[str]) -> list[tuple[str, int, int]] | None:
    """(name, start, end) for each distinct name when every name's members sit side by side
    (a sweep's members join value by value), else None."""
    runs: list[tuple[str, int, int]] = []
    for i, name in enumerate(names):
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], i + 1)
        elif any(r[0] == name for r in runs):
            return None
        else:
            runs.append((name, i, i + 1))
    return runs


def _groups(names: list[str]) -> list[tuple[str, torch.Tensor]]:
    """(name, member indices) for each distinct name, in order of first appearance."""
    order: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        order.setdefault(name, []).append(i)
    return [(name, torch.tensor(idx)) for name, idx in order.items()]


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


def pause_member(buckets: Sequence[Any], key: Any) -> Any:
    """Take the member named `key` out of whichever of `buckets` holds it, its state kept
    (member.kept), to resume later; None if none holds it. Emptied buckets stay: the caller
    drops them."""
    for bucket in buckets:
        for member in bucket.members:
            if member.key == key:
                member.kept = bucket.keep(member)
                bucket.remove({key})
                return member
    return None


class Bucket:
    """Members that share batch size and depth, stacked into one network of given widths."""

    def __init__(
        self,
        data: DeviceData,
        batch_size: int,
        widths: tuple[int, ...],
        kernel: UpdateKernel | None = None,
    ) -> None:
        self.data = data
        self.kernel = kernel if kernel is not None else UpdateKernel()  # the trainer's
        self.batch_size = batch_size
        self.widths = widths  # the padded width of each hidden layer
        self.dims = (data.n_features, *widths, data.n_outputs)
        self.members: list[Member] = []
        # Per layer: weights (P, in*out) and biases (P, out), one row per member. Rows (not
        # (P, in, out) leaves) so the optimizer's compiled kernel sees one shape family.
        self.params: list[torch.Tensor] = [
            torch.zeros(0, size, device=data.device)
            for fan_in, fan_out in zip(self.dims[:-1], self.dims[1:], strict=True)
            for size in (fan_in * fan_out, fan_out)
        ]
        self.optimizer = StackedOptimizer(self.params, [], kernel=self.kernel)
        self._layout()

    def weight(self, layer: int) -> torch.Tensor:
        """(P, in, out), a view of the layer's rows."""
        return self.params[2 * layer].view(-1, self.dims[layer], self.dims[layer + 1])

    def bias(self, layer: int) -> torch.Tensor:
        """(P, 1, out), a view of the layer's rows."""
        return self.params[2 * layer + 1].unsqueeze(1)

    # ---- membership -----------------------------------------------------------------------

    @property
    def segment(self) -> int | None:
        """The segment of their epochs that the members are at (all the same)."""
        return self.members[0].segment if self.members else None

    def _own_block(self, tensor: torch.Tensor, index: int, member: Member) -> torch.Tensor:
        """A view of a member's own (unpadded) part of a (k,) row of stacked tensor `index`."""
        layer, is_bias = divmod(index, 2)
        dims = (self.data.n_features, *member.widths, self.data.n_outputs)
        if is_bias:
            return tensor[: dims[layer + 1]]
        block = tensor.view(self.dims[layer], self.dims[layer + 1])
        return block[: dims[layer], : dims[layer + 1]]

    def add(self, new: list[Member]) -> None:
        """Add members (between segments): their initial weights, or the state they were
        paused with, padded, join the stack."""
        fresh = [torch.zeros(len(new), p.shape[1], device=self.data.device) for p in self.params]
        fresh_m = [torch.zeros_like(f) for f in fresh]
        fresh_v = [torch.zeros_like(f) for f in fresh]
        for j, member in enumerate(new):
            if member.kept is not None:
                for index in range(len(fresh)):
                    for target, source in zip(
                        (fresh, fresh_m, fresh_v),
                        (member.kept.params, member.kept.m, member.kept.v),
                        strict=True,
                    ):
                        self._own_block(target[index][j], index, member).copy_(source[index])
                continue
            layers = initial_weights(
                member.widths, self.data.n_features, self.data.n_outputs, member.seed
            )
            for layer, (weight, bias) in enumerate(layers):
                self._own_block(fresh[2 * layer][j], 2 * layer, member).copy_(weight.T)
                self._own_block(fresh[2 * layer + 1][j], 2 * layer + 1, member).copy_(bias)
            member.generator = dropout_generator(member.seed, self.data.device)
        steps = [m.kept.steps if m.kept is not None else 0 for m in new]
        for member in new:
            member.kept = None
        old = self.optimizer
        moments_m, moments_v = old.moments()
        self._rebuild(
            [torch.cat([p.detach(), f]) for p, f in zip(self.params, fresh, strict=True)],
            self.members + new,
            old.steps + steps,
            [torch.cat([m, f]) for m, f in zip(moments_m, fresh_m, strict=True)],
            [torch.cat([v, f]) for v, f in zip(moments_v, fresh_v, strict=True)],
        )

    def keep(self, member: Member) -> KeptState:
        """A copy of a member's training state, to pause it (remove it afterwards)."""
        i = self.members.index(member)
        moments_m, moments_v = self.optimizer.moments()

        def own(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            return [
                self._own_block(t[i].detach(), index, member).clone()
                for index, t in enumerate(tensors)
            ]

        return KeptState(own(self.params), own(moments_m), own(moments_v), self.optimizer.steps[i])

    def remove(self, keys: set[Any]) -> list[Member]:
        """Take members out (between epochs); the others keep their weights and state."""
        gone = [m for m in self.members if m.key in keys]
        if not gone:
            return []
        keep = [i for i, m in enumerate(self.members) if m.key not in keys]
        index = torch.tensor(keep, dtype=torch.long, device=self.data.device)
        old = self.optimizer

        def rows(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            return [t.detach().index_select(0, index) for t in tensors]

        self._rebuild(
            rows(self.params),
            [self.members[i] for i in keep],
            [old.steps[i] for i in keep],
            *(rows(moments) for moments in old.moments()),
        )
        return gone

    def _rebuild(
        self,
        params: list[torch.Tensor],
        members: list[Member],
        steps: list[int],
        m: list[torch.Tensor],
        v: list[torch.Tensor],
    ) -> None:
        self.params = [p.requires_grad_(True) for p in params]
        self.members = members
        optimizers = [MemberOptimizer.of(x.config) for x in members]
        self.optimizer = StackedOptimizer(
            self.params, optimizers, steps=steps, m=m, v=v, kernel=self.kernel
        )
        self._layout()

    def _layout(self) -> None:
        """Per-member tables the step needs, derived from the member list."""
        members = self.members
        device = self.data.device
        self.activations = _groups([m.config.activation for m in members])
        # Contiguous groups are activated slice by slice and joined: no gather and scatter of
        # the hidden units per group (measured: a third of a step of a 10-activation sweep).
        self.activation_runs = _runs([m.config.activation for m in members])
        self.member_losses = MemberLosses(
            [m.config.loss for m in members], self.data.task, self.data.n_outputs
        )
        # Masks of the padded units, per hidden layer: None where every member is full width.
        self.masks: list[torch.Tensor | None] = []
        for layer, width in enumerate(self.widths):
            actual = torch.tensor([m.widths[layer] for m in members], device=device)
            if bool((actual == width).all()):
                self.masks.append(None)
            else:
                units = torch.arange(width, device=device)
                self.masks.append((units < actual[:, None]).to(torch.float32)[:, None, :])
        self.dropouts = [(i, m) for i, m in enumerate(members) if m.config.dropout > 0]

    # ---- computing ------------------------------------------------------------------------

    def _activate(self, h: torch.Tensor) -> torch.Tensor:
        if len(self.activations) == 1:
            return activation_module(self.activations[0][0])(h)
        if self.activation_runs is not None and h.dim() == 3:
            return torch.cat(
                [activation_module(name)(h[start:end]) for name, start, end in self.activation_runs]
            )
        out = torch.empty_like(h)
        for name, index in self.activations:
            index = index.to(h.device)
            out = out.index_copy(0, index, activation_module(name)(h.index_select(0, index)))
        return out

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """x: (P, B, in) per-member rows, or (N, in) shared rows -> outputs (P, B|N, C)."""
        h = x
        for layer in range(len(self.widths)):
            if h.dim() == 2:  # shared rows: one product broadcast over the members
                h = torch.matmul(h, self.weight(layer)) + self.bias(layer)
            else:
                h = torch.baddbmm(self.bias(layer), h, self.weight(layer))  # (P, B, H)
            h = self._activate(h)
            mask = self.masks[layer]
            if mask is not None:
                h = h * mask
            if training and self.dropouts:
                h = h * self._dropout_scales(h.shape, layer)
        last = len(self.widths)
        if h.dim() == 2:
            return torch.matmul(h, self.weight(last)) + self.bias(last)
        return torch.baddbmm(self.bias(last), h, self.weight(last))

    def _dropout_scales(self, shape: torch.Size, layer: int) -> torch.Tensor:
        """(P, B, H) multipliers: each dropout member's mask from its own generator."""
        scales = torch.ones(shape, device=self.data.device)
        for i, member in self.dropouts:
            own = (shape[1], member.widths[layer])  # the shape it draws when trained alone
            scales[i, :, : own[1]] = dropout_scale(
                own, member.config.dropout, member.generator, self.data.device
            )
        return scales

    def train_segment(self, shuffle_seed: int, segments: int) -> torch.Tensor:
        """The members' current segment (of `segments` per epoch); returns (P,) the sum of the
        training loss over the segment's rows (NaN/inf: diverged)."""
        x_train, y_train = self.data.splits["train"]
        n, device = self.data.n_train, self.data.device
        p = len(self.members)
        steps, orders = segment_orders(self.members, n, self.batch_size, shuffle_seed, segments)
        orders = self.data.member_orders([m.fold for m in self.members], orders.to(device))
        loss_sums = torch.zeros(p, device=device)
        # A member that diverged earlier in the epoch stays frozen.
        active = torch.tensor([math.isfinite(m.loss_sum) for m in self.members], device=device)
        self.optimizer.plan(len(steps))  # the coefficients of this segment's steps
        for step in steps:
            start, end = batch_rows(step - 1, n, self.batch_size)
            rows = orders[:, start:end]  # (P, B)
            losses = self.member_losses(self.forward(x_train[rows], True), y_train[rows])
            losses.sum().backward()  # members share no parameters: each gets its own gradient
            self.optimizer.step(None if bool(active.all()) else active)
            loss_sums += losses.detach() * rows.shape[1]
            if step % DIVERGENCE_CHECK_EVERY == 0:
                # A diverged member is frozen where it stopped, as the sequential trainer stops.
                active &= torch.isfinite(loss_sums)
        return loss_sums

    def evaluate(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) loss and (P,) metric of every member on a split, in chunks of rows."""
        measured = self.measure(split)
        return measured.losses, measured.values

    def measure(self, split: str) -> Measured:
        """evaluate's losses and metrics, and the outputs they came from."""
        per_row = len(self.members) * max((*self.widths, self.data.n_outputs))
        chunk = max(1, EVAL_BUDGET_FLOATS // max(1, per_row))
        return measure_members(
            self.data,
            split,
            self.members,
            lambda x: self.forward(x, False),
            chunk,
            self.member_losses,
        )

    def member_state(self, member: Member) -> dict[str, torch.Tensor]:
        """A member's weights, unpadded, as the state of its own DenseNet (see models.py)."""
        i = self.members.index(member)
        dims = (self.data.n_features, *member.widths, self.data.n_outputs)
        state: dict[str, torch.Tensor] = {}
        names = _linear_names(member.config)
        for layer, name in enumerate(names):
            w = self.weight(layer)[i, : dims[layer], : dims[layer + 1]]
            state[f"{name}.weight"] = w.detach().T.clone()
            state[f"{name}.bias"] = self.bias(layer)[i, 0, : dims[layer + 1]].detach().clone()
        return state


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


def _linear_names(config: Config) -> list[str]:
    """The state-dict prefixes of a DenseNet's Dense layers (hidden.0, hidden.3, ..., output)."""
    per_layer = 3 if config.dropout > 0 else 2  # Linear, Activation[, Dropout]
    return [f"hidden.{i * per_layer}" for i in range(config.layers)] + ["output"]
