"""Does the LLM matter? The prior alone in unseen language, and LaGO, for every LLM size and weight init.

    python benchmarks/llm_study.py --env clevr             # evaluate each prior that exists (resumable)
    python benchmarks/llm_study.py --report-only           # figure, points and answers from committed results

Prior alone: evaluate_prior.py on both goal splits with each instruction set (CLEVR-Robot: the
training phrasings, the paraphrases, and the unseen words; Meta-World: the training prompts and one
prompt per task in unseen words; on both, the control `none`, one sentence for every goal), one
record per prior and set in results/llm/<env>/<prior>__<instructions>.json. A record that is there
is not evaluated again.

LaGO: the runs of benchmarks/grid.py in results/<env>/summaries/lago-<prior>+<label>, at the
guidance setting chosen in results/<env>-tuning/chosen.json (see the Makefile's `llm-study`).

The report writes, in results/llm/:
- points.csv: success of every (benchmark, goal split, LLM, weights, prior alone with instruction set / LaGO)
  with its 95% CI (prior alone: bootstrap over episodes, on Meta-World also over tasks, paired between priors;
  LaGO: over seeds, stratified by task);
- answers.csv: the questions of docs/llm.md as differences with 95% bootstrap CIs;
- llm_size.png: success against the LLM's parameters (log scale), one panel per benchmark and goal split.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import grid, readme_tables, report  # noqa: E402

# the instruction sets; `none` is the control, the same sentence for every goal: success without the goal's words
INSTRUCTIONS = {"clevr": ("train", "paraphrase", "unseen", "none"), "metaworld": ("train", "unseen", "none")}
PRIORS = ("smollm2-135m", "smollm2-135m-random", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-random",
          "qwen2.5-coder-1.5b")
LLM_NAMES = {"smollm2-135m": "SmolLM2-135M", "gemma3-270m": "Gemma 3 270M", "qwen2.5-coder-0.5b": "Qwen2.5-Coder 0.5B",
             "qwen2.5-coder-1.5b": "Qwen2.5-Coder 1.5B"}
# one family at two sizes (the same tokenizer, architecture and training data): size alone, beside each LLM against
# the smallest
SAME_FAMILY_SMALLER = {"qwen2.5-coder-1.5b": "qwen2.5-coder-0.5b"}
BENCHMARKS = dict(readme_tables.BENCHMARKS)
SPLIT_NAMES = readme_tables.SPLIT_NAMES
INSTRUCTION_NAMES = {"train": "training phrasings", "paraphrase": "paraphrases", "unseen": "unseen words",
                     "none": "no goal words (control)"}


@dataclass
class Args:
    env: Literal["clevr", "metaworld"] = "clevr"
    """the benchmark whose priors are evaluated"""
    priors: str = ",".join(PRIORS)
    """comma-separated priors checkpoints/prior__<env>__<prior>__1 (a missing one is skipped and named)"""
    episodes: Optional[int] = None
    """episodes per goal split (CLEVR-Robot, default 200) or per task and split (Meta-World, default 10: each
    task's 500-step episodes run as one batch)"""
    tasks: Optional[str] = None
    """Meta-World: the tasks to evaluate (default: every task the prior was trained on)"""
    instructions: Optional[str] = None
    """comma-separated instruction sets to evaluate (default: every set of the benchmark)"""
    checkpoints: str = "checkpoints"
    """the folder of the priors"""
    grid_results: str = "results"
    """the folder of the grids' results: LaGO's runs in <grid-results>/<env>/runs.csv, the chosen guidance setting in
    <grid-results>/<env>-tuning/chosen.json"""
    report_only: bool = False
    """no evaluation: the report from results/llm/ and results/<env>/ alone"""
    results: str = "results/llm"
    """where the records and the report go"""
    bootstrap_reps: int = 20_000
    """bootstrap resamples of the confidence intervals"""


def record_path(results: Path, env: str, prior: str, instructions: str) -> Path:
    return results / env / f"{prior}__{instructions}.json"


def evaluate(args: Args, results: Path) -> None:
    """evaluate_prior.py for every prior x instruction set whose record is not there yet."""
    episodes = args.episodes or {"clevr": 200, "metaworld": 10}[args.env]
    if episodes <= 0:
        raise SystemExit("llm_study.py: error: --episodes must be a positive integer")
    priors = [p.strip() for p in args.priors.split(",") if p.strip()]
    sets = [i.strip() for i in args.instructions.split(",")] if args.instructions else list(INSTRUCTIONS[args.env])
    if not set(sets) <= set(INSTRUCTIONS[args.env]):
        raise SystemExit(f"llm_study.py: error: --instructions must name sets of {', '.join(INSTRUCTIONS[args.env])}")
    cells = [(p, i) for p in priors for i in sets]
    there = {(p, i) for p, i in cells if record_path(results, args.env, p, i).is_file()}
    checkpoints = ROOT / args.checkpoints  # (an absolute path stays itself)
    missing = sorted({p for p, i in cells if (p, i) not in there
                      and not (checkpoints / f"prior__{args.env}__{p}__1" / "config.json").is_file()})
    for prior in missing:
        print(f"skipped {prior}: no checkpoint; make checkpoints/prior__{args.env}__{prior}__1/config.json")
    todo = [(p, i) for p, i in cells if (p, i) not in there and p not in missing]
    print(f"{len(there)} records there, {len(todo)} to evaluate")
    for index, (prior, instructions) in enumerate(todo, 1):
        path = record_path(results, args.env, prior, instructions)
        command = [sys.executable, "evaluate_prior.py", "--prior-path", str(checkpoints / f"prior__{args.env}__{prior}__1"),
                   "--instructions", instructions, "--episodes", str(episodes),
                   "--max-episode-steps", str(grid.SETUPS[args.env]["max_episode_steps"]), "--seed", str(grid.EVAL_SEED),
                   "--json", str(path.with_suffix(".tmp"))]
        if args.env == "metaworld":  # one prior batch per task and split: 1.8x the states/s of batches of 10
            command += ["--num-envs", str(episodes)] + (["--tasks", args.tasks] if args.tasks else [])
        print(f"[{index}/{len(todo)}] {prior}, {INSTRUCTION_NAMES[instructions]}", flush=True)
        start = time.time()
        subprocess.run(command, cwd=ROOT, check=True)
        path.with_suffix(".tmp").replace(path)  # only a finished evaluation counts as a record
        print(f"    {time.time() - start:.0f}s -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


# --- the report -------------------------------------------------------------------------------------------------
def episode_successes(record: dict, split: str) -> np.ndarray:
    """tasks x episodes of a prior-alone record's split (CLEVR-Robot: one task)."""
    cells = [value for key, value in record["results"].items() if key.split("/")[-1] == split]
    return np.array([[int(c) for c in cell["successes"]] for cell in cells], dtype=float)


def resample_episodes(successes: np.ndarray, reps: int, rng: np.random.Generator,
                      task_rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """reps bootstrap means of a tasks x episodes matrix: episodes resampled within each task and, with `task_rng`,
    the tasks too (generators seeded alike draw the same tasks for every prior: differences are paired by task)."""
    columns = rng.integers(successes.shape[1], size=(reps, successes.shape[1]))
    if task_rng is None or successes.shape[0] == 1:
        return successes[:, columns].mean(axis=(0, 2))
    rows = task_rng.integers(successes.shape[0], size=(reps, successes.shape[0]))
    return successes[rows[:, :, None], columns[:, None, :]].mean(axis=(1, 2))


def llm_of(prior: str) -> tuple[str, str]:
    return prior.removesuffix("-random"), "random" if prior.endswith("-random") else "pretrained"


def load_study(results: Path, grid_results: Path, env: str) -> tuple[dict, dict, dict]:
    """The prior-alone records {(prior, instructions): record}, LaGO's seeds x tasks scores {(prior, split): matrix}
    at the chosen guidance setting (on the tasks every prior ran), and {llm: parameters}."""
    records, parameters = {}, {}
    for path in sorted((results / env).glob("*__*.json")):
        prior, instructions = path.stem.split("__")
        records[prior, instructions] = json.loads(path.read_text())
        parameters[llm_of(prior)[0]] = records[prior, instructions]["llm_parameters"]
    lago = {}
    chosen = grid_results / f"{env}-tuning" / "chosen.json"
    runs_csv = grid_results / env / "runs.csv"
    if chosen.is_file() and runs_csv.is_file():
        label = json.loads(chosen.read_text())["label"]
        with open(runs_csv) as file:
            rows = [{**r, "seed": int(r["seed"]), "success_rate": float(r["success_rate"])} for r in csv.DictReader(file)]
        methods = {m.removeprefix("lago-").removesuffix("+" + label) for m in {r["method"] for r in rows}
                   if m.startswith("lago-") and m.endswith("+" + label)}
        tasks = sorted(set.intersection(*({r["task"] for r in rows if r["method"] == f"lago-{p}+{label}"} for p in methods))
                       if methods else ())
        for prior in methods:
            for split in report.SPLITS:
                matrix = report.score_matrix(rows, f"lago-{prior}+{label}", split, tasks)
                if matrix is not None:
                    lago[prior, split] = matrix
    return records, lago, parameters


def rng_for(*key: str) -> np.random.Generator:
    """A generator of its own for each bootstrap, so that adding a prior leaves every other CI unchanged."""
    return np.random.default_rng(zlib.crc32("/".join(key).encode()))


def write_report(args: Args, results: Path) -> None:
    points, answers, panels = [], [], {}
    studies = {env: load_study(results, ROOT / args.grid_results, env) for env in BENCHMARKS}
    parameters = {llm: count for _, _, counts in studies.values() for llm, count in counts.items()}  # from any benchmark
    for env, (records, lago, _) in studies.items():
        if not records:  # the study has not run on this benchmark
            continue
        for split in report.SPLITS:
            samples = {}  # (kind, prior) -> bootstrap means; kind: "prior alone, <instructions>" or "LaGO"
            for (prior, instructions), record in records.items():
                successes = episode_successes(record, split)
                # Meta-World: a greedy prior solves all goal positions of a task or none, so the uncertainty is in the
                # tasks: resampled too, the same draws for every prior and instruction set
                boot = resample_episodes(successes, args.bootstrap_reps, rng_for(env, split, prior, instructions),
                                         rng_for(env, split, "tasks") if env == "metaworld" else None)
                samples[f"prior alone, {INSTRUCTION_NAMES[instructions]}", prior] = (
                    successes.mean(), boot,
                    f"{successes.shape[1]} episodes" + (f" x {successes.shape[0]} tasks" if env == "metaworld" else ""))
            for (prior, lago_split), scores in lago.items():
                if lago_split == split:
                    boot = report.resample_seeds(scores, args.bootstrap_reps, rng_for(env, split, prior)).mean(axis=(1, 2))
                    samples["LaGO", prior] = (scores.mean(), boot, f"{scores.shape[0]} seeds"
                                              + (f" x {scores.shape[1]} tasks" if env == "metaworld" else ""))
            for (kind, prior), (mean, boot, size) in sorted(samples.items()):
                llm, weights = llm_of(prior)
                low, high = np.percentile(boot, [2.5, 97.5])
                points.append({"benchmark": env, "split": split, "kind": kind, "llm": llm, "weights": weights,
                               "llm_parameters": parameters.get(llm, ""), "success": round(float(mean), 4),
                               "low": round(float(low), 4), "high": round(float(high), 4), "size": size})
            panels[env, split] = [p for p in points if p["benchmark"] == env and p["split"] == split]
            answers += answer_rows(env, split, samples)
    questions = list(dict.fromkeys(row["question"] for row in answers))  # in the order answer_rows asks them
    answers.sort(key=lambda r: (questions.index(r["question"]), list(BENCHMARKS).index(r["benchmark"]),
                                report.SPLITS.index(r["split"])))  # stable: each question's rows keep their order
    if not points:
        raise SystemExit(f"llm_study.py: error: no records under {results}; run benchmarks/llm_study.py --env clevr first")
    report.write_csv(results / "points.csv", points)
    if answers:
        report.write_csv(results / "answers.csv", answers)
    else:  # not two of the same kind yet: no answers, rather than those of an earlier report
        (results / "answers.csv").unlink(missing_ok=True)
    plot(panels, results / "llm_size.png")
    for row in answers:
        print(f"{row['question']:<44} {row['benchmark']:<10} {row['split']:<5} {row['kind']:<30} {row['comparison']:<46} "
              f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]  ({row['size']})")
    print(f"wrote points.csv, answers.csv, llm_size.png to {results}")


def answer_rows(env: str, split: str, samples: dict) -> list[dict]:
    """a - b for the pairs that answer the questions of docs/llm.md, where both were measured."""
    rows = []

    def add(question: str, a: tuple[str, str], b: tuple[str, str], what: str, comparison: str):
        """samples[a] - samples[b]; a and b are (kind, prior) keys."""
        if a not in samples or b not in samples:
            return
        boot = samples[a][1] - samples[b][1]
        low, high = np.percentile(boot, [2.5, 97.5])
        verdict = "yes" if low > 0 else "no, the opposite" if high < 0 else "no clear difference"
        rows.append({"question": question, "benchmark": env, "split": split, "kind": what, "comparison": comparison,
                     "difference": round(float(samples[a][0] - samples[b][0]), 4), "low": round(float(low), 4),
                     "high": round(float(high), 4), "verdict": verdict,
                     "size": " / ".join(sorted({samples[a][2], samples[b][2]}))})

    pretrained = [llm for llm in LLM_NAMES if any(prior == llm for _, prior in samples)]
    trained_language = ["LaGO", "prior alone, training phrasings"]
    for kind in trained_language:
        for larger in pretrained[1:]:
            add("Does success grow with LLM size?", (kind, larger), (kind, pretrained[0]), kind,
                f"{LLM_NAMES[larger]} - {LLM_NAMES[pretrained[0]]}")
        for larger, smaller in SAME_FAMILY_SMALLER.items():
            add("Does success grow with LLM size?", (kind, larger), (kind, smaller), kind,
                f"{LLM_NAMES[larger]} - {LLM_NAMES[smaller]}")
    for kind in trained_language:
        for llm in LLM_NAMES:
            add("Does pretraining matter?", (kind, llm), (kind, f"{llm}-random"), kind,
                f"{LLM_NAMES[llm]}: pretrained - random weights")
    new_language = [f"prior alone, {INSTRUCTION_NAMES[i]}" for i in INSTRUCTIONS[env] if i in ("paraphrase", "unseen")]
    for kind in new_language:
        for llm in LLM_NAMES:
            add("Does a pretrained prior follow new language better than a random-init one?", (kind, llm),
                (kind, f"{llm}-random"), kind, f"{LLM_NAMES[llm]}: pretrained - random weights")
    unseen, control = (f"prior alone, {INSTRUCTION_NAMES[i]}" for i in ("unseen", "none"))
    for llm in LLM_NAMES:
        for prior, weights in ((llm, "pretrained"), (f"{llm}-random", "random weights")):
            add("Does the prior follow unseen words at all?", (unseen, prior), (control, prior),
                "prior alone, unseen words - no goal words", f"{LLM_NAMES[llm]}, {weights}")
    return rows


def plot(panels: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({env for env, _ in panels}, key=list(BENCHMARKS).index)
    fig, axes = plt.subplots(len(envs), 2, figsize=(11, 4 * len(envs) + 1.6), squeeze=False, sharex=True)
    colours = {"LaGO": "black", "prior alone, training phrasings": "tab:blue", "prior alone, paraphrases": "tab:green",
               "prior alone, unseen words": "tab:red", "prior alone, no goal words (control)": "tab:gray"}
    for row, env in enumerate(envs):
        for column, split in enumerate(report.SPLITS):
            ax = axes[row, column]
            for kind, colour in colours.items():
                for weights, style, fill in (("pretrained", "-", colour), ("random", ":", "white")):
                    line = sorted((p for p in panels.get((env, split), []) if p["kind"] == kind
                                   and p["weights"] == weights and p["llm_parameters"]), key=lambda p: p["llm_parameters"])
                    if not line:
                        continue
                    x = [p["llm_parameters"] * (1.06 if weights == "random" else 1) for p in line]  # side by side
                    y = np.array([p["success"] for p in line])
                    errors = np.array([[p["success"] - p["low"] for p in line], [p["high"] - p["success"] for p in line]])
                    ax.errorbar(x, y, yerr=errors, color=colour, linestyle=style, marker="o", markerfacecolor=fill,
                                capsize=3, label=f"{kind} ({weights} weights)")
            ax.set_xscale("log")
            ax.set_xlim(6e7, 3e9)  # 135M to 1.5B
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{BENCHMARKS[env]}, {SPLIT_NAMES[env][split]}")
            ax.set_ylabel("success rate")
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("LLM parameters")
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=2, fontsize=8, frameon=False)
    legend_rows = -(-len(handles) // 2)
    fig.tight_layout(rect=(0, (0.22 * legend_rows + 0.1) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    results = ROOT / args.results  # (an absolute path stays itself)
    if not args.report_only:
        evaluate(args, results)
    write_report(args, results)


if __name__ == "__main__":
    main(tyro.cli(Args))
