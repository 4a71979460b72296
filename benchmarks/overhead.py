"""The study loop's overhead per trial (asking, storing, scheduling: not training), at a study's
size where it used to grow: N finished trials and up to P paused (RUNNING) ones, in SQLite.

The loop is dltune's own (TrialLifecycle, StudyLoop, the default TPE sampler: multivariate,
group, constant_liar as in a population, ASHA over the default space's 27 epochs) driving a
fake engine that trains nothing: each advance is one epoch (or a rung's fraction) of every
running member, with a made-up curve. So all the time measured is the loop's. The first
`--trials` trials build the state; the next `--measure` are timed, by the loop's own
overhead_seconds, and broken down by part with cProfile (a second, profiled run of the same
length, so that the profiler's cost is not in the headline figure).

    .venv/bin/python benchmarks/overhead.py                 # 300 trials, 40 paused, 60 timed
    .venv/bin/python benchmarks/overhead.py --baseline      # and today's path, for comparison
    .venv/bin/python benchmarks/overhead.py --trials 60 --measure 20   # a quick check

`--baseline` runs the same study with the storage path before issue 16 (DLTUNE_STORAGE_PLAIN=1:
Optuna's own cache, one transaction per report, one per heartbeat) and prints both.
Target (issue 16): at most 20 ms per trial at 300 trials and 40 paused.

Measured on the shared 2-core machine (load average 13, so wall figures are inflated; CPU is
the steadier figure), `--trials 300 --measure 30 --baseline --no-profile`: today's path 491 ms
wall, 302 ms CPU per trial; the default path 116 ms wall, 67 ms CPU, of which TPE's own
computation (sample_relative, less its reads) is about 35 ms CPU and storage about 25.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MS = 20.0

# Parts of the loop's overhead, as (label, function name as cProfile lists it: file suffix,
# function name). Cumulative times; parts may nest (the sampler's reads are inside ask).
PARTS = [
    ("ask (Optuna's study.ask)", "optuna/study/study.py", "ask"),
    ("  sampler: infer space / relative", "optuna/samplers/_tpe/sampler.py", "sample_relative"),
    ("  sampler: independent", "optuna/samplers/_tpe/sampler.py", "sample_independent"),
    ("storage: get_all_trials (reads)", "optuna/storages/_cached_storage.py", "get_all_trials"),
    ("  of which: read unfinished trials", ".py", "_read_trials_from_remote_storage"),
    ("space.suggest (the configuration)", "dltune/space/__init__.py", "suggest"),
    ("write_trial_start", "dltune/storage/schema.py", "write_trial_start"),
    ("lifecycle.report (per epoch)", "dltune/study/lifecycle.py", "report"),
    ("lifecycle.flush (batched reports)", "dltune/study/lifecycle.py", "flush"),
    ("stored_rungs.save", "dltune/study/stored_rungs.py", "save"),
    ("stored_rungs.load (sync)", "dltune/study/stored_rungs.py", "load"),
    ("lifecycle.mark (paused/running)", "dltune/study/lifecycle.py", "mark"),
    ("lifecycle.end (tell, best, read)", "dltune/study/lifecycle.py", "end"),
    ("  best_record", "dltune/storage/records.py", "best_record"),
    ("  study.tell", "optuna/study/_tell.py", "_tell_with_warning"),
    ("heartbeats (loop thread)", "dltune/storage/heartbeats.py", "record_heartbeat"),
]


# Parts timed without the profiler: (label, whose method, its name). They nest as PARTS do.
TIMED = [
    ("study.ask (sampler's reads, new trial)", "study", "ask"),
    ("sampler: relative (TPE, multivariate)", "sampler", "sample_relative"),
    ("sampler: independent", "sampler", "sample_independent"),
    ("storage: get_all_trials (all reads)", "storage", "get_all_trials"),
    ("storage: get_trial", "storage", "get_trial"),
    ("storage: flush (gathered writes)", "storage", "flush"),
    ("storage: set_trial_state_values", "storage", "set_trial_state_values"),
    ("study.tell", "study", "tell"),
]


def _time_method(
    owner: Any, name: str, label: str, timers: dict[str, float], marks: dict[str, Any]
) -> None:
    """Wrap owner.name so that its time after the state is built adds up in timers[label]."""
    method = getattr(owner, name, None)
    if method is None:
        return

    def timed(*given: Any, **kwargs: Any) -> Any:
        if "start" not in marks or "end" in marks:
            return method(*given, **kwargs)
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return method(*given, **kwargs)
        finally:
            timers[label] = timers.get(label, 0.0) + time.perf_counter() - started
            cpu_label = f"{label} [CPU]"
            timers[cpu_label] = timers.get(cpu_label, 0.0) + time.thread_time() - cpu

    setattr(owner, name, timed)


class FakeRun:
    """A member of the fake engine: its curve so far and where it checkpoints next."""

    def __init__(self, key: int, quality: float, until: float | None, max_epochs: int) -> None:
        self.key, self.quality, self.until, self.max_epochs = key, quality, until, max_epochs
        self.epochs = 0.0
        self.history: list[Any] = []

    @property
    def result(self) -> Any:
        from dltune.engine import TrainResult

        best = max(self.history, key=lambda r: r.val_metric, default=None)
        return TrainResult(
            status="pruned",
            history=list(self.history),
            best_epoch=best.epoch if best else None,
            best_value=best.val_metric if best else None,
        )


class FakeEngine:
    """The Engine protocol, training nothing: a curve that rises to the configuration's
    (random) quality, an epoch per advance."""

    def __init__(self, slots: int, max_epochs: int, seed: int) -> None:
        self.slots, self.max_epochs = slots, max_epochs
        self.runs: dict[int, FakeRun] = {}
        self.epochs_trained = 0.0
        self.random = random.Random(seed)

    def __len__(self) -> int:
        return len(self.runs)

    def has_room(self, config: Any) -> bool:
        return len(self.runs) < self.slots

    def add(self, key, config, *, seed, patience=None, keep_best_state=False, until=None):
        self.runs[key] = FakeRun(key, self.random.uniform(0.5, 0.95), until, self.max_epochs)

    def advance(self, on_epoch=None):
        from dltune.engine import Checkpoint, EpochReport

        finished, checkpoints = [], []
        for key, run in list(self.runs.items()):
            stop = run.until if run.until is not None else run.max_epochs
            step = min(math.floor(run.epochs) + 1.0, stop) - run.epochs
            run.epochs += step
            self.epochs_trained += step
            value = run.quality * (1 - math.exp(-run.epochs / 3)) + self.random.gauss(0, 0.01)
            if run.epochs == math.floor(run.epochs):
                epoch = int(run.epochs)
                report = EpochReport(epoch, 1.0 - value, 1.0 - value, value, 0.01)
                run.history.append(report)
                if on_epoch is not None:
                    on_epoch(key, report)
            if run.epochs >= run.max_epochs:
                result = run.result
                result.status = "complete"
                finished.append((key, result))
                del self.runs[key]
            elif run.until is not None and run.epochs >= run.until:
                checkpoints.append(Checkpoint(key, run.epochs, value, 0.01 * run.epochs))
        return finished, checkpoints

    def set_until(self, key: int, until: float) -> None:
        self.runs[key].until = until

    def pause(self, key: int) -> FakeRun:
        return self.runs.pop(key)

    def resume(self, paused: FakeRun, until: float | None = None) -> None:
        paused.until = until
        self.runs[paused.key] = paused

    def stop(self, key: int, status: str = "pruned") -> Any:
        result = self.runs.pop(key).result
        result.status = status
        return result


def run_once(args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    """One study: `trials` to build the state, then `measure` timed; the figures."""
    from dltune.data import load_data
    from dltune.schedule import make_scheduler
    from dltune.space import SearchSpace
    from dltune.storage import Storage
    from dltune.study.lifecycle import TrialLifecycle
    from dltune.study.loop import Budget, StudyLoop
    from dltune.study.opening import open_study
    from dltune.study.progress import ProgressListener

    folder = Path(tempfile.mkdtemp(prefix="dltune-overhead-"))
    storage = Storage.open(f"sqlite:///{folder / 'overhead.db'}")
    data = load_data("digits")
    opened = open_study(
        SearchSpace.default(), data, storage, study_name="overhead", sampler="tpe",
        seed=0, parallel=True,
    )  # fmt: skip
    space = opened.space
    scheduler = make_scheduler(
        "asha", min_epochs=space.min_epochs, max_epochs=space.epochs,
        reduction=space.reduction, direction=opened.study.direction.name.lower(),
    )  # fmt: skip
    lifecycle = TrialLifecycle(opened.study, space, opened.base_seed, ProgressListener())
    engine = FakeEngine(args.slots, space.epochs, seed=0)
    budget = Budget(trials=args.trials + args.measure, deadline=None)
    loop = StudyLoop(
        lifecycle, engine, scheduler, budget, patience=None, slots=args.slots,
        max_paused=args.paused,
    )  # fmt: skip
    marks: dict[str, Any] = {}
    timers: dict[str, float] = {}
    if not profile:  # timers around a few parts (no profiler: the figures as they are)
        from dltune.storage import internals

        owners = {
            "sampler": opened.study.sampler,
            "storage": internals.storage_of(opened.study),
            "study": opened.study,
        }
        for label, owner, name in TIMED:
            target = owners
            _time_method(target[owner], name, label, timers, marks)
    profiler = cProfile.Profile()
    ask = lifecycle.ask

    def timed_ask(*given: Any, **kwargs: Any) -> Any:
        if budget.started == args.trials:  # the state is built: measure from here
            marks["start"] = (loop.overhead_seconds, time.perf_counter(), len(loop.paused))
            marks["cpu"] = time.process_time()
            if profile:
                profiler.enable()
        return ask(*given, **kwargs)

    release = loop._release_paused

    def timed_release() -> None:
        if profile:
            profiler.disable()
        marks["end"] = (loop.overhead_seconds, time.perf_counter(), len(loop.paused))
        marks["cpu"] = time.process_time() - marks["cpu"]
        release()

    lifecycle.ask = timed_ask  # type: ignore[method-assign]
    loop._release_paused = timed_release  # type: ignore[method-assign]
    try:
        loop.run()
    finally:
        lifecycle.close()
    (o0, t0, p0), (o1, t1, p1) = marks["start"], marks["end"]
    figures = {
        "per_trial_ms": 1000 * (o1 - o0) / args.measure,
        "wall_per_trial_ms": 1000 * (t1 - t0) / args.measure,
        # CPU seconds of the process (both threads) over the timed trials: the fake engine
        # trains nothing, so this is the overhead as an idle machine would time it.
        "cpu_per_trial_ms": 1000 * marks["cpu"] / args.measure,
        "paused": (p0, p1),
        "finished_before": args.trials - p0 - len(loop.waiting),
    }
    if not profile:
        figures["timed_ms"] = {k: 1000 * v / args.measure for k, v in timers.items()}
    if profile:
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats = pstats.Stats(profiler)
        table: dict[str, float] = {}
        for (path, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            for label, suffix, function in PARTS:
                if name == function and path.endswith(suffix):
                    table[label] = table.get(label, 0.0) + cumulative
        figures["parts_ms"] = {k: 1000 * v / args.measure for k, v in table.items()}
        figures["profiled_per_trial_ms"] = 1000 * (o1 - o0) / args.measure
    return figures


def show(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(
        f"  overhead per trial: {figures['per_trial_ms']:.1f} ms (target <= {TARGET_MS:g} ms); "
        f"wall per trial {figures['wall_per_trial_ms']:.1f} ms; paused at start/end of the "
        f"timed trials: {figures['paused'][0]}/{figures['paused'][1]}"
    )
    print(
        f"  CPU per trial (the process, all threads): {figures['cpu_per_trial_ms']:.1f} ms "
        "(what a busy machine does not inflate)"
    )
    timed = figures.get("timed_ms")
    if timed:
        print("  timed parts (no profiler, ms per trial, wall and this thread's CPU; they nest):")
        for label, _owner, _name in TIMED:
            if label in timed:
                cpu = timed.get(f"{label} [CPU]", math.nan)
                print(f"    {label:<40} {timed[label]:7.2f} wall {cpu:7.2f} CPU")
    parts = figures.get("parts_ms")
    if parts:
        print(f"  by part (cProfile, cumulative ms per trial; profiled total "
              f"{figures['profiled_per_trial_ms']:.1f} ms):")  # fmt: skip
        for label, _suffix, _name in PARTS:
            if label in parts:
                print(f"    {label:<40} {parts[label]:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="trials before the timed ones")
    parser.add_argument("--measure", type=int, default=60, help="trials timed")
    parser.add_argument("--paused", type=int, default=40, help="paused trials kept (max_paused)")
    parser.add_argument("--slots", type=int, default=8, help="members training at once")
    parser.add_argument("--baseline", action="store_true", help="also today's storage path")
    parser.add_argument("--one", choices=["plain", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help="write the profiled run's cProfile stats here")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled run")
    args = parser.parse_args()
    if args.one:  # a child: one path, printed as a line of JSON
        figures = run_once(args, profile=False)
        if not args.no_profile:
            figures.update({"profiled": run_once(args, profile=True)})
        print(json.dumps(figures))
        return
    print(
        f"dltune loop overhead: {args.trials} trials built, {args.measure} timed, up to "
        f"{args.paused} paused, {args.slots} slots, SQLite, TPE (multivariate, group, "
        "constant_liar), ASHA"
    )
    paths = ["plain", "fast"] if args.baseline else ["fast"]
    for path in paths:
        env = dict(os.environ)
        env.pop("DLTUNE_STORAGE_PLAIN", None)
        if path == "plain":
            env["DLTUNE_STORAGE_PLAIN"] = "1"
        command = [sys.executable, __file__, "--one", path, *sys.argv[1:]]
        command = [c for c in command if c != "--baseline"]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            raise SystemExit(out.returncode)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        profiled = figures.pop("profiled", None)
        if profiled is not None:
            figures["parts_ms"] = profiled["parts_ms"]
            figures["profiled_per_trial_ms"] = profiled["profiled_per_trial_ms"]
        title = (
            "today's path (DLTUNE_STORAGE_PLAIN=1: Optuna's cache, a transaction per write)"
            if path == "plain"
            else "the default path"
        )
        show(title, figures)


if __name__ == "__main__":
    main()
