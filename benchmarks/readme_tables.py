"""The tables of the README and the docs pages, rendered from the committed results files.

    make env-results                                     # environment facts -> results/env/ (2 minutes)
    make prior-results                                   # stage-1 facts -> results/prior/ (about an hour)
    make stage2-results                                  # LaGO vs PPO wall time -> results/stage2/
    make clevr-results                                   # the CLEVR-Robot comparison -> results/clevr/
    make metaworld-results                               # the Meta-World comparison -> results/metaworld/
    make report                                          # results/{clevr,metaworld}/ from their committed summaries
    python benchmarks/readme_tables.py --update-readme   # rewrites every table in README.md and docs/*.md

Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in every file that shows it (README.md and
docs/*.md; results-table is in both); tests/test_readme.py checks that each copy matches what this script renders
from the committed files. A table's relative links (the line links of lago-diff-table) are written relative to the
file that holds it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = ROOT / "README.md"
DOCS = ROOT / "docs"


@dataclass
class Args:
    results: Path = RESULTS
    """the results folder (env/ and prior/ inside)"""
    update_readme: bool = False
    """rewrite the tables in README.md and docs/*.md instead of printing them (the same as --update-docs)"""
    update_docs: bool = False
    """the same as --update-readme"""


def article(word: str) -> str:
    """`an` before a vowel letter ("an AMD EPYC", "an Intel Xeon"), else `a`."""
    return "an" if word[:1].upper() in "AEIOU" else "a"


def counted(count: int, noun: str) -> str:
    """`1 thread`, `2 threads`."""
    return f"{count} {noun}{'s' * (count != 1)}"


BENCHMARKS = (("clevr", "CLEVR-Robot"), ("metaworld", "Meta-World"))  # results/<folder>, the name in the tables
SPLIT_NAMES = {"clevr": {"train": "train goals", "test": "held-out goals"},  # the goal splits, in tables and figures
               "metaworld": {"train": "train goal positions", "test": "held-out goal positions"}}


def _require(path: Path, make_target: str) -> Path:
    if not path.is_file():
        raise SystemExit(f"readme_tables.py: error: {path} is missing; run `make {make_target}` first")
    return path


def _load(path: Path, make_target: str) -> dict:
    return json.loads(_require(path, make_target).read_text())


def _load_csv(path: Path, make_target: str) -> list[dict]:
    import csv

    with open(_require(path, make_target), newline="") as f:
        return list(csv.DictReader(f))


def _mean_with_ci(row: dict) -> str:
    """An aggregate.csv row's mean success with its 95% CI, e.g. `0.612 [0.596, 0.630]`."""
    return f"{float(row['mean']):.3f} [{float(row['mean_low']):.3f}, {float(row['mean_high']):.3f}]"


def env_table(results: Path = RESULTS) -> str:
    folder = results / "env"
    expert = _load(folder / "clevr_expert.json", "env-results")
    random = _load(folder / "clevr_random.json", "env-results")
    metaworld = _load(folder / "metaworld_expert.json", "env-results")
    speed = _load(folder / "env_speed.json", "env-results")
    steps = speed["steps_per_second"]
    lines = [
        "| measurement | value |",
        "| --- | --- |",
        f"| CLEVR-Robot scripted expert, success ({expert['episodes']} episodes, train goals, no noise) "
        f"| {expert['success_rate']:.3f} in {expert['mean_episode_length']:.1f} pushes on average |",
        f"| CLEVR-Robot uniformly random actions, success within {random['max_episode_steps']} steps "
        f"({random['episodes']} episodes) | {random['success_rate']:.3f} |",
        f"| CLEVR-Robot, 1 env, one core | {steps['clevr_robot_1_env']:,.0f} steps/s |",
        f"| CLEVR-Robot, sync vector of 8 envs, one core | {steps['clevr_robot_sync_vector_8_envs']:,.0f} steps/s |",
        f"| CLEVR-Robot scripted expert (16-push lookahead), one core | {steps['clevr_robot_scripted_expert']:,.0f} steps/s |",
    ]
    lines += [
        f"| Meta-World `{name.removeprefix('metaworld_').removesuffix('_1_env')}`, 1 env, one core "
        f"| {value:,.0f} steps/s |"
        for name, value in steps.items() if name.startswith("metaworld_")
    ]
    lines += [
        "",
        f"| MT10 task | expert success ({metaworld['per_task'][metaworld['tasks'][0]]['episodes']} episodes, no noise) | mean episode length (ends at success) |",
        "| --- | --- | --- |",
    ]
    for task in metaworld["tasks"]:
        stats = metaworld["per_task"][task]
        lines.append(f"| {task} | {stats['success_rate']:.2f} | {stats['mean_episode_length']:.1f} |")
    lines.append(f"| mean | {metaworld['success_rate']:.3f} | |")
    return "\n".join(lines)


def prior_table(results: Path = RESULTS) -> str:
    """The shipped priors' fine-tuning facts (priors/*/config.json) and the prior alone as the comparison grid
    evaluated it, on the RL runs' evaluation episodes (results/<env>/summaries/prior-alone-smollm2-135m): the one
    evaluation of each prior that every page quotes."""
    folder = results / "prior"
    c, m = (_load(results.parent / "priors" / f"{env}__smollm2-135m" / "config.json", "ship-priors")
            for env in ("clevr", "metaworld"))
    clevr = _load(results / "clevr" / "summaries" / "prior-alone-smollm2-135m" / "seed1.json", "clevr-results")
    metaworld = {path.parent.name: _load(path, "metaworld-results") for path in
                 sorted((results / "metaworld" / "summaries" / "prior-alone-smollm2-135m").glob("*/seed1.json"))}
    speeds = [json.loads(path.read_text()) for path in sorted(folder.rglob("prior_speed_*.json"))]
    if not speeds:
        raise SystemExit(f"readme_tables.py: error: no {folder}/prior_speed_*.json; run `make prior-results` first")
    tasks = [task for task in m["tasks"] if task in metaworld]  # MT10 order

    def mean_over_tasks(split: str) -> float:
        return sum(metaworld[task]["final_eval"][split]["success_rate"] for task in tasks) / len(tasks)

    def fine_tuning(prior: dict) -> str:
        return f"{prior['train_seconds'] / 60:.1f} min ({counted(prior['machine']['threads'], 'thread')})"

    episodes = {split: clevr["prior_report"]["results"][f"clevr/{split}"]["episodes"] for split in ("train", "test")}
    lines = [
        "| benchmark (LLM) | demonstrations (train / val transitions) | validation | fine-tuning on a CPU | prior alone, greedy |",
        "| --- | --- | --- | --- | --- |",
        f"| CLEVR-Robot (`{c['llm']}`) | {c['train_transitions']} / {c['val_transitions']} "
        f"| accuracy {c['val_metrics']['accuracy']:.3f} (majority class {c['val_majority_accuracy']:.3f}), NLL {c['val_metrics']['nll']:.3f} "
        f"| {fine_tuning(c)} | train goals {clevr['final_eval']['train']['success_rate']:.2f}, "
        f"held-out test goals {clevr['final_eval']['test']['success_rate']:.2f} "
        f"({episodes['train']} episodes each) |",
        f"| Meta-World MT10 (`{m['llm']}`) | {m['train_transitions']} / {m['val_transitions']} "
        f"| MSE {m['val_metrics']['mse']:.4f}, NLL {m['val_metrics']['nll']:.3f} | {fine_tuning(m)} "
        f"| mean over tasks: demonstrated goal positions {mean_over_tasks('train'):.2f}, held-out {mean_over_tasks('test'):.2f} (below) |",
        "",
        "| MT10 task | prior alone: demonstrated goal positions | held-out goal positions | episodes each |",
        "| --- | --- | --- | --- |",
    ]
    for task in tasks:
        report = metaworld[task]["prior_report"]["results"]
        train, test = (report[f"metaworld/{task}/{split}"] for split in ("train", "test"))
        lines.append(f"| {task} | {train['success_rate']:.2f} | {test['success_rate']:.2f} | {train['episodes']} |")
    sentences = [
        (
            f"Batched inference, `{speed['llm']}`, batch {speed['batch']} with {speed['distinct_texts']} distinct texts, "
            f"{counted(speed['threads'], 'thread')} of {article(speed['cpu'])} {speed['cpu']} CPU, "
            f"LLM in {speed['dtype'].removeprefix('torch.')}: "
            f"**{speed['cached_states_per_second']:,.0f} states/s** with the cached task prefix "
            f"({speed['cached_first_call_states_per_second']:,.0f} on the first call, prefixes included), "
            f"{speed['uncached_states_per_second']:,.0f} states/s without "
            f"({speed['cached_states_per_second'] / speed['uncached_states_per_second']:.1f}x)."
        )
        for speed in sorted(speeds, key=lambda speed: -speed["cached_states_per_second"])
    ]
    return "\n".join(lines + ["", "\n\n".join(sentences)])


def stage2_speed_table(results: Path = RESULTS) -> str:
    runs = [json.loads(path.read_text()) for path in sorted((results / "stage2").rglob("speed_*.json"))]
    if not runs:
        raise SystemExit(f"readme_tables.py: error: no {results / 'stage2'}/speed_*.json; run `make stage2-results` first")
    # bf16 before fp32, then CLEVR-Robot before Meta-World, then most LLM work first
    runs.sort(key=lambda run: (run["prior_dtype"] != "bfloat16", run["env"], -run["state_tokens"],
                               -run["lago_settings"]["prior_fraction"]))
    lines = [
        f"| CPU, prior precision | benchmark | LaGO setting ({runs[0]['llm']}) | env steps | rounds | PPO | LaGO "
        "| of which prior inference | LaGO / PPO |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        s = run["lago_settings"]
        bench = "CLEVR-Robot" if run["env"] == "clevr" else f"Meta-World `{run['task']}`"
        lines.append(
            f"| {run['cpu']}, {run['prior_dtype']} | {bench} | {counted(run['state_tokens'], 'state token')}, "
            f"`--prior-fraction {s['prior_fraction']:g}`, "
            f"{s['guidance_schedule']} to 0 at {s['guidance_decay_end']:g} "
            f"| {run['total_timesteps']:,} | {run['repeats']} | {run['ppo_seconds']:.0f} s | {run['lago_seconds']:.0f} s "
            f"| {run['lago_prior_seconds']:.0f} s | **{run['ratio']:.2f}x** |"
        )
    threads = sorted({str(run["threads"] or "default") for run in runs})
    return "\n".join(lines) + (f"\n\nMedian wall times over the alternating (PPO, LaGO) rounds, seed {runs[0]['seed']}, "
                               f"{', '.join(threads)} threads; each run includes one final evaluation.")


NOTED_SETTINGS = ("total_timesteps", "guidance_coef", "guidance_schedule", "guidance_decay_end", "guidance_kl",
                  "prior_fraction", "bootstrap_truncation", "max_episode_steps", "eval_episodes", "episodes")


def run_notes(settings: dict, folder: Path) -> list[str]:
    """Under a comparison table: each method's main settings (all of them in settings.json), then each prior's
    fine-tuning record."""
    lines = [f"- `{method}`: " + ", ".join(f"{k} {values[k]}" for k in NOTED_SETTINGS if k in values)
             for method, values in sorted(settings.items())]
    for path in sorted(folder.glob("prior-alone-*.json")):
        prior, method = json.loads(path.read_text())["prior"], path.stem
        metrics = prior["val_metrics"]
        fit = (f"validation accuracy {metrics['accuracy']:.3f} (majority class {prior['val_majority_accuracy']:.3f})"
               if "accuracy" in metrics else f"validation MSE {metrics['mse']:.3f}")
        tasks = f", demonstrations of {len(prior['tasks'])} tasks" if prior.get("tasks") else ""
        lines.append(
            f"- the `{prior['llm']}` prior of `{method}` ({prior['llm_init']} weights, "
            f"{counted(prior['state_tokens'], 'state token')}{tasks}): fine-tuned in "
            f"{prior['train_seconds'] / 60:.0f} min with precision `{prior['args']['precision']}`, {fit}, NLL {metrics['nll']:.3f}"
        )
    return lines


def clevr_table(results: Path = RESULTS) -> str:
    rows = {(r["method"], r["split"]): r for r in _load_csv(results / "clevr" / "aggregate.csv", "clevr-results")
            if r["task_set"] == "all"}
    settings = json.loads((results / "clevr" / "settings.json").read_text())
    lines = [
        "| method | seeds | train goals: mean success [95% CI] | IQM | held-out test goals: mean success [95% CI] | IQM |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method in sorted({m for m, _ in rows}, key=lambda m: (m.startswith("prior-alone"), m)):
        cells = [f"`{method}`", rows[(method, "train")]["seeds"]]
        for split in ("train", "test"):
            r = rows[(method, split)]
            cells += [_mean_with_ci(r), f"{float(r['iqm']):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + run_notes(settings, results / "clevr"))


def metaworld_table(results: Path = RESULTS) -> str:
    folder = results / "metaworld"
    aggregate = _load_csv(folder / "aggregate.csv", "metaworld-results")
    per_task = _load_csv(folder / "per_task.csv", "metaworld-results")
    settings = json.loads((folder / "settings.json").read_text())
    lines = [
        "| tasks | method | tasks x seeds | train goal positions: mean success [95% CI] | IQM "
        "| held-out goal positions: mean success [95% CI] | IQM |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = {(r["task_set"], r["method"], r["split"]): r for r in aggregate}
    for task_set, method, _ in [key for key in rows if key[2] == "train"]:  # report.py's order: all tasks first
        first = rows[(task_set, method, "train")]
        name = f"all {first['tasks']}" if task_set == "all" else ", ".join(f"`{t}`" for t in task_set.split())
        cells = [name, f"`{method}`", f"{first['tasks']} x {first['seeds']}"]
        for split in ("train", "test"):
            r = rows[(task_set, method, split)]
            cells += [_mean_with_ci(r), f"{float(r['iqm']):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    order = sorted({r["method"] for r in per_task}, key=lambda m: (m.startswith("prior-alone"), m))
    cell = {(r["method"], r["task"], r["split"]): r for r in per_task}
    lines += ["", "Per task, mean final success over the seeds, train / held-out goal positions (95% CIs in "
              "`results/metaworld/per_task.csv`):", "",
              "| task | " + " | ".join(f"`{m}`" for m in order) + " |", "| --- |" + " --- |" * len(order)]
    for task in sorted({r["task"] for r in per_task}):
        lines.append(f"| `{task}` | " + " | ".join(
            " / ".join(f"{float(cell[(m, task, split)]['mean']):.2f}" for split in ("train", "test"))
            if (m, task, "train") in cell else "" for m in order) + " |")
    return "\n".join(lines + [""] + run_notes(settings, folder))


def tuning_table(results: Path = RESULTS) -> str:
    """The guidance sweep on the tuning seeds, per benchmark: every setting's success, and the one chosen."""
    lines = ["| benchmark | tuning seeds (tasks) | method | train goals: mean success [95% CI] | held-out goals | chosen |",
             "| --- | --- | --- | --- | --- | --- |"]
    for env, title in BENCHMARKS:
        folder = results / f"{env}-tuning"
        chosen = _load(folder / "chosen.json", f"{env}-tuning")
        rows = {(r["method"], r["split"]): r for r in _load_csv(folder / "aggregate.csv", f"{env}-tuning")
                if r["task_set"] == "all"}
        where = ", ".join(map(str, chosen["tuning_seeds"]))
        if chosen["tuning_tasks"]:
            where += f" ({', '.join(f'`{t}`' for t in chosen['tuning_tasks'])})"
        for method in sorted({m for m, _ in rows}, key=lambda m: (m != "ppo", m)):
            train, test = rows[(method, "train")], rows[(method, "test")]
            mark = "**chosen**" if method == f"{chosen['method']}+{chosen['label']}" else ""
            lines.append(f"| {title} | {where} | `{method}` "
                         f"| {_mean_with_ci(train)} | {float(test['mean']):.3f} | {mark} |")
    return "\n".join(lines)


