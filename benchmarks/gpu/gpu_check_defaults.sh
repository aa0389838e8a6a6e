#!/usr/bin/env bash
# A GPU check (about 7.5 minutes on an H100 machine) of today's defaults, the most telling part first, one JSON per
# part in the folder given (a run cut short keeps the parts it finished):
#   1. PPO against LaGO querying every state on CLEVR-Robot (51,200 steps), each script with its default devices;
#   2. the prior on a rollout's 1,024 states (16 instructions): the default path and the CPU's chunks of 512;
#   3. Meta-World (drawer-close-v3) on every core: 16 envs in subprocesses, 65,536 steps of PPO and of LaGO, for the
#      env steps per second of a long run;
#   4. fine-tuning steps/s with batches of 32 (the default) and of 128: if the larger batch costs about as much per
#      step, the step waits on Python and kernel launches, not on the GPU;
#   5. the prior's default path at a batch of 16,384.
# What benchmarks/gpu/gpu_check.sh does not time with today's defaults.
#   benchmarks/gpu/gpu_check_defaults.sh OUT_DIR
#   QUICK=1 benchmarks/gpu/gpu_check_defaults.sh /tmp/defaults   # a tiny dry run on any CPU
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:?usage: benchmarks/gpu/gpu_check_defaults.sh OUT_DIR}"
source benchmarks/gpu/gpu_env.sh
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "${QUICK:-0}" = 1 ]; then
    llm=tiny-random clevr_steps=2048 batch=64 episodes=1 finetune_steps=4 metaworld_steps=512
    metaworld_args="--num-envs 2 --num-steps 128 --num-minibatches 4 --async-envs"
else
    llm=smollm2-135m-arch clevr_steps=51200 batch=16384 episodes=10 finetune_steps=40 metaworld_steps=65536
    metaworld_args="--num-envs 16 --num-steps 128 --async-envs"
fi
untrained_priors "$tmp" "$llm"
"$python" benchmarks/speed/stage2_speed.py --env clevr --prior-path "$tmp/priors/prior__clevr__check__1" \
    --total-timesteps "$clevr_steps" --eval-episodes "$episodes" --json "$out/stage2_clevr.json"
# a CLEVR-Robot rollout of LaGO's defaults (1,024 states, about 16 instructions): the default path and the CPU's
"$python" benchmarks/speed/prior_speed.py --llm "$llm" --batch 1024 --distinct-texts 16 --json "$out/prior_rollout.json"
"$python" benchmarks/speed/prior_speed.py --llm "$llm" --batch 1024 --distinct-texts 16 --max-batch 512 --states-per-row 1 \
    --json "$out/prior_rollout_chunks.json"
"$python" benchmarks/speed/stage2_speed.py --env metaworld --prior-path "$tmp/priors/prior__metaworld__check__1" \
    --total-timesteps "$metaworld_steps" --both-args="$metaworld_args" --eval-episodes 1 --json "$out/stage2_metaworld_16envs.json"
for batch_size in 32 128; do
    "$python" finetune_prior.py --demos "$tmp/clevr.npz" --llm "$llm" --train-steps "$finetune_steps" \
        --eval-every "$finetune_steps" --batch-size "$batch_size" --out "$tmp/prior_$batch_size" --run-dir "$tmp/runs_$batch_size"
    "$python" - "$tmp/prior_$batch_size/config.json" "$out/finetune_$batch_size.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
steps, batch_size = config["args"]["train_steps"], config["args"]["batch_size"]
result = {"batch_size": batch_size, "steps": steps, "seconds": config["train_seconds"],  # with the validation pass
          "seconds_per_step": config["seconds_per_step"], "steps_per_second": 1 / config["seconds_per_step"],
          "device": config["machine"]["device"]}
json.dump(result, open(sys.argv[2], "w"), indent=1)
print(f"fine-tuning, batches of {batch_size}: {result['steps_per_second']:.2f} steps/s")
PY
done
"$python" benchmarks/speed/prior_speed.py --llm "$llm" --batch "$batch" --json "$out/prior.json"
