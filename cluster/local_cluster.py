"""A private Ray cluster on this machine, optionally with Ray's own autoscaler (v2) adding and removing tool nodes.

The autoscaler runs unmodified; only the node provider is Ray's fake multi-node provider, which starts each
"node" as a real raylet on this machine. Its node types come from `cluster/launcher.yaml` (the node types
labelled `vital-ray/node-kind=tool`, their labels, marker resources and min/max), so the launcher file is what
the autoscaling tests exercise. Only the CPU count per node is set here: fake nodes share this machine's cores.

    with LocalCluster(max_tool_nodes=2) as c:       # head + autoscaler; tool nodes come with demand
        subprocess.run([...], env=c.driver_env())    # a driver joins with RAY_ADDRESS and token auth
        c.instance_transitions()                     # the autoscaler's node timeline, from its log

Why not `ray.cluster_utils.AutoscalingCluster`: it needs a file the pip wheel lacks and runs `ray stop --force`,
which would end every Ray cluster on the machine. Teardown here kills only this cluster's processes (the head's
process group, then whatever carries its unique temp dir: fake nodes, job drivers, workers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import yaml

from cluster.procs import free_ports, stop_group_and_marked
from vital_ray.tools.scaling import NODE_KIND_LABEL

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.yaml")
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
FAKE_HEAD_NODE_ID = "f" * 51 + "00000"  # the provider's fixed id for the head (its nodes count up from it)
FAKE_HEAD_TYPE = "ray.head.default"  # the provider names the head node's type so
BIN = os.path.dirname(sys.executable)
# "2026-12-04 19:58:01,123 INFO instance_manager.py:263 -- Update instance QUEUED->REQUESTED (id=..., type=...,
#  cloud_instance_id=..., ray_id=...): ..."; the first status of a new instance is logged as "New instance X"
_TRANSITION = re.compile(r"^(\S+ \S+,\d+)\s.*?(?:Update instance (\w+)->(\w+)|New instance (\w+)) "
                         r"\(id=([^,]+), type=([^,]+), cloud_instance_id=([^,]*), ray_id=([^)]*)\)")


def node_types_of_kind(kind: str, launcher: str = LAUNCHER) -> dict[str, dict]:
    """The launcher's node types whose label `vital-ray/node-kind` is `kind`."""
    with open(launcher) as f:
        cfg = yaml.safe_load(f)
    return {name: t for name, t in cfg["available_node_types"].items()
            if (t.get("labels") or {}).get(NODE_KIND_LABEL) == kind}


