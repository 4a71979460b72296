"""A Keras 3 model from build(hp), trained as a torch module.

With ``KERAS_BACKEND=torch`` a Keras 3 model is a ``torch.nn.Module`` whose variables are torch
tensors. dltune sets that backend before it imports a user's build, where Keras is not imported
yet (:func:`prefer_torch_backend`); a Keras model of another backend is refused with what to do
(:func:`check_backend`). Keras is never imported here: a model is recognised through the
``keras`` module the user's code imported (``sys.modules``), so that dltune runs without Keras.

:class:`KerasNetwork` puts a Keras model behind what dltune's trainers expect of a module:

- inputs: dltune feeds examples in the data's shape, channels first ((N, C, L) signals,
  (N, C, H, W) images). Keras layers default to channels last, so the examples are moved to
  channels last where the model's declared input (``keras.Input``) says so, or, for a model
  that declares none (subclassed, Sequential without Input), where
  ``keras.config.image_data_format()`` is "channels_last" (Keras's default). A declared input
  of one channel without the channel axis, (H, W), takes the examples without it; a flat one,
  (C*H*W,), the examples' values in the data's own order (a row as the data hold it).
- outputs: dltune's losses read logits. A model whose output layer applies softmax (or sigmoid)
  gives probabilities, so its outputs are turned into logits: the log of the probabilities
  (log p - log(1 - p) for sigmoid), clipped at 1e-7 as Keras's own cross-entropy clips them.
  Where the output layer does not say (a subclassed model, keras.ops.softmax after the last
  layer), the outputs count as softmax probabilities when they are, on a probe batch
  (non-negative, each row summing to 1). Two classes with a single output, Keras's binary
  idiom (``Dense(1, activation="sigmoid")`` with binary cross-entropy), become the two
  classes' logits (0, z), z the output's log-odds (or the output itself where it is a logit):
  their softmax is (1 - p, p), so categorical cross-entropy on them is Keras's binary
  cross-entropy on p, exactly (compiled.py reads that compile() loss as categorical).
- training: the model runs with ``training=self.training``, so that Dropout and
  BatchNormalization behave as in Keras's fit() and evaluate().
- state: the model's trainable variables are this module's parameters, its non-trainable ones
  (batch normalization's moving statistics, seed states) its buffers, named by position
  (``trainable_0``, ``non_trainable_0``, ...): Keras's own variable paths carry layer names
  that a second build in one process numbers differently (dense, dense_1, ...). The forward
  is Keras's ``stateless_call`` on these tensors, so torch.func's functional_call (a
  population stacking members) swaps them as it swaps a torch module's, and non-trainable
  updates are written back into the buffers.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from ..errors import DLTuneError

BACKEND = "torch"
# Keras's default epsilon: its cross-entropy clips probabilities to [eps, 1 - eps] the same way.
EPSILON = 1e-7
LAYOUTS = ("as_is", "channels_last", "no_channel_axis", "flat")
PROBE_ROWS = 4  # rows of the probe that builds a model and reads what its outputs are


class KerasBackendError(DLTuneError):
    """A Keras model whose Keras was imported with a backend other than torch."""


def keras_module() -> Any | None:
    """The keras package where the user's code imported it, else None (never imported here)."""
    return sys.modules.get("keras")


def imported_keras() -> Any:
    """The keras package, which a Keras model in hand says the user's code imported."""
    return sys.modules["keras"]


def prefer_torch_backend() -> None:
    """Before a user's build is imported or called: Keras on PyTorch, where Keras is not imported
    yet (Keras reads KERAS_BACKEND once, when it is first imported). Worker processes inherit
    the setting."""
    if keras_module() is None:
        os.environ["KERAS_BACKEND"] = BACKEND


def is_keras_model(value: Any) -> bool:
    keras = keras_module()
    model_class = getattr(keras, "Model", None) if keras is not None else None
    return isinstance(model_class, type) and isinstance(value, model_class)


