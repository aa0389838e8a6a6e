"""CLEVR-Robot: relations, action semantics, goals and splits, seeding, the expert, the API."""

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers CLEVRRobot-v0)
from envs.clevr_robot import (
    COLOURS, DIRECTIONS, ENV_ID, GOAL_DIM, GOALS, HELD_OUT_COMBINATIONS, NUM_ACTIONS, OBS_DIM,
    PARAPHRASE_TEMPLATES, RELATIONS, TEST_GOAL_IDS, TRAIN_GOAL_IDS, TRAIN_TEMPLATES, CLEVRRobotEnv,
    describe_action, expert_action, goal_holds, goal_text, goal_vector, relation_holds,
)

ROOT = Path(__file__).resolve().parents[1]
LEFT, RIGHT, FRONT, BEHIND = (RELATIONS.index(r) for r in ("left", "right", "front", "behind"))
# five balls far apart: ball 0 in the middle, the others in the corners
SPREAD = np.array([[0.0, 0.0], [0.4, 0.4], [-0.4, 0.4], [0.4, -0.4], [-0.4, -0.4]])


def layout(target_xy, anchor_xy=(0.0, 0.0)):
    positions = SPREAD.copy()
    positions[0], positions[1] = target_xy, anchor_xy
    return positions


@pytest.mark.parametrize(
    "target_xy, relation, expected",
    [
        ((-0.3, 0.0), LEFT, True),
        ((0.3, 0.0), LEFT, False),
        ((0.3, 0.0), RIGHT, True),
        ((0.0, -0.3), FRONT, True),
        ((0.0, 0.3), BEHIND, True),
        ((0.0, 0.3), FRONT, False),
        ((-0.3, 0.3), LEFT, True),  # 45 degrees off: cosine 0.707 > 0.6
        ((-0.3, 0.5), LEFT, False),  # 59 degrees off: cosine 0.51 < 0.6
        ((-0.69, 0.0), LEFT, True),
        ((-0.71, 0.0), LEFT, False),  # too far apart (>= 0.7)
    ],
)
def test_relation_predicate(target_xy, relation, expected):
    assert relation_holds(layout(target_xy), 0, relation, 1) is expected


def test_relations_are_antisymmetric():
    positions = layout((-0.3, 0.1))
    assert relation_holds(positions, 0, LEFT, 1) and relation_holds(positions, 1, RIGHT, 0)
    assert not relation_holds(positions, 1, LEFT, 0)


def make_env(**kwargs) -> CLEVRRobotEnv:
    env = CLEVRRobotEnv(**kwargs)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("action", range(NUM_ACTIONS))
def test_push_moves_the_ball_mostly_along_the_direction(action):
    env = make_env()
    env.data.qpos[:OBS_DIM] = SPREAD.reshape(-1)
    ball, direction_index = divmod(action, len(DIRECTIONS))
    direction = DIRECTIONS[direction_index] / np.linalg.norm(DIRECTIONS[direction_index])
    before = env.ball_positions
    env.step(action)
    moved = env.ball_positions - before
    along = moved[ball] @ direction
    assert along > 0.1, f"{describe_action(action)} moved the ball only {along:.3f}"
    assert along > 0.95 * np.linalg.norm(moved[ball])
    others = np.delete(moved, ball, axis=0)
    # a corner ball pushed outwards stops at the wall; the far-away balls never move
    assert np.abs(others).max() < 1e-6


def test_walls_keep_the_balls_on_the_table():
    env = make_env()
    for _ in range(10):  # push the green ball right ten times
        env.step(COLOURS.index("green") * len(DIRECTIONS) + 0)
    assert np.all(np.abs(env.ball_positions) < 0.6)


