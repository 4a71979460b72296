"""A space narrowed for a short budget (study/budget.py): its convolutional filters capped, or
its blocks left out (the dense network alone), and the costliest convolutional trial it allows.

A narrowed space samples a part of the space the study records: every configuration it draws
is one of the recorded space's, so that a later run with a longer budget continues the same
study over the whole of it (Optuna takes another range of the same integer parameter; a
range's log scale and a list's choices never change here).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .params import Choice, Fixed, IntRange, Param, PerLayer
from .parse import _max_of, _plain

if TYPE_CHECKING:
    from ..config import Config
    from . import SearchSpace


def has_blocks(space: SearchSpace) -> bool:
    """Whether the space's trials may have convolutional blocks."""
    return "conv_layers" in space.conv and _max_of(_plain(space.conv["conv_layers"])) > 0


def filter_range(space: SearchSpace) -> tuple[int, int]:
    """The fewest and the most filters a block of the space may have."""
    filters = space.conv["filters"]
    return int(_extreme(filters, most=False)), int(_extreme(filters, most=True))


def costliest(space: SearchSpace, filters: int) -> Config:
    """The trial of the space whose blocks cost the most to train, with `filters` in each:
    the most blocks, the largest kernel, the least pooling, the smallest batch (its Dense
    layers aside: they are the dense family's cost, which the search pays either way)."""
    base = space.config_from_params(space.baseline_params(space.input_shape))
    conv = space.conv
    blocks = _max_of(_plain(conv["conv_layers"]))
    return dataclasses.replace(
        base,
        layers=0,
        units=(),
        batch_size=int(_extreme(space.params["batch_size"], most=False)),
        conv_layers=blocks,
        filters=(filters,) * blocks,
        kernel_size=(int(_extreme(conv["kernel_size"], most=True)),) * blocks,
        pool=int(_extreme(conv["pool"], most=False)),
        batch_norm=True,
        global_pool=True,
    )


def with_filters_at_most(space: SearchSpace, most: int) -> SearchSpace:
    """The space with no block wider than `most` filters."""
    plain = space.to_dict()
    plain["filters"] = _capped(plain["filters"], most)
    return _rebuilt(space, plain)


def without_blocks(space: SearchSpace) -> SearchSpace:
    """The space of the dense network alone (conv_layers 0)."""
    return _rebuilt(space, space.to_dict() | {"conv_layers": 0})


def _rebuilt(space: SearchSpace, plain: dict[str, Any]) -> SearchSpace:
    from . import SearchSpace

    made = SearchSpace.from_dict(plain, source=space.source)
    made.input_shape = space.input_shape
    made.epochs_given = space.epochs_given
    return made


def _capped(plain: Any, most: int) -> Any:
    """A filters spec in its plain form with no range above `most` (a list of choices is left
    as it is: Optuna keeps a categorical parameter's choices for the whole study)."""
    if isinstance(plain, dict) and isinstance(plain.get("per_layer"), list):
        return {**plain, "per_layer": [_capped(spec, most) for spec in plain["per_layer"]]}
    if isinstance(plain, dict) and "high" in plain:
        return {**plain, "low": min(plain["low"], most), "high": min(plain["high"], most)}
    return plain


def _extreme(param: Param | PerLayer, *, most: bool) -> Any:
    """The largest (`most`) or smallest value a parameter may take, over every layer."""
    if isinstance(param, PerLayer):
        specs = [param.each] if param.each is not None else list(param.specs)
        values = [_extreme(spec, most=most) for spec in specs if spec is not None]
        return max(values) if most else min(values)
    if isinstance(param, Fixed):
        return param.value
    if isinstance(param, Choice):
        return max(param.options) if most else min(param.options)
    if isinstance(param, IntRange):
        return param.high if most else param.low
    raise TypeError(f"{param!r} has no whole-number extreme")
