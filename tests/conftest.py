"""Shared fixtures: small datasets that train in milliseconds, a fresh storage per test, and one
study trained once per session (copied for each test that reads it)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from .helpers import SMALL_SPACE, Ran, dltune

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist-10k"


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist every core already runs a worker: one torch thread each, rather than
    # every worker's threads fighting over every core.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def blobs():
    """Three well-separated Gaussian classes in 8 dimensions (a problem any sane net solves)."""
    from dltune.data import from_arrays

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 8))
    y = rng.integers(0, 3, size=600)
    x = centers[y] + rng.normal(0, 1, size=(600, 8))
    return from_arrays(x.astype(np.float32), y, name="blobs", seed=0)


@pytest.fixture(scope="session")
def linear_regression():
    """y = x @ w + noise, with a target far from zero mean and unit scale."""
    from dltune.data import from_arrays

    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 5)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0, 0.0]) * 10 + 100 + rng.normal(0, 1, 500)
    return from_arrays(x, y.astype(np.float32), name="linreg", task="regression", seed=0)


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SPACE)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ran]:
    """`dltune run small.yaml --trials 4 --seed 0` on digits, once per session: its folder
    (small.yaml, dltune.db holding study 'small-digits') and what the command printed."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "small.yaml").write_text(SMALL_SPACE)
    ran = dltune("run", "small.yaml", "--trials", "4", "--seed", "0", "--cv", "holdout", cwd=folder)
    assert ran.returncode == 0, ran.stderr
    return folder, ran


@pytest.fixture
def trained_copy(trained: tuple[Path, Ran], tmp_path: Path) -> Path:
    """A folder of this test's own holding a copy of the session's trained study (dltune.db,
    small.yaml): the test may add to it or break it."""
    source, _ = trained
    with (
        sqlite3.connect(source / "dltune.db") as src,
        sqlite3.connect(tmp_path / "dltune.db") as to,
    ):
        src.backup(to)  # consistent even while the write-ahead log holds the last writes
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    return tmp_path
