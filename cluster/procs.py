"""Process and port helpers for private throwaway Ray clusters on a shared machine.

Other people's Ray clusters may run on the same machine, so nothing here stops Ray by name (`ray stop`, pkill):
a cluster is found by its own unique temp dir, which every one of its processes carries on its command line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free right now on 127.0.0.1 (all held open together, so no duplicates)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cmdline(pid: int) -> str:
    """A process's command line, '' if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_of(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (a private cluster's temp dir)."""
    return [int(pid) for pid in filter(str.isdigit, os.listdir("/proc")) if marker in cmdline(int(pid))]


def raylet_pids(node_id: str, marker: str) -> list[int]:
    """The raylet of node `node_id` in the cluster whose processes carry `marker` (node ids alone are not unique
    across clusters: the fake provider numbers its nodes the same way in every cluster)."""
    return [p for p in pids_of(marker) if cmdline(p).split(" ")[0].endswith("/raylet")
            and f"--node_id={node_id}" in cmdline(p)]


def kill(pid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def stop_group_and_marked(proc: subprocess.Popen, marker: str, grace_s: float = 3.0) -> list[int]:
    """End a cluster started as `proc` (its own process group): SIGTERM the group, SIGKILL it after a short grace,
    then SIGKILL whatever still carries `marker` (job drivers and nodes that left the group). -> survivors."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(grace_s)  # nothing of a throwaway cluster needs to outlive it: a short grace is enough
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    for pid in pids_of(marker):
        kill(pid)
    deadline = time.time() + 10
    while pids_of(marker) and time.time() < deadline:
        time.sleep(0.2)
    return pids_of(marker)
