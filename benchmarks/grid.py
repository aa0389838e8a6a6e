"""The comparison grid: methods x seeds on CLEVR-Robot or methods x tasks x seeds on Meta-World, resumable.

    python benchmarks/grid.py --dry-run                           # the plan and its estimated CPU time
    python benchmarks/grid.py --methods ppo,lago-smollm2-135m,prior-alone-smollm2-135m --seeds 1,2,3
    python benchmarks/grid.py --env metaworld --tasks reach-v3,drawer-close-v3 --seeds 1,2,3 --jobs 2
    python benchmarks/report.py                                   # tables from the finished runs
    python benchmarks/grid.py --env metaworld --scale paper       # 1M steps per run (a GPU), in runs/grid-paper/
    python benchmarks/report.py --env metaworld --runs runs/grid-paper/metaworld --results results/metaworld-paper
    python benchmarks/grid.py --env metaworld --scale paper --executor slurm --slurm-partition gpu --slurm-gpus 1

Methods:
- `ppo`: ppo_clevr_discrete.py or ppo_metaworld_continuous.py;
- `bcppo`: bcppo_clevr_discrete.py or bcppo_metaworld_continuous.py, PPO whose actor is first cloned from
  demos/<env>.npz, the demonstrations of the priors;
- `lago-<prior>`: lago_clevr_discrete.py or lago_metaworld_continuous.py guided by
  checkpoints/prior__<env>__<prior>__1 (for example `lago-smollm2-135m`, `lago-gemma3-270m`,
  `lago-smollm2-135m-random` for the random-init LLM of `finetune_prior.py --llm-init random`);
- `prior-alone-<prior>`: evaluate_prior.py, the prior's greedy action, on the same evaluation
  episodes as the final evaluation of the RL runs (one run: the prior does not depend on the RL seed).

`--label` names a variant of `--lago-args` (lago-<prior>+<label>/), so that several guidance
settings sit side by side in one report. Each run writes <out>/<method>/seed<k>/summary.json
(CLEVR-Robot) or <out>/<method>/<task>/seed<k>/summary.json (Meta-World), and its output goes to
log.txt beside it. benchmarks/report.py copies each finished summary.json into the committed
results/<env>/summaries/.

A run is finished when a summary.json of it, in its folder or archived, records exactly the
planned settings (budget, evaluation episodes, every guidance flag, the prior's name) and, for
PPO and LaGO, the training scripts' current revision (rundir.REVISION). So an
interrupted grid resumes by running the same command again, also on a fresh checkout, and a
summary with other settings is never taken for the planned run: the grid stops and names the
setting, rather than mix the two (give such a grid its own --out and --results, or a --label).
Nor does it add LaGO runs to a method whose finished runs ran the prior in another precision (bf16
where the hardware computes it natively, else fp32) than this machine would.

`--executor slurm` submits each run still to go as one job of a Slurm job array through submitit (an optional
dependency), with the same guarantees: the job takes its run folder's grid.lock and skips a run that another job or
grid is writing or has finished, a run folder records the job it was submitted as (submitted.json), and a grid
submitted again skips the runs whose job is still queued or running and submits the rest, which includes a run whose
job died (its folder holds no summary; the new job starts it over). `--cluster local` runs the same jobs through
submitit's local executor, as processes on this machine, for trying the path without a cluster.
Several invocations can fill one grid (one per method, or the same command twice): the grid
that supervises a run holds its folder's grid.lock, and the run itself holds running.lock,
which names its process (rundir.py; the kernel frees both when their process ends). Killing a
grid ends the runs it started.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import SummaryError, read_summary, run_settings, setting_differences, training_revision  # noqa: E402
from rundir import REVISION, acquire, holder  # noqa: E402


@dataclass
class Args:
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark: CLEVR-Robot (train and held-out goals) or Meta-World (one run per task)"""
    tasks: str = "mt10"
    """Meta-World only: comma-separated MT10 tasks, or `mt10` for all ten"""
    methods: str = "ppo,lago-smollm2-135m,prior-alone-smollm2-135m"
    """comma-separated methods: ppo, bcppo, lago-<prior>, prior-alone-<prior>"""
    seeds: str = "1,2,3"
    """comma-separated RL seeds"""
    scale: Literal["cpu", "paper"] = "cpu"
    """the budgets: `cpu` (sized for a 2-core CPU) or `paper` (1M env steps per run, for a GPU)"""
    total_timesteps: Optional[int] = None
    """env steps of every RL run (default: --scale cpu 150000 on CLEVR-Robot, 100352 on Meta-World; paper 1M)"""
    eval_episodes: Optional[int] = None
    """evaluation episodes per goal split or task, the same fixed episodes for every method (default 100 / 20; paper 100 / 50)"""
    eval_interval: Optional[int] = None
    """env steps between evaluations (learning curves; default 25000 / 20480; paper 100000 / 102400)"""
    lago_args: str = ""
    """more flags for every lago run, given with `=`: --lago-args="--guidance-coef 0.05 --prior-fraction 0.1\""""
    label: str = ""
    """a name for this --lago-args variant: the lago runs go to lago-<prior>+<label>, beside other variants"""
    guidance_from: Optional[str] = None
    """the chosen.json of benchmarks/tune_guidance.py: its --lago-args and --label (the setting chosen on tuning seeds)"""
    out: Optional[str] = None
    """where the runs go; default runs/grid/<env> (--scale paper: runs/grid-paper/<env>)"""
    results: Optional[str] = None
    """report.py's results folder: a run archived in its summaries/ is finished; default results/<env> (paper: results/<env>-paper)"""
    priors: str = "checkpoints"
    """the folder with the stage-1 checkpoints prior__<env>__<prior>__1"""
    threads: int = 1
    """OMP_NUM_THREADS of each run"""
    jobs: int = 1
    """runs side by side, each with --threads threads (2 on a 2-core CPU); after a failure no new run starts"""
    dry_run: bool = False
    """print the plan and its estimated CPU time, run nothing"""
    executor: Literal["local", "slurm"] = "local"
    """`local`: run here, --jobs side by side; `slurm`: submit each run as one job of a job array (submitit)"""
    cluster: Literal["slurm", "local"] = "slurm"
    """--executor slurm only: `slurm`, or `local` (submitit's local executor: the jobs as processes here, no cluster)"""
    slurm_partition: Optional[str] = None
    """the partition of the jobs (default: the cluster's)"""
    slurm_time: int = 240
    """each job's time limit, in minutes"""
    slurm_gpus: int = 0
    """GPUs per job"""
    slurm_cpus: Optional[int] = None
    """CPUs per job (default: --threads)"""
    slurm_mem_gb: Optional[int] = None
    """memory per job in GB (default: the cluster's)"""
    slurm_array_parallelism: int = 64
    """the most jobs of the array that run at once"""
    slurm_folder: Optional[str] = None
    """submitit's folder for the jobs' scripts and logs (default: <out>/slurm)"""
    slurm_wait: bool = False
    """wait for the jobs to end and report them (default: submit and return)"""


