"""The command line: it only translates. Each command turns its options into one call of the
library and prints what comes back; a DLTuneError is printed as one line, its parameter names
shown as the command's flags, and exits with status 2, without a traceback.

One module per command family; common.py holds the console and the shared options,
tables.py every table, display.py the live displays of a study or sweep running. Imports
the library, never the other way round; heavy modules (torch, optuna) are imported inside the
commands that need them, so that `dltune --help` and `dltune space --show` start fast.
"""

from __future__ import annotations

import click

from ..version import __version__
from .model import export, predict, train_best
from .report import dashboard, report
from .run import run
from .space import space
from .studies import best, studies, trials
from .sweep import sweep


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dltune")
def main() -> None:
    """Tune the hyperparameters of neural networks (dense, convolutional, your own PyTorch or
    Keras model), and explain the result."""


for command in (run, best, trials, studies, report, dashboard, space, train_best, export, predict):
    main.add_command(command)
main.add_command(sweep)

__all__ = ["main"]
