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
from typing import ClassVar

import numpy as np
import pytest

from dltune.distributed import ray_engine
from dltune.distributed.placement import ActorPlan, plan_actors
from dltune.distributed.ray_engine import RayEngine
from dltune.distributed.ray_worker import TrialWorker
from dltune.engine import TrainResult
from dltune.errors import StudyError

from .helpers import SMALL_SPACE, Forked, dltune, make_config, require_or_skip

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
    is SIGKILLed mid-epoch (the actors train all the time); its trials resume on the other
    from their checkpoints and the study still completes: every trial COMPLETE or PRUNED,
    none running or failed, each complete one stored with its value and parameters."""
    (tmp_path / "small.yaml").write_text(SMALL_SPACE.replace("epochs: 3", "epochs: 9"))
    db = tmp_path / "r.db"
    run = ["run", "small.yaml", "--trials", str(TRIALS), "--seed", "0"]
    run += ["--ray", f"127.0.0.1:{PORT}", "--storage", f"sqlite:///{db}"]
    run += ["--engine", "population", "--population", str(POPULATION)]
    run += ["--checkpoint-every", "0"]  # every running trial checkpointed after each epoch
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
    # each actor trained several trials at once (its largest advance call; the survivor may
    # hold more than its slots once the dead actor's trials have restarted on it)
    peaks = re.search(r"the most trials each trained at once: \S+:\d+ (\d+), \S+:\d+ (\d+)", output)
    assert peaks is not None, output
    assert all(int(p) >= 2 for p in peaks.groups()), output
    # the dead actor's trials went on from their checkpoints (taken by the driver after
    # every epoch), on the live actor
    assert re.search(r"[1-9]\d* trials resumed from their last checkpoint on another", output)
    final = stored(db)
    assert len(final) == TRIALS
    assert {state for state, _, _ in final} <= set(FINISHED)  # none left running, none failed
    complete = [(values, params) for state, values, params in final if state == "COMPLETE"]
    assert complete, output
    assert all(values == 1 and params > 0 for values, params in complete), final


class Lost(Exception):
    """What the fake Ray raises for a call to a dead actor (RayActorError)."""


class FakeRay:
    """Ray as RayEngine uses it (get, its two lost-actor errors), over in-process actors
    whose calls run at once: the driver's routing and fault handling without a cluster."""

    class exceptions:  # as ray.exceptions
        RayActorError = Lost
        GetTimeoutError = TimeoutError

    killed: ClassVar[list[object]] = []  # the actors ray.kill was asked to kill

    @staticmethod
    def get(ref: tuple[bool, object], timeout: float | None = None) -> object:
        ok, value = ref
        if not ok:
            raise value  # type: ignore[misc]
        return value

    @staticmethod
    def kill(actor: object, no_restart: bool = True) -> None:
        FakeRay.killed.append(actor)


class FakeActor:
    """A TrialWorker called as a Ray actor is (`actor.method.remote(...)`); `dead`: its
    process was killed, every call fails as Ray's do."""

    def __init__(self, body: TrialWorker) -> None:
        self.body = body
        self.dead = False
        self.hung = False  # its calls time out: alive, but no answer comes
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        actor = self

        class Method:
            @staticmethod
            def remote(*args: object) -> tuple[bool, object]:
                actor.calls.append(name)
                if actor.dead:
                    return False, Lost(f"actor running {name} died")
                if actor.hung:
                    return False, TimeoutError(f"{name} did not answer")
                return True, getattr(actor.body, name)(*args)

        return Method


