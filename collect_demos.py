"""Collect offline demonstrations from the scripted experts of CLEVR-Robot and Meta-World.

    python collect_demos.py --env clevr                    # demos/clevr.npz (+ demos/clevr.json)
    python collect_demos.py --env metaworld --task mt10    # demos/metaworld.npz, all ten tasks
    python collect_demos.py --env clevr --episodes 200 --noise 0 --out demos/clevr_expert.npz

By default the demonstrations are deliberately imperfect and few (epsilon-random actions on
CLEVR-Robot, Gaussian action noise on Meta-World), so that a prior trained on them is useful but
not already the solution. The recorded action is the one executed, noise included.

File format (one ``.npz`` per benchmark, one row per transition, written atomically):
    obs              float32 (N, obs_dim)   raw observation before the action
    actions          int64 (N,) | float32 (N, action_dim)
    rewards          float32 (N,)
    task_text        str (N,)               CLEVR-Robot instruction / Meta-World task prompt
    task_id          int64 (N,)             CLEVR-Robot goal id / index into MT10_TASKS
    episode          int64 (N,)             episode index
    episode_success  bool (N,)              whether that episode ended in success
    metadata         str ()                 JSON, the same as the sidecar ``.json`` file
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import tyro

DEMO_KEYS = ("obs", "actions", "rewards", "task_text", "task_id", "episode", "episode_success")
DEFAULT_EPISODES = {"clevr": 1000, "metaworld": 20}
DEFAULT_NOISE = {"clevr": 0.2, "metaworld": 0.3}


@dataclass
class Args:
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark: CLEVR-Robot (discrete actions) or Meta-World (continuous actions)"""
    task: Optional[str] = None
    """Meta-World only: an MT10 task name, a comma-separated list of them, or `mt10` (default) for all ten"""
    episodes: Optional[int] = None
    """episodes in total (clevr) or per task (metaworld); default 1000 for clevr, 20 per task for metaworld"""
    noise: Optional[float] = None
    """expert noise: probability of a uniform random action (clevr, default 0.2) or std of Gaussian action noise (metaworld, default 0.3)"""
    seed: int = 1
    """seed of the environments and of the noise"""
    goal_split: Literal["train", "test", "all"] = "train"
    """CLEVR-Robot only: the goals to demonstrate (keep `train` so that held-out goals stay unseen)"""
    max_episode_steps: Optional[int] = None
    """episode limit; default 50 for clevr, 500 for metaworld"""
    out: Optional[str] = None
    """output file (`.npz` is appended if missing); default demos/<env>.npz"""


class DemoError(ValueError):
    """A bad argument, path or demonstration file."""


