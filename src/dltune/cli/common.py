"""What every command shares: the console, turning dltune's errors into one line and exit
status 2 (with the library's parameter names shown as this command's flags), and the options
several commands take, written once: tune()'s parameters as options whose types, metavars and
help come from the library's parameter table (dltune.study.parameters)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from ..errors import DLTuneError, render
from ..storage.urls import DEFAULT_STORAGE, display_url
from ..study import parameters as table

F = TypeVar("F", bound=Callable[..., Any])
FLAGS = {"study_name": "--study"}  # tune's parameters whose flag is not --name


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    # soft_wrap: plain lines (logs, pipes) are not folded at 80 columns; tables still fit.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def quiet_optuna() -> None:
    """The command line's own choice (not the library's): Optuna's info lines off."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def flag_of(name: str) -> str:
    """The flag of the running command that sets the library's parameter `name` (its first
    spelling: -o for output), or --name for a parameter the command does not take."""
    context = click.get_current_context(silent=True)
    if context is not None:
        for option in context.command.params:
            if option.name == name and isinstance(option, click.Option):
                return option.opts[0]
    return "--" + name.replace("_", "-")


def user_errors(func: F) -> F:
    """Turn dltune's own errors into a message and exit status 2 (no traceback); a password
    the message quotes (a URL, a connection string, a driver's words) is masked."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DLTuneError as exc:
            click.echo(f"error: {display_url(exc.render(flag_of))}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def flag_for(name: str) -> str:
    """The flag of tune's parameter `name` on every command that takes it."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def help_for(name: str) -> str:
    """The table's help of tune's parameter `name`, other parameters named as flags."""
    return render(table.parameter(name).help, flag_for)


class WholeOrWords(click.ParamType):
    """A whole number of at least `low`, or one of `words` (workers: auto)."""

    def __init__(self, low: int | None, words: tuple[str, ...]) -> None:
        self.low, self.words = low, words
        self.name = "|".join(("N", *words))

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif str(value).strip().lower() in self.words:
            return str(value).strip().lower()
        else:
            try:
                number = int(value)
            except ValueError:
                words = " nor ".join(self.words)
                self.fail(f"{value!r} is neither a whole number nor {words}", param, ctx)
        if self.low is not None and number < self.low:
            self.fail(f"{number} is not at least {self.low} (or give {self.words[0]})", param, ctx)
        return number


def click_kind(entry: table.Parameter) -> dict[str, Any]:
    """The click type (and metavar) that reads a parameter as its table entry declares it.
    Forms (a size, a shape, a rule) stay text: the library reads them and says what is wrong,
    and a switch's spelling (--x/--no-x, on|off) is the command's own."""
    kind: dict[str, Any] = {}
    if isinstance(entry, table.Choice):
        kind["type"] = click.Choice(entry.choices)
    elif isinstance(entry, table.WholeNumber) and entry.words:
        kind["type"] = WholeOrWords(entry.low, entry.words)
    elif isinstance(entry, table.WholeNumber):
        kind["type"] = click.IntRange(min=entry.low)
    elif isinstance(entry, table.Number):
        kind["type"] = click.FloatRange(min=entry.low, min_open=entry.open)
    if entry.metavar is not None:
        kind["metavar"] = entry.metavar
    return kind


def tune_option(name: str, *decls: str, **extra: Any) -> Callable[[F], F]:
    """The option of tune's parameter `name`: its type, metavar and help from the parameter
    table; `decls` (the flag and its Python name: --study study_name) and `extra` (a default,
    show_default, a command's own type) as the command wants them."""
    entry = table.parameter(name)
    options = {"help": help_for(name), **click_kind(entry), **extra}
    return click.option(*(decls or (flag_for(name), name)), **options)


def storage_option(func: F) -> F:
    """--storage URL, the SQLite file in the working folder by default."""
    return tune_option("storage", default=DEFAULT_STORAGE, show_default=True)(func)


def study_option(func: F) -> F:
    """--study NAME of a stored study, the most recent by default."""
    return click.option("--study", "study_name", help="Study name [default: the most recent].")(
        func
    )


def data_options(data_help: str = "", default: str | None = "digits") -> Callable[[F], F]:
    """--data, --target, --task, --data-dir and --shape: which data, and how to read them.
    `default` None: the command picks (and `data_help` says how)."""

    def decorate(func: F) -> F:
        for option in reversed(
            [
                tune_option(
                    "data",
                    default=default,
                    show_default=default is not None,
                    help=help_for("data") + (f" {data_help}" if data_help else "") + ".",
                ),
                tune_option("target"),
                tune_option("task"),
                tune_option("data_dir", type=click.Path(file_okay=False)),
                shape_option(),
            ]
        ):
            func = option(func)
        return func

    return decorate


def shape_option() -> Callable[[F], F]:
    """--shape C,L or C,H,W (the text load_data's `shape` reads)."""
    return tune_option("shape")


def device_option(func: F) -> F:
    """--device: auto, cpu or cuda (the library's default)."""
    from ..devices import DEFAULT_DEVICE

    return tune_option("device", default=DEFAULT_DEVICE, show_default=True)(func)


def trust_source_option(what: str) -> Callable[[F], F]:
    """--trust-source: import the build(hp) a model folder or a stored study names (`what`)."""
    return click.option(
        "--trust-source",
        is_flag=True,
        default=False,
        help=f"Import and run the Python build(hp) that {what} names, to rebuild its network "
        "(its file's sha256 checked first). Only for a source you trust: it is code. Without "
        "it, such a build is refused; dltune's own networks never import anything.",
    )


ON_OFF = ("on", "off")  # a switch written as a word: --ensemble on|off


class OnOff(click.ParamType):
    """on or off, read as True or False."""

    name = "|".join(ON_OFF)

    def convert(self, value: Any, param: Any, ctx: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ON_OFF:
            self.fail(f"{value!r} is neither on nor off", param, ctx)
        return text == ON_OFF[0]


def open_storage(url: str) -> Any:
    """The storage of --storage, opened once for the command (a dltune.storage.Storage)."""
    from ..storage import Storage

    return Storage.open(url)
