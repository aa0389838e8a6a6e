"""One adaptive guidance setting for both benchmarks, chosen on their tuning seeds before any reported run.

    python benchmarks/tune_adaptive.py --dry-run        # the sweep on both benchmarks and its estimated CPU time
    python benchmarks/tune_adaptive.py --jobs 2         # run it (resumable), report it, choose, pre-register
    python benchmarks/grid.py --methods lago-smollm2-135m --seeds 1,2,3,4,5 \
        --guidance-from results/adaptive-tuning/chosen_clevr.json          # then the reported seeds, per benchmark

Each setting is one adaptive schedule of the LaGO scripts with its beta_0 (and, for `adaptive`, its target KL
epsilon): `--guidance-schedule adaptive` (dual ascent on beta towards a guidance KL of epsilon) and
`--guidance-schedule advantage` (guidance only where the critic does not back the policy against the prior). Every
setting runs on the tuning seeds of both benchmarks (and Meta-World's tuning tasks) with the prior fraction each
benchmark's sweep used (a cost, not a guidance, setting), into runs/adaptive-tuning/<env>/ and its report into
results/adaptive-tuning/<env>/ (resumable, as any grid). The choice is the setting with the highest mean over the two benchmarks of its
mean training-goal success divided by that of the benchmark's own tuned setting (results/<env>-tuning/chosen.json),
so that each benchmark counts the same; ties go to the setting listed first. It is written, with the comparisons
and the non-inferiority margin fixed in advance, to results/adaptive-tuning/chosen.json, and as each benchmark's
`--guidance-from` file (chosen_<env>.json).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import grid, report  # noqa: E402
from benchmarks.tune_guidance import PRIOR_FRACTION, choose  # noqa: E402

ENVS = ("clevr", "metaworld")
NON_INFERIORITY_MARGIN = -0.05  # the adaptive setting matches a tuned one if the CI of its difference lies above this


@dataclass
class Args:
    settings: str = "adaptive:1:0.3,adaptive:1:1,advantage:0.3,advantage:1"
    """comma-separated settings, each `adaptive:<beta_0>:<epsilon>` or `advantage:<beta_0>`"""
    seeds: str = "101,102,103"
    """tuning seeds: never among the reported seeds"""
    tasks: str = "reach-v3,drawer-close-v3,window-open-v3"
    """Meta-World's tuning tasks"""
    prior: str = "smollm2-135m"
    """the prior: checkpoints/prior__<env>__<prior>__1"""
    results: str = "results/adaptive-tuning"
    """where the choice goes (chosen.json, chosen_<env>.json)"""
    jobs: int = 1
    """runs side by side"""
    threads: int = 1
    """OMP_NUM_THREADS of each run"""
    dry_run: bool = False
    """print the plan and its estimated CPU time, run nothing"""
    report_only: bool = False
    """run nothing: report and choose from the runs already archived"""


def parse_settings(text: str, env: str) -> list[tuple[str, str]]:
    """(label, lago flags) of each setting on benchmark `env`, in the order that breaks ties."""
    fraction = PRIOR_FRACTION[env]
    out = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        schedule, *numbers = item.split(":")
        try:
            values = [float(number) for number in numbers]
        except ValueError:
            values = []
        if not (schedule == "adaptive" and len(values) == 2 or schedule == "advantage" and len(values) == 1) or \
                min(values) <= 0:
            raise SystemExit(f"tune_adaptive.py: error: --settings: {item!r} is neither `adaptive:<beta_0>:<epsilon>` nor "
                             "`advantage:<beta_0>` with positive numbers")
        label = f"f{fraction:g}-coef{numbers[0]}-{schedule}" + (f"-kl{numbers[1]}" if schedule == "adaptive" else "")
        flags = f"--prior-fraction {fraction:g} --guidance-coef {numbers[0]} --guidance-schedule {schedule}"
        out.append((label, flags + (f" --guidance-target-kl {numbers[1]}" if schedule == "adaptive" else "")))
    if not out:
        raise SystemExit("tune_adaptive.py: error: --settings names no setting")
    return out


def choose_setting(settings: list[str], scores: dict[str, dict[str, float]],
                   tuned: dict[str, float]) -> tuple[str, dict[str, float]]:
    """The setting with the highest mean over the benchmarks of its score (`scores[env][label]`) over the tuned
    setting's (`tuned[env]`), ties to the one listed first; and every setting's relative score."""
    relative = {setting: sum(scores[env][parse_settings(setting, env)[0][0]] / tuned[env] for env in scores) / len(scores)
                for setting in settings}
    return max(settings, key=lambda s: (relative[s], -settings.index(s))), relative


def main(args: Args) -> Optional[Path]:
    method = f"lago-{args.prior}"
    plans = {}
    for env in ENVS:
        common = dict(env=env, tasks=args.tasks, seeds=args.seeds, out=f"runs/adaptive-tuning/{env}",
                      results=str(ROOT / args.results / env))
        plans[env] = [run for label, flags in parse_settings(args.settings, env)
                      for run in grid.plan(grid.Args(methods=method, lago_args=flags, label=label, **common))]
    if not args.report_only:
        for env in ENVS:
            print(f"{env}:")
            grid.execute(plans[env], args.jobs, args.threads, args.dry_run)
    if args.dry_run:
        return None
    scores, tuned = {}, {}
    for env in ENVS:
        results = ROOT / args.results / env
        chosen = json.loads((ROOT / "results" / f"{env}-tuning" / "chosen.json").read_text())
        sweep = parse_settings(args.settings, env)
        report.main(report.Args(env=env, runs=ROOT / "runs" / "adaptive-tuning" / env, results=results))
        _, scores[env] = choose(results / "aggregate.csv", method, [label for label, _ in sweep])
        tuned[env] = chosen["train_goal_success"][chosen["label"]]
    settings = [item.strip() for item in args.settings.split(",") if item.strip()]
    best, relative = choose_setting(settings, scores, tuned)
    folder = ROOT / args.results
    folder.mkdir(parents=True, exist_ok=True)
    for env in ENVS:  # each benchmark's --guidance-from file
        label, flags = parse_settings(best, env)[0]
        (folder / f"chosen_{env}.json").write_text(json.dumps({"env": env, "method": method, "label": label,
                                                               "lago_args": flags, "setting": best}, indent=2) + "\n")
    record = {
        "setting": best, "method": method,
        "criterion": "highest mean over both benchmarks of the mean training-goal success on the tuning seeds (and "
                     "tasks) divided by that of the benchmark's tuned setting; ties go to the setting listed first",
        "relative_score": relative, "train_goal_success": scores,
        "tuned_settings": {env: json.loads((ROOT / "results" / f"{env}-tuning" / "chosen.json").read_text())["label"]
                           for env in ENVS},
        "tuning_seeds": [int(seed) for seed in args.seeds.split(",")], "tuning_tasks": args.tasks.split(","),
        "planned_comparisons": ["the adaptive setting - each benchmark's tuned setting (non-inferiority)",
                                "the adaptive setting - the other benchmark's tuned setting, applied crosswise",
                                "the adaptive setting - PPO", "the adaptive setting - the uniform-prior control"],
        "non_inferiority_margin": NON_INFERIORITY_MARGIN,
        "reported_seeds": {"clevr": [1, 2, 3, 4, 5], "metaworld": [1, 2, 3]},
    }
    path = folder / "chosen.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print("\n".join(f"  {s:<24} {relative[s]:.3f}{'  <- chosen' if s == best else ''}" for s in settings))
    print(f"wrote {path} and chosen_<env>.json: {best}")
    return path


if __name__ == "__main__":
    main(tyro.cli(Args))
