"""What a Keras model's compile() names, in dltune's training knobs.

A build that calls ``model.compile(optimizer=..., loss=...)`` says how its model should train.
dltune trains with its own loop, so compile() is read, not run: the optimizer's class (and
SGD's momentum) becomes one of dltune's optimizer names, its learning rate and weight decay the
knobs of those names, its loss one of dltune's losses. What has no dltune equivalent (another
optimizer, a loss of several outputs, a learning-rate schedule) is left out and said.
study/user_model.py uses these values for the knobs the space does not tune.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..vocabulary import OPTIMIZERS, canonical
from .keras_model import is_keras_model, single_output

KEYS = ("optimizer", "learning_rate", "weight_decay", "loss")
MOMENTUM = 0.9  # dltune's momentum and nesterov optimizers (engine.optim)


@dataclass
class Compiled:
    """compile()'s values by dltune key (KEYS), how compile() wrote each, and what dltune
    cannot use (as notes)."""

    values: dict[str, Any] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)


def compiled(model: Any) -> Compiled | None:
    """compile()'s training knobs of a Keras model, or None where there is no Keras model or it
    was not compiled."""
    keras_model = getattr(model, "keras_model", model)  # a KerasNetwork: its Keras model
    if not is_keras_model(keras_model) or not getattr(keras_model, "compiled", False):
        return None
    found = Compiled()
    optimizer = getattr(keras_model, "optimizer", None)
    if optimizer is not None:
        _read_optimizer(optimizer, found)
    loss = getattr(keras_model, "loss", None)
    if loss is not None:
        _read_loss(loss, found, single_output(model))
    return found


def _number(value: Any) -> float:
    """A Keras variable or number as a float, rounded to what float32 holds (0.001, not
    0.0010000000474974513)."""
    return float(f"{float(value):.7g}")


def _read_optimizer(optimizer: Any, found: Compiled) -> None:
    kind = type(optimizer).__name__
    name = kind.lower()
    if name == "sgd":
        momentum = _number(getattr(optimizer, "momentum", 0.0) or 0.0)
        nesterov = bool(getattr(optimizer, "nesterov", False))
        name = "sgd" if momentum == 0 else "nesterov" if nesterov else "momentum"
        if momentum not in (0.0, MOMENTUM):
            found.unused.append(
                f"compile()'s SGD momentum {momentum:g} (dltune's {name} uses {MOMENTUM:g})"
            )
    if name not in OPTIMIZERS:
        found.unused.append(f"compile()'s optimizer {kind} (dltune has {', '.join(OPTIMIZERS)})")
        return
    found.values["optimizer"] = name
    found.written["optimizer"] = kind
    rate = getattr(optimizer, "_learning_rate", None)
    if rate is not None and not hasattr(rate, "assign"):  # a schedule, not a variable
        found.unused.append(
            f"compile()'s learning-rate schedule {type(rate).__name__} (dltune trains at one rate)"
        )
    else:
        found.values["learning_rate"] = _number(optimizer.learning_rate)
    decay = getattr(optimizer, "weight_decay", None)
    if decay:
        found.values["weight_decay"] = _number(decay)


def _loss_name(loss: Any) -> str | None:
    """The name of a loss as compile() takes it: a string, a Loss object, a function."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, (list, tuple, dict)):
        return None
    named = getattr(loss, "name", None)  # a Loss object (LossFunctionWrapper: its function's)
    if isinstance(named, str):
        return named
    function = getattr(loss, "__name__", None)
    return function if isinstance(function, str) else None


def _read_loss(loss: Any, found: Compiled, single: bool) -> None:
    """compile()'s loss; `single`: the model gives one output (Keras's binary idiom), whose
    binary cross-entropy is dltune's categorical cross-entropy on the two classes' logits
    (keras_model's notes)."""
    name = _loss_name(loss)
    if name is None:
        found.unused.append(f"compile()'s loss {loss!r} (dltune trains one output, one loss)")
        return
    known = canonical("loss", name)
    if known is None:
        found.unused.append(f"compile()'s loss {name!r} (no dltune loss of that name)")
        return
    if single and known == "binary_crossentropy":
        known, name = "categorical_crossentropy", f"{name} on its one output"
    found.values["loss"] = known
    found.written["loss"] = name
