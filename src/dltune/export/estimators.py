"""scikit-learn estimators: `fit` runs a dltune study, then retrains its best configuration.

    from dltune import DLTuneClassifier
    clf = DLTuneClassifier(trials=20).fit(X_train, y_train)
    clf.score(X_test, y_test), clf.best_params_

Parameters live in `__init__` only; `fit` holds out 15% of X (stratified for classification) as
the study's validation split and tunes `trials` configurations. `cv` ("auto", the default, as
`dltune.tune`'s): on fewer than 5,000 rows the trials are cross-validated over all of X instead
(K-fold), and the model is what the study delivers, `ensemble=True` its ensemble of the best
configurations (False: the best alone), each bagged over its K fold models; in holdout each
configuration is retrained on all of X (train+val, with train-best's epoch rule). `refit_on`
overrides train-best's rows ("train+val": one network per configuration on all of X). The
study needs no test split of its own: your held-out data, through `score`, is the test. The
study lives in memory unless `storage` names one (then it is kept, and a second `fit` on other
data needs another `study_name`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ..data.arrays import MIN_SAMPLES
from ..data.columns import is_dataframe, needs_encoding
from ..data.split import held_out_size, split_one
from ..devices import DEFAULT_DEVICE
from ..errors import DLTuneError, InvalidDataError
from ..storage.urls import display_url

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


# The checks of scikit-learn's check_estimator these estimators fail, each with why (passed to
# check_estimator / parametrize_with_checks as expected_failed_checks). None at present: all
# pass with scikit-learn 1.9 (those needing pandas or SCIPY_ARRAY_API skip where absent).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    return dict(EXPECTED_FAILED_CHECKS)


class _DLTuneEstimator(BaseEstimator):
    _task = "classification"

    def __init__(
        self,
        space: Any = None,
        trials: int = 10,
        timeout: float | None = None,
        random_state: int | None = 0,
        sampler: str = "tpe",
        schedule: str = "asha",
        engine: str = "sequential",
        refit_on: str | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        device: str = DEFAULT_DEVICE,
        cv: str | int = "auto",
        ensemble: bool = True,
    ) -> None:
        self.space = space
        self.trials = trials
        self.timeout = timeout
        self.random_state = random_state
        self.sampler = sampler
        self.schedule = schedule
        self.engine = engine
        self.refit_on = refit_on
        self.storage = storage
        self.study_name = study_name
        self.device = device
        self.cv = cv
        self.ensemble = ensemble

    # scikit-learn prints the constructor's parameters (repr, a notebook's HTML); get_params
    # keeps `storage` as given, which clone needs: only what is shown has its password masked.
    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        return BaseEstimator.__repr__(self._shown(), N_CHAR_MAX)

    def _repr_html_inner(self) -> str:
        return super(_DLTuneEstimator, self._shown())._repr_html_inner()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return super(_DLTuneEstimator, self._shown())._repr_mimebundle_(**kwargs)

    def _shown(self) -> _DLTuneEstimator:
        """Self, or a shallow copy whose `storage` URL has its password masked."""
        if not isinstance(self.storage, str) or display_url(self.storage) == self.storage:
            return self
        shown = copy.copy(self)
        shown.storage = display_url(self.storage)
        return shown

    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(targets for dltune, class index of each row for stratification or None)."""
        raise NotImplementedError

    def fit(self, X: Any, y: Any) -> Any:
        import optuna

        from ..study import tune
        from .retrain import train_best

        tabular = is_dataframe(X) and needs_encoding(X)
        if tabular:  # text, categoricals or missing cells: the encoder reads the frame itself
            y = _validate_data(self, X="no_validation", y=y)
            self.n_features_in_ = X.shape[1]
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        else:
            X, y = _validate_data(self, X, y)
        n = len(X)
        if n < MIN_SAMPLES:
            raise InvalidDataError(
                f"{type(self).__name__} needs at least {MIN_SAMPLES} samples to train on; got "
                f"n_samples = {n}"
            )
        y, labels = self._targets(y)
        # Hold out a validation split when the rest still has MIN_SAMPLES rows; a tiny X
        # validates on its training rows (nothing else to choose the epoch by).
        # Cross-validation folds the pool (training and validation rows): all of X, unless
        # they are one (a tiny X), which would fold every row twice.
        cv = self.cv
        if n - held_out_size(n) >= MIN_SAMPLES:
            kept, val, _ = split_one(n, labels, _seed(self.random_state), "validation")
        else:
            kept = val = np.arange(n)
            cv = "holdout"
        if tabular:
            dataset = _frame_dataset(X, y, kept, val, self._task, _seed(self.random_state))
        else:
            dataset = self._array_dataset(X, y, kept, val)
        result = tune(
            self.space,
            dataset,
            storage=self.storage or optuna.storages.InMemoryStorage(),
            study_name=self.study_name or f"sklearn-{self._task}",
            trials=self.trials,
            timeout=self.timeout,
            seed=self.random_state,
            sampler=self.sampler,
            schedule=self.schedule,
            engine=self.engine,
            device=self.device,
            cv=cv,
            ensemble=self.ensemble,
        )
        if result.best is None:
            raise DLTuneError("no trial completed (all diverged?); widen the budget")
        final = train_best(
            study=result.study,
            data=dataset,
            on=self.refit_on,
            ensemble=self.ensemble,
            device=self.device,
            # The study tune() just ran: a build it records is the one given as `space` (tune
            # refuses to continue a study of another build, or of a stored one, untrusted).
            trust_source=True,
        )
        self.model_ = final.model
        self.best_params_ = result.best["params"]
        self.best_score_ = result.best["value"]
        self.best_epoch_ = result.best["best_epoch"]
        self.validation_ = result.best["validation"]
        self.model_card_ = final.card
        return self

    def _array_dataset(
        self, X: np.ndarray, y: np.ndarray, kept: np.ndarray, val: np.ndarray
    ) -> Any:
        from ..data import from_arrays

        return from_arrays(
            X[kept],
            y[kept],
            x_val=X[val],
            y_val=y[val],
            # The study's "test" is the validation split here: the caller holds the real test.
            x_test=X[val],
            y_test=y[val],
            task=self._task,
            name="sklearn",
            seed=_seed(self.random_state),
        )

    def _outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        if self.model_.preprocessing.encoding is not None:
            # fitted on a frame: its columns by name (any order), or an array's by position
            return self.model_.outputs(self.model_.standardized(X))
        X = _validate_data(self, X, reset=False)
        return self.model_.outputs(self.model_.standardized(X))


