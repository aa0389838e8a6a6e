"""Aggregate the grid's finished runs into committed results: CSV tables and learning curves.

    python benchmarks/report.py                                    # runs/grid/clevr -> results/clevr/
    python benchmarks/report.py --env metaworld                    # runs/grid/metaworld -> results/metaworld/
    python benchmarks/readme_tables.py --update-readme

Writes, in `--results`:
- runs.csv: one row per run and goal split (final greedy success, return, steps, wall time, prior time);
- curves.csv: every periodic evaluation (method, task, seed, step, split, success);
- aggregate.csv: per method and split, mean and IQM success over seeds (and tasks: a seeds x tasks
  score matrix) with 95% stratified bootstrap confidence intervals (rliable);
- per_task.csv: the same per task (Meta-World);
- curves.png: success against env steps, mean over seeds with a shaded 95% bootstrap CI, per goal
  split (CLEVR-Robot) or per task and over all tasks (Meta-World); the prior alone as a dashed line;
- prior-alone-<prior>.json: each prior's record (its fine-tuning config and metrics, its evaluation).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {"clevr": ("train", "test"), "metaworld": ("train",)}
ALL_TASKS = "all tasks"


@dataclass
class Args:
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark of the grid"""
    runs: Optional[Path] = None
    """the grid's run folder (benchmarks/grid.py --out); default runs/grid/<env>"""
    results: Optional[Path] = None
    """where the CSV files and the plot go; default results/<env>"""
    bootstrap_reps: int = 20_000
    """bootstrap resamples of the confidence intervals"""


def load_runs(folder: Path) -> list[dict]:
    """Every finished run: <method>/seed<k>/summary.json or <method>/<task>/seed<k>/summary.json."""
    summaries = sorted(folder.glob("*/seed*/summary.json")) + sorted(folder.glob("*/*/seed*/summary.json"))
    if not summaries:
        raise SystemExit(f"report.py: error: no finished runs under {folder}; run benchmarks/grid.py first")
    runs = []
    for path in summaries:
        method_dir = path.parent.parent if path.parent.parent.parent == folder else path.parent.parent.parent
        runs.append(dict(json.loads(path.read_text()), grid_method=method_dir.name, record=path.parent))
    return runs


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def interval_estimates(scores: dict[str, np.ndarray], reps: int) -> tuple[dict, dict]:
    """rliable: (mean, IQM) point estimates and 95% stratified bootstrap CIs of (runs x tasks) scores."""
    from rliable import library as rly
    from rliable import metrics

    def aggregate(x):
        return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x)])

    return rly.get_interval_estimates(scores, aggregate, reps=reps)


