"""Shared fixtures: tiny-random priors fine-tuned for a few steps on small demonstration files."""

from pathlib import Path

import pytest

import collect_demos
from tests.helpers import finetune


@pytest.fixture(scope="session")
def clevr_prior(tmp_path_factory) -> Path:
    return finetune(tmp_path_factory, "clevr", collect_demos.Args(env="clevr", episodes=15, seed=2))


@pytest.fixture(scope="session")
def metaworld_prior(tmp_path_factory) -> Path:
    demos = collect_demos.Args(env="metaworld", task="reach-v3", episodes=3, max_episode_steps=30)
    return finetune(tmp_path_factory, "metaworld", demos)
