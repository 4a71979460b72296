"""One configuration of the dense network: the eight hyperparameters, as plain data.

A :class:`Config` is what the sampler proposes and the engines train. It crosses process and
machine boundaries as a plain dict (``to_dict`` / ``from_dict``) and is stored with each trial.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Config:
    layers: int
    units: tuple[int, ...]  # one width per hidden layer; len(units) == layers
    dropout: float
    activation: str
    loss: str
    optimizer: str
    learning_rate: float
    weight_decay: float
    batch_size: int
    epochs: int  # the maximum; each trial records its best epoch

    def __post_init__(self) -> None:
        if len(self.units) != self.layers:
            raise ValueError(f"Config has {self.layers} layers but {len(self.units)} widths")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["units"] = list(self.units)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        d = dict(d)
        d["units"] = tuple(int(u) for u in d["units"])
        return cls(**d)

    def replace(self, **changes: Any) -> Config:
        d = self.to_dict()
        d.update(changes)
        if "layers" in changes and "units" not in changes:
            width = d["units"][0] if d["units"] else 64
            d["units"] = [width] * int(d["layers"])
        return Config.from_dict(d)

    def short(self) -> str:
        """A one-line human summary, e.g. '2x[256,128] relu drop=0.20 adam lr=1.2e-03 bs=64'."""
        widths = ",".join(str(u) for u in self.units)
        return (
            f"{self.layers}x[{widths}] {self.activation} drop={self.dropout:.2f} "
            f"{self.loss} {self.optimizer} lr={self.learning_rate:.2e} "
            f"wd={self.weight_decay:.1e} bs={self.batch_size}"
        )
