"""A tuned model ready to use: raw features in, labels, probabilities or values out.

`TunedModel` is what train-best builds in memory and what `dltune.load(DIR)` reads back; both
predict through the same steps (standardize in numpy as the data module does, the network in
torch in the trainer's chunks, the head in numpy), so a loaded model predicts exactly, bit for
bit, what the in-memory one did, and the test metric of the model card is what `predict` gives
on the test split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data.arrays import standardize
from ..data.checks import as_features
from ..data.columns import frame_columns, is_dataframe
from ..data.encoding import TableEncoding
from ..engine.sequential import EVAL_CHUNK
from ..errors import DataError
from ..nets import BuiltinNetworks, NetworkFactory
from ..nets.dense import probabilities
from .ensemble_net import (
    ENSEMBLE_LOSS,
    EnsembleMember,
    EnsembleNetwork,
    Member,
    checked_members,
    ensemble_network,
    heaviest,
)
from .features import encode_columns, match_columns, match_inputs
from .preprocessing import Preprocessing


class Pipeline(nn.Module):
    """The whole model as one torch module, for export: raw features (N, F) in; probabilities
    (N, K) out for classification, values in the target's units (N, 1) for regression.

    It shares its layers with the trained network, in evaluation mode (no dropout, batch
    normalization from its running statistics).
    """

    x_mean: torch.Tensor  # (F,) buffers, so that they travel with the module's state
    x_std: torch.Tensor

    def __init__(self, network: nn.Module, prep: Preprocessing) -> None:
        super().__init__()
        self.register_buffer("x_mean", torch.as_tensor(prep.x_mean))
        self.register_buffer("x_std", torch.as_tensor(prep.x_std))
        self.layers = network.eval()
        self.task = prep.task
        self.loss = prep.loss
        self.target_mean = float(prep.target_mean or 0.0)
        self.target_std = float(prep.target_std or 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.layers((x - self.x_mean) / self.x_std)
        if self.task == "regression":
            return outputs * self.target_std + self.target_mean
        return probabilities(outputs, self.loss)


class TunedModel:
    """A trained configuration with its preprocessing.

    `predict(x)` gives class labels (classification) or values; `predict_proba(x)` one
    probability per class in the order of `classes`. `x` is an array (n, n_features) or a table
    with named columns (a pandas DataFrame), matched by name when the training data had names.
    A model trained on a table through the encoder takes that table's columns instead: text,
    booleans and empty cells as in training (a DataFrame by name in any order, an array by
    position); `features(x)` gives the encoded rows (`feature_names`), what the exports take.
    `network` is the trained torch module (standardized features in, raw outputs out); `module`
    the whole pipeline as one torch module (raw features in), as it is exported.

    An ensemble (`TunedModel.ensemble(members, prep)`) predicts the weighted average of its
    members' class probabilities or values, through the same steps: its `network` is an
    `EnsembleNetwork` (raw outputs: the log of the mixture for a classifier), its `config` the
    configuration of the trial with the largest total weight, and `members` lists each
    network's (trial, fold, weight, config); a single model's `members` is itself alone.
    """

    def __init__(
        self,
        config: Config,
        prep: Preprocessing,
        state: dict[str, torch.Tensor],
        network: NetworkFactory | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        # dltune's own families from the configuration, unless the study trained a user's model
        build = network or BuiltinNetworks(input_shape_of(prep))
        module = build(config, prep.n_outputs, seed=0, device="cpu")
        module.load_state_dict(state)
        self._attach(config, prep, module, source, None)

    @classmethod
    def ensemble(
        cls,
        members: Sequence[EnsembleMember],
        prep: Preprocessing,
        network: NetworkFactory | None = None,
        source: dict[str, Any] | None = None,
    ) -> TunedModel:
        """The weighted average of `members` (their weights summing to 1), each network built by
        `network` (dltune's own families by default) from its own configuration. A classifier's
        `prep.loss` becomes categorical_crossentropy: the ensemble's outputs are
        log-probabilities. One member is still an ensemble (written as one); build
        `TunedModel(...)` for a single model."""
        members = checked_members(members)
        if prep.task == "classification":
            prep = dataclasses.replace(prep, loss=ENSEMBLE_LOSS)
        build = network or BuiltinNetworks(input_shape_of(prep))
        module = ensemble_network(members, prep.task, prep.n_outputs, build)
        listed = [Member(m.trial, m.fold, float(m.weight), m.config) for m in members]
        model = cls.__new__(cls)
        model._attach(heaviest(members), prep, module, source, listed)
        return model

    def _attach(
        self,
        config: Config,
        prep: Preprocessing,
        network: nn.Module,
        source: dict[str, Any] | None,
        members: list[Member] | None,
    ) -> None:
        self.config = config
        self.preprocessing = prep
        # A user model's build: where it came from (dltune.usermodel.source's record), kept in
        # the folder so that `dltune.load` rebuilds it; None for dltune's own networks.
        self.source = source
        self.network = network.eval()
        self._members = members  # None: a single network
        self.card: dict[str, Any] | None = None  # set when read from a folder

    @property
    def is_ensemble(self) -> bool:
        return self._members is not None

    @property
    def members(self) -> list[Member]:
        """(trial, fold, weight, config) of each network; a single model: (None, None, 1.0,
        its config)."""
        if self._members is None:
            return [Member(None, None, 1.0, self.config)]
        return list(self._members)

    @property
    def task(self) -> str:
        return self.preprocessing.task

    @property
    def classes(self) -> list[Any] | None:
        return self.preprocessing.classes

    @property
    def feature_names(self) -> list[str] | None:
        return self.preprocessing.feature_names

    @property
    def module(self) -> Pipeline:
        return Pipeline(self.network, self.preprocessing).eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as plain parts (a torch.Generator inside the network does not pickle everywhere);
        # dltune's own folders never use pickle.
        if isinstance(self.network, EnsembleNetwork) and self._members is not None:
            members = [
                (m.config.to_dict(), _plain_state(net), m.weight, m.trial, m.fold)
                for m, net in zip(self._members, self.network.members, strict=True)
            ]
            return (_rebuild_ensemble, (members, self.preprocessing.to_dict(), self.source))
        state = {k: v.numpy() for k, v in self.state_dict().items()}
        plain = (self.config.to_dict(), self.preprocessing.to_dict(), state, self.source)
        return (_rebuild, plain)

    # -- the steps of a prediction ---------------------------------------------------------

    def features(self, x: Any, where: str = "x") -> np.ndarray:
        """The network's features before scaling, float32 (n, n_features), columns matched to
        the model's; a model with an encoder takes its table's columns (a DataFrame by name,
        an array by position) and gives the encoded features, what the exports take."""
        encoding = self.preprocessing.encoding
        if encoding is not None:
            return self._encoded(encoding, x, where)
        columns = getattr(x, "columns", None)
        if columns is not None:  # a table: match its columns by name where the model has names
            names = [str(c) for c in columns]
            match = match_columns(names, len(names), self.preprocessing, where)
            x = np.asarray(x)[:, match.features]
        arr = as_features(x, where)
        if arr.shape[1] != self.preprocessing.n_features:
            raise DataError(
                f"{where}: {arr.shape[1]} features per row, but the model takes "
                f"{self.preprocessing.n_features}."
            )
        return arr

    def _encoded(self, encoding: TableEncoding, x: Any, where: str) -> np.ndarray:
        if is_dataframe(x):
            names = [str(c) for c in x.columns]
            cells = [column.values for column in frame_columns(x)]
        else:
            arr = np.asarray(x)  # numbers stay numbers; text and mixed rows are objects
            arr = arr.reshape(-1, 1) if arr.ndim == 1 else arr
            if arr.ndim != 2:
                raise DataError(f"{where}: give a table: rows of columns; got shape {arr.shape}.")
            names, cells = None, [arr[:, j] for j in range(arr.shape[1])]
        match = match_inputs(names, len(cells), encoding, self.preprocessing.target, where)
        return encode_columns(encoding, match, cells, where).x

    def scaled(self, features: np.ndarray) -> np.ndarray:
        """Features (as `features` gives them) standardized for the network: the same float32
        arithmetic as the data module's, so that a file's raw test rows give the very inputs
        the test split held."""
        prep = self.preprocessing
        return standardize(features, prep.x_mean, prep.x_std)

    def standardized(self, x: Any) -> np.ndarray:
        """The network's input from raw rows (`features`, then `scaled`)."""
        return self.scaled(self.features(x))

    @torch.no_grad()
    def outputs(self, x_standardized: np.ndarray) -> np.ndarray:
        """Raw network outputs (n, K), computed in the trainer's evaluation chunks."""
        x = torch.as_tensor(np.ascontiguousarray(x_standardized, dtype=np.float32))
        if len(x) == 0:
            return np.zeros((0, self.preprocessing.n_outputs), dtype=np.float32)
        parts = [self.network(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)]
        return torch.cat(parts).numpy()

    def head(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, probabilities or None) from raw outputs."""
        prep = self.preprocessing
        if prep.task == "regression":
            std, mean = np.float32(prep.target_std or 1.0), np.float32(prep.target_mean or 0.0)
            return (outputs[:, 0] * std + mean).astype(np.float32), None
        proba = probabilities(torch.as_tensor(outputs), prep.loss).numpy()
        # The label is the largest raw output, as the accuracy of the study counted it.
        index = outputs.argmax(axis=1)
        labels = np.asarray(prep.classes, dtype=object)[index] if len(index) else index
        return _plain_array(labels), proba

    # -- the public face -------------------------------------------------------------------

    def predict(self, x: Any) -> np.ndarray:
        return self.head(self.outputs(self.standardized(x)))[0]

    def predict_proba(self, x: Any) -> np.ndarray:
        proba = self.head(self.outputs(self.standardized(x)))[1]
        if proba is None:
            raise DataError("predict_proba: this is a regression model; use predict")
        return proba

    def __repr__(self) -> str:
        n = self.preprocessing.n_features
        if self._members is not None:
            trials = sorted({m.trial for m in self._members if m.trial is not None})
            shown = f" of trials {', '.join(map(str, trials))}" if trials else ""
            what = f"an ensemble of {len(self._members)} networks{shown}"
            return f"<TunedModel {self.task}, {n} features: {what}>"
        return f"<TunedModel {self.task}, {n} features: {self.config.short()}>"


def input_shape_of(prep: Preprocessing) -> tuple[int, ...]:
    """One example's shape as the network takes it; flat for bundles saved before shapes."""
    return tuple(getattr(prep, "input_shape", None) or (prep.n_features,))


def _plain_array(labels: np.ndarray) -> np.ndarray:
    """Labels of one kind as a typed array (ints, floats, strings), not objects."""
    try:
        return np.asarray(labels.tolist())
    except (TypeError, ValueError):
        return labels


def _rebuild(
    config: dict[str, Any],
    prep: dict[str, Any],
    state: dict[str, Any],
    source: dict[str, Any] | None = None,
) -> TunedModel:
    tensors = {k: torch.as_tensor(v) for k, v in state.items()}
    preprocessing = Preprocessing.from_dict(prep, "pickle")
    # Unpickling runs whatever the pickle says anyway: a pickled model's build is trusted.
    network = user_networks(source, preprocessing, trust=True, where="a pickled TunedModel")
    return TunedModel(Config.from_dict(config), preprocessing, tensors, network, source)


def _plain_state(network: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().contiguous().numpy() for k, v in network.state_dict().items()}


def _rebuild_ensemble(
    members: list[tuple[dict[str, Any], dict[str, Any], float, int | None, int | None]],
    prep: dict[str, Any],
    source: dict[str, Any] | None = None,
) -> TunedModel:
    preprocessing = Preprocessing.from_dict(prep, "pickle")
    rebuilt = [
        EnsembleMember(
            Config.from_dict(config),
            {k: torch.as_tensor(v) for k, v in state.items()},
            weight,
            trial,
            fold,
        )
        for config, state, weight, trial, fold in members
    ]
    network = user_networks(source, preprocessing, trust=True, where="a pickled TunedModel")
    return TunedModel.ensemble(rebuilt, preprocessing, network, source)


def user_networks(
    source: Any, prep: Preprocessing, *, trust: bool, where: str
) -> NetworkFactory | None:
    """The factory of a user model's build, from its record as `where` (a model folder's
    config.json, a study) holds it; None for dltune's own networks, for which nothing is
    imported. The build is someone's code: without `trust` a SourceError names the file it would
    import and how to allow it; with it, the file's hash is checked before it runs
    (usermodel.source)."""
    if source is None:
        return None
    from ..usermodel import UserNetworks
    from ..usermodel.source import stored

    return UserNetworks(stored(source, where, trust=trust).build, input_shape_of(prep))
