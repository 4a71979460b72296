"""`dltune run --ray` on a real local Ray cluster of two nodes (a head and one more), inside a
network namespace of the test's own so that all traffic stays on loopback (../shared/GUIDE.md):
one study runs across both nodes and survives a worker killed mid-study; and a bad address is a
clear error at once (no cluster needed: in this process).

The cluster test needs root, `ip` and Ray (the extra dltune[ray]); skipped otherwise, unless
DLTUNE_REQUIRE_RAY=1 (CI), where a missing piece fails instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import SMALL_SPACE, Forked, dltune, require_or_skip

PORT = 6391
TRIALS = 16
START_S = 120  # one `ray start`: seconds at most
STUDY_S = 300  # the whole study: seconds at most

FINISHED = ("COMPLETE", "PRUNED")


def _missing() -> str | None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and `ip` for a network namespace"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'dltune[ray]')"
    return None


def _pids_in(ns: str) -> set[int]:
    """Every process in network namespace `ns`: the cluster, its workers, the driver."""
    listed = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30
    ).stdout
    return {int(pid) for pid in listed.split()}


def _kill_all_in(ns: str, within: float = 30) -> None:
    """SIGKILL every process in `ns` (what `ray stop --force` sends, but only to this test's
    cluster, and without its start-up and waits), until none is left."""
    deadline = time.monotonic() + within
    while pids := _pids_in(ns):
        assert time.monotonic() < deadline, f"processes {sorted(pids)} outlived SIGKILL"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


@dataclass
class Namespace:
    """A network namespace: the command lines that run in it, the processes that do."""

    name: str

    def inside(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def pids(self) -> set[int]:
        return _pids_in(self.name)


@pytest.fixture
def cluster() -> Iterator[Namespace]:
    """A head and one more node, one CPU each, in a fresh namespace with only loopback; its
    own Ray folder (sessions, logs, sockets), removed at the end."""
    require_or_skip(_missing(), "DLTUNE_REQUIRE_RAY")
    ns = f"dltune-{uuid.uuid4().hex[:8]}"
    inside = Namespace(ns).inside
    ray = str(Path(sys.executable).with_name("ray"))
    folder = tempfile.mkdtemp(prefix="dltune-ray-", dir="/tmp")  # short: Unix socket paths
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        subprocess.run(inside("ip", "link", "set", "lo", "up"), check=True, timeout=30)
        # no log monitor: the driver does not stream the workers' logs (log_to_driver=False)
        common = ["--num-cpus=1", "--disable-usage-stats", "--include-log-monitor=false"]
        head = [ray, "start", "--head", f"--port={PORT}", f"--temp-dir={folder}"]
        subprocess.run(
            inside(*head, "--include-dashboard=false", *common),
            check=True,
            capture_output=True,
            timeout=START_S,
        )
        node = [ray, "start", f"--address=127.0.0.1:{PORT}", *common]  # the head's folder
        subprocess.run(inside(*node), check=True, capture_output=True, timeout=START_S)
        yield Namespace(ns)
    finally:
        try:
            _kill_all_in(ns)
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            shutil.rmtree(folder, ignore_errors=True)


def states(db: Path) -> list[str]:
    try:
        with sqlite3.connect(db, timeout=30) as connection:
            return [row[0] for row in connection.execute("SELECT state FROM trials")]
    except sqlite3.OperationalError:  # the file exists, Optuna's tables not yet
        return []


@pytest.mark.slow
def test_a_study_runs_across_both_nodes_and_survives_a_worker_killed_mid_study(cluster, tmp_path):
    """One driver, one study of 16 trials on the two nodes' two actors ("2 workers"); once
    three trials have finished, one actor is SIGKILLed mid-epoch (the actors train all the
    time); the study still completes: every trial COMPLETE or PRUNED, none running or failed."""
    (tmp_path / "small.yaml").write_text(SMALL_SPACE.replace("epochs: 3", "epochs: 9"))
    db = tmp_path / "r.db"
    run = ["run", "small.yaml", "--trials", str(TRIALS), "--seed", "0"]
    run += ["--ray", f"127.0.0.1:{PORT}", "--storage", f"sqlite:///{db}"]
    # a real process in the namespace, forked from this one (torch already imported)
    driver = Forked(*run, cwd=tmp_path, netns=cluster.name)
    try:
        deadline = time.monotonic() + STUDY_S
        while (done := sum(s in FINISHED for s in states(db))) < 3:
            assert driver.alive(), f"the driver ended early:\n{driver.out.read_text()}"
            assert time.monotonic() < deadline, "the study never got going"
            time.sleep(0.2)
        assert done < TRIALS, "the study ended before the kill"  # mid-study
        listed = subprocess.run(
            ["pgrep", "-f", "ray::TrialWorker"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        workers = sorted(int(pid) for pid in listed if int(pid) in cluster.pids())
        assert len(workers) == 2, workers  # one actor per CPU: one on each node
        os.kill(workers[0], signal.SIGKILL)  # mid-epoch: the actor trains all the time
        ran = driver.wait(timeout=STUDY_S)
    finally:
        if driver.alive():
            driver.process.kill()
            driver.process.join(30)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output
    assert "2 workers" in output, output  # the study started on both nodes' actors
    note = re.search(r"2 workers \(([^)]*)\)", output)  # "(host:pid, host:pid)"
    assert note is not None, output
    assert sorted(int(w.rpartition(":")[2]) for w in note[1].split(", ")) == workers, output
    final = states(db)
    assert len(final) == TRIALS
    assert set(final) <= set(FINISHED)  # none left running, none failed


@pytest.mark.parametrize("address", ["127.0.0.1:1", "not-an-address"])
def test_an_unreachable_or_malformed_ray_address_is_a_clear_error_not_a_hang(tmp_path, address):
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    started = time.monotonic()
    run = dltune("run", "small.yaml", "--trials", "1", "--ray", address, cwd=tmp_path)
    assert run.returncode == 2
    assert "--ray" in run.stderr and "Traceback" not in run.stderr
    assert time.monotonic() - started < 60
