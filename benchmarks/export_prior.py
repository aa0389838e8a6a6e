"""Export a prior checkpoint compactly: the LoRA adapter and the heads in bf16, for shipping in priors/.

    python benchmarks/export_prior.py --prior-path checkpoints/prior__metaworld__smollm2-135m__1 \
        --out priors/metaworld__smollm2-135m

The observation statistics stay in fp32 (39 or 17 numbers). The exported config.json records where
the prior came from: the fine-tuning command, the demonstration file's sha256 and the validation
metrics; and how far the bf16 copy's outputs are from the original's on 256 demonstration states
(both loaded as the stage-2 scripts load them), beside how far the original is from itself when its
prompt cache is off: the scale of the LLM's own bf16 rounding. The LaGO scripts fall back to priors/<env>__<llm>
when there is no checkpoints/prior__<env>__<llm>__1 of one's own.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from finetune_prior import Args as FinetuneArgs  # noqa: E402
from lago_utils.llm import PriorError  # noqa: E402
from lago_utils.prior_io import load_prior, read_prior_config  # noqa: E402

KEEP_FP32 = ("obs_mean", "obs_std")  # a few numbers, and bf16 would shift the normalised observation


@dataclass
class Args:
    prior_path: str
    """the checkpoint written by finetune_prior.py"""
    out: str
    """the folder to write (replaced whole)"""
    check_states: int = 256
    """demonstration states on which the copy's outputs are compared with the original's"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_bf16(source: Path, target: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(source)
    save_file({name: t if name in KEEP_FP32 or not t.is_floating_point() else t.to(torch.bfloat16).contiguous()
               for name, t in tensors.items()}, target)


def max_abs_diffs(a, b) -> dict[str, float]:
    """max |a - b| of two prior outputs: logits, or (mean, std)."""
    if torch.is_tensor(a):
        return {"logits": float((a - b).abs().max())}
    return {"mean": float((a[0] - b[0]).abs().max()), "std": float((a[1] - b[1]).abs().max())}


def main(args: Args) -> None:
    source, out = Path(args.prior_path), Path(args.out)
    config = read_prior_config(source)
    demos = ROOT / config["demos"] if not Path(config["demos"]).is_absolute() else Path(config["demos"])
    if not demos.is_file():
        raise PriorError(f"the prior's demonstration file {config['demos']} is not there: its hash cannot be recorded")
    data = np.load(demos)
    if len(data["obs"]) != config["train_transitions"] + config["val_transitions"]:
        raise PriorError(f"{config['demos']} has {len(data['obs'])} transitions, the prior was trained on "
                         f"{config['train_transitions'] + config['val_transitions']}: not its demonstration file")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        (tmp / "adapter").mkdir()
        shutil.copy(source / "adapter" / "adapter_config.json", tmp / "adapter" / "adapter_config.json")
        to_bf16(source / "adapter" / "adapter_model.safetensors", tmp / "adapter" / "adapter_model.safetensors")
        to_bf16(source / "heads.safetensors", tmp / "heads.safetensors")
        if (source / "base.safetensors").is_file():  # random-init LLMs keep their weights (large, but rare)
            to_bf16(source / "base.safetensors", tmp / "base.safetensors")
        defaults = asdict(FinetuneArgs())
        command = ["python", "finetune_prior.py"]
        for name, value in config["args"].items():  # the flags that differ from today's defaults, and the data
            if name in ("demos", "llm", "out") or value != defaults.get(name, value):
                command += [f"--{name.replace('_', '-')}", str(value)]
        config["exported"] = {
            "from": str(source), "fine_tuning_command": shlex.join(command),
            "demos_sha256": sha256(demos), "val_metrics": config["val_metrics"],
            "dtype": "adapter and heads bf16, obs_mean and obs_std fp32",
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")

        # the copy against the original, both as the stage-2 scripts load them (LoRA merged, LLM in bf16 on CPU)
        rows = np.random.default_rng(0).choice(len(data["obs"]), min(args.check_states, len(data["obs"])), replace=False)
        obs, texts = data["obs"][np.sort(rows)], [str(t) for t in data["task_text"][np.sort(rows)]]
        original = load_prior(source, device="cpu")
        reference, copy = original(obs, texts), load_prior(tmp, device="cpu")(obs, texts)
        diffs = max_abs_diffs(reference, copy)
        # the scale of bf16 rounding: the original against itself without the prompt cache (another summation order)
        noise = max_abs_diffs(reference, original(obs, texts, use_cache=False))
        config["exported"]["max_abs_diff_to_original"] = {"states": len(rows), **diffs}
        config["exported"]["max_abs_diff_original_uncached"] = noise
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB); outputs against the original on {len(rows)} demonstration states: "
          + ", ".join(f"max |diff| {name} {value:.2g}" for name, value in diffs.items())
          + " (the original cached against uncached: " + ", ".join(f"{name} {value:.2g}" for name, value in noise.items()) + ")")


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except PriorError as error:
        sys.exit(f"export_prior.py: error: {error}")
