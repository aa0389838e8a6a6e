"""Does the gain last? The same comparisons at the short budget of the committed grid and at a long one, side by side.

    python benchmarks/report.py --env clevr --runs runs/grid-paper/clevr --results results/clevr-paper
    python benchmarks/budget_report.py --env clevr --long results/clevr-paper \
        --pairs lago-smollm2-135m+f0.25-coef1-constant:ppo

Both folders are report.py results (their summaries/ are what is read). A pair is compared on the tasks that both
methods ran at the long budget, at each budget; a pair that has not run at both budgets yet is skipped. Writes, in
--long:
- budgets.csv: per pair, goal split and budget, a minus b in mean success with its 95% stratified bootstrap CI, and
  the change of that difference from the short budget to the long one (budget `change`: long minus short; the runs
  of the two budgets are independent, so each is resampled on its own);
- budgets.png: the learning curves of both budgets on one figure (long: solid, short: dashed, the end of the short
  budget marked), mean over seeds with a shaded 95% bootstrap CI, one panel per goal split (Meta-World: the mean over
  the long runs' tasks, then each task on the held-out goal positions).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.report import (SPLITS, bootstrap_band, compare_rows, curve_table, load_runs, method_settings,  # noqa: E402
                               resample_seeds, score_matrix, table_rows, write_csv)

TITLES = {"clevr": "CLEVR-Robot", "metaworld": "Meta-World"}
GOALS = {"clevr": {"train": "train goals", "test": "held-out goals"},
         "metaworld": {"train": "train goal positions", "test": "held-out goal positions"}}


@dataclass
class Args:
    long: Path
    """report.py's results folder of the long runs, e.g. results/clevr-paper"""
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark"""
    short: Optional[Path] = None
    """report.py's results folder of the short runs; default results/<env>"""
    pairs: str = ""
    """comma-separated `a:b` method pairs (a minus b), compared where both have run at both budgets"""
    bootstrap_reps: int = 20_000
    """bootstrap resamples of the confidence intervals"""


def budget_rows(rows: dict[str, list[dict]], steps: dict[str, int], pairs: list[tuple[str, str]], reps: int) -> list[dict]:
    """budgets.csv: each pair at each budget (compare_rows on the long runs' common tasks), then its change."""
    out = []
    rng = np.random.default_rng(0)
    for a, b in pairs:
        ran = {budget: [{r["task"] for r in rows[budget] if r["method"] == m} for m in (a, b)] for budget in rows}
        tasks = sorted(set.intersection(*ran["long"], *ran["short"]))
        if not tasks:
            continue
        for split in SPLITS:
            by_budget = {}
            for budget in ("short", "long"):
                common = [r for r in rows[budget] if r["task"] in tasks]
                (row,) = compare_rows(common, [(a, b)], split, reps)
                by_budget[budget] = row
                out.append({"budget": budget, "env_steps": steps[budget], **row})
            samples = []
            for budget in ("long", "short"):
                x, y = (score_matrix(rows[budget], m, split, tasks) for m in (a, b))
                samples.append(resample_seeds(x, reps, rng).mean(axis=(1, 2)) - resample_seeds(y, reps, rng).mean(axis=(1, 2)))
            low, high = np.percentile(samples[0] - samples[1], [2.5, 97.5])
            change = by_budget["long"]["difference"] - by_budget["short"]["difference"]
            out.append({
                "budget": "change", "env_steps": steps["long"] - steps["short"], "method": a, "baseline": b,
                "split": split, "tasks": len(tasks), "difference": round(change, 4),
                "difference_low": round(float(low), 4), "difference_high": round(float(high), 4),
                "verdict": "grew" if low > 0 else "shrank" if high < 0 else "no clear change",
            })
    return out


