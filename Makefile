# The two commands the README shows first.
#   make quickstart   install everything, then run the quick start
#   make test         install the test dependencies, then run the test suite
PYTHON ?= python3

.PHONY: install install-dev quickstart test env-results prior-results stage2-results clevr-results metaworld-results report

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

# the priors of the comparison: LaGO's default (4 state tokens), one with a single latent state token (a quarter
# of the LLM work per state), the same LLM with random weights (does LLM knowledge matter?) and a larger LLM
demos/clevr.npz:
	$(PYTHON) collect_demos.py --env clevr
demos/metaworld.npz:
	$(PYTHON) collect_demos.py --env metaworld
checkpoints/prior__%__smollm2-135m__1/config.json: demos/%.npz
	$(PYTHON) finetune_prior.py --demos $< --llm smollm2-135m --out $(@D)
checkpoints/prior__%__smollm2-135m-random__1/config.json: demos/%.npz
	$(PYTHON) finetune_prior.py --demos $< --llm smollm2-135m --llm-init random --out $(@D)
checkpoints/prior__%__gemma3-270m__1/config.json: demos/%.npz
	$(PYTHON) finetune_prior.py --demos $< --llm gemma3-270m --out $(@D)
K1_PRIOR = checkpoints/prior__clevr__smollm2-135m-k1__1
$(K1_PRIOR)/config.json: demos/clevr.npz
	$(PYTHON) finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m --state-tokens 1 --out $(K1_PRIOR)
PRIORS = smollm2-135m smollm2-135m-random gemma3-270m
CLEVR_PRIORS = $(foreach p,$(PRIORS),checkpoints/prior__clevr__$(p)__1/config.json) $(K1_PRIOR)/config.json
METAWORLD_PRIORS = $(foreach p,$(PRIORS),checkpoints/prior__metaworld__$(p)__1/config.json)

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

# The comparison grids (benchmarks/grid.py: resumable, a finished run is skipped, also one archived in
# results/<env>/summaries/; two runs side by side on 2 cores). Measured CPU time per part: README, "Results".
# CLEVR-Robot: 5 seeds of every method (about 1.2 hours on 2 cores with native bf16, the priors included)
CLEVR_SEEDS = 1,2,3,4,5
GRID = $(PYTHON) benchmarks/grid.py --jobs 2
clevr-results: install $(CLEVR_PRIORS)
	$(GRID) --methods ppo,prior-alone-smollm2-135m,prior-alone-smollm2-135m-k1,prior-alone-smollm2-135m-random,prior-alone-gemma3-270m --seeds $(CLEVR_SEEDS)
	$(GRID) --methods lago-smollm2-135m,lago-smollm2-135m-k1 --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.25" --label f0.25
	$(GRID) --methods lago-smollm2-135m-k1 --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.1" --label f0.1
	$(GRID) --methods lago-smollm2-135m --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.05" --label f0.05
	$(GRID) --methods lago-smollm2-135m,lago-smollm2-135m-random,lago-gemma3-270m --seeds $(CLEVR_SEEDS) --lago-args="--prior-fraction 0.25 --guidance-coef 1 --guidance-schedule constant" --label f0.25-coef1-constant
	$(MAKE) report

# Meta-World: PPO and LaGO on all 10 MT10 tasks x 3 seeds; undecayed guidance and the other two priors on 3 tasks x 3 seeds
# (about 2 hours on 2 cores with native bf16, the priors included)
MW_SUBSET = reach-v3,drawer-close-v3,window-open-v3
metaworld-results: install $(METAWORLD_PRIORS)
	$(GRID) --env metaworld --tasks mt10 --methods ppo,prior-alone-smollm2-135m --seeds 1,2,3
	$(GRID) --env metaworld --tasks mt10 --methods lago-smollm2-135m --seeds 1,2,3 --lago-args="--prior-fraction 0.1" --label f0.1
	$(GRID) --env metaworld --tasks $(MW_SUBSET) --methods prior-alone-smollm2-135m-random,prior-alone-gemma3-270m --seeds 1
	$(GRID) --env metaworld --tasks $(MW_SUBSET) --methods lago-smollm2-135m-random,lago-gemma3-270m --seeds 1,2,3 --lago-args="--prior-fraction 0.1" --label f0.1
	$(GRID) --env metaworld --tasks $(MW_SUBSET) --methods lago-smollm2-135m --seeds 1,2,3 --lago-args="--prior-fraction 0.1 --guidance-coef 1 --guidance-schedule constant" --label f0.1-coef1-constant
	$(MAKE) report

# Every comparison table, plot and README number from the committed results/<env>/summaries/ (plus any finished
# runs under runs/grid/, copied there first): needs no run folder, no checkpoint, no GPU; a minute or two
CLEVR_COMPARE = lago-smollm2-135m+f0.25:ppo,lago-smollm2-135m-k1+f0.25:ppo,lago-smollm2-135m+f0.25-coef1-constant:ppo,lago-smollm2-135m+f0.25-coef1-constant:lago-smollm2-135m-random+f0.25-coef1-constant,lago-gemma3-270m+f0.25-coef1-constant:lago-smollm2-135m+f0.25-coef1-constant
MW_COMPARE = lago-smollm2-135m+f0.1:ppo,lago-smollm2-135m+f0.1-coef1-constant:ppo,lago-smollm2-135m+f0.1:lago-smollm2-135m-random+f0.1,lago-gemma3-270m+f0.1:lago-smollm2-135m+f0.1
report:
	$(PYTHON) benchmarks/report.py --env clevr --compare $(CLEVR_COMPARE)
	$(PYTHON) benchmarks/report.py --env metaworld --compare $(MW_COMPARE)
	$(PYTHON) benchmarks/readme_tables.py --update-readme