# per benchmark: defaults (total_timesteps, eval_episodes, eval_interval), episode limit, the LaGO script, the
# number of goal splits evaluated, and for --dry-run PPO's rough single-thread steps/s (evaluations included)
# with two runs side by side on a 2-core AMD EPYC
SETUPS = {
    "clevr": dict(total_timesteps=150_000, eval_episodes=100, eval_interval=25_000, max_episode_steps=10,
                  ppo_script="ppo_clevr_discrete.py", script="lago_clevr_discrete.py", bc_script="bcppo_clevr_discrete.py",
                  ppo_steps_per_second=1300, splits=2),
    "metaworld": dict(total_timesteps=100_352, eval_episodes=20, eval_interval=20_480, max_episode_steps=500,
                      ppo_script="ppo_metaworld_continuous.py", script="lago_metaworld_continuous.py",
                      bc_script="bcppo_metaworld_continuous.py", ppo_steps_per_second=1000, splits=2),
}
# --scale paper: the budgets a GPU user would run (CleanRL's 1M steps for continuous PPO; whole rollouts of the
# default sizes on Meta-World), with more evaluation episodes
PAPER_SCALE = {
    "clevr": dict(total_timesteps=1_000_000, eval_episodes=100, eval_interval=100_000),
    "metaworld": dict(total_timesteps=1_001_472, eval_episodes=50, eval_interval=102_400),
}
# for --dry-run: the prior's states/s in one thread, with its LLM in bf16 (CPUs with native bf16: AVX512-BF16 or
# AMX) or fp32 (AVX2 only); measured for smollm2-135m. gemma3-270m has twice the parameters, but most are its
# embedding table: its LaGO runs took as long as smollm2-135m's with bf16 (an earlier round's CLEVR-Robot grid).
# qwen2.5-coder-0.5b in bf16: measured in its CLEVR-Robot LaGO runs (about 100 states/s, 2.7x slower); the 1.5B's
# bf16 rate is an estimate (three times the parameters of the 0.5B). The Qwen fp32 rates: benchmarks/speed/prior_speed.py
# --batch 256 in one thread of an AVX2 CPU (results/prior/avx2-fp32/prior_speed_qwen2.5-coder-*)
PRIOR_STATES_PER_SECOND = {"bfloat16": {"smollm2-135m": 300, "gemma3-270m": 300, "qwen2.5-coder-0.5b": 100,
                                        "qwen2.5-coder-1.5b": 33},
                           "float32": {"smollm2-135m": 60, "gemma3-270m": 60, "qwen2.5-coder-0.5b": 19,
                                       "qwen2.5-coder-1.5b": 5}}
