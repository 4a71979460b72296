"""The seven optimizers as one update over stacked members, each with its own coefficients.

A population holds each layer's weights of P members in one tensor (P, ...). Every optimizer
dltune offers is a special case of one update rule,

    g  = grad + l2 * p                      (L2 weight decay; AdamW decouples it instead)
    p  = p * (1 - decay)                    (AdamW's decoupled decay: lr * weight_decay)
    m  = m_keep * m + m_in * g              (momentum or Adam's first moment)
    v  = v_keep * v + v_in * g^2            (Adam's / RMSprop's second moment, Adagrad's sum)
    p -= lr * (g_w * g + m_w * m) / (sqrt(v_scale * v) + eps)

with per-member coefficients of shape (P, 1, 1), so members with different optimizers, learning
rates, weight decays and step counts (Adam's bias correction) update together without Python
work per member. The coefficients reproduce PyTorch's SGD (momentum, nesterov), Adam, AdamW,
RMSprop and Adagrad with their default settings, to float32 rounding (the tests compare them).

Why compiled: written as eager tensor operations the rule makes about fifteen passes over every
parameter, and for small networks those passes cost more than the matrix products (measured:
two thirds of a step of 16 members of 784-256-256-10 at batch 32). torch.compile fuses it into
one pass that reads p, grad, m, v and writes p, m, v. Where compiling is impossible (no C++
compiler), disabled (DLTUNE_COMPILE=0) or not yet worth its fixed cost for this trainer (see
COMPILE_AFTER_UPDATES and UpdateKernel) the same function runs eagerly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .optim import MOMENTUM, make_optimizer

if TYPE_CHECKING:
    from ..config import Config

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_ALPHA = 0.99
RMSPROP_EPS = 1e-8
ADAGRAD_EPS = 1e-10
N_COEFFICIENTS = 12  # l2, decay, m_keep, m_in, v_keep, v_in, g_w, m_w, v_scale, eps, lr, active


@dataclass(frozen=True)
class MemberOptimizer:
    """One member's optimizer settings."""

    name: str
    lr: float
    weight_decay: float

    @classmethod
    def of(cls, config: Config) -> MemberOptimizer:
        """A configuration's optimizer, learning rate and weight decay."""
        return cls(config.optimizer, config.learning_rate, config.weight_decay)


def coefficients(opt: MemberOptimizer) -> tuple[float, ...]:
    """(l2, decay, m_keep, m_in, v_keep, v_in, g_w, m_w, v_scale, eps, lr) of one member.

    For Adam and AdamW, m_w and v_scale are 1 here: the bias corrections, 1 / (1 - beta^t),
    depend on the step and are applied by `coefficient_tables`.
    """
    lr, wd = opt.lr, opt.weight_decay
    if opt.name == "sgd":
        return (wd, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, lr)
    if opt.name == "momentum":
        return (wd, 0.0, MOMENTUM, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, lr)
    if opt.name == "nesterov":
        return (wd, 0.0, MOMENTUM, 1.0, 0.0, 0.0, 1.0, MOMENTUM, 0.0, 1.0, lr)
    if opt.name in ("adam", "adamw"):
        b1, b2 = ADAM_BETAS
        l2, decay = (wd, 0.0) if opt.name == "adam" else (0.0, lr * wd)
        return (l2, decay, b1, 1 - b1, b2, 1 - b2, 0.0, 1.0, 1.0, ADAM_EPS, lr)
    if opt.name == "rmsprop":
        a = RMSPROP_ALPHA
        return (wd, 0.0, 0.0, 0.0, a, 1 - a, 1.0, 0.0, 1.0, RMSPROP_EPS, lr)
    if opt.name == "adagrad":
        return (wd, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, ADAGRAD_EPS, lr)
    raise ValueError(f"optimizer {opt.name!r} is not known")


def update_(
    p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, c: torch.Tensor
) -> None:
    """The update rule in place; p, g, m, v: (P, k), one row per member; c: (P, 12)."""

    def col(k: int) -> torch.Tensor:
        return c[:, k : k + 1]  # (P, 1), broadcast along the member's row

    active = col(11) > 0  # frozen (diverged) members keep their weights as they are
    g = g + col(0) * p
    p_decayed = p * (1 - col(1) * col(11))
    m_new = col(2) * m + col(3) * g
    v_new = col(4) * v + col(5) * g * g
    step = (col(6) * g + col(7) * m_new) / (torch.sqrt(col(8) * v_new) + col(9))
    step = torch.where(active, step, 0.0)  # a frozen member's NaN must not reach its weights
    p.copy_(p_decayed - col(10) * step)
    m.copy_(m_new)
    v.copy_(v_new)


