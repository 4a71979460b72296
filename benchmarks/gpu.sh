#!/usr/bin/env bash
# The GPU figures in one prepared run (under 8 minutes): the throughput benchmark on CUDA, then a
# short default study (`dltune run --device cuda`: the default arrangement, one process per GPU
# with the population engine), both written to one file.
#
#     benchmarks/gpu.sh [FIGURES_FILE]
#
# FIGURES_FILE defaults to $OUT/gpu-figures.txt where $OUT is set (the device machine's
# output folder), else benchmarks/gpu-figures.txt. Run from anywhere; it works in the
# repository root, with the venv at .venv (made by `make install-dev` when absent). With no
# CUDA GPU visible to torch it stops at once with exit status 2 and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
figures="${1:-${OUT:-benchmarks}/gpu-figures.txt}"
mkdir -p "$(dirname "$figures")"
if [ ! -x .venv/bin/python ]; then
    echo "gpu.sh: no .venv here: making it (make install-dev)" >&2
    make install-dev
fi
py=.venv/bin/python
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu.sh: torch sees no CUDA GPU ($("$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')); nothing was measured. Run it on a machine with a GPU and a CUDA build of torch." >&2
    exit 2
fi
mnist="$(cd .. && pwd)/shared/data/mnist-10k"
work="$(mktemp -d /tmp/dltune-gpu.XXXXXX)"
{
    echo "# dltune GPU figures, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
    "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())'
    echo
} > "$figures"

echo "## throughput: python benchmarks/throughput.py --device cuda" >> "$figures"
if [ -d "$mnist" ]; then
    # about 3 minutes on a GPU; cut at 4, keeping what it printed
    timeout 240 "$py" benchmarks/throughput.py --device cuda >> "$figures" 2>&1 \
        || echo "(throughput ended with status $?: see above)" >> "$figures"
    data="$mnist"
else
    echo "(skipped: no MNIST at $mnist, which throughput.py reads)" >> "$figures"
    data=digits
fi
echo >> "$figures"

echo "## default study: dltune run --data $data --device cuda --timeout 90 --seed 0" >> "$figures"
start=$(date +%s)
timeout 200 "$py" -m dltune.cli run --data "$data" --device cuda --timeout 90 --seed 0 \
    --storage "sqlite:///$work/gpu.db" --study gpu > "$work/run.txt" 2>&1 \
    || echo "(the study ended with status $?)" >> "$figures"
echo "wall: $(( $(date +%s) - start )) s" >> "$figures"
grep -E "^note:|trials in|validation|test |^Data:" "$work/run.txt" >> "$figures" || tail -20 "$work/run.txt" >> "$figures"
"$py" - "$work/gpu.db" >> "$figures" <<'PY'
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="gpu", storage=f"sqlite:///{sys.argv[1]}")
epochs = sum(len(t.intermediate_values) for t in study.trials)
workers = sorted({t.user_attrs.get("worker", 0) for t in study.trials})
print(f"trials {len(study.trials)}, member-epochs stored {epochs}, workers {workers}")
PY
echo "gpu.sh: figures in $figures" >&2
