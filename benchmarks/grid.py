"""The comparison grid: methods x seeds on CLEVR-Robot, resumable (finished runs are skipped).

    python benchmarks/grid.py --dry-run                           # the plan and its estimated CPU time
    python benchmarks/grid.py --methods ppo,lago-smollm2-135m,prior-alone-smollm2-135m --seeds 1,2,3
    python benchmarks/report.py                                   # tables from the finished runs

Methods:
- `ppo`: ppo_baseline.py;
- `lago-<prior>`: lago_clevr_discrete.py guided by checkpoints/prior__clevr__<prior>__1 (for
  example `lago-smollm2-135m`, `lago-gemma3-270m`, `lago-smollm2-135m-random` for the random-init
  LLM of `finetune_prior.py --llm-init random`);
- `prior-alone-<prior>`: evaluate_prior.py, the prior's greedy action, on the same evaluation
  episodes as the final evaluation of the RL runs (one run: the prior does not depend on the RL seed).

`--label` names a variant of `--lago-args` (runs/grid/clevr/lago-<prior>+<label>/), so that several
guidance settings sit side by side in one report. Each run writes
runs/grid/clevr/<method>/seed<k>/summary.json; a run whose summary.json exists is
skipped, so an interrupted grid is resumed by running the same command again, and several
invocations (e.g. one per method) can fill the grid. Output of each run goes to its log.txt.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    methods: str = "ppo,lago-smollm2-135m,prior-alone-smollm2-135m"
    """comma-separated methods: ppo, lago-<prior>, prior-alone-<prior>"""
    seeds: str = "1,2,3"
    """comma-separated RL seeds"""
    total_timesteps: int = 150_000
    """env steps of every RL run"""
    eval_episodes: int = 100
    """evaluation episodes per goal split, the same fixed episodes for every method"""
    eval_interval: int = 25_000
    """env steps between evaluations (learning curves)"""
    lago_args: str = ""
    """more flags for every lago run, given with `=`: --lago-args="--guidance-coef 0.05 --prior-fraction 0.1\""""
    label: str = ""
    """a name for this --lago-args variant: the lago runs go to lago-<prior>+<label>, beside other variants"""
    out: str = "runs/grid/clevr"
    """where the runs go"""
    priors: str = "checkpoints"
    """the folder with the stage-1 checkpoints prior__clevr__<prior>__1"""
    threads: int = 1
    """OMP_NUM_THREADS of each run"""
    dry_run: bool = False
    """print the plan and its estimated CPU time, run nothing"""


# rough single-thread costs on a 2-core AVX2 CPU, for --dry-run: PPO steps/s, prior states/s
PPO_STEPS_PER_SECOND = 1500
PRIOR_STATES_PER_SECOND = {"smollm2-135m": 60, "gemma3-270m": 25}
EVAL_SEED = 1_000_000  # = ppo_baseline.EVAL_SEED: the prior alone plays the same evaluation episodes


def prior_states_per_second(prior: str) -> float:
    return PRIOR_STATES_PER_SECOND.get(prior.removesuffix("-random"), 60)


@dataclass
class Run:
    method: str
    seed: int
    directory: Path
    command: list[str]
    estimated_seconds: float


def plan(args: Args) -> list[Run]:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"grid.py: error: --seeds must be comma-separated integers, got {args.seeds!r}")
    if not methods or not seeds:
        raise SystemExit("grid.py: error: --methods and --seeds must not be empty")
    if min(args.total_timesteps, args.eval_episodes, args.eval_interval, args.threads) <= 0:
        raise SystemExit("grid.py: error: --total-timesteps, --eval-episodes, --eval-interval and --threads must be positive")
    common = ["--total-timesteps", str(args.total_timesteps), "--eval-episodes", str(args.eval_episodes),
              "--eval-interval", str(args.eval_interval)]
    ppo_seconds = args.total_timesteps / PPO_STEPS_PER_SECOND
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    priors = Path(args.priors) if Path(args.priors).is_absolute() else ROOT / args.priors
    runs = []
    for method in methods:
        if method == "ppo":
            for seed in seeds:
                runs.append(Run(method, seed, out / method / f"seed{seed}",
                                ["ppo_baseline.py", *common, "--seed", str(seed)], ppo_seconds))
        elif method.startswith("lago-"):
            prior = method.removeprefix("lago-")
            prior_path = str(priors / f"prior__clevr__{prior}__1")
            fraction = 1.0
            lago_argv = shlex.split(args.lago_args)
            if "--prior-fraction" in lago_argv:
                fraction = float(lago_argv[lago_argv.index("--prior-fraction") + 1])
            prior_seconds = 0.6 * fraction * args.total_timesteps / prior_states_per_second(prior)
            name = f"{method}+{args.label}" if args.label else method
            for seed in seeds:
                runs.append(Run(name, seed, out / name / f"seed{seed}",
                                ["lago_clevr_discrete.py", *common, "--seed", str(seed), "--prior-path", prior_path,
                                 *lago_argv], ppo_seconds + prior_seconds))
        elif method.startswith("prior-alone-"):
            prior = method.removeprefix("prior-alone-")
            directory = out / method / "seed1"
            runs.append(Run(method, 1, directory,
                            ["evaluate_prior.py", "--prior-path", str(priors / f"prior__clevr__{prior}__1"),
                             "--episodes", str(args.eval_episodes), "--max-episode-steps", "10",
                             "--seed", str(EVAL_SEED), "--json", str(directory / "prior_alone.json")],
                            2 * args.eval_episodes * 10 / prior_states_per_second(prior)))
        else:
            raise SystemExit(f"grid.py: error: unknown method {method!r}; expected ppo, lago-<prior> or prior-alone-<prior>")
    return runs


def prior_alone_summary(directory: Path) -> None:
    """evaluate_prior.py's JSON in the RL runs' summary.json form."""
    report = json.loads((directory / "prior_alone.json").read_text())
    final = {key.split("/")[1]: {"success_rate": value["success_rate"], "return": value["success_rate"]}
             for key, value in report["results"].items()}
    summary = {"env_id": "CLEVRRobot-v0", "method": "prior_alone", "seed": 1, "llm": report["prior"]["llm"],
               "final_eval": final, "evaluations": [], "args": report["args"]}
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def main(args: Args) -> None:
    runs = plan(args)
    todo = [run for run in runs if not (run.directory / "summary.json").is_file()]
    print(f"{len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to go, "
          f"about {sum(r.estimated_seconds for r in todo) / 3600:.1f} CPU hours (estimate)")
    for run in todo:
        print(f"  {run.method:<32} seed {run.seed}  ~{run.estimated_seconds / 60:.0f} min  python {' '.join(run.command)}")
    if args.dry_run:
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for index, run in enumerate(todo, 1):
        run.directory.mkdir(parents=True, exist_ok=True)
        argv = run.command if run.method.startswith("prior-alone-") else [*run.command, "--run-dir", str(run.directory)]
        print(f"[{index}/{len(todo)}] {run.method} seed {run.seed} ...", flush=True)
        start = time.time()
        with open(run.directory / "log.txt", "w") as log:
            result = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise SystemExit(f"grid.py: error: {run.method} seed {run.seed} failed; see {run.directory / 'log.txt'}")
        if run.method.startswith("prior-alone-"):
            prior_alone_summary(run.directory)
        print(f"[{index}/{len(todo)}] {run.method} seed {run.seed} done in {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
