"""Your own PyTorch or Keras 3 model: `build(hp)` as in Keras Tuner, tuned by dltune.

`HyperParameters` (hp.py) is the `hp` a build receives, define-by-run on Optuna's suggest API;
source.py finds a build ("file.py:build", "package.module:build" or the function) and records
where it came from, as plain JSON with the file's hash; network.py turns it into a trainer's
NetworkFactory (`UserNetworks`) with the checks that make a bad build a clear failed trial.
keras_model.py puts a Keras model (torch backend) behind what the trainers expect of a module
(`KerasNetwork`), and sets the backend before a build is imported; compiled.py reads what a
Keras model's compile() names in dltune's training knobs.

May import config, errors, vocabulary, nets and torch; never space, study, storage, export or
the command line, and never keras itself (a user's build imports it). Names load lazily, so
that `from dltune.usermodel import HyperParameters` needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .hp import HyperParameterError, HyperParameters
    from .keras_model import KerasBackendError, KerasNetwork
    from .network import BuildError, UserNetworks
    from .source import ModelSource, SourceError, resolve_model

_EXPORTS = {
    "HyperParameters": ".hp",
    "HyperParameterError": ".hp",
    "KerasBackendError": ".keras_model",
    "KerasNetwork": ".keras_model",
    "BuildError": ".network",
    "UserNetworks": ".network",
    "ModelSource": ".source",
    "SourceError": ".source",
    "resolve_model": ".source",
}

__all__ = [
    "BuildError",
    "HyperParameterError",
    "HyperParameters",
    "KerasBackendError",
    "KerasNetwork",
    "ModelSource",
    "SourceError",
    "UserNetworks",
    "resolve_model",
]

__getattr__ = lazy_names(__name__, _EXPORTS)
