"""Autoscaling probe, run as a driver on a cluster whose autoscaler adds tool nodes (cluster/local_cluster.py, or
a real one): a burst of clip-tool calls through a ToolPool that starts with no worker, then idle until the pool
and the tool nodes are gone. Prints one line `PROBE {json}`.

    python -m cluster.autoscale_probe --tool-calls 24            # RAY_ADDRESS set, token auth on
    python -m cluster.autoscale_probe --kill-after 4             # SIGKILL a tool node's raylet mid-burst

The burst keeps `--concurrency` calls outstanding until `--tool-calls` calls have been served on tool-labelled
nodes (after the kill, when there is one), so it ends on an event, not after a time. Every call asks for its own
window; a result counts only if it is ok and is the clip of that window. `--kill-after N`: once a tool node has
served N calls, its raylet is SIGKILLed (a node lost: its tool workers die with it; Ray restarts them elsewhere
and re-runs their calls). The raylet is found by node id and this cluster's session dir, so the probe must run
on the machine of that node (true for the local fake cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import ray

from actors.tools import ToolPool
from cluster.procs import kill, raylet_pids
from vital_ray.config import ToolConfig, ToolPoolConfig, VideoViewConfig
from vital_ray.tools.scaling import NODE_KIND_LABEL

VIDEO_S = 30.0


def window(i: int) -> tuple[float, float]:
    """Call i's clip: distinct windows, so a result can be matched to the call that asked for it."""
    start = float(i % 24)
    return start, start + 4.0


def tool_nodes() -> set[str]:
    """Alive nodes labelled as tool nodes."""
    return {n["NodeID"] for n in ray.nodes() if n["Alive"] and n.get("Labels", {}).get(NODE_KIND_LABEL) == "tool"}


class Timeline:
    """Samples (seconds since t0, alive tool nodes, pool workers, outstanding calls) every `every_s`."""

    def __init__(self, pool: ToolPool, t0: float, every_s: float = 0.25):
        self.pool, self.t0, self.every_s = pool, t0, every_s
        self.rows: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-timeline", daemon=True)

    def sample(self) -> None:
        self.rows.append([round(time.time() - self.t0, 2), len(tool_nodes()), self.pool.size, self.pool.queued])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def __enter__(self) -> "Timeline":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample()  # the state the run ended in


class Burst:
    """Keeps `concurrency` calls outstanding until `done()`; records (index, meta, finish time) per call."""

    def __init__(self, pool: ToolPool, video: str, concurrency: int, max_calls: int):
        self.pool, self.video, self.concurrency, self.max_calls = pool, video, concurrency, max_calls
        self.results: list[tuple[int, dict, float]] = []
        self.issued = 0
        self.on_result = None  # callback(meta), runs after each result

    async def _one(self, i: int) -> None:
        start, end = window(i)
        meta, _ = await self.pool.call("get_video_clip_frame", {"start_time": start, "end_time": end}, self.video,
                                       VIDEO_S)
        self.results.append((i, meta, time.time()))
        if self.on_result is not None:
            self.on_result(meta)

    async def run(self, done) -> None:
        running: set = set()
        while not done() and self.issued < self.max_calls:
            while len(running) < self.concurrency and self.issued < self.max_calls:
                running.add(asyncio.ensure_future(self._one(self.issued)))
                self.issued += 1
            _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        if running:
            await asyncio.wait(running)


def matches(i: int, meta: dict) -> bool:
    start, end = window(i)
    return bool(meta.get("ok")) and abs(meta["start"] - start) < 1.0 and abs(meta["end"] - end) < 1.0


def run(args) -> dict:
    from vital_ray.data.synthetic import generate_dataset

    with tempfile.TemporaryDirectory(prefix="vital_ray_probe_") as tmp:
        records, _ = generate_dataset(tmp, num_videos=1, duration_s=VIDEO_S, tasks=("tg",), records_per_video=1,
                                      seed=7)
        return probe(args, records[0].video)


