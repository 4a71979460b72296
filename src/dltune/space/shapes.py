"""A space fitted to the shape of the examples: which convolutional keys it has.

Flat rows (tables) keep the dense network alone: a space that asks them for convolutions is
refused with the fix, and block keys it gives anyway are dropped with a note. Signals and
images get every convolutional key, the missing ones from their defaults (signals' around the
FCN, images' around Keras' MNIST convnet: rules.conv_defaults), conv_layers' range cut to the
blocks that pooling leaves room for; a space whose pooling would shrink the input below one
element is refused before training. Plain data in and out (SearchSpace.to_dict's
form), so that the space rebuilds itself from the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dltune import errors
from dltune.config import conv_shape_problem
from dltune.errors import SpaceError

from .params import Param, PerLayer
from .parse import _max_of, _plain
from .rules import _show, conv_defaults

Conv = Mapping[str, Param | PerLayer]  # a space's convolutional keys, as parsed


def flat_plain(
    conv: Conv, plain: dict[str, Any], source: str, input_shape: tuple[int, ...]
) -> tuple[dict[str, Any], list[str]]:
    """The space for flat rows: without its block keys, and a note if it gave any."""
    conv_layers = conv.get("conv_layers")
    if conv_layers is not None and _max_of(_plain(conv_layers)) > 0:
        raise SpaceError(
            f"{source}: conv_layers {_show(conv_layers.to_plain())} asks for "
            f"convolutional layers, but the examples are flat rows of {input_shape[0]} "
            f"values. Give their shape ({errors.param('shape', shown='C,L')} for signals of "
            f"C channels, {errors.param('shape', shown='C,H,W')} for images), or set "
            f"conv_layers: 0."
        )
    unused = [key for key in conv if key != "conv_layers"]
    if not unused:
        return plain, []
    many = len(unused) > 1
    note = (
        f"{', '.join(unused)} {'apply' if many else 'applies'} to convolutional layers; the "
        f"examples are flat rows, so {'they are' if many else 'it is'} not used"
    )
    return {k: v for k, v in plain.items() if k not in unused}, [note]


def shaped_plain(conv: Conv, plain: dict[str, Any], input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The space for signals or images: every convolutional key."""
    plain = dict(plain)
    if "conv_layers" not in conv:
        plain["conv_layers"] = _fitted_conv_layers(conv, input_shape)
    plain.update({k: v for k, v in conv_defaults(input_shape).items() if k not in plain})
    return plain


def check_fits(conv: Conv, input_shape: tuple[int, ...], source: str) -> None:
    """Refuse blocks whose pooling would shrink the input below one element."""
    most = _max_of(_plain(conv["conv_layers"]))
    pool = _max_of(_plain(conv["pool"]))  # the largest pooling shrinks the most
    problem = conv_shape_problem(input_shape, most, pool)
    if problem:
        raise SpaceError(
            f"{source}: conv_layers up to {most} with pool {pool}: {problem}. "
            f"Lower conv_layers' high, or the pool size (0: no pooling)."
        )


def _fitted_conv_layers(conv: Conv, input_shape: tuple[int, ...]) -> Any:
    """conv_layers' default range, cut to the blocks that pooling (the largest it may take)
    leaves room for."""
    defaults = conv_defaults(input_shape)
    default = dict(defaults["conv_layers"])
    pools = conv.get("pool")
    pool = _max_of(_plain(pools)) if pools else _largest(defaults["pool"])
    most = int(default["high"])
    while most > 0 and conv_shape_problem(input_shape, most, pool):
        most -= 1
    return {"low": 0, "high": most} if most > 0 else 0


def _largest(plain: Any) -> int:
    """The largest value of a default in its plain form (a number or a list of them)."""
    return int(max(plain)) if isinstance(plain, list) else int(plain)
