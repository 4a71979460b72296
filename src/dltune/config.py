"""One configuration of a network: the eight hyperparameters of the dense network, the
convolutional blocks before it (none by default), and a user model's own hyperparameters.
`layers` 0 is the linear model (no hidden layer: the inputs, or the convolutions' features,
go straight to the output layer).

A :class:`Config` is what the sampler proposes and the engines train. It crosses process and
machine boundaries as a plain dict (``to_dict`` / ``from_dict``) and is stored with each trial.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .errors import InvalidParameterError
from .vocabulary import CONVOLUTIONAL

# The convolutional blocks' keys, in the order of Config's fields.
CONV_KEYS = CONVOLUTIONAL
DEFAULT_KERNEL_SIZE = 3  # a block's kernel where a configuration does not say


def pooled_size(input_shape: tuple[int, ...], conv_layers: int, pool: int) -> tuple[int, ...]:
    """The spatial size after `conv_layers` blocks (padding "same": only pooling shrinks)."""
    size = tuple(input_shape[1:])
    if pool > 1:
        for _ in range(conv_layers):
            size = tuple(s // pool for s in size)
    return size


def conv_shape_problem(input_shape: tuple[int, ...], conv_layers: int, pool: int) -> str | None:
    """Why `conv_layers` blocks with max pooling `pool` cannot take examples of `input_shape`,
    or None if they can."""
    if conv_layers == 0:
        return None
    if len(input_shape) not in (2, 3):
        return (
            f"convolutional layers need examples of shape (channels, length) or (channels, "
            f"height, width); these examples are flat rows of {math.prod(input_shape)} values"
        )
    if min(pooled_size(input_shape, conv_layers, pool)) < 1:
        shown = "x".join(str(n) for n in input_shape[1:])
        return (
            f"{conv_layers} blocks with max pooling of {pool} shrink the input ({shown}) below "
            f"one element"
        )
    return None


@dataclass(frozen=True)
class Config:
    layers: int  # hidden Dense layers; 0: none, the output layer alone (a linear model)
    units: tuple[int, ...]  # one width per hidden layer; len(units) == layers
    dropout: float
    activation: str
    loss: str
    optimizer: str
    learning_rate: float
    weight_decay: float
    batch_size: int
    epochs: int  # the maximum; each trial records its best epoch
    # Convolutional blocks before the Dense layers (Conv -> BatchNorm? -> Activation ->
    # MaxPooling?), for data with a shape (signals, images); 0 is the dense network alone.
    conv_layers: int = 0
    filters: tuple[int, ...] = ()  # one count per convolutional block
    # One size per convolutional block. A single int given here (or stored, as before sizes
    # were per block) is every block's; left out, every block's is 3.
    kernel_size: tuple[int, ...] = ()
    pool: int = 0  # max pooling's size and stride after each block; 0 (or 1): none
    batch_norm: bool = False
    global_pool: bool = False  # global average pooling (else Flatten) before the Dense layers
    # A user model's own hyperparameters, in the order its build(hp) asked for them.
    model: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        kernels: Any = self.kernel_size
        if isinstance(kernels, int):
            kernels = (kernels,) * self.conv_layers
        elif not kernels:
            kernels = (DEFAULT_KERNEL_SIZE,) * self.conv_layers
        object.__setattr__(self, "kernel_size", tuple(int(k) for k in kernels))
        if len(self.units) != self.layers:
            raise InvalidParameterError(
                f"Config has {self.layers} layers but {len(self.units)} widths"
            )
        if len(self.filters) != self.conv_layers:
            raise InvalidParameterError(
                f"Config has {self.conv_layers} conv_layers but {len(self.filters)} filters"
            )
        if len(self.kernel_size) != self.conv_layers:
            raise InvalidParameterError(
                f"Config has {self.conv_layers} conv_layers but {len(self.kernel_size)} kernel "
                "sizes"
            )

    @property
    def convolutional(self) -> bool:
        return self.conv_layers > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data; the convolutional keys only for a convolutional network and `model` only
        for a user model, so that a dense configuration reads as it always has; kernel_size
        one int where every block shares it (as stored before sizes were per block)."""
        d = asdict(self)
        d["units"] = list(self.units)
        d["filters"] = list(self.filters)
        kernels = list(self.kernel_size)
        d["kernel_size"] = kernels[0] if len(set(kernels)) == 1 else kernels
        d["model"] = dict(self.model)
        if not self.convolutional:
            for key in CONV_KEYS:
                del d[key]
        if not self.model:
            del d["model"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """From to_dict's form; the keys added since (conv_layers .. model) may be missing, as
        in the configurations stored before them, and kernel_size may be one int for every
        block."""
        d = dict(d)
        d["units"] = tuple(int(u) for u in d["units"])
        d["filters"] = tuple(int(f) for f in d.get("filters", ()))
        kernels = d.get("kernel_size", DEFAULT_KERNEL_SIZE)
        blocks = int(d.get("conv_layers", 0))
        if isinstance(kernels, int | float | str):
            kernels = [kernels] * blocks
        d["kernel_size"] = tuple(int(k) for k in kernels)
        d["model"] = tuple(dict(d.get("model", {})).items())
        return cls(**d)

    def replace(self, **changes: Any) -> Config:
        d = self.to_dict()
        d.update(changes)
        if "layers" in changes and "units" not in changes:
            width = d["units"][0] if d["units"] else 64
            d["units"] = [width] * int(d["layers"])
        if "conv_layers" in changes and "filters" not in changes:
            count = d.get("filters") or [32]
            d["filters"] = [count[0]] * int(d["conv_layers"])
        if "conv_layers" in changes and "kernel_size" not in changes:
            kernels = d.get("kernel_size", DEFAULT_KERNEL_SIZE)
            d["kernel_size"] = kernels[0] if isinstance(kernels, list) else kernels  # every block
        return Config.from_dict(d)

    def short(self) -> str:
        """A one-line human summary, e.g. '2x[256,128] relu drop=0.20 adam lr=1.2e-03 bs=64'."""
        widths = ",".join(str(u) for u in self.units)
        # no hidden layer (0x[]): no activation or dropout acts there; the convolutions'
        # activation is shown with them
        dense = f"{self.layers}x[{widths}]"
        if self.layers:
            dense += f" {self.activation} drop={self.dropout:.2f}"
        text = (
            f"{dense} {self.loss} {self.optimizer} lr={self.learning_rate:.2e} "
            f"wd={self.weight_decay:.1e} bs={self.batch_size}"
        )
        if self.convolutional:
            filters = ",".join(str(f) for f in self.filters)
            shared = len(set(self.kernel_size)) == 1  # one size, or each block's
            kernel = ",".join(str(k) for k in self.kernel_size[: 1 if shared else None])
            pooled = f" pool={self.pool}" if self.pool > 1 else ""
            extras = (" bn" if self.batch_norm else "") + (" gap" if self.global_pool else "")
            act = "" if self.layers else f" {self.activation}"
            conv = f"conv{self.conv_layers}x[{filters}] k={kernel}{pooled}{extras}{act}"
            text = f"{conv} {text}"
        if self.model:  # a user's network: its own values, then the training knobs
            own = " ".join(f"{k}={_short(v)}" for k, v in self.model)
            text = (
                f"{own} | {self.loss} {self.optimizer} lr={self.learning_rate:.2e} "
                f"wd={self.weight_decay:.1e} bs={self.batch_size}"
            )
        return text


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
