"""A storage, opened once at the edge (the command line, `tune`, `sweep`, `train_best`) and
passed down as this object: its URL for messages and for worker processes, its Optuna storage
for everything else. Nothing below the edge opens a storage from its URL again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StudyError, did_you_mean
from .opening import open_storage, storage_lost
from .urls import display_url, masked_repr, normalize_url

if TYPE_CHECKING:
    import optuna

IN_MEMORY = "in-memory storage"  # how a storage object without a URL is named in messages


@dataclass(frozen=True)
class Storage:
    """An open Optuna storage and the URL it was opened from (None: given as an object)."""

    backend: optuna.storages.BaseStorage
    url: str | None = None

    @classmethod
    def open(cls, url: str) -> Storage:
        """The storage at `url` (a bare .db or .log file name is taken too), or a StudyError
        naming the URL and the fix."""
        url = normalize_url(url)
        return cls(open_storage(url), url)

    def __repr__(self) -> str:  # a notebook shows a Storage, or a result holding one
        return masked_repr(self)

    @property
    def shown(self) -> str:
        """The URL as it may be printed (password masked)."""
        return display_url(self.url) if self.url is not None else IN_MEMORY

    def summaries(self, include_best_trial: bool = False) -> list[Any]:
        """Optuna's summaries of the studies stored here."""
        import optuna

        return optuna.get_all_study_summaries(self.backend, include_best_trial=include_best_trial)

    def load_study(self, study_name: str | None = None) -> optuna.Study:
        """A study stored here; without a name, the most recently started one. Errors name the
        storage (password masked) and the studies it holds."""
        import optuna

        summaries = self.summaries()
        names = [s.study_name for s in summaries]
        if not names:
            raise StudyError(f"storage {self.shown} holds no study yet; run `dltune run` first")
        if study_name is None:
            latest = max(summaries, key=lambda s: (s.datetime_start is not None, s.datetime_start))
            study_name = latest.study_name
        elif study_name not in names:
            raise StudyError(
                f"study {study_name!r} is not in {self.shown};{did_you_mean(study_name, names)} "
                f"It holds: {', '.join(names)}"
            )
        return optuna.load_study(study_name=study_name, storage=self.backend)

    def lost(self, exc: BaseException) -> StudyError | None:
        """The error to show when this storage failed during a run (server gone, connection
        cut), or None when `exc` is not about the storage."""
        return storage_lost(self.url or IN_MEMORY, exc)


def resolve_storage(storage: str | Storage | optuna.storages.BaseStorage) -> Storage:
    """A Storage for what a caller gave: a URL (opened now), a Storage, or an Optuna storage."""
    if isinstance(storage, Storage):
        return storage
    if isinstance(storage, str):
        return Storage.open(storage)
    return Storage(storage)