@dataclass(frozen=True)
class Terms:
    """Which terms of the update rule some member of a bucket uses. The eager update skips
    the others: a bucket of plain SGD members needs two passes over its parameters instead of
    the general rule's fifteen, and most sweeps hold the optimizer and the weight decay."""

    l2: bool = True  # coefficient 0
    decay: bool = True  # 1
    m: bool = True  # 2, 3 (and 7: the step reads m)
    v: bool = True  # 4, 5, 8, 9 (the step divides by sqrt(v) + eps)
    g: bool = True  # 6 (the step reads g itself)

    @classmethod
    def of(cls, table: torch.Tensor) -> Terms:
        """The terms a (P, 12) coefficient table uses."""
        used = (table != 0).any(dim=0).tolist()
        return cls(l2=used[0], decay=used[1], m=used[3] or used[7], v=used[5] or used[8], g=used[6])


def update_eager_(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    c: torch.Tensor,
    terms: Terms,
    all_active: bool,
) -> None:
    """update_ without the terms no member uses, in place where it can be: what runs when the
    update is not compiled. Equal to update_ to float32 rounding (tests/test_population.py)."""

    def col(k: int) -> torch.Tensor:
        return c[:, k : k + 1]

    if terms.l2:
        g = g.addcmul(col(0), p)
    if terms.m:
        m.mul_(col(2)).addcmul_(col(3), g)
    if terms.v:
        v.mul_(col(4)).addcmul_(col(5) * g, g)
    if terms.m and terms.g:
        step = torch.addcmul(col(6) * g, col(7), m)
    elif terms.m:
        step = col(7) * m
    else:
        step = col(6) * g
    denominator = (col(8) * v).sqrt_().add_(col(9)) if terms.v else col(9)
    step = step.div_(denominator)
    if not all_active:
        step = torch.where(col(11) > 0, step, 0.0)
    if terms.decay:
        p.mul_(1 - col(1) * col(11))
    p.sub_(step.mul_(col(10)))


# Compiling costs a fixed 7-15 s on this project's CPU (importing the compiler, tracing, loading
# the cached kernel), while the eager update costs some 15-40 ns per parameter more than the
# compiled one (measured: 14-42 ns against 1.3-3.4 ns). So the update runs eagerly until it has
# touched this many parameters (about the compile's price in eager time), then compiles: small
# jobs (a sweep on a small dataset) never pay for the compiler, large ones pay at most about
# twice the best choice in hindsight (the ski-rental rule).
COMPILE_AFTER_UPDATES = 4e8


