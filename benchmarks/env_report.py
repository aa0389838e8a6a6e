"""Environment facts for the README, from committed results files.

    make env-results                                   # reruns the measurements (about 2 minutes)
    python benchmarks/env_report.py --update-readme   # rewrites the README's table from results/env/

The table sits in README.md between the markers below; tests/test_readme.py checks that it
matches what this script renders from the committed files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "env"
START, END = "<!-- env-table:start -->", "<!-- env-table:end -->"


@dataclass
class Args:
    results: Path = RESULTS
    """folder with clevr_expert.json, clevr_random.json, metaworld_expert.json, env_speed.json"""
    update_readme: bool = False
    """rewrite the table in README.md instead of printing it"""


def _load(results: Path, name: str) -> dict:
    path = results / name
    if not path.is_file():
        raise SystemExit(f"env_report.py: error: {path} is missing; run `make env-results` first")
    return json.loads(path.read_text())


def render_table(results: Path = RESULTS) -> str:
    expert, random = _load(results, "clevr_expert.json"), _load(results, "clevr_random.json")
    metaworld, speed = _load(results, "metaworld_expert.json"), _load(results, "env_speed.json")
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


def readme_table(readme: Path = ROOT / "README.md") -> str:
    text = readme.read_text()
    return text[text.index(START) + len(START) : text.index(END)].strip()


def main(args: Args) -> None:
    table = render_table(args.results)
    if not args.update_readme:
        print(table)
        return
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    readme.write_text(text[:start] + "\n" + table + "\n" + text[end:])
    print(f"updated the table in {readme}")


if __name__ == "__main__":
    main(tyro.cli(Args))
