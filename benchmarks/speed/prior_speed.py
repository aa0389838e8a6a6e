"""Batched prior inference: states per second with and without the KV-cached task prefix.

    python benchmarks/speed/prior_speed.py --llm smollm2-135m --batch 2048
    python benchmarks/speed/prior_speed.py --prior-path checkpoints/prior__clevr__smollm2-135m__1
    python benchmarks/speed/prior_speed.py --llm smollm2-135m --batch 2048 --state-encoding text

A batch of CLEVR-Robot states whose instructions are drawn from `--distinct-texts` goals (a
rollout batch revisits the same instructions many times). Without a checkpoint the prior is built
with untrained heads: speed does not depend on the weights. The first call of the cached path
includes computing each prefix once (after one call on another instruction, so that a GPU's
one-time start-up is not counted as the prefixes' cost); both figures are reported.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from envs.clevr_robot import NUM_ACTIONS, OBS_DIM, STATE_FIELDS, CLEVRRobotEnv  # noqa: E402
from benchmarks.common import cpu_name, write_json  # noqa: E402
from lago_prior import LatentActionPrior  # noqa: E402
from lago_utils.device import resolve_device  # noqa: E402
from lago_utils.llm import load_llm  # noqa: E402
from lago_utils.prior_io import freeze, load_prior  # noqa: E402


@dataclass
class Args:
    llm: str = "smollm2-135m"
    """the LLM, when no --prior-path is given"""
    prior_path: Optional[str] = None
    """a CLEVR-Robot prior checkpoint to time instead"""
    batch: int = 2048
    """states per call"""
    distinct_texts: int = 64
    """distinct instructions in the batch"""
    state_tokens: int = 4
    """latent state tokens (without --prior-path)"""
    state_encoding: Literal["latent", "text"] = "latent"
    """without --prior-path: --state-tokens latent tokens, or the state written as words (finetune_prior.py's flag)"""
    repeats: int = 3
    """timed calls of each path (the best is reported)"""
    max_batch: Optional[int] = None
    """states per LLM forward inside one call (FrozenPrior's chunks; the batch for one pass); default: the device's"""
    states_per_row: Optional[int] = None
    """states of one instruction that share an LLM row behind one copy of its prefix; default: the device's"""
    device: str = "auto"
    """`auto`, `cpu` or `cuda`"""
    json: Optional[str] = None
    """also write the results to this JSON file"""


def sample_batch(batch: int, distinct_texts: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    env = CLEVRRobotEnv(goal_split="all")
    pool = [env.reset(seed=seed + i)[1]["goal_text"] for i in range(distinct_texts * 4)]
    texts = list(dict.fromkeys(pool))[:distinct_texts]
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-0.45, 0.45, size=(batch, OBS_DIM)).astype(np.float32)
    return obs, [texts[i] for i in rng.integers(len(texts), size=batch)]


def best_time(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main(args: Args) -> dict:
    sizes = (args.batch, args.distinct_texts, args.repeats, args.state_tokens, args.max_batch, args.states_per_row)
    if min(size for size in sizes if size is not None) <= 0:
        raise SystemExit("prior_speed.py: error: --batch, --distinct-texts, --repeats, --state-tokens, --max-batch and "
                         "--states-per-row must be positive")
    device = resolve_device(args.device)
    if args.prior_path:
        prior = load_prior(args.prior_path, device=args.device)
        label = args.prior_path
    else:
        llm, tokenizer = load_llm(args.llm)
        model = LatentActionPrior(llm, tokenizer, OBS_DIM, {"type": "discrete", "n": NUM_ACTIONS},
                                  args.state_tokens, np.zeros(OBS_DIM), np.ones(OBS_DIM),
                                  state_fields=STATE_FIELDS if args.state_encoding == "text" else None)
        prior = freeze(model, {"action_space": {"type": "discrete", "n": NUM_ACTIONS}}, device)
        label = args.llm + (", state as text" if args.state_encoding == "text" else "")
    prior.max_batch = args.max_batch or prior.max_batch  # else FrozenPrior's default for the device
    prior.states_per_row = args.states_per_row or prior.states_per_row
    obs, texts = sample_batch(args.batch, args.distinct_texts)
    print(f"{label}: batch {args.batch}, {len(set(texts))} distinct texts, {torch.get_num_threads()} threads, "
          f"device {device}, LLM dtype {prior.model.llm.dtype}", flush=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prior(obs[:1], ["Warm up the device."])  # one state of another text: a GPU's one-time start-up is not the prefixes' cost
    start = time.perf_counter()
    prior(obs, texts, use_cache=True)
    first_cached = time.perf_counter() - start
    cached = best_time(lambda: prior(obs, texts, use_cache=True), args.repeats)
    uncached = best_time(lambda: prior(obs, texts, use_cache=False), args.repeats)
    results = {
        "llm": label, "batch": args.batch, "distinct_texts": len(set(texts)), "device": str(device), "cpu": cpu_name(),
        "threads": torch.get_num_threads(), "dtype": str(prior.model.llm.dtype), "state_tokens": prior.model.state_tokens, "max_batch": prior.max_batch,
        "states_per_row": prior.states_per_row,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "cached_states_per_second": args.batch / cached,
        "cached_first_call_states_per_second": args.batch / first_cached,
        "uncached_states_per_second": args.batch / uncached,
    }
    print(f"cached prefix:   {results['cached_states_per_second']:10,.0f} states/s "
          f"(first call, prefixes included: {results['cached_first_call_states_per_second']:,.0f})")
    print(f"uncached:        {results['uncached_states_per_second']:10,.0f} states/s")
    print(f"speed-up:        {results['cached_states_per_second'] / results['uncached_states_per_second']:10.1f}x")
    if args.json:
        write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
