"""Meta-World glue: the MT10 task list, a prompt per task, a seeded env factory, the experts.

Every task is a single-task gymnasium env from ``metaworld`` 3.x (``Meta-World/MT1``): a
39-number observation, 4 actions in [-1, 1], 500-step episodes and ``info["success"]``. The goal
(object and target positions) is drawn on each reset from 50 goals that the seed fixes.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np

import metaworld  # noqa: F401  (registers the Meta-World/* ids)
from metaworld.policies import ENV_POLICY_MAP

MT10_TASKS = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)

TASK_PROMPTS = {
    "reach-v3": "Move the robot gripper to the target position.",
    "push-v3": "Push the puck across the table to the target position.",
    "pick-place-v3": "Pick up the puck and place it at the target position.",
    "door-open-v3": "Open the door by pulling its handle around the hinge.",
    "drawer-open-v3": "Grab the drawer handle and pull the drawer open.",
    "drawer-close-v3": "Push the open drawer closed.",
    "button-press-topdown-v3": "Press the button down from above.",
    "peg-insert-side-v3": "Pick up the peg and insert it sideways into the hole.",
    "window-open-v3": "Slide the window open by pushing its handle sideways.",
    "window-close-v3": "Slide the window closed by pushing its handle sideways.",
}

# One prompt per task in words that no training prompt uses (kept out of fine-tuning): does the prior's LLM connect
# them to what it learned?
UNSEEN_TASK_PROMPTS = {
    "reach-v3": "Bring the arm's claw to the marked spot.",
    "push-v3": "Shove the small disc over the surface until it lies on the marked spot.",
    "pick-place-v3": "Lift the small disc and set it on the marked spot.",
    "door-open-v3": "Swing the gate wide by tugging its lever in an arc.",
    "drawer-open-v3": "Take hold of the cabinet knob and tug the compartment outward.",
    "drawer-close-v3": "Shove the cabinet compartment shut.",
    "button-press-topdown-v3": "Depress the switch with a vertical stroke.",
    "peg-insert-side-v3": "Lift the rod and thread it horizontally through the slot.",
    "window-open-v3": "Nudge the glass pane's latch laterally until the pane is ajar.",
    "window-close-v3": "Nudge the glass pane's latch laterally until the pane is shut.",
}
# `none`, the control: one sentence for every task (what a prior does without knowing the task)
PROMPT_SETS = {"train": TASK_PROMPTS, "unseen": UNSEEN_TASK_PROMPTS, "none": dict.fromkeys(TASK_PROMPTS, "Complete the task.")}

OBS_DIM = 39
# the observation as words (finetune_prior.py --state-encoding text): the hand's position, the gripper's opening,
# the first object's position and the goal's; not the object's quaternion, the second object (zeros on MT10's
# one-object tasks) or the previous frame's copy of the first 18 numbers
STATE_FIELDS = (("hand", (0, 1, 2)), ("gripper", (3,)), ("object", (4, 5, 6)), ("goal", (36, 37, 38)))
ACTION_DIM = 4
MAX_EPISODE_STEPS = 500


def check_task(task: str) -> str:
    """Return `task` if it is an MT10 task, else raise one clear ValueError."""
    if task not in TASK_PROMPTS:
        raise ValueError(f"unknown Meta-World task {task!r}; expected one of: {', '.join(MT10_TASKS)}")
    return task


def task_prompt(task: str, instructions: str = "train") -> str:
    """The task's prompt: `train`, the one demonstrations and fine-tuning use, `unseen`, in words they never use,
    or `none`, the same sentence for every task."""
    if instructions not in PROMPT_SETS:
        raise ValueError(f"unknown Meta-World instruction set {instructions!r}; expected {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[instructions][check_task(task)]


def make_metaworld_env(
    task: str,
    seed: int,
    render_mode: str | None = None,
    max_episode_steps: int = MAX_EPISODE_STEPS,
    terminate_on_success: bool = False,
) -> gym.Env:
    """Single-task Meta-World env; `seed` fixes its 50 goals, `reset(seed=...)` picks among them.

    Two envs made with the same seed and reset with the same seed start identically.
    """
    check_task(task)
    env = gym.make(
        "Meta-World/MT1",
        env_name=task,
        seed=seed,
        render_mode=render_mode,
        max_episode_steps=max_episode_steps,
        terminate_on_success=terminate_on_success,
        disable_env_checker=True,  # Meta-World's observation bounds are looser than declared
    )
    return DropInnerEpisodeStatistics(env)


class DropInnerEpisodeStatistics(gym.Wrapper):
    """Remove the `episode` statistics that Meta-World's own wrappers add at its 500-step limit.

    They cover only episodes that end there, and they clash with a caller's
    `gym.wrappers.RecordEpisodeStatistics`, which records every episode, shorter ones too.
    """

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.pop("episode", None)
        return obs, reward, terminated, truncated, info


class MetaWorldExpert:
    """The task's scripted ``metaworld.policies`` expert: ``expert(obs) -> action``."""

    def __init__(self, task: str):
        self.task = check_task(task)
        self.policy = ENV_POLICY_MAP[task]()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
            action = self.policy.get_action(obs)
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
