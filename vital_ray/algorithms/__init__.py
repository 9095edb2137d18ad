"""GRPO/DGRPO advantages and the PPO-clip + k3 KL losses, on plain tensors."""

from vital_ray.algorithms.advantages import compute_advantages, dgrpo_advantages, dgrpo_weights, grpo_advantages
from vital_ray.algorithms.losses import (
    broadcast_advantages, entropy_from_logits, kl_k3, masked_mean, policy_loss, token_logprobs, total_loss,
)

__all__ = [
    "grpo_advantages", "dgrpo_advantages", "dgrpo_weights", "compute_advantages",
    "masked_mean", "broadcast_advantages", "policy_loss", "kl_k3", "total_loss", "token_logprobs",
    "entropy_from_logits",
]
