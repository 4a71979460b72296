"""The same Ray study with the old actors (one per CPU, a trial at a time: --engine sequential)
and with population actors (one per node, --engine population), on a local two-node cluster.

The cluster runs in a network namespace of its own (only loopback: ../shared/GUIDE.md), so it
needs root and `ip`; each node gets --cpus-per-node CPUs. Each arrangement runs the same study
(same data, space, seed and --epoch-budget) from a fresh storage; printed: wall seconds,
member-epochs trained, member-epochs per second, the best validation value, and the ratio.

    python benchmarks/ray_population.py --data digits --epoch-budget 100 --population 8
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

PORT = 6393
DRIVER = """
import json, sys
from dltune import tune
r = tune(sys.argv[8] or None, data=sys.argv[1], storage=sys.argv[2], seed=int(sys.argv[3]),
         epoch_budget=float(sys.argv[4]), engine=sys.argv[5], population=int(sys.argv[6]),
         ray=sys.argv[7], trials=10_000)
print(json.dumps({"seconds": r.seconds, "epochs": r.epochs_trained,
                  "best": r.best["value"] if r.best else None, "notes": r.notes}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--space", default="", help="a space file [default: the built-in one]")
    parser.add_argument("--epoch-budget", type=float, default=100)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--engines", nargs="+", default=["sequential", "population"])
    args = parser.parse_args()
    ns = f"dltune-bench-{uuid.uuid4().hex[:6]}"
    folder = tempfile.mkdtemp(prefix="dltune-ray-", dir="/tmp")
    ray = str(Path(sys.executable).with_name("ray"))

    def inside(*command: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *command]

    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(inside("ip", "link", "set", "lo", "up"), check=True)
        common = [f"--num-cpus={args.cpus_per_node}", "--disable-usage-stats"]
        common.append("--include-log-monitor=false")
        head = [ray, "start", "--head", f"--port={PORT}", f"--temp-dir={folder}"]
        subprocess.run(inside(*head, "--include-dashboard=false", *common), check=True,
                       capture_output=True)  # fmt: skip
        node = [ray, "start", f"--address=127.0.0.1:{PORT}", *common]
        subprocess.run(inside(*node), check=True, capture_output=True)
        rows = []
        for engine in args.engines:
            db = Path(folder) / f"{engine}.db"
            ran = subprocess.run(
                inside(sys.executable, "-c", DRIVER, args.data, f"sqlite:///{db}",
                       str(args.seed), str(args.epoch_budget), engine, str(args.population),
                       f"127.0.0.1:{PORT}", str(Path(args.space).resolve()) if args.space
                       else ""),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if ran.returncode != 0:
                sys.exit(f"{engine}: the study failed:\n{ran.stderr[-3000:]}")
            result = json.loads(ran.stdout.strip().splitlines()[-1])
            rows.append((engine, result))
            for note in result["notes"]:
                print(f"  [{engine}] {note}")
        space = args.space or "the default space"
        print(f"\n{args.data}, {space}, --epoch-budget {args.epoch_budget:g}, seed {args.seed}, "
              f"2 nodes x {args.cpus_per_node} CPU, population {args.population}")  # fmt: skip
        print(f"{'engine':<12} {'wall s':>8} {'epochs':>8} {'epochs/s':>9} {'best val':>9}")
        for engine, r in rows:
            rate = r["epochs"] / r["seconds"]
            best = f"{r['best']:.4f}" if r["best"] is not None else "-"
            print(f"{engine:<12} {r['seconds']:8.1f} {r['epochs']:8.1f} {rate:9.2f} {best:>9}")
        if len(rows) == 2:
            (_, a), (_, b) = rows
            ratio = (b["epochs"] / b["seconds"]) / (a["epochs"] / a["seconds"])
            print(f"member-epochs/s, {rows[1][0]} / {rows[0][0]}: {ratio:.2f}x")
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            subprocess.run(["kill", "-9", pid], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
