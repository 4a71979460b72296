"""What several test files share: the command line run in this process or as a real one, the
tiny space the CLI tests train, a configuration maker, and the require-or-skip rule for what a
machine may lack (a browser, Ray, PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A tiny space that trains in a fraction of a second per trial (digits).
SMALL_SPACE = """\
layers: [1, 2]
units: [16, 32]
activation: [relu, tanh]
optimizer: [adam, sgd]
lr: {low: 1.0e-3, high: 0.3, log: true}
batch_size: [32, 64]
epochs: 3
"""


@dataclass
class Ran:
    """What a command gave: its exit status and what it printed, split as a shell sees it."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _working_folder(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def dltune(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Ran:
    """`dltune ARGS` in `cwd`, in this process (click's runner): no interpreter to start, no
    torch to import again. What a test of the command's behaviour needs."""
    from click.testing import CliRunner

    from dltune.cli import main

    with _working_folder(cwd):
        result = CliRunner().invoke(main, list(args), env={"COLUMNS": "200", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash, not an exit: show its traceback
    return Ran(result.exit_code, result.stdout, result.stderr)


def dltune_process(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m dltune.cli ARGS` as a real process: for what needs one (start-up, signals,
    several processes on one storage)."""
    return subprocess.run(
        [sys.executable, "-m", "dltune.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def dltune_command(*args: str) -> list[str]:
    """The argument list of `python -m dltune.cli ARGS`, to start with Popen."""
    return [sys.executable, "-m", "dltune.cli", *args]


def require_or_skip(missing: str | None, required_by: str) -> None:
    """Skip when `missing` names what this machine lacks, unless the environment variable
    `required_by` is 1 (CI), where a missing piece fails the test instead."""
    if missing is None:
        return
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1 but {missing}")
    pytest.skip(missing)


def make_config(**changes: Any) -> Any:
    """A small configuration of the dense network (1 x 32 relu, Adam, 5 epochs), changed."""
    from dltune.config import Config

    base = Config(
        layers=1,
        units=(32,),
        dropout=0.0,
        activation="relu",
        loss="categorical_crossentropy",
        optimizer="adam",
        learning_rate=1e-2,
        weight_decay=0.0,
        batch_size=32,
        epochs=5,
    )
    return base.replace(**changes)
