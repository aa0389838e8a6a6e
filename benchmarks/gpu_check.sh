#!/usr/bin/env bash
# The GPU path checked and timed in one command; one JSON (benchmarks/gpu_check.py says what it measures).
#   benchmarks/gpu_check.sh [out.json]              # on a GPU machine: at most 8 minutes on an H100
#   QUICK=1 benchmarks/gpu_check.sh /tmp/check.json # a tiny dry run on any CPU (the test suite runs it)
# A bare machine needs only torch: where gymnasium, mujoco, metaworld or tyro is missing, or transformers and peft are
# not the pinned versions, the wheels in wheels/ (make gpu-wheels; or set WHEELS) are installed into .gpu_check/site
# first, with no internet, ahead of the machine's own packages.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu/gpu_check.json}"
wheels="${WHEELS:-wheels}"
python="${PYTHON:-python3}"
pinned() {  # gymnasium, mujoco, metaworld and tyro importable, transformers and peft at requirements.txt's versions
    "$python" - <<'EOF' 2>/dev/null
import re, gymnasium, mujoco, metaworld, tyro, transformers, peft
pins = dict(re.findall(r"^([\w-]+)==(\S+)", open("requirements.txt").read(), re.M))
assert (transformers.__version__, peft.__version__) == (pins["transformers"], pins["peft"])
EOF
}
if ! pinned && compgen -G "$wheels/*.whl" >/dev/null; then
    "$python" -m pip install --quiet --no-index --no-deps --upgrade --target .gpu_check/site "$wheels"/*.whl
    export PYTHONPATH="$PWD/.gpu_check/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}" HF_HUB_OFFLINE=1
quick=()
if [ "${QUICK:-0}" = 1 ]; then quick=(--quick); fi
exec "$python" benchmarks/gpu_check.py --out "$out" "${quick[@]}"
