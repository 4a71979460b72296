"""The names dltune understands, in Keras's vocabulary, resolved in one place.

The space parser validates against these tables and the model, loss and optimizer factories look
names up here, so that a name accepted in a space file is always one the engines can build.
"""

from __future__ import annotations

from dataclasses import dataclass

# The convolutional blocks before the Dense layers (signals and images; see dltune.nets): in a
# trial without blocks (conv_layers 0) only conv_layers is set.
CONVOLUTIONAL: tuple[str, ...] = (
    "conv_layers",
    "filters",
    "kernel_size",
    "pool",
    "batch_norm",
    "global_pool",
)

# The hyperparameters people guess at, in the order they think of them (weight decay is a
# ninth knob a space may tune; "epochs" is each trial's best epoch, or a sweep's epochs).
HYPERPARAMETERS: tuple[str, ...] = (
    "layers",
    "units",
    "dropout",
    "activation",
    "loss",
    "optimizer",
    "learning_rate",
    "weight_decay",
    "batch_size",
    *CONVOLUTIONAL,
    "epochs",
)

# The hyperparameters whose values are names, not numbers.
CATEGORICAL: tuple[str, ...] = ("activation", "loss", "optimizer")
# The ones that are true or false.
BOOLEAN: tuple[str, ...] = ("batch_norm", "global_pool")
# The numeric ones whose values span orders of magnitude: shown (and binned) on a log axis.
LOG_SCALE: tuple[str, ...] = ("units", "filters", "learning_rate", "batch_size", "epochs")

# The trial states (storage.records.trial_state) whose curve is a result: the trial ran its
# course (complete), was stopped by the scheduler (pruned) or diverged.
FINISHED_STATES: tuple[str, ...] = ("complete", "pruned", "diverged")

ACTIVATIONS: tuple[str, ...] = (
    "relu",
    "sigmoid",
    "tanh",
    "elu",
    "selu",
    "gelu",
    "leaky_relu",
    "softplus",
    "swish",
    "linear",
)

ACTIVATION_ALIASES: dict[str, str] = {
    "none": "linear",
    "identity": "linear",
    "silu": "swish",
    "leakyrelu": "leaky_relu",
}


@dataclass(frozen=True)
class LossInfo:
    name: str
    tasks: tuple[str, ...]  # the tasks the loss applies to: "classification", "regression"
    description: str


LOSSES: dict[str, LossInfo] = {
    info.name: info
    for info in (
        LossInfo(
            "categorical_crossentropy",
            ("classification",),
            "softmax outputs, cross-entropy against the class",
        ),
        LossInfo(
            "binary_crossentropy",
            ("classification",),
            "one sigmoid output per class, cross-entropy against one-hot targets",
        ),
        LossInfo(
            "mean_squared_error",
            ("classification", "regression"),
            "squared error (softmax probabilities against one-hot targets in classification)",
        ),
        LossInfo(
            "mean_absolute_error",
            ("classification", "regression"),
            "absolute error (softmax probabilities against one-hot targets in classification)",
        ),
        LossInfo(
            "huber",
            ("classification", "regression"),
            "squared error near zero, absolute error beyond 1 (Keras's Huber, delta 1)",
        ),
    )
}

LOSS_ALIASES: dict[str, str] = {
    "crossentropy": "categorical_crossentropy",
    "cross_entropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "categorical_crossentropy",
    "cce": "categorical_crossentropy",
    "bce": "binary_crossentropy",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "huber_loss": "huber",
}

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")

OPTIMIZER_ALIASES: dict[str, str] = {}

TASKS: tuple[str, ...] = ("classification", "regression")

# metric name -> (task, direction); the default metric of a task comes first.
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("classification", "maximize"),
    "rmse": ("regression", "minimize"),
    "mae": ("regression", "minimize"),
}

DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}

# What a network costs to deploy, known before it trains (dltune.nets.footprint): the
# objectives a space's `objectives` key may name beside the metric, all to minimize.
COSTS: dict[str, str] = {
    "parameters": "parameters of the network",
    "flops": "floating-point operations of one prediction",
    "latency": "median milliseconds of one prediction on a batch of 1",
    "latency_256": "median milliseconds of one prediction on a batch of 256",
}

# train-best: the rows the best configuration is trained on again (the first is the default).
RETRAIN_ON: tuple[str, ...] = ("train+val", "train")
# dltune export: the formats a model folder is written as.
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript", "keras")


def canonical(kind: str, name: str) -> str | None:
    """The canonical spelling of `name` for `kind` ('activation', 'loss', 'optimizer'), or None."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    table: tuple[str, ...] | dict[str, LossInfo]
    aliases: dict[str, str]
    if kind == "activation":
        table, aliases = ACTIVATIONS, ACTIVATION_ALIASES
    elif kind == "loss":
        table, aliases = LOSSES, LOSS_ALIASES
    elif kind == "optimizer":
        table, aliases = OPTIMIZERS, OPTIMIZER_ALIASES
    else:
        raise ValueError(f"unknown vocabulary kind {kind!r}")
    key = aliases.get(key, key)
    return key if key in table else None


def loss_applies(loss: str, task: str) -> bool:
    return task in LOSSES[loss].tasks
