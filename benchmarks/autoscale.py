"""Tool nodes from Ray's own autoscaler: nodes over time for a burst of clip calls, and for a burst that loses a
tool node (not a test; writes numbers and a PNG, last line `RESULT {json}`).

    .venv/bin/python benchmarks/autoscale.py [--max-tool-nodes 2] [--tool-calls 48] [--no-kill]

A private LocalCluster (cluster/local_cluster.py: head with 1 CPU, the launcher's `tool_worker` type with 1 CPU per
node, idle nodes removed after 2 s) runs cluster/autoscale_probe.py twice: a plain burst, then a burst in which
a tool node's raylet is SIGKILLed after 4 of its calls. Reported per run: time from the burst's start to the first
call served on a tool node, calls/s before that (head only) and after, time from the burst's end to zero tool
nodes, and the timeline: every 0.5 s the tool nodes alive in GCS, the nodes the autoscaler has RAY_RUNNING, pool
workers and outstanding calls. Output: benchmarks/results/autoscale_vm.json and autoscale_timeline.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cluster.autoscale_probe import run_on  # noqa: E402
from cluster.local_cluster import LocalCluster  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
KEYS = ("calls", "ok", "exactly_once", "retried", "served_on_tool_nodes", "tool_nodes_used", "first_call_s",
        "first_tool_call_s", "calls_per_s_head_only", "calls_per_s_with_tool_nodes", "burst_s", "scale_to_zero_s",
        "peak_tool_nodes", "peak_workers", "killed", "calls_after_kill", "served_on_other_tool_nodes_after_kill")


def running_at(instances: dict, t: float) -> int:
    """Tool nodes the autoscaler had in RAY_RUNNING at unix time t (by its own log)."""
    n = 0
    for inst in instances.values():
        state = None
        for ts, status in inst["statuses"]:
            if ts > t:
                break
            state = status
        n += state == "RAY_RUNNING"
    return n


def timeline(out: dict, instances: dict, step_s: float = 0.5) -> list[list[float]]:
    """[t, tool nodes in GCS, tool nodes RAY_RUNNING (autoscaler), pool workers, outstanding calls] every step_s,
    until the probe's last sample or the autoscaler's last status change, whichever is later."""
    rows, samples, i = [], out["timeline"], 0
    last = max([samples[-1][0]] + [ts - out["t0"] for v in instances.values() for ts, _ in v["statuses"]])
    t = 0.0
    while t <= last + step_s:
        while i + 1 < len(samples) and samples[i + 1][0] <= t:
            i += 1
        _, nodes, workers, queued = samples[i]
        rows.append([round(t, 2), nodes, running_at(instances, out["t0"] + t), workers, queued])
        t += step_s
    return rows


def plot(runs: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 3.2 * len(runs)), squeeze=False)
    for ax, (name, run) in zip(axes[:, 0], runs.items()):
        rows = run["timeline"]
        t = [r[0] for r in rows]
        ax.step(t, [r[1] for r in rows], where="post", label="tool nodes alive (GCS)", lw=2)
        ax.step(t, [r[2] for r in rows], where="post", label="tool nodes RAY_RUNNING (autoscaler)", ls="--")
        ax.step(t, [r[3] for r in rows], where="post", label="tool pool workers")
        ax.step(t, [r[4] / 4 for r in rows], where="post", label="outstanding calls / 4", alpha=0.5)
        ax.axvline(run["burst_s"], color="k", ls=":", label="burst ends")
        if run["killed"]:
            ax.axvline(run["killed"]["at_s"], color="r", ls=":", label="tool node raylet SIGKILLed")
        ax.set_title(f"{name}: first call on a tool node {run['first_tool_call_s']} s, "
                     f"0 tool nodes {run['scale_to_zero_s']} s after the burst")
        ax.set_xlabel("seconds since the burst started")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tool-nodes", type=int, default=2)
    ap.add_argument("--tool-calls", type=int, default=48)
    ap.add_argument("--no-kill", action="store_true")
    ap.add_argument("--out", default=os.path.join(RESULTS, "autoscale_vm.json"))
    args = ap.parse_args(argv)
    plans = {"burst": ["--tool-calls", str(args.tool_calls)]}
    if not args.no_kill:
        plans["burst with a tool node killed"] = ["--tool-calls", str(args.tool_calls), "--kill-after", "4"]
    runs = {}
    with LocalCluster(head_cpus=1, max_tool_nodes=args.max_tool_nodes, tool_node_cpus=1, idle_timeout_s=2.0) as c:
        for name, plan in plans.items():
            seen = set(c.instances())
            out = run_on(c, *plan)
            insts = {i: v for i, v in c.tool_instances_terminated().items() if i not in seen}
            run = {k: out[k] for k in KEYS}
            run["tool_nodes_launched"] = len(insts)
            run["tool_nodes_terminated"] = sum(v["statuses"][-1][1] == "TERMINATED" for v in insts.values())
            run["timeline"] = timeline(out, insts)
            runs[name] = run
            print(f"\n{name}: " + json.dumps({k: v for k, v in run.items() if k != "timeline"}), flush=True)
            print(" t(s)  nodes(GCS)  nodes(autoscaler)  workers  outstanding")
            for r in run["timeline"][::2]:
                print(f"{r[0]:5.1f}  {r[1]:10d}  {r[2]:17d}  {r[3]:7d}  {r[4]:11d}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    png = os.path.splitext(args.out)[0].replace("_vm", "") + "_timeline.png"
    plot(runs, png)
    doc = {"machine": f"{platform.node()} ({os.cpu_count()} cores)", "max_tool_nodes": args.max_tool_nodes,
           "runs": runs, "png": os.path.relpath(png, os.path.dirname(RESULTS))}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    summary = {name: {k: run[k] for k in ("first_call_s", "first_tool_call_s", "calls_per_s_head_only",
                                          "calls_per_s_with_tool_nodes", "scale_to_zero_s", "calls", "ok",
                                          "exactly_once", "tool_nodes_launched", "tool_nodes_terminated")}
               for name, run in runs.items()}
    print("RESULT " + json.dumps({"out": args.out, "png": png, **summary}), flush=True)
    return 0 if all(r["ok"] == r["calls"] and r["exactly_once"] for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
