#!/usr/bin/env bash
# A shorter GPU check (about 4 minutes on an H100 machine): PPO against LaGO querying every state with the scripts'
# default devices on CLEVR-Robot (51,200 steps) and Meta-World (drawer-close-v3, 4,096 steps); the prior's default
# path at a batch of 16,384, and on a rollout's 1,024 states against the CPU's path; fine-tuning steps/s with
# batches of 128 (gpu_check's are 32). What benchmarks/gpu_check.sh does not time with today's defaults; one JSON
# per part in the folder given.
#   benchmarks/gpu_check_defaults.sh OUT_DIR
#   QUICK=1 benchmarks/gpu_check_defaults.sh /tmp/defaults   # a tiny dry run on any CPU
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: benchmarks/gpu_check_defaults.sh OUT_DIR}"
source benchmarks/gpu_env.sh
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "${QUICK:-0}" = 1 ]; then
    llm=tiny-random clevr_steps=1024 metaworld=(--total-timesteps 512 --both-args="--num-steps 256 --num-minibatches 4")
    batch=64 episodes=1 finetune_steps=4
else
    llm=smollm2-135m-arch clevr_steps=51200 metaworld=(--total-timesteps 4096) batch=16384 episodes=10 finetune_steps=40
fi
"$python" collect_demos.py --env clevr --episodes 30 --out "$tmp/clevr.npz" >/dev/null
"$python" collect_demos.py --env metaworld --task drawer-close-v3 --episodes 2 --max-episode-steps 100 \
    --out "$tmp/metaworld.npz" >/dev/null
for env in clevr metaworld; do  # untrained priors: the speed does not depend on the weights
    "$python" finetune_prior.py --demos "$tmp/$env.npz" --llm "$llm" --train-steps 2 --eval-every 2 --out "$tmp/prior_$env" \
        --run-dir "$tmp/runs_$env" >/dev/null
done
"$python" benchmarks/stage2_speed.py --env clevr --prior-path "$tmp/prior_clevr" --total-timesteps "$clevr_steps" \
    --eval-episodes "$episodes" --json "$out/stage2_clevr.json"
"$python" benchmarks/prior_speed.py --llm "$llm" --batch "$batch" --json "$out/prior.json"
# a CLEVR-Robot rollout of LaGO's defaults (1,024 states, about 16 instructions): the default path and the CPU's
"$python" benchmarks/prior_speed.py --llm "$llm" --batch 1024 --distinct-texts 16 --json "$out/prior_rollout.json"
"$python" benchmarks/prior_speed.py --llm "$llm" --batch 1024 --distinct-texts 16 --max-batch 512 --states-per-row 1 \
    --json "$out/prior_rollout_chunks.json"
"$python" benchmarks/stage2_speed.py --env metaworld --prior-path "$tmp/prior_metaworld" "${metaworld[@]}" \
    --eval-episodes "$episodes" --json "$out/stage2_metaworld.json"
"$python" finetune_prior.py --demos "$tmp/clevr.npz" --llm "$llm" --train-steps "$finetune_steps" \
    --eval-every "$finetune_steps" --batch-size 128 --out "$tmp/prior_128" --run-dir "$tmp/runs_128"
"$python" - "$tmp/prior_128/config.json" "$out/finetune_128.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
steps = config["args"]["train_steps"]
result = {"batch_size": 128, "steps": steps, "seconds": config["train_seconds"],
          "steps_per_second": steps / config["train_seconds"], "device": config["machine"]["device"]}
json.dump(result, open(sys.argv[2], "w"), indent=1)
print(f"fine-tuning, batches of 128: {result['steps_per_second']:.2f} steps/s")
PY
