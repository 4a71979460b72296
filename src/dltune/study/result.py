"""What a run returns: `tune`'s result, as each process of the run makes its own (execute.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import views
from ..config import Config
from ..storage.urls import masked_repr

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..space import SearchSpace
    from ..storage import Storage


@dataclass
class TuneResult:
    """What `tune` returns: the study (still in storage) and its best trial as plain data."""

    study: optuna.Study
    storage: Storage
    space: SearchSpace
    data: Dataset
    best: dict[str, Any] | None
    trials_run: int
    seconds: float
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    epochs_trained: float = 0.0  # member-epochs trained in this call
    overhead_seconds: float = 0.0  # asking, storing and scheduling, not training
    # checkpoints written, their bytes, seconds taking them (every process of this call)
    checkpoints: tuple[int, int, float] = (0, 0, 0.0)
    # The weights of the best trial this process trained (its number, its state dict): a
    # worker hands them to the main process for the one test.
    best_state: tuple[int, dict[str, Any]] | None = field(default=None, repr=False)
    # A study of several objectives: its Pareto front, the most accurate first (front.py's
    # Front.to_json: trial, values by objective, params); [] for a single objective.
    front: list[dict[str, Any]] = field(default_factory=list)
    # The best trials' weights this process trained (trial -> one state per fold member),
    # for the delivered ensemble: a worker hands them to the main process, whose result
    # holds every process's (dltune.keras_tuner's get_best_models reads them).
    kept: dict[int, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def best_config(self) -> Config | None:
        return Config.from_dict(self.best["params"]) if self.best else None

    def __repr__(self) -> str:  # a notebook shows it: no password of a storage URL
        return masked_repr(self)

    def _repr_html_(self) -> str:
        """What Jupyter shows of the result: the best configuration, its validation and test
        figures, how it was chosen, the top diagnostics and the optimization history
        (dltune.notebook draws it, from what storage holds)."""
        return str(views.view("result_html")(self))

    def report(self, path: str | Path | None = None) -> Any:
        """The study's full report (the page `dltune report` writes): a notebook shows it
        inline; `.save(path)` writes it, as does giving `path` here."""
        return views.view("report_of")(self.study, path)
