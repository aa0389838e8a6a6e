"""Replay a saved policy (`--save-model`) greedily on the evaluation episodes of its run.

    python ppo_metaworld_continuous.py --task door-open-v3 --save-model --run-dir runs/door
    python evaluate_policy.py runs/door/ppo_metaworld_continuous.cleanrl_model

The model file holds the script that trained it, that script's arguments, and the agent's weights
with its observation-normalisation statistics. The agent is rebuilt from the script's own class and
evaluated as the run evaluated it (lago_utils/run.py `evaluate`: the agent's greedy action on the
script's `make_env` of each goal split), so the same episodes give the run's final evaluation again.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import tyro

from lago_utils.run import evaluate

SCRIPTS = ("ppo_clevr_discrete.py", "ppo_metaworld_continuous.py", "lago_clevr_discrete.py", "lago_metaworld_continuous.py",
           "bcppo_clevr_discrete.py", "bcppo_metaworld_continuous.py")


@dataclass
class Args:
    model_path: tyro.conf.Positional[str]
    """the .cleanrl_model file written by --save-model"""
    eval_episodes: Optional[int] = None
    """episodes per goal split (default: the run's --eval-episodes)"""
    json: Optional[str] = None
    """also write the results to this JSON file"""


def load_policy(path: str) -> tuple:
    """(script module, its Args, the agent) of a saved policy, or SystemExit with one sentence."""
    def fail(message: str):
        sys.exit(f"evaluate_policy.py: error: {message}")

    if Path(path).is_dir():  # a run directory: the one policy saved in it
        saved_here = sorted(Path(path).glob("*.cleanrl_model"))
        if len(saved_here) != 1:
            fail(f"{path} is a directory with {len(saved_here)} saved policies (*.cleanrl_model); give the file")
        path = str(saved_here[0])
    if not Path(path).is_file():
        fail(f"{path} does not exist; save a policy with --save-model")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        fail(f"{path} is not a saved policy ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    if isinstance(saved, dict) and saved.get("script") == "ppo_baseline.py":
        fail(f"{path} was saved by ppo_baseline.py, which is now ppo_clevr_discrete.py and ppo_metaworld_continuous.py; "
             "train the policy again with one of them")
    if not (isinstance(saved, dict) and saved.get("script") in SCRIPTS
            and {"args", "agent", "agent_args", "state_dict"} <= set(saved)):
        fail(f"{path} is not a policy saved by --save-model of {', '.join(SCRIPTS)}")
    module = importlib.import_module(saved["script"].removesuffix(".py"))
    args = module.Args(**saved["args"])
    agent = getattr(module, saved["agent"])(*saved["agent_args"])
    try:
        agent.load_state_dict(saved["state_dict"])
    except RuntimeError as error:
        fail(f"{path} does not fit {saved['script']}'s {saved['agent']} ({str(error).splitlines()[0]})")
    return module, args, agent.eval()


def main(args: Args) -> dict[str, dict[str, float]]:
    module, run_args, agent = load_policy(args.model_path)
    if args.json:  # its folder, before the evaluation
        try:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            sys.exit(f"evaluate_policy.py: error: --json {args.json}: its folder cannot be created "
                     f"({error.strerror or error})")
    if args.eval_episodes is not None:
        if args.eval_episodes <= 0:
            sys.exit(f"evaluate_policy.py: error: --eval-episodes must be a positive integer, got {args.eval_episodes}")
        run_args.eval_episodes = args.eval_episodes
    results = {split: evaluate(agent, module.make_env, run_args, split) for split in ("train", "test")}
    env = getattr(run_args, "task", None) or run_args.env_id
    for split, metrics in results.items():
        print(f"{env} {split:<5} success {metrics['success_rate']:.3f}  return {metrics['return']:.2f}  "
              f"({run_args.eval_episodes} episodes)")
    if args.json:
        Path(args.json).write_text(json.dumps({"model_path": args.model_path, "results": results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
