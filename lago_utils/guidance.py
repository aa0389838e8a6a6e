"""What the LaGO scripts add to PPO around the guidance term, and is not the method: finding and loading the prior
(one sentence where it is missing or does not fit), and its diagnostics (time, agreement with the policy).

    check_lago_args(args, "clevr")            # the guidance flags; --prior-path, else --llm's; --llm must match it
    prior = load_frozen_prior(args, probe)    # the frozen stage-1 prior, refused where it does not fit the env
    prior_log = PriorLog(args, writer)
    with prior_log.query(global_step):        # perf/prior_seconds; non-finite outputs end the run in one sentence
        ...
    prior_log.agreement(global_step, agent.actor, obs, prior_logits=...)  # charts/prior_agreement
"""

from __future__ import annotations

import math

import contextlib
import time
from typing import Any, Callable, Iterator, Optional

import gymnasium as gym
import torch
import tyro

from lago_utils.checks import fail, require
from lago_utils.frozen_prior import FrozenPrior
from lago_utils.prior_io import PriorError, default_prior_path, load_prior, read_prior_config

DEFAULT_LLM = "smollm2-135m"  # the prior's LLM when neither --llm nor --prior-path names one


def default_prior_hint(env: str) -> tyro.conf.arg:
    """--prior-path's default in --help: it depends on --llm."""
    hint = f"(default: checkpoints/prior__{env}__<llm>__1, else the shipped priors/{env}__<llm>)"
    return tyro.conf.arg(help_behavior_hint=hint)


# --guidance-schedule adaptive: one dual-ascent step on log beta per update (as SAC tunes its temperature), a step of
# GUIDANCE_DUAL_STEP times the relative error of the update's mean guidance KL, clipped to [-1, 1]
GUIDANCE_DUAL_STEP = 0.1


def adapt_guidance_coef(beta: float, kl: float, target_kl: float) -> float:
    """beta after an update whose mean guidance KL was `kl`: larger where the policy strays further than `target_kl`
    (epsilon) from the prior, smaller where it keeps closer, by a factor of at most exp(GUIDANCE_DUAL_STEP)."""
    return beta * math.exp(GUIDANCE_DUAL_STEP * max(-1.0, min(1.0, (kl - target_kl) / target_kl)))


def check_lago_args(args: Any, env: str) -> Any:
    """Check the guidance flags, one sentence per bad flag, and find the prior's checkpoint, set in `args.prior_path`:
    --prior-path, else the default of --llm (one's own checkpoint, else the shipped prior; said on stdout); its LLM,
    set in `args.llm`, must match --llm where that is given. Stops with one sentence where there is no such checkpoint
    or the LLMs differ; notes a Meta-World --task that the prior saw no demonstrations of (its guidance is zero-shot)."""
    require(args, "guidance_coef", args.guidance_coef >= 0, "finite and >= 0")
    require(args, "guidance_target_kl", args.guidance_target_kl > 0, "finite and > 0")
    for flag in ("guidance_decay_end", "prior_fraction"):
        require(args, flag, 0 < getattr(args, flag) <= 1, "finite and in (0, 1]")
    try:
        if args.prior_path is None:  # an --llm that is no alias and has no checkpoint: PriorError
            args.prior_path, origin = default_prior_path(env, args.llm or DEFAULT_LLM)
            print(f"prior: {args.prior_path} ({origin})", flush=True)
        config = read_prior_config(args.prior_path)
    except PriorError as error:
        fail(args, f"{'--prior-path: ' if args.prior_path else ''}{error}")
    if args.llm is not None and config["llm"] != args.llm:
        fail(args, f"--llm {args.llm} does not match the prior {args.prior_path}, "
                   f"which was fine-tuned from {config['llm']}")
    args.llm = config["llm"]
    task = getattr(args, "task", None)
    if task is not None and config.get("tasks") and task not in config["tasks"]:
        print(f"note: the prior {args.prior_path} saw no demonstrations of {task}; its guidance there is zero-shot",
              flush=True)
    return args


def load_frozen_prior(args: Any, probe: gym.Env, observation_space: Optional[gym.Space] = None) -> FrozenPrior:
    """The prior --prior-path, frozen on --prior-device; one sentence where it does not fit the action space of the
    env `probe` (closed here) or `observation_space` (default: the env's)."""
    try:
        prior = load_prior(args.prior_path, observation_space=observation_space or probe.observation_space,
                           action_space=probe.action_space, device=args.prior_device)
    except PriorError as error:
        fail(args, f"--prior-path: {error}")
    probe.close()
    return prior


class PriorLog:
    """The prior's diagnostics: the seconds of each query (perf/prior_seconds, and their total), and how far the
    policy agrees with the prior on the queried states (charts/prior_agreement)."""

    def __init__(self, args: Any, writer: Any):
        self.args, self.writer, self.seconds = args, writer, 0.0

    @contextlib.contextmanager
    def query(self, global_step: int) -> Iterator[None]:
        """Time the query in the `with` block; non-finite prior outputs (PriorError) end the run in one sentence."""
        start = time.time()
        try:
            yield
        except PriorError as error:
            fail(self.args, f"{error}; no summary written")
        seconds = time.time() - start
        self.seconds += seconds
        self.writer.add_scalar("perf/prior_seconds", seconds, global_step)

    @torch.no_grad()
    def agreement(self, global_step: int, actor: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor,
                  prior_logits: Optional[torch.Tensor] = None, prior_mean: Optional[torch.Tensor] = None,
                  prior_std: Optional[torch.Tensor] = None) -> None:
        """Discrete actions (`prior_logits`): how often the policy's greedy action is the prior's. Box actions: how
        often the policy's mean action lies within one prior std of the prior's mean, per action number, and the
        distance between the two (clipped) mean actions (charts/prior_action_distance)."""
        if prior_logits is not None:
            prior_agreement = (actor(obs).argmax(-1) == prior_logits.argmax(-1)).float().mean()
            self.writer.add_scalar("charts/prior_agreement", prior_agreement.item(), global_step)
            return
        gap = actor(obs).clamp(-1, 1) - prior_mean.clamp(-1, 1)
        prior_agreement = (gap.abs() <= prior_std).float().mean()
        self.writer.add_scalar("charts/prior_agreement", prior_agreement.item(), global_step)
        self.writer.add_scalar("charts/prior_action_distance", gap.norm(dim=-1).mean().item(), global_step)

    def summary(self, prior: FrozenPrior) -> dict[str, Any]:
        """What a LaGO run's summary.json adds: the prior's LLM, its precision and its seconds in all."""
        return {"llm": self.args.llm, "prior_dtype": str(prior.dtype).removeprefix("torch."),
                "prior_seconds": round(self.seconds, 1)}
