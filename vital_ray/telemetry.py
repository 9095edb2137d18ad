"""Custom metrics on the Ray dashboard / Prometheus endpoint (`ray.util.metrics`), named `ray_vital_ray_*`.

The phase gauge follows SkyRL's pattern: exactly one phase is 1 at a time, so GPU utilisation can be joined
with what the job was doing (`ray_vital_ray_phase{phase="rollout"} == 1`).
"""

from __future__ import annotations

PHASES = ("rollout", "tools", "reward", "advantage", "train", "sync", "checkpoint", "sft")
_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


class Telemetry:
    def __init__(self, job: str = "dgrpo"):
        from ray.util.metrics import Counter, Gauge, Histogram

        tags = ("job",)
        self.phase = Gauge("vital_ray_phase", "1 for the phase the driver is in", tag_keys=("job", "phase"))
        self.tool_latency = Histogram("vital_ray_tool_latency_s", "clip tool call latency",
                                      boundaries=_LATENCY_BUCKETS, tag_keys=tags)
        self.tool_queue = Gauge("vital_ray_tool_queue_depth", "tool calls running or waiting in the pool",
                                tag_keys=tags)
        self.tool_workers = Gauge("vital_ray_tool_workers", "tool pool size (autoscaled)", tag_keys=tags)
        self.frames = Counter("vital_ray_frames_decoded_total", "frames returned by the clip tool", tag_keys=tags)
        self.gauges = {k: Gauge(f"vital_ray_{k}", d, tag_keys=tags) for k, d in {
            "rollout_tokens_per_s": "generated tokens per second in the rollout phase",
            "reward_mean": "mean total reward of the iteration",
            "accuracy": "share of correct answers in the iteration",
            "weight_sync_s": "seconds to push learner weights to the rollout pool",
            "iteration": "last finished iteration",
        }.items()}
        self.job = job
        for g in (self.tool_queue, self.tool_workers, *self.gauges.values()):
            g.set_default_tags({"job": job})
        for m in (self.tool_latency, self.frames):
            m.set_default_tags({"job": job})

    def metrics(self) -> list:
        """Every metric this exports (cluster/grafana_dashboard.json has a panel for each; a test checks)."""
        return [self.phase, self.tool_latency, self.tool_queue, self.tool_workers, self.frames, *self.gauges.values()]

    def set_phase(self, phase: str) -> None:
        for p in PHASES:
            self.phase.set(1.0 if p == phase else 0.0, tags={"job": self.job, "phase": p})

    def tool_call(self, latency_s: float, frames: int, queued: int) -> None:
        self.tool_latency.observe(latency_s)
        if frames:
            self.frames.inc(frames)
        self.tool_queue.set(queued)

    def tool_pool(self, queued: int, workers: int) -> None:
        self.tool_queue.set(queued)
        self.tool_workers.set(workers)

    def iteration(self, step: int, m: dict) -> None:
        keys = {"rollout_tokens_per_s": "rollout/tokens_per_s", "reward_mean": "reward/mean",
                "accuracy": "reward/accuracy", "weight_sync_s": "time/sync"}
        for name, key in keys.items():
            if key in m:
                self.gauges[name].set(float(m[key]))
        self.gauges["iteration"].set(step)
