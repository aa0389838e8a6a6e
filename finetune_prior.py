"""Stage 1 of LaGO: fine-tune a pretrained LLM into a latent action prior.

    python collect_demos.py --env clevr
    python finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m
    python evaluate_prior.py --prior-path checkpoints/prior__clevr__smollm2-135m__1

The LLM reads the task text, then `--state-tokens` latent "state tokens" that an MLP projects
from the raw observation into its embedding space; its last hidden state feeds an action head:
categorical logits for Discrete actions, a diagonal Gaussian (mean, std >= --min-std) for Box
actions. The state projection, the head and LoRA adapters on the LLM are trained with the
negative log-likelihood of the demonstrated actions. The LLM never writes an action as text.

The model is `LatentActionPrior` in lago_prior.py; this file is its training: the flags, the data
split, the loss, the loop, validation and the save call. The LLM loader, the checkpoint format and
the frozen prior of stage 2 live in lago_utils/.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
import tyro

from lago_prior import PROMPT_TEMPLATE, LatentActionPrior, NoLLMPrior
from lago_utils.device import cpu_name, fast_dtype, resolve_device
from lago_utils.llm import LLM_ALIASES, RANDOM_LLMS, PriorError, hidden_size, load_llm, load_tokenizer
from lago_utils.prior_io import PRIOR_FORMAT, save_prior

PROGRESS_SECONDS = 60.0  # a progress line at least this often between the validation passes (and after step 1)


@dataclass
class Args:
    demos: str = "demos/clevr.npz"
    """the demonstration file written by collect_demos.py"""
    llm: str = "smollm2-135m"
    """`smollm2-135m`, `gemma3-270m`, `qwen2.5-coder-0.5b`, `qwen2.5-coder-1.5b` (the last two after `make
    install-llm-large`), `tiny-random` (tests), `smollm2-135m-arch` (SmolLM2-135M's decoder with random weights, for
    timing where its weights are not installed), a Hugging Face model id or a local model directory; `none`: the
    control without a language model (learned embeddings of the instruction's tokens, mean-pooled, beside the state)"""
    tokenizer: str = "smollm2-135m"
    """--llm none only: the LLM whose tokenizer splits the instruction"""
    llm_init: Literal["pretrained", "random"] = "pretrained"
    """`random` keeps the architecture and re-initialises the weights (does LLM knowledge matter?)"""
    state_tokens: int = 4
    """number of latent state tokens projected from the observation (--state-encoding latent)"""
    state_encoding: Literal["latent", "text"] = "latent"
    """`latent`: --state-tokens tokens that an MLP projects from the observation; `text`: the observation written
    into the prompt after the task as rounded numbers (the env's STATE_FIELDS, e.g. ` red (+0.12, -0.30), ...`)"""
    lora_rank: int = 8
    """LoRA rank"""
    lora_alpha: float = 16.0
    """LoRA scaling alpha"""
    lora_dropout: float = 0.0
    """LoRA dropout"""
    lora_target_modules: str = "q_proj,k_proj,v_proj,o_proj"
    """comma-separated names of the LLM's linear layers that get LoRA adapters"""
    learning_rate: float = 1e-3
    """AdamW learning rate of the LoRA adapters, the state projection and the head"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_grad_norm: float = 0.0
    """clip the gradients' global norm to this; 0 (the default, with which the SmolLM2 and Gemma priors were trained)
    turns clipping off. The Qwen priors need it (see the Makefile)"""
    batch_size: int = 32
    """demonstration transitions per gradient step"""
    train_steps: int = 400
    """number of gradient steps"""
    val_fraction: float = 0.1
    """fraction of the demonstration episodes held out for validation"""
    eval_every: int = 100
    """validate every this many steps"""
    patience: int = 0
    """stop after this many validations in a row without a lower validation NLL, and keep the checkpoint of the
    lowest (--train-steps is then the cap); 0: train all --train-steps and keep the last"""
    label_smoothing: float = 0.05
    """label smoothing of the discrete cross-entropy (keeps the prior's support full)"""
    min_std: float = 0.05
    """floor of the Gaussian prior's standard deviation (keeps the KL finite)"""
    gradient_checkpointing: bool = False
    """recompute the LLM's activations in the backward pass: less memory for the larger LLMs, more time per step"""
    compile: bool = False
    """compile the LLM's decoder layers with `torch.compile` (dynamic shapes): pays on a GPU, where a step waits on
    launching kernels, after a minute or so of compiling; slower on a CPU"""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`auto`: bf16 autocast (fp32 weights) where the device computes bf16 natively, else fp32; or `bf16`, `fp32`"""
    seed: int = 1
    """seed of the split, the initialisation and the batches"""
    device: str = "auto"
    """`auto` (cuda if available), `cpu` or `cuda`"""
    out: Optional[str] = None
    """checkpoint directory; default checkpoints/prior__<env>__<llm>__<seed>"""
    run_dir: Optional[str] = None
    """TensorBoard directory; default runs/prior__<env>__<llm>__<seed>__<time>"""


# --- training -------------------------------------------------------------------------------
def state_fields(env_name: str) -> tuple:
    """The env's observation fields that --state-encoding text writes as words."""
    if env_name == "clevr":
        from envs.clevr_robot import STATE_FIELDS
    else:
        from envs.metaworld_tasks import STATE_FIELDS
    return STATE_FIELDS


def split_episodes(episodes: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of training and validation transitions, split by whole episodes."""
    unique = rng.permutation(np.unique(episodes))
    n_val = max(1, int(round(val_fraction * len(unique)))) if val_fraction > 0 and len(unique) > 1 else 0
    val_episodes = set(unique[:n_val].tolist())
    is_val = np.array([e in val_episodes for e in episodes])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def validate_args(args: Args) -> None:
    for name in ("state_tokens", "lora_rank", "batch_size", "train_steps", "eval_every"):
        if getattr(args, name) <= 0:
            raise PriorError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.patience < 0:
        raise PriorError(f"--patience must be 0 (off) or a positive integer, got {args.patience}")
    if args.patience and args.val_fraction == 0:
        raise PriorError("--patience stops on the validation NLL: give --val-fraction above 0")
    if args.llm == "none" and args.state_encoding == "text":
        raise PriorError("--state-encoding text needs an LLM to read the state's words; --llm none has none")
    if args.learning_rate <= 0 or args.lora_alpha <= 0:
        raise PriorError("--learning-rate and --lora-alpha must be positive")
    if not args.max_grad_norm >= 0:  # NaN too
        raise PriorError(f"--max-grad-norm must be 0 (off) or positive, got {args.max_grad_norm}")
    if not 0 <= args.val_fraction < 1:
        raise PriorError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if not 0 <= args.label_smoothing < 1:
        raise PriorError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if args.min_std <= 0:
        raise PriorError(f"--min-std must be positive, got {args.min_std}")
    if args.llm not in (*LLM_ALIASES, "none") and not Path(args.llm).is_dir() and args.llm.count("/") != 1:
        raise PriorError(
            f"--llm {args.llm!r} is neither an alias ({', '.join(LLM_ALIASES)}, or none) nor a local model "
            "directory nor a Hugging Face model id (owner/name)"
        )
    if args.llm == "none" and (args.compile or args.gradient_checkpointing or args.llm_init == "random"):
        raise PriorError("--llm none has no LLM to compile, checkpoint or re-initialise: drop --compile, "
                         "--gradient-checkpointing and --llm-init")


@torch.no_grad()
def evaluate_nll(model: LatentActionPrior, obs, texts, actions, batch_size: int, discrete: bool) -> dict[str, float]:
    model.eval()
    total_nll, correct, squared_error, count = 0.0, 0.0, 0.0, 0
    for start in range(0, len(obs), batch_size):
        rows = slice(start, start + batch_size)
        nll, params = model.nll(obs[rows], texts[rows], actions[rows])
        total_nll += nll.item() * len(obs[rows])
        if discrete:
            correct += (params.argmax(-1) == actions[rows]).sum().item()
        else:
            squared_error += ((params[0] - actions[rows]) ** 2).mean(-1).sum().item()
        count += len(obs[rows])
    model.train()
    metrics = {"nll": total_nll / count}
    metrics["accuracy" if discrete else "mse"] = (correct if discrete else squared_error) / count
    return metrics


def main(args: Args) -> Path:
    validate_args(args)  # before the slow imports: a bad flag is reported at once
    from peft import LoraConfig, get_peft_model
    from torch.utils.tensorboard import SummaryWriter

    from collect_demos import DemoError, load_demos

    try:
        arrays, demo_meta = load_demos(args.demos)
    except DemoError as error:
        raise PriorError(f"--demos: {error}") from error
    device = resolve_device(args.device)
    # --llm none: fp32 under `auto` on every machine (no LLM to speed up)
    autocast_bf16 = args.precision == "bf16" or (args.precision == "auto" and args.llm != "none"
                                                 and fast_dtype(device) == torch.bfloat16)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    env_name, action_space = demo_meta["env"], demo_meta["action_space"]
    discrete = action_space["type"] == "discrete"
    llm_label = args.llm.rstrip("/").split("/")[-1] + ("-random" if args.llm_init == "random" else "")
    run_name = f"prior__{env_name}__{llm_label}__{args.seed}"
    out = Path(args.out or f"checkpoints/{run_name}")
    writer = SummaryWriter(args.run_dir or f"runs/{run_name}__{int(time.time())}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()),
    )

    obs_all = torch.as_tensor(arrays["obs"], dtype=torch.float32)
    texts_all = arrays["task_text"].tolist()
    actions_all = torch.as_tensor(arrays["actions"], dtype=torch.long if discrete else torch.float32)
    train_rows, val_rows = split_episodes(arrays["episode"], args.val_fraction, np.random.default_rng(args.seed))
    obs_mean = arrays["obs"][train_rows].mean(0)
    obs_std = arrays["obs"][train_rows].std(0) + 1e-3
    print(f"{len(train_rows)} training and {len(val_rows)} validation transitions from {args.demos} ({env_name})")

    lora = LoraConfig(
        r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=[name.strip() for name in args.lora_target_modules.split(",") if name.strip()],
    )
    if args.llm == "none":  # the control: the same state projection, head, loss and data, no language model
        model = NoLLMPrior(load_tokenizer(args.tokenizer), arrays["obs"].shape[1], action_space, args.state_tokens,
                           obs_mean, obs_std, args.min_std).to(device)
    else:
        llm, tokenizer = load_llm(args.llm, args.llm_init, args.seed)
        if args.gradient_checkpointing:
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        try:
            llm = get_peft_model(llm, lora)
        except ValueError as error:
            raise PriorError(f"--lora-target-modules {args.lora_target_modules!r} do not fit {args.llm} ({error})") from error
        fields = state_fields(env_name) if args.state_encoding == "text" else None
        model = LatentActionPrior(llm, tokenizer, arrays["obs"].shape[1], action_space, args.state_tokens, obs_mean,
                                  obs_std, args.min_std, state_fields=fields).to(device)
        if fields:
            print(f"the state as {model.state_tokens} tokens of text, e.g.{model.state_text.text(arrays['obs'][0])}")
    if args.compile:
        model.compile_layers()
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = "random" if args.llm in RANDOM_LLMS else args.llm_init
    precision = "bf16 autocast" if autocast_bf16 else "fp32"
    if args.precision == "auto" and device.type == "cpu" and not autocast_bf16 and args.llm != "none":
        precision += " (this CPU computes no bf16 natively: several times slower than one that does)"
    encoder = f"LLM {args.llm} ({weights} weights)" if args.llm != "none" else f"no LLM ({args.tokenizer}'s tokens)"
    print(f"{encoder}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"{sum(p.numel() for p in trainable) / 1e6:.2f}M trainable, device {device}, {precision}")
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)

    def take(rows):
        return obs_all[rows].to(device), [texts_all[i] for i in rows], actions_all[rows].to(device)

    val_obs, val_texts, val_actions = take(val_rows[:1024])
    baseline = ""
    if discrete and len(val_rows):
        majority = np.bincount(arrays["actions"][train_rows], minlength=action_space["n"]).argmax()
        baseline = f"{(arrays['actions'][val_rows] == majority).mean():.3f}"
        print(f"majority-class baseline accuracy on validation: {baseline}")
    metrics: dict[str, float] = {}
    history: list[dict[str, float]] = []  # every validation: step and metrics
    best: dict[str, float] = {}  # --patience: the validation with the lowest NLL so far, and its trainable tensors
    best_tensors: dict[str, torch.Tensor] = {}
    rng = np.random.default_rng(args.seed)
    start = last_print = time.time()
    step_times = []  # each gradient step's seconds, without the validation passes
    for step in range(1, args.train_steps + 1):
        step_start = time.time()
        obs, texts, actions = take(rng.choice(train_rows, size=args.batch_size, replace=len(train_rows) < args.batch_size))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            loss, _ = model.nll(obs, texts, actions, args.label_smoothing if discrete else 0.0)
        if not torch.isfinite(loss):
            raise PriorError(f"fine-tuning diverged: the training NLL is {loss.item()} at step {step}; no checkpoint "
                             f"written to {out} (try a lower --learning-rate)")
        optimizer.zero_grad()
        loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, args.max_grad_norm)
        optimizer.step()
        step_times.append(time.time() - step_start)
        writer.add_scalar("prior/train_nll", loss.item(), step)
        if (step % args.eval_every == 0 or step == args.train_steps) and len(val_rows):
            metrics = evaluate_nll(model, val_obs, val_texts, val_actions, 4 * args.batch_size, discrete)
            if not all(np.isfinite(value) for value in metrics.values()):
                raise PriorError(f"fine-tuning diverged: the validation metrics are {metrics} at step {step}; "
                                 f"no checkpoint written to {out} (try a lower --learning-rate)")
            for name, value in metrics.items():
                writer.add_scalar(f"prior/val_{name}", value, step)
            history.append({"step": step, **metrics})
            elapsed = time.time() - start
            print(f"step {step}/{args.train_steps}  train_nll {loss.item():.3f}  "
                  + "  ".join(f"val_{k} {v:.3f}" for k, v in metrics.items())
                  + f"  {elapsed:.0f}s elapsed, eta {elapsed / step * (args.train_steps - step):.0f}s", flush=True)
            last_print = time.time()
            if args.patience:  # early stopping: keep the best, stop after --patience validations without a better one
                if not best or metrics["nll"] < best["nll"]:
                    best = {"step": step, **metrics}
                    best_tensors = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
                elif len([h for h in history if h["step"] > best["step"]]) >= args.patience:
                    print(f"stopped at step {step}: no lower validation NLL in {args.patience} validations since step "
                          f"{best['step']} ({best['nll']:.3f}), whose checkpoint is kept", flush=True)
                    break
        elif step == 1 or time.time() - last_print >= PROGRESS_SECONDS:  # a slow fine-tune shows its pace early
            elapsed = time.time() - start
            print(f"step {step}/{args.train_steps}  train_nll {loss.item():.3f}  {sum(step_times) / step:.1f}s a step, "
                  f"{elapsed:.0f}s elapsed, eta {elapsed / step * (args.train_steps - step):.0f}s", flush=True)
            last_print = time.time()
    writer.close()
    if best_tensors:  # --patience: the checkpoint of the lowest validation NLL
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in best_tensors:
                    p.copy_(best_tensors[name])
        metrics = {name: value for name, value in best.items() if name != "step"}
    config = {
        "format": PRIOR_FORMAT,
        "llm": args.llm,
        "llm_init": args.llm_init,
        "seed": args.seed,
        "env": env_name,
        "tasks": demo_meta.get("tasks"),
        "obs_dim": int(arrays["obs"].shape[1]),
        "action_space": action_space,
        "state_tokens": model.state_tokens,
        "state_encoding": args.state_encoding,
        **({"state_fields": [[name, list(indices)] for name, indices in model.state_text.fields]}
           if args.state_encoding == "text" else {}),
        "prompt_template": PROMPT_TEMPLATE,
        "min_std": args.min_std,
        "hidden_size": model.width if args.llm == "none" else hidden_size(model.llm),
        "lora": {"rank": args.lora_rank, "alpha": args.lora_alpha, "target_modules": lora.target_modules and sorted(lora.target_modules)}
        if args.llm != "none" else None,
        **({"tokenizer": args.tokenizer} if args.llm == "none" else {}),
        "demos": str(args.demos),
        "demo_seed": demo_meta.get("seed"),  # Meta-World: the seed that fixed the demonstrations' goal positions
        "train_transitions": int(len(train_rows)),
        "val_transitions": int(len(val_rows)),
        "val_metrics": metrics,
        "val_history": history,
        **({"best_step": best.get("step"), "steps_trained": len(step_times)} if args.patience else {}),
        "val_majority_accuracy": float(baseline) if baseline else None,
        "train_seconds": round(time.time() - start, 1),
        "seconds_per_step": round(sum(step_times) / len(step_times), 3),
        "seconds_per_step_median": round(float(np.median(step_times)), 3),  # without a slow start (compiling)
        "machine": {"device": str(device), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                    "precision": "bf16 autocast" if autocast_bf16 else "fp32"},
        "args": asdict(args),
    }
    save_prior(model, out, config)
    print(f"saved the prior to {out} ({config['train_seconds']:.0f}s of training)")
    return out


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except PriorError as error:
        sys.exit(f"finetune_prior.py: error: {error}")
