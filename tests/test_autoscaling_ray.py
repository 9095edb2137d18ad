"""Ray's own autoscaler (v2) adds and removes tool nodes for the tool pool (cluster/local_cluster.py: real raylets
started by Ray's fake multi-node provider, node types from cluster/launcher.yaml).

A burst of clip calls through a pool that starts with no worker makes the pool ask for tool bundles; the autoscaler
launches tool nodes, calls run there; after the burst the pool drains to zero and the autoscaler terminates the
idle nodes. A tool node's raylet SIGKILLed mid-burst loses no call and duplicates none. The assertions are on
events and counts (results, autoscaler instance states), not on durations.
"""

import json
import os
import signal
import time

import pytest
import yaml

from cluster.autoscale_probe import run_on
from cluster.local_cluster import FAKE_HEAD_NODE_ID, LAUNCHER, LocalCluster, fake_autoscaling_config, node_types_of_kind
from cluster.procs import kill, raylet_pids
from cluster.submit import client, main as submit_main, wait
from tests.test_cluster_jobs import tiny_dgrpo_overrides
from vital_ray.tools.scaling import NODE_KIND_LABEL

pytestmark = pytest.mark.ray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_TOOL_NODES = 2
# a 1-CPU head that the tiny DGRPO job's rollout, learner (0.45 CPU each) and reward (0.1) workers fill exactly
FILL_HEAD = ["rollout.num_cpus_per_worker=0.45", "learner.num_cpus_per_worker=0.45"]


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
    insts = autoscaling_cluster.tool_instances_terminated()
    launched = {inst["cloud_id"]: statuses(inst) for inst in insts.values()}
    assert 1 <= len(launched) <= MAX_TOOL_NODES, launched
    for node in out["tool_nodes_used"]:  # each node that served calls: launched by the autoscaler, then removed
        seq = launched[node]
        assert seq[0] == "QUEUED" and "RAY_RUNNING" in seq and seq[-1] == "TERMINATED", seq
    assert all(seq[-1] == "TERMINATED" for seq in launched.values()), launched


def test_tool_node_lost_mid_burst_loses_and_duplicates_no_call(autoscaling_cluster):
    before = set(autoscaling_cluster.tool_instances_terminated())
    out = run_on(autoscaling_cluster, "--tool-calls", "16", "--kill-after", "4")
    killed = out["killed"]
    assert killed and killed["raylet_pids"], out
    assert out["ok"] == out["calls"] == out["results"] and out["exactly_once"], out
    assert out["calls_after_kill"] > 0 and out["served_on_other_tool_nodes_after_kill"] >= 16  # pool re-formed
    assert out["timeline"][-1][1:3] == [0, 0]
    insts = {i: inst for i, inst in autoscaling_cluster.tool_instances_terminated().items() if i not in before}
    by_node = {inst["cloud_id"]: statuses(inst) for inst in insts.values()}
    assert killed["node_id"] in by_node and by_node[killed["node_id"]][-1] == "TERMINATED", by_node
    assert all(seq[-1] == "TERMINATED" for seq in by_node.values()), by_node