def bootstrap_band(table: np.ndarray, rng: np.random.Generator, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap over the rows (seeds) of a seeds x steps table of means."""
    resampled = table[rng.integers(len(table), size=(min(reps, 2000), len(table)))]
    return np.nanpercentile(np.nanmean(resampled, axis=1), [2.5, 97.5], axis=0)


def curve_table(rows: list[dict]) -> tuple[list[int], np.ndarray]:
    """seeds x steps success table of `rows` (one task, one split); for several tasks, each seed's mean."""
    steps = sorted({r["global_step"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    tasks = sorted({r["task"] for r in rows})
    value = {(r["task"], r["seed"], r["global_step"]): r["success_rate"] for r in rows}
    table = np.array([[np.nanmean([value.get((task, s, t), np.nan) for task in tasks]) for t in steps] for s in seeds])
    return steps, table


def plot_curves(curves: list[dict], prior_alone: dict[tuple[str, str, str], float], env: str, path: Path, reps: int) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    tasks = sorted({r["task"] for r in curves})
    if env == "clevr":
        panels = [(None, split, f"CLEVR-Robot, {split} goals" + (" (held out)" if split == "test" else ""))
                  for split in SPLITS[env]]
    else:
        panels = [(None, "train", f"Meta-World, mean of {len(tasks)} tasks")] + [(task, "train", task) for task in tasks]
    columns = min(len(panels), 4)
    rows_ = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows_, columns, figsize=(5.0 * columns, 3.8 * rows_), sharey=True, squeeze=False)
    methods = sorted({row["method"] for row in curves})
    for ax, (task, split, title) in zip(axes.flat, panels):
        for index, method in enumerate(methods):
            rows = [r for r in curves if r["method"] == method and r["split"] == split and task in (None, r["task"])]
            if not rows:
                continue
            steps, table = curve_table(rows)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a seed that misses a step: nan, ignored
                mean = np.nanmean(table, axis=0)
                low, high = bootstrap_band(table, rng, reps)
            ax.plot(steps, mean, color=f"C{index}", label=f"{method} ({len(table)} seeds)")
            ax.fill_between(steps, low, high, color=f"C{index}", alpha=0.2)
        alone_methods = sorted({m for m, _, _ in prior_alone})
        for index, method in enumerate(alone_methods):
            values = [v for (m, t, s), v in prior_alone.items() if m == method and s == split and task in (None, t)]
            if values:
                ax.axhline(float(np.mean(values)), color=f"C{len(methods) + index}", linestyle="--", label=method)
        ax.set_title(title)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("greedy success rate")
    handles, labels = axes.flat[0].get_legend_handles_labels()  # the legend goes below the panels, off the curves
    columns_legend = min(3, len(labels))
    legend_rows = -(-len(labels) // columns_legend)
    fig.legend(handles, labels, loc="lower center", ncol=columns_legend, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.25 * legend_rows + 0.1) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def estimate_rows(run_rows: list[dict], methods: list[str], split: str, tasks: list[str], reps: int,
                  **labels) -> list[dict]:
    """mean and IQM with 95% CIs of the seeds x tasks matrix of each method (seeds every task has)."""
    scores = {}
    for method in methods:
        by_task = {task: {r["seed"]: r["success_rate"] for r in run_rows
                          if r["method"] == method and r["split"] == split and r["task"] == task} for task in tasks}
        seeds = sorted(set.intersection(*(set(v) for v in by_task.values())))
        if seeds:
            scores[method] = np.array([[by_task[task][seed] for task in tasks] for seed in seeds])
    points, intervals = interval_estimates(scores, reps)
    return [{
        **labels, "method": method, "split": split, "tasks": len(tasks), "seeds": len(scores[method]),
        "mean": round(float(points[method][0]), 4), "mean_low": round(float(intervals[method][0, 0]), 4),
        "mean_high": round(float(intervals[method][1, 0]), 4),
        "iqm": round(float(points[method][1]), 4), "iqm_low": round(float(intervals[method][0, 1]), 4),
        "iqm_high": round(float(intervals[method][1, 1]), 4),
    } for method in scores]


def main(args: Args) -> None:
    folder = args.runs or ROOT / "runs" / "grid" / args.env
    results = args.results or ROOT / "results" / args.env
    runs = load_runs(folder)
    results.mkdir(parents=True, exist_ok=True)
    splits = SPLITS[args.env]
    run_rows, curve_rows = [], []
    for run in runs:
        for split in splits:
            run_rows.append({
                "method": run["grid_method"], "task": run["env_id"], "seed": run["seed"], "split": split,
                "success_rate": run["final_eval"][split]["success_rate"], "return": run["final_eval"][split]["return"],
                "global_step": run.get("global_step", ""), "wall_seconds": run.get("wall_seconds", ""),
                "prior_seconds": run.get("prior_seconds", ""),
            })
        for evaluation in run["evaluations"]:
            for split in splits:
                curve_rows.append({"method": run["grid_method"], "task": run["env_id"], "seed": run["seed"],
                                   "global_step": evaluation["global_step"], "split": split,
                                   "success_rate": evaluation[split]["success_rate"]})
    write_csv(results / "runs.csv", run_rows)
    write_csv(results / "curves.csv", curve_rows)

    methods = sorted({row["method"] for row in run_rows})
    tasks = sorted({row["task"] for row in run_rows})
    complete = [m for m in methods if {r["task"] for r in run_rows if r["method"] == m} == set(tasks)]
    for method in sorted(set(methods) - set(complete)):
        print(f"note: {method} has not run every task yet; left out of aggregate.csv (see per_task.csv)")
    aggregate_rows = [row for split in splits for row in estimate_rows(run_rows, complete, split, tasks, args.bootstrap_reps)]
    write_csv(results / "aggregate.csv", aggregate_rows)
    if args.env == "metaworld":
        per_task = [row for task in tasks for row in estimate_rows(
            run_rows, [m for m in methods if any(r["task"] == task for r in run_rows if r["method"] == m)],
            "train", [task], args.bootstrap_reps, task=task)]
        write_csv(results / "per_task.csv", per_task)
    settings = {run["grid_method"]: {k: run["args"].get(k) for k in
                ("total_timesteps", "guidance_coef", "guidance_schedule", "guidance_decay_end", "guidance_kl",
                 "prior_fraction", "max_episode_steps", "eval_episodes", "episodes") if k in run["args"]}
                for run in runs}
    (results / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    prior_alone = {(r["method"], r["task"], r["split"]): r["success_rate"] for r in run_rows
                   if r["method"].startswith("prior-alone")}
    records = {}
    for run in runs:  # each prior's own record: fine-tuning time, validation metrics, evaluation(s)
        if run["grid_method"].startswith("prior-alone"):
            record = json.loads((run["record"] / "prior_alone.json").read_text())
            merged = records.setdefault(run["grid_method"], {**record, "results": {}})
            merged["results"].update(record["results"])
    for method, record in records.items():
        (results / f"{method}.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_curves([r for r in curve_rows if not r["method"].startswith("prior-alone")], prior_alone, args.env,
                results / "curves.png", args.bootstrap_reps)
    for row in aggregate_rows:
        print(f"{row['method']:<28}{row['split']:<6} {row['tasks']} task(s) x {row['seeds']} seeds  mean {row['mean']:.3f} "
              f"[{row['mean_low']:.3f}, {row['mean_high']:.3f}]  IQM {row['iqm']:.3f} [{row['iqm_low']:.3f}, {row['iqm_high']:.3f}]")
    print(f"wrote runs.csv, curves.csv, aggregate.csv{', per_task.csv' if args.env == 'metaworld' else ''}, settings.json, "
          f"curves.png, prior records to {results}")


if __name__ == "__main__":
    main(tyro.cli(Args))
