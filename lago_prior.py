"""The LaGO prior: task text tokens, then k latent state tokens projected from the raw observation, through an LLM
(LoRA-adapted) whose last hidden state feeds an action head: categorical logits (Discrete) or a diagonal Gaussian
(Box). Also the attention helpers of its shared-prompt forward, which the frozen prior's prefix cache reuses.
finetune_prior.py trains it; lago_utils.prior_io saves and loads it."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lago_utils.llm import hidden_size

PROMPT_TEMPLATE = "Task: {text}\nState:"
STATE_ENCODINGS = ("latent", "text")  # the state as k learned latent tokens, or written into the prompt as numbers
# the `llm` of the control priors that have no language model: `none` (NoLLMPrior), `uniform` and `marginal`
# (ConstantPrior); they run in fp32 on every machine
WITHOUT_LLM = ("none", "uniform", "marginal")


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
        state_fields: Sequence[tuple[str, Sequence[int]]] | None = None,
    ):
        """`state_fields` (name, observation indices), e.g. ("red", (0, 1)): the state is written into the prompt
        after the task as `red (+0.12, -0.30), ...` (StateText) in place of the latent state tokens, and
        `state_tokens` is ignored; None: `state_tokens` latent tokens projected from the observation."""
        super().__init__()
        self.llm, self.tokenizer = llm, tokenizer
        self.state_text = StateText(tokenizer, state_fields, obs_dim) if state_fields else None
        self._add_state_projection_and_head(hidden_size(llm), obs_dim, action_space, state_tokens, obs_mean, obs_std,
                                            min_std, prompt_template)
        # samples that share a prompt may share its forward only where no dropout draws a mask per sample
        self._dropout_free = not getattr(llm.config, "attention_dropout", 0.0) and all(
            module.p == 0 for module in llm.modules() if isinstance(module, nn.Dropout))
        self.compiled = False

    def _add_state_projection_and_head(self, d_model: int, obs_dim: int, action_space: dict[str, Any], state_tokens: int,
                                       obs_mean: np.ndarray, obs_std: np.ndarray, min_std: float, prompt_template: str):
        self.obs_dim, self.action_space, self.state_tokens = obs_dim, action_space, state_tokens
        self.min_std, self.prompt_template = min_std, prompt_template
        self.discrete = action_space["type"] == "discrete"
        head_out = action_space["n"] if self.discrete else 2 * int(np.prod(action_space["shape"]))
        if getattr(self, "state_text", None) is not None:  # the state as words: its tokens, no projection
            self.state_tokens = self.state_text.length
        else:  # the state projection of KALM: Linear(obs, 512) - ReLU - Linear(512, k * d_model)
            self.state_projection = nn.Sequential(
                nn.Linear(obs_dim, 512), nn.ReLU(), nn.Linear(512, state_tokens * d_model)
            )
        self.action_head = nn.Linear(d_model, head_out)
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32))
        self._token_ids: dict[str, list[int]] = {}

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
        """(B, obs_dim) raw observations -> (B, k, d_model) state tokens: latent, or the state text's embeddings."""
        if self.state_text is not None:
            return self.llm.get_input_embeddings()(self.state_text.ids(obs))
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


