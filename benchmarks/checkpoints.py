"""What trial checkpoints cost (issue 17): the default study with and without them, and the
disk they hold over a 300-trial study.

    python benchmarks/checkpoints.py                       # both parts, as RESULTS.md reports
    python benchmarks/checkpoints.py --budget 120 --trials 100   # a quicker look

1. Overhead. The default study (default space, arrangement and schedule) on MNIST
   (../shared/data/mnist-10k) for `--budget` seconds, once with checkpoints off and once with
   the default (beside the SQLite file, every rung and every 60 s), same seed. Two figures:
   the share of the processes' time spent taking checkpoints (snapshot, safetensors, write,
   fsync, rename: measured by the checkpointer itself, summed over the worker processes), and
   the training throughput (member-epochs per second) of the run with checkpoints against the
   one without, measured in the same invocation. The first is the steady one; the second moves
   with the sampler's choices, which a timed budget lets differ between the two runs.
   Target: at most 5% of wall time.

2. Disk. A `--trials`-trial default study on digits (300: MNIST would take hours here), its
   checkpoint folder polled every 0.1 s: the most files and bytes it ever held, against the
   bound the design gives (one checkpoint per unfinished trial: the running ones and those
   paused at a rung), and what is left at the end (nothing, once every trial has ended).

Run it on an idle machine (nothing else on the cores while it times).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent.parent / "shared" / "data" / "mnist-10k"
TARGET_SHARE = 0.05


def overhead_run(data: Any, budget: float, seed: int, checkpoints: str | None) -> dict[str, Any]:
    import dltune

    folder = tempfile.mkdtemp(prefix="bench-checkpoints-")
    result = dltune.tune(
        None,
        data,
        storage=f"sqlite:///{folder}/study.db",
        timeout=budget,
        seed=seed,
        checkpoints=checkpoints,
    )
    written, size, seconds = result.checkpoints
    processes = _processes(result.notes)
    return {
        "checkpoints": checkpoints or "default",
        "seconds": result.seconds,
        "processes": processes,
        "trials": result.trials_run,
        "epochs": result.epochs_trained,
        "epochs_per_s": result.epochs_trained / result.seconds,
        "written": written,
        "mib": size / 2**20,
        "checkpoint_seconds": seconds,
        "share": seconds / (result.seconds * processes),
        "best_val": (result.best or {}).get("value"),
        "best_test": (result.best or {}).get("test"),
    }


def _processes(notes: list[str]) -> int:
    """How many processes the default arrangement ran (its note: 'N workers x ...')."""
    for note in notes:
        head = note.split(" workers x ", 1)
        if len(head) == 2 and head[0].strip().isdigit():
            return int(head[0])
    return 1


def _slots(notes: list[str]) -> int:
    """Trials one process trains at once: 1 with the sequential engine, else a population."""
    from dltune.study.settings import DEFAULT_SLOTS

    return 1 if any("sequential engine" in note for note in notes) else DEFAULT_SLOTS


class FolderWatch:
    """Polls a folder's checkpoint files: the most it held at once, in files and bytes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.most_files = 0
        self.most_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def held(self) -> tuple[int, int]:
        files, size = 0, 0
        for path in list(self.folder.glob("ckpt-*")) if self.folder.is_dir() else []:
            try:
                size += path.stat().st_size
                files += 1
            except FileNotFoundError:  # removed while we looked
                pass
        return files, size

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            files, size = self.held()
            self.most_files = max(self.most_files, files)
            self.most_bytes = max(self.most_bytes, size)


def disk_run(trials: int, seed: int) -> dict[str, Any]:
    import dltune

    folder = Path(tempfile.mkdtemp(prefix="bench-checkpoint-disk-"))
    with FolderWatch(folder / "study.db.checkpoints") as watch:
        result = dltune.tune(
            None, "digits", storage=f"sqlite:///{folder}/study.db", trials=trials, seed=seed
        )
        left = watch.held()
    processes = _processes(result.notes)
    slots = _slots(result.notes)
    written, size, _ = result.checkpoints
    return {
        "trials": result.trials_run,
        "processes": processes,
        "written": written,
        "mean_kib": size / max(1, written) / 1024,
        "most_files": watch.most_files,
        "most_mib": watch.most_bytes / 2**20,
        # one per unfinished trial: each process's running slots and its paused trials
        # (the study loop keeps at most max(8, 2 x slots) paused: loop.StudyLoop.max_paused)
        "bound_files": processes * (max(8, 2 * slots) + slots),
        "left_files": left[0],
        "left_bytes": left[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per overhead run")
    parser.add_argument("--trials", type=int, default=300, help="trials of the disk study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", choices=["overhead", "disk"], help="leave one part out")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.skip != "overhead":
        from dltune.data import load_data

        data = load_data(MNIST, seed=0)
        off = overhead_run(data, args.budget, args.seed, "off")
        on = overhead_run(data, args.budget, args.seed, None)
        ratio = on["epochs_per_s"] / off["epochs_per_s"]
        figures["overhead"] = {"off": off, "on": on, "throughput_ratio": ratio}
        print(
            f"MNIST default study, {args.budget:.0f} s each: without checkpoints "
            f"{off['epochs_per_s']:.2f} epochs/s ({off['trials']} trials); with "
            f"{on['epochs_per_s']:.2f} epochs/s ({on['trials']} trials), ratio "
            f"{ratio:.3f}"
        )
        print(
            f"  checkpoints: {on['written']} written, {on['mib']:.1f} MiB, "
            f"{on['checkpoint_seconds']:.2f} s of {on['processes']} x {on['seconds']:.0f} s: "
            f"{100 * on['share']:.2f}% of the processes' time (target <= {100 * TARGET_SHARE:.0f}%)"
        )
    if args.skip != "disk":
        disk = disk_run(args.trials, args.seed)
        figures["disk"] = disk
        print(
            f"digits default study, {disk['trials']} trials: {disk['written']} checkpoints "
            f"written (mean {disk['mean_kib']:.0f} KiB); the folder held at most "
            f"{disk['most_files']} files ({disk['most_mib']:.2f} MiB), bound "
            f"{disk['bound_files']}; left at the end: {disk['left_files']} files"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
