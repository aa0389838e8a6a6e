"""Shared fixtures: tiny-random priors fine-tuned for a few steps on small demonstration files. The suite runs in
parallel (pytest-xdist, one worker per core): each worker computes in one thread, and the tests that share an
expensive module fixture run on one worker, which builds it once."""

import os
from pathlib import Path

import pytest
import torch

import collect_demos
from tests.helpers import finetune

# module fixtures that take minutes: the tests that use one are sent to the same worker
SHARED_ON_ONE_WORKER = ("small_grid", "metaworld_grid")


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)  # as many workers as cores; the subprocesses of the tests run in one thread too


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in SHARED_ON_ONE_WORKER:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))


@pytest.fixture(params=["bf16", "fp32"], ids=["cpu-bf16", "cpu-fp32"])
def cpu_precision(request, monkeypatch) -> str:
    """The test runs twice, whatever this CPU is: as on a CPU with native bf16 and as on one without (LAGO_CPU_BF16=1,
    then 0), so that `--precision auto` and the stage-2 prior take each path on every machine."""
    monkeypatch.setenv("LAGO_CPU_BF16", "1" if request.param == "bf16" else "0")
    return request.param


@pytest.fixture(scope="session")
def clevr_prior(tmp_path_factory) -> Path:
    return finetune(tmp_path_factory, "clevr", collect_demos.Args(env="clevr", episodes=15, seed=2))


@pytest.fixture(scope="session")
def metaworld_prior(tmp_path_factory) -> Path:
    demos = collect_demos.Args(env="metaworld", task="reach-v3", episodes=3, max_episode_steps=30)
    return finetune(tmp_path_factory, "metaworld", demos)
