"""Wall time of LaGO against PPO for the same budget: what the prior's guidance costs.

    python benchmarks/stage2_speed.py --prior-path checkpoints/prior__clevr__smollm2-135m__1
    python benchmarks/stage2_speed.py --total-timesteps 51200 --lago-args="--prior-fraction 0.1"

Runs `ppo_baseline.py` and `lago_clevr_discrete.py` one after the other on CLEVR-Robot with the
same seed and budget, each in its own process, and reports their wall times (from their
summary.json), the ratio, and how LaGO's time splits into prior inference and the rest. Pass
`--threads` to pin the number of CPU threads of both runs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import cpu_name, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    prior_path: str = "checkpoints/prior__clevr__smollm2-135m__1"
    """the stage-1 CLEVR-Robot checkpoint LaGO is guided by"""
    total_timesteps: int = 51_200
    """env steps of each run"""
    seed: int = 1
    """seed of both runs"""
    eval_episodes: int = 50
    """evaluation episodes per goal split (the same for both runs)"""
    lago_args: str = ""
    """more flags for lago_clevr_discrete.py, given with `=`: --lago-args="--prior-fraction 0.1\""""
    threads: Optional[int] = None
    """OMP_NUM_THREADS of both runs (default: torch's own choice)"""
    json: Optional[str] = None
    """also write the results to this JSON file"""


def timed_run(script: str, run_dir: Path, argv: list[str], threads: Optional[int]) -> dict:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    print(f"running {script} {' '.join(argv)}", flush=True)
    result = subprocess.run([sys.executable, str(ROOT / script), *argv, "--run-dir", str(run_dir)], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"stage2_speed.py: error: {script} failed (exit code {result.returncode})")
    return json.loads((run_dir / "summary.json").read_text())


def main(args: Args) -> dict:
    if args.total_timesteps <= 0 or args.eval_episodes <= 0:
        raise SystemExit("stage2_speed.py: error: --total-timesteps and --eval-episodes must be positive")
    common = ["--total-timesteps", str(args.total_timesteps), "--seed", str(args.seed),
              "--eval-episodes", str(args.eval_episodes), "--eval-interval", str(args.total_timesteps)]
    with tempfile.TemporaryDirectory(prefix="stage2_speed_") as tmp:
        ppo = timed_run("ppo_baseline.py", Path(tmp) / "ppo", common, args.threads)
        lago = timed_run("lago_clevr_discrete.py", Path(tmp) / "lago",
                         [*common, "--prior-path", args.prior_path, *shlex.split(args.lago_args)], args.threads)
    results = {
        "cpu": cpu_name(), "threads": args.threads, "total_timesteps": args.total_timesteps, "seed": args.seed,
        "prior_path": args.prior_path, "llm": lago["llm"], "lago_args": args.lago_args,
        "lago_settings": {k: lago["args"][k] for k in ("guidance_coef", "guidance_schedule", "guidance_decay_end",
                                                       "prior_fraction", "num_envs", "num_steps")},
        "ppo_seconds": ppo["wall_seconds"], "lago_seconds": lago["wall_seconds"],
        "lago_prior_seconds": lago["prior_seconds"], "ratio": lago["wall_seconds"] / ppo["wall_seconds"],
    }
    print(f"\nPPO   {results['ppo_seconds']:8.1f}s")
    print(f"LaGO  {results['lago_seconds']:8.1f}s  = prior inference {results['lago_prior_seconds']:.1f}s "
          f"+ the rest {results['lago_seconds'] - results['lago_prior_seconds']:.1f}s  ({lago['llm']})")
    print(f"ratio {results['ratio']:8.2f}x  ({results['total_timesteps']} steps, {results['cpu']})")
    if args.json:
        write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