EVAL_SEED = 1_000_000  # = the RL scripts' EVAL_SEED: the prior alone plays the same evaluation episodes


def prior_states_per_second(prior: str) -> float:
    import torch

    from lago_utils.device import fast_dtype
    from lago_utils.llm import base_llm

    from lago_prior import WITHOUT_LLM

    if prior in WITHOUT_LLM:  # the controls without a language model: a few small matrix products
        return 100_000.0
    rates = PRIOR_STATES_PER_SECOND[str(fast_dtype(torch.device("cpu"))).removeprefix("torch.")]
    return rates.get(base_llm(prior), rates["smollm2-135m"])


@dataclass
class Run:
    method: str
    task: Optional[str]
    seed: int
    directory: Path
    command: list[str]
    estimated_seconds: float
    archived: Optional[Path] = None  # the summary's copy in <results>/summaries/ (report.py)

    def summaries(self) -> list[tuple[Path, dict]]:
        """The summaries of this run that exist, each with its contents: in its folder, and archived. A damaged one
        (truncated, or not a run's summary) counts as none, so the run is done again, and is named once."""
        found = []
        for path in (self.directory / "summary.json", self.archived):
            if path and path.is_file():
                try:
                    found.append((path, read_summary(path)))
                except SummaryError as error:
                    if path not in DAMAGED:
                        DAMAGED.add(path)
                        print(f"grid.py: {error}: the run counts as not finished and is done again", flush=True)
        return found

    @functools.cached_property
    def args(self) -> dict:
        """The planned run's command parsed by its script's own Args."""
        module = importlib.import_module(Path(self.command[0]).stem)
        return asdict(tyro.cli(module.Args, args=self.command[1:]))

    @functools.cached_property
    def settings(self) -> dict:
        """The planned run's settings (a default the run fills in itself, such as the prior's LLM, is left out)."""
        return {name: value for name, value in run_settings(self.args).items() if value is not None}

    @functools.cached_property
    def prior_dtype(self) -> Optional[str]:
        """The precision a LaGO run's prior would run in on this machine, as its summary records it (None for the
        other methods, or where its --prior-device is missing here: the run will say so itself)."""
        if not self.method.startswith("lago-"):
            return None
        from lago_utils.device import resolve_device
        from lago_utils.llm import PriorError
        from lago_utils.prior_io import prior_dtype

        llm = self.method.removeprefix("lago-").split("+")[0]  # the controls' names are their `llm`
        try:
            return str(prior_dtype({"llm": llm}, resolve_device(self.args["prior_device"]))).removeprefix("torch.")
        except PriorError:
            return None

    def conflict(self) -> Optional[str]:
        """Why a summary of this run is not the planned run, or None if every summary there is (or there is none)."""
        for path, summary in self.summaries():
            differences = setting_differences(self.settings, run_settings(summary["args"]))
            revision = training_revision(summary, self.method)
            if revision not in (None, REVISION):
                recorded = revision if "revision" in summary else f"{revision} (not recorded)"
                differences.insert(0, f"the training scripts' revision {recorded}, not {REVISION}")
            if differences:
                return f"{path} holds a run with {'; '.join(differences)}"
        return None


