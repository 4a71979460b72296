"""The tuned model: retrain the best trial, test it once, save, load, predict, export.
May import study, storage, engine and data; never analysis, report, sweep or the CLI.

retrain.py       train_best(): what the study delivers trained again, tested once
delivery.py      what that is (its ensemble, its best trial's bag), its networks retrained
bundle.py        the model folder (safetensors, JSON, model card) written and read; load()
loaded.py        TunedModel: predict, predict_proba, the torch module; one network or an ensemble
ensemble_net.py  EnsembleMember, EnsembleNetwork: the chosen ensemble as one torch module
preprocessing.py input scaling and label encoding, as plain data
features.py      matching new data's columns to the model's features
predict.py       reading DATA files, writing predictions.csv
formats.py       ONNX, TorchScript and Keras exports, each checked against torch
keras_native.py  a user's Keras models as a native .keras file, preprocessing around them
card.py          the model card (JSON and Markdown)
estimators.py    DLTuneClassifier, DLTuneRegressor (scikit-learn)
"""

from __future__ import annotations

from .bundle import load, read_bundle, write_bundle
from .ensemble_net import EnsembleMember
from .loaded import TunedModel
from .preprocessing import Preprocessing
from .retrain import TrainBest, train_best

__all__ = [
    "EnsembleMember",
    "Preprocessing",
    "TrainBest",
    "TunedModel",
    "load",
    "read_bundle",
    "train_best",
    "write_bundle",
]
