#!/usr/bin/env bash
# The GPU machine's side of docs/gpu_run.md: installs the carried wheels
# (keras and the two of its requirements the machine lacks) into /tmp/site,
# then trains under jax into $OUT/run, the log beside it in $OUT/train.log.
# Arguments go to tools/gpu_train.py and win over these (--model resnet18,
# --epochs 120, --pack other.npz, ...). The two limits keep the whole command
# inside the run tool's 600 s: training ends after the last epoch that fits
# in 510 s, and `timeout` ends anything still running at 575 s.
set -uo pipefail
: "${OUT:?OUT must name the folder that comes back (the run tool sets it)}"
cd "$(dirname "$0")/.." || exit
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout "${GPU_RUN_TIMEOUT:-575}" python3 tools/gpu_train.py --pack fer2013_train.npz \
    --output-dir "$OUT/run" --time-limit "${GPU_TIME_LIMIT:-510}" "$@" 2>&1 | tee "$OUT/train.log"
