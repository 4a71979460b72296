"""The tuner: what Keras Tuner's three tuners share, run by dltune.tune (tuners.py says what
each of them adds).

Each takes Keras Tuner's constructor arguments in Keras Tuner's order and maps them onto one
dltune study (arguments.py refuses the rest):

- `objective` -> the space's metric (objective.py); `seed` -> tune's seed (sampler and weights);
- `directory`/`project_name` -> the study `project_name` in SQLite at
  directory/project_name/dltune.db, and the best trials' weights beside it (results.py);
  `overwrite=True` removes them (and the study's checkpoints) first, as Keras Tuner removes its
  project folder; otherwise a later search() continues the study, and get_best_models() gives
  its models, as Keras Tuner reloads its project;
- `executions_per_trial=N` > 1 -> choose "top3xN": the 3 best trials trained again with N other
  seeds and the best mean chosen (Keras Tuner averages N runs of every trial; dltune spends the
  repeats where the choice is made); the trial count is unchanged.

search(x, y, batch_size, epochs, callbacks, validation_data | validation_split, verbose) trains
with the space's batch_size (fit()'s default 32) and epochs (fit()'s default 1; Hyperband's
max_epochs instead, as in Keras Tuner), EarlyStopping as patience, holdout validation on the
validation data (data.py), each trial's best epoch kept, no ensemble (get_best_models gives
single models, as Keras Tuner's). `timeout=` (seconds) is dltune's own: Keras Tuner has no
time budget. max_trials counts the study's trials so far, as Keras Tuner's does on reload.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StudyError
from ..storage.checkpoints import SUFFIX as CHECKPOINTS_SUFFIX
from ..usermodel.keras_model import is_keras_model
from .arguments import CONSTRUCTOR, SEARCH, KerasTunerError, patience_of, refuse, whole_number
from .hypermodel import build_of, default_space
from .objective import as_objective, metric_of
from .results import (
    WEIGHTS,
    hyperparameters_of,
    ranked,
    retrained,
    save_weights,
    saved_weights,
    trained_model,
)
from .summaries import SearchProgress, results_summary, search_space_summary

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..study import ProgressListener, TuneResult
    from .hypermodel import HyperParameters

DATABASE = "dltune.db"
BATCH_SIZE = 32  # Keras's fit() default
TOP = 3  # the trials executions_per_trial re-evaluates: choose "top3xN"


class Tuner:
    """What the three tuners share: the study, search() and the results (see the module's
    notes). Subclasses give the schedule, the sampler and the trial count."""

    def __init__(
        self,
        hypermodel: Any,
        objective: Any,
        seed: int | None,
        oracle: dict[str, Any],
        kwargs: dict[str, Any],
    ) -> None:
        call = f"{type(self).__name__}()"
        self.directory = str(kwargs.pop("directory", None) or ".")
        self.project_name = str(kwargs.pop("project_name", None) or "untitled_project")
        overwrite = bool(kwargs.pop("overwrite", False))
        self.executions_per_trial = whole_number(
            kwargs.pop("executions_per_trial", 1), "executions_per_trial", call
        )
        refuse(call, {**oracle, **kwargs}, CONSTRUCTOR)
        self._build, self.hypermodel, self._importable = build_of(hypermodel)
        self.objective = as_objective(objective)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise KerasTunerError(f"{call}: seed={seed!r}; give a whole number or None")
        self.seed = seed
        self.result: TuneResult | None = None  # the last search()'s, in this process
        self._epochs = 1  # search()'s
        self._data_of_last_search: Dataset | None = None
        if overwrite:
            _remove_study(Path(self.project_dir))
        Path(self.project_dir).mkdir(parents=True, exist_ok=True)  # as Keras Tuner makes it

    # ---- where the study lives ----

    @property
    def project_dir(self) -> str:
        return str(Path(self.directory) / self.project_name)

    @property
    def storage_url(self) -> str:
        """The SQLite URL of the study (an absolute path: it does not move with the cwd)."""
        return f"sqlite:///{(Path(self.project_dir) / DATABASE).resolve()}"

    @property
    def study_name(self) -> str:
        return self.project_name

    def _stored_study(self) -> optuna.Study | None:
        """The study of this project, where one was stored (by this process or another)."""
        if self.result is not None:
            return self.result.study
        if not (Path(self.project_dir) / DATABASE).exists():
            return None
        from ..storage import Storage

        storage = Storage.open(self.storage_url)
        if self.study_name not in {s.study_name for s in storage.summaries()}:
            return None
        return storage.load_study(self.study_name)

    def _study(self) -> optuna.Study:
        study = self._stored_study()
        if study is None:
            raise KerasTunerError(
                f"project {self.project_dir} has no study yet: call search(...) first"
            )
        return study

    # ---- what a subclass says ----

    def _schedule(self) -> tuple[str, dict[str, Any]]:
        """The schedule and the space's keys for it (epochs, min_epochs, reduction), given
        search()'s epochs (`self._epochs`)."""
        return "none", {"epochs": self._epochs}

    def _sampler(self, hp: HyperParameters) -> Any:
        return "random"

    def _trials(self) -> int | None:
        raise NotImplementedError

    # ---- search ----

    def search(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int | None = None,
        verbose: Any = "auto",
        callbacks: Any = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        *,
        timeout: float | None = None,
        progress: ProgressListener | None = None,
        **fit_options: Any,
    ) -> None:
        """Tune: Keras's fit() arguments, as Keras Tuner's search() takes them (see the
        module's notes). dltune's own: `timeout` seconds (Keras Tuner has no time budget) and
        `progress`, a dltune.ProgressListener told of every trial and epoch (instead of the
        lines verbose prints)."""
        refuse("search()", fit_options, SEARCH)
        self._epochs = whole_number(1 if epochs is None else epochs, "epochs", "search()")
        patience, monitor = patience_of(callbacks)
        hp, loss = self._dry_build()
        data = self._data(x, y, validation_data, validation_split, loss)
        metric = metric_of(self.objective, data.task, loss)
        space = self._space(metric, batch_size, patience)
        trials, existing = self._remaining(timeout)
        notes = self._notes(monitor, patience, epochs, existing)
        self._data_of_last_search = data
        if trials == 0:  # as Keras Tuner's search() on a project that ran its max_trials
            if verbose:
                print(f"note: the study already ran its {existing} trial(s); nothing to add")
            return
        if progress is None and verbose:
            progress = SearchProgress(self.objective, notes)
        with _quiet_optuna():
            self.result = self._tune(data, space, hp, trials, timeout, existing, progress)
        save_weights(Path(self.project_dir), self.result.study, self.result.kept)
        if isinstance(progress, SearchProgress) and self.result.best:
            best = self.result.best
            print(f"Best {self.objective.name}: {best['value']:.4f} (trial {best['trial']})")

    def _tune(
        self,
        data: Dataset,
        space: dict[str, Any],
        hp: HyperParameters,
        trials: int | None,
        timeout: float | None,
        existing: int,
        progress: ProgressListener | None,
    ) -> TuneResult:
        """dltune.tune on the build, with this tuner's study, sampler, schedule and choice."""
        from ..study import tune

        try:
            return tune(
                self._build, data=data, space=space, storage=self.storage_url,
                study_name=self.study_name, trials=trials, timeout=timeout, seed=self.seed,
                sampler=self._sampler(hp), schedule=self._schedule()[0], cv="holdout",
                ensemble=False, choose=self._choose(), progress=progress,
                workers="auto" if self._importable else 1,
            )  # fmt: skip
        except StudyError as exc:
            if not existing:
                raise
            raise KerasTunerError(
                f"project {self.project_dir} cannot continue: {exc.template} (with Keras "
                "Tuner's API: overwrite=True starts the project over, or give another "
                "project_name)"
            ) from exc

    def _dry_build(self) -> tuple[HyperParameters, str | None]:
        """build(hp) on its defaults: its hyperparameters and compile()'s loss (dltune's name);
        a Keras model that is not compiled refused, as Keras Tuner refuses it."""
        from ..usermodel.compiled import compiled
        from ..usermodel.network import seeded_build
        from .hypermodel import HyperParameters

        hp = HyperParameters()
        model = seeded_build(self._build, hp, seed=0)
        found = compiled(model)
        if is_keras_model(model) and found is None:
            raise KerasTunerError(
                "build(hp) returns a Keras model that is not compiled: compile it in build(hp) "
                "(model.compile(optimizer=..., loss=...)), as Keras Tuner needs; dltune "
                "trains with its optimizer, learning rate and loss"
            )
        return hp, (found.values.get("loss") if found is not None else None)

    def _data(
        self, x: Any, y: Any, validation_data: Any, validation_split: float, loss: str | None
    ) -> Any:
        from .data import search_data
        from .objective import VAL_LOSS

        task = "classification" if self.objective.direction == "max" else "regression"
        if self.objective.name == VAL_LOSS and loss in ("categorical_crossentropy",
                                                        "binary_crossentropy"):  # fmt: skip
            task = "classification"  # refused by metric_of, with what to do
        return search_data(
            x, y, validation_data, validation_split,
            name=self.project_name, task=task, channels_last=_channels_last(),
        )  # fmt: skip

    def _space(self, metric: str, batch_size: int | None, patience: int | None) -> dict[str, Any]:
        """The space: the training knobs the tuner fixes (compile() gives the optimizer, the
        learning rate and the loss: the space leaves them at its defaults)."""
        size = whole_number(
            BATCH_SIZE if batch_size is None else batch_size, "batch_size", "search()"
        )
        space: dict[str, Any] = {"name": self.project_name, "metric": metric, "batch_size": size}
        space |= self._schedule()[1]
        if patience is not None:
            space["patience"] = patience
        return space

    def _remaining(self, timeout: float | None) -> tuple[int | None, int]:
        """Trials this search() may start (None: until the timeout), and the study's so far:
        the tuner's count is the study's, as Keras Tuner counts a reloaded project's."""
        study = self._stored_study() if self.result is None else self.result.study
        existing = len(study.trials) if study is not None else 0
        total = self._trials()
        if total is None:
            if timeout is None:
                raise KerasTunerError(
                    f"{type(self).__name__}(hyperband_iterations=None) runs without end; give "
                    "a number of iterations, or search(..., timeout=SECONDS)"
                )
            return None, existing
        return max(0, total - existing), existing

    def _choose(self) -> str:
        return "max" if self.executions_per_trial == 1 else f"top{TOP}x{self.executions_per_trial}"

    def _notes(
        self, monitor: str | None, patience: int | None, epochs: int | None, existing: int
    ) -> list[str]:
        notes = []
        if monitor is not None and monitor != self.objective.name:
            notes.append(
                f"EarlyStopping(monitor={monitor!r}, patience={patience}) stops a trial after "
                f"{patience} epoch(s) without a better {self.objective.name}: dltune's patience "
                "watches the objective"
            )
        if self.executions_per_trial > 1:
            notes.append(
                f"executions_per_trial={self.executions_per_trial}: the top {TOP} trials are "
                f"trained again with {self.executions_per_trial} other seeds and the best mean "
                "is chosen (dltune repeats the runs where the choice is made)"
            )
        if existing:
            notes.append(f"continuing project {self.project_dir}: {existing} trial(s) so far")
        return notes

    # ---- results ----

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        """The best trials' hyperparameters, best first (kt.HyperParameters: build(hp) takes
        them, `.values` and `.get(name)` read them)."""
        return [hyperparameters_of(r) for r in ranked(self._study(), num_trials)]

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best trials' models, best first, with the weights of each one's best epoch
        (results.py: kept from the search, saved in the project folder by a search, or
        retrained from its seed on the last search's data)."""
        from ..storage import study_meta
        from ..storage.schema import read_input_shape

        study = self._study()
        data = self._data_of_last_search
        meta = study_meta(study)
        shape = data.input_shape if data is not None else read_input_shape(meta)
        classes = data.n_classes if data is not None else meta.get("data", {}).get("classes")
        kept = self.result.kept if self.result is not None else {}
        models = []
        for record in ranked(study, num_models):
            found = kept.get(record.number)
            state = found[0] if found else saved_weights(Path(self.project_dir), record.number)
            if state is None:
                if data is None:
                    raise KerasTunerError(
                        f"get_best_models(): trial {record.number} of project "
                        f"{self.project_dir} has no saved weights, and retraining it needs its "
                        "data: call search(...) with the same arrays first (it continues the "
                        "study, and trains nothing more where max_trials is reached)"
                    )
                state = retrained(study, record, self._build, data)
            models.append(trained_model(record, self._build, shape, classes or 1, state))
        return models

    def results_summary(self, num_trials: int = 10) -> None:
        print(results_summary(ranked(self._study()), self.project_dir, self.objective, num_trials))

    def search_space_summary(self, extended: bool = False) -> None:
        print(search_space_summary(default_space(self._build)))


def _channels_last() -> bool:
    """Keras's image data format, where Keras is imported (its default otherwise)."""
    from ..usermodel.keras_model import keras_module

    keras = keras_module()
    config = getattr(keras, "config", None)
    return config is None or config.image_data_format() == "channels_last"


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines (a study created, each trial told) kept out of search()'s output,
    as Keras Tuner prints its own; the caller's level restored after."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _remove_study(project: Path) -> None:
    """overwrite=True: the project's study and its checkpoints removed (Keras Tuner removes its
    project folder; dltune removes only what it wrote there)."""
    database = project / DATABASE
    for path in (database, *(Path(f"{database}{end}") for end in ("-journal", "-wal", "-shm"))):
        path.unlink(missing_ok=True)
    shutil.rmtree(Path(f"{database}{CHECKPOINTS_SUFFIX}"), ignore_errors=True)
    shutil.rmtree(project / WEIGHTS, ignore_errors=True)
