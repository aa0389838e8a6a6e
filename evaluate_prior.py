"""Prior alone: run a stage-1 prior greedily (argmax / mean action) and report its success rate.

    python evaluate_prior.py --prior-path checkpoints/prior__clevr__smollm2-135m__1
    python evaluate_prior.py --prior-path checkpoints/prior__metaworld__smollm2-135m__1 --tasks reach-v3

CLEVR-Robot priors are evaluated on the train and the held-out test goals. Meta-World priors are
evaluated on each task they were trained on, on two sets of 50 goal positions: `train`, those of
their demonstrations (the env seed of collect_demos.py), and `test`, those of the env seed `--seed`,
which they never saw. `--num-envs` environments are stepped in lockstep so that the prior sees
one batch per step. An episode counts as a success if the goal is reached at any step before the
time limit (and stops there), as in the stage-2 scripts.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import tyro

from lago_utils.frozen_prior import FrozenPrior
from lago_utils.llm import PriorError
from lago_utils.prior_io import load_prior, read_prior_config


@dataclass
class Args:
    prior_path: str
    """the checkpoint directory written by finetune_prior.py"""
    episodes: int = 100
    """episodes per CLEVR-Robot goal split or per Meta-World task"""
    splits: str = "train,test"
    """goal splits to evaluate (comma-separated): train, test (held out), and on CLEVR-Robot also all"""
    instructions: str = "train"
    """the language the prior reads: `train` (the demonstrations'), `unseen` (synonyms and descriptions of the
    outcome in words that fine-tuning never saw), on CLEVR-Robot also `paraphrase` (new sentences, the same key words)"""
    tasks: Optional[str] = None
    """Meta-World tasks (comma-separated); default: the tasks the prior was trained on"""
    num_envs: int = 10
    """environments stepped in lockstep (one prior batch per step)"""
    max_episode_steps: Optional[int] = None
    """episode limit; default 50 for CLEVR-Robot, 500 for Meta-World"""
    seed: int = 10_000
    """seed of the evaluation episodes (kept apart from the demonstration seeds); on Meta-World also the env seed
    of the held-out goal positions"""
    device: str = "auto"
    """`auto`, `cpu` or `cuda`"""
    json: Optional[str] = None
    """also write the results to this JSON file"""


GOALS = {  # what the goal splits are, for the records
    "clevr": {"train": "CLEVR-Robot training goals", "all": "all CLEVR-Robot goals",
              "test": "CLEVR-Robot held-out goals (colour/relation pairs never trained on)"},
    "metaworld": {"train": "the 50 goal positions of the demonstrations (env seed {seed})",
                  "test": "50 held-out goal positions (env seed {seed}, never in the demonstrations)"},
}


def run_episodes(prior: FrozenPrior, make_env: Callable, text_of: Callable, episodes: int,
                 num_envs: int, seed: int, label: str) -> dict[str, float]:
    """Greedy prior in `num_envs` envs in lockstep until `episodes` episodes have ended."""
    envs = [make_env() for _ in range(min(num_envs, episodes))]
    obs, texts = [], []
    started = 0
    for env in envs:
        o, info = env.reset(seed=seed + started)
        obs.append(o)
        texts.append(text_of(info))
        started += 1
    active = list(range(len(envs)))
    successes, lengths, steps = [], [], np.zeros(len(envs), dtype=int)
    start = time.time()
    while active:
        actions = prior.greedy_action(np.stack([obs[i] for i in active]), [texts[i] for i in active])
        still_active = []
        for i, action in zip(active, actions):
            obs[i], _, terminated, truncated, info = envs[i].step(action)
            steps[i] += 1
            if info["success"] or terminated or truncated:  # success at any step ends the episode
                successes.append(float(info["success"]))
                lengths.append(int(steps[i]))
                steps[i] = 0
                if started < episodes:
                    obs[i], info = envs[i].reset(seed=seed + started)
                    texts[i] = text_of(info)
                    started += 1
                    still_active.append(i)
            else:
                still_active.append(i)
        active = still_active
    for env in envs:
        env.close()
    result = {"episodes": len(successes), "success_rate": float(np.mean(successes)),
              "mean_episode_length": float(np.mean(lengths)), "seconds": round(time.time() - start, 1),
              "successes": "".join(str(int(s)) for s in successes)}  # per episode, for confidence intervals
    print(f"{label:<34} success {result['success_rate']:.3f}  ({result['episodes']} episodes, "
          f"mean length {result['mean_episode_length']:.1f}, {result['seconds']:.0f}s)", flush=True)
    return result


def main(args: Args) -> dict[str, dict[str, float]]:
    if args.episodes <= 0 or args.num_envs <= 0:
        raise PriorError("--episodes and --num-envs must be positive integers")
    if args.max_episode_steps is not None and args.max_episode_steps <= 0:
        raise PriorError(f"--max-episode-steps must be a positive integer, got {args.max_episode_steps}")
    config = read_prior_config(args.prior_path)
    results: dict[str, dict[str, float]] = {}
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    language = "" if args.instructions == "train" else f" ({args.instructions} instructions)"
    if config["env"] == "clevr":
        import gymnasium as gym

        from envs.clevr_robot import ENV_ID, GOAL_SPLITS, INSTRUCTION_SETS

        for split in splits:
            if split not in GOAL_SPLITS:
                raise PriorError(f"--splits: unknown goal split {split!r}; expected train, test or all")
        if args.instructions not in INSTRUCTION_SETS:
            raise PriorError(f"--instructions must be {', '.join(INSTRUCTION_SETS)} for CLEVR-Robot, got {args.instructions!r}")
        probe = gym.make(ENV_ID)
        prior = load_prior(args.prior_path, probe, device=args.device)
        for split in splits:
            results[f"clevr/{split}"] = run_episodes(
                prior,
                lambda: gym.make(ENV_ID, goal_split=split, instructions=args.instructions,
                                 max_episode_steps=args.max_episode_steps or 50),
                lambda info: info["goal_text"], args.episodes, args.num_envs, args.seed, f"clevr {split} goals{language}",
            )
    else:
        from envs.metaworld_tasks import PROMPT_SETS, make_metaworld_env, task_prompt

        if args.instructions not in PROMPT_SETS:
            raise PriorError(f"--instructions must be {', '.join(PROMPT_SETS)} for Meta-World, got {args.instructions!r}")
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else config["tasks"]
        for task in tasks:
            try:
                task_prompt(task)
            except ValueError as error:
                raise PriorError(f"--tasks: {error}") from error
        for split in splits:
            if split not in ("train", "test"):
                raise PriorError(f"--splits: unknown goal split {split!r} for Meta-World; expected train or test")
        env_seeds = {"train": config.get("demo_seed"), "test": args.seed}  # the env seed fixes the 50 goal positions
        if "train" in splits and env_seeds["train"] is None:
            raise PriorError(f"the prior {args.prior_path} does not record the seed of its demonstrations, so its "
                             "training goal positions are unknown; evaluate --splits test, or fine-tune it again")
        if "test" in splits and env_seeds["train"] == args.seed:
            raise PriorError(f"--seed {args.seed} is the seed of the prior's demonstrations: its goal positions are not "
                             "held out; choose another --seed")
        prior = load_prior(args.prior_path, make_metaworld_env(tasks[0], seed=args.seed), device=args.device)
        for task in tasks:
            for split in splits:
                results[f"metaworld/{task}/{split}"] = run_episodes(
                    prior,
                    lambda: make_metaworld_env(task, seed=env_seeds[split], max_episode_steps=args.max_episode_steps or 500),
                    lambda info, text=task_prompt(task, args.instructions): text, args.episodes, args.num_envs,
                    args.seed, f"{task} {split} goals{language}",
                )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        goals = GOALS[config["env"]]
        if config["env"] == "metaworld":
            goals = {"train": goals["train"].format(seed=config.get("demo_seed")), "test": goals["test"].format(seed=args.seed)}
        llm = prior.model.llm  # None: a control prior with no language model
        record = {"prior": config, "llm_parameters": sum(p.numel() for p in llm.parameters()) if llm is not None else 0,
                  "args": asdict(args), "goals": {split: goals[split] for split in splits}, "results": results}
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {path}")
    return results


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except PriorError as error:
        sys.exit(f"evaluate_prior.py: error: {error}")
