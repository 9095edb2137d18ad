"""Group-relative advantages (docs/method.md §3). One scalar per rollout; the learner broadcasts it over the rollout's
loss-masked tokens.

GRPO (verl): A = (r - mu) / (sigma + eps), sigma the unbiased (N - 1) std; single-sample groups use mu = 0,
sigma = 1. DGRPO as released: A = w * A_grpo with w = 0.5 + 0.5 * clip(threshold - mu, 0, 1), mu the group's mean
TOTAL reward (format + tool + task), so the threshold is tied to the reward scale (docs/method.md §3.1). Scaling rewards
instead, as the paper's text says, would cancel under the std normalisation.
"""

from __future__ import annotations

import torch

from vital_ray.config import AlgoConfig


def _group_mean_std(rewards: torch.Tensor, group_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (mean, std) of its group, in float64; group ids need not be contiguous."""
    if rewards.dim() != 1 or rewards.shape != group_index.shape:
        raise ValueError(f"rewards and group_index must be equal-length 1-D, got {tuple(rewards.shape)} "
                         f"and {tuple(group_index.shape)}")
    r = rewards.to(torch.float64)
    _, inv = torch.unique(group_index, return_inverse=True)
    n_groups = int(inv.max()) + 1 if inv.numel() else 0
    zeros = torch.zeros(n_groups, dtype=torch.float64, device=r.device)
    count = zeros.index_add(0, inv, torch.ones_like(r))
    mean = zeros.index_add(0, inv, r) / count
    sq_dev = zeros.index_add(0, inv, (r - mean[inv]) ** 2)
    std = (sq_dev / (count - 1).clamp(min=1)).sqrt()
    single = count == 1
    mean = torch.where(single, torch.zeros_like(mean), mean)  # verl's placeholder for lone samples
    std = torch.where(single, torch.ones_like(std), std)
    return mean[inv], std[inv]


def grpo_advantages(rewards: torch.Tensor, group_index: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B,) rewards, (B,) long group ids -> (B,) advantages, in the rewards' dtype."""
    mean, std = _group_mean_std(rewards, group_index)
    return ((rewards.to(torch.float64) - mean) / (std + eps)).to(rewards.dtype)


def dgrpo_weights(group_mean: torch.Tensor, threshold: float = 2.0) -> torch.Tensor:
    """w = 0.5 + 0.5 * clip(threshold - mu, 0, 1): full weight for hard groups (mu <= threshold - 1), half for
    groups already at mu >= threshold."""
    return 0.5 + 0.5 * (threshold - group_mean).clamp(0.0, 1.0)


def dgrpo_advantages(rewards: torch.Tensor, group_index: torch.Tensor, threshold: float = 2.0,
                     eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (advantages, per-sample weights w). Lone samples get mu = 0 as in the released code (so w = 1 at the
    default threshold)."""
    mean, std = _group_mean_std(rewards, group_index)
    w = dgrpo_weights(mean, threshold)
    adv = w * (rewards.to(torch.float64) - mean) / (std + eps)
    return adv.to(rewards.dtype), w.to(rewards.dtype)


def compute_advantages(rewards: torch.Tensor, group_index: torch.Tensor,
                       cfg: AlgoConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (advantages, weights) for `cfg.estimator`; GRPO's weights are all ones."""
    if cfg.estimator == "dgrpo":
        return dgrpo_advantages(rewards, group_index, cfg.dgrpo_threshold, cfg.eps)
    if cfg.estimator == "grpo":
        return grpo_advantages(rewards, group_index, cfg.eps), torch.ones_like(rewards)
    raise ValueError(f"unknown advantage estimator {cfg.estimator!r}; expected 'dgrpo' or 'grpo'")
