# The commands run on a second H100 machine at 7cea4b0 (wheels/ from make gpu-wheels carried there; $OUT: the folder whose t/ is this one)
set -e; mkdir -p $OUT/t; source benchmarks/gpu_env.sh; tmp=$(mktemp -d)
"$python" collect_demos.py --env clevr --episodes 30 --out $tmp/c.npz >/dev/null
"$python" finetune_prior.py --demos $tmp/c.npz --llm smollm2-135m-arch --train-steps 2 --eval-every 2 --out $tmp/p --run-dir $tmp/r >/dev/null
for t in 2 16; do "$python" benchmarks/stage2_speed.py --env clevr --prior-path $tmp/p --eval-episodes 10 --threads $t --json $OUT/t/stage2_clevr_threads$t.json 2>&1 | tail -7; done
