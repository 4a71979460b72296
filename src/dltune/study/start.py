"""What a study's run tells its listener before the first trial (ProgressListener's
study_started), as one typed record: the display reads its fields by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..storage.urls import display_url


@dataclass(frozen=True)
class StudyStart:
    """What a study's run tells its listener before the first trial (ProgressListener's
    study_started receives it as it is)."""

    study: str
    storage: str  # as it may be printed (password masked)
    data: str  # the dataset's description
    metric: str
    trials: int | None  # trials this run may start, all workers together (None: no count)
    timeout: float | None
    existing_trials: int
    engine: str
    schedule: str  # the rungs, described, or "none"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:  # whoever made it, listeners never see a password
        object.__setattr__(self, "storage", display_url(self.storage))
