#!/usr/bin/env bash
# The GPU path checked and timed in one command; one JSON (benchmarks/gpu_check.py says what it measures).
#   benchmarks/gpu_check.sh [out.json]              # on a GPU machine: at most 8 minutes on an H100
#   QUICK=1 benchmarks/gpu_check.sh /tmp/check.json # a tiny dry run on any CPU (the test suite runs it)
# A bare machine needs only torch, transformers and peft: where gymnasium, mujoco, metaworld or tyro is missing, the
# wheels in wheels/ (make gpu-wheels; or set WHEELS) are installed into .gpu_check/site first, with no internet.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu/gpu_check.json}"
wheels="${WHEELS:-wheels}"
python="${PYTHON:-python3}"
if ! "$python" -c "import gymnasium, mujoco, metaworld, tyro" 2>/dev/null && compgen -G "$wheels/*.whl" >/dev/null; then
    "$python" -m pip install --quiet --no-index --no-deps --target .gpu_check/site "$wheels"/*.whl
    export PYTHONPATH="$PWD/.gpu_check/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}" HF_HUB_OFFLINE=1
quick=()
if [ "${QUICK:-0}" = 1 ]; then quick=(--quick); fi
exec "$python" benchmarks/gpu_check.py --out "$out" "${quick[@]}"