def plot_budgets(curves: dict[str, list[dict]], steps: dict[str, int], env: str, path: Path, reps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    tasks = sorted({r["task"] for r in curves["long"]})
    panels = [(tasks, split, f"{TITLES[env]}, {GOALS[env][split]}"
               + (f" (mean of {len(tasks)} tasks)" if len(tasks) > 1 else "")) for split in SPLITS]
    if len(tasks) > 1:
        panels += [([task], "test", f"{task}, {GOALS[env]['test']}") for task in tasks]
    columns = min(len(panels), 3)
    rows_ = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows_, columns, figsize=(5.2 * columns, 3.8 * rows_), sharey=True, squeeze=False)
    methods = sorted({r["method"] for r in curves["long"]})
    color = {method: f"C{i % 10}" for i, method in enumerate(methods)}
    legend = {}
    for ax, (panel_tasks, split, title) in zip(axes.flat, panels):
        for method in methods:
            for budget, style in (("long", "-"), ("short", "--")):
                chosen = [r for r in curves[budget] if r["method"] == method and r["split"] == split
                          and r["task"] in panel_tasks]
                if {r["task"] for r in chosen} != set(panel_tasks):  # a method that has not run every task here
                    continue
                x, table = curve_table(chosen)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a seed that misses a step: nan, ignored
                    mean = np.nanmean(table, axis=0)
                    low, high = bootstrap_band(table, rng, reps)
                label = f"{method}, {steps[budget]:,} steps ({len(table)} seeds)"
                legend[(method, budget)] = ax.plot(x, mean, style, color=color[method], label=label)[0]
                ax.fill_between(x, low, high, color=color[method], alpha=0.15)
        ax.axvline(steps["short"], color="0.4", linestyle=":", linewidth=1)
        ax.set_title(title)
        ax.set_xlabel(f"env steps (dotted: the short budget, {steps['short']:,})")
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("greedy success rate")
    handles = [legend[key] for key in sorted(legend)]
    fig.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.22 * -(-len(handles) // 2) + 0.1) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    folders = {"short": args.short or ROOT / "results" / args.env, "long": args.long}
    runs = {}
    for budget, folder in folders.items():
        runs[budget] = [run for run in load_runs(folder / "summaries") if not run["grid_method"].startswith("prior-alone")]
        if not runs[budget]:
            raise SystemExit(f"budget_report.py: error: --{budget} {folder}: no finished runs in its summaries/; "
                             "run benchmarks/grid.py and benchmarks/report.py first")
    steps = {}
    for budget, folder in folders.items():
        method_settings(runs[budget])  # one budget per method, as report.py checks
        budgets = {run["global_step"] for run in runs[budget]}
        if len(budgets) != 1:
            raise SystemExit(f"budget_report.py: error: --{budget} {folder}: its runs have different budgets "
                             f"({', '.join(f'{b:,}' for b in sorted(budgets))}); report each budget in its own folder")
        steps[budget] = budgets.pop()
    if steps["long"] <= steps["short"]:
        raise SystemExit(f"budget_report.py: error: --long {args.long}: its runs ({steps['long']:,} steps) are not "
                         f"longer than those of --short {folders['short']} ({steps['short']:,})")
    tables = {budget: table_rows(runs[budget]) for budget in runs}
    pairs = [tuple(pair.strip().split(":")) for pair in args.pairs.split(",") if pair.strip()]
    for pair in pairs:
        if len(pair) != 2:
            raise SystemExit(f"budget_report.py: error: --pairs: {':'.join(pair)!r} is not a pair `a:b` of methods")
    rows = budget_rows({budget: tables[budget][0] for budget in tables}, steps, pairs, args.bootstrap_reps)
    write_csv(args.long / "budgets.csv", rows)
    long_tasks = {r["task"] for r in tables["long"][1]}
    curves = {"long": tables["long"][1], "short": [r for r in tables["short"][1] if r["task"] in long_tasks]}
    plot_budgets(curves, steps, args.env, args.long / "budgets.png", args.bootstrap_reps)
    for row in rows:
        where = f"{row['budget']} ({row['env_steps']:,} steps)" if row["budget"] != "change" else "change, long - short"
        print(f"{row['method']} - {row['baseline']} ({row['split']}, {row['tasks']} task(s)), {where}: "
              f"{row['difference']:+.3f} [{row['difference_low']:+.3f}, {row['difference_high']:+.3f}]: {row['verdict']}")
    print(f"wrote budgets.csv and budgets.png to {args.long}")


if __name__ == "__main__":
    main(tyro.cli(Args))
