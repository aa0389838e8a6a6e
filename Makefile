# The two commands the README shows first.
#   make quickstart   install everything, then run the quick start
#   make test         install the test dependencies, then run the test suite
PYTHON ?= python3

.PHONY: install install-dev quickstart test env-results prior-results stage2-results clevr-results metaworld-results

install:
	$(PYTHON) -m pip install -r requirements.txt
	$(PYTHON) -m pip install --no-deps -r requirements-llm.txt

install-dev: install
	$(PYTHON) -m pip install -r requirements-dev.txt

quickstart: install
	$(PYTHON) collect_demos.py --env clevr
	$(PYTHON) finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m --train-steps 40 --eval-every 20 --out checkpoints/quickstart_prior
	$(PYTHON) evaluate_prior.py --prior-path checkpoints/quickstart_prior --episodes 20
	$(PYTHON) collect_demos.py --env metaworld --task reach-v3,push-v3 --episodes 5
	$(PYTHON) benchmarks/env_speed.py --seconds 2

test: install-dev
	$(PYTHON) -m pytest

# the environment facts in the README (results/env/*.json, then the README table)
env-results: install
	$(PYTHON) collect_demos.py --env clevr --episodes 200 --noise 0 --out results/env/clevr_expert
	$(PYTHON) collect_demos.py --env clevr --episodes 500 --noise 1 --out results/env/clevr_random
	$(PYTHON) collect_demos.py --env metaworld --task mt10 --episodes 20 --noise 0 --out results/env/metaworld_expert
	$(PYTHON) benchmarks/env_speed.py --json results/env/env_speed.json
	$(PYTHON) benchmarks/readme_tables.py --update-readme

# the stage-1 facts in the README (results/prior/*.json, about 30 minutes on 2 cores)
prior-results: install
	mkdir -p results/prior
	$(PYTHON) collect_demos.py --env clevr
	$(PYTHON) finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m
	$(PYTHON) evaluate_prior.py --prior-path checkpoints/prior__clevr__smollm2-135m__1 --json results/prior/clevr_smollm2-135m.json
	$(PYTHON) collect_demos.py --env metaworld
	$(PYTHON) finetune_prior.py --demos demos/metaworld.npz --llm smollm2-135m
	$(PYTHON) evaluate_prior.py --prior-path checkpoints/prior__metaworld__smollm2-135m__1 --episodes 10 --json results/prior/metaworld_smollm2-135m.json
	$(PYTHON) benchmarks/prior_speed.py --llm smollm2-135m --batch 2048 --json results/prior/prior_speed_smollm2-135m.json
	$(PYTHON) benchmarks/readme_tables.py --update-readme

# the CLEVR-Robot prior with a single latent state token (a quarter of the LLM work per state)
K1_PRIOR = checkpoints/prior__clevr__smollm2-135m-k1__1
$(K1_PRIOR)/config.json:
	$(PYTHON) finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m --state-tokens 1 --out $(K1_PRIOR)

# LaGO against PPO, wall time for the same budget (results/stage2/*.json; needs the priors of prior-results).
# results/stage2/avx2-fp32/ holds the same measurements from a CPU without native bf16 (prior in fp32).
stage2-results: install $(K1_PRIOR)/config.json
	mkdir -p results/stage2
	$(PYTHON) benchmarks/stage2_speed.py --env clevr --repeats 2 --json results/stage2/speed_clevr_fraction1.json
	$(PYTHON) benchmarks/stage2_speed.py --env clevr --repeats 2 --lago-args="--prior-fraction 0.25" --json results/stage2/speed_clevr_fraction0.25.json
	$(PYTHON) benchmarks/stage2_speed.py --env clevr --repeats 2 --lago-args="--prior-fraction 0.05" --json results/stage2/speed_clevr_fraction0.05.json
	$(PYTHON) benchmarks/stage2_speed.py --env clevr --repeats 2 --prior-path $(K1_PRIOR) --json results/stage2/speed_clevr_k1_fraction1.json
	$(PYTHON) benchmarks/stage2_speed.py --env clevr --repeats 2 --prior-path $(K1_PRIOR) --lago-args="--prior-fraction 0.25" --json results/stage2/speed_clevr_k1_fraction0.25.json
	$(PYTHON) benchmarks/stage2_speed.py --env clevr --repeats 2 --prior-path $(K1_PRIOR) --lago-args="--prior-fraction 0.1" --json results/stage2/speed_clevr_k1_fraction0.1.json
	$(PYTHON) benchmarks/stage2_speed.py --env metaworld --repeats 2 --eval-episodes 20 --json results/stage2/speed_metaworld_fraction1.json
	$(PYTHON) benchmarks/stage2_speed.py --env metaworld --repeats 2 --eval-episodes 20 --lago-args="--prior-fraction 0.1" --json results/stage2/speed_metaworld_fraction0.1.json
	$(PYTHON) benchmarks/readme_tables.py --update-readme

# the CLEVR-Robot comparison (results/clevr/; resumable, about an hour of CPU with native bf16; needs the
# CLEVR-Robot prior of prior-results, and the single-state-token one above)
CLEVR_SEEDS = 1,2,3,4,5
clevr-results: install $(K1_PRIOR)/config.json
	$(PYTHON) benchmarks/grid.py --methods ppo,prior-alone-smollm2-135m,prior-alone-smollm2-135m-k1 --seeds $(CLEVR_SEEDS)
	$(PYTHON) benchmarks/grid.py --methods lago-smollm2-135m,lago-smollm2-135m-k1 --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.25" --label f0.25
	$(PYTHON) benchmarks/grid.py --methods lago-smollm2-135m-k1 --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.1" --label f0.1
	$(PYTHON) benchmarks/grid.py --methods lago-smollm2-135m --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.05" --label f0.05
	$(PYTHON) benchmarks/grid.py --methods lago-smollm2-135m --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.25 --guidance-coef 1 --guidance-schedule constant" --label f0.25-coef1-constant
	$(PYTHON) benchmarks/report.py --env clevr
	$(PYTHON) benchmarks/readme_tables.py --update-readme

# the first Meta-World comparison: 3 MT10 tasks x 3 seeds (results/metaworld/; resumable; needs the Meta-World prior of prior-results)
MW_TASKS = reach-v3,drawer-close-v3,window-open-v3
metaworld-results: install
	$(PYTHON) benchmarks/grid.py --env metaworld --tasks $(MW_TASKS) --methods ppo,prior-alone-smollm2-135m --seeds 1,2,3
	$(PYTHON) benchmarks/grid.py --env metaworld --tasks $(MW_TASKS) --methods lago-smollm2-135m --seeds 1,2,3 --lago-args="--prior-fraction 0.1" --label f0.1
	$(PYTHON) benchmarks/grid.py --env metaworld --tasks $(MW_TASKS) --methods lago-smollm2-135m --seeds 1,2,3 --lago-args="--prior-fraction 0.1 --guidance-coef 1 --guidance-schedule constant" --label f0.1-coef1-constant
	$(PYTHON) benchmarks/report.py --env metaworld
	$(PYTHON) benchmarks/readme_tables.py --update-readme
