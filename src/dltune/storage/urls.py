"""Storage URLs: the default, bare file names accepted, and the one way a URL is printed (its
password masked). Pure text: imports neither optuna nor sqlalchemy."""

from __future__ import annotations

import re

DEFAULT_STORAGE = "sqlite:///dltune.db"
_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SUFFIXES = (".log", ".journal")
# scheme://user:password@host...: what stands between the user's colon and the last @ before
# the host is the password (it may itself hold @ and :).
_CREDENTIALS = re.compile(
    r"^(?P<scheme>[^:/]+://)(?P<user>[^:/@]*):(?P<password>.*)@(?P<host>[^@]*)$"
)


def normalize_url(url: str) -> str:
    """Accept a bare SQLite file name ('studies.db') or journal file name ('study.log') as well
    as a URL."""
    if "://" not in url and url.endswith(_DB_SUFFIXES):
        return f"sqlite:///{url}"
    if "://" not in url and url.endswith(_JOURNAL_SUFFIXES):
        return f"journal:///{url}"
    return url


def display_url(url: str) -> str:
    """`url` as it may be printed or shared (a model card): its password, if any, masked."""
    match = _CREDENTIALS.match(url)
    if match is None or not match["password"]:
        return url
    return f"{match['scheme']}{match['user']}:***@{match['host']}"


def journal_path(url: str) -> str:
    """The file of a journal URL: `journal:///study.log` (relative, as SQLite's URLs are) or
    `journal:////shared/study.log` (absolute)."""
    return url.split(":///", 1)[1] if ":///" in url else url.split("://", 1)[1]
