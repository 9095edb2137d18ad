"""Faults on a real local Ray cluster: actors SIGKILLed mid-iteration (tool, reward, rollout, learner rank), a
tool call that hangs, records whose videos cannot be used. Each run either completes with every sample or, for
a lost learner rank, fails the step at once with a clear error (the resume is tested in test_recipe_ray.py and,
end to end, in the slow test here)."""

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import ray
from ray._private import state

from actors.learner import LearnerFailure, LearnerPool
from actors.tools import ToolPool
from cluster.procs import cmdline
from pipelines.session import RLSession, load_training_records
from tests.test_bad_input import odd_videos  # noqa: F401  (fixture: AV1 and 8000x8000 mp4s)
from tests.test_pipeline_ray import OVERRIDES
from tests.test_recipe_ray import ROOT, SMALL, TINY
from tests.test_scheduler import call
from vital_ray.batch import sample_from_trajectory
from vital_ray.config import DGRPOJobConfig, RewardConfig, load_config
from vital_ray.data.records import RecordError
from vital_ray.data.sampler import PromptSampler
from vital_ray.rewards import score_response
from vital_ray.rollout.engine import GenResult
from vital_ray.tools.clip_tool import get_video_clip_frame
from vital_ray.training import checkpoint
from vital_ray.training.weights import to_buckets

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def rl(ray_local, synthetic, tiny_model_path):
    # decord: the bad-video cases expect its errors (a decoder built on the system's FFmpeg may read AV1)
    cfg = load_config(DGRPOJobConfig, None, OVERRIDES + ["tool.max_retries=3", "tool.decoder=decord"])
    session = RLSession(cfg, tiny_model_path)
    yield cfg, session, synthetic[0]
    session.shutdown()


def _pid(actor) -> int:
    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()), timeout=120)


class _Killer(threading.Thread):
    """SIGKILLs `pid` as soon as `ready()` holds (the process is mid-task); `mid_task` says whether it still held
    when the kill was sent, so a test can show its fault landed where it says (not after a timeout, not idle)."""

    def __init__(self, pid: int, ready, timeout_s: float):
        super().__init__(daemon=True)
        self.pid, self.ready, self.timeout_s, self.mid_task = pid, ready, timeout_s, False

    def run(self):
        deadline = time.time() + self.timeout_s
        while not (held := bool(self.ready())) and time.time() < deadline:
            time.sleep(0.01)
        self.mid_task = held
        os.kill(self.pid, signal.SIGKILL)


def _kill_when(pid: int, ready, timeout_s: float = 120.0) -> _Killer:
    killer = _Killer(pid, ready, timeout_s)
    killer.start()
    return killer


def _scripted_generate(session, turns_per_traj: int):
    """Stands in for the model (so every trajectory calls the real tool pool `turns_per_traj` times)."""
    seen: dict[str, int] = {}

    async def generate(requests, sampling):
        out = []
        for r in requests:
            k = seen[r["key"]] = seen.get(r["key"], 0) + 1
            text = call(2 * k, 2 * k + 6) if k <= turns_per_traj else "<think>seen</think><answer>A</answer>"
            ids = session.codec.encode(text)
            out.append(GenResult(r["key"], ids, [-0.1] * len(ids), text,
                                 "tool_call" if k <= turns_per_traj else "answer"))
        return out
    return generate


def test_tool_actor_killed_mid_iteration_loses_nothing(rl, monkeypatch):
    cfg, session, records = rl
    pool = session.tools
    monkeypatch.setattr(session.gen_pool, "generate", _scripted_generate(session, turns_per_traj=2))
    before = _pid(pool.workers[0])
    # first kill while the global views are decoding, the second while clip calls are in flight
    killer = _kill_when(before, lambda: pool.queued > 0)
    trajs, m = session.rollout(records[:4])
    killer.join()
    assert killer.mid_task
    assert len(trajs) == 4 * cfg.rollout.group_size and m["data/skipped_records"] == 0, session.skipped
    assert all(t.done and t.stop_reason == "answer" and t.tool_calls == 2 and t.tool_ok == 2 for t in trajs)
    assert _pid(pool.workers[0]) != before  # restarted, same handle
    second = _pid(pool.workers[0])
    n_views = len(pool.latencies) + 4
    killer = _kill_when(second, lambda: pool.queued > 0 and len(pool.latencies) > n_views)  # mid clip calls
    monkeypatch.setattr(session.gen_pool, "generate", _scripted_generate(session, turns_per_traj=2))
    trajs, m = session.rollout(records[-4:])
    killer.join()
    assert killer.mid_task
    assert len(trajs) == 4 * cfg.rollout.group_size and m["data/skipped_records"] == 0, session.skipped
    assert all(t.done and t.tool_ok == 2 for t in trajs), [t.tool_events for t in trajs if t.tool_ok != 2][:1]
    assert _pid(pool.workers[0]) != second
    t = trajs[0]  # idempotent tool: what came back (maybe from a retry) is what a direct call decodes
    args = t.tool_events[0]["arguments"]
    direct = get_video_clip_frame(t.video_path, args["start_time"], args["end_time"], t.duration, cfg.tool)
    assert np.array_equal(ray.get(t.videos[1].frames), direct.clip.frames)