class StateText:
    """The observation as words after the task: ` red (+0.12, -0.30), blue (...)`, one field per (name, observation
    indices), each number rounded to two decimals with its sign (clipped to +-9.99). Every number is written with the
    same five tokens (sign, digit, point, digit, digit), so that every state has the same `length` of tokens and a
    batch needs no padding; the ids are filled in by array arithmetic, with no call to the tokenizer per state."""

    def __init__(self, tokenizer: Any, fields: Sequence[tuple[str, Sequence[int]]], obs_dim: int):
        self.fields = [(str(name), [int(i) for i in indices]) for name, indices in fields]
        for name, indices in self.fields:
            if not indices or not all(0 <= i < obs_dim for i in indices):
                raise ValueError(f"state field {name!r}: observation indices {indices} are not within 0..{obs_dim - 1}")

        def token(text: str) -> int:
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            if len(ids) != 1:
                raise ValueError(f"the tokenizer writes {text!r} as {len(ids)} tokens; the text state encoding needs "
                                 "one token for each digit, sign and point")
            return ids[0]

        self.digit_ids = torch.tensor([token(str(d)) for d in range(10)])
        self.sign_ids = torch.tensor([token("+"), token("-")])
        point = token(".")

        def words(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

        template: list[int] = []  # the state's token ids, -1 where a number's five tokens go
        self.number_columns: list[int] = []  # the observation index of each number, in order
        for f, (name, indices) in enumerate(self.fields):
            template += words((", " if f else " ") + name + (" (" if len(indices) > 1 else " "))
            for i, index in enumerate(indices):
                template += (words(", ") if i else []) + [-1, -1, point, -1, -1]
                self.number_columns.append(index)
            template += words(")") if len(indices) > 1 else []
        self.template = torch.tensor(template)
        self.length = len(template)

    def hundredths(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim) observations -> (B, numbers) each number of the text in hundredths, within +-999."""
        return torch.round(obs.float()[:, self.number_columns] * 100).clamp(-999, 999).long()

    def text(self, obs: Sequence[float]) -> str:
        """The words of one observation (what `ids` encodes)."""
        numbers = iter(self.hundredths(torch.as_tensor(np.asarray(obs, dtype=np.float32))[None])[0].tolist())
        parts = []
        for name, indices in self.fields:
            values = ", ".join(f"{'-' if n < 0 else '+'}{abs(n) // 100}.{abs(n) % 100:02d}"
                               for n in (next(numbers) for _ in indices))
            parts.append(f"{name} ({values})" if len(indices) > 1 else f"{name} {values}")
        return " " + ", ".join(parts)

    def ids(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, obs_dim) observations -> (B, length) token ids of their state text."""
        device = obs.device
        numbers = self.hundredths(obs)
        size = numbers.abs()
        tokens = torch.stack([self.sign_ids.to(device)[(numbers < 0).long()], self.digit_ids.to(device)[size // 100],
                              self.digit_ids.to(device)[size // 10 % 10], self.digit_ids.to(device)[size % 10]], dim=-1)
        ids = self.template.to(device).repeat(len(obs), 1)
        ids[:, self.template.to(device) < 0] = tokens.reshape(len(obs), -1)
        return ids


class NoLLMPrior(LatentActionPrior):
    """The control without a language model (`finetune_prior.py --llm none`): the instruction's tokens (the same
    tokenizer as an LLM's) as learned embeddings, mean-pooled, joined with the same latent state tokens by one hidden
    layer, then the same action head. No pretrained knowledge, no attention; the same loss, data and steps."""

    def __init__(self, tokenizer: Any, obs_dim: int, action_space: dict[str, Any], state_tokens: int,
                 obs_mean: np.ndarray, obs_std: np.ndarray, min_std: float = 0.05,
                 prompt_template: str = PROMPT_TEMPLATE, width: int = 576):
        nn.Module.__init__(self)
        self.llm, self.tokenizer, self.width, self.compiled, self.state_text = None, tokenizer, width, False, None
        self.token_embeddings = nn.Embedding(len(tokenizer), width)
        self._add_state_projection_and_head(width, obs_dim, action_space, state_tokens, obs_mean, obs_std, min_std,
                                            prompt_template)
        self.joint = nn.Sequential(nn.Linear((1 + state_tokens) * width, width), nn.ReLU())

    def hidden(self, obs: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        ids, lengths = padded_ids([self.prompt_ids(text) for text in texts], left=False)
        ids, lengths = ids.to(obs.device), lengths.to(obs.device)
        real = (torch.arange(ids.shape[1], device=obs.device) < lengths[:, None]).float()[..., None]
        words = (self.token_embeddings(ids) * real).sum(1) / lengths[:, None]  # mean over the instruction's tokens
        states = self.state_projection((obs.float() - self.obs_mean) / self.obs_std)  # the k state tokens, side by side
        return self.joint(torch.cat([words, states], dim=-1))


class ConstantPrior(nn.Module):
    """The controls that ignore both the state and the instruction: one action distribution for every state. Discrete:
    `logits` (uniform: all equal; marginal: the log frequencies of the demonstrated actions); Box: the diagonal
    Gaussian (`mean`, `std`) fitted to the demonstrated actions."""

    llm = None

    def __init__(self, action_space: dict[str, Any], **params: torch.Tensor):
        super().__init__()
        self.action_space, self.discrete, self.state_tokens = action_space, action_space["type"] == "discrete", 0
        for name, value in params.items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))

    def prompt_ids(self, text: str) -> list[int]:
        return []

    def hidden(self, obs: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return torch.zeros(len(texts), 0, device=obs.device)

    def distribution_params(self, hidden: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.discrete:
            return self.logits.expand(len(hidden), -1)
        return self.mean.expand(len(hidden), -1), self.std.expand(len(hidden), -1)


def _head_state(prior: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the prior but the LLM's (its LoRA adapter is saved apart)."""
    return {
        name: tensor.detach().float().cpu().contiguous()
        for name, tensor in prior.state_dict().items()
        if not name.startswith("llm.")
    }


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
