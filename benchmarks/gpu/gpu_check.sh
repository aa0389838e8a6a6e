#!/usr/bin/env bash
# The GPU path checked and timed in one command; one JSON (benchmarks/gpu/gpu_check.py says what it measures).
#   benchmarks/gpu/gpu_check.sh [out.json]              # on a GPU machine: at most 8 minutes on an H100
#   QUICK=1 benchmarks/gpu/gpu_check.sh /tmp/check.json # a tiny dry run on any CPU (the test suite runs it)
# A bare machine needs only torch; benchmarks/gpu/gpu_env.sh installs the rest from wheels/ (make gpu-wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-results/gpu/gpu_check.json}"
source benchmarks/gpu/gpu_env.sh
quick=()
if [ "${QUICK:-0}" = 1 ]; then quick=(--quick); fi
exec "$python" benchmarks/gpu/gpu_check.py --out "$out" "${quick[@]}"
