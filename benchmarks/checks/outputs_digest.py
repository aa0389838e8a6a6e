"""A digest of the outputs that a restructure of the code must leave bit-identical, to compare two revisions:

    git checkout OLD && python benchmarks/checks/outputs_digest.py --out /tmp/old.json
    git checkout NEW && python benchmarks/checks/outputs_digest.py --out /tmp/new.json --compare /tmp/old.json

It fine-tunes the tiny random LLM for a few steps on small demonstration files of both benchmarks, in fp32 and under
bf16 autocast, and hashes each checkpoint's files (the adapter, the heads, the random base weights) and its
validation metrics; then the frozen prior's cached, uncached and shared-row forwards and greedy actions with the LLM
in fp32 and in bf16; the shipped SmolLM2 priors' outputs on real states of both benchmarks; the summaries (every
evaluation) of short runs of all six stage-2 scripts (PPO, LaGO, PPO after behaviour cloning); and the policy file
that a LaGO run saves with --save-model. Timings, paths and the order of peft's target modules (a set) are left out.
One thread, a minute or two; equal digests mean the same numbers on this CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import tyro

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import collect_demos  # noqa: E402
import finetune_prior  # noqa: E402
from envs.clevr_robot import CLEVRRobotEnv  # noqa: E402
from envs.metaworld_tasks import make_metaworld_env, task_prompt  # noqa: E402
from lago_utils.prior_io import load_prior  # noqa: E402

RUNS = {  # script -> its flags besides --seed and --run-dir ({clevr} and {metaworld}: the fp32 and bf16 priors below;
    #           {clevr_demos} and {metaworld_demos}: their demonstration files)
    "ppo_clevr_discrete.py": "--total-timesteps 1024 --num-envs 4 --num-steps 64 --eval-interval 512 --eval-episodes 5",
    "lago_clevr_discrete.py": "--prior-path {clevr} --total-timesteps 1024 --num-envs 4 --num-steps 64 --eval-interval 512 "
                              "--eval-episodes 5",
    "ppo_metaworld_continuous.py": "--task reach-v3 --total-timesteps 256 --num-envs 2 --num-steps 64 --num-minibatches 4 "
                                   "--update-epochs 2 --max-episode-steps 32 --eval-interval 128 --eval-episodes 2",
    "lago_metaworld_continuous.py": "--prior-path {metaworld} --task reach-v3 --total-timesteps 256 --num-envs 2 "
                                    "--num-steps 64 --num-minibatches 4 --update-epochs 2 --max-episode-steps 32 "
                                    "--eval-interval 128 --eval-episodes 2",
    "bcppo_clevr_discrete.py": "--demos {clevr_demos} --bc-steps 20 --bc-batch-size 8 --total-timesteps 1024 --num-envs 4 "
                               "--num-steps 64 --eval-interval 512 --eval-episodes 5",
    "bcppo_metaworld_continuous.py": "--demos {metaworld_demos} --bc-steps 20 --bc-batch-size 8 --task reach-v3 "
                                     "--total-timesteps 256 --num-envs 2 --num-steps 64 --num-minibatches 4 "
                                     "--update-epochs 2 --max-episode-steps 32 --eval-interval 128 --eval-episodes 2",
}
# a LaGO run that saves its policy: run in the work folder with paths relative to it, so that the model file (whose
# args hold the paths) has the same bytes from one digest to the next (torch.save writes the same bytes for the same
# objects)
SAVED_MODEL_RUN = ("lago_metaworld_continuous.py", RUNS["lago_metaworld_continuous.py"] + " --save-model")


@dataclass
class Args:
    out: str = "outputs_digest.json"
    """where the digest goes"""
    compare: Optional[str] = None
    """an earlier digest: list every entry that differs, and exit 1 if any does"""


def digest(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "+".join(digest(item) for item in value)
    if isinstance(value, torch.Tensor):
        value = value.detach().contiguous().numpy()
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]


def checkpoint_files(path: Path) -> dict[str, str]:
    files = {}
    for file in sorted(path.rglob("*")):
        if not file.is_file() or file.name == "config.json":
            continue
        if file.name == "adapter_config.json":
            config = json.loads(file.read_text())
            config["target_modules"] = sorted(config["target_modules"])  # a set, in hash order
            files[str(file.relative_to(path))] = digest(np.frombuffer(json.dumps(config, sort_keys=True).encode(), np.uint8))
        else:
            files[str(file.relative_to(path))] = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    return files


def main(args: Args) -> dict[str, Any]:
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="outputs_digest_"))
    demos = {"clevr": collect_demos.Args(env="clevr", episodes=15, seed=2, out=str(work / "clevr.npz")),
             "metaworld": collect_demos.Args(env="metaworld", task="reach-v3", episodes=3, max_episode_steps=30,
                                             out=str(work / "metaworld.npz"))}
    env = CLEVRRobotEnv(instructions="paraphrase", goal_split="all")
    resets = [env.reset(seed=seed) for seed in range(20)]
    obs, texts = np.stack([o for o, _ in resets]), [info["goal_text"] for _, info in resets]
    rows = np.repeat(np.arange(5), 4)  # 5 instructions, 4 states each: rows shared where states_per_row > 1
    priors = {}
    for name, demo_args in demos.items():
        collect_demos.main(demo_args)
        for precision in ("fp32", "bf16"):
            path = finetune_prior.main(finetune_prior.Args(
                demos=demo_args.out, llm="tiny-random", train_steps=4, batch_size=8, eval_every=2, precision=precision,
                out=str(work / f"{name}_{precision}"), run_dir=str(work / "runs")))
            priors[name, precision] = path
            out[f"checkpoint/{name}/{precision}"] = {"files": checkpoint_files(path),
                                                     "val_metrics": json.loads((path / "config.json").read_text())["val_metrics"]}
            if name != "clevr":
                continue
            for dtype in (torch.float32, torch.bfloat16):
                prior, key = load_prior(path, dtype=dtype), f"forward/{precision}-trained/{dtype}".replace("torch.", "")
                out[f"{key}/cached"], out[f"{key}/uncached"] = digest(prior(obs, texts)), digest(prior(obs, texts, use_cache=False))
                out[f"{key}/greedy"] = prior.greedy_action(obs, texts).tolist()
                prior.states_per_row = 64
                out[f"{key}/shared_rows"] = digest(prior(obs[rows], [texts[i] for i in rows]))
    shipped = load_prior(ROOT / "priors" / "clevr__smollm2-135m")
    out["shipped/clevr"] = digest(shipped(obs[:8], texts[:8]))
    shipped, env = load_prior(ROOT / "priors" / "metaworld__smollm2-135m"), make_metaworld_env("window-open-v3", seed=0)
    states = np.stack([env.reset(seed=seed)[0] for seed in range(4)])
    out["shipped/metaworld"] = digest(shipped(states, [task_prompt("window-open-v3")] * 4))
    paths = {"clevr": priors["clevr", "fp32"], "metaworld": priors["metaworld", "bf16"],
             "clevr_demos": demos["clevr"].out, "metaworld_demos": demos["metaworld"].out}
    runs = [(f"run/{script}", script, flags.format(**paths), ROOT, work / script.removesuffix(".py"))
            for script, flags in RUNS.items()]
    script, flags = SAVED_MODEL_RUN
    runs.append((f"run/{script} --save-model", script,
                 flags.format(**{name: os.path.relpath(path, work) for name, path in paths.items()}), work, Path("saved")))
    for entry, script, flags, cwd, run_dir in runs:
        subprocess.run([sys.executable, str(ROOT / script), *flags.split(), "--seed", "3", "--run-dir", str(run_dir)],
                       check=True, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                       capture_output=True)
        summary = json.loads((cwd / run_dir / "summary.json").read_text())
        summary["args"].pop("prior_path", None)
        summary["args"].pop("run_dir", None)
        summary["args"].pop("demos", None)
        out[entry] = {key: value for key, value in summary.items()
                      if key != "sps" and "second" not in key and "time" not in key}
        for model in sorted((cwd / run_dir).glob("*.cleanrl_model")):
            out[f"model/{script}"] = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    Path(args.out).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}: {len(out)} entries")
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        differ = sorted(key for key in set(before) | set(out) if before.get(key) != out.get(key))
        print(f"{len(differ)} of {len(out)} entries differ from {args.compare}" + "".join(f"\n  {key}" for key in differ))
        if differ:
            sys.exit(1)
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