# --- the file format ------------------------------------------------------------------------
def atomic_write(path: Path, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def prepare_output(out: str | os.PathLike) -> Path:
    """Resolve an output path ending in .npz, create its folder and check that it is writable."""
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        raise DemoError(f"--out {out} is a directory; give a file name such as {path / 'demos.npz'}")
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise DemoError(
            f"cannot write --out {out}: {path.parent} is not a writable folder ({error.strerror or error})"
        ) from error
    return path


def save_demos(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """Write the .npz and its .json sidecar atomically; an existing pair is replaced only when both are written."""
    path = Path(path)
    missing = [key for key in DEMO_KEYS if key not in arrays]
    if missing:
        raise DemoError(f"demonstrations lack {missing}")
    if len(arrays["obs"]) == 0:
        raise DemoError(f"no transitions were collected, nothing written to {path}")
    metadata_json = json.dumps(metadata, indent=2)
    atomic_write(
        path, lambda f: np.savez_compressed(f, metadata=np.array(metadata_json), **arrays)
    )
    atomic_write(path.with_suffix(".json"), lambda f: f.write(metadata_json.encode() + b"\n"))
    return path


def load_demos(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a demonstration file; anything that is not one is a DemoError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DemoError(f"demonstration file {path} does not exist (make one with collect_demos.py)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as error:
        raise DemoError(f"{path} is not a readable .npz demonstration file ({error})") from error
    missing = [key for key in (*DEMO_KEYS, "metadata") if key not in arrays]
    if missing:
        raise DemoError(f"{path} is not a LaGO demonstration file: it lacks {', '.join(missing)}")
    lengths = {key: len(arrays[key]) for key in DEMO_KEYS}
    if len(set(lengths.values())) != 1 or lengths["obs"] == 0:
        raise DemoError(f"{path} is corrupt: its arrays have lengths {lengths}")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as error:
        raise DemoError(f"{path} has unreadable metadata ({error})") from error
    check_demos(path, arrays, metadata)
    return arrays, metadata


def check_demos(path: Path, arrays: dict[str, np.ndarray], metadata: Any) -> None:
    """Refuse metadata without its required fields, and observations or actions that are not finite, not of the
    declared shape or out of the action space; each problem is one DemoError sentence naming the file."""
    if not isinstance(metadata, dict) or metadata.get("env") not in DEFAULT_EPISODES:
        raise DemoError(f"{path} has no valid metadata: `env` must be clevr or metaworld")
    space = metadata.get("action_space")
    discrete = isinstance(space, dict) and space.get("type") == "discrete"
    if not (discrete and isinstance(space.get("n"), int) and space["n"] > 0
            or isinstance(space, dict) and space.get("type") == "box" and isinstance(space.get("shape"), list)
            and {"low", "high"} <= set(space)):
        raise DemoError(f"{path} has no valid metadata: `action_space` must be discrete with n > 0, or box with shape, "
                        f"low and high; got {space!r}")
    obs, actions = arrays["obs"], arrays["actions"]
    if obs.ndim != 2 or not np.issubdtype(obs.dtype, np.floating):
        raise DemoError(f"{path}: `obs` must be a float array of shape (N, obs_dim), got {obs.dtype} {obs.shape}")
    if not np.isfinite(obs).all():
        raise DemoError(f"{path}: {int((~np.isfinite(obs)).any(axis=1).sum())} rows of `obs` are not finite (NaN or inf)")
    if metadata.get("obs_dim", obs.shape[1]) != obs.shape[1]:
        raise DemoError(f"{path}: `obs` has {obs.shape[1]} numbers per row but the metadata says obs_dim {metadata['obs_dim']}")
    if discrete:
        if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
            raise DemoError(f"{path}: discrete `actions` must be integers of shape (N,), got {actions.dtype} {actions.shape}")
        out_of_range = (actions < 0) | (actions >= space["n"])
        if out_of_range.any():
            raise DemoError(f"{path}: {int(out_of_range.sum())} actions are outside 0..{space['n'] - 1} "
                            f"(first: {int(actions[out_of_range][0])} in row {int(np.flatnonzero(out_of_range)[0])})")
    else:
        if actions.shape[1:] != tuple(space["shape"]) or not np.issubdtype(actions.dtype, np.floating):
            raise DemoError(f"{path}: Box `actions` must be floats of shape (N, {', '.join(map(str, space['shape']))}), "
                            f"got {actions.dtype} {actions.shape}")
        if not np.isfinite(actions).all():
            raise DemoError(f"{path}: {int((~np.isfinite(actions)).any(axis=1).sum())} rows of `actions` are not finite (NaN or inf)")
    if arrays["task_text"].dtype.kind != "U":
        raise DemoError(f"{path}: `task_text` must be strings, got {arrays['task_text'].dtype}")


# --- collection -----------------------------------------------------------------------------
class Progress:
    """One line every few seconds: episodes done, success so far, speed, time left."""

    def __init__(self, label: str, total: int, every_seconds: float = 5.0):
        self.label, self.total, self.every = label, total, every_seconds
        self.start = self.last = time.time()

    def update(self, done: int, successes: float, steps: int) -> None:
        now = time.time()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        eta = elapsed / done * (self.total - done)
        print(
            f"[{self.label}] episode {done}/{self.total}  success {successes / done:.2f}  "
            f"steps {steps}  {steps / elapsed:.0f} steps/s  eta {eta:.0f}s",
            flush=True,
        )


def collect_clevr(args: Args, episodes: int, noise: float) -> tuple[dict[str, list], dict[str, Any]]:
    import gymnasium as gym

    from envs.clevr_robot import ENV_ID, NUM_ACTIONS, OBS_DIM, expert_action

    env = gym.make(ENV_ID, goal_split=args.goal_split, max_episode_steps=args.max_episode_steps or 50)
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list] = {key: [] for key in DEMO_KEYS}
    successes, lengths, steps = 0.0, [], 0
    progress = Progress("clevr", episodes)
    for episode in range(episodes):
        obs, info = env.reset(seed=args.seed if episode == 0 else None)
        episode_rows = {key: [] for key in DEMO_KEYS}
        while True:
            action = expert_action(env)
            if rng.random() < noise:
                action = int(rng.integers(NUM_ACTIONS))
            next_obs, reward, terminated, truncated, next_info = env.step(action)
            for key, value in (
                ("obs", obs), ("actions", action), ("rewards", reward),
                ("task_text", info["goal_text"]), ("task_id", info["goal_id"]), ("episode", episode),
            ):
                episode_rows[key].append(value)
            obs, steps = next_obs, steps + 1
            if terminated or truncated:
                break
        success = bool(next_info["success"])
        episode_rows["episode_success"] = [success] * len(episode_rows["obs"])
        for key in DEMO_KEYS:
            rows[key].extend(episode_rows[key])
        successes += success
        lengths.append(len(episode_rows["obs"]))
        progress.update(episode + 1, successes, steps)
    env.close()
    summary = {
        "env_id": ENV_ID,
        "goal_split": args.goal_split,
        "max_episode_steps": args.max_episode_steps or 50,
        "action_space": {"type": "discrete", "n": NUM_ACTIONS},
        "obs_dim": OBS_DIM,
        "success_rate": successes / episodes,
        "mean_episode_length": float(np.mean(lengths)),
    }
    print(f"CLEVR-Robot demonstrations (scripted expert, epsilon {noise}): success "
          f"{successes / episodes:.3f} over {episodes} episodes, mean length {np.mean(lengths):.1f} steps")
    return rows, summary


def parse_tasks(task: str | None) -> list[str]:
    from envs.metaworld_tasks import MT10_TASKS, check_task

    if task is None or task == "mt10":
        return list(MT10_TASKS)
    tasks = [name.strip() for name in task.split(",") if name.strip()]
    if not tasks:
        raise DemoError("--task is empty; give an MT10 task name, a comma-separated list or mt10")
    for name in tasks:
        try:
            check_task(name)
        except ValueError as error:
            raise DemoError(f"--task: {error}") from error
    return tasks


def collect_metaworld(args: Args, episodes: int, noise: float) -> tuple[dict[str, list], dict[str, Any]]:
    from envs.metaworld_tasks import (
        ACTION_DIM, MAX_EPISODE_STEPS, MT10_TASKS, OBS_DIM, MetaWorldExpert, make_metaworld_env,
        task_prompt,
    )

    tasks = parse_tasks(args.task)
    max_steps = args.max_episode_steps or MAX_EPISODE_STEPS
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list] = {key: [] for key in DEMO_KEYS}
    per_task: dict[str, dict[str, float]] = {}
    episode_index, steps = 0, 0
    for task in tasks:
        env = make_metaworld_env(task, seed=args.seed, max_episode_steps=max_steps)
        expert, prompt, task_id = MetaWorldExpert(task), task_prompt(task), MT10_TASKS.index(task)
        progress = Progress(task, episodes)
        successes, lengths, task_start_steps = 0.0, [], steps
        for episode in range(episodes):
            obs, _ = env.reset(seed=args.seed if episode == 0 else None)
            start = len(rows["obs"])
            success = False
            while True:
                action = expert(obs)
                if noise > 0:
                    action = np.clip(action + noise * rng.standard_normal(ACTION_DIM), -1.0, 1.0)
                next_obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
                for key, value in (
                    ("obs", obs), ("actions", action), ("rewards", reward),
                    ("task_text", prompt), ("task_id", task_id), ("episode", episode_index),
                ):
                    rows[key].append(value)
                obs, steps = next_obs, steps + 1
                success = bool(info["success"])
                if success or terminated or truncated:  # a demonstration stops at success
                    break
            rows["episode_success"].extend([success] * (len(rows["obs"]) - start))
            successes += success
            lengths.append(len(rows["obs"]) - start)
            episode_index += 1
            progress.update(episode + 1, successes, steps - task_start_steps)
        env.close()
        per_task[task] = {
            "episodes": episodes,
            "success_rate": successes / episodes,
            "mean_episode_length": float(np.mean(lengths)),
        }
    print(f"\n{'Meta-World task':<26}{'success':>9}{'mean length':>13}   (scripted expert, noise std {noise}, {episodes} episodes each)")
    for task, stats in per_task.items():
        print(f"{task:<26}{stats['success_rate']:>9.2f}{stats['mean_episode_length']:>13.1f}")
    success_rate = float(np.mean([stats["success_rate"] for stats in per_task.values()]))
    print(f"{'mean':<26}{success_rate:>9.2f}")
    summary = {
        "env_id": "Meta-World/MT1",
        "tasks": tasks,
        "task_prompts": {task: task_prompt(task) for task in tasks},
        "max_episode_steps": max_steps,
        "action_space": {"type": "box", "shape": [ACTION_DIM], "low": -1.0, "high": 1.0},
        "obs_dim": OBS_DIM,
        "success_rate": success_rate,
        "per_task": per_task,
    }
    return rows, summary


def to_arrays(rows: dict[str, list], discrete: bool) -> dict[str, np.ndarray]:
    return {
        "obs": np.asarray(rows["obs"], dtype=np.float32),
        "actions": np.asarray(rows["actions"], dtype=np.int64 if discrete else np.float32),
        "rewards": np.asarray(rows["rewards"], dtype=np.float32),
        "task_text": np.asarray(rows["task_text"], dtype=np.str_),
        "task_id": np.asarray(rows["task_id"], dtype=np.int64),
        "episode": np.asarray(rows["episode"], dtype=np.int64),
        "episode_success": np.asarray(rows["episode_success"], dtype=bool),
    }


def main(args: Args) -> Path:
    episodes = DEFAULT_EPISODES[args.env] if args.episodes is None else args.episodes
    noise = DEFAULT_NOISE[args.env] if args.noise is None else args.noise
    if episodes <= 0:
        raise DemoError(f"--episodes must be a positive integer, got {episodes}")
    if args.max_episode_steps is not None and args.max_episode_steps <= 0:
        raise DemoError(f"--max-episode-steps must be a positive integer, got {args.max_episode_steps}")
    if args.env == "clevr" and not 0.0 <= noise <= 1.0:
        raise DemoError(f"--noise is a probability for clevr and must be in [0, 1], got {noise}")
    if args.env == "metaworld" and noise < 0.0:
        raise DemoError(f"--noise is a standard deviation for metaworld and must be >= 0, got {noise}")
    if args.env == "clevr" and args.task is not None:
        raise DemoError("--task applies only to --env metaworld (CLEVR-Robot goals come from --goal-split)")
    if args.env == "metaworld":
        parse_tasks(args.task)  # fail before any work
    path = prepare_output(args.out or f"demos/{args.env}.npz")

    start = time.time()
    if args.env == "clevr":
        rows, summary = collect_clevr(args, episodes, noise)
    else:
        rows, summary = collect_metaworld(args, episodes, noise)
    arrays = to_arrays(rows, discrete=args.env == "clevr")
    metadata = {
        "env": args.env,
        **summary,
        "episodes": int(arrays["episode"].max()) + 1 if len(arrays["episode"]) else 0,
        "transitions": len(arrays["obs"]),
        "noise": noise,
        "noise_kind": "epsilon" if args.env == "clevr" else "gaussian_std",
        "seed": args.seed,
        "args": asdict(args),
        "versions": {name: version(name) for name in ("gymnasium", "mujoco", "numpy", "metaworld")},
        "seconds": round(time.time() - start, 2),
    }
    save_demos(path, arrays, metadata)
    print(f"wrote {metadata['transitions']} transitions from {metadata['episodes']} episodes "
          f"to {path} (+ {path.with_suffix('.json').name})")
    return path


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except DemoError as error:
        sys.exit(f"collect_demos.py: error: {error}")
