#!/usr/bin/env bash
# The prepared device check of issue 3: the models that are CPU-hours here (xresnet1d101,
# inception1d) trained with the benchmark recipe on a lent GPU, beside cnn1d@seed, on the
# development split (train strat_folds 1-7, validation 8, test 9), written as a leaderboard.
#
# Once, here, in the repository root (the device machine can fetch nothing; its python3 has torch,
# pandas, scikit-learn, typer, rich, matplotlib and tqdm, but not wfdb or iterative-stratification;
# .whl/ and .device-data/ are git-ignored, so they travel only when carried):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       -d .whl wfdb==4.3.1 iterative-stratification==0.1.9
#   mkdir -p .device-data && cp -r ../shared/ptbxl-dev .device-data/      # about 48 MB
# Then with the device tool:
#   run(command="bash benchmarks/gpu_benchmark.sh", carry=[".whl", ".device-data"], timeout_s=540)
# What comes back under $OUT: leaderboard.md, leaderboard.json, log.txt, env.txt.
#
# Every setting can be overridden from the environment, e.g. a CPU dry run of the script itself:
#   DEVICE=cpu EPOCHS=1 MODELS=cnn1d@seed,cnn1d TASKS=superdiagnostic DATA=data/synthetic \
#       VAL_FOLD=9 TEST_FOLD=10 TRAIN_FOLDS=1-8 PYTHON=.venv/bin/python bash benchmarks/gpu_benchmark.sh
# An ensemble is an entry of its own: MODELS=cnn1d@seed,fcn_wang,fcn_wang-x2 (see `ecgcnn benchmark`).
set -euo pipefail

DATA=${DATA:-.device-data/ptbxl-dev}
EPOCHS=${EPOCHS:-50}
MODELS=${MODELS:-cnn1d@seed,xresnet1d101,inception1d,resnet1d_wang,fcn_wang}
TASKS=${TASKS:-superdiagnostic,all}
TRAIN_FOLDS=${TRAIN_FOLDS:-1-7}
VAL_FOLD=${VAL_FOLD:-8}
TEST_FOLD=${TEST_FOLD:-9}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-runs/gpu-benchmark-out}
WORK=${WORK:-/tmp/ecgcnn-gpu-benchmark}

mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/ecgcnn-site .whl/*.whl
    export PYTHONPATH=/tmp/ecgcnn-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$PYTHON" - <<'PY'
import importlib.util, sys
need = ["torch", "numpy", "pandas", "sklearn", "scipy", "matplotlib", "typer", "rich", "tqdm", "wfdb", "iterstrat"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"error: missing Python packages {', '.join(missing)}: carry them as wheels in .whl/ (see the top of this script)")
PY

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$PYTHON" -c 'import platform, torch; print("python", platform.python_version(), "torch", torch.__version__,
        "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
    nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if [ ! -f "$DATA/ptbxl_database.csv" ]; then
    echo "error: $DATA/ptbxl_database.csv not found (copy ../shared/ptbxl-dev to .device-data/ and carry it)" >&2
    exit 1
fi

set -o pipefail
"$PYTHON" -m ecgcnn benchmark --data-root "$DATA" --out "$WORK" --tasks "$TASKS" --models "$MODELS" \
    --epochs "$EPOCHS" --train-folds "$TRAIN_FOLDS" --val-fold "$VAL_FOLD" --test-fold "$TEST_FOLD" \
    --reference cnn1d@seed --device "$DEVICE" --cache-dir /tmp/ecgcnn-cache --no-progress 2>&1 |
    tee "$OUT/log.txt"
cp "$WORK/leaderboard.md" "$WORK/leaderboard.json" "$OUT/"
echo "leaderboard: $OUT/leaderboard.md"