def test_reward_actor_killed_mid_scoring_loses_nothing(rl):
    cfg, session, records = rl
    rec = records[0]
    texts = [f"<think>t</think><answer>{'From %d to %d seconds' % (i % 50, i % 50 + 5)}</answer>"
             for i in range(30_000)]  # ~2 s of scoring
    items = [(rec.data_source, t, rec.solution, i % 3) for i, t in enumerate(texts)]
    want = [score_response(*it, RewardConfig()).total for it in items]
    pid = _pid(session.rewards.workers[0])
    killer = _kill_when(pid, lambda: "score" in cmdline(pid))
    got = session.rewards.score(items)
    killer.join()
    assert killer.mid_task  # the worker was running `score` when it died
    assert [r.total for r in got] == want
    assert _pid(session.rewards.workers[0]) != pid
    # killed while idle: the next call waits for the restart
    os.kill(_pid(session.rewards.workers[0]), signal.SIGKILL)
    assert [r.total for r in session.rewards.score(items[:10])] == want[:10]


def test_rollout_actor_killed_mid_generation_restarts_with_synced_weights(rl):
    cfg, session, records = rl
    worker = session.gen_pool.workers[0]
    state = {k: v for k, v in ray.get(worker.__ray_call__.remote(
        lambda self: {n: p.detach().clone() for n, p in self.engine.model.named_parameters()
                      if "layers.0.mlp" in n}), timeout=120).items()}
    synced = {k: v + 0.01 for k, v in state.items()}  # a "sync" the restarted actor must not forget
    entries, buckets = to_buckets(synced, 64)
    session.gen_pool.update_weights(entries, [ray.put(b) for b in buckets], version=7)
    want = {k: float(v.double().sum()) for k, v in synced.items()}
    pid = _pid(worker)
    killer = _kill_when(pid, lambda: "generate" in cmdline(pid))
    trajs, m = session.rollout(records[:2])
    killer.join()
    assert killer.mid_task
    assert len(trajs) == 2 * cfg.rollout.group_size and all(t.done and t.gen_tokens > 0 for t in trajs)
    assert m["rollout/worker_restarts"] >= 1 and _pid(worker) != pid
    got = ray.get(worker.weights_checksum.remote())
    assert all(got[k] == pytest.approx(want[k], rel=1e-6) for k in want)  # not the initial weights
    assert ray.get(worker.ready.remote()) == 7
    # killed between iterations, then a weight sync: the restarted actor gets the new weights
    os.kill(_pid(worker), signal.SIGKILL)
    entries, buckets = to_buckets(state, 64)
    session.gen_pool.update_weights(entries, [ray.put(b) for b in buckets], version=8)
    got = ray.get(worker.weights_checksum.remote())
    assert all(got[k] == pytest.approx(float(v.double().sum()), rel=1e-6) for k, v in state.items())
    assert ray.get(worker.ready.remote()) == 8
    # killed while idle after the sync: the restarted actor would answer the next call with its initial weights;
    # the version it reports gives it away, and the pool reloads before using any output
    restarts = session.gen_pool.restarts
    os.kill(_pid(worker), signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:  # wait until it is back, idle, holding its initial weights
        try:
            assert ray.get(worker.ready.remote()) == 0
            break
        except ray.exceptions.RayActorError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    trajs, m = session.rollout(records[:1])
    assert len(trajs) == cfg.rollout.group_size and m["rollout/worker_restarts"] > restarts
    assert ray.get(worker.ready.remote()) == 8


def test_tool_call_delivered_after_its_deadline_does_no_work(rl):
    """What a timed-out call that Ray re-delivers to the restarted worker meets (the cancel/kill race)."""
    cfg, session, records = rl
    w, rec = session.tools.workers[0], records[0]
    before = ray.get(w.ping.remote())
    late = w.call.remote("get_video_clip_frame", {"start_time": 5, "end_time": 9}, rec.video, rec.duration,
                         time.time() - 1.0)
    meta, frames = ray.get(late[0]), ray.get(late[1])
    assert meta["error"] == "expired" and frames.size == 0 and ray.get(w.ping.remote()) == before
    ok = w.call.remote("get_video_clip_frame", {"start_time": 5, "end_time": 9}, rec.video, rec.duration,
                       time.time() + 60)
    assert ray.get(ok[0])["ok"] and ray.get(w.ping.remote()) == before + 1


def test_tool_actor_killed_while_running_a_call_reruns_it_on_the_restarted_actor(rl, odd_videos):  # noqa: F811
    """Ray re-delivers the call to the restarted incarnation (max_task_retries): its call counter, fresh at 0, reads
    1 afterwards. A kill that missed the call (before it started or after it ended) leaves it at 0. The call
    decodes an 8000x8000 video at full resolution (hundreds of ms), so the kill sent right after it entered the
    worker lands inside it."""
    cfg, session, records = rl
    tool_cfg = dataclasses.replace(cfg.tool, max_source_pixels=10**9)
    pool = ToolPool(tool_cfg, cfg.view, dataclasses.replace(cfg.tool_pool, min_workers=1, max_workers=1))

    async def call_and_kill():
        rec = records[0]
        await pool.call("get_video_clip_frame", {"start_time": 5, "end_time": 9}, rec.video, rec.duration)
        worker = pool.workers[0]
        restarts = state.actors(actor_id=worker._actor_id.hex())["NumRestarts"]
        started = await worker.ping.remote()  # threaded actor: ping answers while a call runs
        task = asyncio.ensure_future(pool.call("get_video_clip_frame", {"start_time": 0.0, "end_time": 1.9},
                                               odd_videos["huge"], 2.0))
        while await worker.ping.remote() == started:  # the call has entered the worker
            await asyncio.sleep(0.005)
        ray.kill(worker, no_restart=False)
        meta, frames = await task
        return meta, frames, await _ping_restarted(worker, restarts + 1)

    try:
        meta, frames, reran = asyncio.run(call_and_kill())
        assert meta["ok"], meta
        assert ray.get(frames).shape[0] == meta["shape"][0] > 0
        assert reran == 1 and meta["attempts"] == 1  # retried by Ray on the same handle, not by the pool elsewhere
    finally:
        pool.shutdown()


async def _ping_restarted(worker, restarts: int, wait_s: float = 30.0) -> int:
    """`ping` on the worker's incarnation after `restarts` kills. `ray.kill` is asynchronous: a ping sent right after
    it can still reach the killed incarnation, which legitimately counts the call it was running."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < wait_s:
        info = state.actors(actor_id=worker._actor_id.hex())
        if info["State"] == "ALIVE" and info["NumRestarts"] >= restarts:
            return await worker.ping.remote()
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker not back after {restarts} restarts in {wait_s:g}s: {info['State']}, "
                         f"{info['NumRestarts']} restarts")


def test_hung_tool_call_times_out_and_pool_recovers(rl, odd_videos):  # noqa: F811
    """A genuinely slow call: opening and decoding an 8000x8000 video (no decode cap) in a fresh worker takes
    about half a second on this machine, five times the 0.1 s timeout."""
    cfg, session, records = rl
    tool_cfg = type(cfg.tool)(**{**cfg.tool.__dict__, "timeout_s": 0.1, "max_retries": 1,
                                 "max_source_pixels": 10**9})
    pool = ToolPool(tool_cfg, cfg.view, cfg.tool_pool)

    async def calls():
        t0 = time.perf_counter()
        hung, _ = await pool.call("get_video_clip_frame", {"start_time": 0.0, "end_time": 1.9}, odd_videos["huge"],
                                  2.0)
        hung_s = time.perf_counter() - t0
        restarted_calls = await _ping_restarted(pool.workers[0], pool.timeouts)  # a cancelled call is not re-run
        pool.tool_cfg = dataclasses.replace(pool.tool_cfg, timeout_s=60.0)
        rec = records[0]
        ok = await pool.call("get_video_clip_frame", {"start_time": 5, "end_time": 9}, rec.video, rec.duration)
        return hung, hung_s, restarted_calls, ok

    try:
        hung, hung_s, restarted_calls, (meta, frames) = asyncio.run(calls())
        assert restarted_calls == 0
        assert not hung["ok"] and "timed out after 0.1s" in hung["text"] and hung["attempts"] == 2
        assert pool.timeouts == 2 and hung_s < 30
        assert meta["ok"] and ray.get(frames).shape[0] == meta["shape"][0] > 0  # the restarted worker serves
    finally:
        pool.shutdown()


def test_records_with_unusable_videos_are_skipped_and_counted_or_fail(rl, odd_videos, tmp_path):  # noqa: F811
    cfg, session, records = rl
    good = records[0]
    truncated = tmp_path / "truncated.mp4"
    data = open(good.video, "rb").read()
    truncated.write_bytes(data[: len(data) // 3])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    bad = [type(good)(**{**good.__dict__, "id": "trunc", "video": str(truncated)}),
           type(good)(**{**good.__dict__, "id": "empty", "video": str(empty)}),
           type(good)(**{**good.__dict__, "id": "av1", "video": odd_videos["av1"], "duration": 4.0}),
           type(good)(**{**good.__dict__, "id": "long", "duration": 600.0})]
    trajs, m = session.rollout([good, *bad])
    assert len(trajs) == cfg.rollout.group_size and {t.sample_id.split("#")[0] for t in trajs} == {good.id}
    assert m["data/skipped_records"] == 4
    reasons = dict(s.split(": ", 1) for s in session.skipped)
    assert "empty file" in reasons["empty"] and "unsupported codec" in reasons["av1"]
    assert "exceeds the file's 60.00 s" in reasons["long"] and "cannot read video" in reasons["trunc"]
    session.cfg.data.on_bad_record = "fail"
    try:
        with pytest.raises(RecordError, match="1 record.*empty file"):
            session.rollout([good, bad[1]])
    finally:
        session.cfg.data.on_bad_record = "skip"


def test_learner_rank_killed_mid_step_fails_fast(rl, tiny_model_path):
    cfg, session, records = rl
    lcfg = type(cfg.learner)(**{**cfg.learner.__dict__, "num_workers": 2, "micro_batch_size": 1})
    learner = LearnerPool(tiny_model_path, lcfg, cfg.algo, cfg.model)
    trajs, _ = session.rollout(records[:4])
    for i, t in enumerate(trajs):
        t.advantage = 1.0 if i % 2 else -1.0
    samples = [sample_from_trajectory(t) for t in trajs]
    pid = _pid(learner.workers[1])
    killer = _kill_when(pid, lambda: "policy_update" in cmdline(pid))
    t0 = time.perf_counter()
    with pytest.raises(LearnerFailure, match="learner rank 1 died during policy_update.*--resume"):
        learner.policy_update(samples)
    killer.join()
    assert killer.mid_task
    assert time.perf_counter() - t0 < 60  # not the process group's 600 s collective timeout
    assert learner.workers == []  # torn down: rank 0 is not left waiting in a collective


def _dgrpo_driver(args, out_dir):
    env = dict(os.environ, PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "pipelines.dgrpo", "--config", TINY, *SMALL,
                             f"trainer.output_dir={out_dir}", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _session_pids(sid: int, title: str) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getsid(int(d)) == sid and title in cmdline(int(d)):
                    pids.append(int(d))
            except OSError:
                continue
    return pids


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait(cond, proc, timeout_s=400):
    deadline = time.time() + timeout_s
    while not cond():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_learner_rank_death_and_driver_sigkill_resume_losing_at_most_the_current_iteration(tmp_path):
    """The driver: a learner rank SIGKILLed mid-step (exit 3, clear error), `--resume`, then the driver itself
    SIGKILLed mid-iteration, `--resume` again: every iteration runs to completion once in the final record, in
    the sampler's order, and each crash lost only the iteration it hit."""
    out = str(tmp_path / "dgrpo")
    args = ["trainer.iterations=4", "trainer.checkpoint_every=1", "trainer.prompts_per_iter=2",
            "learner.num_workers=2", "learner.micro_batch_size=1"]

    def step() -> int:
        latest = checkpoint.latest_checkpoint(out)
        return checkpoint.read_state(latest)["step"] if latest else 0

    first = _dgrpo_driver(args, out)
    _wait(lambda: step() >= 1 and _session_pids(first.pid, "LearnerWorker.policy_update"), first)
    os.kill(_session_pids(first.pid, "LearnerWorker.policy_update")[-1], signal.SIGKILL)
    text = first.stdout.read()
    assert first.wait(timeout=120) == 3, text[-3000:]
    assert "died during policy_update" in text and "--resume" in text
    lost_first = step()
    _kill_group(first)

    second = _dgrpo_driver(args + ["--resume"], out)
    _wait(lambda: step() >= lost_first + 1 and _session_pids(second.pid, "RolloutWorker.generate"), second)
    at_kill = step()
    os.killpg(second.pid, signal.SIGKILL)  # the driver and its local Ray cluster, mid-rollout
    second.wait()

    third = _dgrpo_driver(args + ["--resume"], out)
    assert third.wait(timeout=600) == 0, third.stdout.read()[-3000:]
    with open(os.path.join(out, "data_order.jsonl")) as f:
        order = [json.loads(line) for line in f if line.strip()]
    assert [r["iteration"] for r in order] == [1, 2, 3, 4]
    cfg = load_config(DGRPOJobConfig, TINY, SMALL + args + [f"trainer.output_dir={out}"])
    sampler = PromptSampler(load_training_records(cfg)[0], seed=cfg.data.shuffle_seed)
    assert [r["records"] for r in order] == [[x.id for x in sampler.next(2)] for _ in range(4)]
    assert step() == 4 and lost_first >= 1 and at_kill >= lost_first + 1
