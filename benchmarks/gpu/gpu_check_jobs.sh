#!/usr/bin/env bash
# A GPU check (4.4 minutes on an H200 machine) of benchmarks/grid.py --jobs with the runs sharing one GPU: LaGO
# at its defaults, each run in one thread with its prior on the GPU, alone (--jobs 1) and side by side (--jobs N).
# One JSON per benchmark in the folder given (jobs_clevr.json, jobs_metaworld.json; a run cut short keeps the first):
#   1. CLEVR-Robot: 2 runs one after the other, then 8 side by side (51,200 steps each);
#   2. Meta-World (drawer-close-v3, 1 env): 1 run alone, then 16 side by side (8,192 steps each), for the wall time
#      of the paper-scale MT10 grid with --jobs 16.
#   benchmarks/gpu/gpu_check_jobs.sh OUT_DIR
#   QUICK=1 benchmarks/gpu/gpu_check_jobs.sh /tmp/jobs   # a tiny dry run on any CPU
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:?usage: benchmarks/gpu/gpu_check_jobs.sh OUT_DIR}"
source benchmarks/gpu/gpu_env.sh
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "${QUICK:-0}" = 1 ]; then
    llm=tiny-random clevr_steps=2048 clevr_alone=1 clevr_jobs=2 metaworld_steps=2048 metaworld_jobs=2
else
    llm=smollm2-135m-arch clevr_steps=51200 clevr_alone=2 clevr_jobs=8 metaworld_steps=8192 metaworld_jobs=16
fi
untrained_priors "$tmp" "$llm"
# grid.py with `jobs` runs side by side (seeds 1 .. runs); prints the wall time in seconds
grid() {  # env steps jobs runs extra-args...
    local env="$1" steps="$2" jobs="$3" runs="$4" start
    shift 4
    start="$("$python" -c 'import time; print(time.time())')"
    "$python" benchmarks/grid.py --env "$env" --methods lago-check --seeds "$(seq -s, 1 "$runs")" --jobs "$jobs" \
        --threads 1 --total-timesteps "$steps" --eval-episodes 1 --eval-interval "$steps" --priors "$tmp/priors" \
        --out "$tmp/grid_${env}_$jobs" --results "$tmp/results_${env}_$jobs" "$@" >&2
    "$python" -c "import time; print(round(time.time() - $start, 1))"
}
summarise() {  # env steps out.json (jobs:wall ...): the runs' own wall times from their summary.json
    "$python" - "$tmp" "$@" <<'PY'
import glob, json, statistics, sys
tmp, env, steps, path, *measured = sys.argv[1:]
result = {"env": env, "steps_per_run": int(steps), "threads_per_run": 1, "jobs": {}}
for item in measured:
    jobs, wall = item.split(":")
    runs = [json.load(open(p)) for p in sorted(glob.glob(f"{tmp}/grid_{env}_{jobs}/**/summary.json", recursive=True))]
    seconds = [run["wall_seconds"] for run in runs]
    result["jobs"][jobs] = {"runs": len(runs), "wall_seconds": float(wall), "run_seconds": seconds,
                            "run_seconds_median": statistics.median(seconds),
                            "prior_seconds_median": statistics.median(run.get("prior_seconds", 0.0) for run in runs),
                            "env_steps_per_second": round(len(runs) * int(steps) / float(wall), 1)}
    print(f"{env}, --jobs {jobs}: {len(runs)} runs in {wall} s, {result['jobs'][jobs]['env_steps_per_second']} env "
          f"steps/s in all, a run's median {result['jobs'][jobs]['run_seconds_median']} s")
json.dump(result, open(path, "w"), indent=1)
PY
}
one="$(grid clevr "$clevr_steps" 1 "$clevr_alone")"
many="$(grid clevr "$clevr_steps" "$clevr_jobs" "$clevr_jobs")"
summarise clevr "$clevr_steps" "$out/jobs_clevr.json" "1:$one" "$clevr_jobs:$many"
one="$(grid metaworld "$metaworld_steps" 1 1 --tasks drawer-close-v3)"
many="$(grid metaworld "$metaworld_steps" "$metaworld_jobs" "$metaworld_jobs" --tasks drawer-close-v3)"
summarise metaworld "$metaworld_steps" "$out/jobs_metaworld.json" "1:$one" "$metaworld_jobs:$many"
