"""Cluster check, run as a job: the clip tool on the cluster's tool pool, with the dashboard metrics.

    vital-ray submit --follow -- python -m cluster.check [--calls 16] [--linger-s 0]

Joins the cluster, writes a short synthetic mp4 to a temp dir, pushes `--calls` clip-tool calls through an
autoscaling ToolPool (telemetry on), and prints what happened: calls ok, frames, pool size over time, and on which
nodes the tool workers ran (tool-labelled or not). `--metrics-wait-s` waits until the driver's metrics show on its
node's Prometheus export port (what the dashboard reads; export lags the driver by a report interval or more);
`--linger-s` then keeps the driver, and so its gauges, up a while longer. Exit 1 if any call failed or the
metrics did not show.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request

# what the check's telemetry exports (Prometheus names; gauges vanish when the driver exits)
METRICS = ("ray_vital_ray_tool_latency_s_bucket", "ray_vital_ray_frames_decoded_total", "ray_vital_ray_tool_workers",
           "ray_vital_ray_tool_queue_depth", "ray_vital_ray_phase{")


def run(calls: int, max_workers: int) -> dict:
    import ray

    from actors.tools import ToolPool
    from vital_ray.config import ToolConfig, ToolPoolConfig, VideoViewConfig
    from vital_ray.data.synthetic import generate_dataset
    from vital_ray.telemetry import Telemetry
    from vital_ray.tools.scaling import NODE_KIND_LABEL

    records, _ = generate_dataset(tempfile.mkdtemp(prefix="vital_ray_check_"), num_videos=1, duration_s=30.0,
                                  tasks=("tg",), records_per_video=1, seed=5)
    video = records[0].video
    telemetry = Telemetry("check")
    pool = ToolPool(ToolConfig(max_frames=4, max_pixels=3136), VideoViewConfig(max_frames=4, max_pixels=3136),
                    ToolPoolConfig(min_workers=1, max_workers=max_workers, max_concurrency=1, scale_up_queue=2,
                                   idle_s_before_shrink=2.0, autoscale_interval_s=0.5))
    pool.telemetry = telemetry
    telemetry.set_phase("tools")

    async def burst():
        jobs = [pool.call("get_video_clip_frame", {"start_time": float(i % 20), "end_time": float(i % 20 + 4)},
                          video, 30.0) for i in range(calls)]
        return await asyncio.gather(*jobs)

    t0 = time.perf_counter()
    results = asyncio.run(burst())
    seconds = time.perf_counter() - t0
    labels = {n["NodeID"]: n.get("Labels", {}).get(NODE_KIND_LABEL, "") for n in ray.nodes() if n["Alive"]}
    where = ray.get([w.node_id.remote() for w in pool.workers])
    out = {"calls": calls, "ok": sum(m["ok"] for m, _ in results),
           "frames": sum((m.get("shape") or (0,))[0] for m, _ in results), "seconds": round(seconds, 2),
           "peak_workers": max(s for _, s, _ in pool.history),
           "worker_nodes": [f"{n[:8]}({labels.get(n) or 'unlabelled'})" for n in where]}
    pool.shutdown()
    return out


def scrape(host: str, port: int) -> str:
    """A node's Prometheus export page; empty while it does not answer."""
    try:
        return urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def wait_for_metrics(timeout_s: float) -> bool:
    """True once all of METRICS are on this node's export port, polled until `timeout_s`."""
    import ray

    node = next(n for n in ray.nodes() if n["NodeID"] == ray.get_runtime_context().get_node_id())
    deadline = time.time() + timeout_s
    while True:
        text = scrape(node["NodeManagerAddress"], node["MetricsExportPort"])
        if all(m in text for m in METRICS):
            return True
        if time.time() > deadline:
            return False
        time.sleep(1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--max-workers", type=int, default=2)
    ap.add_argument("--metrics-wait-s", type=float, default=0.0, help="0: do not check the metrics export")
    ap.add_argument("--linger-s", type=float, default=0.0)
    args = ap.parse_args(argv)
    import ray

    ray.init(address="auto", log_to_driver=False)
    out = run(args.calls, args.max_workers)
    if args.metrics_wait_s > 0:
        out["metrics"] = "exported" if wait_for_metrics(args.metrics_wait_s) else "missing"
    print("cluster check: " + " ".join(f"{k}={v}" for k, v in out.items()), flush=True)
    time.sleep(args.linger_s)
    return 0 if out["ok"] == out["calls"] and out.get("metrics") != "missing" else 1


if __name__ == "__main__":
    sys.exit(main())
