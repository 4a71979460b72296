"""A sweep's plan: one hyperparameter, its values, the configuration that holds the rest, seeds.

The plan is plain data stored with the sweep's study (storage.schema.SWEEP), so the
report and a resumed run read exactly what was trained. Its members are (value, seed) pairs;
seed k is the same for every value (common random numbers: the values start from the same
initial weights and see the same dropout masks where shapes agree), so differences between
values are not blurred by differences between seeds.

An epochs sweep trains each seed once, for the most epochs asked: with a constant learning
rate, training for E epochs is exactly the first E epochs of a longer run (the data order
depends only on the shuffle seed and the epoch), so each value is read off the same curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_KERNEL_SIZE, Config
from ..study.lifecycle import trial_seed
from ..vocabulary import CONVOLUTIONAL
from .values import SHAPE_CHANGING, label

DEFAULT_WIDTH = 64  # the hidden layers' width in a sweep of layers from a base of none
DEFAULT_SEEDS = 3
DEFAULT_SEED = 0  # sweeps are for learning: the same command gives the same curves


@dataclass(frozen=True)
class SweepPlan:
    param: str
    values: tuple[Any, ...]
    base: Config  # the configuration that holds every other hyperparameter
    seeds: int
    seed: int  # the base seed: seed k of every value is trial_seed(seed, k)

    @property
    def epochs(self) -> int:
        return self.base.epochs

    @property
    def shares_shapes(self) -> bool:
        """Whether every member has the base's shape and batch size (one stacked bucket)."""
        return self.param not in SHAPE_CHANGING

    def labels(self) -> list[str]:
        return [label(v) for v in self.values]

    def member_seed(self, seed_index: int) -> int:
        return trial_seed(self.seed, seed_index)

    def config_for(self, value: Any) -> Config:
        """The base configuration with `param` set to `value`."""
        if self.param == "epochs":
            return self.base  # every value is read off runs of the most epochs
        if self.param == "units":
            return self.base.replace(units=[int(value)] * self.base.layers)
        if self.param == "filters":
            return self.base.replace(filters=[int(value)] * self.base.conv_layers)
        if self.param == "kernel_size":  # every block's
            return self.base.replace(kernel_size=[int(value)] * self.base.conv_layers)
        return self.base.replace(**{self.param: value})

    def members(self) -> list[tuple[int | None, int]]:
        """(value index, seed index) of every run to train; value None: an epochs sweep's
        run, which serves every value."""
        if self.param == "epochs":
            return [(None, k) for k in range(self.seeds)]
        return [(i, k) for i in range(len(self.values)) for k in range(self.seeds)]

    def space_dict(self, metric: str | None) -> dict[str, Any]:
        """The search space of the sweep's study: every key fixed at the base's value but the
        swept one, a choice of its values (so Optuna's params and the dashboard show it)."""
        base = self.base
        units: Any = base.units[0] if len(set(base.units)) == 1 else {"per_layer": list(base.units)}
        if self.param == "layers" or not base.units:
            # deeper networks repeat the first width (Config.replace's, 64 from no layer)
            units = base.units[0] if base.units else DEFAULT_WIDTH
        plain: dict[str, Any] = {
            "name": f"sweep-{self.param}",
            "metric": metric,
            "layers": base.layers,
            "units": units,
            "dropout": base.dropout,
            "activation": base.activation,
            "loss": base.loss,
            "optimizer": base.optimizer,
            "learning_rate": base.learning_rate,
            "weight_decay": base.weight_decay,
            "batch_size": base.batch_size,
            "epochs": base.epochs,
        }
        if base.convolutional or self.param in CONVOLUTIONAL:
            plain.update(_conv_plain(base, per_layer=self.param != "conv_layers"))
        if self.param != "epochs":
            plain[self.param] = list(self.values)
        return plain

    def params_for(self, value_index: int | None) -> dict[str, Any]:
        """The Optuna params of a member's trial (the swept key only; the rest are fixed)."""
        if value_index is None:
            return {}
        return {self.param: self.values[value_index]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "values": list(self.values),
            "base": self.base.to_dict(),
            "seeds": self.seeds,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, plain: dict[str, Any]) -> SweepPlan:
        return cls(
            param=plain["param"],
            values=tuple(plain["values"]),
            base=Config.from_dict(plain["base"]),
            seeds=int(plain["seeds"]),
            seed=int(plain["seed"]),
        )


def _conv_plain(base: Config, per_layer: bool) -> dict[str, Any]:
    """The base's convolutional blocks as fixed space keys (a sweep of conv_layers repeats
    the first block's filters and kernel size, as Config.replace does)."""
    return {
        "conv_layers": base.conv_layers,
        "filters": _blocks(base.filters or (32,), per_layer),
        "kernel_size": _blocks(base.kernel_size or (DEFAULT_KERNEL_SIZE,), per_layer),
        "pool": base.pool,
        "batch_norm": base.batch_norm,
        "global_pool": base.global_pool,
    }


def _blocks(values: tuple[int, ...], per_layer: bool) -> Any:
    """One value per block as a space key: one int where they agree (or not per layer)."""
    same = len(set(values)) == 1 or not per_layer
    return values[0] if same else {"per_layer": list(values)}
