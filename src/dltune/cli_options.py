"""Options shared by several commands, written once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

STORAGE_HELP = (
    "Optuna storage URL: sqlite:///FILE.db (one machine), postgresql://USER:PASSWORD@HOST/DB "
    "(many machines), journal:///FILE.log (a shared file system)."
)


def storage_option(func: F) -> F:
    """--storage URL, the SQLite file in the working folder by default."""
    from .storage import DEFAULT_STORAGE

    return click.option("--storage", default=DEFAULT_STORAGE, show_default=True, help=STORAGE_HELP)(
        func
    )


def data_options(data_help: str = "", default: str | None = "digits") -> Callable[[F], F]:
    """--data, --target, --task and --data-dir: which data, and how to read them. `default`
    None: the command picks (and `data_help` says how)."""

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
                    type=click.Choice(["classification", "regression"]),
                    help="Override the task told from the target.",
                ),
                click.option(
                    "--data-dir",
                    type=click.Path(file_okay=False),
                    help="Where local copies of downloadable data live (or DLTUNE_DATA_DIR).",
                ),
            ]
        ):
            func = option(func)
        return func

    return decorate
