"""The quick start: PPO and LaGO side by side on one Meta-World task, with the prior shipped in priors/.

    python benchmarks/quickstart.py             # make quickstart; 2 min 27 s on 2 cores

door-open-v3 is a task where guidance decides the outcome at this budget (docs/stage2-metaworld.md): in the
Meta-World grid PPO fails it on all three seeds and LaGO solves it on all three. Both runs use the
grid's budget and LaGO its chosen guidance setting, one thread each, and print their progress
(steps, SPS, evaluation success) as they go; then the two results side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lago_utils.prior_io import SHIPPED_PRIORS  # noqa: E402


@dataclass
class Args:
    task: str = "door-open-v3"
    """the MT10 task"""
    total_timesteps: int = 100_352
    """env steps per run (the Meta-World grid's budget: 49 rollouts of 2048)"""
    eval_episodes: int = 20
    """evaluation episodes per goal split"""
    eval_interval: int = 20_480
    """env steps between evaluations"""
    seed: int = 1
    """seed of both runs"""
    lago_args: str = json.loads((ROOT / "results" / "metaworld-tuning" / "chosen.json").read_text())["lago_args"]
    """LaGO's guidance setting (the one chosen for Meta-World, results/metaworld-tuning/chosen.json)"""
    prior_path: str = str(SHIPPED_PRIORS / "metaworld__smollm2-135m")
    """the prior (default: the one shipped with the repository)"""
    run_dir: str = "runs/quickstart"
    """the runs go to <run-dir>/ppo and <run-dir>/lago (replaced on a rerun)"""


SHOWN = ("SPS", "guidance_coef", "global_step", "prior:", "note:", "wrote")  # progress; the rest (model loading) stays quiet


def stream(name: str, process: subprocess.Popen) -> None:
    for line in process.stdout:
        if line.startswith(SHOWN):
            print(f"[{name}] {line.rstrip()}", flush=True)


def main(args: Args) -> int:
    common = ["--total-timesteps", str(args.total_timesteps), "--eval-episodes", str(args.eval_episodes),
              "--eval-interval", str(args.eval_interval), "--seed", str(args.seed), "--overwrite"]
    runs = {
        "ppo": ["ppo_metaworld_continuous.py", "--task", args.task, *common],
        "lago": ["lago_metaworld_continuous.py", "--task", args.task, "--prior-path", args.prior_path,
                 *args.lago_args.split(), *common],
    }
    print(f"PPO and LaGO on {args.task}, {args.total_timesteps:,} steps each, side by side (one thread each)", flush=True)
    start, processes, threads = time.time(), {}, []
    for name, argv in runs.items():
        run_dir = Path(args.run_dir) / name
        processes[name] = subprocess.Popen(
            [sys.executable, str(ROOT / argv[0]), *argv[1:], "--run-dir", str(run_dir)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        threads.append(threading.Thread(target=stream, args=(name, processes[name])))
        threads[-1].start()
    for thread in threads:
        thread.join()
    failed = []
    for name, process in processes.items():
        stderr = process.stderr.read()
        if process.wait() != 0:
            failed.append(name)
            print(f"[{name}] failed:\n{stderr.strip().splitlines()[-1] if stderr.strip() else 'no message'}", file=sys.stderr)
    if failed:
        return 1
    print(f"\n{args.task}, seed {args.seed}, {args.total_timesteps:,} steps, greedy success on the training / "
          f"held-out goal positions ({args.eval_episodes} episodes each), {time.time() - start:.0f}s in all:")
    for name, label in (("ppo", "PPO "), ("lago", "LaGO")):
        summary = json.loads((Path(args.run_dir) / name / "summary.json").read_text())
        final = summary["final_eval"]
        prior = f", prior {summary['prior_seconds']:.0f}s" if "prior_seconds" in summary else ""
        print(f"  {label}  {final['train']['success_rate']:.2f} / {final['test']['success_rate']:.2f}   "
              f"({summary['wall_seconds'] / 60:.1f} min{prior})")
    print(f"learning curves: tensorboard --logdir {args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
