"""Per-iteration metrics: JSONL on disk, a console line, wandb (offline unless a key is set), reward-curve PNG."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager


class PhaseTimer:
    """`with timer("rollout"):` records the phase's seconds under `time/rollout`."""

    def __init__(self, on_phase=None):
        self.times: dict[str, float] = {}
        self.on_phase = on_phase  # e.g. sets the dashboard's phase gauge

    @contextmanager
    def __call__(self, phase: str):
        if self.on_phase:
            self.on_phase(phase)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[f"time/{phase}"] = self.times.get(f"time/{phase}", 0.0) + time.perf_counter() - t0

    def pop(self) -> dict[str, float]:
        out, self.times = self.times, {}
        return out


class MetricsLogger:
    FILES = ("metrics.jsonl", "samples.jsonl", "data_order.jsonl", "skipped_records.jsonl")

    def __init__(self, out_dir: str, wandb_project: str = "", config: dict | None = None,
                 resume_step: int | None = None):
        """`resume_step`: continuing from a checkpoint at that step; rows logged after it by the interrupted run
        are dropped (they are redone), so every file holds each step exactly once."""
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, "metrics.jsonl")
        for name in self.FILES:
            _truncate(os.path.join(out_dir, name), -1 if resume_step is None else resume_step)
        self.out_dir = out_dir
        self.wandb = None
        if wandb_project:
            import wandb

            os.environ["WANDB_MODE"] = wandb_mode()
            self.wandb = wandb.init(project=wandb_project, dir=out_dir, config=config or {}, resume="allow")

    def log(self, step: int, metrics: dict) -> None:
        row = {"iteration": step, **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)

    def row(self, name: str, step: int, row: dict) -> None:
        """A free-form JSON row in `name` (one of FILES), keyed by step like the metrics."""
        with open(os.path.join(self.out_dir, name), "a") as f:
            f.write(json.dumps({"iteration": step, **row}) + "\n")

    def samples(self, step: int, trajs, n: int = 4) -> None:
        """A few decoded rollouts per iteration (samples.jsonl): what the policy actually writes."""
        with open(os.path.join(self.out_dir, "samples.jsonl"), "a") as f:
            for t in trajs[:n]:
                f.write(json.dumps({"iteration": step, "id": t.sample_id, "task": t.task, "reward": t.reward,
                                    "components": t.reward_components, "stop": t.stop_reason,
                                    "tools": t.tool_events, "response": t.response_text}, default=str) + "\n")

    def history(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def plot(self, keys=None, name: str = "reward_curve.png") -> str | None:
        """`keys` None: the mean reward, accuracy and each reward component (format, tool, task), so a rise that
        is only format shows as such. None where matplotlib (the `plots` extra) is not installed."""
        try:
            import matplotlib
        except ImportError:
            return None

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.history()
        keys = keys or sorted({k for r in rows for k in r if k.startswith("reward/")})
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key in keys:
            xs = [r["iteration"] for r in rows if key in r]
            ax.plot(xs, [r[key] for r in rows if key in r], marker="o", label=key)
        ax.set_xlabel("iteration")
        ax.legend()
        ax.grid(alpha=0.3)
        path = os.path.join(self.out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.wandb is not None:
            import wandb

            self.wandb.finish()
            # finish() can return before the wandb service has written and closed the run file; teardown waits for
            # the service to exit, so the offline run dir is complete once close() returns (seen in CI: header only)
            wandb.teardown()


def wandb_mode() -> str:
    """An explicit WANDB_MODE wins; otherwise online only with a key (WANDB_API_KEY or `wandb login`'s netrc)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    import netrc

    try:
        return "online" if netrc.netrc().authenticators("api.wandb.ai") else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


def _truncate(path: str, max_step: int) -> None:
    """Keep the rows of a step-keyed JSONL file up to `max_step` (-1: none)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        keep = [line for line in f if line.strip() and json.loads(line).get("iteration", 0) <= max_step]
    with open(path, "w") as f:
        f.writelines(keep)


def console_line(step: int, m: dict) -> str:
    phases = " ".join(f"{k[5:]}={v:.1f}s" for k, v in m.items() if k.startswith("time/"))
    return (f"iter {step:3d} | reward {m.get('reward/mean', 0):.3f} acc {m.get('reward/accuracy', 0):.2f} "
            f"tools/rollout {m.get('rollout/tool_calls_per_traj', 0):.2f} "
            f"tool_lat {m.get('tool/latency_mean_s', 0) * 1000:.0f}ms "
            f"tok/s {m.get('rollout/tokens_per_s', 0):.0f} | {phases}")


def trajectory_metrics(trajs) -> dict:
    """Reward, accuracy and tool-use statistics over one iteration's trajectories."""
    if not trajs:
        return {}
    n = len(trajs)
    out = {
        "reward/mean": sum(t.reward for t in trajs) / n,
        "reward/accuracy": sum(t.correct for t in trajs) / n,
        "rollout/tool_calls_per_traj": sum(t.tool_calls for t in trajs) / n,
        "rollout/tool_ok_per_traj": sum(t.tool_ok for t in trajs) / n,
        "rollout/response_len": sum(t.response_len for t in trajs) / n,
        "rollout/gen_tokens": sum(t.gen_tokens for t in trajs),
        "rollout/answered": sum(t.stop_reason == "answer" for t in trajs) / n,
    }
    for key in sorted({k for t in trajs for k in t.reward_components}):
        out[f"reward/{key}"] = sum(t.reward_components.get(key, 0.0) for t in trajs) / n
    return out
