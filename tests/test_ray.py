"""`dltune run --ray` on a real local Ray cluster of two nodes (a head and one more), inside a
network namespace of the test's own so that all traffic stays on loopback (../shared/GUIDE.md):
a study completes across both nodes, and survives a worker killed mid-study.

Needs root, `ip` and Ray (the extra dltune[ray]); skipped otherwise, unless DLTUNE_REQUIRE_RAY=1
(CI), where a missing piece fails instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from .helpers import SMALL_SPACE

PORT = 6391
pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and `ip` for a network namespace"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'dltune[ray]')"
    return None


@pytest.fixture(scope="module")
def cluster():
    missing = _missing()
    if missing:
        if os.environ.get("DLTUNE_REQUIRE_RAY") == "1":
            pytest.fail(f"DLTUNE_REQUIRE_RAY=1 but {missing}")
        pytest.skip(missing)
    ns = f"dltune-{uuid.uuid4().hex[:8]}"
    ray = str(Path(sys.executable).with_name("ray"))

    def inside(*command: str, **kwargs):
        return ["ip", "netns", "exec", ns, *command]

    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(inside("ip", "link", "set", "lo", "up"), check=True)
        common = ["--num-cpus=1", "--disable-usage-stats"]
        head = [ray, "start", "--head", f"--port={PORT}", "--include-dashboard=false", *common]
        subprocess.run(inside(*head), check=True, capture_output=True, timeout=120)
        node = [ray, "start", f"--address=127.0.0.1:{PORT}", *common]
        subprocess.run(inside(*node), check=True, capture_output=True, timeout=120)
        yield inside
    finally:
        subprocess.run(inside(ray, "stop", "--force"), capture_output=True, timeout=120)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def states(db: Path) -> list[str]:
    try:
        with sqlite3.connect(db, timeout=30) as connection:
            return [row[0] for row in connection.execute("SELECT state FROM trials")]
    except sqlite3.OperationalError:  # the file exists, Optuna's tables not yet
        return []


def dltune_run(inside, tmp_path: Path, trials: int, epochs: int = 3) -> list[str]:
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_SPACE.replace("epochs: 3", f"epochs: {epochs}"))
    return inside(
        sys.executable,
        "-m",
        "dltune.cli",
        "run",
        str(space),
        "--trials",
        str(trials),
        "--seed",
        "0",
        "--ray",
        f"127.0.0.1:{PORT}",
        "--storage",
        f"sqlite:///{tmp_path}/r.db",
    )


def test_a_study_completes_across_both_nodes(cluster, tmp_path):
    run = subprocess.run(
        dltune_run(cluster, tmp_path, 8), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "2 workers" in run.stdout  # one actor per CPU: one on each node
    final = states(tmp_path / "r.db")
    assert len(final) == 8 and set(final) <= {"COMPLETE", "PRUNED"}


def test_a_worker_killed_mid_study_and_the_study_still_completes(cluster, tmp_path):
    driver = subprocess.Popen(
        dltune_run(cluster, tmp_path, 16, epochs=9),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    db = tmp_path / "r.db"
    deadline = time.monotonic() + 180
    while not (db.exists() and sum(s != "RUNNING" for s in states(db)) >= 3):
        assert driver.poll() is None and time.monotonic() < deadline, "the study never got going"
        time.sleep(0.3)
    workers = subprocess.run(
        ["pgrep", "-f", "ray::TrialWorker"], capture_output=True, text=True
    ).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[0]), signal.SIGKILL)  # mid-epoch: the actor trains all the time
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output
    final = states(db)
    assert len(final) == 16
    assert set(final) <= {"COMPLETE", "PRUNED"}  # none left running, none failed


@pytest.mark.parametrize("address", ["127.0.0.1:1", "not-an-address"])
def test_an_unreachable_or_malformed_ray_address_is_a_clear_error_not_a_hang(tmp_path, address):
    space = tmp_path / "small.yaml"
    space.write_text(SMALL_SPACE)
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "dltune.cli", "run", str(space), "--trials", "1", "--ray", address],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "--ray" in run.stderr and "Traceback" not in run.stderr
    assert time.monotonic() - started < 60
