"""The search space: parse it, validate it, and sample it through Optuna.
Imports nothing of dltune but errors, vocabulary and config; no torch.

A space is a YAML file in Keras's vocabulary, or the same structure as Python keywords or a dict::

    SearchSpace.from_file("space.yaml")
    SearchSpace(activation=["relu", "tanh"], lr={"low": 1e-3, "high": 0.1, "log": True})

Every key is optional; a missing key takes its default:

==============  ===================================  ============================================
key             default                              rule
==============  ===================================  ============================================
name            the file's stem                      text; "default" built in, "space" for a dict
metric          null (the task's default)            one of accuracy, rmse, mae
objectives      null (the metric alone)              a list: the metric and costs to minimize
                                                     (parameters, flops, latency, latency_256),
                                                     e.g. [accuracy, parameters]
layers          {low: 0, high: 3}                    whole numbers in [0, 32]; 0: no hidden
                                                     layer, the linear model (logistic, softmax
                                                     or linear regression; after convolutions,
                                                     the blocks straight to the output layer)
units           {low: 16, high: 1024, log: true}     whole numbers in [1, 65536]; may be per layer
dropout         {low: 0.0, high: 0.5}                numbers in [0, 1)
activation      [relu, sigmoid, tanh, elu]           names in vocabulary.ACTIVATIONS
loss            [categorical_crossentropy,           names in vocabulary.LOSSES
                mean_squared_error]
optimizer       [sgd, adam, rmsprop, adagrad]        names in vocabulary.OPTIMIZERS
learning_rate   {low: 0.0001, high: 1.0, log: true}  numbers > 0 (alias: lr, not both)
weight_decay    0.0                                  numbers >= 0
batch_size      [16, 32, 64, 128, 256]               whole numbers >= 1
epochs          27                                   one whole number >= 1: the maximum
patience        null (no early stopping)             null or one whole number >= 1
min_epochs      1                                    a number in (0, epochs]; under 1, a whole
                                                     fraction (0.25): successive halving's
                                                     lowest rung, in epochs
reduction       3                                    a whole number in [2, 100]: the top
                                                     1/reduction go on at each rung
==============  ===================================  ============================================

Each hyperparameter (layers .. batch_size) takes one of these forms:

- a scalar, ``0.2``: fixed, never sampled (:class:`Fixed`);
- a list, ``[relu, tanh]``, or the mapping ``{choices: [relu, tanh]}``: one of them
  (:class:`Choice`);
- a mapping ``{low, high, log?, step?}``: a range (:class:`IntRange` for layers, units and
  batch_size; :class:`FloatRange` for the others). ``log`` needs ``low > 0`` and excludes ``step``;
- for ``units`` (and the convolutional ``filters`` and ``kernel_size``) only, one value per
  hidden layer (per block) (:class:`PerLayer`): ``{per_layer: true, low: 16, high: 512}`` (or
  ``choices``) draws each layer's width from one distribution, and ``{per_layer: [spec1, spec2,
  ...]}`` gives one spec (any form above) per layer, at least as many as the most layers the
  space allows.

Data with a shape add the convolutional keys (conv_layers, filters, kernel_size, pool,
batch_norm, global_pool; see :meth:`SearchSpace.for_input`), each from its default unless the
space gives it. Images (C, H, W) default to conv_layers 0..3, filters 8..64 (log) shared by the
blocks, kernel_size [3, 5], pool 2, batch_norm and global_pool either way. Signals (C, L) default
to a space around the fully convolutional network of Wang et al. (2017): conv_layers 0..3,
filters per block 16..256 (log), kernel_size per block [3, 5, 8], pool [0, 2], batch_norm and
global_pool either way (space/rules.py ``_SIGNAL_CONV_DEFAULTS``).

Numbers may be written as strings (PyYAML reads ``1e-3``, without a dot, as the string "1e-3");
booleans are never numbers. Names are canonicalised (``mse`` -> ``mean_squared_error``,
``none`` -> ``linear``). Every mistake raises :class:`~dltune.errors.SpaceError` naming the file,
the key (with a path such as ``units.per_layer[2].low``, lists counted from 0), the value, the rule
and the fix.

Optuna parameter names: ``layers``, ``units`` (one width for every layer, suggested even where
``layers`` is 0) or ``units_1`` .. ``units_N`` (per layer; only the first ``layers`` are
suggested, define-by-run), ``dropout``, ``activation``, ``loss``, ``optimizer``,
``learning_rate``, ``weight_decay``, ``batch_size``; and for data with a shape ``conv_layers``,
then (in trials with blocks) ``filters`` or ``filters_1`` .. ``filters_N``, ``kernel_size`` or
``kernel_size_1`` .. ``kernel_size_N``, ``pool``, ``batch_norm``, ``global_pool``.
Fixed values are not suggested, so they do not appear in a trial's params.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from dltune import vocabulary
from dltune.config import Config
from dltune.errors import SpaceError

from .params import Choice, Fixed, FloatRange, IntRange, Param, PerLayer, Scalar, _grid_error
from .parse import (
    _EPOCHS_WHY,
    _PATIENCE_WHY,
    _max_of,
    _parse_conv,
    _parse_params,
    _Parser,
    _plain,
    _top_keys,
)
from .rules import _DEFAULTS, CONV_PARAM_KEYS, KEYS, PARAM_KEYS, _show
from .shapes import check_fits, flat_plain, shaped_plain
from .yamlfile import _read_yaml

# The fewest examples one epoch of the schedule covers (for_examples): on smaller data a rung
# counts several passes. 512 and 256 measured on GunPoint, ItalyPowerDemand and Tecator at
# 30 s (benchmarks/RESULTS.md, issue 27): 256 as good on the signals, better on Tecator.
EPOCH_EXAMPLES = 256
# The source of the built-in space (SearchSpace.default), which a short budget may narrow
# (study/budget.py): a space the user gives never is.
DEFAULT_SOURCE = "<default>"

if TYPE_CHECKING:  # optuna is only needed for types here; importing it costs ~0.5 s at start-up
    import optuna

__all__ = [
    "CONV_PARAM_KEYS",
    "KEYS",
    "PARAM_KEYS",
    "Choice",
    "Fixed",
    "FloatRange",
    "IntRange",
    "Param",
    "PerLayer",
    "Scalar",
    "SearchSpace",
]

# --------------------------------------------------------------------------------------------
# The space.
# --------------------------------------------------------------------------------------------


class SearchSpace:
    """A validated search space. Build it from keywords, a dict, a YAML file, or the defaults."""

    KEYS: ClassVar[tuple[str, ...]] = KEYS
    PARAM_KEYS: ClassVar[tuple[str, ...]] = PARAM_KEYS
    CONV_PARAM_KEYS: ClassVar[tuple[str, ...]] = CONV_PARAM_KEYS

    name: str
    metric: str | None
    # The objectives beside the metric: costs known before training (vocabulary.COSTS), to
    # minimize; empty for a study of the metric alone.
    costs: tuple[str, ...]
    epochs: int
    patience: int | None
    min_epochs: float
    reduction: int
    source: str
    params: Mapping[str, Param | PerLayer]
    # The convolutional keys the space has: none for flat data (the dense network alone), all
    # of them once fitted to data with a shape (see for_input).
    conv: Mapping[str, Param | PerLayer]
    # The shape of one example once fitted to the data (for_input), else None: it decides the
    # first trial (baseline_params). Not part of to_dict: the stored space reads as before.
    input_shape: tuple[int, ...] | None

    def __init__(self, **keys: Any) -> None:
        self._load(keys, "<dict>", "space")

    def _load(self, data: Any, source: str, default_name: str) -> None:
        parser = _Parser(source)
        self.input_shape = None
        keys = _top_keys(parser, data)
        self.source = source
        self.name = parser.space_name(keys.get("name", default_name))
        self.metric, self.costs = parser.objectives(
            keys.get("objectives"), parser.metric(keys.get("metric"))
        )
        self.params = MappingProxyType(_parse_params(parser, keys))
        self.conv = MappingProxyType(_parse_conv(parser, keys, defaults=False))
        self.epochs = parser.fixed_count(
            keys.get("epochs", _DEFAULTS["epochs"]), "epochs", _EPOCHS_WHY
        )
        patience = keys.get("patience")
        self.patience = (
            None if patience is None else parser.fixed_count(patience, "patience", _PATIENCE_WHY)
        )
        self.min_epochs = parser.min_epochs(
            keys.get("min_epochs", _DEFAULTS["min_epochs"]), self.epochs
        )
        self.reduction = parser.reduction(keys.get("reduction", _DEFAULTS["reduction"]))
        # whether the space sets its own length (else for_examples may fit it to the data)
        self.epochs_given = "epochs" in keys or "min_epochs" in keys

    @classmethod
    def _build(cls, data: Any, source: str, default_name: str) -> SearchSpace:
        space = cls.__new__(cls)
        space._load(data, source, default_name)
        return space

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], source: str = "<dict>") -> SearchSpace:
        return cls._build(mapping, source, "space")

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Read a YAML space file; an empty file is the default space (named after the file)."""
        path = Path(path)
        data = _read_yaml(path, str(path))
        return cls._build({} if data is None else data, str(path), path.stem)

    @classmethod
    def default(cls) -> SearchSpace:
        return cls._build({}, DEFAULT_SOURCE, "default")

    # ---- reading it ----

    @property
    def max_layers(self) -> int:
        return _max_of(self.params["layers"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __reduce__(self) -> tuple[Any, ...]:
        # params is a read-only MappingProxyType, which pickle refuses: travel as plain data
        return (_rebuild, (self.to_dict(), self.source, self.input_shape))

    def __repr__(self) -> str:
        return f"SearchSpace(name={self.name!r}, source={self.source!r})"

    def to_dict(self) -> dict[str, Any]:
        """Every key with canonical names (learning_rate, not lr): YAML- and JSON-able."""
        plain: dict[str, Any] = {"name": self.name, "metric": self.metric}
        if self.costs:  # only then: a study of one objective keeps its stored form
            plain["objectives"] = [self.metric, *self.costs] if self.metric else list(self.costs)
        plain.update({key: self.params[key].to_plain() for key in PARAM_KEYS})
        plain.update({k: self.conv[k].to_plain() for k in CONV_PARAM_KEYS if k in self.conv})
        plain.update({"epochs": self.epochs, "patience": self.patience})
        plain.update({"min_epochs": self.min_epochs, "reduction": self.reduction})
        return plain

    def to_yaml(self) -> str:
        # flow style for leaves keeps `activation: [relu, tanh]` on one line, as people write it
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def describe(self) -> list[tuple[str, str]]:
        """(key, description) rows, for `dltune space --show`."""
        rows = [("name", self.name), ("metric", self.metric or "the task's default")]
        objectives = f"the metric, then {', '.join(self.costs)} (minimized)"
        rows.append(("objectives", objectives if self.costs else "the metric alone"))
        rows += [(key, self.params[key].describe()) for key in PARAM_KEYS]
        rows += [(key, self.conv[key].describe()) for key in CONV_PARAM_KEYS if key in self.conv]
        rows.append(("epochs", f"at most {self.epochs}; each trial records its best epoch"))
        patience = "off" if self.patience is None else f"{self.patience} epochs without improvement"
        rows.append(("patience", patience))
        rows.append(("min_epochs", f"{self.min_epochs:g} (successive halving's lowest rung)"))
        rows.append(("reduction", f"{self.reduction} (the top 1/{self.reduction} go on)"))
        return rows

    # ---- sampling ----

    def suggest(self, trial: optuna.trial.BaseTrial) -> Config:
        """Draw one configuration; define-by-run, so units_k exists only for k <= layers."""
        return self._config(self._values(lambda param, name: param.suggest(trial, name)))

    def baseline_params(
        self,
        input_shape: tuple[int, ...] | None = None,
        *,
        width: float = 1.0,
        dense: bool = False,
    ) -> dict[str, Any]:
        """A new study's first trial, projected into this space, as the Optuna params of a
        trial (fixed values left out: they are not sampled; see baseline.py).

        For signals (an example of shape (C, L): `input_shape`, or the shape this space was
        fitted to by for_input) in a space with convolutional blocks, the fully convolutional
        network of Wang et al. 2017, its filters scaled by `width` (0.25: a quarter of
        128/256/128, for a short budget); for anything else the textbook configuration (for
        images, Keras' MNIST convnet), which `width` does not change. `dense`: the textbook
        dense network, without blocks, whatever the data (a short budget's first trial:
        study/first_trial.py).
        """
        from .baseline import TEXTBOOK, TEXTBOOK_DENSE, nearest, signal_baseline, wanted
        from .narrowing import has_blocks

        shape = input_shape if input_shape is not None else self.input_shape
        signal = shape is not None and len(shape) == 2 and has_blocks(self)
        targets = signal_baseline(width) if signal else TEXTBOOK
        targets = TEXTBOOK_DENSE if dense else targets
        params: dict[str, Any] = {}

        def value(param: Param, name: str) -> Any:
            chosen = nearest(param, wanted(targets, name))
            if not isinstance(param, Fixed):
                params[name] = chosen
            return chosen

        self._values(value)
        return params

    def config_from_params(self, params: Mapping[str, Any]) -> Config:
        """The Config a trial with these Optuna params trained: the inverse of :meth:`suggest`."""

        def value(param: Param, name: str) -> Any:
            if isinstance(param, Fixed):
                return param.value
            if name not in params:
                raise SpaceError(
                    f"{self.source}: the trial's params lack {name!r}, which space {self.name!r} "
                    f"samples; was the study made with another space? Params: {_show(dict(params))}"
                )
            return params[name]

        return self._config(self._values(value))

    def _values(self, value_of: Callable[[Param, str], Any]) -> dict[str, Any]:
        """Each key's value, from value_of(param, Optuna name); per-layer units as a list with
        one value per layer (units_1 .. units_layers), after `layers` is known."""
        values: dict[str, Any] = {}
        for key in PARAM_KEYS:
            values[key] = _value(self.params[key], key, int(values.get("layers", 0)), value_of)
        if "conv_layers" in self.conv:
            conv_layers = int(value_of(_plain(self.conv["conv_layers"]), "conv_layers"))
            values["conv_layers"] = conv_layers
            # define-by-run: the blocks' keys exist only in trials that have blocks
            for key in CONV_PARAM_KEYS[1:] if conv_layers > 0 else ():
                values[key] = _value(self.conv[key], key, conv_layers, value_of)
        return values

    def _config(self, values: dict[str, Any]) -> Config:
        layers = int(values["layers"])
        widths = _per_layer(values["units"], layers)
        conv: dict[str, Any] = {}
        if values.get("conv_layers", 0) > 0:
            conv_layers = int(values["conv_layers"])
            conv = {
                "conv_layers": conv_layers,
                "filters": _per_layer(values["filters"], conv_layers),
                "kernel_size": _per_layer(values["kernel_size"], conv_layers),
                "pool": int(values["pool"]),
                "batch_norm": bool(values["batch_norm"]),
                "global_pool": bool(values["global_pool"]),
            }
        return Config(
            layers=layers,
            units=widths,
            dropout=float(values["dropout"]),
            activation=str(values["activation"]),
            loss=str(values["loss"]),
            optimizer=str(values["optimizer"]),
            learning_rate=float(values["learning_rate"]),
            weight_decay=float(values["weight_decay"]),
            batch_size=int(values["batch_size"]),
            epochs=self.epochs,
            **conv,
        )

    def _sampled(self) -> list[tuple[str, str, Param]]:
        """(Optuna name, key as written, param) for every param that is not fixed."""
        out: list[tuple[str, str, Param]] = []
        params = {**self.params, **self.conv}
        for key, param in params.items():
            if isinstance(param, PerLayer):
                count = params["layers" if key == "units" else "conv_layers"]
                ks = range(1, _max_of(_plain(count)) + 1)
                specs = [(param.name(k), param.label(k), param.for_layer(k)) for k in ks]
                out += [spec for spec in specs if not isinstance(spec[2], Fixed)]
            elif not isinstance(param, Fixed):
                out.append((key, key, param))
        return out

    def grid(self) -> dict[str, list[Scalar]]:
        """The search_space for optuna.samplers.GridSampler: every sampled param's values.

        Per-layer widths give units_1 .. units_<max_layers>; a trial with fewer layers ignores the
        rest, so such a grid repeats those configurations (GridSampler crosses every list).
        """
        grid: dict[str, list[Scalar]] = {}
        hints: list[str] = []  # every range, so that one error lists all there are to fix
        for name, label, param in self._sampled():
            if isinstance(param, IntRange | FloatRange):
                hint = param.grid_hint(label)
                hints += [] if hint in hints else [hint]
            else:
                grid[name] = param.grid_values(label)
        if hints:
            raise _grid_error(hints, self.source)
        return grid

    # ---- fitting a task ----

    def for_task(self, task: str) -> tuple[SearchSpace, list[str]]:
        """This space with only the losses that apply to `task`, and a note per dropped loss."""
        if task not in vocabulary.TASKS:
            raise SpaceError(
                f"{self.source}: task {task!r} is not known; "
                f"choose from: {', '.join(vocabulary.TASKS)}."
            )
        self._check_metric(task)
        applicable = [name for name in vocabulary.LOSSES if vocabulary.loss_applies(name, task)]
        loss = self.params["loss"]
        if not isinstance(loss, Fixed | Choice):  # the parser makes only these for a name key
            raise TypeError(f"loss is {loss!r}")
        kept = [name for name in loss.values() if vocabulary.loss_applies(str(name), task)]
        dropped = [name for name in loss.values() if name not in kept]
        if isinstance(loss, Fixed) and dropped:
            raise SpaceError(
                f"{self.source}: loss {loss.value!r} does not apply to a {task} target. "
                f"Losses that apply: {', '.join(applicable)}."
            )
        if not kept:
            raise SpaceError(
                f"{self.source}: none of the losses in loss ({', '.join(map(str, dropped))}) "
                f"applies to a {task} target. Losses that apply: {', '.join(applicable)}."
            )
        if not dropped:
            return self, []
        notes = [
            f"loss {name!r} does not apply to a {task} target; dropped from the choices"
            for name in dropped
        ]
        plain = self.to_dict() | {"loss": kept}
        return self._shaped(SearchSpace._build(plain, self.source, self.name)), notes

    def for_examples(self, n_train: int) -> tuple[SearchSpace, list[str]]:
        """This space with its epochs fitted to a training set of `n_train` examples, and a
        note: where a pass over the data holds fewer than EPOCH_EXAMPLES examples (a few
        optimizer steps: 40 signals are 3 steps of 16), the schedule's unit becomes enough
        passes to hold that many, so that the lowest rung judges a network that has learned
        something and the last gives it the hundreds of steps small networks need (Wang et
        al.'s FCN trained 2,000 epochs on such sets). Kept as given where the space sets
        epochs or min_epochs itself."""
        if self.epochs_given or n_train <= 0 or n_train >= EPOCH_EXAMPLES:
            return self, []
        passes = math.ceil(EPOCH_EXAMPLES / n_train)
        plain = self.to_dict() | {
            "epochs": self.epochs * passes,
            "min_epochs": self.min_epochs * passes,
        }
        fitted = SearchSpace._build(plain, self.source, self.name)
        fitted.input_shape = self.input_shape
        note = (
            f"epochs: {n_train} training examples a pass, so a rung counts {passes} passes "
            f"(at least {EPOCH_EXAMPLES} examples): up to {fitted.epochs} epochs, the lowest "
            f"rung at {fitted.min_epochs:g} (set epochs or min_epochs in the space to choose)"
        )
        return fitted, [note]

    def for_input(self, input_shape: tuple[int, ...]) -> tuple[SearchSpace, list[str]]:
        """This space fitted to examples of `input_shape`, and a note per key it does not use.

        Flat rows keep the dense network alone (a space that asks for convolutions is refused);
        signals and images get every convolutional key, the missing ones from their defaults,
        with conv_layers from 0 to as many blocks as the input's size allows (at most 3), so
        that a study chooses the family itself (see shapes.py).
        """
        input_shape = tuple(int(n) for n in input_shape)
        if len(input_shape) <= 1:
            plain, notes = flat_plain(self.conv, self.to_dict(), self.source, input_shape)
            space = SearchSpace._build(plain, self.source, self.name) if notes else self.copy()
        else:
            space = SearchSpace._build(
                shaped_plain(self.conv, self.to_dict(), input_shape), self.source, self.name
            )
            check_fits(space.conv, input_shape, space.source)
            notes = []
        space.input_shape = input_shape
        return space, notes

    def copy(self) -> SearchSpace:
        """The same space, a new object (its input shape with it)."""
        return self._shaped(SearchSpace._build(self.to_dict(), self.source, self.name))

    def _shaped(self, space: SearchSpace) -> SearchSpace:
        """`space`, fitted to the same input shape as this one."""
        space.input_shape = self.input_shape
        return space

    def _check_metric(self, task: str) -> None:
        if self.metric is None or vocabulary.METRICS[self.metric][0] == task:
            return
        fitting = [m for m, (t, _) in vocabulary.METRICS.items() if t == task]
        raise SpaceError(
            f"{self.source}: metric {self.metric!r} is for {vocabulary.METRICS[self.metric][0]}, "
            f"but the target is {task}; use {' or '.join(fitting)}, or null for the default "
            f"({vocabulary.DEFAULT_METRIC[task]})."
        )


def _value(
    param: Param | PerLayer, key: str, layers: int, value_of: Callable[[Param, str], Any]
) -> Any:
    """One key's value; a per-layer key's as a list of one value per layer (key_1 .. key_N)."""
    if isinstance(param, PerLayer):
        return [value_of(param.for_layer(k), param.name(k)) for k in range(1, layers + 1)]
    return value_of(param, key)


def _per_layer(value: Any, layers: int) -> tuple[int, ...]:
    """Widths (filter counts, kernel sizes) per layer from one value for all or a list."""
    return tuple(int(v) for v in value) if isinstance(value, list) else (int(value),) * layers


def _rebuild(
    plain: dict[str, Any], source: str, input_shape: tuple[int, ...] | None = None
) -> SearchSpace:
    """Unpickle a space from its plain form (see SearchSpace.__reduce__)."""
    space = SearchSpace.from_dict(plain, source=source)
    space.input_shape = input_shape
    return space
