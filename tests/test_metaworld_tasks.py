"""Meta-World glue on the real metaworld package: task list, prompts, factory, experts."""

import gymnasium as gym
import numpy as np
import pytest

from envs.metaworld_tasks import (
    ACTION_DIM, MT10_TASKS, OBS_DIM, TASK_PROMPTS, MetaWorldExpert, check_task, make_metaworld_env,
    task_prompt,
)


def test_mt10_tasks_have_one_sentence_prompts():
    assert len(MT10_TASKS) == 10 and set(TASK_PROMPTS) == set(MT10_TASKS)
    for task in MT10_TASKS:
        prompt = task_prompt(task)
        assert prompt.endswith(".") and prompt.count(".") == 1 and len(prompt.split()) >= 4


def test_unseen_prompts_share_no_content_word_with_any_training_prompt():
    from tests.helpers import content_words

    unseen = [task_prompt(task, "unseen") for task in MT10_TASKS]
    assert len(set(unseen)) == len(MT10_TASKS) and all(p.endswith(".") and p.count(".") == 1 for p in unseen)
    assert not content_words(*unseen) & content_words(*TASK_PROMPTS.values())
    with pytest.raises(ValueError, match="unknown Meta-World instruction set 'french'; expected train, unseen, none"):
        task_prompt("reach-v3", "french")


@pytest.mark.parametrize("task", MT10_TASKS)
def test_every_mt10_task_makes_an_env_and_an_expert(task):
    env = make_metaworld_env(task, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (OBS_DIM,) and env.action_space.shape == (ACTION_DIM,)
    action = MetaWorldExpert(task)(obs)
    assert action.shape == (ACTION_DIM,) and np.all(np.abs(action) <= 1.0)
    env.step(action)
    env.close()


def test_reach_expert_solves_an_episode():
    env = make_metaworld_env("reach-v3", seed=0, max_episode_steps=200)
    expert = MetaWorldExpert("reach-v3")
    obs, _ = env.reset(seed=0)
    for step in range(200):
        obs, reward, terminated, truncated, info = env.step(expert(obs))
        if info["success"] or terminated or truncated:
            break
    assert info["success"] == 1.0 and step < 150


def test_seed_fixes_the_goals():
    first = make_metaworld_env("push-v3", seed=7).reset(seed=7)[0]
    second = make_metaworld_env("push-v3", seed=7).reset(seed=7)[0]
    other = make_metaworld_env("push-v3", seed=8).reset(seed=8)[0]
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[-3:], other[-3:])  # the goal position differs


def test_time_limit_is_configurable():
    env = make_metaworld_env("reach-v3", seed=0, max_episode_steps=5)
    env.reset(seed=0)
    for _ in range(5):
        *_, truncated, _ = env.step(np.zeros(ACTION_DIM, dtype=np.float32))
    assert truncated


def test_unknown_task_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown Meta-World task 'reach-v2'; expected one of: reach-v3"):
        check_task("reach-v2")
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        make_metaworld_env("assembly", seed=0)


def test_a_full_500_step_episode_is_recorded_once():
    # Meta-World's own statistics at its 500-step limit would clash with the caller's wrapper
    env = gym.wrappers.RecordEpisodeStatistics(make_metaworld_env("reach-v3", seed=0))
    env.reset(seed=0)
    for step in range(1, 501):
        _, _, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
        if terminated or truncated:
            break
    assert step == 500 and truncated and info["episode"]["l"] == 500
