"""The GPU path checked and timed in one go; one JSON (run it through benchmarks/gpu/gpu_check.sh).

    benchmarks/gpu/gpu_check.sh                          # on a GPU machine: at most 8 minutes on an H100
    QUICK=1 benchmarks/gpu/gpu_check.sh /tmp/check.json  # a tiny dry run on any CPU (the test suite runs it)

What it measures, in this order, writing the JSON after each part (a cut-off run keeps what it has):
1. fine-tuning: `finetune_prior.py` on CLEVR-Robot demonstrations, steps of 32 per second;
2. the prior: `benchmarks/speed/prior_speed.py` at batches of 2,048 and 16,384 states (4 state tokens,
   64 distinct instructions) and of 1,024 states with 16 (a CLEVR-Robot rollout of LaGO's
   defaults), with and without the cached prefix, and the first call; each in chunks of 512
   states per LLM forward (the CPU's path), in one pass, and in one pass with up to 64 states of
   an instruction sharing an LLM row behind one copy of its prefix (the GPU's default);
3. PPO against LaGO querying every state: `benchmarks/speed/stage2_speed.py` on CLEVR-Robot
   (51,200 steps) and on Meta-World (`drawer-close-v3`, 4,096 steps), each script with its
   defaults (the policy on the CPU, the prior on the GPU where there is one) and, on a GPU, with
   the policy on it too (`--cuda`); on Meta-World also with 16 envs in subprocesses
   (`--num-envs 16 --num-steps 128 --async-envs`).

The LLM is SmolLM2-135M where its weights are installed, else `smollm2-135m-arch`: its
architecture with random weights (the same cost per state; a byte tokenizer, so the cached
prompts are longer). `--quick` uses the tiny random LLM and tiny budgets. The targets beside the
numbers are those of the GPU path: 100,000 states/s at batch 16,384, LaGO at most 1.1x PPO.
Each part also records the GPU's mean utilisation while it ran (the share of time a kernel was
running, as nvidia-smi reports it), and a part that fails records its error and the check goes on.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import collect_demos  # noqa: E402
import finetune_prior  # noqa: E402
from lago_utils.llm import PriorError, converted_weights  # noqa: E402
from lago_utils.prior_io import read_prior_config  # noqa: E402
from benchmarks.speed import prior_speed, stage2_speed  # noqa: E402
from benchmarks.common import cpu_name, write_json  # noqa: E402

TARGETS = {"prior_states_per_second_at_16384": 100_000, "lago_over_ppo": 1.1}


@dataclass
class Args:
    out: str = "results/gpu/gpu_check.json"
    """the JSON to write"""
    quick: bool = False
    """a tiny dry run: the tiny random LLM, a few steps, small batches"""


def machine() -> dict:
    import peft
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"gpu": gpu, "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "peft": peft.__version__}


class GpuBusy:
    """The GPU's mean utilisation in percent while the `with` block runs (None without a GPU or NVML), and the
    block's error, if any, instead of raising it: one failing part does not end the check."""

    def __enter__(self):
        self.samples, self.error, self._stop = [], None, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if torch.cuda.is_available():
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.samples.append(torch.cuda.utilization())
            except Exception:  # no NVML (pynvml) here: no utilisation
                return

    def __exit__(self, kind, error, trace) -> bool:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if error is not None:
            self.error = "".join(traceback.format_exception_only(kind, error)).strip()
            print(f"failed: {self.error}", flush=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return not isinstance(error, KeyboardInterrupt)

    def record(self, result: dict | None = None) -> dict:
        result = dict(result or {})
        result["gpu_utilisation_percent"] = round(sum(self.samples) / len(self.samples), 1) if self.samples else None
        if self.error:
            result["error"] = self.error
        return result


def pick_llm(quick: bool) -> tuple[str, str]:
    if quick:
        return "tiny-random", "random (the tests' tiny LLM)"
    try:  # the weights converted (once) without building the model: the timed parts load it themselves
        converted_weights("smollm2-135m")
        return "smollm2-135m", "pretrained"
    except PriorError as error:
        print(f"no SmolLM2 weights here ({error}); timing its architecture with random weights", flush=True)
        return "smollm2-135m-arch", "random (SmolLM2-135M's architecture, byte tokenizer)"


def main(args: Args) -> dict:
    start = time.time()
    llm, weights = pick_llm(args.quick)
    sizes = dict(finetune_steps=4 if args.quick else 100,
                 batches=((64, 64),) if args.quick else ((1024, 16), (2048, 64), (16384, 64)),  # (states, instructions)
                 clevr_steps=1024 if args.quick else 51_200, metaworld_steps=512 if args.quick else 4096,
                 metaworld_args="--num-steps 256 --num-minibatches 4 --update-epochs 2 --max-episode-steps 100"
                 if args.quick else "",
                 eval_episodes=1 if args.quick else 10)
    report = {"machine": machine(), "llm": llm, "llm_weights": weights, "quick": args.quick, "targets": TARGETS}

    def save(part: str, value) -> None:
        report[part] = value
        report["seconds"] = round(time.time() - start, 1)
        write_json(args.out, report)

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        tmp = Path(tmp)
        print("== demonstrations", flush=True)
        collect_demos.main(collect_demos.Args(env="clevr", episodes=20 if args.quick else 200, out=str(tmp / "clevr.npz")))
        collect_demos.main(collect_demos.Args(env="metaworld", task="drawer-close-v3", episodes=2, max_episode_steps=100,
                                              out=str(tmp / "metaworld.npz")))

        print("== fine-tuning", flush=True)
        priors = {}
        for env, steps in (("clevr", sizes["finetune_steps"]), ("metaworld", 2)):
            priors[env] = tmp / f"prior_{env}"
            with GpuBusy() as busy:
                finetune_prior.main(finetune_prior.Args(demos=str(tmp / f"{env}.npz"), llm=llm, train_steps=steps,
                                                        eval_every=steps, out=str(priors[env]),
                                                        run_dir=str(tmp / "runs" / env)))
            if env == "clevr":
                result = {}
                if busy.error is None:
                    config = read_prior_config(priors[env])
                    result = {"steps": steps, "batch_size": config["args"]["batch_size"],
                              "seconds": config["train_seconds"], "steps_per_second": steps / config["train_seconds"],
                              "device": config["machine"]["device"], "precision": config["machine"]["precision"]}
                save("finetune", busy.record(result))

        print("== prior inference", flush=True)
        speeds = []
        for batch, distinct_texts in sizes["batches"]:
            # the CPU's chunks of 512; the whole batch in one pass; and in one pass with shared rows (the GPU's)
            for max_batch, states_per_row in dict.fromkeys(((512, 1), (batch, 1), (batch, 64))):
                with GpuBusy() as busy:
                    speed = prior_speed.main(prior_speed.Args(llm=llm, batch=batch, distinct_texts=distinct_texts,
                                                              max_batch=max_batch, states_per_row=states_per_row,
                                                              repeats=1 if args.quick else 3))
                if busy.error:
                    speed = {"batch": batch, "max_batch": max_batch, "states_per_row": states_per_row}
                speeds.append(busy.record(speed))
                save("prior", speeds)

        print("== PPO against LaGO, every state queried", flush=True)
        placements = [("default devices", "", "")]  # the scripts' own: the policy on the CPU, the prior on a GPU
        if torch.cuda.is_available():
            placements.append(("policy on the GPU", "--cuda", ""))
        runs = [(env, *placement) for env in ("clevr", "metaworld") for placement in placements]
        if not args.quick:  # Meta-World on every core: 16 envs in subprocesses, the same 2048 steps per rollout
            runs.append(("metaworld", "16 envs in subprocesses", "--num-envs 16 --num-steps 128 --async-envs", ""))
        stage2 = {}
        for env, placement, both_args, lago_args in runs:
            with GpuBusy() as busy:
                result = stage2_speed.main(stage2_speed.Args(
                    env=env, prior_path=str(priors[env]), total_timesteps=sizes[f"{env}_steps"],
                    eval_episodes=sizes["eval_episodes"], lago_args=lago_args,
                    both_args=f"{sizes['metaworld_args']} {both_args}".strip() if env == "metaworld" else both_args))
            stage2[f"{env}, {placement}"] = busy.record(None if busy.error else result)
            save("stage2", stage2)
    save("done", True)
    return report


if __name__ == "__main__":
    main(tyro.cli(Args))
