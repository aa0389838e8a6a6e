"""Aggregate the grid's finished runs into committed results: CSV tables and learning curves.

    python benchmarks/report.py                                    # runs/grid/clevr -> results/clevr/
    python benchmarks/report.py --env metaworld                    # runs/grid/metaworld -> results/metaworld/
    python benchmarks/readme_tables.py --update-readme

Each finished run's summary.json is first copied to `--results`/summaries/<method>/[<task>/]seed<k>.json
(the prior alone's with its evaluate_prior.py record inside). Those small files are committed: the tables
and plots are made from them alone, so this command regenerates every result on a clean checkout, and
benchmarks/grid.py counts an archived run as finished (a grid resumes on another machine).

Writes, in `--results`:
- runs.csv: one row per run and goal split (final greedy success, return, steps, wall time, prior time);
- curves.csv: every periodic evaluation (method, task, seed, step, split, success);
- aggregate.csv: per method and split, mean and IQM success over seeds (and tasks: a seeds x tasks
  score matrix) with 95% stratified bootstrap confidence intervals (rliable); task_set `all` has the
  methods that ran every task, and each smaller set of tasks that a method ran has every method that ran it;
- comparisons.csv (with --compare a:b,...): a minus b in mean success, and the probability of improvement
  P(a run of a beats a run of b), with 95% stratified bootstrap CIs, and the verdict: `better` or `worse`
  where the CI of the difference excludes 0, else `no clear difference`;
- per_task.csv: the same per task (Meta-World);
- curves.png: success against env steps, mean over seeds with a shaded 95% bootstrap CI, per goal
  split (CLEVR-Robot) or over each task set of aggregate.csv and per task (Meta-World); the prior alone
  as a dashed line;
- prior-alone-<prior>.json: each prior's record (its fine-tuning config and metrics, its evaluation).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import PER_RUN, SummaryError, read_summary, run_settings, setting_differences, training_revision  # noqa: E402
SPLITS = ("train", "test")  # training goals, held-out goals (Meta-World: goal positions of another env seed)
GOAL_NAMES = {"train": "train goal positions", "test": "held-out goal positions"}  # Meta-World's, in the plot
ALL_TASKS = "all tasks"


@dataclass
class Args:
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark of the grid"""
    runs: Optional[Path] = None
    """the grid's run folder (benchmarks/grid.py --out); default runs/grid/<env>"""
    results: Optional[Path] = None
    """where the CSV files and the plot go; default results/<env>"""
    compare: str = ""
    """comma-separated `a:b` method pairs: a's mean success minus b's and the probability that a run of a beats
    one of b, with 95% stratified bootstrap CIs, on the tasks both ran (comparisons.csv)"""
    compare_if_run: str = ""
    """more `a:b` pairs, compared where both methods have finished runs on a common task and skipped otherwise"""
    bootstrap_reps: int = 20_000
    """bootstrap resamples of the confidence intervals"""


def archive_runs(folder: Path, archive: Path) -> int:
    """Copy every finished run of the grid folder, <method>/[<task>/]seed<k>/summary.json, to
    <archive>/<method>/[<task>/]seed<k>.json; a prior-alone run's evaluate_prior.py record goes inside."""
    summaries = sorted(folder.glob("*/seed*/summary.json")) + sorted(folder.glob("*/*/seed*/summary.json"))
    copies = {}  # all read before any is written: a damaged one leaves the archive as it was
    for path in summaries:
        summary = checked(read_summary, path, "delete it and run the grid again to redo that run")
        if (path.parent / "prior_alone.json").is_file():
            summary["prior_report"] = checked(lambda p: json.loads(p.read_text()), path.parent / "prior_alone.json",
                                              "delete its run folder and run the grid again")
        copies[archive / path.parent.relative_to(folder).with_suffix(".json")] = summary
    for target, summary in copies.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(summary, indent=2) + "\n")
    return len(summaries)


