"""A padded bucket: members of a population that share a batch size and a (padded) shape.

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

What every bucket does alike (joining and leaving between segments, the training loop of a
segment, evaluation) is bucket_base.StackedBucket's. A member paused by the scheduler leaves
with its weights, moments and step count (KeptState) and rejoins a bucket with them when
promoted.
"""

from __future__ import annotations

import torch

from ..config import Config
from ..nets.dense import activation_module, dropout_generator, dropout_scale, initial_weights
from .bucket_base import Joining, KeptState, Member, StackedBucket
from .device_data import DeviceData
from .stacked_optim import UpdateKernel


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


class Bucket(StackedBucket[Member]):
    """Members that share batch size and depth, stacked into one network of given widths."""

    def __init__(
        self,
        data: DeviceData,
        batch_size: int,
        widths: tuple[int, ...],
        kernel: UpdateKernel | None = None,
    ) -> None:
        self.widths = widths  # the padded width of each hidden layer
        self.label = widths
        self.dims = (data.n_features, *widths, data.n_outputs)
        # Per layer: weights (P, in*out) and biases (P, out), one row per member. Rows (not
        # (P, in, out) leaves) so the optimizer's compiled kernel sees one shape family.
        params = [
            torch.zeros(0, size, device=data.device)
            for fan_in, fan_out in zip(self.dims[:-1], self.dims[1:], strict=True)
            for size in (fan_in * fan_out, fan_out)
        ]
        super().__init__(data, batch_size, params, kernel)

    def weight(self, layer: int) -> torch.Tensor:
        """(P, in, out), a view of the layer's rows."""
        return self.params[2 * layer].view(-1, self.dims[layer], self.dims[layer + 1])

    def bias(self, layer: int) -> torch.Tensor:
        """(P, 1, out), a view of the layer's rows."""
        return self.params[2 * layer + 1].unsqueeze(1)

    # ---- membership -----------------------------------------------------------------------

    def _own_block(self, tensor: torch.Tensor, index: int, member: Member) -> torch.Tensor:
        """A view of a member's own (unpadded) part of a (k,) row of stacked tensor `index`."""
        layer, is_bias = divmod(index, 2)
        dims = (self.data.n_features, *member.widths, self.data.n_outputs)
        if is_bias:
            return tensor[: dims[layer + 1]]
        block = tensor.view(self.dims[layer], self.dims[layer + 1])
        return block[: dims[layer], : dims[layer + 1]]

    def _joining(self, member: Member) -> Joining:
        """The member's rows padded with zeros: its initial weights, or its kept state."""
        device = self.data.device
        rows = [torch.zeros(p.shape[1], device=device) for p in self.params]
        m = [torch.zeros_like(r) for r in rows]
        v = [torch.zeros_like(r) for r in rows]
        kept = member.kept
        if kept is not None:
            for index in range(len(rows)):
                for target, source in zip((rows, m, v), (kept.params, kept.m, kept.v), strict=True):
                    self._own_block(target[index], index, member).copy_(source[index])
            return Joining(rows, m, v, [], kept.steps)
        layers = initial_weights(
            member.widths, self.data.n_features, self.data.n_outputs, member.seed
        )
        for layer, (weight, bias) in enumerate(layers):
            self._own_block(rows[2 * layer], 2 * layer, member).copy_(weight.T)
            self._own_block(rows[2 * layer + 1], 2 * layer + 1, member).copy_(bias)
        member.generator = dropout_generator(member.seed, device)
        return Joining(rows, m, v, [], 0)

    def keep(self, member: Member) -> KeptState:
        """A copy of a member's training state, unpadded, to pause it (remove it afterwards)."""
        i = self._index(member)
        moments_m, moments_v = self.optimizer.moments()

        def own(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            return [
                self._own_block(t[i].detach(), index, member).clone()
                for index, t in enumerate(tensors)
            ]

        return KeptState(own(self.params), own(moments_m), own(moments_v), self.optimizer.steps[i])

    def _layout(self) -> None:
        """Per-member tables the step needs, derived from the member list."""
        super()._layout()
        members = self.members
        device = self.data.device
        self.activations = _groups([m.config.activation for m in members])
        # Contiguous groups are activated slice by slice and joined: no gather and scatter of
        # the hidden units per group (measured: a third of a step of a 10-activation sweep).
        self.activation_runs = _runs([m.config.activation for m in members])
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

    def _step(self, x: torch.Tensor, y: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        losses = self.member_losses(self.forward(x, True), y)
        losses.sum().backward()  # members share no parameters: each gets its own gradient
        self.optimizer.step(None if bool(active.all()) else active)
        return losses.detach()

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x, False)

    def _row_floats(self) -> int:
        return max((*self.widths, self.data.n_outputs))

    def member_state(self, member: Member) -> dict[str, torch.Tensor]:
        """A member's weights, unpadded, as the state of its own DenseNet (see models.py)."""
        i = self._index(member)
        dims = (self.data.n_features, *member.widths, self.data.n_outputs)
        state: dict[str, torch.Tensor] = {}
        names = _linear_names(member.config)
        for layer, name in enumerate(names):
            w = self.weight(layer)[i, : dims[layer], : dims[layer + 1]]
            state[f"{name}.weight"] = w.detach().T.clone()
            state[f"{name}.bias"] = self.bias(layer)[i, 0, : dims[layer + 1]].detach().clone()
        return state


def _linear_names(config: Config) -> list[str]:
    """The state-dict prefixes of a DenseNet's Dense layers (hidden.0, hidden.3, ..., output)."""
    per_layer = 3 if config.dropout > 0 else 2  # Linear, Activation[, Dropout]
    return [f"hidden.{i * per_layer}" for i in range(config.layers)] + ["output"]
