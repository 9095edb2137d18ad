"""Multi-turn tool rollouts: trajectory state (pure), generation engines, and the async scheduler."""