QUESTIONS = [  # (the question a comparison answers, how to recognise it from its two methods)
    ("Does LaGO beat PPO?", lambda a, b: b == "ppo"),
    ("Does LaGO beat the prior alone?", lambda a, b: b.startswith("prior-alone")),
    ("Does the pretrained LLM guide better than the same LLM with random weights?", lambda a, b: b.split("+")[0].endswith("-random")),
    ("Does the larger LLM (Gemma 3 270M) guide better than SmolLM2-135M?", lambda a, b: "gemma3-270m" in a and "smollm2" in b),
]


CONTROLS = {  # the controls and baselines of "What is LaGO's gain made of?", by their method's name before any `+label`
    "lago-uniform": "the uniform prior", "lago-marginal": "the marginal prior",
    "lago-smollm2-135m-nogoal": "the LLM prior reading no goal words", "lago-none": "the prior with no language model",
    "prior-alone-none": "behaviour cloning alone", "bcppo": "PPO initialised by behaviour cloning",
}


def control_of(method: str) -> Optional[str]:
    return CONTROLS.get(method.split("+")[0])


def results_table(results: Path = RESULTS) -> str:
    """The answers: every comparison of report.py --compare on both benchmarks, with its verdict."""
    lines = [
        "| question | benchmark | method - baseline | tasks x seeds | difference in mean success [95% CI] "
        "| P(method beats baseline) [95% CI] | answer |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for env, title in BENCHMARKS:
        for r in _load_csv(results / env / "comparisons.csv", "report"):
            if control_of(r["method"]) or control_of(r["baseline"]):  # controls_table's
                continue
            question = next((q for q, match in QUESTIONS if match(r["method"], r["baseline"])), "other")
            goals = {"clevr": ("train goals", "held-out test goals"), "metaworld": ("train goal positions",
                                                                                    "held-out goal positions")}[env]
            bench = f"{title}, {goals[r['split'] == 'test']}"
            rows.append((question, bench, r))
    rows.sort(key=lambda row: [q for q, _ in QUESTIONS].index(row[0]) if row[0] != "other" else len(QUESTIONS))
    lines += [comparison_row(question, bench, r) for question, bench, r in rows]
    return "\n".join(lines)


def comparison_row(question: str, where: str, r: dict) -> str:
    """One row of comparisons.csv (report.py --compare) in the answer tables, with its verdict as the answer."""
    answer = {"better": "**yes**", "worse": "**no, worse**", "no clear difference": "no clear difference"}[r["verdict"]]
    seeds = r["seeds"] if r["seeds"] == r["baseline_seeds"] else f"{r['seeds']} / {r['baseline_seeds']}"
    return (f"| {question} | {where} | `{r['method']}` - `{r['baseline']}` | {r['tasks']} x {seeds} "
            f"| {float(r['difference']):+.3f} [{float(r['difference_low']):+.3f}, {float(r['difference_high']):+.3f}] "
            f"| {float(r['p_improvement']):.2f} [{float(r['p_improvement_low']):.2f}, {float(r['p_improvement_high']):.2f}] "
            f"| {answer} |")


def controls_table(results: Path = RESULTS) -> str:
    """What is LaGO's gain made of? LaGO against each control and baseline, and each against PPO: CLEVR-Robot's from
    results/clevr-controls (every prior fine-tuned on one set of demonstrations), Meta-World's from results/metaworld."""
    lines = ["| question | benchmark, goals | method - baseline | tasks x seeds | difference in mean success [95% CI] "
             "| P(method beats baseline) [95% CI] | answer |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for env, title in BENCHMARKS:
        path = results / (f"{env}-controls" if env == "clevr" else env) / "comparisons.csv"
        if not path.exists():
            continue
        rows = []
        for r in _load_csv(path, "report"):
            if control_of(r["baseline"]):
                question = f"Does LaGO beat {control_of(r['baseline'])}?"
            elif control_of(r["method"]) and r["baseline"] == "ppo":
                question = f"Does {control_of(r['method'])} beat PPO?"
            elif r["baseline"] in ("ppo", "prior-alone-smollm2-135m") and env == "clevr":
                question = (f"Does LaGO beat {'PPO' if r['baseline'] == 'ppo' else 'the prior alone'}? "
                            "(its prior fine-tuned beside the controls)")
            else:
                continue
            rows.append((question, r))
        lines += [comparison_row(question, f"{title}, {SPLIT_NAMES[env][r['split']]}", r) for question, r in
                  sorted(rows, key=lambda row: (not row[0].startswith("Does LaGO"), row[1]["split"] != "train"))]
    return "\n".join(lines)


LONG_BUDGETS = (("clevr", "clevr-paper"), ("metaworld", "metaworld-long"))  # results/<short>, results/<long>


def lasting_table(results: Path = RESULTS) -> str:
    """Does the gain last? Each pair of benchmarks/budget_report.py at the short and the long budget, and the change."""
    lines = ["| benchmark, goals | method - baseline | short budget: tasks x seeds, difference [95% CI] "
             "| long budget: tasks x seeds, difference [95% CI] | change, long - short [95% CI] | at the long budget |",
             "| --- | --- | --- | --- | --- | --- |"]
    answers = {"better": "**better**", "worse": "**worse**", "no clear difference": "no clear difference"}
    after_gain = {"better": " (the gain lasts)", "worse": " (reversed)", "no clear difference": " (the gain is gone)"}

    def cell(r: dict) -> str:
        seeds = r["seeds"] if r["seeds"] == r["baseline_seeds"] else f"{r['seeds']} / {r['baseline_seeds']}"
        return (f"{int(r['env_steps']):,} steps: {r['tasks']} x {seeds}, {float(r['difference']):+.3f} "
                f"[{float(r['difference_low']):+.3f}, {float(r['difference_high']):+.3f}]")

    for (env, long), (_, title) in zip(LONG_BUDGETS, BENCHMARKS):
        path = results / long / "budgets.csv"
        if not path.exists():
            continue
        rows = {(r["method"], r["baseline"], r["split"], r["budget"]): r for r in _load_csv(path, f"report-{long}")}
        for method, baseline, split, _ in [key for key in rows if key[3] == "change"]:
            short, lasting, change = (rows[(method, baseline, split, b)] for b in ("short", "long", "change"))
            lines.append(f"| {title}, {SPLIT_NAMES[env][split]} | `{method}` - `{baseline}` | {cell(short)} | "
                         f"{cell(lasting)} | {float(change['difference']):+.3f} [{float(change['difference_low']):+.3f}, "
                         f"{float(change['difference_high']):+.3f}] | {answers[lasting['verdict']]}"
                         f"{after_gain[lasting['verdict']] if short['verdict'] == 'better' else ''} |")
    return "\n".join(lines)


def budget_table(results: Path = RESULTS) -> str:
    """What the grid cost: the measured wall time of every run and of fine-tuning each prior."""
    import statistics

    lines = ["| benchmark | method | runs | env steps per run | median wall time per run | CPU time, all runs |",
             "| --- | --- | --- | --- | --- | --- |"]
    total = 0.0
    for env, title in BENCHMARKS:
        folders = [(f"{env}-tuning", f"{title}, tuning"), (env, title), (f"{env}-controls", f"{title}, controls"),
                   *((long, f"{title}, long budget") for short, long in LONG_BUDGETS if short == env)]
        folders = [(folder, label) for folder, label in folders if (results / folder / "runs.csv").exists() or folder == env]
        for folder, label in folders:
            first_split = {}
            for r in _load_csv(results / folder / "runs.csv", "report"):  # one row per run (its first split)
                first_split.setdefault((r["method"], r["task"], r["seed"]), r)
            for method in sorted({m for m, _, _ in first_split}, key=lambda m: (m.startswith("prior-alone"), m)):
                runs = [r for (m, _, _), r in first_split.items() if m == method]
                seconds = [float(r["wall_seconds"]) for r in runs if r["wall_seconds"]]
                if not seconds:  # the prior alone: an evaluation, not a training run
                    continue
                total += sum(seconds)
                lines.append(f"| {label} | `{method}` | {len(runs)} | {int(runs[0]['global_step']):,} "
                             f"| {statistics.median(seconds) / 60:.1f} min | {sum(seconds) / 3600:.1f} h |")
        records = {(title, path.stem.removeprefix("prior-alone-")): path for path in (results / env).glob("prior-alone-*.json")}
        for path in (results / "llm" / env).glob("*__train.json"):  # the priors of the LLM study (llm_study.py)
            records.setdefault((title, path.stem.removesuffix("__train")), path)
        for folder, label in folders:  # the controls' priors, fine-tuned on one machine's demonstrations
            if folder.endswith("-controls"):
                records.update({(label, path.stem.removeprefix("prior-alone-")): path
                                for path in (results / folder).glob("prior-alone-*.json")})
        for (label, name), path in sorted(records.items()):  # stage 1: each prior's fine-tuning
            prior = json.loads(path.read_text())["prior"]
            if not prior["train_seconds"] or "control_of" in prior:  # made without training: uniform, marginal, or
                continue  # the no-goal control (its prior's fine-tuning is counted once, as that prior's)
            total += prior["train_seconds"]
            lines.append(f"| {label} | fine-tuning the prior of `{name}` | 1 | "
                         f"{prior['args']['train_steps']} gradient steps | {prior['train_seconds'] / 60:.1f} min "
                         f"| {prior['train_seconds'] / 3600:.1f} h |")
    return "\n".join(lines + [f"| all | | | | | **{total / 3600:.1f} h** |"])


def llm_table(results: Path = RESULTS) -> str:
    """Does the LLM matter? benchmarks/llm_study.py's answers, with the sizes they rest on."""
    lines = ["| question | benchmark, goals | what | comparison | rests on | difference in success [95% CI] | answer |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    sys.path.insert(0, str(ROOT))

    for r in _load_csv(results / "llm" / "answers.csv", "llm-study"):
        answer = {"yes": "**yes**", "no, the opposite": "**no, the opposite**"}.get(r["verdict"], r["verdict"])
        lines.append(f"| {r['question']} | {dict(BENCHMARKS)[r['benchmark']]}, {SPLIT_NAMES[r['benchmark']][r['split']]} "
                     f"| {r['kind']} | {r['comparison']} | {r['size']} "
                     f"| {float(r['difference']):+.3f} [{float(r['low']):+.3f}, {float(r['high']):+.3f}] | {answer} |")
    return "\n".join(lines)


SCRIPT_PAIRS = (("CLEVR-Robot", "ppo_clevr_discrete.py", "lago_clevr_discrete.py"),
                ("Meta-World", "ppo_metaworld_continuous.py", "lago_metaworld_continuous.py"))
BC_SCRIPT_PAIRS = (("CLEVR-Robot", "ppo_clevr_discrete.py", "bcppo_clevr_discrete.py"),  # PPO initialised by BC
                   ("Meta-World", "ppo_metaworld_continuous.py", "bcppo_metaworld_continuous.py"))


def lago_hunks(ppo_script: str, lago_script: str, root: Path = ROOT, marker: str = "LaGO") -> list[dict]:
    """What the LaGO script (or another variant, whose blocks carry `marker`) adds to its PPO script, past the module
    docstring: each block of added or changed lines (first and last line, 1-based, in the LaGO script), its lines, and
    the text of the `# LaGO` comment on its first line (None: that line has none)."""
    import difflib
    import re

    ppo, lago = ((root / name).read_text().splitlines() for name in (ppo_script, lago_script))
    docstring_end = next(i for i, line in enumerate(lago) if i > 0 and line.endswith('"""')) + 1
    hunks = []
    for tag, _, _, start, end in difflib.SequenceMatcher(None, ppo, lago, autojunk=False).get_opcodes():
        if tag == "equal" or end <= docstring_end:
            continue
        match = re.search(rf"# {marker}\b:?(.*)$", next(line for line in lago[start:end] if line.strip()))
        hunks.append({"first": start + 1, "last": end, "lines": end - start, "marker": match and match.group(1).strip()})
    return hunks


def lago_diff_table(results: Path = RESULTS) -> str:
    """What LaGO adds to PPO: the marked blocks of each LaGO script, with line links, and the count of its lines."""
    blocks: dict[str, dict[str, str]] = {}
    counts = []
    for benchmark, ppo_script, lago_script in SCRIPT_PAIRS:
        hunks = lago_hunks(ppo_script, lago_script)
        counts.append(f"`{lago_script}` {sum(h['lines'] for h in hunks)} lines in {len(hunks)} blocks")
        for hunk in hunks:
            if hunk["lines"] >= 3 and hunk["marker"]:
                span = f"L{hunk['first']}-L{hunk['last']}"
                what = hunk["marker"].split(" (")[0].replace("|", "\\|")
                blocks.setdefault(what, {})[benchmark] = f"[{span.replace('-', '–')}]({lago_script}#{span})"
        short = [h for h in hunks if h["lines"] < 3 or not h["marker"]]
        blocks.setdefault("the other lines, each block of them marked `# LaGO`", {})[benchmark] = \
            f"{sum(h['lines'] for h in short)} lines in {len(short)} places"
    lines = ["| what the block does (its `# LaGO` comment) | " + " | ".join(b for b, _, _ in SCRIPT_PAIRS) + " |",
             "| --- |" + " --- |" * len(SCRIPT_PAIRS)]
    for marker, where in blocks.items():
        lines.append(f"| {marker} | " + " | ".join(where.get(b, "–") for b, _, _ in SCRIPT_PAIRS) + " |")
    return "\n".join(lines) + "\n\nLaGO-only lines (added or changed, the module docstring aside): " + "; ".join(counts) + "."


TABLES = {"env-table": env_table, "prior-table": prior_table, "stage2-speed-table": stage2_speed_table,
          "clevr-table": clevr_table, "metaworld-table": metaworld_table, "results-table": results_table,
          "tuning-table": tuning_table, "budget-table": budget_table,
          "llm-table": llm_table, "lago-diff-table": lago_diff_table, "controls-table": controls_table,
          "lasting-table": lasting_table}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def block_files(root: Path = ROOT) -> list[Path]:
    """The files that may hold tables: README.md and the docs pages."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def readme_block(name: str, readme: Path = README) -> str:
    """The text of table `name` as it stands in `readme` (README.md or a docs page), between its markers."""
    text = readme.read_text()
    start, end = markers(name)
    return text[text.index(start) + len(start) : text.index(end)].strip()


def relocate(table: str, holder: Path, root: Path = ROOT) -> str:
    """`table` with its relative links, written relative to the repository root, made relative to the folder of
    `holder`, the file that shows it (`lago_clevr_discrete.py#L1-L2` becomes `../lago_clevr_discrete.py#L1-L2` in
    docs/)."""
    import posixpath
    import re

    folder = holder.parent.relative_to(root).as_posix()
    if folder == ".":
        return table

    def moved(match: re.Match) -> str:
        target, anchor = match.group(1).partition("#")[::2]
        if not target or "://" in target:
            return match.group(0)
        return f"]({posixpath.relpath(target, folder)}{'#' * bool(anchor)}{anchor})"

    return re.sub(r"\]\(([^)\s]+)\)", moved, table)


def update_files(tables: dict[str, str], files: list[Path], root: Path = ROOT) -> list[Path]:
    """Rewrites every copy of every table in `files`; returns the files whose text changed (a second call changes
    none). A table whose markers no file holds, or a start marker without its end, is one sentence."""
    texts = {path: path.read_text() for path in files}
    for name in tables:
        start, end = markers(name)
        if not any(start in text for text in texts.values()):
            raise SystemExit(f"readme_tables.py: error: no file holds the markers of table {name} "
                             f"(`{start}` ... `{end}`); expected them in README.md or a page of docs/")
    for path, text in texts.items():
        for name, table in tables.items():
            start, end = markers(name)
            pieces, rest = [], text
            while start in rest:
                head, rest = rest.split(start, 1)
                if end not in rest:
                    raise SystemExit(f"readme_tables.py: error: {path.relative_to(root)} has `{start}` without "
                                     f"`{end}` after it")
                pieces.append(head + start + "\n" + relocate(table, path, root) + "\n")
                rest = rest[rest.index(end):]
            text = "".join(pieces) + rest
        texts[path] = text
    changed = [path for path, text in texts.items() if text != path.read_text()]
    for path in changed:
        path.write_text(texts[path])
    return changed


def main(args: Args) -> None:
    tables = {name: render(args.results) for name, render in TABLES.items()}
    if not (args.update_readme or args.update_docs):
        print("\n\n".join(tables.values()))
        return
    changed = update_files(tables, block_files())
    if changed:
        print(f"rewrote the tables in {', '.join(path.relative_to(ROOT).as_posix() for path in changed)}")
    else:
        print("every table in README.md and docs/*.md is up to date")


if __name__ == "__main__":
    main(tyro.cli(Args))
