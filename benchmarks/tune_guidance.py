"""Choose LaGO's guidance setting on tuning seeds that are never reported, then report on fresh seeds.

    python benchmarks/tune_guidance.py --env clevr --dry-run     # the sweep and its estimated CPU time
    python benchmarks/tune_guidance.py --env clevr --jobs 2      # run it, report it, choose (resumable)
    python benchmarks/grid.py --env clevr --methods lago-smollm2-135m --seeds 1,2,3,4,5 \
        --guidance-from results/clevr-tuning/chosen.json         # the chosen setting on the reported seeds

The sweep runs LaGO at every guidance coefficient x schedule (`--coefs`, `--schedules`; a linear
schedule reaches 0 at `--guidance-decay-end`), then at the stronger constant coefficients that
bracket the best one (`--bracket`: on CLEVR-Robot, where the sweep still rose at its strongest
setting, 3 and 10), and PPO for reference, on the tuning seeds (and on
Meta-World, the tuning tasks) with benchmarks/grid.py. It is resumable like any grid. Then
benchmarks/report.py aggregates it into `--results` (results/<env>-tuning/), and the setting with
the highest mean success on the training goals is chosen; ties go to the setting listed first
(weaker, then decaying guidance, then the bracket). chosen.json records the choice, the scores of every setting and
the lago flags that `grid.py --guidance-from` applies to the reported runs.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import grid, report  # noqa: E402

PRIOR_FRACTION = {"clevr": 0.25, "metaworld": 0.1}  # the share of states the prior is queried on, per benchmark
BRACKET = {"clevr": "3,10", "metaworld": ""}  # constant coefficients past the sweep, where it had not peaked


@dataclass
class Args:
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark"""
    seeds: str = "101,102,103"
    """tuning seeds: never among the reported seeds"""
    tasks: str = "reach-v3,drawer-close-v3,window-open-v3"
    """Meta-World only: the tuning tasks"""
    coefs: str = "0.1,0.3,1"
    """guidance coefficients beta_0 to try"""
    schedules: str = "linear,constant"
    """guidance schedules to try"""
    bracket: Optional[str] = None
    """stronger coefficients tried with a constant schedule after the sweep (default 3,10 on CLEVR-Robot, none on
    Meta-World; `none` for none)"""
    guidance_decay_end: float = 0.6
    """where a decaying schedule reaches 0 (fraction of the budget)"""
    prior: str = "smollm2-135m"
    """the prior: checkpoints/prior__<env>__<prior>__1"""
    prior_fraction: Optional[float] = None
    """--prior-fraction of every LaGO run (default 0.25 on CLEVR-Robot, 0.1 on Meta-World)"""
    out: Optional[str] = None
    """the sweep's runs; default runs/tuning/<env>"""
    results: Optional[str] = None
    """its report and chosen.json; default results/<env>-tuning"""
    jobs: int = 1
    """runs side by side"""
    threads: int = 1
    """OMP_NUM_THREADS of each run"""
    dry_run: bool = False
    """print the plan and its estimated CPU time, run nothing"""
    report_only: bool = False
    """run nothing: report the sweep and choose from the runs already archived in --results (make report)"""


def settings(args: Args) -> list[tuple[str, str]]:
    """(label, lago flags) of every setting of the sweep, in the order that breaks ties."""
    fraction = args.prior_fraction or PRIOR_FRACTION[args.env]
    bracket = BRACKET[args.env] if args.bracket is None else "" if args.bracket == "none" else args.bracket
    pairs = [(coef, schedule) for coef in args.coefs.split(",") for schedule in args.schedules.split(",")]
    pairs += [(coef, "constant") for coef in bracket.split(",") if coef]
    return [(f"f{fraction:g}-coef{coef}-{schedule}",
             f"--prior-fraction {fraction:g} --guidance-coef {coef} --guidance-schedule {schedule}"
             + (f" --guidance-decay-end {args.guidance_decay_end:g}" if schedule != "constant" else ""))
            for coef, schedule in pairs]


def choose(aggregate_csv: Path, method: str, labels: list[str]) -> tuple[str, dict[str, float]]:
    """The label with the highest mean success on the training goals over every tuning task, and every score."""
    with open(aggregate_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["task_set"] == "all" and r["split"] == "train"]
    scores = {r["method"].split("+", 1)[1]: float(r["mean"]) for r in rows if r["method"].startswith(f"{method}+")}
    missing = [label for label in labels if label not in scores]
    if missing:
        raise SystemExit(f"tune_guidance.py: error: {aggregate_csv} has no score for {', '.join(missing)}; "
                         "the sweep is not finished")
    best = max(labels, key=lambda label: (scores[label], -labels.index(label)))
    return best, {label: scores[label] for label in labels}


def main(args: Args) -> Optional[Path]:
    out = args.out or f"runs/tuning/{args.env}"
    results = Path(args.results or ROOT / "results" / f"{args.env}-tuning")
    common = dict(env=args.env, tasks=args.tasks, seeds=args.seeds, out=out, results=str(results))
    runs = grid.plan(grid.Args(methods="ppo", **common))
    sweep = settings(args)
    for label, lago_args in sweep:
        runs += grid.plan(grid.Args(methods=f"lago-{args.prior}", lago_args=lago_args, label=label, **common))
    if not args.report_only:
        grid.execute(runs, args.jobs, args.threads, args.dry_run)
    if args.dry_run:
        return None
    method = f"lago-{args.prior}"
    report.main(report.Args(env=args.env, runs=ROOT / out if not Path(out).is_absolute() else Path(out), results=results,
                            compare=",".join(f"{method}+{label}:ppo" for label, _ in sweep)))
    labels = [label for label, _ in sweep]
    best, scores = choose(results / "aggregate.csv", method, labels)
    chosen = {
        "env": args.env, "method": method, "label": best, "lago_args": dict(sweep)[best],
        "criterion": "highest mean final success on the training goals over the tuning seeds (and tasks); "
                     "ties go to the setting listed first",
        "tuning_seeds": [int(seed) for seed in args.seeds.split(",")],
        "tuning_tasks": args.tasks.split(",") if args.env == "metaworld" else None,
        "train_goal_success": scores,
    }
    path = results / "chosen.json"
    path.write_text(json.dumps(chosen, indent=2) + "\n")
    print("\n".join(f"  {label:<32} {score:.3f}{'  <- chosen' if label == best else ''}" for label, score in scores.items()))
    print(f"wrote {path}: {method}+{best} ({chosen['lago_args']})")
    return path


if __name__ == "__main__":
    main(tyro.cli(Args))
