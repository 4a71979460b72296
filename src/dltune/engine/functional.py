"""Many modules of one architecture as one: a template module run through torch.func.vmap over
functional_call, with each member's parameters and buffers stacked along a leading axis.

This is how a population stacks networks it cannot pad (the convolutional family, a user's
module): members whose modules have the same parameter and buffer names and shapes and the same
structure share a template, and every member's forward is one vmapped call. Buffers are stacked
too, so batch normalization keeps its running statistics per member (vmap updates each member's
slice in place).

Dropout is the one thing vmap must not draw itself: a member of the built-in families draws its
masks from its own generator (nets.dense.SeededDropout) so that it equals its sequential run.
The template's dropout modules are replaced by FedDropout, which multiplies by a mask drawn
outside vmap, member by member, in the order and shapes that member's own module would draw
them (recorded once per batch size by a forward of one member). nn.Dropout modules of a user's
module are fed the same way with each member's own rate, but their masks come from torch's
global generator, as the module's own nn.Dropout would draw them: such a member is not exactly
its sequential run (nothing is: the global generator's state depends on everything else that
drew from it). Both are reported as "dropout modules" below.

A module whose forward vmap cannot run (in-place updates of tensors that are not its stacked
buffers, data-dependent control flow, .item()) is found by `StackedModule.problem`, which runs
one vmapped training step on copies; its architecture trains one member at a time instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..config import Config
from ..nets.dense import SeededDropout, dropout_scale

# Config fields that only training reads: members that differ in them alone share a template.
# Dropout is among them because the template's dropout modules are fed each member's own masks.
TRAINING_FIELDS = ("dropout", "loss", "optimizer", "learning_rate", "weight_decay", "epochs")
DROPOUT_TYPES = (SeededDropout, nn.Dropout)


def dropout_modules(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The module's dropout modules that a template feeds, in registration order."""
    return [(n, m) for n, m in module.named_modules() if type(m) in DROPOUT_TYPES]


def dropout_rate(module: nn.Module) -> float:
    if isinstance(module, SeededDropout):
        return module.rate
    assert isinstance(module, nn.Dropout)  # dropout_modules gives no other
    return float(module.p)


@dataclass(frozen=True)
class MaskSource:
    """Where one of a member's dropout modules draws its masks: its rate and generator (None:
    torch's global generator, as nn.Dropout draws)."""

    rate: float
    generator: torch.Generator | None


def mask_sources(module: nn.Module) -> list[MaskSource]:
    """A member's own dropout modules, as the template's FedDropout indices read them."""
    return [
        MaskSource(dropout_rate(m), m.generator if isinstance(m, SeededDropout) else None)
        for _, m in dropout_modules(module)
    ]


def signature(module: nn.Module, config: Config, builtin: bool) -> tuple[Any, ...]:
    """What members must share to run through one template: every parameter's and buffer's
    name, shape and dtype, every submodule's type and settings (dropout rates excepted: they
    are fed), and the configuration's architecture (all but TRAINING_FIELDS).

    For a user's module the configuration's dropout counts too unless every dropout module
    carries it: a rate the forward reads some other way (F.dropout with an attribute) cannot
    be fed.
    """
    tensors = tuple(
        (kind, name, tuple(t.shape), str(t.dtype))
        for kind, named in (("p", module.named_parameters()), ("b", module.named_buffers()))
        for name, t in named
    )
    structure = tuple(
        (name, type(m).__qualname__, "" if type(m) in DROPOUT_TYPES else m.extra_repr())
        for name, m in module.named_modules()
    )
    architecture = {k: v for k, v in config.to_dict().items() if k not in TRAINING_FIELDS}
    rates = [dropout_rate(m) for _, m in dropout_modules(module)]
    if not builtin and not (rates and all(r == config.dropout for r in rates)):
        architecture["dropout"] = config.dropout
    return (tensors, structure, tuple(sorted((k, repr(v)) for k, v in architecture.items())))


class MaskFeed:
    """The masks of one stacked forward, handed to the template's FedDropout modules in call
    order; or, while recording, the (module index, shape) of each call."""

    def __init__(self) -> None:
        self.masks: tuple[torch.Tensor | None, ...] = ()
        self.position = 0
        self.recording: list[tuple[int, tuple[int, ...]]] | None = None

    def load(self, masks: tuple[torch.Tensor | None, ...]) -> None:
        self.masks, self.position = masks, 0

    def take(self, index: int, x: torch.Tensor) -> torch.Tensor | None:
        if self.recording is not None:
            self.recording.append((index, tuple(x.shape)))
            return None
        if self.position >= len(self.masks):
            return None  # no member draws masks in this forward
        mask = self.masks[self.position]
        self.position += 1
        return mask


class FedDropout(nn.Module):
    """Stands in for a dropout module in a template: multiplies by the member's mask, drawn
    outside vmap (see the module's note); None: the member keeps every unit."""

    def __init__(self, feed: MaskFeed, index: int) -> None:
        super().__init__()
        self.feed = feed
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        mask = self.feed.take(self.index, x)
        return x if mask is None else x * mask


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


