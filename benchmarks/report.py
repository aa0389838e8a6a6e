"""Aggregate the grid's finished runs into committed results: CSV tables and learning curves.

    python benchmarks/report.py                      # runs/grid/clevr -> results/clevr/
    python benchmarks/readme_tables.py --update-readme

Writes, in `--results`:
- runs.csv: one row per run and goal split (final greedy success, return, steps, wall time, prior time);
- curves.csv: every periodic evaluation (method, seed, step, split, success);
- aggregate.csv: per method and split, mean and IQM success over seeds with 95% stratified
  bootstrap confidence intervals (rliable);
- curves.png: success against env steps, mean over seeds with a shaded 95% bootstrap CI; the prior
  alone as a dashed line;
- prior-alone-<prior>.json: each prior's record (its fine-tuning config and metrics, its evaluation).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "test")


@dataclass
class Args:
    runs: Path = ROOT / "runs" / "grid" / "clevr"
    """the grid's run folder (benchmarks/grid.py --out)"""
    results: Path = ROOT / "results" / "clevr"
    """where the CSV files and the plot go"""
    bootstrap_reps: int = 20_000
    """bootstrap resamples of the confidence intervals"""


def load_runs(folder: Path) -> list[dict]:
    summaries = sorted(folder.glob("*/seed*/summary.json"))
    if not summaries:
        raise SystemExit(f"report.py: error: no finished runs under {folder}; run benchmarks/grid.py first")
    return [dict(json.loads(path.read_text()), grid_method=path.parent.parent.name) for path in summaries]


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


def plot_curves(curves: list[dict], prior_alone: dict[str, dict[str, float]], path: Path, reps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(5.5 * len(SPLITS), 4), sharey=True)
    methods = sorted({row["method"] for row in curves})
    for ax, split in zip(axes, SPLITS):
        for index, method in enumerate(methods):
            rows = [r for r in curves if r["method"] == method and r["split"] == split]
            steps = sorted({r["global_step"] for r in rows})
            seeds = sorted({r["seed"] for r in rows})
            table = np.array([[next((r["success_rate"] for r in rows if r["seed"] == s and r["global_step"] == t), np.nan)
                               for t in steps] for s in seeds])
            mean = np.nanmean(table, axis=0)
            resampled = table[rng.integers(len(seeds), size=(min(reps, 2000), len(seeds)))]
            low, high = np.nanpercentile(np.nanmean(resampled, axis=1), [2.5, 97.5], axis=0)
            color = f"C{index}"
            ax.plot(steps, mean, color=color, label=f"{method} ({len(seeds)} seeds)")
            ax.fill_between(steps, low, high, color=color, alpha=0.2)
        for index, (method, result) in enumerate(sorted(prior_alone.items())):
            ax.axhline(result[split], color=f"C{len(methods) + index}", linestyle="--", label=method)
        ax.set_title(f"CLEVR-Robot, {split} goals" + (" (held out)" if split == "test" else ""))
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("greedy success rate")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    runs = load_runs(args.runs)
    args.results.mkdir(parents=True, exist_ok=True)
    run_rows, curve_rows = [], []
    for run in runs:
        for split in SPLITS:
            run_rows.append({
                "method": run["grid_method"], "seed": run["seed"], "split": split,
                "success_rate": run["final_eval"][split]["success_rate"], "return": run["final_eval"][split]["return"],
                "global_step": run.get("global_step", ""), "wall_seconds": run.get("wall_seconds", ""),
                "prior_seconds": run.get("prior_seconds", ""),
            })
        for evaluation in run["evaluations"]:
            for split in SPLITS:
                curve_rows.append({"method": run["grid_method"], "seed": run["seed"], "global_step": evaluation["global_step"],
                                   "split": split, "success_rate": evaluation[split]["success_rate"]})
    write_csv(args.results / "runs.csv", run_rows)
    write_csv(args.results / "curves.csv", curve_rows)

    methods = sorted({row["method"] for row in run_rows})
    aggregate_rows = []
    for split in SPLITS:
        scores = {m: np.array([[r["success_rate"]] for r in run_rows if r["method"] == m and r["split"] == split])
                  for m in methods}
        points, intervals = interval_estimates(scores, args.bootstrap_reps)
        for method in methods:
            aggregate_rows.append({
                "method": method, "split": split, "seeds": len(scores[method]),
                "mean": round(float(points[method][0]), 4), "mean_low": round(float(intervals[method][0, 0]), 4),
                "mean_high": round(float(intervals[method][1, 0]), 4),
                "iqm": round(float(points[method][1]), 4), "iqm_low": round(float(intervals[method][0, 1]), 4),
                "iqm_high": round(float(intervals[method][1, 1]), 4),
            })
    write_csv(args.results / "aggregate.csv", aggregate_rows)
    settings = {run["grid_method"]: {k: run["args"].get(k) for k in
                ("total_timesteps", "guidance_coef", "guidance_schedule", "guidance_decay_end", "guidance_kl",
                 "prior_fraction", "max_episode_steps", "eval_episodes", "episodes") if k in run["args"]}
                for run in runs}
    (args.results / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    prior_alone = {m: {r["split"]: r["success_rate"] for r in run_rows if r["method"] == m}
                   for m in methods if m.startswith("prior-alone")}
    for method in prior_alone:  # the prior's own record: fine-tuning time, validation metrics, evaluation
        record = args.runs / method / "seed1" / "prior_alone.json"
        (args.results / f"{method}.json").write_text(record.read_text())
    plot_curves([r for r in curve_rows if not r["method"].startswith("prior-alone")], prior_alone,
                args.results / "curves.png", args.bootstrap_reps)
    for row in aggregate_rows:
        print(f"{row['method']:<28}{row['split']:<6} seeds {row['seeds']}  mean {row['mean']:.3f} "
              f"[{row['mean_low']:.3f}, {row['mean_high']:.3f}]  IQM {row['iqm']:.3f} [{row['iqm_low']:.3f}, {row['iqm_high']:.3f}]")
    print(f"wrote runs.csv, curves.csv, aggregate.csv, settings.json, curves.png, prior records to {args.results}")


if __name__ == "__main__":
    main(tyro.cli(Args))