def test_the_driver_routes_trials_to_population_actors_and_restarts_a_dead_ones_trials(
    blobs, monkeypatch
):
    """Two population actors of 3 slots: six trials fill both, each advance trains all three
    of an actor's trials at once; trials of one shape go to the actor that trains that shape;
    when one actor dies its trials, running and paused, start again from scratch on the
    other, which trains them to their last epoch."""
    monkeypatch.setattr(ray_engine, "_ray", lambda: FakeRay)
    plans = [ActorPlan(node, "population", "cpu", 1, 0, 1, 3) for node in "ab"]
    actors = [FakeActor(TrialWorker(blobs, "accuracy", 0, 1, None, p.to_dict())) for p in plans]
    engine = RayEngine(actors, plans)
    engine.nodes = [{"host": "h", "pid": pid} for pid in (1, 2)]
    assert engine.slots == 6 and engine.stacks
    configs = {k: make_config(batch_size=32 if k % 2 else 64, epochs=3) for k in range(6)}
    for key, config in configs.items():
        assert engine.has_room(config)
        engine.add(key, config, seed=key, until=2)
    assert not engine.has_room(make_config())  # every slot taken
    by_actor = {i: {k for k, t in engine.trials.items() if t.actor == i} for i in (0, 1)}
    assert by_actor == {0: {0, 2, 4}, 1: {1, 3, 5}}  # each actor one batch size: one bucket
    finished, checkpoints = engine.advance()  # one epoch of all six
    assert finished == [] and checkpoints == []
    assert engine.peak == {0: 3, 1: 3} and engine.epochs_trained == 6
    finished, checkpoints = engine.advance()  # the second: all at their checkpoint (a rung)
    assert sorted(c.key for c in checkpoints) == list(range(6))
    paused = engine.pause(0)  # one waits at its rung, its state on actor 0
    for key in range(1, 6):
        engine.set_until(key, 3)
    actors[0].dead = True  # SIGKILL: the next call to it fails
    results: dict[int, TrainResult] = {}
    engine.resume(paused, 3)  # promoted: it starts again on actor 1
    while len(engine):
        done, _ = engine.advance()
        results.update(done)
    assert sorted(engine.restarted) == [0, 2, 4] and set(engine.actors) == {1}
    assert sorted(results) == list(range(6))
    assert all(r.status == "complete" and r.epochs_run == 3 for r in results.values())
    notes = engine.notes
    assert "3 trials restarted from scratch after their Ray worker died" in " ".join(notes)
    # restarted from scratch with the same seed: the same curve as an undisturbed run
    alone = RayEngine([FakeActor(TrialWorker(blobs, "accuracy", 0, 1, None, plans[0].to_dict()))],
                      plans[:1])  # fmt: skip
    alone.add(2, configs[2], seed=2)
    again: dict[int, TrainResult] = {}
    while len(alone):
        again.update(alone.advance()[0])
    assert [e.val_metric for e in again[2].history] == [e.val_metric for e in results[2].history]


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


def test_a_dead_actors_trials_resume_from_their_checkpoints_on_a_live_one(blobs, monkeypatch):
    """Trials checkpointed (engine.snapshot, as the study's checkpointer takes them) on an
    actor that then dies go on from there on the other: only the epochs left are trained, and
    each curve is the one an undisturbed run gives."""
    monkeypatch.setattr(ray_engine, "_ray", lambda: FakeRay)
    plans = [ActorPlan(node, "population", "cpu", 1, 0, 1, 2) for node in "ab"]
    actors = [FakeActor(TrialWorker(blobs, "accuracy", 0, 1, None, p.to_dict())) for p in plans]
    engine = RayEngine(actors, plans)
    engine.nodes = [{"host": "h", "pid": pid} for pid in (1, 2)]
    configs = {k: make_config(batch_size=32, units=(16 + 8 * k,), epochs=3) for k in range(4)}
    for key, config in configs.items():
        engine.add(key, config, seed=key)
    engine.advance()  # one epoch each
    on_first = sorted(k for k, t in engine.trials.items() if t.actor == 0)
    assert on_first
    for key in on_first:
        assert engine.snapshot(key) is not None  # the checkpointer's copy of its state
    actors[0].dead = True
    results: dict[int, TrainResult] = {}
    while len(engine):
        results.update(engine.advance()[0])
    assert sorted(engine.resumed) == on_first and set(engine.actors) == {1}
    assert f"{len(on_first)} trials resumed from their last checkpoint" in " ".join(engine.notes)
    # the epoch before the checkpoint was not trained again: 4 trials x 3 epochs in all (the
    # dead actor died before its second advance, so trained nothing past its checkpoints)
    assert engine.epochs_trained == 4 * 3
    for key in on_first:
        worker = TrialWorker(blobs, "accuracy", 0, 1, None, plans[0].to_dict())
        alone = RayEngine([FakeActor(worker)], plans[:1])
        alone.add(key, configs[key], seed=key)
        again: dict[int, TrainResult] = {}
        while len(alone):
            again.update(alone.advance()[0])
        np.testing.assert_allclose(
            [e.val_loss for e in results[key].history],
            [e.val_loss for e in again[key].history],
            rtol=1e-5,
            atol=1e-6,
        )


