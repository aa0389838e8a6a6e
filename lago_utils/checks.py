"""The stage-2 scripts' argument checks: one sentence that names the flag and what it expects, never a stack trace.

    fail(args, "--task 'fly-v3' is not an MT10 task (...)")     # `<exp-name>.py: error: <sentence>`, exit 1
    require(args, "gamma", 0 < args.gamma <= 1, "finite and in (0, 1]")
    args = check_ppo_args(args)                                  # every PPO flag, and the derived sizes
"""

from __future__ import annotations

import importlib.util
import math
import sys
from typing import Any, NoReturn


def fail(args: Any, message: str) -> NoReturn:
    sys.exit(f"{args.exp_name}.py: error: {message}")


def require(args: Any, flag: str, valid: bool, expected: str) -> None:
    """Stop with `--<flag> must be <expected>, got <value>` unless `valid` holds and the value is finite."""
    if not valid or not math.isfinite(getattr(args, flag) or 0.0):
        fail(args, f"--{flag.replace('_', '-')} must be {expected}, got {getattr(args, flag)}")


def check_ppo_args(args: Any) -> Any:
    """Check the flags of a stage-2 script's PPO (--task on Meta-World, --env-id on CLEVR-Robot, and the rest), one
    sentence per bad flag; fill in the derived sizes."""
    if hasattr(args, "task"):
        from envs.metaworld_tasks import MT10_TASKS

        if args.task not in MT10_TASKS:
            fail(args, f"--task {args.task!r} is not an MT10 task ({', '.join(MT10_TASKS)})")
    else:
        from envs.clevr_robot import ENV_ID

        if args.env_id != ENV_ID:
            fail(args, f"--env-id must be {ENV_ID}, got {args.env_id!r} (Meta-World tasks: *_metaworld_continuous.py)")
    for flag in ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "hidden_size",
                 "max_episode_steps", "eval_interval", "eval_episodes"):
        require(args, flag, getattr(args, flag) > 0, "a positive integer")
    for flag in ("learning_rate", "clip_coef", "max_grad_norm"):
        require(args, flag, getattr(args, flag) > 0, "finite and > 0")
    for flag in ("ent_coef", "vf_coef"):
        require(args, flag, getattr(args, flag) >= 0, "finite and >= 0")
    require(args, "seed", args.seed >= 0, "a non-negative integer")
    require(args, "gamma", 0 < args.gamma <= 1, "finite and in (0, 1]")
    require(args, "gae_lambda", 0 <= args.gae_lambda <= 1, "finite and in [0, 1]")
    require(args, "target_kl", args.target_kl is None or args.target_kl > 0, "finite and > 0")
    for flag, module in (("track", "wandb"), ("capture_video", "moviepy")):  # optional dependencies
        if getattr(args, flag) and importlib.util.find_spec(module) is None:
            fail(args, f"--{flag.replace('_', '-')} needs {module}, which is not installed: pip install {module}")
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    if args.minibatch_size < 2 or args.num_iterations == 0:  # one state: no advantages to normalise
        fail(args, f"--total-timesteps {args.total_timesteps} must cover one batch of {args.batch_size} steps, "
                   "and --num-minibatches at most half that many")
    return args
