"""GRPO/DGRPO advantages and the PPO-clip + k3 KL losses, on plain tensors."""
