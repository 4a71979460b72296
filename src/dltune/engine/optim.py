"""Optimizers by their Keras names, with PyTorch's update rules and defaults.

``momentum`` and ``nesterov`` are SGD with momentum 0.9 (Keras's SGD(momentum=0.9[, nesterov])).
``weight_decay`` is L2 added to the gradient for every optimizer but AdamW, where it is decoupled,
as PyTorch defines them.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

MOMENTUM = 0.9


def make_optimizer(
    name: str, params: Iterable[torch.Tensor], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM, weight_decay=weight_decay)
    if name == "nesterov":
        return torch.optim.SGD(
            params, lr=lr, momentum=MOMENTUM, nesterov=True, weight_decay=weight_decay
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer {name!r} is not known")
