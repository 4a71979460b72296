"""What several test files share: the command line run in this process or as a real one, the
tiny space the CLI tests train (and its dict for tune()), small image data, a configuration
maker, and the require-or-skip rule for what a machine may lack (a browser, Ray, PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
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


# The same space as tune() takes it (a dict), with `changes` (its epochs, say)
def small_space(**changes: Any) -> dict[str, Any]:
    return {
        "layers": [1, 2],
        "units": [16, 32],
        "activation": ["relu", "tanh"],
        "optimizer": ["adam", "sgd"],
        "loss": "categorical_crossentropy",
        "learning_rate": {"low": 1e-3, "high": 0.3, "log": True},
        "batch_size": [32, 64],
        "epochs": 3,
        **changes,
    }


def bright_rows(n: int, seed: int) -> Any:
    """`n` noisy 8x8 images (1x8x8) of three classes, a bright row per class."""
    import numpy as np

    from dltune.data import from_arrays

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0, 1, size=(n, 1, 8, 8)).astype(np.float32)
    x[np.arange(n), 0, 2 * y, :] += 2.0
    data = from_arrays(x.reshape(n, -1), y, name="rows", seed=0)
    data.set_input_shape((1, 8, 8))
    return data


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


def default_signals() -> None:
    """Signals as a user's terminal gives them to a new process: SIGINT and SIGTERM at their
    defaults, none blocked. A test process (an xdist worker) may have inherited them ignored or
    blocked from whatever started it or ran in it before (a SIGINT blocked there, inherited
    across fork and exec, made a Ctrl-C test's driver never see its Ctrl-C); the processes a
    test starts and signals must not depend on that. Call it in the child (Popen's preexec_fn,
    or first thing after a fork)."""
    import signal

    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a forked child runs Python on: its KeyboardInterrupt handler; an exec'd one installs it
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


class Forked:
    """`dltune ARGS` in a process of its own, forked from this one (so started in milliseconds,
    with torch already imported): a real process, with its own storage connections, that a
    test may run beside others or kill. Its output goes to files in `cwd`."""

    def __init__(
        self,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        netns: str | None = None,
    ) -> None:
        """`netns`: the network namespace (made by `ip netns add`) the child joins first."""
        import multiprocessing

        _warm()  # imported once here, not again in every child
        self.out, self.err = cwd / f"forked-{id(self)}.out", cwd / f"forked-{id(self)}.err"
        context = multiprocessing.get_context("fork")
        self.process = context.Process(
            target=_forked_main,
            args=(list(args), cwd, env or {}, self.out, self.err, netns),
        )
        self.process.start()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def wait(self, timeout: float) -> Ran:
        """Its exit status and output, once it has ended (killed if still running at timeout)."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(30)
            raise AssertionError(f"`dltune` still running after {timeout} s: killed")
        return Ran(self.process.exitcode or 0, self.out.read_text(), self.err.read_text())


def _join_network_namespace(name: str) -> None:
    """setns(2) into /run/netns/NAME, as `ip netns exec NAME` does before it runs a command."""
    import ctypes

    clone_newnet = 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, clone_newnet) != 0:
            raise OSError(ctypes.get_errno(), f"setns into network namespace {name}")
    finally:
        os.close(fd)


def _warm() -> None:
    """What every `dltune run` imports: torch, its compiler front (which torch.optim imports
    on first use, seconds), the engines, the study loop, Optuna's samplers, scikit-learn."""
    import optuna.samplers  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import torch._dynamo  # noqa: F401

    import dltune.cli.run
    import dltune.engine.sequential
    import dltune.study.tuning  # noqa: F401


def _forked_main(
    args: list[str], cwd: Path, env: dict[str, str], out: Path, err: Path, netns: str | None
) -> None:
    import torch

    default_signals()
    if netns is not None:
        _join_network_namespace(netns)
    # One thread: the parent's OpenMP threads did not survive the fork, and a single-threaded
    # torch never asks for them.
    torch.set_num_threads(1)
    os.chdir(cwd)
    os.environ.update({"COLUMNS": "200", **env})
    with open(out, "w") as stdout, open(err, "w") as stderr:
        os.dup2(stdout.fileno(), 1)
        os.dup2(stderr.fileno(), 2)
        sys.stdout, sys.stderr = stdout, stderr
        from dltune.cli import main

        try:
            main(args)
        except SystemExit:
            raise
        except BaseException:
            # into the err file: multiprocessing prints an escaping error only after this
            # block has closed it, and the test would see an exit status of 1 and no reason
            traceback.print_exc()
            raise


def assert_curves_unbroken(study: Any, threads: int | None = None) -> None:
    """Every finished trial's curve equals its configuration trained from its seed without a
    stop (bit for bit: the sequential engine on a CPU)."""
    import torch

    from dltune.data import load_data
    from dltune.engine import SequentialTrainer
    from dltune.storage import schema

    meta = schema.read_study_meta(study)
    trainer = SequentialTrainer(
        load_data("digits"), metric=meta["metric"], shuffle_seed=int(meta["shuffle_seed"])
    )
    before = torch.get_num_threads()
    if threads is not None:  # as many as the process that trained them (Forked: one)
        torch.set_num_threads(threads)
    try:
        checked = _retrain_each(study, trainer)
    finally:
        torch.set_num_threads(before)
    assert checked


def _retrain_each(study: Any, trainer: Any) -> int:
    """Train every finished trial again alone; assert its curve is the stored one."""
    import optuna

    from dltune.config import Config
    from dltune.storage import read_trial

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    checked = 0
    for frozen in study.get_trials(states=finished):
        record = read_trial(frozen)
        curve = [frozen.intermediate_values[e] for e in sorted(frozen.intermediate_values) if e]
        if not curve:
            continue
        alone = trainer.train(
            Config.from_dict(record.config), seed=int(record.seed), epochs=len(curve)
        )
        assert [r.val_metric for r in alone.history] == curve, frozen.number
        checked += 1
    return checked
