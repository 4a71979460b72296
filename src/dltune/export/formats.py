"""Exports of a model folder to other runtimes: ONNX, TorchScript, Keras 3.

The Keras export of dltune's dense networks rebuilds them from Keras layers; a model of a user's
own Keras build(hp) is saved as itself, inside the same preprocessing (keras_native.py).

Each export takes raw features and gives what `predict_proba` gives (probabilities per class) or,
for regression, the value in the target's units: the standardization is inside the exported
model. A model trained on a table through the encoder (text one-hot, missing cells imputed) is
exported from the encoded features on: the encoder is not in the graph; `model.features(table)`
gives the rows it takes (their names: `model.feature_names`).

Each is checked before it takes its name: written under a temporary name beside the output,
loaded back in its own runtime and run on rows drawn around the training statistics, its
outputs must agree with the torch model's to float32 tolerance; only then is it renamed into
place (dltune.atomic). An export that fails its check leaves no file, and an older one as it was.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..errors import ModelError, param
from .loaded import TunedModel

FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "keras": "model.keras"}
EXTRAS = {
    "onnx": ("onnx", ["onnx", "onnxscript", "onnxruntime"]),
    "keras": ("keras", ["keras"]),
}
CHECK_ROWS = 64
RTOL, ATOL = 1e-4, 1e-5  # float32 arithmetic in another order: a few ulps, relative to the scale


@dataclass(frozen=True)
class Exported:
    format: str
    path: Path
    max_difference: float  # largest |export - torch| over the check rows
    rows: int


def require(fmt: str) -> None:
    """Fail with the extra to install when a format's packages are missing."""
    if fmt not in EXTRAS:
        return
    extra, modules = EXTRAS[fmt]
    import importlib

    if fmt == "keras":  # Keras 3 picks its backend at import: torch, which dltune has
        os.environ.setdefault("KERAS_BACKEND", "torch")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ModelError(
                f"{param('fmt', shown=fmt)} needs the package {module!r}, which is not "
                f"installed; install the extra: pip install 'dltune[{extra}]'"
            ) from None


def check_rows(model: TunedModel, rows: int = CHECK_ROWS) -> np.ndarray:
    """Raw feature rows spread like the training data (float32, seeded)."""
    prep = model.preprocessing
    z = np.random.default_rng(0).normal(size=(rows, prep.n_features)).astype(np.float32)
    return (z * prep.x_std + prep.x_mean).astype(np.float32)


def reference(model: TunedModel, x: np.ndarray) -> np.ndarray:
    """What every export must reproduce from feature rows `x` (as `model.features` gives
    them): probabilities (N, K), or values (N, 1)."""
    predictions, probabilities = model.head(model.outputs(model.scaled(x)))
    if probabilities is None:
        return predictions.reshape(-1, 1)
    return probabilities


def export(model: TunedModel, fmt: str, output: str | Path) -> Exported:
    """Write `model` as `fmt` to `output` and check it against the torch model. The export is
    written and checked under a temporary name beside `output`, which it replaces only once
    the check has passed (dltune.atomic): an export that fails, or a crash, leaves no file and
    leaves a previous `output` as it was."""
    from ..atomic import write_file

    writers: dict[str, Callable[[TunedModel, Path], Callable[[np.ndarray], np.ndarray]]] = {
        "onnx": _onnx,
        "torchscript": _torchscript,
        "keras": _keras,
    }
    if fmt not in writers:
        raise ModelError(f"{param('fmt', fmt)} is not known; choose from {', '.join(writers)}")
    require(fmt)
    path = Path(output)
    _check_output(path, fmt)
    checked: list[tuple[float, int]] = []

    def write_and_check(temp: Path) -> None:
        checked.append(_check(model, fmt, path, writers[fmt](model, temp)))

    write_file(path, write_and_check)
    difference, rows = checked[0]
    return Exported(fmt, path, difference, rows)


