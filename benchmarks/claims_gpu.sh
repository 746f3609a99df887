#!/bin/bash
# The papers' claims at the papers' widths and schedules on one GPU (issue "Test each paper's claims"):
# one prepared command for the GPU machine, within 8 minutes of one H200. It runs
# `benchmarks/claims_runs.py --gpu`: every claim's two rows on every leave-one-subject-out fold, seed 0,
# `--profile paper --device cuda`, each model stopped at 75 s of wall time, 12 models sharing the GPU; then
# the report. Results are marked GPU: benchmarks/results/claims_gpu.md and claims_curves_*_gpu.png, beside
# the CPU baseline (claims.md), which stays the reproducible one.
#
# The GPU machine starts bare: ../shared does not travel and nibabel, SimpleITK and monai are not installed
# there. Prepare once on this machine, in the repository root:
#   echo /.gpu/ >> .git/info/exclude
#   mkdir -p .gpu/data && cp -r ../shared/data/{open_ms_data,mslesseg,brats2015_deepmedic,tscnn_pwml_test} .gpu/data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
#     nibabel simpleitk monai tqdm importlib_resources
# then call the device tool's run with carry [".gpu"] and the command `bash benchmarks/claims_gpu.sh`
# (timeout_s 540). Copies of the data stay in the ignored .gpu/ folder, never in git.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .gpu/whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 480 python3 benchmarks/claims_runs.py --gpu --data "${DATA:-.gpu/data}" || echo "stopped at 8 minutes"
python3 benchmarks/claims_runs.py --gpu --report  # the claims whose runs all finished
if [ -n "${OUT:-}" ]; then
    cp benchmarks/results/claims_gpu.md "$OUT/" 2>/dev/null || true
    tar czf "$OUT/claims_curves_gpu.tar.gz" benchmarks/results/claims_curves_*_gpu.png 2>/dev/null || true
fi
