"""The prior as stage 2 queries it: frozen, LoRA merged, in low precision, each instruction's prompt prefix
computed once and kept (the prefix bank), so that a state costs only its k state tokens; on a GPU, states of one
instruction can share an LLM row behind one copy of its prefix."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lago_prior import LatentActionPrior, attend_states, kv_cache, padded_ids, prompt_keys_values
from lago_utils.llm import PriorError, hidden_size


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
        they are fastest (docs/cost.md); 512 and 1 on a CPU, where sharing rows gains nothing and the
        committed results were made."""
        self.model, self.config, self.device = model, config, device
        gpu = device.type == "cuda"
        self.max_batch = max_batch or (16_384 if gpu else 512)
        self.states_per_row = states_per_row or (64 if gpu else 1)
        self.discrete = model.discrete
        # the LLM's precision (bf16 where native, else fp32); fp32 for the controls without an LLM
        self.dtype = next(model.llm.parameters()).dtype if model.llm is not None else torch.float32
        self.instruction = config.get("instruction")  # the no-goal-words control: this sentence for every goal
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
        if self.instruction is not None:
            texts = [self.instruction] * len(texts)
        if self.model.llm is None:  # no prompt to cache
            return self.model.hidden(obs, texts)
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
