"""The seven optimizers as one update over stacked members, each with its own coefficients.

A population holds each layer's weights of P members in one tensor (P, ...). Every optimizer
dltune offers is a special case of one update rule,

    g  = grad + l2 * p                      (L2 weight decay; AdamW decouples it instead)
    p  = p * (1 - decay)                    (AdamW's decoupled decay: lr * weight_decay)
    m  = m_keep * m + m_in * g              (momentum or Adam's first moment)
    v  = v_keep * v + v_in * g^2            (Adam's / RMSprop's second moment, Adagrad's sum)
    p -= lr * (g_w * g + m_w * m) / (sqrt(v_scale * v) + eps)

with per-member coefficients of shape (P, 1, 1), so members with different optimizers, learning
rates, weight decays and step counts (Adam's bias correction) update in one pass of a few
tensor operations, without Python work per member. The coefficients reproduce PyTorch's
SGD (momentum, nesterov), Adam, AdamW, RMSprop and Adagrad with their default settings, to
float32 rounding (checked against torch.optim in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .optim import MOMENTUM

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_ALPHA = 0.99
RMSPROP_EPS = 1e-8
ADAGRAD_EPS = 1e-10


@dataclass(frozen=True)
class MemberOptimizer:
    """One member's optimizer settings."""

    name: str
    lr: float
    weight_decay: float


def _coefficients(opt: MemberOptimizer, step: int) -> tuple[float, ...]:
    """(l2, decay, m_keep, m_in, v_keep, v_in, g_w, m_w, v_scale, eps, lr) at `step` (1-based)."""
    lr, wd = opt.lr, opt.weight_decay
    if opt.name == "sgd":
        return (wd, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, lr)
    if opt.name == "momentum":
        return (wd, 0.0, MOMENTUM, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, lr)
    if opt.name == "nesterov":
        return (wd, 0.0, MOMENTUM, 1.0, 0.0, 0.0, 1.0, MOMENTUM, 0.0, 1.0, lr)
    if opt.name in ("adam", "adamw"):
        b1, b2 = ADAM_BETAS
        bias1, bias2 = 1 - b1**step, 1 - b2**step
        l2, decay = (wd, 0.0) if opt.name == "adam" else (0.0, lr * wd)
        return (l2, decay, b1, 1 - b1, b2, 1 - b2, 0.0, 1 / bias1, 1 / bias2, ADAM_EPS, lr)
    if opt.name == "rmsprop":
        a = RMSPROP_ALPHA
        return (wd, 0.0, 0.0, 0.0, a, 1 - a, 1.0, 0.0, 1.0, RMSPROP_EPS, lr)
    if opt.name == "adagrad":
        return (wd, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, ADAGRAD_EPS, lr)
    raise ValueError(f"optimizer {opt.name!r} is not known")


class StackedOptimizer:
    """Updates stacked parameters (P, ...) of P members, each with its own optimizer.

    The moment buffers exist only when some member needs them, so a population of plain SGD
    members pays for no Adam state.
    """

    def __init__(self, params: list[torch.Tensor], members: list[MemberOptimizer]) -> None:
        self.params = params
        self.members = list(members)
        self.steps = [0] * len(members)  # per member: members join at different times
        self.uses_m = any(m.name in ("momentum", "nesterov", "adam", "adamw") for m in members)
        self.uses_v = any(m.name in ("adam", "adamw", "rmsprop", "adagrad") for m in members)
        self.uses_l2 = any(_coefficients(m, 1)[0] != 0 for m in members)
        self.uses_decay = any(m.name == "adamw" and m.weight_decay != 0 for m in members)
        self.m = [torch.zeros_like(p) for p in params] if self.uses_m else []
        self.v = [torch.zeros_like(p) for p in params] if self.uses_v else []

    def export_state(self) -> dict[str, list[torch.Tensor]]:
        """The moment buffers, per kind ('m', 'v'), one tensor per parameter."""
        state = {}
        if self.uses_m:
            state["m"] = self.m
        if self.uses_v:
            state["v"] = self.v
        return state

    def import_state(self, state: dict[str, list[torch.Tensor]]) -> None:
        """Take over the buffers of the first members; members that joined at the end start at
        zero.

        A kind the earlier members did not use starts at zero for them too, which is harmless:
        their coefficients never read it.
        """
        for kind, buffers in (("m", self.m), ("v", self.v)):
            old = state.get(kind)
            if not buffers or old is None:
                continue
            for i, previous in enumerate(old):
                buffers[i][: len(previous)] = previous

    def _coefficient_tensors(self, device: torch.device) -> list[torch.Tensor]:
        rows = [_coefficients(m, s) for m, s in zip(self.members, self.steps, strict=True)]
        table = torch.tensor(rows, dtype=torch.float32, device=device)  # (P, 11)
        return [table[:, i] for i in range(table.shape[1])]

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """One update of every member; `active` (P,) bool freezes members where False."""
        self.steps = [s + 1 for s in self.steps]
        device = self.params[0].device
        l2, decay, m_keep, m_in, v_keep, v_in, g_w, m_w, v_scale, eps, lr = (
            self._coefficient_tensors(device)
        )
        if active is not None:
            decay = decay * active  # frozen members (diverged) keep their weights as they are
        for i, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)  # broadcast (P,) over a member's tensor

            def c(t: torch.Tensor, shape: tuple[int, ...] = shape) -> torch.Tensor:
                return t.view(shape)

            g = grad.addcmul(p, c(l2)) if self.uses_l2 else grad
            if self.uses_decay:
                p.mul_(1 - c(decay))
            numerator = g * c(g_w)
            if self.uses_m:
                m = self.m[i]
                m.mul_(c(m_keep)).addcmul_(g, c(m_in))
                numerator.addcmul_(m, c(m_w))
            if self.uses_v:
                v = self.v[i]
                v.mul_(c(v_keep)).addcmul_(g * g, c(v_in))
                denominator = (v * c(v_scale)).sqrt_().add_(c(eps))
                numerator.div_(denominator)
            if active is not None:  # a frozen member's NaN gradient must not reach its weights
                numerator = torch.where(c(active), numerator, 0.0)
            p.addcmul_(numerator, c(lr), value=-1.0)
            p.grad = None
