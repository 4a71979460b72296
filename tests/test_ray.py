"""`dltune run --ray` on a real local Ray cluster of two nodes (a head and one more), inside a
network namespace of the test's own so that all traffic stays on loopback (../shared/GUIDE.md):
one study runs across both nodes, each node's actor training a population of trials at once,
and survives a worker killed mid-study; which actors a cluster gets (placement.py, no cluster
needed); and a bad address is a clear error at once (no cluster needed: in this process).

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

from dltune.distributed.placement import ActorPlan, plan_actors
from dltune.errors import StudyError

from .helpers import SMALL_SPACE, Forked, dltune, require_or_skip

PORT = 6391
TRIALS = 16
POPULATION = 3  # trials each node's actor trains at once
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


def stored(db: Path) -> list[tuple[str, int, int]]:
    """Per trial: its state, how many values and parameters storage holds for it."""
    with sqlite3.connect(db, timeout=30) as connection:
        return list(
            connection.execute(
                "SELECT t.state, (SELECT COUNT(*) FROM trial_values v WHERE v.trial_id = "
                "t.trial_id), (SELECT COUNT(*) FROM trial_params p WHERE p.trial_id = "
                "t.trial_id) FROM trials t"
            )
        )


@pytest.mark.slow
def test_a_study_runs_across_both_nodes_and_survives_a_worker_killed_mid_study(cluster, tmp_path):
    """One driver, one study of 16 trials on the two nodes' two population actors, 3 trials
    each at once ("2 workers, 6 trials at once"); once three trials have finished, one actor
    is SIGKILLed mid-epoch (the actors train all the time); its trials restart on the other
    and the study still completes: every trial COMPLETE or PRUNED, none running or failed,
    each complete one stored with its value and parameters."""
    (tmp_path / "small.yaml").write_text(SMALL_SPACE.replace("epochs: 3", "epochs: 9"))
    db = tmp_path / "r.db"
    run = ["run", "small.yaml", "--trials", str(TRIALS), "--seed", "0"]
    run += ["--ray", f"127.0.0.1:{PORT}", "--storage", f"sqlite:///{db}"]
    run += ["--engine", "population", "--population", str(POPULATION)]
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
        assert len(workers) == 2, workers  # one population actor per node
        os.kill(workers[0], signal.SIGKILL)  # mid-epoch: the actor trains all the time
        ran = driver.wait(timeout=STUDY_S)
    finally:
        if driver.alive():
            driver.process.kill()
            driver.process.join(30)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output
    # the study started on both nodes' actors, a population of 3 each
    assert f"2 workers, {2 * POPULATION} trials at once" in output, output
    placed = re.findall(r"\S+:(\d+) \(a population of (\d+), cpu, 1 thread\)", output)
    assert sorted(int(pid) for pid, _ in placed) == workers, output
    assert {int(slots) for _, slots in placed} == {POPULATION}, output
    # each actor trained several trials at once (its largest advance call)
    peaks = re.search(r"the most trials each trained at once: \S+:\d+ (\d+), \S+:\d+ (\d+)", output)
    assert peaks is not None, output
    assert all(2 <= int(p) <= POPULATION for p in peaks.groups()), output
    assert re.search(r"\d+ trials restarted from scratch after their Ray worker died", output)
    final = stored(db)
    assert len(final) == TRIALS
    assert {state for state, _, _ in final} <= set(FINISHED)  # none left running, none failed
    complete = [(values, params) for state, values, params in final if state == "COMPLETE"]
    assert complete, output
    assert all(values == 1 and params > 0 for values, params in complete), final


NODE = {"NodeID": "a", "Alive": True, "Resources": {"CPU": 8.0, "memory": 1e9}}
GPU_NODE = {"NodeID": "g", "Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}}
DEAD = {"NodeID": "d", "Alive": False, "Resources": {"CPU": 4.0}}


def test_each_node_gets_one_population_actor_with_all_its_cpus_or_one_per_gpu():
    plans = plan_actors([NODE, GPU_NODE, DEAD], device="auto", population=5, memory="4GB")
    assert plans == [
        ActorPlan("a", "population", "cpu", 8.0, 0, 8, 5, "4GB", 1),
        # the node's memory budget split between its two GPUs' actors, its CPUs too
        ActorPlan("g", "population", "cuda", 8.0, 1, 8, 5, "4GB", 2),
        ActorPlan("g", "population", "cuda", 8.0, 1, 8, 5, "4GB", 2),
    ]
    assert sum(p.slots for p in plans) == 15  # the driver's slots
    # an automatic budget is each GPU's own (half its free memory), not split
    assert {p.share for p in plan_actors([GPU_NODE], device="cuda")} == {1}
    # a CPU run leaves the GPUs alone: one actor with every CPU of the node
    assert plan_actors([GPU_NODE], device="cpu", population=4) == [
        ActorPlan("g", "population", "cpu", 16.0, 0, 16, 4)
    ]


def test_the_sequential_engine_keeps_one_single_threaded_actor_per_cpu():
    plans = plan_actors([NODE, DEAD], kind="sequential", device="auto")
    assert plans == [ActorPlan("a", "sequential", "cpu", 1, 0, 1, 1)] * 8


def test_asking_for_cuda_on_a_cluster_without_gpus_is_a_clear_error():
    with pytest.raises(StudyError, match="no node of the Ray cluster has a GPU"):
        plan_actors([NODE], device="cuda")


@pytest.mark.parametrize("address", ["127.0.0.1:1", "not-an-address"])
def test_an_unreachable_or_malformed_ray_address_is_a_clear_error_not_a_hang(tmp_path, address):
    (tmp_path / "small.yaml").write_text(SMALL_SPACE)
    started = time.monotonic()
    run = dltune("run", "small.yaml", "--trials", "1", "--ray", address, cwd=tmp_path)
    assert run.returncode == 2
    assert "--ray" in run.stderr and "Traceback" not in run.stderr
    assert time.monotonic() - started < 60