def fake_autoscaling_config(gcs_address: str, head_cpus: int, max_tool_nodes: int, tool_node_cpus: int,
                            idle_timeout_s: float, launcher: str = LAUNCHER) -> dict:
    """The autoscaling config for the fake provider: a head plus the launcher's tool node types (labels, marker
    resources, min/max: the launcher's; max capped at `max_tool_nodes`; `tool_node_cpus` CPUs each)."""
    with open(launcher) as f:
        base = yaml.safe_load(f)
    types = {FAKE_HEAD_TYPE: {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0}}
    for name, t in node_types_of_kind("tool", launcher).items():
        types[name] = {"node_config": {}, "labels": dict(t["labels"]),
                       "resources": {**t["resources"], "CPU": tool_node_cpus},
                       "min_workers": t.get("min_workers", 0),
                       "max_workers": min(t.get("max_workers", max_tool_nodes), max_tool_nodes)}
    if len(types) == 1:
        raise ValueError(f"{launcher}: no node type labelled {NODE_KIND_LABEL}=tool")
    return {
        "cluster_name": base["cluster_name"] + "-local",
        "max_workers": sum(t["max_workers"] for t in types.values()),
        "upscaling_speed": base.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": idle_timeout_s / 60.0,
        # launch_multiple + head_node_id: what autoscaler v2 needs from this provider (one node per launch request,
        # and the head recognised as the instance it already runs on)
        "provider": {"type": "external", "module": FAKE_PROVIDER, "gcs_address": gcs_address,
                     "launch_multiple": True, "head_node_id": FAKE_HEAD_NODE_ID,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "head_node_type": FAKE_HEAD_TYPE,
        "available_node_types": types,
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [], "initialization_commands": [],
        "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


class LocalCluster:
    """A private head (`ray start --head --block`) on free ports in its own temp dir and process group; with
    `max_tool_nodes > 0`, the autoscaler (v2) launches the launcher's tool nodes on demand and terminates them after
    `idle_timeout_s` idle."""

    def __init__(self, *, head_cpus: int = 2, max_tool_nodes: int = 2, tool_node_cpus: int = 1,
                 idle_timeout_s: float = 3.0, head_labels: dict | None = None, env: dict | None = None,
                 launcher: str = LAUNCHER):
        self.head_cpus, self.max_tool_nodes, self.tool_node_cpus = head_cpus, max_tool_nodes, tool_node_cpus
        self.idle_timeout_s, self.head_labels, self.extra_env = idle_timeout_s, head_labels, env
        self.launcher = launcher
        self.proc: subprocess.Popen | None = None
        self.temp_dir = ""
        (self.gcs_port, self.dashboard_port, self.client_port, self.metrics_port, agent_http, agent_grpc, env_agent,
         nm, om) = free_ports(9)
        self._ports = {"--dashboard-agent-listen-port": agent_http, "--dashboard-agent-grpc-port": agent_grpc,
                       "--runtime-env-agent-port": env_agent, "--node-manager-port": nm, "--object-manager-port": om}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def monitor_log(self) -> str:
        return os.path.join(self.temp_dir, "session_latest", "logs", "monitor.log")

    def _command(self, config_path: str | None) -> list[str]:
        cmd = [os.path.join(BIN, "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--num-cpus", str(self.head_cpus), "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.1",
               "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(self.client_port),
               "--metrics-export-port", str(self.metrics_port), "--temp-dir", self.temp_dir, "--disable-usage-stats"]
        for flag, port in self._ports.items():
            cmd += [flag, str(port)]
        if self.head_labels:
            cmd += ["--labels", ",".join(f"{k}={v}" for k, v in self.head_labels.items())]
        if config_path:
            cmd += ["--autoscaling-config", config_path]
        return cmd

    def _env(self) -> dict:
        env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"], **(self.extra_env or {})}
        env.pop("PYTHONPATH", None)  # jobs must get our code from their uploaded working dir, not this checkout
        env.pop("RAY_ADDRESS", None)
        if self.max_tool_nodes:
            # the head's node id and cloud instance id must match what the provider reports for the head;
            # a 1 s reconcile loop (default 5 s) keeps the tests short
            env.update(RAY_FAKE_CLUSTER="1", RAY_enable_autoscaler_v2="1", RAY_CLOUD_INSTANCE_ID=FAKE_HEAD_NODE_ID,
                       RAY_OVERRIDE_NODE_ID_FOR_TESTING=FAKE_HEAD_NODE_ID, AUTOSCALER_UPDATE_INTERVAL_S="1")
        return env

    def start(self, timeout_s: float = 180) -> "LocalCluster":
        self.temp_dir = tempfile.mkdtemp(prefix="vrc", dir="/tmp")  # short: Ray's socket paths live under it
        config_path = None
        if self.max_tool_nodes:
            config_path = os.path.join(self.temp_dir, "autoscaling.json")
            with open(config_path, "w") as f:
                json.dump(fake_autoscaling_config(self.address, self.head_cpus, self.max_tool_nodes,
                                                  self.tool_node_cpus, self.idle_timeout_s, self.launcher), f)
        log = open(os.path.join(self.temp_dir, "head.log"), "w")
        self.proc = subprocess.Popen(self._command(config_path), env=self._env(), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_up(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_up(self, timeout_s: float) -> None:
        from cluster.submit import client

        deadline = time.time() + timeout_s
        while True:
            try:
                client(self.dashboard_url).list_jobs()
                if not self.max_tool_nodes or os.path.exists(self.monitor_log):
                    return
            except Exception:  # noqa: BLE001 - the dashboard is still starting
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"head did not come up: {self.head_log()[-3000:]}")
            time.sleep(1)

    def head_log(self) -> str:
        with open(os.path.join(self.temp_dir, "head.log"), errors="replace") as f:
            return f.read()

    def driver_env(self, **extra: str) -> dict:
        """Environment for a driver process joining this cluster (Ray 2.60 token auth: the head wrote the token)."""
        env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"], "RAY_ADDRESS": self.address,
               "RAY_AUTH_MODE": "token", **extra}
        return env

    def instance_transitions(self) -> list[dict]:
        """The autoscaler's instance status changes, oldest first:
        [{"t": unix time, "id", "type", "cloud_id", "from", "to"}] (`from` is None for a new instance; the fake
        provider's cloud instance id is the node's Ray node id)."""
        if not os.path.exists(self.monitor_log):
            return []
        out = []
        with open(self.monitor_log, errors="replace") as f:
            for line in f:
                m = _TRANSITION.match(line)
                if m:
                    stamp, old, new, first, iid, itype, cloud_id, _ = m.groups()
                    out.append({"t": datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), "id": iid,
                                "type": itype, "cloud_id": cloud_id, "from": old, "to": new or first})
        return out

    def instances(self) -> dict[str, dict]:
        """The autoscaler's instances: {instance id: {"type", "cloud_id", "statuses": [(unix time, status), ...]}}."""
        out: dict[str, dict] = {}
        for e in self.instance_transitions():
            inst = out.setdefault(e["id"], {"type": e["type"], "cloud_id": "", "statuses": []})
            inst["cloud_id"] = inst["cloud_id"] or e["cloud_id"]
            inst["statuses"].append((e["t"], e["to"]))
        return out

    def actor_nodes(self, class_name: str) -> dict[str, str]:
        """{actor id: node id} of this cluster's alive actors of `class_name` (the dashboard's state API)."""
        import urllib.parse
        import urllib.request

        from cluster.submit import auth_headers

        query = urllib.parse.urlencode({"limit": 10000, "filter_keys": ["class_name", "state"], "filter_predicates":
                                        ["=", "="], "filter_values": [class_name, "ALIVE"]}, doseq=True)
        req = urllib.request.Request(f"{self.dashboard_url}/api/v0/actors?{query}", headers=auth_headers())
        with urllib.request.urlopen(req, timeout=30) as r:
            rows = json.load(r)["data"]["result"]["result"]
        return {a["actor_id"]: a["node_id"] for a in rows}

    def tool_instances_terminated(self, timeout_s: float = 60.0) -> dict[str, dict]:
        """The tool-node instances (`instances()`), once every one is TERMINATED: the autoscaler's log trails the
        GCS view by a reconcile round or two. `timeout_s` is a safety net; the caller checks the states."""
        tool_types = set(node_types_of_kind("tool", self.launcher))
        deadline = time.time() + timeout_s
        while True:
            insts = {i: v for i, v in self.instances().items() if v["type"] in tool_types}
            if all(v["statuses"][-1][1] == "TERMINATED" for v in insts.values()) or time.time() > deadline:
                return insts
            time.sleep(0.5)

    def stop(self) -> None:
        """Kill exactly this cluster's processes and remove its temp dir; raises if any survived."""
        survivors = stop_group_and_marked(self.proc, self.temp_dir) if self.proc else []
        if survivors:
            raise RuntimeError(f"processes of the local cluster survived teardown: {survivors}")
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