def check_backend(value: Any) -> None:
    """A KerasBackendError, saying what to do, when `value` is a Keras model that does not run
    on PyTorch (Keras imported with another backend, or Keras 2)."""
    if not is_keras_model(value):
        return
    keras = imported_keras()
    version = str(getattr(keras, "__version__", "0"))
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 3:
        raise KerasBackendError(
            f"build(hp) returned a model of Keras {version}; dltune trains Keras 3 models on "
            "PyTorch: pip install 'keras>=3' (or pip install 'dltune[keras]')"
        )
    backend = keras.backend.backend()
    if backend != BACKEND:
        raise KerasBackendError(
            f"build(hp) returned a Keras model, but Keras was imported with the {backend!r} "
            "backend; dltune trains Keras models on PyTorch. Set KERAS_BACKEND=torch before "
            "Keras is first imported (in a shell: export KERAS_BACKEND=torch; in a notebook: "
            "restart the kernel, then os.environ['KERAS_BACKEND'] = 'torch' before "
            "`import keras`), or let dltune import your build: `dltune run --model "
            "file.py:build` and dltune.tune(model='file.py:build') set it themselves"
        )


@contextmanager
def on_cpu() -> Iterator[None]:
    """Keras creates the variables of a model built here on the CPU (its default is a GPU
    where there is one), so that the same seed gives the same weights on any machine."""
    device = getattr(keras_module(), "device", None)  # none in Keras 2: check_backend says so
    with device("cpu") if device is not None else nullcontext():
        yield


# ---- reading a model --------------------------------------------------------------------


def declared_input(model: Any) -> tuple[Any, ...] | None:
    """The shape of one example as the model's keras.Input declares it, or None (a subclassed
    model, a Sequential without Input not yet built)."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    if len(inputs) > 1:
        raise DLTuneError(
            f"the Keras model takes {len(inputs)} inputs; dltune feeds one: the data's examples"
        )
    return tuple(inputs[0].shape[1:])


def _matches(declared: tuple[Any, ...], shape: tuple[int, ...]) -> bool:
    return len(declared) == len(shape) and all(
        d in (None, s) for d, s in zip(declared, shape, strict=True)
    )


def input_layout(model: Any, shape: tuple[int, ...]) -> str:
    """How examples of `shape` (channels first) reach the model: as they are, moved to
    channels last, or without their one channel axis (see LAYOUTS)."""
    last = (*shape[1:], shape[0])
    declared = declared_input(model)
    if declared is None:  # nothing declared: Keras's image data format decides
        keras = imported_keras()
        channels_last = keras.config.image_data_format() == "channels_last"
        return "channels_last" if channels_last and len(shape) > 1 else "as_is"
    if _matches(declared, shape):
        return "as_is"
    if len(shape) > 1 and _matches(declared, last):
        return "channels_last"
    if len(shape) > 1 and shape[0] == 1 and _matches(declared, shape[1:]):
        return "no_channel_axis"
    if len(shape) > 1 and _matches(declared, (math.prod(shape),)):
        return "flat"
    shown = tuple(None if d is None else int(d) for d in declared)
    fits = f"{shape}"
    if len(shape) > 1:
        fits = f"{shape} (channels first), {last} (channels last) or ({math.prod(shape)},)"
    raise DLTuneError(
        f"the Keras model's input is declared as keras.Input(shape={shown}), but the data's "
        f"examples have shape {shape}; declare keras.Input(shape={fits})"
    )


def arranged_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """One example's shape as the model takes it under `layout`."""
    if layout == "channels_last":
        return (*shape[1:], shape[0])
    if layout == "no_channel_axis":
        return tuple(shape[1:])
    if layout == "flat":
        return (math.prod(shape),)
    return tuple(shape)


