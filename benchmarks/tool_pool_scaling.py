"""Tool-pool autoscaling on a local Ray cluster (not a test; prints a timeline, medians and ratios).

    .venv/bin/python benchmarks/tool_pool_scaling.py [--calls 96] [--max-workers 3] [--repeats 3] [--num-cpus 4]

A burst of real clip-tool calls (decord on a synthetic 320x240 H.264 video, 16-frame clips) goes through three
pools side by side: fixed at min_workers (1), autoscaling 1..max, and fixed at max (the ceiling). For each we
print calls/s (median of --repeats bursts); for the autoscaling pool also the worker count and queue depth over
time, and how long after the burst it takes to shrink back to 1 worker (idle_s_before_shrink=2). Each worker
runs one call at a time (max_concurrency=1), so throughput can only grow with workers, up to the free cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tqdm import tqdm  # noqa: E402

from vital_ray.config import ToolConfig, ToolPoolConfig, VideoViewConfig  # noqa: E402
from vital_ray.data.synthetic import generate_dataset  # noqa: E402

TOOL = ToolConfig(max_frames=16, max_pixels=64 * 28 * 28)
VIEW = VideoViewConfig()


def burst(pool, video: str, duration: float, calls: int, desc: str) -> float:
    """-> seconds for `calls` concurrent clip calls (all queued at once)."""
    bar = tqdm(total=calls, desc=desc, leave=False)

    async def one(i: int):
        start = (i * 7.3) % (duration - 10)
        meta, _ = await pool.call("get_video_clip_frame", {"start_time": start, "end_time": start + 8}, video,
                                  duration)
        bar.update(1)
        assert meta["ok"], meta.get("error")

    async def go():
        await asyncio.gather(*(one(i) for i in range(calls)))

    t0 = time.perf_counter()
    asyncio.run(go())
    bar.close()
    return time.perf_counter() - t0


def timeline(history, t0: float, step: float = 0.5) -> list[tuple[float, int, int]]:
    """(t, workers, queued) sampled every `step` s from the pool's change log."""
    out, i, rows = [], 0, list(history)
    t_end = rows[-1][0] if rows else t0
    t = t0
    while t <= t_end + step:
        while i + 1 < len(rows) and rows[i + 1][0] <= t:
            i += 1
        if rows and rows[i][0] <= t:
            out.append((round(t - t0, 2), rows[i][1], rows[i][2]))
        t += step
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=96)
    ap.add_argument("--max-workers", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local cluster")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    import ray

    from actors.tools import ToolPool

    records, _ = generate_dataset(os.path.expanduser("~/.cache/vital_ray/bench_pool"), num_videos=1,
                                  duration_s=120.0, tasks=("tg",), records_per_video=1, seed=7)
    video, duration = records[0].video, records[0].duration
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    base = dict(num_cpus_per_worker=1.0, max_concurrency=1, scale_up_queue=2, autoscale_interval_s=0.25,
                request_resources=True)
    pools = {"fixed_min": ToolPoolConfig(min_workers=1, max_workers=1, **base),
             "autoscale": ToolPoolConfig(min_workers=1, max_workers=args.max_workers, idle_s_before_shrink=2.0,
                                         **base),
             "fixed_max": ToolPoolConfig(min_workers=args.max_workers, max_workers=args.max_workers, **base)}
    result = {"host": socket.gethostname(), "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "calls": args.calls, "repeats": args.repeats, "max_workers": args.max_workers,
              "clip_frames": TOOL.max_frames, "pools": {}}
    for name, cfg in pools.items():
        pool = ToolPool(TOOL, VIEW, cfg)
        burst(pool, video, duration, 2 * cfg.min_workers, f"{name} warm-up")
        times, shrink_s, tl = [], [], []
        for r in range(args.repeats):
            if name == "autoscale":  # start each burst from the minimum
                while pool.size > cfg.min_workers:
                    time.sleep(0.2)
            t0 = time.time()
            times.append(burst(pool, video, duration, args.calls, f"{name} burst {r + 1}"))
            if name == "autoscale":
                t_end = time.time()
                while pool.size > cfg.min_workers and time.time() - t_end < 60:
                    time.sleep(0.1)
                shrink_s.append(time.time() - t_end)
                tl = timeline([h for h in pool.history if h[0] >= t0], t0)
        pool.shutdown()
        med = statistics.median(times)
        row = {"seconds_median": med, "calls_per_s": args.calls / med, "seconds": times}
        if name == "autoscale":
            row |= {"peak_workers": max(w for _, w, _ in tl), "shrink_to_min_s_median": statistics.median(shrink_s),
                    "timeline_last_burst": tl}
            print("autoscaling pool, last burst (t s, workers, calls queued or running):")
            for t, w, q in tl:
                print(f"  t={t:5.1f}s workers={w} queued={q:3d} " + "#" * w)
        result["pools"][name] = row
    ray.shutdown()
    p = result["pools"]
    result["autoscale_over_fixed_min"] = p["autoscale"]["calls_per_s"] / p["fixed_min"]["calls_per_s"]
    result["fixed_max_over_fixed_min"] = p["fixed_max"]["calls_per_s"] / p["fixed_min"]["calls_per_s"]
    print(f"\n{'pool':>10} {'median s':>9} {'calls/s':>8}")
    for name, row in p.items():
        print(f"{name:>10} {row['seconds_median']:>9.2f} {row['calls_per_s']:>8.2f}")
    print(f"autoscale / fixed_min throughput: {result['autoscale_over_fixed_min']:.2f}x "
          f"(fixed_max / fixed_min: {result['fixed_max_over_fixed_min']:.2f}x); peak workers "
          f"{p['autoscale']['peak_workers']}, back to 1 worker {p['autoscale']['shrink_to_min_s_median']:.1f} s "
          f"after the burst (idle_s_before_shrink=2)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"tool_pool_scaling_{socket.gethostname()}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
