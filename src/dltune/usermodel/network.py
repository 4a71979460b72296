"""A user's build(hp) as a trainer's NetworkFactory, and the checks that make a bad build one
failed trial with a clear message instead of a traceback deep in training.

`UserNetworks(build, input_shape)` builds ``build(HyperParameters.from_values(config.model))``
with the initial weights drawn from the trial's seed (torch's global generator, forked, seeded,
and restored after: the same seed gives the same weights on any device, in any process), wrapped
in :class:`ShapedInput` so that the module receives examples in the data's own shape
(n, *input_shape) while the trainers hold flat rows (n, n_features). A Keras 3 model (torch
backend) is put behind keras_model.KerasNetwork first: channels last where the model says so,
probabilities made logits, its variables this module's parameters and buffers.

Python's and NumPy's global generators are seeded for the build as well (and restored after):
Keras draws its initializers' seeds from Python's `random` when a layer is made.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..errors import DLTuneError
from .hp import HyperParameters
from .keras_model import KerasBackendError, KerasNetwork, check_backend, is_keras_model, on_cpu

PROBE_ROWS = 2  # a probe batch of two examples: one would hide a batch axis that got lost


class BuildError(DLTuneError):
    """build(hp) raised, returned no Module, or gave outputs of the wrong shape.

    `kind` says which ("raised: ValueError", "returned: int", "shape"), so that a study can tell
    trials failing the same way from trials failing differently.
    """

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.template, self.kind))


class ShapedInput(nn.Module):
    """The user's module behind a reshape: flat rows (n, F) in, (n, *shape) to the module."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_shape = tuple(input_shape)

    @property
    def described(self) -> str:
        """The user's model, as a note names it (not this wrapper)."""
        return getattr(self.model, "described", type(self.model).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (n, F) -> (n, *shape); unflatten keeps the batch symbolic (ONNX takes any batch)
        return self.model(x.unflatten(1, self.input_shape))


def shown(values: Mapping[str, Any]) -> str:
    """Hyperparameter values as a message shows them: filters=32, pool=True."""
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "no hyperparameters"


def call_build(build: Callable[..., Any], hp: HyperParameters) -> nn.Module:
    """build(hp), checked: a BuildError (naming the values asked so far) when it raises or
    returns something other than a torch Module."""
    from .hp import HyperParameterError

    try:
        module = build(hp)
    except HyperParameterError:
        raise  # a mistake in the build's hp calls: its own message says what to fix
    except (Exception, SystemExit) as exc:  # sys.exit() in a build fails its trial, not dltune
        raise BuildError(
            f"build(hp) raised {type(exc).__name__}: {exc} (with {shown(hp.values)})",
            kind=f"raised: {type(exc).__name__}",
        ) from exc
    check_backend(module)  # a Keras model of another backend: what to do, not a failed trial
    if not isinstance(module, nn.Module):
        raise BuildError(
            f"build(hp) returned {type(module).__name__} {_short(module)} (with "
            f"{shown(hp.values)}); it must return a torch.nn.Module",
            kind=f"returned: {type(module).__name__}",
        )
    return module


def check_output(
    module: nn.Module, values: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int
) -> None:
    """Run a probe batch (zeros, eval mode, no gradients) through `module`, which takes
    (n, *input_shape): a BuildError unless it gives (n, n_outputs)."""
    probe = torch.zeros(PROBE_ROWS, *input_shape)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    expected = (PROBE_ROWS, n_outputs)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(probe.to(device))
    except (Exception, SystemExit) as exc:
        raise BuildError(
            f"the module build(hp) returned (with {shown(values)}) fails on a batch of shape "
            f"{tuple(probe.shape)}, the data's examples {tuple(input_shape)}: "
            f"{type(exc).__name__}: {exc}",
            kind=f"forward raised: {type(exc).__name__}",
        ) from exc
    finally:
        module.train(was_training)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if got != expected:
        received = f"shape {got}" if got is not None else f"a {type(out).__name__}"
        raise BuildError(
            f"the module build(hp) returned (with {shown(values)}) maps a batch of shape "
            f"{tuple(probe.shape)} to {received}; expected shape {expected}: (batch, "
            f"{n_outputs} output{'s' if n_outputs != 1 else ''}, one per class for "
            "classification, one for regression)",
            kind="shape",
        )


@contextmanager
def _python_generators(seed: int) -> Iterator[None]:
    """Python's and NumPy's global generators seeded, and restored after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def seeded_build(
    build: Callable[..., Any],
    hp: HyperParameters,
    seed: int,
    input_shape: tuple[int, ...] | None = None,
    n_outputs: int = 1,
) -> nn.Module:
    """build(hp) with torch's, Python's and NumPy's global generators seeded (and restored
    after), on the CPU. Given `input_shape`, a Keras model comes back as a KerasNetwork that
    takes examples of that shape and gives `n_outputs` logits."""
    with torch.random.fork_rng(devices=[]), _python_generators(seed), on_cpu():
        torch.manual_seed(seed)
        module = call_build(build, hp)
        if input_shape is None or not is_keras_model(module):
            return module
        try:
            return KerasNetwork(module, input_shape, n_outputs)
        except KerasBackendError:
            raise
        except (Exception, SystemExit) as exc:
            raise BuildError(
                f"the Keras model build(hp) returned (with {shown(hp.values)}) cannot take the "
                f"data's examples of shape {tuple(input_shape)}: {exc}",
                kind=f"keras: {type(exc).__name__}",
            ) from exc


class UserNetworks:
    """A NetworkFactory (dltune.nets) for a user's build(hp)."""

    def __init__(self, build: Callable[..., Any], input_shape: tuple[int, ...]) -> None:
        self.build = build
        self.input_shape = tuple(input_shape)

    def __call__(
        self, config: Config, n_outputs: int, *, seed: int, device: torch.device | str
    ) -> nn.Module:
        hp = HyperParameters.from_values(config.model)
        module = seeded_build(self.build, hp, seed, self.input_shape, n_outputs)
        check_output(module, hp.values, self.input_shape, n_outputs)
        return ShapedInput(module, self.input_shape).to(device)

    @property
    def n_features(self) -> int:
        return math.prod(self.input_shape)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
