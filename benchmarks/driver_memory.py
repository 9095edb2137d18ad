"""Driver memory over many DGRPO iterations: pixels never pass through the driver, so its RSS stays flat.

    .venv/bin/python benchmarks/driver_memory.py [--iterations 50] [--warmup 5] [--max-slope-mb 0.5]

Runs the real driver (`pipelines.dgrpo`, tiny offline model, synthetic videos, every pool on a local Ray
cluster) in a subprocess and reads `sys/driver_rss_mb`, which the driver logs each iteration. Fits a least-squares
line to the iterations after the warm-up and fails (exit 1) if RSS grows faster than --max-slope-mb per
iteration. Results: benchmarks/results/driver_memory_<host>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "recipe_tiny.yaml")


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--max-slope-mb", type=float, default=0.5, help="allowed RSS growth per iteration (MB)")
    ap.add_argument("--host", default=os.environ.get("BENCH_HOST", "vm"))
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="driver_memory_")
    overrides = [f"trainer.iterations={args.iterations}", "trainer.checkpoint_every=0", f"trainer.output_dir={out}",
                 "rollout.group_size=2", "rollout.max_tokens_per_turn=24", "rollout.max_total_tokens=160"]
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "pipelines.dgrpo", "--config", TINY, *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return 2
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    its = [r["iteration"] for r in rows]
    rss = [r["sys/driver_rss_mb"] for r in rows]
    tail = [(i, m) for i, m in zip(its, rss) if i > args.warmup]
    growth = slope([i for i, _ in tail], [m for _, m in tail])
    clips = sum(r.get("rollout/tool_calls_per_traj", 0) for r in rows)
    result = {"host": args.host, "cpu": platform.machine(), "iterations": len(rows), "warmup": args.warmup,
              "wall_s": time.time() - t0, "rss_mb": rss, "rss_first_mb": rss[0], "rss_after_warmup_mb": tail[0][1],
              "rss_last_mb": rss[-1], "slope_mb_per_iter": growth, "max_slope_mb": args.max_slope_mb,
              "tool_calls_per_traj_sum": clips}
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    path = os.path.join(ROOT, "benchmarks", "results", f"driver_memory_{args.host}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print("iteration  driver RSS MB")
    for i, m in zip(its, rss):
        print(f"{i:9d}  {m:8.1f}")
    print(f"RSS {rss[0]:.1f} -> {tail[0][1]:.1f} (after warm-up) -> {rss[-1]:.1f} MB; slope after warm-up "
          f"{growth:+.3f} MB/iteration (limit {args.max_slope_mb}); {result['wall_s']:.0f} s; saved {path}")
    return 0 if growth <= args.max_slope_mb else 1


if __name__ == "__main__":
    sys.exit(main())