def test_seeding_reproduces_episodes():
    def rollout(seed):
        env = gym.make(ENV_ID)
        obs, info = env.reset(seed=seed)
        trace = [obs, info["goal_text"]]
        rng = np.random.default_rng(0)
        for _ in range(20):
            obs, reward, terminated, truncated, info = env.step(int(rng.integers(NUM_ACTIONS)))
            trace += [obs, reward]
            if terminated or truncated:
                obs, info = env.reset()
                trace += [obs, info["goal_text"]]
        return trace

    first, second, other = rollout(3), rollout(3), rollout(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_no_goal_holds_at_reset_and_goals_stay_in_their_split():
    for split, allowed in (("train", TRAIN_GOAL_IDS), ("test", TEST_GOAL_IDS)):
        env = CLEVRRobotEnv(goal_split=split)
        seen = set()
        for seed in range(300):
            obs, info = env.reset(seed=seed)
            assert not goal_holds(obs, info["goal_id"])
            assert info["goal_id"] in allowed
            seen.add(info["goal_id"])
        assert len(seen) > 0.8 * len(allowed)


def test_reset_with_a_fixed_goal_resamples_until_it_does_not_hold():
    env = CLEVRRobotEnv()
    for seed in range(50):
        obs, info = env.reset(seed=seed, options={"goal_id": 0})
        assert info["goal_id"] == 0 and not goal_holds(obs, 0)


def test_train_and_test_goals_are_disjoint_and_hold_out_combinations():
    assert set(TRAIN_GOAL_IDS).isdisjoint(TEST_GOAL_IDS)
    assert set(TRAIN_GOAL_IDS) | set(TEST_GOAL_IDS) == set(range(len(GOALS))) and len(GOALS) == 80
    held_out = {(COLOURS.index(c), RELATIONS.index(r)) for c, r in HELD_OUT_COMBINATIONS}
    assert {(GOALS[g][0], GOALS[g][1]) for g in TEST_GOAL_IDS} == held_out
    assert not {(GOALS[g][0], GOALS[g][1]) for g in TRAIN_GOAL_IDS} & held_out
    # every colour and every relation still appears in training, only the combination is new
    assert {GOALS[g][0] for g in TRAIN_GOAL_IDS} == set(range(len(COLOURS)))
    assert {GOALS[g][1] for g in TRAIN_GOAL_IDS} == set(range(len(RELATIONS)))


def test_instructions_and_paraphrases():
    assert goal_text(GOALS.index((0, LEFT, 1))) == "Push the red ball to the left of the blue ball."
    assert set(TRAIN_TEMPLATES).isdisjoint(PARAPHRASE_TEMPLATES)
    env = CLEVRRobotEnv(instructions="paraphrase")
    texts = {env.reset(seed=seed)[1]["goal_text"] for seed in range(40)}
    train_texts = {goal_text(g, t) for g in range(len(GOALS)) for t in TRAIN_TEMPLATES}
    assert texts and texts.isdisjoint(train_texts)


def test_unseen_instructions_share_no_content_word_with_training():
    from envs.clevr_robot import INSTRUCTION_SETS, UNSEEN_TEMPLATES
    from tests.helpers import content_words

    train_texts = {goal_text(g, t) for g in range(len(GOALS)) for t in TRAIN_TEMPLATES}
    env = CLEVRRobotEnv(goal_split="all", instructions="unseen")
    unseen = {}
    for seed in range(200):
        _, info = env.reset(seed=seed)
        unseen.setdefault(info["goal_id"], set()).add(info["goal_text"])
    texts = set().union(*unseen.values())
    assert len(unseen) > 40 and texts.isdisjoint(train_texts)
    assert not content_words(*texts) & content_words(*train_texts)
    assert {"crimson", "west", "camera", "marble"} <= content_words(*texts)  # the words are really there
    # the instruction still names one goal: no two goals share a text (each template, all 80 goals)
    templates, colours, relations = INSTRUCTION_SETS["unseen"]
    assert templates == UNSEEN_TEMPLATES
    for template in templates:
        assert len({goal_text(g, template, colours, relations) for g in range(len(GOALS))}) == len(GOALS)


def test_the_no_goal_control_gives_every_goal_the_same_sentence():
    env = CLEVRRobotEnv(goal_split="all", instructions="none")
    infos = [env.reset(seed=seed)[1] for seed in range(30)]
    assert len({info["goal_id"] for info in infos}) > 10 and {info["goal_text"] for info in infos} == {"Complete the task."}


def test_goal_encoding_in_info_and_observation():
    env = make_env(goal_in_obs=True)
    obs, info = env.reset(seed=1)
    assert obs.shape == (OBS_DIM + GOAL_DIM,) and env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs[OBS_DIM:], goal_vector(info["goal_id"]))
    np.testing.assert_array_equal(info["goal"], goal_vector(info["goal_id"]))
    assert goal_vector(5).sum() == 3
    assert len({tuple(goal_vector(g)) for g in range(len(GOALS))}) == len(GOALS)


@pytest.mark.parametrize("split", ["train", "test"])
def test_expert_solves_goals(split):
    env = gym.make(ENV_ID, goal_split=split)
    successes = 0
    for episode in range(60):
        env.reset(seed=100 + episode)
        while True:
            _, reward, terminated, truncated, info = env.step(expert_action(env))
            if terminated or truncated:
                break
        assert reward == info["success"]
        successes += info["success"]
    assert successes / 60 >= 0.95


def test_success_terminates_and_time_limit_truncates():
    env = gym.make(ENV_ID, max_episode_steps=3)
    env.reset(seed=0)
    for step in range(3):
        _, reward, terminated, truncated, _ = env.step(0)
        if terminated:
            assert reward == 1.0
            break
    assert terminated or (truncated and step == 2)


def test_passes_the_gymnasium_env_checker():
    check_env(gym.make(ENV_ID).unwrapped, skip_render_check=True)
    check_env(gym.make(ENV_ID, goal_in_obs=True).unwrapped, skip_render_check=True)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="goal_split"):
        CLEVRRobotEnv(goal_split="validation")
    with pytest.raises(ValueError, match="instructions"):
        CLEVRRobotEnv(instructions="french")
    env = make_env()
    with pytest.raises(ValueError, match="action"):
        env.step(NUM_ACTIONS)
    with pytest.raises(ValueError, match="goal_id"):
        env.reset(options={"goal_id": 80})


def test_rgb_rendering_when_offscreen_gl_exists():
    code = (
        "import envs, gymnasium as gym\n"
        "from gymnasium.utils.env_checker import check_env\n"
        "env = gym.make('CLEVRRobot-v0', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "frame = env.render()\n"
        "print(frame.shape, frame.dtype, frame.std() > 5)\n"
        "check_env(gym.make('CLEVRRobot-v0').unwrapped)\n"  # with its render check
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )
    if "offscreen OpenGL context" in result.stderr:
        pytest.skip("no offscreen OpenGL on this machine")
    assert result.returncode == 0, result.stderr
    assert "(256, 256, 3) uint8 True" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