def precision_conflict(runs: list[Run], todo: list[Run]) -> Optional[str]:
    """Why a run still to go would mix with a finished run of its method: a prior run in another precision (bf16
    where the CPU or GPU computes it natively, else fp32), or None."""
    recorded: dict[str, dict[str, Path]] = {}  # method -> each precision its finished runs used -> a summary of it
    for run in runs:
        for path, summary in run.summaries():  # a run still to go has none
            if dtype := summary.get("prior_dtype"):
                recorded.setdefault(run.method, {}).setdefault(dtype, path)
    for run in todo:
        if run.prior_dtype is None:
            continue
        for dtype, path in recorded.get(run.method, {}).items():
            if dtype != run.prior_dtype:
                return (f"{path} ran its prior in {dtype}, and {run.method} seed {run.seed} would run it in "
                        f"{run.prior_dtype} on this machine")
    return None


def fill_defaults(args: Args) -> Args:
    """A copy of `args` with the defaults of its --scale and its --guidance-from filled in."""
    args = dataclasses.replace(args)
    if args.guidance_from:
        if args.lago_args or args.label:
            raise SystemExit("grid.py: error: --guidance-from sets --lago-args and --label; give it alone")
        try:
            chosen = json.loads(Path(args.guidance_from).read_text())
            args.lago_args, args.label = chosen["lago_args"], chosen["label"]
        except (OSError, ValueError, KeyError) as error:
            raise SystemExit(f"grid.py: error: --guidance-from {args.guidance_from} is not a chosen.json of "
                             f"benchmarks/tune_guidance.py ({error})")
    setup = {**SETUPS[args.env], **(PAPER_SCALE[args.env] if args.scale == "paper" else {})}
    for name in ("total_timesteps", "eval_episodes", "eval_interval"):
        if getattr(args, name) is None:
            setattr(args, name, setup[name])
    args.out = args.out or f"runs/grid{'-paper' if args.scale == 'paper' else ''}/{args.env}"
    args.results = args.results or f"results/{args.env}{'-paper' if args.scale == 'paper' else ''}"
    return args


def parse_tasks(args: Args) -> list[Optional[str]]:
    if args.env == "clevr":
        return [None]
    from envs.metaworld_tasks import MT10_TASKS

    tasks = list(MT10_TASKS) if args.tasks.strip() == "mt10" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    for task in tasks:
        if task not in MT10_TASKS:
            raise SystemExit(f"grid.py: error: --tasks: {task!r} is not an MT10 task ({', '.join(MT10_TASKS)})")
    if not tasks:
        raise SystemExit("grid.py: error: --tasks must not be empty")
    return tasks


