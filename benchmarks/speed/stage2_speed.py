"""Wall time of LaGO against PPO for the same budget: what the prior's guidance costs.

    python benchmarks/speed/stage2_speed.py --env clevr --lago-args="--prior-fraction 0.05"
    python benchmarks/speed/stage2_speed.py --env metaworld --task drawer-close-v3 --repeats 3

Runs the PPO and the LaGO script of the benchmark (`ppo_clevr_discrete.py` and `lago_clevr_discrete.py`,
or `ppo_metaworld_continuous.py` and `lago_metaworld_continuous.py`) with the same seed and budget, each in its own process and
alternating for `--repeats` rounds, and reports their median wall times (from their
summary.json), the ratio, and how LaGO's time splits into prior inference, evaluation and the
rest. Both runs evaluate once, at the end, on the same episodes. Pass `--threads` to pin the
number of CPU threads of both runs. Also reported: each run's env steps per second without the
evaluation (what a long run's time per million steps follows), and LaGO's prior calls one by one
of the first round (`perf/prior_seconds` in its TensorBoard log): the first, which also computes
the new instructions' prefixes and starts a GPU's kernels, and the median of the others.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.common import cpu_name, write_json  # noqa: E402
from lago_utils.prior_io import read_prior_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SETUPS = {  # the PPO and LaGO scripts, the default prior, the default budget (whole rollouts of the default sizes)
    "clevr": ("ppo_clevr_discrete.py", "lago_clevr_discrete.py", "checkpoints/prior__clevr__smollm2-135m__1", 51_200),
    "metaworld": ("ppo_metaworld_continuous.py", "lago_metaworld_continuous.py", "checkpoints/prior__metaworld__smollm2-135m__1",
                  40_960),
}


@dataclass
class Args:
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark: CLEVR-Robot (discrete) or one Meta-World task (continuous)"""
    task: str = "drawer-close-v3"
    """the MT10 task (metaworld only)"""
    prior_path: Optional[str] = None
    """the stage-1 checkpoint LaGO is guided by; default checkpoints/prior__<env>__smollm2-135m__1"""
    total_timesteps: Optional[int] = None
    """env steps of each run (default 51200 on CLEVR-Robot, 40960 on Meta-World)"""
    seed: int = 1
    """seed of both runs"""
    eval_episodes: int = 50
    """evaluation episodes (per goal split on CLEVR-Robot; the same for both runs)"""
    repeats: int = 1
    """rounds of (PPO, LaGO); the medians are reported"""
    lago_args: str = ""
    """more flags for the LaGO script, given with `=`: --lago-args="--prior-fraction 0.1\""""
    both_args: str = ""
    """more flags for both scripts, given with `=`: --both-args="--cuda" (the policy on the GPU)"""
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