def submit_dgrpo(cluster: LocalCluster, tmp_path, capsys, iterations: int, *extra: str) -> tuple[str, object]:
    """`vital-ray submit` of a tiny DGRPO job whose tool pool starts empty; -> (job id, output dir)."""
    out_dir = tmp_path / "dgrpo"
    args = [*tiny_dgrpo_overrides(tmp_path, out_dir, iterations), "tool_pool.min_workers=0", "tool_pool.max_workers=1",
            "tool_pool.idle_s_before_shrink=1", "tool.timeout_s=120", *extra]
    assert submit_main(["--address", cluster.dashboard_url, "--working-dir", ROOT, "--", "dgrpo", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("submitted raysubmit_"), out
    return out.split()[1].rstrip(":"), out_dir


def assert_every_trajectory_once(out_dir, iterations: int, per_iteration: int) -> None:
    """One metrics row and one data-order row per iteration; each iteration's trajectories once each."""
    rows = lambda name: [json.loads(ln) for ln in (out_dir / name).read_text().splitlines()]  # noqa: E731
    assert [r["iteration"] for r in rows("metrics.jsonl")] == list(range(1, iterations + 1))
    assert [r["iteration"] for r in rows("data_order.jsonl")] == list(range(1, iterations + 1))
    for it in range(1, iterations + 1):
        ids = [s["id"] for s in rows("samples.jsonl") if s["iteration"] == it]
        assert len(ids) == len(set(ids)) == per_iteration, (it, ids)


@pytest.mark.slow
def test_submitted_dgrpo_job_gets_its_tool_node_from_the_autoscaler(tmp_path, capsys):
    """The head's one CPU holds the rollout, learner and reward workers, so the job's tool workers can only run on
    a tool node the autoscaler launches for them; after the job it is terminated."""
    with LocalCluster(head_cpus=1, max_tool_nodes=1, tool_node_cpus=1, idle_timeout_s=2.0) as cluster:
        job_id, out_dir = submit_dgrpo(cluster, tmp_path, capsys, 2, *FILL_HEAD)
        assert wait(client(cluster.dashboard_url), job_id, timeout_s=480) == "SUCCEEDED", \
            client(cluster.dashboard_url).get_job_logs(job_id)[-3000:]
        assert_every_trajectory_once(out_dir, 2, 2)
        insts = cluster.tool_instances_terminated()
        assert len(insts) == 1 and [statuses(i) for i in insts.values()][0][-1] == "TERMINATED", insts
        assert "RAY_RUNNING" in statuses(next(iter(insts.values())))


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["ToolWorker", "RolloutWorker"])
def test_dgrpo_job_survives_losing_a_node(victim, tmp_path, capsys):
    """SIGKILL the raylet of the tool node running `victim` while iteration 2 of 3 runs. The 1-CPU head has no room
    for the victim: it is full (ToolWorker, kept between iterations by a long idle_s_before_shrink: with
    min_workers=1 the pool would wait at start-up for a node whose launch, on this one machine where all nodes
    share the session dir, can pull the job's working dir from under the head's starting workers; see
    docs/reliability.md), or the rollout worker asks
    for 1.5 CPUs (RolloutWorker; tool nodes have 2). The job completes every iteration with each trajectory once;
    the lost workers come back on another node the autoscaler launches."""
    extra = FILL_HEAD + (["rollout.num_cpus_per_worker=1.5"] if victim == "RolloutWorker" else
                         ["tool_pool.idle_s_before_shrink=600"])
    with LocalCluster(head_cpus=1, max_tool_nodes=3, tool_node_cpus=2, idle_timeout_s=2.0) as cluster:
        job_id, out_dir = submit_dgrpo(cluster, tmp_path, capsys, 3, *extra)
        jc = client(cluster.dashboard_url)
        metrics = out_dir / "metrics.jsonl"
        deadline = time.time() + 300
        while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
            assert jc.get_job_status(job_id).value not in ("FAILED", "STOPPED"), jc.get_job_logs(job_id)[-3000:]
            time.sleep(0.5)
        nodes = set(cluster.actor_nodes(victim).values())
        assert len(nodes) == 1, nodes
        node = nodes.pop()
        assert node != FAKE_HEAD_NODE_ID, "the victim runs on the head: the test would kill the cluster"
        pids = raylet_pids(node, cluster.temp_dir)
        assert pids, f"no raylet of node {node}"
        for pid in pids:
            kill(pid, signal.SIGKILL)
        assert wait(jc, job_id, timeout_s=480) == "SUCCEEDED", jc.get_job_logs(job_id)[-3000:]
        assert_every_trajectory_once(out_dir, 3, 2)
        insts = cluster.tool_instances_terminated()
        by_node = {i["cloud_id"]: statuses(i) for i in insts.values()}
        assert node in by_node and len(by_node) >= 2, by_node  # the lost node, and a replacement
        assert all(seq[-1] == "TERMINATED" for seq in by_node.values()), by_node