class UpdateKernel:
    """The update rule as a trainer runs it: eager until its own updates have reached
    COMPILE_AFTER_UPDATES parameters, then compiled (see above). One per trainer, so that how
    much one trainer has trained never decides whether another compiles.

    `mode`: "auto", "1" (compile at once) or "0" (never); None reads DLTUNE_COMPILE, once, now.

    One compiled call per parameter tensor rather than one over a bucket's list of tensors: a
    list would compile a graph per network depth (some 20 s each on a cold cache) to save a
    few microseconds a step.
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode if mode is not None else os.environ.get("DLTUNE_COMPILE", "auto")
        self.eager_updates = 0.0
        self._function: Callable[..., None] | None = None  # chosen: compiled, or update_

    @property
    def compiled(self) -> bool:
        return self._function is not None and self._function is not update_

    def _choose(self, size: int) -> Callable[..., None]:
        """The function for an update of `size` parameters: update_ while eager."""
        if self._function is not None:
            return self._function
        if self.mode == "0":
            self._function = update_
        elif self.mode == "1" or self.eager_updates >= COMPILE_AFTER_UPDATES:
            self._function = torch.compile(update_, dynamic=True)
        else:
            self.eager_updates += size
            return update_
        return self._function

    def run(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        m: torch.Tensor,
        v: torch.Tensor,
        c: torch.Tensor,
        terms: Terms = Terms(),
        all_active: bool = False,
    ) -> None:
        """The update on (P, k) rows, compiled where possible.

        torch.compile specializes a dimension of size 1, so a lone member's row is viewed as
        two half rows (its coefficients repeated) rather than compiling a second kernel; a row
        of odd length (only the bias of a layer narrower than 8) runs eagerly.
        """
        function = self._choose(p.numel())
        if function is update_:
            update_eager_(p, g, m, v, c, terms, all_active)
            return
        if p.shape[0] == 1:
            if p.shape[1] % 2:
                update_(p, g, m, v, c)
                return
            p, g, m, v = (t.view(2, -1) for t in (p, g, m, v))
            c = c.repeat(2, 1)
        try:
            function(p, g, m, v, c)
        except Exception as exc:  # no C++ compiler, an unsupported platform: run it eagerly
            warnings.warn(
                f"dltune: compiling the population's optimizer failed ({type(exc).__name__}); "
                "running it uncompiled, which is slower. Set DLTUNE_COMPILE=0 to skip the "
                "attempt.",
                RuntimeWarning,
                stacklevel=3,
            )
            self._function = update_
            update_(p, g, m, v, c)


def _step_tensor(step: int) -> torch.Tensor:
    return torch.tensor(float(step))


# torch.optim's per-parameter state for a lone member, built from the stacked buffers (shared,
# so torch.optim's in-place updates land in them), or None before its first step.
_TORCH_STATE: dict[str, Callable[[torch.Tensor, torch.Tensor, int], dict | None]] = {
    "sgd": lambda m, v, step: None,
    "momentum": lambda m, v, step: {"momentum_buffer": m} if step else None,
    "nesterov": lambda m, v, step: {"momentum_buffer": m} if step else None,
    "adam": lambda m, v, step: (
        {"step": _step_tensor(step), "exp_avg": m, "exp_avg_sq": v} if step else None
    ),
    "adamw": lambda m, v, step: (
        {"step": _step_tensor(step), "exp_avg": m, "exp_avg_sq": v} if step else None
    ),
    "rmsprop": lambda m, v, step: {"step": _step_tensor(step), "square_avg": v} if step else None,
    "adagrad": lambda m, v, step: {"step": _step_tensor(step), "sum": v},
}
# Which state entry holds each stacked buffer.
_TORCH_KEYS: dict[str, list[tuple[str, str]]] = {
    "sgd": [],
    "momentum": [("momentum_buffer", "m")],
    "nesterov": [("momentum_buffer", "m")],
    "adam": [("exp_avg", "m"), ("exp_avg_sq", "v")],
    "adamw": [("exp_avg", "m"), ("exp_avg_sq", "v")],
    "rmsprop": [("square_avg", "v")],
    "adagrad": [("sum", "v")],
}


class StackedOptimizer:
    """Updates stacked parameters, each (P, k) with one row per member, each member with its
    own optimizer.

    The moment buffers m and v have the parameters' shapes; each member's step count is its
    own, since members join at different times.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        members: list[MemberOptimizer],
        *,
        steps: list[int] | None = None,
        m: list[torch.Tensor] | None = None,
        v: list[torch.Tensor] | None = None,
        kernel: UpdateKernel | None = None,
    ) -> None:
        self.params = params
        self.kernel = kernel if kernel is not None else UpdateKernel()
        self.members = list(members)
        self.steps = list(steps) if steps is not None else [0] * len(members)
        self.m = m if m is not None else [torch.zeros_like(p) for p in params]
        self.v = v if v is not None else [torch.zeros_like(p) for p in params]
        device = params[0].device if params else torch.device("cpu")
        rows = [(*coefficients(x), 1.0) for x in self.members]
        self._base = torch.tensor(rows, dtype=torch.float32, device=device).view(-1, N_COEFFICIENTS)
        self._adam = torch.tensor(
            [x.name in ("adam", "adamw") for x in self.members], dtype=torch.bool, device=device
        )
        self._terms = Terms.of(self._base)
        self._tables: torch.Tensor | None = None  # (S, P, 12) for the steps ahead
        self._next = 0
        # A lone member steps with torch.optim itself: for one small network the fixed cost of
        # a compiled call per tensor (guards, wrappers: ~0.1 ms) outweighs what fusing saves.
        self._alone = self._torch_optimizer() if len(self.members) == 1 else None

    def _torch_optimizer(self) -> torch.optim.Optimizer:
        member, step = self.members[0], self.steps[0]
        optimizer = make_optimizer(member.name, self.params, member.lr, member.weight_decay)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            state = _TORCH_STATE[member.name](m, v, step)
            if state is not None:
                optimizer.state[p] = state
        return optimizer

    def moments(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The moment buffers (m, v), current also when torch.optim holds them."""
        if self._alone is not None:
            name = self.members[0].name
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                state = self._alone.state.get(p, {})
                for key, target in _TORCH_KEYS[name]:
                    value = state.get(key)
                    if value is not None and value is not (m if target == "m" else v):
                        (m if target == "m" else v).copy_(value)
        return self.m, self.v

    def plan(self, n_steps: int) -> None:
        """Compute the coefficients of the next `n_steps` steps at once (one epoch's worth),
        so that a step does no Python work per member."""
        device = self._base.device
        start = torch.tensor(self.steps, dtype=torch.float64, device=device)
        t = (
            start[None, :]
            + torch.arange(1, n_steps + 1, dtype=torch.float64, device=device)[:, None]
        )  # (S, P) the 1-based step of each member at each step ahead
        b1, b2 = ADAM_BETAS
        tables = self._base.expand(n_steps, -1, -1).clone()
        adam = self._adam[None, :]
        tables[:, :, 7] = torch.where(adam, 1 / (1 - b1**t), tables[:, :, 7].double()).float()
        tables[:, :, 8] = torch.where(adam, 1 / (1 - b2**t), tables[:, :, 8].double()).float()
        self._tables, self._next = tables, 0

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """One update of every member; `active` (P,) bool freezes members where False."""
        if self._alone is not None:
            self.steps = [self.steps[0] + 1]
            if active is None or bool(active[0]):
                self._alone.step()
            for p in self.params:
                p.grad = None
            return
        if self._tables is None or self._next >= len(self._tables):
            self.plan(1)
        assert self._tables is not None
        table = self._tables[self._next]
        self._next += 1
        self.steps = [s + 1 for s in self.steps]
        if active is not None:
            table = table.clone()
            table[:, 11] = active.to(torch.float32)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is not None:
                self.kernel.run(p, p.grad.contiguous(), m, v, table, self._terms, active is None)
                p.grad = None