class DLTuneClassifier(ClassifierMixin, _DLTuneEstimator):
    """A dense network classifier whose hyperparameters a dltune study chooses in `fit`.

    Parameters: `space` (a SearchSpace, a dict or a YAML file; None: the built-in space),
    `trials` (configurations tried in `fit`), `timeout` (seconds), `random_state` (seeds the
    sampler, the weights and the validation split), `sampler`, `schedule`, `engine` (as in
    `dltune.tune`), `cv` ("auto": k-fold over all of X below 5,000 rows, else holdout;
    "holdout", "kfold" or a number of folds), `ensemble` (True: the model is the study's
    ensemble of its best configurations where it chose one, each bagged over its fold models
    in k-fold; False: its best configuration alone), `refit_on` (None: train-best's default,
    the fold models in k-fold, all of X in holdout; "train+val": one network per
    configuration on all of X; "train"), `storage` and `study_name` (keep the study), `device`.

    Attributes after `fit`: `classes_`, `n_features_in_`, `model_` (a TunedModel: one network
    or an ensemble, predicting alike), `best_params_`, `best_score_` (validation accuracy: the
    fold mean in k-fold), `best_epoch_`, `validation_` (how the study validated), `model_card_`.

    scikit-learn's `check_estimator` passes, no check expected to fail (tests/test_estimators.py).
    """

    _task = "classification"

    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_classification_targets(y)
        self.classes_, index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InvalidDataError(
                f"DLTuneClassifier needs at least 2 classes in y; got 1 class "
                f"({self.classes_[0]!r})"
            )
        return index, index

    def predict_proba(self, X: Any) -> np.ndarray:
        outputs = self._outputs(X)  # checks that it is fitted first
        proba = self.model_.head(outputs)[1]
        assert proba is not None  # a classifier's head gives probabilities
        return proba

    def predict(self, X: Any) -> np.ndarray:
        index = self._outputs(X).argmax(axis=1)  # checks that it is fitted first
        return self.classes_[index]


class DLTuneRegressor(RegressorMixin, _DLTuneEstimator):
    """A dense network regressor whose hyperparameters a dltune study chooses in `fit`.

    Parameters as DLTuneClassifier's. Attributes after `fit`: `n_features_in_`, `model_`,
    `best_params_`, `best_score_` (validation RMSE), `best_epoch_`, `validation_`,
    `model_card_`.

    scikit-learn's `check_estimator` passes, no check expected to fail (tests/test_estimators.py).
    """

    _task = "regression"

    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, None]:
        y = np.asarray(y, dtype=np.float64)
        if np.ptp(y) == 0:
            raise InvalidDataError(f"DLTuneRegressor: y is constant ({y[0]!r}); nothing to learn")
        return y, None

    def predict(self, X: Any) -> np.ndarray:
        outputs = self._outputs(X)  # checks that it is fitted first
        return self.model_.head(outputs)[0]


def _frame_dataset(
    X: Any, y: np.ndarray, kept: np.ndarray, val: np.ndarray, task: str, seed: int
) -> Any:
    """The study's data from a DataFrame: its columns encoded, the encoder fitted on `kept`;
    the study's "test" is the validation split, as for arrays."""
    from ..data.columns import frame_columns
    from ..data.tabular import from_columns

    return from_columns(
        frame_columns(X),
        y,
        name="sklearn",
        where="X",
        task=task,
        seed=seed,
        splits=(kept, val, val),
    )


def _seed(random_state: int | None) -> int:
    return 0 if random_state is None else int(random_state)
