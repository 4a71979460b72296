"""dltune's own error types, and how their messages name a parameter.

Every error a user can cause is raised as a :class:`DLTuneError` whose message names the file,
the key, the value received, the rule and the fix. The CLI prints the message (no traceback) and
exits with status 2. A parameter given a wrong value is also a ``ValueError``
(:class:`InvalidParameterError`), one of a wrong type also a ``TypeError``
(:class:`ParameterTypeError`), as scikit-learn's ``InvalidParameterError`` is: a caller may catch
whichever it knows.

A message names a parameter of the library through :func:`param`, never through a command-line
flag: a Python caller of ``tune(engine="x")`` reads ``engine='x' is not known``, and the command
line, which knows its flags, shows the same error as ``--engine 'x' is not known``
(``DLTuneError.render``). So the library never tells a Python caller about ``--engine``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

# A parameter named inside a message: \x1e name \x1f value-or-shown \x1f kind \x1e. Control
# characters that no message text contains, so a marked message can be concatenated, nested
# and embedded in other messages before it is rendered. Kinds: n (the name alone), v (with a
# value), s (with a placeholder), f (a switch turned on).
_MARK = re.compile("\x1e([^\x1e\x1f]*)\x1f([^\x1e\x1f]*)\x1f([nvsf])\x1e")
_NO_VALUE = object()


def param(name: str, value: Any = _NO_VALUE, *, shown: str | None = None) -> str:
    """Name the parameter `name` in a message: alone (``workers``), with the value received
    (``engine='x'``), or with a placeholder the user should write (``study_name=NEW_NAME``,
    `shown`). The command line renders it as its flag (``--workers``, ``--engine 'x'``,
    ``--study NEW_NAME``)."""
    if shown is not None:
        return f"\x1e{name}\x1f{shown}\x1fs\x1e"
    if value is _NO_VALUE:
        return f"\x1e{name}\x1f\x1fn\x1e"
    return f"\x1e{name}\x1f{value!r}\x1fv\x1e"


def switch(name: str) -> str:
    """Name a yes/no parameter the caller turns on: ``trust_source=True`` to a Python caller,
    the flag alone (``--trust-source``) on the command line."""
    return f"\x1e{name}\x1fTrue\x1ff\x1e"


def python_name(name: str) -> str:
    """How a parameter is named to a Python caller: as the keyword argument."""
    return name


def render(template: str, name_of: Callable[[str], str] = python_name) -> str:
    """`template` with each marked parameter named by `name_of` (the keyword, or a flag)."""

    def one(match: re.Match[str]) -> str:
        name, text, kind = match.groups()
        named = name_of(name)
        if kind == "n":
            return named
        if kind == "f":  # a switch: the flag alone, or the keyword set to True
            return named if named.startswith("-") else f"{named}={text}"
        if named.startswith("-"):  # a flag: --engine 'x', --study NEW_NAME
            return f"{named} {text}"
        return f"{named}={text}"

    return _MARK.sub(one, template)


class DLTuneError(Exception):
    """An error in what the user gave dltune (a file, an option, a value).

    `str(error)` names parameters as Python keywords; `error.render(name_of)` names them as
    the caller's interface does (the CLI passes its flags). `error.template` keeps the marks,
    to embed the message in another error.
    """

    def __init__(self, message: str) -> None:
        self.template = message
        super().__init__(render(message))

    def render(self, name_of: Callable[[str], str] = python_name) -> str:
        return render(self.template, name_of)

    def __reduce__(self) -> tuple[Any, ...]:
        # Across a process boundary (a worker's error) the marks travel too.
        return (type(self), (self.template,))


class InvalidParameterError(DLTuneError, ValueError):
    """A parameter given a value outside its rule (its choices, its range, its form)."""


class ParameterTypeError(InvalidParameterError, TypeError):
    """A parameter given a value of the wrong type (a text for a number, 1 for True); also a
    ValueError, so that one ``except ValueError`` catches every parameter error."""


class SpaceError(DLTuneError):
    """A search space that cannot be parsed or breaks a rule."""


class DataError(DLTuneError):
    """A dataset that cannot be found, read or used."""


class InvalidDataError(DataError, ValueError):
    """Data given in memory that cannot be learned from or used (too few samples, one class, a
    shape that does not hold its features): also a ValueError, as scikit-learn raises."""


class StudyError(DLTuneError):
    """A study or storage that cannot be opened or used as asked."""


class ModelError(DLTuneError):
    """A model folder (train-best's output) that cannot be written, read, exported or used."""


def did_you_mean(value: object, options: Iterable[str]) -> str:
    """Return " did you mean 'x'?" for the closest option, or "" when none is close."""
    matches = difflib.get_close_matches(str(value).lower(), list(options), n=1, cutoff=0.6)
    return f" did you mean '{matches[0]}'?" if matches else ""
