"""The control priors: each takes one ingredient away from the LLM prior, and plugs into the unchanged LaGO scripts
through the same checkpoint format (--prior-path), so that what guidance gains can be split into its parts.

    python benchmarks/control_priors.py --control uniform --demos demos/clevr.npz
    python benchmarks/control_priors.py --control marginal --demos demos/metaworld.npz
    python benchmarks/control_priors.py --control no-goal --prior-path checkpoints/prior__clevr__smollm2-135m__1
    python finetune_prior.py --llm none --demos demos/clevr.npz      # the fourth: no language model (a trained prior)

- `uniform` (Discrete): every action equally likely, whatever the state and the goal. Guided towards it, a policy only
  gets an entropy bonus: KL(pi || uniform) = log n - H(pi).
- `marginal`: the demonstrated actions' distribution, whatever the state and the goal: their frequencies, smoothed as
  the LLM prior's training targets (--label-smoothing), for Discrete actions; the diagonal Gaussian fitted to them,
  its std floored at --min-std as the LLM prior's, for Box actions. From the training episodes of finetune_prior.py's
  split, with the validation metrics on its validation episodes, comparable to the LLM prior's.
- `no-goal`: the LLM prior itself, reading one sentence for every goal ("Complete the task.") instead of the goal.

Each writes a checkpoint directory (default checkpoints/prior__<env>__<control>__1, for no-goal
prior__<env>__<llm>-nogoal__1, which grid.py finds as `lago-<control>` and `prior-alone-<control>`).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from collect_demos import DemoError, load_demos  # noqa: E402
from finetune_prior import split_episodes  # noqa: E402
from lago_prior import WITHOUT_LLM, ConstantPrior  # noqa: E402
from lago_utils.llm import PriorError  # noqa: E402
from lago_utils.prior_io import PRIOR_FORMAT, read_prior_config, save_prior, write_checkpoint  # noqa: E402

NO_GOAL_INSTRUCTION = "Complete the task."  # the control sentence of evaluate_prior.py --instructions none


@dataclass
class Args:
    control: Literal["uniform", "marginal", "no-goal"] = "uniform"
    """which control prior to write (see the module's help)"""
    demos: str = "demos/clevr.npz"
    """uniform and marginal: the demonstration file of the LLM prior"""
    prior_path: Optional[str] = None
    """no-goal: the LLM prior to read one sentence for every goal"""
    label_smoothing: float = 0.05
    """marginal, Discrete: the share of uniform mass in the frequencies, as finetune_prior.py's label smoothing"""
    min_std: float = 0.05
    """marginal, Box: the floor of the Gaussian's std, as finetune_prior.py's"""
    val_fraction: float = 0.1
    """the share of demonstration episodes held out for validation, as finetune_prior.py's"""
    seed: int = 1
    """the seed of the split, as finetune_prior.py's"""
    out: Optional[str] = None
    """the checkpoint directory; default checkpoints/prior__<env>__<control>__1 (no-goal: <llm>-nogoal)"""


def constant_prior(args: Args) -> tuple[ConstantPrior, dict]:
    """The uniform or marginal prior of the demonstrations `args.demos`, and its config."""
    try:
        arrays, meta = load_demos(args.demos)
    except DemoError as error:
        raise PriorError(f"--demos: {error}") from error
    space, discrete = meta["action_space"], meta["action_space"]["type"] == "discrete"
    if args.control == "uniform" and not discrete:
        raise PriorError(f"--control uniform needs Discrete actions; {args.demos} has Box actions (use marginal)")
    train_rows, val_rows = split_episodes(arrays["episode"], args.val_fraction, np.random.default_rng(args.seed))
    actions = torch.as_tensor(arrays["actions"])
    if discrete:
        counts = torch.bincount(actions[train_rows].long(), minlength=space["n"]).double()
        frequencies = counts / counts.sum() if args.control == "marginal" else torch.ones(space["n"]) / space["n"]
        probabilities = (1 - args.label_smoothing) * frequencies + args.label_smoothing / space["n"]
        prior = ConstantPrior(space, logits=probabilities.log())
    else:
        train = actions[train_rows].double()
        prior = ConstantPrior(space, mean=train.mean(0), std=train.std(0).clamp(min=args.min_std))
    metrics = {}
    if len(val_rows):
        params = prior.distribution_params(torch.zeros(len(val_rows), 0))
        val = actions[val_rows]
        if discrete:
            log_p = torch.log_softmax(params, -1)[torch.arange(len(val_rows)), val.long()]
            metrics = {"nll": float(-log_p.mean()), "accuracy": float((params.argmax(-1) == val).double().mean())}
        else:
            log_p = torch.distributions.Normal(*params).log_prob(val.float()).sum(-1)
            metrics = {"nll": float(-log_p.mean()), "mse": float(((params[0] - val) ** 2).mean(-1).mean())}
    config = {"format": PRIOR_FORMAT, "llm": args.control, "llm_init": "none", "seed": args.seed, "env": meta["env"],
              "tasks": meta.get("tasks"), "obs_dim": int(arrays["obs"].shape[1]), "action_space": space,
              "state_tokens": 0, "prompt_template": "", "min_std": args.min_std, "demos": str(args.demos),
              "train_transitions": int(len(train_rows)), "val_transitions": int(len(val_rows)), "val_metrics": metrics,
              "train_seconds": 0.0, "args": asdict(args)}
    return prior, config


def main(args: Args) -> Path:
    if not (0 <= args.label_smoothing < 1 and args.min_std > 0 and 0 <= args.val_fraction < 1):
        raise PriorError("--label-smoothing and --val-fraction must be in [0, 1), --min-std positive")
    if args.control == "no-goal":
        if args.prior_path is None:
            raise PriorError("--control no-goal needs --prior-path, the LLM prior to read one sentence for every goal")
        source = Path(args.prior_path)
        config = read_prior_config(source)
        if config.get("instruction") is not None or config["llm"] in WITHOUT_LLM:
            raise PriorError(f"--prior-path {source} is a control prior already; give an LLM prior")
        label = config["llm"].rstrip("/").split("/")[-1] + ("-random" if config["llm_init"] == "random" else "")
        # its validation metrics were measured with the goals' words: not this prior's
        config = {**{k: v for k, v in config.items() if k != "val_metrics"}, "instruction": NO_GOAL_INSTRUCTION,
                  "control_of": str(source)}
        out = Path(args.out or f"checkpoints/prior__{config['env']}__{label}-nogoal__1")

        def copy(folder: Path) -> None:
            for item in source.iterdir():
                if item.name != "config.json":
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)

        write_checkpoint(out, config, copy)
    else:
        prior, config = constant_prior(args)
        out = save_prior(prior, args.out or f"checkpoints/prior__{config['env']}__{args.control}__1", config)
    print(f"wrote the {args.control} control prior to {out} (validation: "
          + (", ".join(f"{k} {v:.3f}" for k, v in config.get("val_metrics", {}).items()) or "none") + ")")
    return out


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except PriorError as error:
        sys.exit(f"control_priors.py: error: {error}")
