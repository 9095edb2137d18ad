"""Group-relative advantages. DGRPO follows the released code (spec 4.2): the std-normalised advantage is scaled
by w(mu) = 0.5 + 0.5 * clip(threshold - mu, 0, 1), where mu is the group's mean TOTAL reward."""

from __future__ import annotations

import torch

from vital_ray.config import AlgoConfig


def _group_stats(rewards: torch.Tensor, group_index: torch.Tensor):
    """Per-sample group mean and unbiased std; single-sample groups get mean 0, std 1 (verl's convention)."""
    n_groups = int(group_index.max()) + 1 if group_index.numel() else 0
    r = rewards.double()
    count = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, torch.ones_like(r))
    total = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, r)
    mean = total / count.clamp(min=1)
    sq = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, (r - mean[group_index]) ** 2)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    single = count <= 1
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single, torch.ones_like(std), std)
    return mean[group_index], std[group_index]


def grpo_advantages(rewards: torch.Tensor, group_index: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean, std = _group_stats(rewards, group_index)
    return ((rewards.double() - mean) / (std + eps)).to(rewards.dtype)


def dgrpo_weights(rewards: torch.Tensor, group_index: torch.Tensor, threshold: float = 2.0) -> torch.Tensor:
    n_groups = int(group_index.max()) + 1
    count = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, torch.ones_like(rewards.double()))
    mean = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, rewards.double()) / count
    w = 0.5 + 0.5 * (threshold - mean).clamp(0.0, 1.0)
    return w[group_index].to(rewards.dtype)


def dgrpo_advantages(rewards: torch.Tensor, group_index: torch.Tensor, threshold: float = 2.0,
                     eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (advantages, per-sample weights w)."""
    w = dgrpo_weights(rewards, group_index, threshold)
    return w * grpo_advantages(rewards, group_index, eps), w


def compute_advantages(rewards: torch.Tensor, group_index: torch.Tensor,
                       cfg: AlgoConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (advantages, weights); GRPO's weights are all ones."""
    if cfg.estimator == "dgrpo":
        return dgrpo_advantages(rewards, group_index, cfg.dgrpo_threshold, cfg.eps)
    return grpo_advantages(rewards, group_index, cfg.eps), torch.ones_like(rewards)
