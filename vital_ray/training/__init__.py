"""Learner-side library: FSDP2 sharding, log-prob scoring, policy/SFT updates, weight buckets, checkpoints."""
