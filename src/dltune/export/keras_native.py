"""A model whose networks are a user's Keras models, exported as a native Keras 3 file.

The file is one functional Keras model around the user's own (nested, with its trained
weights): raw features in; standardized (Normalization), reshaped to one example's shape and
arranged as the model takes it (channels last, say: usermodel.keras_model); then the user's
model; then what dltune's prediction does with its outputs: probabilities as the trial's loss
reads its logits, or the value in the target's units. An ensemble is every member's branch,
each weighted, added. Built-in layers and keras.ops only around the user's model, so
``keras.saving.load_model`` reads it in safe mode, and a Sequential or functional model of
built-in layers loads anywhere Keras does; a subclassed model loads where its class is
registered (``@keras.saving.register_keras_serializable()``), as Keras requires.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelError, param
from .loaded import TunedModel

_SUBCLASSED = (
    "a subclassed Keras model is saved and loaded by Keras only when its class is registered "
    "with @keras.saving.register_keras_serializable() (and its get_config() gives its "
    "constructor's arguments); "
)


def keras_networks(model: TunedModel) -> list[Any] | None:
    """The KerasNetwork of each of the model's networks (one per ensemble member), or None
    when they are not Keras models."""
    from ..usermodel.keras_model import KerasNetwork

    networks = list(getattr(model.network, "members", [model.network]))
    found = [getattr(network, "model", None) for network in networks]
    if all(isinstance(net, KerasNetwork) for net in found):
        return found
    return None


def native_model(keras: Any, model: TunedModel, networks: list[Any]) -> Any:
    """The functional Keras model of `model` (see the module's notes)."""
    prep = model.preprocessing
    inputs = keras.Input(shape=(prep.n_features,), name="features")
    scaled = keras.layers.Normalization(
        mean=prep.x_mean, variance=np.square(prep.x_std), name="standardize"
    )(inputs)
    weighted = model.is_ensemble
    branches = []
    for i, (member, network) in enumerate(zip(model.members, networks, strict=True)):
        outputs = _arranged(keras, scaled, network, i)
        user = _uncompiled(keras, network.to_keras(), f"member_{i}" if weighted else None)
        value = _head(keras, user(outputs), network.outputs, prep.task, member.config.loss)
        if weighted:
            value = keras.layers.Rescaling(float(member.weight), name=f"weight_{i}")(value)
        branches.append(value)
    total = keras.layers.Add(name="average")(branches) if len(branches) > 1 else branches[0]
    if prep.task == "regression":
        scale, offset = prep.target_std or 1.0, prep.target_mean or 0.0
        total = keras.layers.Rescaling(scale, offset, name="target_units")(total)
    return keras.Model(inputs, total, name="dltune_keras")


def _uncompiled(keras: Any, user: Any, name: str | None) -> Any:
    """A copy of the user's model with its weights and without its compile() (which the file
    would carry, and loading would warn about: an optimizer with no state); named `name` (an
    ensemble's members must have names of their own). The model itself, renamed, where Keras
    cannot copy it (a subclassed model it cannot rebuild from its config)."""
    try:
        copy = keras.models.clone_model(user)
        copy.set_weights(user.get_weights())
    except Exception:  # the original then: save_native says why if Keras cannot save it
        copy = user
    if name is not None:
        copy.name = name
    return copy


def _arranged(keras: Any, scaled: Any, network: Any, index: int) -> Any:
    """Standardized rows as one example's shape, arranged as the user's model takes them."""
    from ..usermodel.keras_model import arranged_shape

    shape = tuple(network.input_shape)
    if network.layout == "flat" or len(shape) == 1:
        return scaled
    h = keras.layers.Reshape(shape, name=f"example_shape_{index}")(scaled)
    if network.layout == "channels_last":  # axes counted from 1 past the batch
        order = (*range(2, len(shape) + 1), 1)
        return keras.layers.Permute(order, name=f"channels_last_{index}")(h)
    if network.layout == "no_channel_axis":
        without = arranged_shape(shape, network.layout)
        return keras.layers.Reshape(without, name=f"no_channel_axis_{index}")(h)
    return h


def _head(keras: Any, out: Any, kind: str, task: str, loss: str) -> Any:
    """The user's outputs as dltune predicts from them: its logits (as KerasNetwork makes
    them), then probabilities as `loss` reads them; a regression's value, standardized."""
    from ..usermodel.keras_model import EPSILON

    if task == "regression":
        return out
    ops = keras.ops
    if kind == "softmax":
        out = ops.log(ops.clip(out, EPSILON, 1.0))
    elif kind in ("sigmoid", "one_sigmoid"):
        p = ops.clip(out, EPSILON, 1.0 - EPSILON)
        out = ops.log(p) - ops.log(1.0 - p)
    if kind in ("one_sigmoid", "one_logit"):  # one output: the second class's; the first's 0
        out = ops.concatenate([ops.zeros_like(out), out], axis=-1)
    if loss == "binary_crossentropy":
        p = ops.sigmoid(out)
        return p / ops.maximum(ops.sum(p, axis=-1, keepdims=True), 1e-12)
    return ops.softmax(out, axis=-1)


def save_native(keras: Any, model: TunedModel, networks: list[Any], path: str) -> Any:
    """Write the native file to `path` and load it back (safe mode): the loaded model, or a
    ModelError saying why Keras could not. The users' models keep their names."""
    names = [network.keras_model.name for network in networks]
    try:
        native_model(keras, model, networks).save(path)
        return keras.saving.load_model(path)  # safe_mode: no code from the file runs
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        subclassed = any(not hasattr(n.keras_model, "inputs") for n in networks)
        raise ModelError(
            f"{path}: Keras could not save and load this model ({type(exc).__name__}: {first}); "
            f"{_SUBCLASSED if subclassed else ''}export it with {param('fmt', shown='onnx')} "
            "instead"
        ) from None
    finally:
        for network, name in zip(networks, names, strict=True):
            network.keras_model.name = name
