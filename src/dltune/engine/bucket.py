"""A bucket: members of a population that share a batch size and a (padded) shape.

The members' weights are stacked, layer by layer, into tensors of shape (P, in, out), and one
training step of every member is a few batched matrix products (torch.baddbmm) instead of P
separate small ones. Each member keeps its own

- data order: the rows of its batch are gathered per member, (P, B, in), from its own epoch's
  permutation, so members that joined at different times stay exact;
- width: narrower members are zero-padded to the bucket's widths and their padded units are
  masked to zero after the activation, so padding changes neither their outputs nor their
  gradients (padded weights start at zero and receive zero gradient);
- activation, loss, dropout rate and dropout generator, optimizer and learning rate, weight
  decay and step count (see stacked_optim.py).

Members join and leave only between epochs; the stacked tensors are rebuilt then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..models import activation_module, dropout_generator, dropout_scale, initial_weights
from .device_data import DeviceData
from .losses import loss_function
from .result import TrainResult
from .sequential import DIVERGENCE_CHECK_EVERY, epoch_order
from .stacked_optim import MemberOptimizer, StackedOptimizer

EVAL_BUDGET_FLOATS = 32 * 2**20  # activations held at once while evaluating (128 MiB)


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
    result: TrainResult = field(default_factory=lambda: TrainResult(status="running"))
    generator: torch.Generator | None = None  # dropout masks

    @property
    def widths(self) -> tuple[int, ...]:
        return self.config.units


def _groups(names: list[str]) -> list[tuple[str, torch.Tensor]]:
    """(name, member indices) for each distinct name, in order of first appearance."""
    order: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        order.setdefault(name, []).append(i)
    return [(name, torch.tensor(idx)) for name, idx in order.items()]


class Bucket:
    """Members that share batch size and depth, stacked into one network of given widths."""

    def __init__(self, data: DeviceData, batch_size: int, widths: tuple[int, ...]) -> None:
        self.data = data
        self.batch_size = batch_size
        self.widths = widths  # the padded width of each hidden layer
        self.members: list[Member] = []
        self.weights: list[torch.Tensor] = []  # per layer (P, in, out)
        self.biases: list[torch.Tensor] = []  # per layer (P, 1, out)
        self.optimizer: StackedOptimizer | None = None
        self._layout()

    # ---- membership -----------------------------------------------------------------------

    def add(self, new: list[Member]) -> None:
        """Add members (between epochs): their initial weights, padded, join the stack."""
        device = self.data.device
        dims = (self.data.n_features, *self.widths, self.data.n_outputs)
        fresh_w = [torch.zeros(len(new), dims[i], dims[i + 1]) for i in range(len(dims) - 1)]
        fresh_b = [torch.zeros(len(new), 1, dims[i + 1]) for i in range(len(dims) - 1)]
        for j, member in enumerate(new):
            layers = initial_weights(
                member.widths, self.data.n_features, self.data.n_outputs, member.seed
            )
            for i, (weight, bias) in enumerate(layers):
                out_width, in_width = weight.shape
                fresh_w[i][j, :in_width, :out_width] = weight.T
                fresh_b[i][j, 0, :out_width] = bias
            member.generator = dropout_generator(member.seed, device)
        old_state = self.optimizer.export_state() if self.optimizer else None
        old_steps = self.optimizer.steps if self.optimizer else []
        self.weights = self._extend(self.weights, fresh_w)
        self.biases = self._extend(self.biases, fresh_b)
        self.members += new
        self._rebuild_optimizer(old_state, old_steps + [0] * len(new))
        self._layout()

    def remove(self, keys: set[Any]) -> list[Member]:
        """Take members out (between epochs); the others keep their weights and state."""
        gone = [m for m in self.members if m.key in keys]
        if not gone:
            return []
        keep = [i for i, m in enumerate(self.members) if m.key not in keys]
        index = torch.tensor(keep, dtype=torch.long, device=self.data.device)
        assert self.optimizer is not None
        state = {
            kind: [t.index_select(0, index) for t in buffers]
            for kind, buffers in self.optimizer.export_state().items()
        }
        steps = [self.optimizer.steps[i] for i in keep]
        self.weights = [w.detach().index_select(0, index) for w in self.weights]
        self.biases = [b.detach().index_select(0, index) for b in self.biases]
        self.members = [self.members[i] for i in keep]
        self._rebuild_optimizer(state, steps)
        self._layout()
        return gone

    def _extend(self, stacked: list[torch.Tensor], fresh: list[torch.Tensor]) -> list[torch.Tensor]:
        device = self.data.device
        if not stacked:
            return [f.to(device) for f in fresh]
        return [torch.cat([s.detach(), f.to(device)]) for s, f in zip(stacked, fresh, strict=True)]

    def _rebuild_optimizer(
        self, old_state: dict[str, list[torch.Tensor]] | None, steps: list[int]
    ) -> None:
        for t in (*self.weights, *self.biases):
            t.requires_grad_(True)
        members = [
            MemberOptimizer(m.config.optimizer, m.config.learning_rate, m.config.weight_decay)
            for m in self.members
        ]
        optimizer = StackedOptimizer([*self.weights, *self.biases], members)
        optimizer.steps = steps
        if old_state is not None:
            optimizer.import_state(old_state)
        self.optimizer = optimizer

    def _layout(self) -> None:
        """Per-member tables the step needs, derived from the member list."""
        members = self.members
        device = self.data.device
        self.activations = _groups([m.config.activation for m in members])
        self.losses = _groups([m.config.loss for m in members])
        self.loss_fns = {
            name: loss_function(name, self.data.task, self.data.n_outputs)
            for name, _ in self.losses
        }
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
                h = torch.matmul(h, self.weights[layer]) + self.biases[layer]
            else:
                h = torch.baddbmm(self.biases[layer], h, self.weights[layer])  # (P, B, H)
            h = self._activate(h)
            mask = self.masks[layer]
            if mask is not None:
                h = h * mask
            if training and self.dropouts:
                h = h * self._dropout_scales(h.shape, layer)
        if h.dim() == 2:
            return torch.matmul(h, self.weights[-1]) + self.biases[-1]
        return torch.baddbmm(self.biases[-1], h, self.weights[-1])

    def _dropout_scales(self, shape: torch.Size, layer: int) -> torch.Tensor:
        """(P, B, H) multipliers: each dropout member's mask from its own generator."""
        scales = torch.ones(shape, device=self.data.device)
        for i, member in self.dropouts:
            own = (shape[1], member.widths[layer])  # the shape it draws when trained alone
            scales[i, :, : own[1]] = dropout_scale(
                own, member.config.dropout, member.generator, self.data.device
            )
        return scales

    def member_losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(P,) each member's own loss on its outputs."""
        if len(self.losses) == 1:
            return self.loss_fns[self.losses[0][0]](outputs, targets)
        losses = outputs.new_zeros(len(self.members))
        for name, index in self.losses:
            index = index.to(outputs.device)
            own_targets = targets if targets.dim() == 1 else targets.index_select(0, index)
            value = self.loss_fns[name](outputs.index_select(0, index), own_targets)
            losses = losses.index_copy(0, index, value)
        return losses

    def train_epoch(self, shuffle_seed: int) -> torch.Tensor:
        """One epoch of every member; returns (P,) mean training loss (NaN/inf: diverged)."""
        x_train, y_train = self.data.splits["train"]
        n, device = len(x_train), self.data.device
        p = len(self.members)
        # Each member's own permutation for its own next epoch (shared by members in step).
        perms = {e: epoch_order(n, shuffle_seed, e) for e in {m.epoch + 1 for m in self.members}}
        orders = torch.as_tensor(
            np.stack([perms[m.epoch + 1] for m in self.members]), device=device
        )
        loss_sums = torch.zeros(p, device=device)
        active = torch.ones(p, dtype=torch.bool, device=device)
        assert self.optimizer is not None
        for step, start in enumerate(range(0, n, self.batch_size), start=1):
            rows = orders[:, start : start + self.batch_size]  # (P, B)
            losses = self.member_losses(self.forward(x_train[rows], True), y_train[rows])
            losses.sum().backward()  # members share no parameters: each gets its own gradient
            self.optimizer.step(None if bool(active.all()) else active)
            loss_sums += losses.detach() * rows.shape[1]
            if step % DIVERGENCE_CHECK_EVERY == 0:
                # A diverged member is frozen where it stopped, as the sequential trainer stops.
                active &= torch.isfinite(loss_sums)
        return loss_sums / n

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) loss and (P,) metric of every member on a split, in chunks of rows."""
        x, y = self.data.splits[split]
        per_row = len(self.members) * max((*self.widths, self.data.n_outputs))
        chunk = max(1, EVAL_BUDGET_FLOATS // max(1, per_row))
        outputs = torch.cat(
            [self.forward(x[i : i + chunk], False) for i in range(0, len(x), chunk)], dim=1
        )
        return self.member_losses(outputs, y), self.data.metric_value(outputs, y)

    def member_state(self, member: Member) -> dict[str, torch.Tensor]:
        """A member's weights, unpadded, as the state of its own DenseNet (see models.py)."""
        i = self.members.index(member)
        dims = (self.data.n_features, *member.widths, self.data.n_outputs)
        state: dict[str, torch.Tensor] = {}
        names = _linear_names(member.config)
        for layer, name in enumerate(names):
            w = self.weights[layer][i, : dims[layer], : dims[layer + 1]]
            state[f"{name}.weight"] = w.detach().T.clone()
            state[f"{name}.bias"] = self.biases[layer][i, 0, : dims[layer + 1]].detach().clone()
        return state


def _linear_names(config: Config) -> list[str]:
    """The state-dict prefixes of a DenseNet's Dense layers (hidden.0, hidden.3, ..., output)."""
    per_layer = 3 if config.dropout > 0 else 2  # Linear, Activation[, Dropout]
    return [f"hidden.{i * per_layer}" for i in range(config.layers)] + ["output"]


Callback = Callable[[Any, Any], bool]
