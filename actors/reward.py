"""Reward pool: CPU actors scoring decoded responses with the pure reward functions."""

from __future__ import annotations

import ray

from vital_ray.config import RewardConfig


@ray.remote(max_restarts=-1, max_task_retries=-1)
class RewardWorker:
    def __init__(self, cfg: RewardConfig):
        self.cfg = cfg

    def score(self, items: list[tuple]) -> list:
        """items: (task, response_text, solution, n_successful_tool_calls)."""
        from vital_ray.rewards import score_response

        return [score_response(task, text, sol, n_ok, self.cfg) for task, text, sol, n_ok in items]


class RewardPool:
    def __init__(self, cfg: RewardConfig, num_workers: int = 1, num_cpus: float = 0.1):
        self.workers = [RewardWorker.options(num_cpus=num_cpus).remote(cfg) for _ in range(num_workers)]

    def score(self, items: list[tuple]) -> list:
        chunks = [items[i::len(self.workers)] for i in range(len(self.workers))]
        parts = ray.get([w.score.remote(c) for w, c in zip(self.workers, chunks) if c])
        out = [None] * len(items)
        for k, part in enumerate(parts):
            out[k::len(self.workers)] = part
        return out

    def shutdown(self):
        for w in self.workers:
            ray.kill(w)
