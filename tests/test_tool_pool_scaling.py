"""The tool pool autoscales on a real local Ray cluster with real clip-tool calls (decord on real mp4s): it grows
with queued calls, never past max_workers, shrinks back to min_workers when idle without losing in-flight calls,
prefers tool-labelled nodes, and its cluster demand reaches the autoscaler's state in GCS (read back, not
recorded; no autoscaler process runs locally to act on it)."""

import asyncio
import dataclasses
import json
import threading
import time

import pytest
import ray

from actors.tools import ToolPool
from tests.test_bad_input import odd_videos  # noqa: F401  (fixture: an 8000x8000 mp4)
from vital_ray.config import ConfigError, DGRPOJobConfig, ToolConfig, ToolPoolConfig, VideoViewConfig, load_config
from vital_ray.tools.scaling import NODE_KIND_LABEL, needed_workers, placement_options, resource_request

pytestmark = pytest.mark.ray

TOOL = ToolConfig(max_frames=4, max_pixels=3136)
VIEW = VideoViewConfig(max_frames=4, max_pixels=3136)


def autoscaler_request() -> list[dict]:
    """The resource demand the autoscaler would act on, read back from GCS (v1: internal KV; v2: constraints)."""
    from ray.autoscaler.v2.utils import is_autoscaler_v2

    if is_autoscaler_v2():
        from ray._private.state import state
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        cs = get_cluster_resource_state(state.get_gcs_client())
        return [dict(b.resource_requests.request.resources_bundle) for c in cs.cluster_resource_constraints
                for b in c.resource_requests for _ in range(b.count)]
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return json.loads(raw) if raw else []


def burst(pool: ToolPool, video: str, n: int, duration: float = 60.0) -> list[dict]:
    async def go():
        spans = [(float(i % 50), float(i % 50 + 8)) if duration >= 60 else (0.0, duration - 0.1) for i in range(n)]
        calls = [pool.call("get_video_clip_frame", {"start_time": s, "end_time": e}, video, duration)
                 for s, e in spans]
        return [meta for meta, _ in await asyncio.gather(*calls)]

    return asyncio.run(go())


