"""What every command shares: the console, turning dltune's errors into one line and exit
status 2 (with the library's parameter names shown as this command's flags), and the options
several commands take, written once."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from ..errors import DLTuneError
from ..storage.urls import DEFAULT_STORAGE, display_url

F = TypeVar("F", bound=Callable[..., Any])

STORAGE_HELP = (
    "Optuna storage URL: sqlite:///FILE.db (one machine), postgresql://USER:PASSWORD@HOST/DB "
    "(many machines), journal:///FILE.log (a shared file system)."
)


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


def storage_option(func: F) -> F:
    """--storage URL, the SQLite file in the working folder by default."""
    return click.option("--storage", default=DEFAULT_STORAGE, show_default=True, help=STORAGE_HELP)(
        func
    )


def study_option(func: F) -> F:
    """--study NAME of a stored study, the most recent by default."""
    return click.option("--study", "study_name", help="Study name [default: the most recent].")(
        func
    )


def data_options(data_help: str = "", default: str | None = "digits") -> Callable[[F], F]:
    """--data, --target, --task, --data-dir and --shape: which data, and how to read them.
    `default` None: the command picks (and `data_help` says how)."""
    from ..vocabulary import TASKS

    def decorate(func: F) -> F:
        for option in reversed(
            [
                click.option(
                    "--data",
                    default=default,
                    show_default=default is not None,
                    help="digits, mnist, a folder of IDX files, or a .csv/.parquet/.npz file"
                    + (f" {data_help}" if data_help else "")
                    + ".",
                ),
                click.option("--target", help="The target column of a .csv or .parquet file."),
                click.option(
                    "--task",
                    type=click.Choice(TASKS),
                    help="Override the task told from the target.",
                ),
                click.option(
                    "--data-dir",
                    type=click.Path(file_okay=False),
                    help="Where local copies of downloadable data live (or DLTUNE_DATA_DIR).",
                ),
                shape_option(),
            ]
        ):
            func = option(func)
        return func

    return decorate


SHAPE_HELP = (
    "The shape of one example: C,L (a signal of C channels) or C,H,W (an image), its product "
    "the number of features; reshapes flat rows (.csv, .parquet, a 2-D .npz x) or any data "
    "[default: the data's own: digits 1,8,8, IDX images 1,H,W, a .npz x's axes past the first; "
    "a continued study's own]."
)


def shape_option() -> Callable[[F], F]:
    """--shape C,L or C,H,W (the text load_data's `shape` reads)."""
    return click.option("--shape", metavar="C,L|C,H,W", help=SHAPE_HELP)


def device_option(func: F) -> F:
    """--device: auto, cpu or cuda (the library's default)."""
    from ..devices import DEFAULT_DEVICE

    return click.option(
        "--device", default=DEFAULT_DEVICE, show_default=True, help="auto, cpu or cuda."
    )(func)


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