def probe(args, video: str) -> dict:
    session_dir = ray._private.worker.global_worker.node.get_session_dir_path()
    pool_cfg = ToolPoolConfig(min_workers=0, max_workers=args.max_workers, num_cpus_per_worker=args.cpus_per_worker,
                              max_concurrency=1, scale_up_queue=2, idle_s_before_shrink=args.idle_s,
                              autoscale_interval_s=0.2)
    # a generous timeout: a call on a killed node waits for its worker's restart, which is not a hang
    pool = ToolPool(ToolConfig(max_frames=4, max_pixels=3136, timeout_s=120.0),
                    VideoViewConfig(max_frames=4, max_pixels=3136), pool_cfg)
    kind: dict[str, str] = {}  # node id -> "tool" | "other" (head)
    served_tool = {"n": 0, "since_kill": 0}
    killed: dict = {}
    per_node: dict[str, int] = {}

    def on_result(meta: dict) -> None:
        node = meta.get("node_id", "")
        if node not in kind:
            kind[node] = "tool" if node in tool_nodes() else "other"
        per_node[node] = per_node.get(node, 0) + 1
        if kind[node] != "tool":
            return
        served_tool["n"] += 1
        if killed:
            served_tool["since_kill"] += node != killed["node_id"]
        elif args.kill_after and per_node[node] >= args.kill_after:
            pids = raylet_pids(node, session_dir)
            for pid in pids:
                kill(pid, signal.SIGKILL)
            killed.update(node_id=node, raylet_pids=pids, at_s=round(time.time() - t0, 2),
                          calls_issued=burst.issued)

    def done() -> bool:
        return (served_tool["since_kill"] if args.kill_after else served_tool["n"]) >= args.tool_calls

    burst = Burst(pool, video, args.concurrency, args.max_calls)
    burst.on_result = on_result
    t0 = time.time()
    with Timeline(pool, t0) as timeline:
        asyncio.run(burst.run(done))
        t_end = time.time()
        deadline = t_end + args.drain_timeout_s
        while (pool.size or pool.draining or tool_nodes()) and time.time() < deadline:
            time.sleep(0.25)
        t_zero = time.time() if not (pool.size or tool_nodes()) else None
    pool.shutdown()
    out = summarize(burst, timeline.rows, kind, killed, t0, t_end, t_zero)
    out["served_on_other_tool_nodes_after_kill"] = served_tool["since_kill"]
    return out


def summarize(burst: Burst, timeline: list, kind: dict, killed: dict, t0: float, t_end: float,
              t_zero: float | None) -> dict:
    results = sorted(burst.results, key=lambda r: r[2])
    indices = [i for i, _, _ in results]
    on_tool = [(i, m, t) for i, m, t in results if kind.get(m.get("node_id")) == "tool"]
    t_first = on_tool[0][2] if on_tool else None
    # rates between results, so the first workers' cold start (in first_call_s) does not count as head throughput
    before = [r for r in results if t_first is None or r[2] < t_first]
    after = [r for r in results if t_first is not None and r[2] >= t_first]
    rate = lambda rows, a, b: round((len(rows) - 1) / (b - a), 2) if len(rows) > 1 and b > a else None  # noqa: E731
    return {
        "calls": burst.issued, "results": len(results), "ok": sum(matches(i, m) for i, m, _ in results),
        "exactly_once": sorted(indices) == list(range(burst.issued)),
        "retried": sum(m.get("attempts", 1) > 1 for _, m, _ in results),
        "served_on_tool_nodes": len(on_tool), "tool_nodes_used": sorted({m["node_id"] for _, m, _ in on_tool}),
        "first_call_s": round(results[0][2] - t0, 2) if results else None,
        "first_tool_call_s": round(t_first - t0, 2) if t_first else None,
        "calls_per_s_head_only": rate(before, before[0][2], before[-1][2]) if before else None,
        "calls_per_s_with_tool_nodes": rate(after, t_first, after[-1][2]) if after else None,
        "burst_s": round(t_end - t0, 2), "scale_to_zero_s": round(t_zero - t_end, 2) if t_zero else None,
        "peak_tool_nodes": max((r[1] for r in timeline), default=0),
        "peak_workers": max((r[2] for r in timeline), default=0),
        "killed": killed,
        "calls_after_kill": sum(t - t0 > killed["at_s"] for _, _, t in results) if killed else 0,
        "t0": t0, "t_end": t_end, "timeline": timeline,
    }


def run_on(cluster, *args: str, timeout_s: float = 400) -> dict:
    """Run this probe as a driver process on `cluster` (a LocalCluster); -> its PROBE json."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-m", "cluster.autoscale_probe", *args], cwd=root, env=cluster.driver_env(),
                       capture_output=True, text=True, timeout=timeout_s)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("PROBE ")]
    if not lines:
        raise RuntimeError(f"probe printed no result (rc {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return json.loads(lines[-1][len("PROBE "):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool-calls", type=int, default=24, help="end the burst once this many ran on tool nodes")
    ap.add_argument("--kill-after", type=int, default=0, help="SIGKILL a tool node's raylet after N of its calls")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-calls", type=int, default=3000, help="safety cap on the burst")
    ap.add_argument("--max-workers", type=int, default=6)
    ap.add_argument("--cpus-per-worker", type=float, default=0.5)
    ap.add_argument("--idle-s", type=float, default=1.0, help="tool_pool.idle_s_before_shrink")
    ap.add_argument("--drain-timeout-s", type=float, default=120.0)
    args = ap.parse_args(argv)
    ray.init(address=os.environ.get("RAY_ADDRESS", "auto"), log_to_driver=False)
    out = run(args)
    print("PROBE " + json.dumps(out), flush=True)
    return 0 if out["ok"] == out["calls"] and out["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