def output_layer(model: Any) -> Any | None:
    """The layer that gives a Sequential or functional model's output (inside a nested model),
    or None where the model's structure does not say (a subclassed model)."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs or len(outputs) != 1 or not model.layers:
        return None
    last = model.layers[-1]  # layers run in order: the last gives a single output
    nested = output_layer(last) if is_keras_model(last) else None
    return nested if nested is not None else last


def single_output(model: Any) -> bool:
    """Whether a model gives one output per example (Keras's binary idiom, Dense(1)): a
    KerasNetwork by what it read, a Keras model by its declared output (False where it declares
    none: a subclassed model not yet wrapped)."""
    if isinstance(model, KerasNetwork):
        return model.outputs in ("one_sigmoid", "one_logit")
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return False
    return bool(outputs) and len(outputs) == 1 and tuple(outputs[0].shape)[1:] == (1,)


def output_activation(layer: Any) -> str | None:
    """'softmax' or 'sigmoid' where `layer` ends in one, else None (its outputs are logits)."""
    keras = keras_module()
    if layer is None or keras is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return name if name in ("softmax", "sigmoid") else None


def _short_error(exc: BaseException) -> str:
    """Keras's error as one line: its messages start "Exception encountered when calling
    X.call()." and say why on a later line (in bold)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        where = lines[0].removeprefix("Exception encountered when calling").strip(" .")
        return f"{where}: {lines[1]}"
    return lines[0] if lines else type(exc).__name__


# ---- the module -------------------------------------------------------------------------


class KerasNetwork(nn.Module):
    """A Keras 3 model (torch backend) as dltune's trainers take a module: examples in the
    data's shape (n, *input_shape) in, logits (n, n_outputs) out (see the module's notes)."""

    keras_model: Any

    def __init__(self, model: Any, input_shape: tuple[int, ...], n_outputs: int) -> None:
        super().__init__()
        self.__dict__["keras_model"] = model  # not a submodule: its tensors are registered below
        self.input_shape = tuple(input_shape)
        self.layout = input_layout(model, self.input_shape)
        self._build(model)
        self.trainable_count = len(model.trainable_variables)
        for i, variable in enumerate(model.trainable_variables):
            self.register_parameter(f"trainable_{i}", variable.value)  # the same Parameter
        for i, variable in enumerate(model.non_trainable_variables):
            self.register_buffer(f"non_trainable_{i}", variable.value.detach())  # shared memory
        self.non_trainable_count = len(model.non_trainable_variables)
        self.outputs = "logits"
        if n_outputs > 1:  # classification: probabilities become logits
            self.outputs = self._read_outputs(model, n_outputs)

    @property
    def described(self) -> str:
        """The user's model, as a note names it (not this wrapper)."""
        return f"Keras {type(self.keras_model).__name__}"

    def _build(self, model: Any) -> None:
        """Create the variables of a model that has none yet (subclassed, or a Sequential
        without Input): Sequential by its input shape, others by a call on zeros."""
        shape = arranged_shape(self.input_shape, self.layout)
        keras = imported_keras()
        if isinstance(model, keras.Sequential) and not model.built:
            model.build((None, *shape))
        if not model.built or not model.variables:
            with torch.no_grad():
                model(torch.zeros(PROBE_ROWS, *shape), training=False)

    def _read_outputs(self, model: Any, n_outputs: int) -> str:
        """How forward makes the model's outputs logits: 'logits' (as they are), 'softmax' or
        'sigmoid' (probabilities: their log, their log-odds); with two classes and a single
        output, 'one_sigmoid' or 'one_logit' (the second class's probability or logit)."""
        layer = output_layer(model)
        read = output_activation(layer)
        out = self._probe()
        if n_outputs == 2 and out is not None and tuple(out.shape) == (PROBE_ROWS, 1):
            # where the structure does not say, a probability is what lies in (0, 1)
            unsaid = layer is None and bool(((out > 0) & (out < 1)).all())
            return "one_sigmoid" if read == "sigmoid" or unsaid else "one_logit"
        if read is not None:
            return read
        # the structure does not say (a subclassed model; keras.ops.softmax after the last
        # layer): probabilities where its outputs are, on the probe batch
        if out is None or tuple(out.shape) != (PROBE_ROWS, n_outputs):
            return "logits"
        sums = out.sum(dim=1)
        softmax = bool((out >= 0).all()) and bool(torch.allclose(sums, torch.ones_like(sums)))
        return "softmax" if softmax else "logits"

    def _probe(self) -> torch.Tensor | None:
        """The model's outputs on a probe batch in evaluation mode; None where its forward
        fails (check_output's probe reports that) or gives no tensor."""
        probe = torch.randn(
            PROBE_ROWS, *self.input_shape, generator=torch.Generator().manual_seed(0)
        )
        try:
            with torch.no_grad():
                out = self._call(probe, training=False)
        except Exception:
            return None
        return out if isinstance(out, torch.Tensor) else None

    # ---- the forward ----

    def tensors(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(trainable, non-trainable) as this module holds them now (functional_call may have
        swapped them)."""
        trainable = [getattr(self, f"trainable_{i}") for i in range(self.trainable_count)]
        state = [getattr(self, f"non_trainable_{i}") for i in range(self.non_trainable_count)]
        return trainable, state

    def arrange(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "channels_last":
            return x.movedim(1, -1)
        if self.layout == "no_channel_axis":
            return x.squeeze(1)
        if self.layout == "flat":
            return x.flatten(1)
        return x

    def _call(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        keras = imported_keras()
        trainable, state = self.tensors()
        try:
            with keras.device(str(x.device)):  # the tensors Keras makes, on the input's device
                out, updated = self.keras_model.stateless_call(
                    trainable, state, self.arrange(x), training=training
                )
        except Exception as exc:  # Keras's multi-line message, as one line that says why
            raise RuntimeError(f"Keras model: {_short_error(exc)}") from exc
        if training:
            with torch.no_grad():
                for buffer, value in zip(state, updated, strict=True):
                    if value is not buffer:
                        buffer.copy_(value.detach())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._call(x, training=self.training)
        if self.outputs == "softmax":
            return torch.log(out.clamp(EPSILON, 1.0))
        if self.outputs in ("sigmoid", "one_sigmoid"):
            p = out.clamp(EPSILON, 1.0 - EPSILON)
            out = torch.log(p) - torch.log1p(-p)
        if self.outputs in ("one_sigmoid", "one_logit"):  # the first class's logit is 0
            return torch.cat([torch.zeros_like(out), out], dim=1)
        return out

    # ---- Keras again ----

    def to_keras(self) -> Any:
        """The Keras model, its variables set to this module's tensors (moving the module to
        another device replaces its buffers, not Keras's variables)."""
        trainable, state = self.tensors()
        variables = [
            *self.keras_model.trainable_variables,
            *self.keras_model.non_trainable_variables,
        ]
        with torch.no_grad():
            for variable, tensor in zip(variables, [*trainable, *state], strict=True):
                variable.assign(tensor.detach().to(variable.value.device))
        return self.keras_model

    def describe(self) -> list[str]:
        """What dltune does to the model's inputs and outputs, as notes say it."""
        said = []
        how = {
            "channels_last": "channels last",
            "no_channel_axis": "without their channel axis",
            "flat": "flat",
        }
        if self.layout in how:
            shape = arranged_shape(self.input_shape, self.layout)
            said.append(f"the examples {self.input_shape} reach it {how[self.layout]}, as {shape}")
        if self.outputs in ("softmax", "sigmoid"):
            said.append(
                f"its outputs are {self.outputs} probabilities, so dltune trains on their "
                f"{'log' if self.outputs == 'softmax' else 'log-odds'} as logits (clipped at "
                f"{EPSILON:g}, as Keras's cross-entropy clips them)"
            )
        if self.outputs in ("one_sigmoid", "one_logit"):
            what = "the probability" if self.outputs == "one_sigmoid" else "the logit"
            said.append(
                f"its single output is {what} of the second class, so dltune trains on the two "
                "classes' logits (0, its log-odds): their cross-entropy is binary cross-entropy"
            )
        return said

    def extra_repr(self) -> str:
        # no layer names: a second build in one process numbers them differently
        model = self.keras_model
        layers = ", ".join(type(layer).__name__ for layer in getattr(model, "layers", []))
        return (
            f"keras {type(model).__name__}({layers}), inputs {self.layout}, outputs {self.outputs}"
        )
