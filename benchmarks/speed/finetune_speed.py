"""Stage-1 fine-tuning speed: seconds per gradient step of one LLM under the options that do not change the method.

    python benchmarks/speed/finetune_speed.py --llm qwen2.5-coder-0.5b --json results/prior/finetune_speed_qwen2.5-coder-0.5b.json
    python benchmarks/speed/finetune_speed.py --llm smollm2-135m --variants "default;fp32=--precision fp32"

Each variant is `finetune_prior.py` with the default settings plus its flags, run for `--steps` gradient steps in its
own process on `--demos`; its checkpoint goes to a temporary folder. Reported: the mean seconds of a gradient step
(validation passes excluded, `seconds_per_step` in the checkpoint's config), the median step (without a slow start such
as `--compile`'s) and what the default 400 steps would take.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.common import cpu_name, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VARIANTS = ("default; fp32=--precision fp32; checkpointing=--gradient-checkpointing; "
                    "1 state token=--state-tokens 1; LoRA on q,v=--lora-target-modules q_proj,v_proj")


@dataclass
class Args:
    llm: str = "smollm2-135m"
    """the LLM (an alias of finetune_prior.py, a Hugging Face id or a local directory)"""
    llm_init: str = "pretrained"
    """`pretrained` or `random`"""
    demos: str = "demos/clevr.npz"
    """the demonstrations to fine-tune on"""
    steps: int = 20
    """gradient steps per variant"""
    variants: str = DEFAULT_VARIANTS
    """`;`-separated variants, each `name=finetune_prior.py flags` (or just `default`)"""
    json: Optional[str] = None
    """also write the results to this JSON file"""


def parse_variants(text: str) -> dict[str, list[str]]:
    variants = {}
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        name, _, flags = item.partition("=")
        variants[name.strip()] = shlex.split(flags)
    if not variants:
        raise SystemExit("finetune_speed.py: error: --variants names no variant")
    return variants


def main(args: Args) -> dict:
    if args.steps <= 0:
        raise SystemExit(f"finetune_speed.py: error: --steps must be a positive integer, got {args.steps}")
    results = {}
    for name, flags in parse_variants(args.variants).items():
        with tempfile.TemporaryDirectory(prefix="finetune_speed_") as tmp:
            command = [sys.executable, str(ROOT / "finetune_prior.py"), "--demos", args.demos, "--llm", args.llm,
                       "--llm-init", args.llm_init, "--train-steps", str(args.steps), "--eval-every", str(args.steps),
                       "--out", f"{tmp}/prior", "--run-dir", f"{tmp}/run", *flags]
            print(f"{name}: {shlex.join(command[1:])}", flush=True)
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"finetune_speed.py: error: variant {name!r} failed: "
                                 f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
            config = json.loads(Path(f"{tmp}/prior/config.json").read_text())
        results[name] = {"flags": shlex.join(flags), "seconds_per_step": config["seconds_per_step"],
                         "seconds_per_step_median": config["seconds_per_step_median"],
                         "minutes_for_400_steps": round(config["seconds_per_step"] * 400 / 60, 1),
                         "precision": config["machine"]["precision"], "threads": config["machine"]["threads"],
                         "val_metrics": config["val_metrics"]}
        print(f"  {config['seconds_per_step']:.3f} s per step, median {config['seconds_per_step_median']:.3f} s "
              f"({config['machine']['device']}, {config['machine']['precision']}, "
              f"{config['machine']['threads']} threads): {results[name]['minutes_for_400_steps']} min for 400 steps",
              flush=True)
    record = {"llm": args.llm, "llm_init": args.llm_init, "demos": args.demos, "steps": args.steps, "cpu": cpu_name(),
              "variants": results}
    if args.json:
        write_json(args.json, record)
    return record


if __name__ == "__main__":
    main(tyro.cli(Args))
