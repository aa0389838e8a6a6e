# Run on an H200 machine (16 Xeon cores) at cfd0eb3, with wheels/ from `make gpu-wheels` carried there; $OUT/p is this
# folder. The prior's default path on the current code, at the batch of the target and at a rollout-sized batch.
o=$OUT/p; mkdir -p $o; source benchmarks/gpu_env.sh; nvidia-smi --query-gpu=name --format=csv,noheader | tee $o/gpu.txt
"$python" benchmarks/prior_speed.py --llm smollm2-135m-arch --batch 16384 --json $o/prior.json 2>&1 | tee $o/log.txt
"$python" benchmarks/prior_speed.py --llm smollm2-135m-arch --batch 1024 --distinct-texts 16 --json $o/prior_rollout.json 2>&1 | tee -a $o/log.txt