class StackedModule:
    """A template of one architecture and the stacked forward of its members.

    Parameters are held by the caller as rows (P, numel), the stacked optimizer's layout, and
    viewed here in their own shapes; buffers as (P, *shape).
    """

    def __init__(self, template: nn.Module) -> None:
        self.template = template
        self.param_names = [n for n, _ in template.named_parameters()]
        self.param_shapes = [tuple(p.shape) for _, p in template.named_parameters()]
        self.buffer_names = [n for n, _ in template.named_buffers()]
        self.state_names = list(template.state_dict().keys())  # what load_state_dict expects
        self.feed = MaskFeed()
        self.n_dropouts = len(dropout_modules(template))
        for index, (name, _) in enumerate(dropout_modules(template)):
            _set_submodule(template, name, FedDropout(self.feed, index))
        self._calls: dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]] = {}

    # ---- one member's state -------------------------------------------------------------

    def rows_of(self, module: nn.Module) -> list[torch.Tensor]:
        """A member's parameters as flat rows, in the template's order."""
        params = dict(module.named_parameters())
        return [params[n].detach().reshape(-1) for n in self.param_names]

    def buffers_of(self, module: nn.Module) -> list[torch.Tensor]:
        buffers = dict(module.named_buffers())
        return [buffers[n].detach() for n in self.buffer_names]

    def state_dict(self, rows: list[torch.Tensor], buffers: list[torch.Tensor]) -> dict:
        """One member's state as its own module's state_dict (clones)."""
        state = {
            n: r.detach().view(s).clone()
            for n, r, s in zip(self.param_names, rows, self.param_shapes, strict=True)
        }
        state.update(
            (n, b.detach().clone()) for n, b in zip(self.buffer_names, buffers, strict=True)
        )
        return {n: state[n] for n in self.state_names}

    # ---- the stacked forward --------------------------------------------------------------

    def forward(
        self,
        rows: list[torch.Tensor],
        buffers: list[torch.Tensor],
        x: torch.Tensor,
        masks: tuple[torch.Tensor | None, ...] = (),
    ) -> torch.Tensor:
        """Every member's outputs (P, N, C): x (P, N, F) per-member rows or (N, F) shared by
        all; masks, one (P, *shape) per dropout call (see masks_for), only in training."""
        shapes, names, buffer_names = self.param_shapes, self.param_names, self.buffer_names
        feed, template = self.feed, self.template

        def one(
            own_rows: list[torch.Tensor],
            own_buffers: list[torch.Tensor],
            own_x: torch.Tensor,
            own_masks: tuple[torch.Tensor | None, ...],
        ) -> torch.Tensor:
            state = {n: r.view(s) for n, r, s in zip(names, own_rows, shapes, strict=True)}
            state.update(zip(buffer_names, own_buffers, strict=True))
            feed.load(own_masks)
            return functional_call(template, state, (own_x,))

        in_x = 0 if x.dim() == 3 else None
        mask_dims = tuple(None if m is None else 0 for m in masks)
        try:
            return vmap(one, in_dims=(0, 0, in_x, mask_dims), randomness="different")(
                rows, buffers, x, masks
            )
        finally:
            feed.load(())

    def dropout_calls(
        self, rows: list[torch.Tensor], buffers: list[torch.Tensor], x: torch.Tensor
    ) -> list[tuple[int, tuple[int, ...]]]:
        """(dropout module index, shape) of each dropout call of a training forward on a batch
        of x's shape, in call order: one forward of member 0 on copies, once per batch shape."""
        key = tuple(x.shape)
        if key not in self._calls:
            self._calls[key] = []
            if self.n_dropouts:
                one_rows = [r[:1].detach() for r in rows]
                one_buffers = [b[:1].clone() for b in buffers]  # batch norm must not learn
                self.feed.recording = self._calls[key]
                try:
                    with torch.no_grad():
                        self.template.train()
                        self.forward(one_rows, one_buffers, x)
                finally:
                    self.feed.recording = None
        return self._calls[key]

    def masks_for(
        self,
        calls: list[tuple[int, tuple[int, ...]]],
        sources: list[list[MaskSource]],
        device: torch.device,
    ) -> tuple[torch.Tensor | None, ...]:
        """Each call's masks (P, *shape): each member's drawn from its own source, in the
        order its own module draws them; ones for members whose rate is 0. () when no member
        drops anything."""
        if not any(s.rate > 0 for own in sources for s in own):
            return ()
        masks: list[torch.Tensor | None] = []
        for index, shape in calls:
            stacked = torch.ones((len(sources), *shape), device=device)
            for i, own in enumerate(sources):
                source = own[index]
                if source.rate > 0:
                    stacked[i] = dropout_scale(shape, source.rate, source.generator, device)
            masks.append(stacked)
        return tuple(masks)

    def problem(
        self,
        rows: list[torch.Tensor],
        buffers: list[torch.Tensor],
        x: torch.Tensor,
        loss: Callable[[torch.Tensor], torch.Tensor],
    ) -> str | None:
        """Why these members cannot train stacked (vmap refuses their forward or backward),
        or None: one training step's forward and backward on copies, nothing kept."""
        copies = [r.detach().clone().requires_grad_(True) for r in rows]
        try:
            self.template.train()
            calls = self.dropout_calls(copies, [b.clone() for b in buffers], x[0])
            n = len(x)
            masks = tuple(torch.ones((n, *shape), device=x.device) for _, shape in calls)
            outputs = self.forward(copies, [b.clone() for b in buffers], x, masks)
            if outputs.dim() < 2 or outputs.shape[:2] != x.shape[:2]:
                return f"its stacked outputs have shape {tuple(outputs.shape)}"
            loss(outputs).backward()
        except (Exception, SystemExit) as exc:  # vmap refuses with RuntimeErrors; user code: any
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"{type(exc).__name__}: {first}"
        return None
