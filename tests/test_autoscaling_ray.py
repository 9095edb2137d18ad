"""Ray's own autoscaler (v2) adds and removes tool nodes for the tool pool (cluster/local_cluster.py: real raylets
started by Ray's fake multi-node provider, node types from cluster/launcher.yaml).

A burst of clip calls through a pool that starts with no worker makes the pool ask for tool bundles; the autoscaler
launches tool nodes, calls run there; after the burst the pool drains to zero and the autoscaler terminates the
idle nodes. A tool node's raylet SIGKILLed mid-burst loses no call and duplicates none. The assertions are on
events and counts (results, autoscaler instance states), not on durations.
"""

import time

import pytest
import yaml

from cluster.autoscale_probe import run_on
from cluster.local_cluster import LAUNCHER, LocalCluster, fake_autoscaling_config, node_types_of_kind
from vital_ray.tools.scaling import NODE_KIND_LABEL

pytestmark = pytest.mark.ray

MAX_TOOL_NODES = 2


def tool_instances(cluster: LocalCluster, settle_s: float = 60.0) -> dict[str, dict]:
    """The autoscaler's tool-node instances, once none is between states any more (its log trails the GCS view
    by a reconcile round); `settle_s` is only a safety net."""
    deadline = time.time() + settle_s
    while True:
        insts = {i: inst for i, inst in cluster.instances().items() if inst["type"] in node_types_of_kind("tool")}
        if all(statuses(inst)[-1] == "TERMINATED" for inst in insts.values()) or time.time() > deadline:
            return insts
        time.sleep(0.5)


def statuses(inst: dict) -> list[str]:
    return [s for _, s in inst["statuses"]]


@pytest.fixture(scope="module")
def autoscaling_cluster():
    """Head with 1 CPU (room for 2 of the probe's 0.5-CPU tool workers), up to 2 one-CPU tool nodes, idle nodes
    removed after 2 s."""
    with LocalCluster(head_cpus=1, max_tool_nodes=MAX_TOOL_NODES, tool_node_cpus=1, idle_timeout_s=2.0) as c:
        yield c


def test_autoscaling_config_is_the_launchers_tool_node_type():
    with open(LAUNCHER) as f:
        launcher = yaml.safe_load(f)["available_node_types"]
    cfg = fake_autoscaling_config("127.0.0.1:1", head_cpus=1, max_tool_nodes=3, tool_node_cpus=1,
                                  idle_timeout_s=2.0)
    workers = {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}
    assert list(workers) == ["tool_worker"] == list(node_types_of_kind("tool"))
    t, src = workers["tool_worker"], launcher["tool_worker"]
    assert t["labels"] == src["labels"] == {NODE_KIND_LABEL: "tool"}
    assert t["resources"] == {**src["resources"], "CPU": 1} and t["min_workers"] == src["min_workers"] == 0
    assert t["max_workers"] == min(3, src["max_workers"]) and cfg["idle_timeout_minutes"] * 60 == pytest.approx(2.0)


def test_burst_launches_tool_nodes_that_serve_calls_then_are_terminated(autoscaling_cluster):
    out = run_on(autoscaling_cluster, "--tool-calls", "24")
    assert out["ok"] == out["calls"] == out["results"] and out["exactly_once"], out
    assert out["served_on_tool_nodes"] >= 24 and 1 <= len(out["tool_nodes_used"]) <= MAX_TOOL_NODES
    assert out["scale_to_zero_s"] is not None and out["timeline"][-1][1:3] == [0, 0]  # no tool node, no worker
    insts = tool_instances(autoscaling_cluster)
    launched = {inst["cloud_id"]: statuses(inst) for inst in insts.values()}
    assert 1 <= len(launched) <= MAX_TOOL_NODES, launched
    for node in out["tool_nodes_used"]:  # each node that served calls: launched by the autoscaler, then removed
        seq = launched[node]
        assert seq[0] == "QUEUED" and "RAY_RUNNING" in seq and seq[-1] == "TERMINATED", seq
    assert all(seq[-1] == "TERMINATED" for seq in launched.values()), launched


def test_tool_node_lost_mid_burst_loses_and_duplicates_no_call(autoscaling_cluster):
    before = set(tool_instances(autoscaling_cluster))
    out = run_on(autoscaling_cluster, "--tool-calls", "16", "--kill-after", "4")
    killed = out["killed"]
    assert killed and killed["raylet_pids"], out
    assert out["ok"] == out["calls"] == out["results"] and out["exactly_once"], out
    assert out["calls_after_kill"] > 0 and out["served_on_other_tool_nodes_after_kill"] >= 16  # pool re-formed
    assert out["timeline"][-1][1:3] == [0, 0]
    insts = {i: inst for i, inst in tool_instances(autoscaling_cluster).items() if i not in before}
    by_node = {inst["cloud_id"]: statuses(inst) for inst in insts.values()}
    assert killed["node_id"] in by_node and by_node[killed["node_id"]][-1] == "TERMINATED", by_node
    assert all(seq[-1] == "TERMINATED" for seq in by_node.values()), by_node