def test_cross_validated_trials_train_their_folds_on_the_actors_and_resume_elsewhere(
    blobs, monkeypatch
):
    """On folded data each actor trains a trial's K fold members stacked and hands the driver
    the trial (its folds' mean): the same curves as a local fold engine; a trial checkpointed
    on an actor that dies goes on from its K members' checkpoint on the other."""
    from dltune.engine.folds import FoldEngine
    from dltune.engine.losses import metric_named
    from dltune.engine.population import PopulationTrainer

    folded = blobs.with_folds(3, 0)
    monkeypatch.setattr(ray_engine, "_ray", lambda: FakeRay)
    plans = [ActorPlan(node, "population", "cpu", 1, 0, 1, 2) for node in "ab"]
    actors = [FakeActor(TrialWorker(folded, "accuracy", 0, 1, None, p.to_dict())) for p in plans]
    engine = RayEngine(actors, plans)
    engine.nodes = [{"host": "h", "pid": pid} for pid in (1, 2)]
    configs = {k: make_config(batch_size=32, units=(16 + 8 * k,), epochs=3) for k in range(3)}
    for key, config in configs.items():
        engine.add(key, config, seed=key, keep_best_state=True)
    engine.advance()
    on_first = sorted(k for k, t in engine.trials.items() if t.actor == 0)
    for key in on_first:
        assert engine.snapshot(key).kind == "folds"
    actors[0].dead = True
    results: dict[int, TrainResult] = {}
    while len(engine):
        results.update(engine.advance()[0])
    assert sorted(results) == [0, 1, 2] and sorted(engine.resumed) == on_first
    for key, config in configs.items():
        local = FoldEngine(PopulationTrainer(folded, shuffle_seed=0), 3, metric_named("accuracy"))
        local.add(key, config, seed=key, keep_best_state=True)
        done: dict[int, TrainResult] = {}
        while len(local):
            done.update(local.advance()[0])
        mine = results[key]
        assert len(mine.folds) == 3 and mine.folds[0].best_outputs is not None
        np.testing.assert_allclose(
            [e.val_metric for e in mine.history], [e.val_metric for e in done[key].history],
            atol=1e-6,
        )  # fmt: skip


def test_a_hung_actor_is_killed_and_its_trials_go_on_elsewhere(blobs, monkeypatch):
    """A call that times out (the actor alive, no answer) kills that actor, so that Ray frees
    its CPUs and GPU, and its trials start again on the other; a slow actor is given ten times
    its longest segment before it counts as hung."""
    monkeypatch.setattr(ray_engine, "_ray", lambda: FakeRay)
    FakeRay.killed.clear()
    plans = [ActorPlan(node, "population", "cpu", 1, 0, 1, 2) for node in "ab"]
    actors = [FakeActor(TrialWorker(blobs, "accuracy", 0, 1, None, p.to_dict())) for p in plans]
    engine = RayEngine(actors, plans)
    engine.nodes = [{"host": "h", "pid": pid} for pid in (1, 2)]
    for key in range(4):
        engine.add(key, make_config(batch_size=32, epochs=2), seed=key)
    engine.advance()
    assert engine.timeout(0) == ray_engine.CALL_TIMEOUT_S  # fast segments: the floor
    engine.longest[1] = 200.0
    assert engine.timeout(1) == 2000.0  # a slow one: ten times its longest
    actors[0].hung = True
    results: dict[int, TrainResult] = {}
    while len(engine):
        results.update(engine.advance()[0])
    assert FakeRay.killed == [actors[0]] and engine.killed == [0] and set(engine.actors) == {1}
    assert sorted(results) == [0, 1, 2, 3]
    assert all(r.status == "complete" for r in results.values())
