"""Ray actors and pools: rollout (generation), video tools, reward scoring, FSDP2 learner."""