def prior_calls(run_dir: Path) -> list[float]:
    """The seconds of each prior call of a LaGO run, from its TensorBoard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    if "perf/prior_seconds" not in events.Tags()["scalars"]:  # no call: the guidance was off throughout
        return []
    return [event.value for event in events.Scalars("perf/prior_seconds")]


def main(args: Args) -> dict:
    ppo_script, lago_script, default_prior, default_steps = SETUPS[args.env]
    prior_path = args.prior_path or default_prior
    total_timesteps = args.total_timesteps or default_steps
    if min(total_timesteps, args.eval_episodes, args.repeats) <= 0:
        raise SystemExit("stage2_speed.py: error: --total-timesteps, --eval-episodes and --repeats must be positive")
    common = ["--total-timesteps", str(total_timesteps), "--seed", str(args.seed),
              "--eval-episodes", str(args.eval_episodes), "--eval-interval", str(total_timesteps)]
    env = [] if args.env == "clevr" else ["--task", args.task]
    ppo_runs, lago_runs = [], []
    both, lago_flags = shlex.split(args.both_args), shlex.split(args.lago_args)
    with tempfile.TemporaryDirectory(prefix="stage2_speed_") as tmp:
        for round_index in range(args.repeats):
            ppo_runs.append(timed_run(ppo_script, Path(tmp) / f"ppo{round_index}", [*common, *env, *both],
                                      args.threads))
            lago_runs.append(timed_run(lago_script, Path(tmp) / f"lago{round_index}",
                                       [*common, *env, "--prior-path", prior_path, *both, *lago_flags],
                                       args.threads))
        calls = prior_calls(Path(tmp) / "lago0")  # the first round's, as the LaGO run reported below

    def median(runs: list[dict], key: str) -> float:
        return round(statistics.median(run[key] for run in runs), 1)

    lago = lago_runs[0]
    results = {
        "cpu": cpu_name(), "threads": args.threads, "env": args.env, "task": args.task if args.env == "metaworld" else None,
        "total_timesteps": total_timesteps, "seed": args.seed, "repeats": args.repeats,
        "prior_path": prior_path, "llm": lago["llm"], "prior_dtype": lago["prior_dtype"],
        "state_tokens": read_prior_config(prior_path)["state_tokens"], "lago_args": args.lago_args,
        "both_args": args.both_args,
        "lago_settings": {k: lago["args"][k] for k in ("guidance_coef", "guidance_schedule", "guidance_decay_end",
                                                       "prior_fraction", "num_envs", "num_steps")},
        "ppo_seconds": median(ppo_runs, "wall_seconds"), "lago_seconds": median(lago_runs, "wall_seconds"),
        "ppo_eval_seconds": median(ppo_runs, "eval_seconds"), "lago_eval_seconds": median(lago_runs, "eval_seconds"),
        "lago_prior_seconds": median(lago_runs, "prior_seconds"),
        "ppo_seconds_all": [run["wall_seconds"] for run in ppo_runs],
        "lago_seconds_all": [run["wall_seconds"] for run in lago_runs],
    }
    for method, runs in (("ppo", ppo_runs), ("lago", lago_runs)):
        results[f"{method}_steps_per_second"] = round(statistics.median(
            total_timesteps / (run["wall_seconds"] - run["eval_seconds"]) for run in runs))
    results["lago_prior_calls"] = len(calls)
    results["lago_prior_first_call_seconds"] = round(calls[0], 3) if calls else None
    results["lago_prior_call_seconds_median"] = round(statistics.median(calls[1:]), 4) if len(calls) > 1 else None
    results["ratio"] = results["lago_seconds"] / results["ppo_seconds"]
    results["ratio_without_eval"] = ((results["lago_seconds"] - results["lago_eval_seconds"])
                                     / (results["ppo_seconds"] - results["ppo_eval_seconds"]))
    rest = results["lago_seconds"] - results["lago_prior_seconds"] - results["lago_eval_seconds"]
    print(f"\nmedians of {args.repeats} round(s), {total_timesteps} steps, {results['cpu']}")
    print(f"PPO   {results['ppo_seconds']:8.1f}s  (evaluation {results['ppo_eval_seconds']:.1f}s)")
    print(f"LaGO  {results['lago_seconds']:8.1f}s  = prior inference {results['lago_prior_seconds']:.1f}s "
          f"+ evaluation {results['lago_eval_seconds']:.1f}s + the rest {rest:.1f}s  ({lago['llm']} in {lago['prior_dtype']})")
    print(f"ratio {results['ratio']:8.2f}x  (without evaluation {results['ratio_without_eval']:.2f}x)")
    print(f"env steps/s without evaluation: PPO {results['ppo_steps_per_second']:,}, LaGO {results['lago_steps_per_second']:,}")
    if len(calls) > 1:
        print(f"prior calls: {len(calls)}, the first {calls[0]:.2f}s, the others {results['lago_prior_call_seconds_median']:.3f}s "
              "(median)")
    if args.json:
        write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