def checked(read, path: Path, remedy: str):
    """`read(path)`, or one sentence naming the damaged file and what to do."""
    try:
        return read(path)
    except (SummaryError, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        message = str(error) if isinstance(error, SummaryError) else f"{path} is not readable JSON ({error})"
        raise SystemExit(f"report.py: error: {message}; {remedy}") from error


def load_runs(archive: Path) -> list[dict]:
    """Every archived run: <method>/seed<k>.json or <method>/<task>/seed<k>.json."""
    paths = sorted(archive.glob("*/seed*.json")) + sorted(archive.glob("*/*/seed*.json"))
    return [dict(checked(read_summary, path, "restore it from version control, or delete it and run the grid again"),
                 grid_method=path.relative_to(archive).parts[0], path=path) for path in paths]


def method_settings(runs: list[dict]) -> dict[str, dict]:
    """The settings of each method's runs (run_settings without seed and task, and the prior's precision), which must
    be the same for all of them: runs of different budgets, evaluations, guidance, priors or prior precisions under
    one name are refused, not averaged."""
    settings: dict[str, dict] = {}
    first: dict[str, Path] = {}
    revisions = {revision: run["path"] for run in runs
                 if (revision := training_revision(run, run["grid_method"])) is not None}
    if len(revisions) > 1:
        raise SystemExit(f"report.py: error: runs of different revisions of the training scripts "
                         f"({', '.join(f'{r} in {p}' for r, p in sorted(revisions.items()))}) cannot be compared; "
                         "rerun the older ones")
    for run in runs:
        method = run["grid_method"]
        mine = {name: value for name, value in run_settings(run["args"]).items() if name not in PER_RUN}
        if "prior_dtype" in run:  # LaGO: the precision its prior's LLM ran in, which must be the same for all runs too
            mine["prior_dtype"] = run["prior_dtype"]
        if method not in settings:
            settings[method], first[method] = mine, run["path"]
            continue
        differences = setting_differences(settings[method], mine) or setting_differences(mine, settings[method])
        if differences:
            raise SystemExit(f"report.py: error: the runs of {method} differ in their settings: {run['path']} has "
                             f"{differences[0]} (as in {first[method]}); report such runs under different names or "
                             "--results, or rerun them alike")
    return settings


def table_rows(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """runs.csv's rows (one per run and goal split: the final evaluation) and curves.csv's (every evaluation)."""
    run_rows, curve_rows = [], []
    for run in runs:
        for split in SPLITS:
            run_rows.append({
                "method": run["grid_method"], "task": run["env_id"], "seed": run["seed"], "split": split,
                "success_rate": run["final_eval"][split]["success_rate"], "return": run["final_eval"][split]["return"],
                "global_step": run.get("global_step", ""), "wall_seconds": run.get("wall_seconds", ""),
                "prior_seconds": run.get("prior_seconds", ""),
            })
        for evaluation in run["evaluations"]:
            for split in SPLITS:
                curve_rows.append({"method": run["grid_method"], "task": run["env_id"], "seed": run["seed"],
                                   "global_step": evaluation["global_step"], "split": split,
                                   "success_rate": evaluation[split]["success_rate"]})
    return run_rows, curve_rows


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

    # rliable draws its resamples from numpy's global generator (its random_state argument does not reach them):
    # seed it for reproducible CIs, so that rerunning the report leaves the committed files unchanged, and seed it
    # anew for each method, so that a method's CI does not depend on which other methods the folder holds
    state = np.random.get_state()
    points, intervals = {}, {}
    try:
        for method, matrix in scores.items():
            np.random.seed(0)
            point, interval = rly.get_interval_estimates({method: matrix}, aggregate, reps=reps)
            points.update(point)
            intervals.update(interval)
        return points, intervals
    finally:
        np.random.set_state(state)


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


def plot_curves(curves: list[dict], prior_alone: dict[tuple[str, str, str], float], env: str, path: Path, reps: int,
                task_sets: list[list[str]], method_tasks: dict[str, list[str]]) -> None:
    """One panel per goal split (CLEVR-Robot), or per task set of aggregate.csv and per task (Meta-World); a
    panel shows the methods that ran all of its tasks."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    tasks = sorted({r["task"] for r in curves})
    if env == "clevr":
        panels = [(tasks, split, f"CLEVR-Robot, {split} goals" + (" (held out)" if split == "test" else ""))
                  for split in SPLITS]
    else:  # every task set on both goal splits, each task on the held-out goal positions
        panels = [(list(task_set), split, f"Meta-World, mean of {len(task_set)} tasks, {GOAL_NAMES[split]}"
                   + ("" if len(task_set) == len(tasks) else "\n(" + ", ".join(task_set) + ")"))
                  for task_set in task_sets for split in SPLITS]
        panels += [([task], "test", f"{task}, {GOAL_NAMES['test']}") for task in tasks]
    columns = min(len(panels), 4)
    rows_ = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows_, columns, figsize=(5.0 * columns, 3.8 * rows_), sharey=True, squeeze=False)
    methods = sorted({row["method"] for row in curves})
    alone_methods = sorted({m for m, _, _ in prior_alone})
    palette = plt.get_cmap("tab20").colors if len(methods) + len(alone_methods) > 10 else [f"C{i}" for i in range(10)]
    color = {method: palette[i % len(palette)] for i, method in enumerate(methods + alone_methods)}
    legend = {}
    for ax, (panel_tasks, split, title) in zip(axes.flat, panels):
        for method in methods:
            if not set(panel_tasks) <= set(method_tasks[method]):
                continue
            steps, table = curve_table([r for r in curves if r["method"] == method and r["split"] == split
                                        and r["task"] in panel_tasks])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a seed that misses a step: nan, ignored
                mean = np.nanmean(table, axis=0)
                low, high = bootstrap_band(table, rng, reps)
            legend[method] = ax.plot(steps, mean, color=color[method], label=f"{method} ({len(table)} seeds)")[0]
            ax.fill_between(steps, low, high, color=color[method], alpha=0.2)
        for method in alone_methods:
            if set(panel_tasks) <= set(method_tasks[method]):
                value = float(np.mean([prior_alone[(method, t, split)] for t in panel_tasks]))
                legend[method] = ax.axhline(value, color=color[method], linestyle="--", label=method)
        ax.set_title(title, fontsize=9 if "\n" in title else None)
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}k")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("greedy success rate")
    handles = [legend[m] for m in methods + alone_methods if m in legend]  # below the panels, off the curves
    columns_legend = min(3, len(handles))
    legend_rows = -(-len(handles) // columns_legend)
    fig.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=columns_legend, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.25 * legend_rows + 0.1) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def score_matrix(run_rows: list[dict], method: str, split: str, tasks: list[str]) -> Optional[np.ndarray]:
    """seeds x tasks final success of `method`, over the seeds that every task has (None if there are none)."""
    by_task = {task: {r["seed"]: r["success_rate"] for r in run_rows
                      if r["method"] == method and r["split"] == split and r["task"] == task} for task in tasks}
    seeds = sorted(set.intersection(*(set(v) for v in by_task.values())))
    return np.array([[by_task[task][seed] for task in tasks] for seed in seeds]) if seeds else None


def estimate_rows(run_rows: list[dict], methods: list[str], split: str, tasks: list[str], reps: int,
                  **labels) -> list[dict]:
    """mean and IQM with 95% CIs of the seeds x tasks matrix of each method (seeds every task has)."""
    scores = {method: score_matrix(run_rows, method, split, tasks) for method in methods}
    scores = {method: matrix for method, matrix in scores.items() if matrix is not None}
    points, intervals = interval_estimates(scores, reps)
    return [{
        **labels, "method": method, "split": split, "tasks": len(tasks), "seeds": len(scores[method]),
        "mean": round(float(points[method][0]), 4), "mean_low": round(float(intervals[method][0, 0]), 4),
        "mean_high": round(float(intervals[method][1, 0]), 4),
        "iqm": round(float(points[method][1]), 4), "iqm_low": round(float(intervals[method][0, 1]), 4),
        "iqm_high": round(float(intervals[method][1, 1]), 4),
    } for method in scores]


def task_set_name(task_set: list[str], all_tasks: list[str]) -> str:
    return "all" if task_set == all_tasks else " ".join(task_set)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(a run of x beats a run of y on the same task), ties counting half, averaged over tasks (rliable's
    definition); x and y are (..., runs, tasks) with the same leading shape."""
    wins = (x[..., :, None, :] > y[..., None, :, :]) + 0.5 * (x[..., :, None, :] == y[..., None, :, :])
    return wins.mean(axis=(-3, -2)).mean(axis=-1)


def resample_seeds(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """reps x runs x tasks: bootstrap resamples of a runs x tasks score matrix, the runs resampled within each task."""
    return scores[rng.integers(len(scores), size=(reps, *scores.shape)), np.arange(scores.shape[1])]


def compare_rows(run_rows: list[dict], pairs: list[tuple[str, str]], split: str, reps: int) -> list[dict]:
    """Method a against method b on the tasks both ran: the difference of mean success and the probability of
    improvement, with 95% stratified bootstrap CIs (the seeds of each method resampled within each task)."""
    rng = np.random.default_rng(0)
    rows = []
    for a, b in pairs:
        tasks = sorted({r["task"] for r in run_rows if r["method"] == a} & {r["task"] for r in run_rows if r["method"] == b})
        x, y = (score_matrix(run_rows, m, split, tasks) if tasks else None for m in (a, b))
        if x is None or y is None:
            raise SystemExit(f"report.py: error: --compare {a}:{b}: the two methods have no finished runs on a common task")
        xs, ys = resample_seeds(x, reps, rng), resample_seeds(y, reps, rng)
        difference = xs.mean(axis=(1, 2)) - ys.mean(axis=(1, 2))
        improvement = probability_of_improvement(xs, ys)
        low, high = np.percentile(difference, [2.5, 97.5])
        verdict = "better" if low > 0 else "worse" if high < 0 else "no clear difference"
        rows.append({
            "method": a, "baseline": b, "split": split, "tasks": len(tasks), "seeds": len(x), "baseline_seeds": len(y),
            "mean": round(float(x.mean()), 4), "baseline_mean": round(float(y.mean()), 4),
            "difference": round(float(x.mean() - y.mean()), 4), "difference_low": round(float(low), 4),
            "difference_high": round(float(high), 4),
            "p_improvement": round(float(probability_of_improvement(x, y)), 4),
            "p_improvement_low": round(float(np.percentile(improvement, 2.5)), 4),
            "p_improvement_high": round(float(np.percentile(improvement, 97.5)), 4), "verdict": verdict,
        })
    return rows


def main(args: Args) -> None:
    folder = args.runs or ROOT / "runs" / "grid" / args.env
    results = args.results or ROOT / "results" / args.env
    archived = archive_runs(folder, results / "summaries") if folder.is_dir() else 0
    runs = load_runs(results / "summaries")
    if not runs:
        raise SystemExit(f"report.py: error: no finished runs under {folder} or {results / 'summaries'}; "
                         "run benchmarks/grid.py first")
    print(f"{archived} finished runs copied from {folder} to {results / 'summaries'}; reporting all {len(runs)} there")
    settings = method_settings(runs)
    splits = SPLITS
    run_rows, curve_rows = table_rows(runs)
    write_csv(results / "runs.csv", run_rows)
    write_csv(results / "curves.csv", curve_rows)

    methods = sorted({row["method"] for row in run_rows})
    tasks = sorted({row["task"] for row in run_rows})
    # every method over all tasks; a method that ran a subset of them, with every method that ran that subset too
    method_tasks = {m: sorted({r["task"] for r in run_rows if r["method"] == m}) for m in methods}
    task_sets = [tasks] + sorted({tuple(t) for t in method_tasks.values()} - {tuple(tasks)}, key=lambda t: (-len(t), t))
    aggregate_rows = [row for task_set in task_sets for split in splits for row in estimate_rows(
        run_rows, [m for m in methods if set(task_set) <= set(method_tasks[m])], split, list(task_set),
        args.bootstrap_reps, task_set=task_set_name(list(task_set), tasks))]
    write_csv(results / "aggregate.csv", aggregate_rows)
    pairs = [tuple(pair.strip().split(":")) for pair in args.compare.split(",") if pair.strip()]
    for pair in pairs:
        if len(pair) != 2 or not set(pair) <= set(methods):
            raise SystemExit(f"report.py: error: --compare: {':'.join(pair)!r} is not a pair `a:b` of the methods "
                             f"({', '.join(methods)})")
    ran = {m: {r["task"] for r in run_rows if r["method"] == m} for m in methods}
    for pair in (tuple(p.strip().split(":")) for p in args.compare_if_run.split(",") if p.strip()):
        if len(pair) != 2:
            raise SystemExit(f"report.py: error: --compare-if-run: {':'.join(pair)!r} is not a pair `a:b` of methods")
        if ran.get(pair[0], set()) & ran.get(pair[1], set()):
            pairs.append(pair)
    comparison_rows = [row for split in splits for row in compare_rows(run_rows, pairs, split, args.bootstrap_reps)]
    if comparison_rows:
        write_csv(results / "comparisons.csv", comparison_rows)
    else:  # no --compare: no comparisons, rather than those of an earlier report over other runs
        (results / "comparisons.csv").unlink(missing_ok=True)
    if args.env == "metaworld":
        per_task = [row for task in tasks for split in splits for row in estimate_rows(
            run_rows, [m for m in methods if task in method_tasks[m]], split, [task], args.bootstrap_reps, task=task)]
        write_csv(results / "per_task.csv", per_task)
    (results / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    prior_alone = {(r["method"], r["task"], r["split"]): r["success_rate"] for r in run_rows
                   if r["method"].startswith("prior-alone")}
    records = {}
    for run in runs:  # each prior's own record: fine-tuning time, validation metrics, evaluation(s)
        if run["grid_method"].startswith("prior-alone"):
            record = run["prior_report"]
            merged = records.setdefault(run["grid_method"], {**record, "results": {}})
            merged["results"].update(record["results"])
    for method, record in records.items():
        (results / f"{method}.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_curves([r for r in curve_rows if not r["method"].startswith("prior-alone")], prior_alone, args.env,
                results / "curves.png", args.bootstrap_reps, [list(t) for t in task_sets], method_tasks)
    for row in aggregate_rows:
        print(f"{row['method']:<46} {row['split']:<6} {row['tasks']} task(s) x {row['seeds']} seeds  mean {row['mean']:.3f} "
              f"[{row['mean_low']:.3f}, {row['mean_high']:.3f}]  IQM {row['iqm']:.3f} [{row['iqm_low']:.3f}, {row['iqm_high']:.3f}]")
    for row in comparison_rows:
        print(f"{row['method']} vs {row['baseline']} ({row['split']}, {row['tasks']} task(s)): difference "
              f"{row['difference']:+.3f} [{row['difference_low']:+.3f}, {row['difference_high']:+.3f}], "
              f"P(improvement) {row['p_improvement']:.2f} [{row['p_improvement_low']:.2f}, {row['p_improvement_high']:.2f}]: {row['verdict']}")
    print(f"wrote runs.csv, curves.csv, aggregate.csv{', comparisons.csv' if comparison_rows else ''}"
          f"{', per_task.csv' if args.env == 'metaworld' else ''}, settings.json, "
          f"curves.png, prior records to {results}")


if __name__ == "__main__":
    main(tyro.cli(Args))
