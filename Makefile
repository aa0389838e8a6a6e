# The two commands the README shows first.
#   make quickstart   install everything, then run the quick start
#   make test         install the test dependencies, then run the test suite
PYTHON ?= python3

.PHONY: install install-dev quickstart test env-results

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
	$(PYTHON) benchmarks/env_report.py --update-readme
