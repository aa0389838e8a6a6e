"""Can the LLM contribute? Priors trained to convergence, with the state as latent tokens or as words, from 1,000 or
from 100 CLEVR-Robot demonstration episodes, pretrained against random weights, over several fine-tuning seeds.

    python benchmarks/convergence_study.py --dry-run          # the fine-tunes and evaluations it would run
    python benchmarks/convergence_study.py                    # run what is missing (resumable), then the report
    python benchmarks/convergence_study.py --report-only      # the report from results/llm/convergence/ alone

Each cell (state encoding x demonstration episodes x weights x fine-tuning seed) is one `finetune_prior.py` run that
validates every `--eval-every` steps and stops after `--patience` validations without a lower validation NLL, keeping
the best checkpoint, up to `--max-steps` (checkpoints/convergence/prior__clevr__<name>__1); its config.json, with every
validation, is kept in results/llm/convergence/clevr/<name>__finetune.json. Then the prior alone, greedy, on both goal
splits with the training phrasings and with unseen words (benchmarks/llm_study.py's records, beside it).

The report (results/llm/convergence/): convergence.png, validation NLL against steps for each cell, pretrained and
random weights side by side; answers.csv, per design and data size, goal split and instruction set, the prior alone's
success with pretrained minus random weights, with a 95% bootstrap CI over the fine-tuning seeds and the episodes
(each seed's pretrained prior paired with the random one of the same seed, which has the same validation split).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import llm_study, report  # noqa: E402

INSTRUCTION_SETS = ("train", "unseen")


@dataclass
class Args:
    llm: str = "smollm2-135m"
    """the LLM (finetune_prior.py --llm)"""
    encodings: str = "latent,text"
    """the state encodings (finetune_prior.py --state-encoding)"""
    episodes: str = "1000,100"
    """demonstration episodes per cell (collect_demos.py --episodes; 1000 is demos/clevr.npz)"""
    seeds: str = "1,2,3"
    """fine-tuning seeds (each also draws its validation split)"""
    max_steps: int = 3000
    """the cap on gradient steps"""
    eval_every: int = 50
    """validate every this many steps"""
    patience: int = 4
    """stop after this many validations without a lower validation NLL"""
    eval_episodes: int = 100
    """episodes per goal split of the prior alone"""
    demos: str = "demos"
    """the folder of the demonstrations: clevr.npz (1,000 episodes) and clevr-<n>.npz, collected where missing"""
    checkpoints: str = "checkpoints/convergence"
    """where the priors (and their TensorBoard logs, runs/) go"""
    results: str = "results/llm/convergence"
    """where the records and the report go"""
    dry_run: bool = False
    """print what would run, run nothing"""
    report_only: bool = False
    """run nothing: the report from --results alone"""
    bootstrap_reps: int = 20_000
    """bootstrap resamples of the confidence intervals"""


def cell_name(llm: str, encoding: str, episodes: int, seed: int, weights: str) -> str:
    return f"{llm}-{encoding}{episodes}-s{seed}" + ("-random" if weights == "random" else "")


def cells(args: Args) -> list[dict]:
    out = []
    for encoding in [e.strip() for e in args.encodings.split(",") if e.strip()]:
        for episodes in [int(e) for e in args.episodes.split(",") if e.strip()]:
            for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
                for weights in ("pretrained", "random"):
                    out.append(dict(encoding=encoding, episodes=episodes, seed=seed, weights=weights,
                                    name=cell_name(args.llm, encoding, episodes, seed, weights)))
    return out


def demos_for(args: Args, episodes: int) -> Path:
    return ROOT / args.demos / ("clevr.npz" if episodes == 1000 else f"clevr-{episodes}.npz")


def run(args: Args) -> list[str]:
    """Fine-tune and evaluate every cell that is missing; the names of every cell."""
    results = ROOT / args.results / "clevr"
    todo = [c for c in cells(args) if not (results / f"{c['name']}__finetune.json").is_file()]
    print(f"{len(cells(args))} fine-tunes, {len(cells(args)) - len(todo)} done, {len(todo)} to go "
          f"(each up to {args.max_steps} steps), then the prior alone of each ({', '.join(INSTRUCTION_SETS)} words)")
    for index, cell in enumerate(todo, 1):
        demos = demos_for(args, cell["episodes"])
        command = [sys.executable, "finetune_prior.py", "--demos", str(demos), "--llm", args.llm,
                   "--llm-init", cell["weights"], "--state-encoding", cell["encoding"], "--seed", str(cell["seed"]),
                   "--train-steps", str(args.max_steps), "--eval-every", str(args.eval_every),
                   "--patience", str(args.patience), "--out", str(ROOT / args.checkpoints / f"prior__clevr__{cell['name']}__1"),
                   "--run-dir", str(ROOT / args.checkpoints / "runs" / cell["name"])]
        print(f"[{index}/{len(todo)}] {cell['name']}: python {' '.join(command[1:])}", flush=True)
        if args.dry_run:
            continue
        if not demos.is_file():
            subprocess.run([sys.executable, "collect_demos.py", "--env", "clevr", "--episodes", str(cell["episodes"]),
                            "--out", str(demos)], cwd=ROOT, check=True)
        start = time.time()
        subprocess.run(command, cwd=ROOT, check=True)
        results.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / args.checkpoints / f"prior__clevr__{cell['name']}__1" / "config.json",
                        results / f"{cell['name']}__finetune.json")
        print(f"    {time.time() - start:.0f}s", flush=True)
    names = [c["name"] for c in cells(args)]
    if not args.dry_run:
        llm_study.evaluate(llm_study.Args(env="clevr", priors=",".join(names), episodes=args.eval_episodes,
                                          instructions=",".join(INSTRUCTION_SETS), checkpoints=args.checkpoints,
                                          results=args.results), ROOT / args.results)
    return names


def answer_rows(args: Args, results: Path) -> list[dict]:
    """Pretrained minus random weights, per design, data size, goal split and instruction set, paired by seed."""
    rows = []
    rng = np.random.default_rng(0)
    groups = {}
    for cell in cells(args):
        groups.setdefault((cell["encoding"], cell["episodes"]), {}).setdefault(cell["seed"], {})[cell["weights"]] = cell["name"]
    for (encoding, episodes), seeds in groups.items():
        for instructions in INSTRUCTION_SETS:
            for split in report.SPLITS:
                pairs = []
                for names in seeds.values():
                    paths = {w: results / "clevr" / f"{names[w]}__{instructions}.json" for w in ("pretrained", "random")}
                    if all(path.is_file() for path in paths.values()):
                        pairs.append({w: llm_study.episode_successes(json.loads(p.read_text()), split)[0]
                                      for w, p in paths.items()})
                if not pairs:
                    continue
                means = {w: float(np.mean([p[w].mean() for p in pairs])) for w in ("pretrained", "random")}
                # the seeds resampled (the same draws for both weights: paired), then each seed's episodes
                picks = rng.integers(len(pairs), size=(args.bootstrap_reps, len(pairs)))
                boot = {}
                for weights in ("pretrained", "random"):
                    stacked = np.stack([p[weights] for p in pairs])  # seeds x episodes
                    columns = rng.integers(stacked.shape[1], size=(*picks.shape, stacked.shape[1]))
                    boot[weights] = stacked[picks[..., None], columns].mean(axis=(1, 2))
                low, high = np.percentile(boot["pretrained"] - boot["random"], [2.5, 97.5])
                rows.append({"encoding": encoding, "demo_episodes": episodes, "instructions": instructions,
                             "split": split, "seeds": len(pairs), "pretrained": round(means["pretrained"], 4),
                             "random": round(means["random"], 4),
                             "difference": round(means["pretrained"] - means["random"], 4),
                             "low": round(float(low), 4), "high": round(float(high), 4),
                             "verdict": "pretrained better" if low > 0 else "random better" if high < 0
                             else "no clear difference"})
    return rows


def plot(args: Args, results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(c["encoding"], c["episodes"]) for c in cells(args)}, key=lambda g: (g[0], -g[1]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups), 3.6), squeeze=False)
    for ax, (encoding, episodes) in zip(axes[0], groups):
        for cell in cells(args):
            path = results / "clevr" / f"{cell['name']}__finetune.json"
            if (cell["encoding"], cell["episodes"]) != (encoding, episodes) or not path.is_file():
                continue
            config = json.loads(path.read_text())
            history = config.get("val_history") or []
            color = "C0" if cell["weights"] == "pretrained" else "C3"
            ax.plot([h["step"] for h in history], [h["nll"] for h in history], color=color, alpha=0.8,
                    label=f"{cell['weights']} weights" if cell["seed"] == min(c["seed"] for c in cells(args)) else None)
            if config.get("best_step"):
                best = next(h for h in history if h["step"] == config["best_step"])
                ax.plot([best["step"]], [best["nll"]], "o", color=color, markersize=4)
        ax.axhline(np.log(40), color="0.5", linestyle=":", linewidth=1)  # a uniform guess over the 40 actions
        ax.set_title(f"state as {'words' if encoding == 'text' else 'latent tokens'}, {episodes} demo episodes", fontsize=9)
        ax.set_xlabel("fine-tuning steps (dot: the checkpoint kept)")
        ax.set_ylabel("validation NLL (dotted: uniform)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results / "convergence.png", dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    for name in ("max_steps", "eval_every", "patience", "eval_episodes"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"convergence_study.py: error: --{name.replace('_', '-')} must be a positive integer")
    results = ROOT / args.results
    if not args.report_only:
        run(args)
    if args.dry_run:
        return
    plot(args, results)
    rows = answer_rows(args, results)
    if rows:
        report.write_csv(results / "answers.csv", rows)
    for row in rows:
        print(f"{row['encoding']:<6} {row['demo_episodes']:>5} episodes  {row['instructions']:<7} {row['split']:<5} "
              f"pretrained {row['pretrained']:.3f}  random {row['random']:.3f}  difference {row['difference']:+.3f} "
              f"[{row['low']:+.3f}, {row['high']:+.3f}] ({row['seeds']} seeds): {row['verdict']}")
    print(f"wrote convergence.png{' and answers.csv' if rows else ''} to {results}")


if __name__ == "__main__":
    main(tyro.cli(Args))
