# The two commands run one after the other on an H200 machine (16 Xeon cores) at 0fe15e5, with wheels/ from
# `make gpu-wheels` carried there; $OUT/j and $OUT/k are this folder. First grid.py --jobs sharing the GPU, then
# fine-tuning with and without --compile at batches of 32 (first command) and 128 (second).
export PYTHONUNBUFFERED=1; s=$(date +%s); o=$OUT/j; mkdir -p $o
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $o/gpu.txt
timeout 450 benchmarks/gpu_check_jobs.sh $o > $o/log.txt 2>&1 || exit
source benchmarks/gpu_env.sh; t=$(mktemp -d)
"$python" collect_demos.py --env clevr --episodes 30 --out $t/c.npz >/dev/null
timeout $(( s + 550 - $(date +%s) )) "$python" benchmarks/finetune_speed.py --llm smollm2-135m-arch --demos $t/c.npz \
    --steps 60 --variants "default;compile=--compile" --json $o/finetune_compile.json 2>&1 | tee $o/finetune_log.txt

o=$OUT/k; mkdir -p $o; source benchmarks/gpu_env.sh; t=$(mktemp -d)
"$python" collect_demos.py --env clevr --episodes 30 --out $t/c.npz >/dev/null
timeout 200 "$python" benchmarks/finetune_speed.py --llm smollm2-135m-arch --demos $t/c.npz --steps 60 \
    --variants "batch 128=--batch-size 128;compile, batch 128=--compile --batch-size 128" \
    --json $o/finetune_compile_128.json 2>&1 | tee $o/finetune_log_128.txt
