"""Environment speed: steps per second of CLEVR-Robot (1 env, a vector of 8) and a Meta-World task.

    python benchmarks/speed/env_speed.py                       # pinned to one core, 5 s per measurement
    python benchmarks/speed/env_speed.py --json results/env_speed.json

Random actions, auto-reset on episode end, the environments as the training scripts make them
(``gym.make`` with its wrappers). One CLEVR-Robot step is one whole push (40 physics substeps).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import gymnasium as gym
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.common import cpu_name, write_json  # noqa: E402
from envs.clevr_robot import ENV_ID, expert_action  # noqa: E402
from envs.metaworld_tasks import make_metaworld_env  # noqa: E402


@dataclass
class Args:
    seconds: float = 5.0
    """wall time of each measurement"""
    cores: int = 1
    """pin the process to this many CPU cores (0: leave it unpinned)"""
    metaworld_task: str = "reach-v3"
    """the Meta-World task to time"""
    json: Optional[str] = None
    """also write the results to this JSON file"""


def steps_per_second(step: Callable[[], int], seconds: float) -> float:
    """Call `step` (which returns how many env steps it took) for `seconds`; steps per second."""
    for _ in range(20):  # warm up
        step()
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        steps += step()
    return steps / elapsed


def single_env_step(env: gym.Env) -> Callable[[], int]:
    env.reset(seed=0)
    env.action_space.seed(0)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
        return 1

    return step


def vector_env_step(envs: gym.vector.VectorEnv) -> Callable[[], int]:
    envs.reset(seed=0)
    envs.action_space.seed(0)

    def step() -> int:
        envs.step(envs.action_space.sample())
        return envs.num_envs

    return step


def expert_step(env: gym.Env) -> Callable[[], int]:
    env.reset(seed=0)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(expert_action(env))
        if terminated or truncated:
            env.reset()
        return 1

    return step


def main(args: Args) -> dict[str, float]:
    if args.seconds <= 0:
        raise SystemExit(f"env_speed.py: error: --seconds must be positive, got {args.seconds}")
    if args.cores > 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine = cpu_name()
    print(f"{machine}, {cores} core(s), {args.seconds:.0f} s each")

    results: dict[str, float] = {}
    measurements = {
        "clevr_robot_1_env": lambda: single_env_step(gym.make(ENV_ID)),
        "clevr_robot_sync_vector_8_envs": lambda: vector_env_step(
            gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID) for _ in range(8)])
        ),
        "clevr_robot_scripted_expert": lambda: expert_step(gym.make(ENV_ID)),
        f"metaworld_{args.metaworld_task}_1_env": lambda: single_env_step(
            make_metaworld_env(args.metaworld_task, seed=0)
        ),
    }
    for name, make_step in measurements.items():
        results[name] = steps_per_second(make_step(), args.seconds)
        print(f"{name:<40}{results[name]:>10,.0f} env steps/s", flush=True)
    if args.json:
        write_json(args.json, {"machine": machine, "cores": cores, "seconds": args.seconds, "steps_per_second": results})
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