def _check_output(path: Path, fmt: str) -> None:
    """Refuse an `output` that cannot be written: a folder, one whose folder does not exist,
    a Keras file not named .keras."""
    if path.is_dir():
        raise ModelError(f"{param('output', str(path))} is a folder; name the file to write")
    if not path.parent.is_dir():
        raise ModelError(
            f"{param('output', str(path))}: the folder {str(path.parent)!r} does not exist; "
            "create it first"
        )
    if fmt == "keras" and path.suffix != ".keras":
        raise ModelError(f"{param('output', str(path))}: a Keras 3 file must end in .keras")


def _check(
    model: TunedModel, fmt: str, path: Path, run: Callable[[np.ndarray], np.ndarray]
) -> tuple[float, int]:
    """(largest difference, rows) of an export's outputs against the torch model's on the
    check rows; a ModelError when they differ beyond float32 tolerance (nothing is written)."""
    x = check_rows(model)
    expected = reference(model, x)
    got = np.asarray(run(x), dtype=np.float32).reshape(expected.shape)
    scale = max(1.0, float(np.abs(expected).max()))
    difference = float(np.abs(got - expected).max())
    if not np.allclose(got, expected, rtol=RTOL, atol=ATOL * scale):
        raise ModelError(
            f"{path}: not written: the {fmt} export differs from the torch model by up to "
            f"{difference:.3g} on {len(x)} check rows (tolerance {ATOL * scale:.3g}); please "
            "report this"
        )
    return difference, len(x)


def _onnx(model: TunedModel, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime
    import torch

    module = model.module
    example = torch.as_tensor(check_rows(model, 2))
    output = "prediction" if model.task == "regression" else "probabilities"
    onnx_log = logging.getLogger("torch.onnx")  # it logs optional packages it did not find
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # torch.export-based exporter (torch >= 2.5); the batch dimension is dynamic.
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=["features"],
                output_names=[output],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,  # one self-contained file
                dynamo=True,
                verbose=False,
            )
    finally:
        onnx_log.setLevel(level)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"features": x})[0]


