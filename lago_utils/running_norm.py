"""Observation normalisation kept inside the agent, so that a saved policy carries its statistics and evaluation
uses the training ones: gymnasium's NormalizeObservation (which CleanRL's ppo_continuous_action.py wraps the envs
in) as a module."""

from __future__ import annotations

import torch
import torch.nn as nn


class RunningNorm(nn.Module):
    """Observation normalisation (gymnasium's NormalizeObservation) kept in the agent, clipped to +-10."""

    def __init__(self, shape: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        x = x.double()
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + batch_count
        self.mean += delta * batch_count / total
        self.var = (self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-10, 10).float()
