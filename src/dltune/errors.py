"""dltune's own error types.

Every error a user can cause is raised as a :class:`DLTuneError` whose message names the file,
the key, the value received, the rule and the fix. The CLI prints the message (no traceback) and
exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DLTuneError(Exception):
    """An error in what the user gave dltune (a file, an option, a value)."""


class SpaceError(DLTuneError):
    """A search space that cannot be parsed or breaks a rule."""


class DataError(DLTuneError):
    """A dataset that cannot be found, read or used."""


class StudyError(DLTuneError):
    """A study or storage that cannot be opened or used as asked."""


class ModelError(DLTuneError):
    """A model folder (train-best's output) that cannot be written, read, exported or used."""


def did_you_mean(value: object, options: Iterable[str]) -> str:
    """Return " did you mean 'x'?" for the closest option, or "" when none is close."""
    matches = difflib.get_close_matches(str(value).lower(), list(options), n=1, cutoff=0.6)
    return f" did you mean '{matches[0]}'?" if matches else ""
