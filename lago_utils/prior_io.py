"""The prior checkpoint format: one directory with the LoRA adapter, the heads (safetensors) and config.json,
written whole or not at all (a temporary directory swapped in atomically), read back with strict checks, refused
where it does not fit the env; and the prior each LaGO script falls back to."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lago_prior import WITHOUT_LLM, ConstantPrior, LatentActionPrior, NoLLMPrior, _head_state
from lago_utils.device import fast_dtype, resolve_device
from lago_utils.frozen_prior import FrozenPrior
from lago_utils.llm import LLM_ALIASES, RANDOM_LLMS, PriorError, base_llm, load_llm, load_tokenizer

PRIOR_FORMAT = "lago-prior-v1"


def save_prior(prior: LatentActionPrior, path: str | os.PathLike, config: dict[str, Any]) -> Path:
    """One directory: peft adapter, heads (safetensors), config.json; written whole or not at all (write_checkpoint)."""
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        if prior.llm is not None:  # the controls without a language model have none
            prior.llm.save_pretrained(tmp / "adapter")
        save_file(_head_state(prior), tmp / "heads.safetensors")
        if config["llm"] in RANDOM_LLMS or config["llm_init"] == "random":
            # random base weights cannot be rebuilt from a source: keep them
            base = prior.llm.get_base_model().state_dict()
            save_file({name.replace(".base_layer", ""): tensor.detach().float().cpu().contiguous()
                       for name, tensor in base.items() if "lora_" not in name}, tmp / "base.safetensors")

    return write_checkpoint(path, config, write)


def write_checkpoint(path: str | os.PathLike, config: dict[str, Any], write: Callable[[Path], None]) -> Path:
    """A checkpoint directory at `path`: the files `write(folder)` puts in a folder, and config.json.

    The checkpoint is written to a temporary directory beside `path`, then swapped in whole, so that
    `path` holds the old checkpoint or the new one, never a part of either, and is never missing
    (where the system has no atomic exchange, a loader recovers the old copy left at `.<name>.old`).
    Temporary directories of saves that were killed are removed here. Of two saves to one path, the
    later swap wins, and neither fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_saves(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-"))
    try:
        write(tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        _swap_in(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after the swap: the old checkpoint
    return path


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(new: Path, path: Path) -> None:
    """Put the directory `new` at `path`; an old directory at `path` ends up in `new`."""
    while True:
        try:
            os.rename(new, path)  # atomic where `path` does not exist yet
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        try:
            if _rename_exchange(new, path):
                return
        except FileNotFoundError:
            continue  # `path` went away meanwhile: rename again
        # no atomic exchange here: move the old checkpoint aside for a moment (read_prior_config recovers it)
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
        os.rename(new, path)
        os.rename(old, new)
        return


def _remove_stale_saves(path: Path) -> None:
    """Remove the temporary directories that killed saves to `path` left (their process is gone)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.removeprefix(f".{path.name}.tmp-").split("-")[0]
        if not (pid.isdigit() and _process_alive(int(pid))):
            shutil.rmtree(tmp, ignore_errors=True)
    old = path.with_name(f".{path.name}.old")
    if old.is_dir() and path.is_dir():
        shutil.rmtree(old, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


CONFIG_KEYS = ("format", "llm", "llm_init", "seed", "env", "obs_dim", "action_space", "state_tokens",
               "prompt_template", "min_std")


SHIPPED_PRIORS = Path(__file__).resolve().parents[1] / "priors"  # priors/<env>__<llm>, exported by benchmarks/export_prior.py


def default_prior_path(env: str, llm: str) -> tuple[str, str]:
    """The prior of `--llm` when no --prior-path is given, and where it comes from: one's own checkpoint at
    finetune_prior.py's usual --out (checkpoints/prior__<env>__<llm>__1) where there is one, else the prior shipped
    in priors/ (smollm2-135m on both benchmarks), else that missing checkpoint path (its loader says what to do);
    PriorError where `llm` is not an alias either."""
    own = f"checkpoints/prior__{env}__{llm}__1"
    shipped = SHIPPED_PRIORS / f"{env}__{llm}"
    known = (*LLM_ALIASES, *WITHOUT_LLM)
    if not (Path(own) / "config.json").is_file() and not {llm, base_llm(llm)} & set(known):
        raise PriorError(f"--llm {llm!r} is not an alias ({', '.join(known)}) and {own} does not exist; "
                         "give the prior's checkpoint with --prior-path")
    if (Path(own) / "config.json").is_file() or not (shipped / "config.json").is_file():
        return own, "your checkpoint"
    return str(shipped), f"shipped with this repository; `python finetune_prior.py --llm {llm} --out {own}` trains your own"


def read_prior_config(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and (old / "config.json").is_file():
        try:  # a save was killed while the checkpoint was moved aside: put it back
            os.rename(old, path)
        except OSError:
            pass
    config_path = path / "config.json"
    if not path.is_dir() or not config_path.is_file():
        raise PriorError(f"{path} is not a LaGO prior checkpoint (no {config_path.name}); train one with finetune_prior.py")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PriorError(f"{config_path} is not valid JSON ({error})") from error
    if not isinstance(config, dict) or config.get("format") != PRIOR_FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise PriorError(f"{path} is not a LaGO prior checkpoint (format {found!r}, expected {PRIOR_FORMAT!r})")
    missing = [key for key in CONFIG_KEYS if key not in config]
    if missing:
        raise PriorError(f"{config_path} lacks {', '.join(missing)}; the checkpoint is incomplete, train it again")
    space = config["action_space"]
    if not (isinstance(space, dict) and (space.get("type") == "discrete" and isinstance(space.get("n"), int)
                                         or space.get("type") == "box" and {"shape", "low", "high"} <= set(space))):
        raise PriorError(f"{config_path} has no valid action_space (expected type discrete with n, or box with "
                         f"shape, low and high), got {space!r}")
    return config


def check_spaces(config: dict[str, Any], observation_space, action_space, path: str | os.PathLike) -> None:
    """Refuse a prior whose action space or observation size does not fit the env's."""
    import gymnasium as gym

    expected = config["action_space"]
    if isinstance(action_space, gym.spaces.Discrete):
        fits = expected["type"] == "discrete" and expected["n"] == int(action_space.n)
        env_desc = f"Discrete({int(action_space.n)})"
    elif isinstance(action_space, gym.spaces.Box):
        fits = expected["type"] == "box" and list(expected["shape"]) == list(action_space.shape)
        env_desc = f"Box{tuple(action_space.shape)}"
    else:
        fits, env_desc = False, type(action_space).__name__
    if not fits:
        prior_desc = f"Discrete({expected['n']})" if expected["type"] == "discrete" else f"Box{tuple(expected['shape'])}"
        raise PriorError(f"the prior {path} was trained for {prior_desc} actions but the env has {env_desc} actions")
    obs_dim = int(np.prod(observation_space.shape))
    if obs_dim != config["obs_dim"]:
        raise PriorError(f"the prior {path} was trained on {config['obs_dim']}-number observations but the env gives {obs_dim}")


def load_prior(
    path: str | os.PathLike,
    env=None,
    *,
    observation_space=None,
    action_space=None,
    device: str = "auto",
    dtype: torch.dtype | None = None,
) -> FrozenPrior:
    """Load a checkpoint for stage 2, refusing one that does not fit `env` (or the given spaces).

    The LoRA adapters are merged into the LLM, which runs in `fast_dtype(device)` (bf16 on GPUs
    and on CPUs with native bf16, else fp32) unless `dtype` says otherwise; the heads stay in fp32.
    """
    from peft import PeftModel
    from safetensors.torch import load_file

    config = read_prior_config(path)
    if env is not None:
        observation_space, action_space = env.observation_space, env.action_space
    if observation_space is not None and action_space is not None:
        check_spaces(config, observation_space, action_space, path)
    path = Path(path)
    torch_device = resolve_device(device)
    for name in ("adapter", "heads.safetensors") if config["llm"] not in WITHOUT_LLM else ("heads.safetensors",):
        if not (path / name).exists():
            raise PriorError(f"the prior {path} lacks {name}; the checkpoint is incomplete, train it again")
    try:
        heads = load_file(path / "heads.safetensors")
    except Exception as error:
        raise PriorError(f"{path / 'heads.safetensors'} is not a readable safetensors file ({error})") from error
    obs_dim, space = config["obs_dim"], config["action_space"]
    if config["llm"] in ("uniform", "marginal"):
        names = ("logits",) if space["type"] == "discrete" else ("mean", "std")
        model = ConstantPrior(space, **{name: heads.get(name, torch.zeros(0)) for name in names})
    elif config["llm"] == "none":
        model = NoLLMPrior(load_tokenizer(config["tokenizer"]), obs_dim, space, config["state_tokens"], np.zeros(obs_dim),
                           np.ones(obs_dim), config["min_std"], config["prompt_template"], config["hidden_size"])
    else:
        base, tokenizer = load_llm(config["llm"], "pretrained" if config["llm_init"] == "pretrained" else "random",
                                   config["seed"])
        try:
            if (path / "base.safetensors").is_file():
                base.load_state_dict(load_file(path / "base.safetensors"))  # strict: every tensor, no other
            llm = PeftModel.from_pretrained(base, path / "adapter").merge_and_unload()
        except Exception as error:
            raise PriorError(f"the prior {path} has an unreadable or mismatched LLM part "
                             f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from error
        text = config.get("state_encoding", "latent") == "text"
        try:
            model = LatentActionPrior(llm, tokenizer, obs_dim, space, config["state_tokens"], np.zeros(obs_dim),
                                      np.ones(obs_dim), config["min_std"], config["prompt_template"],
                                      state_fields=config.get("state_fields") if text else None)
        except (ValueError, TypeError) as error:
            raise PriorError(f"the prior {path} has an unusable state_fields in its config.json ({error})") from error
        if text and (not config.get("state_fields") or model.state_tokens != config["state_tokens"]):
            raise PriorError(f"the prior {path} reads the state as text, but its config.json's state_fields give "
                             f"{model.state_tokens} tokens, not its state_tokens {config['state_tokens']}")
    expected = _head_state(model)
    missing, unexpected = sorted(set(expected) - set(heads)), sorted(set(heads) - set(expected))
    wrong_shape = [name for name in set(expected) & set(heads) if heads[name].shape != expected[name].shape]
    if missing or unexpected or wrong_shape:
        problems = [f"{label} {', '.join(names)}" for label, names in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", sorted(wrong_shape))) if names]
        raise PriorError(f"{path / 'heads.safetensors'} does not fit its config.json ({'; '.join(problems)})")
    model.load_state_dict(heads, strict=False)  # the heads only: the LLM's weights came from the adapter above
    prior = freeze(model, config, torch_device, dtype)
    prior.path = str(path)
    return prior


def prior_dtype(config: dict[str, Any], device: torch.device) -> torch.dtype:
    """The precision a prior's LLM runs in by default: `fast_dtype(device)`; fp32 for the controls without an LLM."""
    return torch.float32 if config["llm"] in WITHOUT_LLM else fast_dtype(device)


def freeze(model: LatentActionPrior, config: dict[str, Any], device: torch.device,
           dtype: torch.dtype | None = None) -> FrozenPrior:
    """Frozen prior for inference: no gradients, the LLM (if any) in `dtype` (default `fast_dtype`), heads in fp32."""
    model.eval().requires_grad_(False).to(device)
    if model.llm is not None:
        model.llm.to(dtype or fast_dtype(device))
    return FrozenPrior(model, config, device)