def _torchscript(model: TunedModel, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    module = model.module
    example = torch.as_tensor(check_rows(model, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is in maintenance; it still runs in C++
        traced = torch.jit.trace(module, example)
        traced.save(str(path))
        # Loading a TorchScript file runs its code: done here only for the file just written.
        loaded = torch.jit.load(str(path))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.as_tensor(x)).numpy()

    return run


# Keras activations for dltune's names; leaky_relu is a layer (torch's slope 0.01, not 0.2).
_KERAS_ACTIVATIONS = {
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "elu": "elu",
    "selu": "selu",
    "gelu": "gelu",
    "softplus": "softplus",
    "swish": "silu",
    "linear": "linear",
}


def _keras(model: TunedModel, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    os.environ.setdefault("KERAS_BACKEND", "torch")  # only if keras is not imported yet
    import keras

    from .keras_native import keras_networks, save_native

    prep = model.preprocessing
    users = keras_networks(model)
    if users is not None:  # the user's own Keras models, inside a functional model
        loaded = save_native(keras, model, users, str(path))
        return lambda x: np.asarray(keras.ops.convert_to_numpy(loaded(x, training=False)))
    if model.is_ensemble:
        network = _keras_ensemble(keras, model)
    else:
        head, weights = _keras_member(keras, model.network, model.config, prep.task, prep.loss)
        layers: list[keras.layers.Layer] = [
            keras.Input(shape=(prep.n_features,), name="features"),
            keras.layers.Normalization(mean=prep.x_mean, variance=np.square(prep.x_std)),
            *head,
        ]
        if prep.task == "regression":
            layers.append(keras.layers.Rescaling(prep.target_std or 1.0, prep.target_mean or 0.0))
        network = keras.Sequential(layers, name="dltune")
        for layer, values in weights:
            layer.set_weights(values)
    network.save(str(path))  # `path`: a temporary name ending in .keras (export)
    loaded = keras.saving.load_model(str(path))  # safe_mode: no code from the file runs

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(keras.ops.convert_to_numpy(loaded(x, training=False)))

    return run


def _keras_member(
    keras: Any, network: Any, config: Config, task: str, loss: str, name: str = "outputs"
) -> tuple[list[Any], list[tuple[Any, list[np.ndarray]]]]:
    """One dense network as Keras layers from standardized features on: (the layers, ending in
    its probabilities (as `loss` reads its outputs) or its standardized value; each Dense layer
    with the values to set once the model is built)."""
    from ..nets import DenseNet

    if not isinstance(network, DenseNet):
        raise ModelError(
            f"the Keras export covers the dense network only; this model is "
            f"{type(network).__name__} ({config.short()}). Export it with "
            f"{param('fmt', shown='onnx')} or {param('fmt', shown='torchscript')}."
        )
    activation = config.activation
    layers: list[Any] = []
    weights: list[tuple[Any, list[np.ndarray]]] = []
    linears = network.linears()
    for linear in linears[:-1]:
        w, b = _numpy(linear)
        if activation == "leaky_relu":
            dense = keras.layers.Dense(w.shape[0])
            layers += [dense, keras.layers.LeakyReLU(negative_slope=0.01)]
        else:
            dense = keras.layers.Dense(w.shape[0], activation=_KERAS_ACTIVATIONS[activation])
            layers.append(dense)
        weights.append((dense, [w.T, b]))
    w, b = _numpy(linears[-1])
    out = keras.layers.Dense(w.shape[0], name=name)
    layers.append(out)
    if task == "regression":
        weights.append((out, [w.T, b]))
    elif loss == "binary_crossentropy":
        # sigmoid(o) / sum sigmoid(o) = softmax(log sigmoid(o)) = softmax(-softplus(-o)), in
        # built-in layers only (a Lambda would need unsafe loading): the Dense layer gives -o.
        weights.append((out, [-w.T, -b]))
        layers += [
            keras.layers.Activation("softplus"),
            keras.layers.Rescaling(-1.0),
            keras.layers.Softmax(),
        ]
    else:
        weights.append((out, [w.T, b]))
        layers.append(keras.layers.Softmax())
    return layers, weights


def _keras_ensemble(keras: Any, model: TunedModel) -> Any:
    """An ensemble as one functional Keras model: every member's layers on the standardized
    features, each scaled by its weight, added (built-in layers only: Dense, Softmax,
    Rescaling, Add): probabilities (the mixture itself) or values in the target's units."""
    from .ensemble_net import EnsembleNetwork

    prep = model.preprocessing
    if not isinstance(model.network, EnsembleNetwork):  # pragma: no cover - is_ensemble says so
        raise ModelError("this ensemble has no EnsembleNetwork; please report this")
    inputs = keras.Input(shape=(prep.n_features,), name="features")
    scaled = keras.layers.Normalization(mean=prep.x_mean, variance=np.square(prep.x_std))(inputs)
    branches, weights = [], []
    pairs = zip(model.members, model.network.members, strict=True)
    for i, (member, network) in enumerate(pairs):
        config = member.config
        layers, values = _keras_member(
            keras, network, config, prep.task, config.loss, f"outputs_{i}"
        )
        h = scaled
        for layer in layers:
            h = layer(h)
        branches.append(keras.layers.Rescaling(member.weight, name=f"weight_{i}")(h))
        weights += values
    total = keras.layers.Add(name="average")(branches) if len(branches) > 1 else branches[0]
    if prep.task == "regression":
        total = keras.layers.Rescaling(prep.target_std or 1.0, prep.target_mean or 0.0)(total)
    network = keras.Model(inputs, total, name="dltune_ensemble")
    for layer, value in weights:
        layer.set_weights(value)
    return network


def _numpy(linear: object) -> tuple[np.ndarray, np.ndarray]:
    w = linear.weight.detach().cpu().numpy()  # type: ignore[attr-defined]
    b = linear.bias.detach().cpu().numpy()  # type: ignore[attr-defined]
    return w, b