def wait_until(cond, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


@pytest.fixture(scope="module")
def ray_two_cpus():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def test_policy_clamps_and_bundles():
    cfg = ToolPoolConfig(min_workers=1, max_workers=3, scale_up_queue=2, num_cpus_per_worker=0.5)
    assert [needed_workers(q, cfg) for q in (0, 1, 2, 3, 4, 5, 6, 100)] == [1, 1, 1, 2, 2, 3, 3, 3]
    req = resource_request(2, cfg)
    assert req["bundles"] == [{"CPU": 0.5}] * 2
    assert req["bundle_label_selectors"] == [{NODE_KIND_LABEL: "tool"}] * 2
    assert placement_options(ToolPoolConfig(tool_node_label="")) == {}
    with pytest.raises(ConfigError, match="tool_pool"):
        load_config(DGRPOJobConfig, None, ["tool_pool.min_workers=3", "tool_pool.max_workers=2"])


def test_tool_workers_prefer_tool_nodes_and_fall_back():
    """Two real raylets: an unlabelled head and a 1-CPU node labelled as a tool node. Workers fill the tool node
    first, then spill over to the head instead of waiting."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    tool_node = cluster.add_node(num_cpus=1, labels={NODE_KIND_LABEL: "tool"})
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        cfg = ToolPoolConfig(min_workers=3, max_workers=3, num_cpus_per_worker=0.5, request_resources=False)
        pool = ToolPool(TOOL, VIEW, cfg)
        nodes = ray.get([w.node_id.remote() for w in pool.workers])
        assert sorted(n == tool_node.node_id for n in nodes) == [False, True, True]
        pool.shutdown()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_pool_grows_under_a_burst_and_shrinks_when_idle(ray_two_cpus, synthetic):
    records, _ = synthetic
    cfg = ToolPoolConfig(min_workers=1, max_workers=3, num_cpus_per_worker=0.5, max_concurrency=1,
                         scale_up_queue=2, idle_s_before_shrink=2.0, autoscale_interval_s=0.2)
    pool = ToolPool(TOOL, VIEW, cfg)
    try:
        assert pool.size == 1 and autoscaler_request() == [{"CPU": 0.5}]
        peak, seen = {"size": 0, "request": 0}, {}

        def watch():  # what the cluster sees while the burst runs
            while not done.is_set():
                seen.update({id(w): w for w in pool.workers + list(pool.starting.values())})
                peak["size"] = max(peak["size"], pool.size)
                peak["request"] = max(peak["request"], len(autoscaler_request()))
                time.sleep(0.1)

        done = threading.Event()
        watcher = threading.Thread(target=watch)
        watcher.start()
        metas = burst(pool, records[0].video, 24)
        done.set()
        watcher.join()
        assert all(m["ok"] for m in metas), [m.get("error") for m in metas if not m["ok"]]
        assert peak["size"] == 3 and max(s for _, s, _ in pool.history) == 3  # grew, capped at max_workers
        assert peak["request"] == 3
        st = pool.stats()  # what metrics.jsonl / wandb get per iteration
        assert st["tool/calls"] == 24 and st["tool/frames"] == sum(m["shape"][0] for m in metas)
        assert st["tool/peak_workers"] == 3 and st["tool/peak_queue"] >= 20
        assert pool.stats()["tool/calls"] == 0  # a window, not a running total
        back = lambda: pool.size == 1 and not pool.draining and autoscaler_request() == [{"CPU": 0.5}]  # noqa: E731
        assert wait_until(back, 15), list(pool.history)[-5:]  # idle -> back to min_workers, demand follows
        for w in seen.values():  # the removed workers' actors are gone, the kept one answers
            if w in pool.workers:
                ray.get(w.ping.remote(), timeout=30)
            else:
                with pytest.raises(ray.exceptions.RayActorError):
                    ray.get(w.ping.remote(), timeout=30)
        assert len(seen) == 3
        time.sleep(1.0)
        assert pool.size == 1  # never below min_workers
    finally:
        pool.shutdown()
    assert autoscaler_request() == []  # demand withdrawn


def test_shrinking_never_drops_in_flight_calls(ray_two_cpus, odd_videos):  # noqa: F811
    """idle_s_before_shrink=0: workers are drained while calls still run on them; every call still succeeds on
    its first attempt (a killed busy worker would surface as a retry). Shrinking takes two scaling steps while
    over-sized, inside the burst's tail (2 or fewer calls left): each call here decodes an 8000x8000 video at full
    resolution (a few hundred ms), so that tail spans many 10 ms ticks."""
    cfg = ToolPoolConfig(min_workers=1, max_workers=3, num_cpus_per_worker=0.5, max_concurrency=1,
                         scale_up_queue=2, idle_s_before_shrink=0.0, autoscale_interval_s=0.01,
                         request_resources=False)
    pool = ToolPool(dataclasses.replace(TOOL, max_source_pixels=10**9), VIEW, cfg)
    try:
        metas = burst(pool, odd_videos["huge"], 12, duration=2.0)
        sizes = [s for _, s, q in pool.history if q > 0]
        assert max(sizes) == 3
        assert any(b < a for a, b in zip(sizes, sizes[1:])), \
            f"pool never shrank while calls were outstanding: {list(pool.history)[-12:]}"
        assert all(m["ok"] and m["attempts"] == 1 for m in metas)
    finally:
        pool.shutdown()


def test_calls_on_a_video_go_to_its_warm_worker_until_it_is_busy(ray_two_cpus, synthetic):
    videos = sorted({r.video for r in synthetic[0]})[:2]
    cfg = ToolPoolConfig(min_workers=2, max_workers=2, num_cpus_per_worker=0.5, max_concurrency=2,
                         affinity_slack=0, request_resources=False)
    pool = ToolPool(TOOL, VIEW, cfg)
    try:
        one_by_one = {v: [] for v in videos}
        for i in range(4):
            for v in videos:
                one_by_one[v] += burst(pool, v, 1)
        for v, metas in one_by_one.items():
            assert all(m["ok"] for m in metas) and len({m["worker"] for m in metas}) == 1, (v, metas)
        st = pool.stats()
        assert st["tool/affinity_hits"] == 6  # every call after each video's first
        assert st["tool/source/decode"] == 8 and st["tool/store_hit_rate"] == 0.0
        assert sum(v for k, v in st.items() if k.startswith("tool/decoder/")) == 8
        warm = one_by_one[videos[0]][0]["worker"]
        together = burst(pool, videos[0], 4)  # the warm worker is busy after the first: the rest spill over
        assert {m["worker"] for m in together} == {w._actor_id.hex() for w in pool.workers}
        assert warm in {m["worker"] for m in together}
    finally:
        pool.shutdown()


def test_tool_workers_fill_and_read_the_frame_store(ray_two_cpus, synthetic, tmp_path):
    video = synthetic[0][0].video
    tool = ToolConfig(max_frames=4, max_pixels=3136, store_dir=str(tmp_path / "store"))
    pool = ToolPool(tool, VIEW, ToolPoolConfig(min_workers=1, max_workers=1, request_resources=False))
    try:
        first = burst(pool, video, 1)[0]
        assert first["ok"] and first["source"] != "store"  # a miss: decoded, and the store fills behind it
        assert wait_until(lambda: burst(pool, video, 1)[0]["source"] == "store", 60)
        view, _ = asyncio.run(pool.global_view(video, 60.0))
        assert view["ok"] and view["source"] == "store"
        st = pool.stats()
        assert st["tool/source/store"] >= 2 and 0 < st["tool/store_hit_rate"] < 1
    finally:
        pool.shutdown()