def plan(args: Args) -> list[Run]:
    args = fill_defaults(args)
    setup = SETUPS[args.env]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"grid.py: error: --seeds must be comma-separated integers, got {args.seeds!r}")
    if not methods or not seeds:
        raise SystemExit("grid.py: error: --methods and --seeds must not be empty")
    if min(args.total_timesteps, args.eval_episodes, args.eval_interval, args.threads, args.jobs) <= 0:
        raise SystemExit("grid.py: error: --total-timesteps, --eval-episodes, --eval-interval, --threads and --jobs "
                         "must be positive")
    tasks = parse_tasks(args)
    common = ["--total-timesteps", str(args.total_timesteps), "--eval-episodes", str(args.eval_episodes),
              "--eval-interval", str(args.eval_interval)]
    ppo_seconds = args.total_timesteps / setup["ppo_steps_per_second"]
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    priors = Path(args.priors) if Path(args.priors).is_absolute() else ROOT / args.priors
    lago_argv = shlex.split(args.lago_args)
    runs = []
    for method in methods:
        for task in tasks:
            folder = out / method if task is None else out / method / task
            if method in ("ppo", "bcppo"):
                env_argv = [] if task is None else ["--task", task]
                if method == "bcppo":
                    env_argv += ["--demos", str(ROOT / "demos" / f"{args.env}.npz")]
                for seed in seeds:
                    runs.append(Run(method, task, seed, folder / f"seed{seed}",
                                    [setup["ppo_script" if method == "ppo" else "bc_script"], *env_argv, *common,
                                     "--seed", str(seed)], ppo_seconds))
            elif method.startswith("lago-"):
                prior = method.removeprefix("lago-")
                prior_path = str(priors / f"prior__{args.env}__{prior}__1")
                fraction = 1.0
                if "--prior-fraction" in lago_argv:
                    fraction = float(lago_argv[lago_argv.index("--prior-fraction") + 1])
                prior_seconds = 0.6 * fraction * args.total_timesteps / prior_states_per_second(prior)
                name = f"{method}+{args.label}" if args.label else method
                folder = out / name if task is None else out / name / task
                env_argv = [] if task is None else ["--task", task]
                for seed in seeds:
                    runs.append(Run(name, task, seed, folder / f"seed{seed}",
                                    [setup["script"], *env_argv, *common, "--seed", str(seed), "--prior-path", prior_path,
                                     *lago_argv], ppo_seconds + prior_seconds))
            elif method.startswith("prior-alone-"):
                prior = method.removeprefix("prior-alone-")
                directory = folder / "seed1"
                env_argv = [] if task is None else ["--tasks", task]
                runs.append(Run(method, task, 1, directory,
                                ["evaluate_prior.py", "--prior-path", str(priors / f"prior__{args.env}__{prior}__1"),
                                 *env_argv, "--episodes", str(args.eval_episodes),
                                 "--max-episode-steps", str(setup["max_episode_steps"]),
                                 "--seed", str(EVAL_SEED), "--json", str(directory / "prior_alone.json")],
                                # one small batch (10 envs) per step, about 0.1 s each for smollm2-135m
                                setup["splits"] * -(-args.eval_episodes // 10) * setup["max_episode_steps"] * 0.1
                                * 60 / prior_states_per_second(prior)))
            else:
                raise SystemExit(f"grid.py: error: unknown method {method!r}; expected ppo, bcppo, lago-<prior> or "
                                 "prior-alone-<prior>")
    archive = (Path(args.results) if Path(args.results).is_absolute() else ROOT / args.results) / "summaries"
    for run in runs:
        run.archived = archive / run.directory.relative_to(out).with_suffix(".json")
    return runs


def prior_alone_summary(directory: Path) -> None:
    """evaluate_prior.py's JSON in the RL runs' summary.json form (it measures success only: no return)."""
    report = json.loads((directory / "prior_alone.json").read_text())
    # clevr/<split> or metaworld/<task>/<split> (one task per run)
    env_id = "CLEVRRobot-v0" if report["prior"]["env"] == "clevr" else next(iter(report["results"])).split("/")[1]
    final = {key.split("/")[-1]: {"success_rate": value["success_rate"], "return": None}
             for key, value in report["results"].items()}
    summary = {"env_id": env_id, "method": "prior_alone", "seed": 1, "llm": report["prior"]["llm"],
               "eval_goals": report["goals"], "final_eval": final, "evaluations": [], "args": report["args"]}
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


DAMAGED: set[Path] = set()  # the damaged summaries already named


# a run's process asks the kernel for SIGKILL when the grid that started it dies, however the grid dies
# (Linux; elsewhere killing a grid leaves its runs going, and a new grid skips a folder whose run still writes)
DIE_WITH_PARENT = ("import ctypes, os, signal, sys; parent = int(sys.argv.pop(1))\n"
                   "if sys.platform.startswith('linux'):\n"
                   "    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
                   "    os.getppid() == parent or sys.exit('grid.py: the grid ended before the run started')\n"
                   "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def main(args: Args) -> None:
    runs = plan(args)
    if args.executor == "slurm":
        args = fill_defaults(args)
        submit(runs, args, Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out)
    else:
        execute(runs, args.jobs, args.threads, args.dry_run)


def run_command(directory: Path, command: list[str], method: str, env: dict[str, str],
                started: Optional[Callable[[subprocess.Popen], None]] = None) -> int:
    """One run's process, its output in <directory>/log.txt (a LaGO, PPO or BC run told to replace an attempt that
    did not finish); the prior alone's result in the summary.json form. Its exit code."""
    prior_alone = method.startswith("prior-alone-")
    argv = command if prior_alone else [*command, "--run-dir", str(directory), "--overwrite"]
    with open(directory / "log.txt", "w") as log:
        child = subprocess.Popen([sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), *argv], cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        if started:
            started(child)
        returncode = child.wait()
    if returncode == 0 and prior_alone:
        prior_alone_summary(directory)
    return returncode


def finished(directory: Path) -> bool:
    """Whether the run folder holds a readable summary."""
    try:
        read_summary(directory / "summary.json")
        return True
    except (SummaryError, OSError):
        return False


def cluster_job(directory: str, command: list[str], method: str, threads: int) -> str:
    """One run as a cluster job (--executor slurm): what `execute` does for a run, in the job. Holding the run
    folder's grid.lock, it skips a run that another job or grid writes or has finished, else runs it."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    lock = acquire(folder, "grid.lock")
    writer = holder(folder)
    if lock is None or writer:
        if lock:
            lock.release()
        return f"skipped: {folder} is being written by {writer or 'another grid or job'}"
    try:
        if finished(folder):
            return f"skipped: {folder} is finished"
        returncode = run_command(folder, command, method, {**os.environ, "OMP_NUM_THREADS": str(threads)})
        if returncode != 0:
            raise RuntimeError(f"{method} failed (exit code {returncode}); see {folder / 'log.txt'}")
        return f"done: {folder}"
    finally:
        lock.release()


def live_submission(directory: Path) -> Optional[str]:
    """The job that a run folder was submitted as (submitted.json), where it is still queued or running; else None."""
    try:
        record = json.loads((directory / "submitted.json").read_text())
    except (OSError, ValueError):
        return None
    job = str(record.get("job_id", ""))
    if record.get("cluster") == "local":  # submitit's local executor: the job is a process of this machine
        try:
            stat = Path(f"/proc/{int(job.split('_')[0])}/stat").read_text()
        except (ValueError, OSError):
            return None
        return None if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X") else job  # a zombie has ended
    try:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None  # no squeue here: nothing known to be queued
    return job if state.returncode == 0 and state.stdout.strip() else None


def submit(runs: list[Run], args: Args, out: Path) -> None:
    """--executor slurm: each run that is neither finished nor queued or running as a job becomes one job."""
    conflicts = [(run, reason) for run in runs if (reason := run.conflict())]
    if conflicts:
        run, reason = conflicts[0]
        raise SystemExit(f"grid.py: error: {len(conflicts)} planned runs have other settings on record, e.g. {reason}; "
                         "give this grid its own --out and --results (or a --label), or remove those runs")
    open_runs = [run for run in runs if not run.summaries()]
    queued = {run.directory: job for run in open_runs if (job := live_submission(run.directory))}
    todo = [run for run in open_runs if run.directory not in queued]
    if mixed := precision_conflict(runs, todo):
        raise SystemExit(f"grid.py: error: {mixed}, so their results would mix; give the new runs their own --out and "
                         "--results (or a --label)")
    cpus = args.slurm_cpus or args.threads
    folder = Path(args.slurm_folder) if args.slurm_folder else out / "slurm"
    resources = (f"{args.cluster} jobs: partition {args.slurm_partition or '(the default)'}, {args.slurm_time} min, "
                 f"{cpus} CPUs, {args.slurm_gpus} GPUs, {f'{args.slurm_mem_gb} GB' if args.slurm_mem_gb else 'default memory'}"
                 f" each, at most {args.slurm_array_parallelism} at once; scripts and logs in {folder}")
    print(f"{len(runs)} runs, {len(runs) - len(open_runs)} finished, {len(queued)} queued or running as jobs, "
          f"{len(todo)} to submit as {resources}")
    for run in todo:
        print(f"  {run.method:<32} {run.task or ''} seed {run.seed}  python {' '.join(run.command)}")
    if args.dry_run or not todo:
        return
    try:
        import submitit
    except ImportError:
        raise SystemExit("grid.py: error: --executor slurm needs submitit, which is not installed: "
                         "pip install submitit==1.5.4") from None
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the jobs import it
    executor = submitit.AutoExecutor(folder=folder, cluster=None if args.cluster == "slurm" else "local")
    executor.update_parameters(
        name="lago-grid", timeout_min=args.slurm_time, cpus_per_task=cpus, gpus_per_node=args.slurm_gpus,
        **({"mem_gb": args.slurm_mem_gb} if args.slurm_mem_gb else {}),
        **({"slurm_partition": args.slurm_partition} if args.slurm_partition else {}),
        slurm_array_parallelism=args.slurm_array_parallelism)
    from benchmarks.grid import cluster_job as job_function  # by its module's name, also when this file runs as a script

    with executor.batch():
        jobs = [executor.submit(job_function, str(run.directory), run.command, run.method, args.threads) for run in todo]
    for run, job in zip(todo, jobs):
        run.directory.mkdir(parents=True, exist_ok=True)
        (run.directory / "submitted.json").write_text(json.dumps({"job_id": job.job_id, "cluster": args.cluster,
                                                                  "folder": str(folder)}) + "\n")
    print(f"submitted {len(jobs)} jobs ({jobs[0].job_id} ... {jobs[-1].job_id}); submit the same command again to "
          "resume: it skips finished, queued and running runs", flush=True)
    if not args.slurm_wait:
        return
    failed = []
    for run, job in zip(todo, jobs):
        try:
            print(f"{job.job_id}: {job.result()}", flush=True)
        except Exception as error:  # the job failed, was cancelled or timed out: its run is submitted again next time
            failed.append(f"{run.method}{f' {run.task}' if run.task else ''} seed {run.seed} (job {job.job_id})")
            print(f"{job.job_id}: FAILED ({str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__})",
                  flush=True)
    if failed:
        raise SystemExit(f"grid.py: error: {', '.join(failed)} did not finish; submit the same command again to redo "
                         "them (finished runs are kept)")


def execute(runs: list[Run], jobs: int, threads: int, dry_run: bool = False) -> None:
    """Run the planned runs that are not finished, `jobs` side by side with `threads` threads each."""
    conflicts = [(run, reason) for run in runs if (reason := run.conflict())]
    todo = [run for run in runs if not run.summaries()]
    queued = {run.directory: job for run in todo if (job := live_submission(run.directory))}
    if queued:  # submitted with --executor slurm and not over: not run here too
        print(f"{len(queued)} runs are queued or running as cluster jobs (e.g. job {next(iter(queued.values()))}): "
              "not run here")
        todo = [run for run in todo if run.directory not in queued]
    print(f"{len(runs)} runs, {len(runs) - len(todo) - len(conflicts) - len(queued)} finished, {len(todo)} to go, "
          f"about {sum(r.estimated_seconds for r in todo) / 3600:.1f} CPU hours (estimate)")
    for run in todo:
        print(f"  {run.method:<32} {run.task or ''} seed {run.seed}  ~{run.estimated_seconds / 60:.0f} min  "
              f"python {' '.join(run.command)}")
    if conflicts:
        run, reason = conflicts[0]
        raise SystemExit(f"grid.py: error: {len(conflicts)} planned runs have other settings on record, e.g. {reason}; "
                         "give this grid its own --out and --results (or a --label), or remove those runs")
    if mixed := precision_conflict(runs, todo):
        raise SystemExit(f"grid.py: error: {mixed}, so their results would mix; finish the grid on a machine like that "
                         "one, or give the new runs their own --out and --results (or a --label)")
    if dry_run:
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    failed: list[str] = []
    children: set[subprocess.Popen] = set()
    interrupted = threading.Event()

    def supervise(index: int, run: Run) -> None:
        name = f"{run.method} {run.task} seed {run.seed}" if run.task else f"{run.method} seed {run.seed}"
        if failed:  # something failed: start nothing new
            return
        run.directory.mkdir(parents=True, exist_ok=True)
        lock = acquire(run.directory, "grid.lock")
        writer = holder(run.directory)
        if lock is None or writer:
            print(f"[{index}/{len(todo)}] {name}: running in another invocation ({writer or 'another grid'}), skipped",
                  flush=True)
            if lock:
                lock.release()
            return
        try:
            if not run.summaries():  # else finished by another invocation since the plan was made
                run_one(index, run, name)
        finally:
            lock.release()

    def run_one(index: int, run: Run, name: str) -> None:
        mine: list[subprocess.Popen] = []

        def started(child: subprocess.Popen) -> None:
            mine.append(child)
            children.add(child)
            if interrupted.is_set():
                child.kill()

        # a run folder without a summary holds at most an attempt that did not finish: replace it
        print(f"[{index}/{len(todo)}] {name} ...", flush=True)
        start = time.time()
        returncode = run_command(run.directory, run.command, run.method, env, started)
        children.difference_update(mine)
        if returncode != 0:
            print(f"[{index}/{len(todo)}] {name} FAILED; see {run.directory / 'log.txt'}", flush=True)
            failed.append(name)
            return
        print(f"[{index}/{len(todo)}] {name} done in {time.time() - start:.0f}s", flush=True)

    pool = ThreadPoolExecutor(jobs)
    try:
        list(pool.map(lambda item: supervise(*item), enumerate(todo, 1)))
    except BaseException:  # Ctrl-C or `kill <grid>`: end the runs this grid started, start no other
        interrupted.set()
        failed.append("the grid (interrupted)")
        for child in list(children):
            child.kill()
        raise
    finally:
        pool.shutdown(wait=True)
    if failed:
        raise SystemExit(f"grid.py: error: {', '.join(failed)} failed; see its log.txt (finished runs are kept: "
                         "run the same command again to resume)")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill <grid>` ends its runs too, as Ctrl-C does
    main(tyro.cli(Args))
