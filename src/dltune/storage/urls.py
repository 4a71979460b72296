"""Storage URLs: the default, bare file names accepted, and the one way a URL, or any text
that may quote one, is shown (every password masked). Pure text: imports neither optuna nor
sqlalchemy."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import unquote

DEFAULT_STORAGE = "sqlite:///dltune.db"
MASK = "***"
_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SUFFIXES = (".log", ".journal")

# What a password is, in every form a storage URL or a libpq connection string carries one.
# The rules mask too much rather than too little: a password may hold @ : / ? and spaces, and
# what follows it is only guessed.
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*://"
_STARTS_WITH_URL = re.compile(rf"\s*{_SCHEME}")
# scheme://user:password@host...: the user (SQLAlchemy's [^:/]*, which may hold @, as Azure's
# user@server does), then everything to the text's last @ is the password. SQLAlchemy ends the
# password at its first @ (opening.py refuses a URL it would misread so), so this hides at least
# what any reader takes as the password.
_WHOLE_URL = re.compile(rf"^(\s*{_SCHEME}(?P<user>[^:/]*):)(?P<password>.*)@", re.DOTALL)
# The same inside other text (a message quoting a URL): the URL ends at white space.
_URL_IN_TEXT = re.compile(rf"({_SCHEME}(?P<user>[^:/\s'\"]*):)(?P<password>\S*)@")
# A query parameter whose name says secret (?password=..., &sslpassword=...): its value runs to
# the next & (SQLAlchemy's parse_qsl splits there alone), or to white space inside other text.
_PARAM_IN_URL = re.compile(r"(?P<lead>[?&;])(?P<key>[^=&;#?\s]+)=(?P<value>[^&]*)")
_PARAM_IN_TEXT = re.compile(r"(?P<lead>[?&;])(?P<key>[^=&;#?\s]+)=(?P<value>[^&\s]*)")
# libpq's keyword=value pairs (host=h password=x, password = 'a b', PGPASSWORD=x): a value is
# quoted (backslash escapes inside) or runs to white space; an unclosed quote, to the end.
_KEYWORD = re.compile(
    r"(?:^|(?<=[\s'\"(,{\[]))(?P<key>[A-Za-z_][\w.\-]*)(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:\\.|[^'\\])*(?:'|$)|\"(?:\\.|[^\"\\])*(?:\"|$)|[^\s'\"]\S*)",
    re.DOTALL,
)
# A mapping's item, as Python's repr or JSON prints it: 'password': 'x', "token": "y".
_ITEM = re.compile(
    r"(?P<q>['\"])(?P<key>[^'\"]+)(?P=q)(?P<sep>\s*:\s*)"
    r"(?P<value>'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")"
)
# Names of parameters and keys whose values are secrets (lowercase; a name containing one counts:
# sslpassword, passwd, PGPASSWORD, access_token, aws_secret_access_key).
_SECRET_NAMES = (
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "privatekey",
    "private_key",
    "credential",
)
# dltune's own hints write the form of a URL (postgresql://USER:PASSWORD@HOST:PORT/DB): shown.
_PLACEHOLDER = ("USER", "PASSWORD")


def normalize_url(url: str) -> str:
    """Accept a bare SQLite file name ('studies.db') or journal file name ('study.log') as well
    as a URL."""
    if "://" not in url and url.endswith(_DB_SUFFIXES):
        return f"sqlite:///{url}"
    if "://" not in url and url.endswith(_JOURNAL_SUFFIXES):
        return f"journal:///{url}"
    return url


def display_url(text: str) -> str:
    """`text` as it may be printed, logged or shared (a model card): a storage URL, a libpq
    connection string, or a message that quotes them, with every password masked.

    The one place dltune hides secrets. Masked: the password of scheme://user:password@host
    (also scheme://:password@host, a password holding @ or : or percent-escapes, Azure's
    user@server:password@host), a query parameter named like a secret (?password=, sslpassword,
    passwd, pwd, token, secret, api_key, ...), libpq's password=x and password='a b', and a
    mapping's 'password': 'x'. Idempotent; text without secrets comes back unchanged.
    """
    if not isinstance(text, str):
        text = str(text)
    if _STARTS_WITH_URL.match(text):  # one URL: a password may hold white space there
        whole = _WHOLE_URL.match(text)
        if whole is not None:
            text = _userinfo(whole) + text[whole.end() :]
        text = _PARAM_IN_URL.sub(_param, text)
    text = _URL_IN_TEXT.sub(_userinfo, text)
    text = _PARAM_IN_TEXT.sub(_param, text)
    text = _KEYWORD.sub(_keyword, text)
    return _ITEM.sub(_item, text)


def _secret_name(name: str) -> bool:
    low = unquote(name).strip().lower()
    return any(word in low for word in _SECRET_NAMES)


def _userinfo(match: re.Match[str]) -> str:
    user, password = match["user"], match["password"]
    if not password or password == MASK or (user.strip(), password) == _PLACEHOLDER:
        return match[0]
    return f"{match[1]}{MASK}@"


def _param(match: re.Match[str]) -> str:
    if not _secret_name(match["key"]) or not match["value"]:
        return match[0]
    return f"{match['lead']}{match['key']}={MASK}"


def _keyword(match: re.Match[str]) -> str:
    if not _secret_name(match["key"]) or match["value"] == MASK:
        return match[0]
    return f"{match['key']}{match['eq']}{MASK}"


def _item(match: re.Match[str]) -> str:
    if not _secret_name(match["key"]):
        return match[0]
    quote = match["value"][0]
    return f"{match['q']}{match['key']}{match['q']}{match['sep']}{quote}{MASK}{quote}"


def masked_repr(obj: Any) -> str:
    """The repr of the dataclass `obj` with its values' secrets masked (display_url): what a
    notebook shows of a result, a settings object or a storage that holds a URL."""
    shown = []
    for item in dataclasses.fields(obj):
        if item.repr:
            value = _masked(getattr(obj, item.name))
            shown.append(f"{item.name}={display_url(repr(value))}")
    return f"{type(obj).__qualname__}({', '.join(shown)})"


def _masked(value: Any) -> Any:
    """`value` with each string in it (through lists, tuples and dicts) as display_url shows it."""
    if isinstance(value, str):
        return display_url(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_masked(v) for v in value) if type(value) in (list, tuple) else value
    if type(value) is dict:
        return {k: _masked(v) for k, v in value.items()}
    return value


def misread_password(url: str) -> bool:
    """Whether SQLAlchemy would read `url`'s password wrongly: it ends a password at its first
    @, so a raw @ in it puts the password's rest in the host, the port or the database's name,
    and from there into the driver's error messages."""
    found = re.match(r"[\w+]+://[^:/]*:[^@]*@(?P<after>[^?]*)", url)
    return found is not None and "@" in found["after"]


def journal_path(url: str) -> str:
    """The file of a journal URL: `journal:///study.log` (relative, as SQLite's URLs are) or
    `journal:////shared/study.log` (absolute)."""
    return url.split(":///", 1)[1] if ":///" in url else url.split("://", 1)[1]
