"""Shared fixtures: small datasets that train in milliseconds, and a fresh storage per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist-10k"


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
